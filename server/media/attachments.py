"""Downloading attachments from Discord's CDN: only from ATTACHMENT_HOSTS, within a size cap and
a timeout. Discord's URLs are signed and expire (about a day), so files are read while the
message is fresh. A failed download is None and a log line naming the host, never an exception:
the turn keeps its placeholder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx2

from server.transport.protocol import Attachment

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 8 * 1024 * 1024
"""Largest image sent to a model (OpenAI takes up to 20 MB; a photo from a phone is far less)."""
MAX_AUDIO_BYTES = 25 * 1024 * 1024
"""Largest voice note sent for transcription (OpenAI's limit for /audio/transcriptions)."""


class AttachmentFetcher:
    """Fetches attachment bytes from the allowed hosts (any port, http or https)."""

    def __init__(self, *, hosts: Iterable[str], timeout: float) -> None:
        self.hosts = frozenset(host.lower() for host in hosts)
        self.timeout = timeout
        self._client = httpx2.AsyncClient(timeout=timeout, follow_redirects=False)

    def allowed(self, url: str) -> bool:
        """Whether `url` is http(s) on one of the allowed hosts."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and host in self.hosts

    async def fetch(self, attachment: Attachment, max_bytes: int) -> bytes | None:
        """The attachment's bytes, or None (not allowed, too large, failed, timed out)."""
        name, host = attachment.filename, urlsplit(attachment.url).hostname or "?"
        if not self.allowed(attachment.url):
            log.info("attachment %s not downloaded: host %s is not in ATTACHMENT_HOSTS", name, host)
            return None
        if attachment.size > max_bytes:
            log.info(
                "attachment %s not downloaded: %d bytes, over %d", name, attachment.size, max_bytes
            )
            return None
        try:
            async with self._client.stream("GET", attachment.url) as response:
                if response.status_code != 200:
                    log.warning("attachment %s from %s: HTTP %d", name, host, response.status_code)
                    return None
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        log.info("attachment %s from %s: over %d bytes", name, host, max_bytes)
                        return None
                return bytes(data)
        except httpx2.TimeoutException:
            log.warning("attachment %s from %s: timed out after %g s", name, host, self.timeout)
        except httpx2.HTTPError as exc:
            log.warning("attachment %s from %s: %s", name, host, type(exc).__name__)
        return None

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
