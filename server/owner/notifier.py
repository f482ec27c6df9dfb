"""Notifications through Apprise (NOTIFY_URLS): a draft waiting, an urgent message, a failure that
stops replies, the return summary and, if asked, each reply, pushed to wherever the owner is.

Never on a reply's path: `notify` only queues. One task sends, at most once per
`MIN_INTERVAL_SECONDS` (what piles up meanwhile goes out merged in one notification), each URL in
a worker thread and within `SEND_TIMEOUT_SECONDS`. A failing URL is logged once per failure
streak, by its scheme and host only: Apprise URLs often hold tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from server.config import ConfigError, NoticeKind, Settings
from server.conversation.rules import Rule
from server.transport.protocol import IncomingMessage

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 15.0
"""How long one notification to one URL may take before it counts as failed."""
MIN_INTERVAL_SECONDS = 10.0
"""At most one notification per this many seconds; what arrives meanwhile is merged."""
LLM_FAILURE_SECONDS = 300.0
"""Every LLM backend failing for this long (no reply written in between) is worth telling."""
QUEUE_LIMIT = 200
MERGED_LIMIT = 10
"""A merged notification lists this many events, then says how many more there were."""
TEXT_LIMIT = 300
"""Message texts are cut to this many characters."""
SEEN_MESSAGES = 1000


@dataclass(frozen=True)
class Notice:
    """One event for the owner: its kind, a title, a body and a link that opens the chat."""

    kind: NoticeKind
    title: str
    body: str
    link: str | None = None

    def text(self) -> str:
        """The body with the link on its own line."""
        return f"{self.body}\n{self.link}" if self.link else self.body


def chat_link(channel: str, guild: str | None = None) -> str:
    """The link that opens a chat in Discord (a DM or group DM without `guild`)."""
    return f"https://discord.com/channels/{guild or '@me'}/{channel}"


def describe_url(url: str) -> str:
    """What may be logged of an Apprise URL: its scheme, and its host when that is a real host
    name or address (in many schemes the "host" is a token: then the scheme alone)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _is_host(host):
        port = f":{parts.port}" if _has_port(parts) else ""
        return f"{parts.scheme}://{host}{port}"
    return f"{parts.scheme}://"


def _has_port(parts: Any) -> bool:
    try:
        return parts.port is not None
    except ValueError:
        return False


def _is_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}", host))
    return True


def urgent_word(content: str, words: Sequence[str]) -> str | None:
    """The first of `words` that `content` contains as a word or phrase, case-insensitively."""
    text = content.casefold()
    for word in words:
        if word.strip() and re.search(rf"(?<!\w){re.escape(word.strip().casefold())}(?!\w)", text):
            return word.strip()
    return None


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def _who(name: str | None, user: str) -> str:
    return f"{name} ({user})" if name else f"user {user}"


def draft_notice(frame: dict[str, Any], *, with_text: bool) -> Notice:
    """A draft waiting for approval, from the plugin's `draft` frame."""
    who = _who(frame.get("author"), str(frame["user"]))
    body = f"A reply to {who} waits for you; it expires unless you send it."
    if with_text:
        question, draft = _cut(str(frame["question"])), _cut(str(frame["content"]))
        body += f"\nThey wrote: {question}\nDraft: {draft}"
    return Notice(
        "draft", f"Draft waiting: {who}", body, chat_link(frame["channel"], frame.get("guild"))
    )


def urgent_notice(message: IncomingMessage, why: str, *, with_text: bool) -> Notice:
    """A message worth a push: an urgent word, or a rule with "notify": "all"."""
    who = _who(message.author.username, message.author.id)
    body = f"{who} wrote ({why})."
    if with_text:
        body = f"{who} wrote ({why}):\n{_cut(message.content)}"
    return Notice("urgent", f"Message from {who}", body, chat_link(message.channel, message.guild))


def reply_notice(message: IncomingMessage, text: str, *, with_text: bool) -> Notice:
    """A reply the relay sent for the owner."""
    who = _who(message.author.username, message.author.id)
    body = f"Replied to {who}."
    if with_text:
        body = f"{who}: {_cut(message.content)}\nReplied: {_cut(text)}"
    return Notice("reply", f"Replied to {who}", body, chat_link(message.channel, message.guild))


def summary_notice(frame: dict[str, Any], *, with_text: bool) -> Notice:
    """The "while you were away" summary, from the plugin's `summary` frame."""
    lines = []
    for chat in frame.get("chats", []):
        line = f"{chat['answered']} answered for user {chat['user']}: {chat_link(chat['channel'])}"
        if with_text and chat.get("replies"):
            line += "\n  " + "\n  ".join(_cut(reply) for reply in chat["replies"])
        lines.append(line)
    for draft in frame.get("drafts", []):
        who = _who(draft.get("author"), str(draft["user"]))
        line = f"Draft waiting for {who}: {chat_link(draft['channel'], draft.get('guild'))}"
        if with_text:
            line += f"\n  {_cut(str(draft['content']))}"
        lines.append(line)
    return Notice("summary", "While you were away", "\n".join(lines) or "Nothing happened.")


def failure_notice(what: str) -> Notice:
    """Something that stops replies until the owner acts."""
    return Notice("failure", "Auto-replies stopped", what)


def merge(notices: Sequence[Notice]) -> Notice:
    """One notification for a burst: the notice itself, or a list of them."""
    if len(notices) == 1:
        return notices[0]
    shown = notices[:MERGED_LIMIT]
    parts = [f"{notice.title}\n{notice.text()}" for notice in shown]
    if len(notices) > len(shown):
        parts.append(f"…and {len(notices) - len(shown)} more")
    kinds = sorted({notice.kind for notice in notices}, key=lambda kind: kind != "failure")
    return Notice(kinds[0], f"{len(notices)} notifications", "\n\n".join(parts))


class FailureWatch:
    """Whether a failure that stops replies is news: every LLM backend failing for a while, or a
    messenger that can deliver nothing. Pure: results and times in, a notice (once) out."""

    def __init__(self, llm_failure_seconds: float) -> None:
        self._llm_failure_seconds = llm_failure_seconds
        self._failing_since: float | None = None
        self._llm_told = False
        self._undeliverable_told = False
        self._plugin_told_for: float | None = None

    def llm_result(self, ok: bool, now: float) -> Notice | None:
        """An LLM answer (or every backend failing) at `now`; a notice once per failure streak."""
        if ok:
            self._failing_since, self._llm_told = None, False
            return None
        if self._failing_since is None:
            self._failing_since = now
        if self._llm_told or now - self._failing_since < self._llm_failure_seconds:
            return None
        self._llm_told = True
        minutes = (now - self._failing_since) / 60
        return failure_notice(
            f"Every LLM backend has failed for {minutes:.0f} min: messages get no reply. "
            "See the server log, or run `discord-auto-reply check`."
        )

    def plugin_absent(
        self, gone_since: float | None, now: float, stalled: bool, limit: float
    ) -> Notice | None:
        """No plugin connected since `gone_since` (None: one is) while replies it must post wait
        or fail (`stalled`); a notice once per absence longer than `limit` seconds."""
        if gone_since is None or now - gone_since <= limit or not stalled:
            return None
        if self._plugin_told_for == gone_since:
            return None
        self._plugin_told_for = gone_since
        return failure_notice(
            f"No plugin has been connected for {now - gone_since:.0f} s, and replies it must "
            "post wait or were not delivered: is Discord open, with DiscordAutoReply enabled and "
            "connected (its settings panel says)?"
        )

    def undeliverable(self, reason: str) -> Notice | None:
        """The messenger can deliver nothing more (Discord refused the token); a notice once."""
        if self._undeliverable_told:
            return None
        self._undeliverable_told = True
        return failure_notice(f"Replies cannot be delivered: {reason}.")


class RelayEvents(Protocol):
    """What the relay tells about the messages it handles (for notifications)."""

    def incoming(self, message: IncomingMessage, rule: Rule, *, away: bool) -> None:
        """A message of an allow-listed pair was accepted."""

    def llm_result(self, ok: bool) -> None:
        """A reply was written (`ok`), or every LLM backend failed."""

    def replied(self, message: IncomingMessage, text: str) -> None:
        """A reply to `message` was delivered."""

    def undeliverable(self, reason: str) -> None:
        """The messenger can deliver nothing more."""


class Notifier:
    """Queues notices and sends them to NOTIFY_URLS through Apprise, off every reply's path."""

    def __init__(self, settings: Settings) -> None:
        self._urls = list(settings.NOTIFY_URLS)
        self._on = frozenset(settings.NOTIFY_ON)
        self._with_text = settings.NOTIFY_TEXT
        self._urgent_words = tuple(settings.URGENT_WORDS)
        self._interval = MIN_INTERVAL_SECONDS
        self._timeout = SEND_TIMEOUT_SECONDS
        self._failures = FailureWatch(LLM_FAILURE_SECONDS)
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_LIMIT)
        self._dropped = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._failing: set[int] = set()
        self._senders: list[Any] = []
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[Notice], None]] = []
        """Also told of every notice, whatever NOTIFY_URLS and NOTIFY_ON (the owner's bot)."""

    @property
    def enabled(self) -> bool:
        """True when NOTIFY_URLS names at least one URL."""
        return bool(self._urls)

    async def start(self) -> None:
        """Load Apprise and parse each URL (a URL it cannot use stops the start); start sending."""
        if not self.enabled:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=min(8, 2 * len(self._urls)), thread_name_prefix="notify"
        )
        loop = asyncio.get_running_loop()
        self._senders = await loop.run_in_executor(self._executor, apprise_senders, self._urls)
        self._task = asyncio.create_task(self._run(), name="notifications")
        described = ", ".join(describe_url(url) for url in self._urls)
        log.info("notifications (%s) go to %s", ", ".join(sorted(self._on)), described)

    def notify(self, notice: Notice) -> None:
        """Queue `notice` if its kind is in NOTIFY_ON; never waits."""
        for listener in self.listeners:
            listener(notice)
        if not self.enabled or notice.kind not in self._on:
            return
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1:
                log.warning("notifications are not going out fast enough; dropping some")

    def owner_frame(self, frame: dict[str, Any]) -> None:
        """A frame for the owner's plugin: a new draft, or the return summary, is pushed too."""
        if frame.get("type") == "draft":
            self.notify(draft_notice(frame, with_text=self._with_text))
        elif frame.get("type") == "summary":
            self.notify(summary_notice(frame, with_text=self._with_text))

    def incoming(self, message: IncomingMessage, rule: Rule, *, away: bool) -> None:
        """An urgent message (URGENT_WORDS, or a rule with "notify": "all") while the owner is
        away is pushed, once per message id."""
        if not away or message.is_self or not self._first_time(message.id):
            return
        why = "notify: all" if rule.notify == "all" else None
        word = urgent_word(message.content, self._urgent_words)
        if word is not None:
            why = f"urgent: {word!r}"
        if why is not None:
            self.notify(urgent_notice(message, why, with_text=self._with_text))

    def llm_result(self, ok: bool) -> None:
        """Tell when every LLM backend has failed for LLM_FAILURE_SECONDS."""
        notice = self._failures.llm_result(ok, time.time())
        if notice is not None:
            self.notify(notice)

    def replied(self, message: IncomingMessage, text: str) -> None:
        """Each reply, for NOTIFY_ON "reply"."""
        self.notify(reply_notice(message, text, with_text=self._with_text))

    def undeliverable(self, reason: str) -> None:
        """Tell once that the messenger can deliver nothing more."""
        notice = self._failures.undeliverable(reason)
        if notice is not None:
            self.notify(notice)

    def plugin_absent(self, gone_since: float | None, stalled: bool, limit: float) -> None:
        """Tell once per absence when no plugin has been connected for longer than `limit`
        seconds while replies wait for it or fail (see `FailureWatch.plugin_absent`)."""
        notice = self._failures.plugin_absent(gone_since, time.monotonic(), stalled, limit)
        if notice is not None:
            self.notify(notice)

    def _first_time(self, message_id: str) -> bool:
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN_MESSAGES:
            self._seen.popitem(last=False)
        return True

    async def _run(self) -> None:
        """Send what is queued, merged, at most once per interval."""
        while True:
            notices = [await self._queue.get()]
            while not self._queue.empty() and len(notices) < QUEUE_LIMIT:
                notices.append(self._queue.get_nowait())
            if self._dropped:
                log.warning("%d notification(s) were dropped", self._dropped)
                self._dropped = 0
            await self.send(merge(notices))
            await asyncio.sleep(self._interval)

    async def send(self, notice: Notice) -> list[str | None]:
        """Send `notice` to every URL now; for each, None or what went wrong (logged once per
        failure streak)."""
        results = await asyncio.gather(
            *(self._send_one(index, notice) for index in range(len(self._senders)))
        )
        return list(results)

    async def _send_one(self, index: int, notice: Notice) -> str | None:
        where = f"NOTIFY_URLS[{index}] ({describe_url(self._urls[index])})"
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(
            self._executor, _notify, self._senders[index], notice.title, notice.text()
        )
        try:
            error = await asyncio.wait_for(work, self._timeout)
        except TimeoutError:
            error = f"no answer within {self._timeout:g} s"
        if error is None:
            if index in self._failing:
                self._failing.discard(index)
                log.info("notifications to %s work again", where)
            return None
        if index not in self._failing:
            self._failing.add(index)
            log.warning(
                "notification to %s failed: %s (not logged again until one gets through)",
                where,
                error,
            )
        return error

    async def aclose(self) -> None:
        """Stop sending; what is still queued is dropped, a send under way is not waited for."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def apprise_senders(urls: Sequence[str]) -> list[Any]:
    """One Apprise object per URL (in a worker thread: importing Apprise takes a moment).

    Apprise is given no plugin paths and no persistent storage, so it loads no code of its own
    from disk and writes nothing; its log is silenced, since its lines may carry a URL whole.
    Raises ConfigError naming the URL (by scheme and host) Apprise cannot use.
    """
    import apprise  # noqa: PLC0415  (only when notifications are configured)

    logging.getLogger("apprise").disabled = True
    asset = apprise.AppriseAsset(
        plugin_paths=[],
        storage_mode="memory",
        service_timeout=SEND_TIMEOUT_SECONDS,
    )
    senders = []
    for index, url in enumerate(urls):
        sender = apprise.Apprise(asset=asset)
        if not sender.add(url):
            raise ConfigError(
                f"NOTIFY_URLS[{index}] ({describe_url(url)}): not a URL Apprise can send to; "
                "see https://appriseit.com for each service's form"
            )
        senders.append(sender)
    return senders


def _notify(sender: Any, title: str, body: str) -> str | None:
    """Send through one Apprise object (in a worker thread); None, or what went wrong."""
    try:
        result = sender.notify(body=body, title=title)
    except Exception as exc:  # a plugin's own bug must not kill the worker
        return type(exc).__name__
    return None if result else "the service refused it or could not be reached"


class NoEvents:
    """RelayEvents that go nowhere (no notifier)."""

    def incoming(self, message: IncomingMessage, rule: Rule, *, away: bool) -> None:
        """Nothing to do."""

    def llm_result(self, ok: bool) -> None:
        """Nothing to do."""

    def replied(self, message: IncomingMessage, text: str) -> None:
        """Nothing to do."""

    def undeliverable(self, reason: str) -> None:
        """Nothing to do."""
