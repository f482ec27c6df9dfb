"""Away hours: windows such as "22:00-08:00" or "mon-fri 12:30-13:30" in which the owner counts
as away whatever their Discord status. Pure: text in, windows out; an instant in, an answer out.

Times are wall-clock times in the schedule's zone (an IANA zone, or the machine's own rules when
none is named), so a window means the same hours on either side of a daylight-saving change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY_DAY: frozenset[int] = frozenset(range(7))
MINUTES_PER_DAY = 24 * 60
MAX_CHAINED_WINDOWS = 64
"""How many back-to-back windows `Active.until` follows before it stops looking further."""
_TIME = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
_WINDOW = re.compile(
    r"^\s*(?P<days>.*?)\s*(?P<start>[0-9]+:[0-9]+)\s*-\s*(?P<end>[0-9]+:[0-9]+)\s*$"
)


@dataclass(frozen=True)
class Window:
    """One window: on `days` (0 = Monday; the day it starts), from `start` to `end` minutes after
    midnight; `end <= start` means it ends the next day."""

    text: str
    days: frozenset[int]
    start: int
    end: int

    @property
    def crosses_midnight(self) -> bool:
        """True if the window ends on the day after it starts."""
        return self.end <= self.start


@dataclass(frozen=True)
class Active:
    """The window in force at an instant, and when the schedule stops counting the owner as away
    (Unix time; back-to-back windows count as one)."""

    window: str
    until: float


@dataclass(frozen=True)
class AwaySchedule:
    """Windows in a zone (None: the machine's local time)."""

    windows: tuple[Window, ...] = ()
    zone: tzinfo | None = None

    def active(self, now: float) -> Active | None:
        """The window `now` falls in and when the away hours end, or None outside them."""
        found = self._window_at(now)
        if found is None:
            return None
        window, end = found
        for _ in range(MAX_CHAINED_WINDOWS):  # a window that starts as this one ends continues it
            following = self._window_at(end)
            if following is None or following[1] <= end:
                break
            end = following[1]
        return Active(window.text, end)

    def next_start(self, now: float) -> float | None:
        """When the next window starts after `now` (within a week), or None without windows."""
        local = _local(now, self.zone)
        starts = [
            at
            for offset in range(8)
            for window in self.windows
            if (day := local.date() + timedelta(days=offset)).weekday() in window.days
            and (at := _instant(day, window.start, self.zone)) > now
        ]
        return min(starts, default=None)

    def next_change(self, now: float) -> float | None:
        """When being inside or outside the away hours next changes, or None if it never does."""
        active = self.active(now)
        return active.until if active is not None else self.next_start(now)

    def _window_at(self, now: float) -> tuple[Window, float] | None:
        """The first window (in the schedule's order) holding `now`, and when that one ends."""
        local = _local(now, self.zone)
        minute = local.hour * 60 + local.minute
        today, yesterday = local.date(), local.date() - timedelta(days=1)
        for window in self.windows:
            if window.crosses_midnight:
                if yesterday.weekday() in window.days and minute < window.end:
                    return window, _instant(today, window.end, self.zone, now)
                if today.weekday() in window.days and minute >= window.start:
                    return window, _instant(today + timedelta(days=1), window.end, self.zone)
            elif today.weekday() in window.days and window.start <= minute < window.end:
                return window, _instant(today, window.end, self.zone, now)
        return None


NO_SCHEDULE = AwaySchedule()


def _local(now: float, zone: tzinfo | None) -> datetime:
    """`now` as a wall-clock time in `zone` (naive local time when None)."""
    return datetime.fromtimestamp(now, zone)


def _instant(day: date, minutes: int, zone: tzinfo | None, after: float | None = None) -> float:
    """The Unix time of `minutes` after midnight on `day`, wall clock in `zone` (24:00 is the
    next midnight). A time that a DST change skips maps to the hour after it; one that it repeats
    is its first occurrence, or the second if only that is later than `after`."""
    if minutes >= MINUTES_PER_DAY:
        day, minutes = day + timedelta(days=1), minutes - MINUTES_PER_DAY
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), zone)
    first = wall.timestamp()
    if after is not None and first <= after:
        return max(first, wall.replace(fold=1).timestamp())
    return first


def parse_window(text: str) -> Window:
    """Parse `[DAYS ]HH:MM-HH:MM`, e.g. "22:00-08:00", "sat,sun 00:00-24:00", "mon-fri 9:00-17:00".

    Raises ValueError saying what is wrong (the caller names the key and the entry).
    """
    if not isinstance(text, str):
        raise ValueError(f'must be a string such as "mon-fri 22:00-08:00", got {text!r}')
    found = _WINDOW.match(text)
    if not found:
        raise ValueError('is not a window such as "22:00-08:00" or "mon-fri 12:30-13:30"')
    days = _parse_days(found.group("days")) if found.group("days") else EVERY_DAY
    start, end = _parse_minute(found.group("start")), _parse_minute(found.group("end"))
    if start >= MINUTES_PER_DAY:
        raise ValueError("a window cannot start at 24:00; start it at 00:00")
    if start == end:
        raise ValueError('starts and ends at the same time; "00:00-24:00" is a whole day')
    return Window(text.strip(), days, start, end)


def _parse_minute(text: str) -> int:
    found = _TIME.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a time of day as HH:MM")
    hour, minute = int(found.group(1)), int(found.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 24:00)")
    return hour * 60 + minute


def _parse_days(text: str) -> frozenset[int]:
    """ "mon-fri", "sat,sun", "fri-mon" (wrapping round the week), full names too."""
    days: set[int] = set()
    for part in re.sub(r"\s+", "", text.lower()).split(","):
        first, dash, last = part.partition("-")
        begin = _day(first)
        if not dash:
            days.add(begin)
            continue
        finish = _day(last)
        days.update((begin + step) % 7 for step in range((finish - begin) % 7 + 1))
    return frozenset(days)


def _day(name: str) -> int:
    name = name.strip()
    for names in (DAY_NAMES, FULL_DAY_NAMES):
        if name in names:
            return names.index(name)
    raise ValueError(f"{name!r} is not a day; use mon, tue, wed, thu, fri, sat, sun")


def zone_named(name: str) -> tzinfo | None:
    """The IANA zone `name` ("Europe/Berlin"), or None ("") for the machine's local time.

    Raises ValueError for a name the zone database does not know.
    """
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'{name!r} is not a time zone name such as "Europe/Berlin" or "America/New_York"'
        ) from None


@lru_cache(maxsize=256)
def parse_schedule(entries: tuple[str, ...], zone_name: str = "") -> AwaySchedule:
    """Windows from their texts, in the zone called `zone_name` ("" = local time).

    Raises ValueError naming the entry at fault.
    """
    windows = []
    for index, entry in enumerate(entries):
        try:
            windows.append(parse_window(entry))
        except ValueError as exc:
            raise ValueError(f"entry {index} {entry!r}: {exc}") from None
    return AwaySchedule(tuple(windows), zone_named(zone_name))


def check_windows(entries: Sequence[str]) -> tuple[str, ...]:
    """`entries` if each parses; ValueError naming the first bad one (for validators)."""
    parse_schedule(tuple(entries))
    return tuple(entries)


def describe_until(until: float, now: float, zone: tzinfo | None) -> str:
    """When `until` is, for a person: "08:00", or "Sat 08:00" if not within a day."""
    when = _local(until, zone)
    if until - now < 20 * 3600:
        return when.strftime("%H:%M")
    return f"{DAY_NAMES[when.weekday()].title()} {when.strftime('%H:%M')}"
