"""Voice notes to text through an OpenAI-compatible `POST /audio/transcriptions` (OpenAI's
whisper-1 or gpt-4o-transcribe; local servers such as speaches, faster-whisper-server and
whisper.cpp speak the same API). TRANSCRIBE_MODEL "" turns it off.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import openai

from server.llm.openai_backend import OPENAI_BASE_URL, PLACEHOLDER_KEY

log = logging.getLogger(__name__)


class Transcriber:
    """Turns a recording into text; None (and a log line naming the host) when it cannot."""

    def __init__(self, *, model: str, base_url: str, api_key: str, timeout: float) -> None:
        url = base_url or OPENAI_BASE_URL
        self.model = model
        self.host = urlsplit(url).netloc.rpartition("@")[2]
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_KEY, base_url=url, timeout=timeout, max_retries=1
        )

    async def transcribe(self, filename: str, data: bytes, content_type: str) -> str | None:
        """The words spoken in the recording, or None on any failure."""
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model, file=(filename, data, content_type)
            )
        except openai.APIStatusError as err:
            log.warning("transcription (%s) failed: HTTP %d", self.host, err.status_code)
            return None
        except openai.OpenAIError as err:  # not chained: SDK errors may echo the key
            log.warning("transcription (%s) failed: %s", self.host, type(err).__name__)
            return None
        text = getattr(result, "text", "")
        return text.strip() if isinstance(text, str) and text.strip() else None

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections."""
        await self._client.close()
