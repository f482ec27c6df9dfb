"""Away hours (AWAY_SCHEDULE, TIMEZONE, a rule's "schedule"): the windows alone, at fixed instants
in fixed zones (across midnight, by weekday, over DST changes), then the real App over sockets."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.cli.owner_commands import describe_away_status
from server.config import ConfigError, Settings, load_settings
from server.conversation.reply_policy import Presence
from server.conversation.rules import RulesError, parse_rules
from server.owner.away_schedule import AwaySchedule, parse_schedule, parse_window
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.relay_harness import PluginClient, running_app
from tests.test_away_mode import away_settings, quiet

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    """The Unix time of a wall-clock time "YYYY-MM-DD HH:MM" in `zone`."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp()


def schedule(*entries: str, zone: str = "Europe/Berlin") -> AwaySchedule:
    return parse_schedule(entries, zone)


def wall(instant: float | None, zone: ZoneInfo = BERLIN) -> str:
    assert instant is not None
    return datetime.fromtimestamp(instant, zone).strftime("%a %Y-%m-%d %H:%M")


# Parsing.


def test_windows_parse_with_and_without_days() -> None:
    every = parse_window("22:00-08:00")
    assert (every.days, every.start, every.end) == (frozenset(range(7)), 22 * 60, 8 * 60)
    assert every.crosses_midnight
    weekend = parse_window("sat,sun 00:00-24:00")
    assert (weekend.days, weekend.start, weekend.end) == (frozenset({5, 6}), 0, 24 * 60)
    assert not weekend.crosses_midnight
    lunch = parse_window("mon-fri 12:30-13:30")
    assert lunch.days == frozenset(range(5)) and (lunch.start, lunch.end) == (750, 810)
    assert parse_window("Fri-Mon 9:00 - 10:00").days == frozenset({4, 5, 6, 0})  # wraps round
    assert parse_window("saturday, sunday 10:00-11:00").days == frozenset({5, 6})
    assert parse_window("  wed 23:00-00:00 ").text == "wed 23:00-00:00"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("25:00-08:00", "'25:00' is not a time of day"),
        ("22:00-08:60", "'08:60' is not a time of day"),
        ("24:00-08:00", "cannot start at 24:00"),
        ("08:00-08:00", "same time"),
        ("22:00", "is not a window"),
        ("noon-midnight", "is not a window"),
        ("funday 10:00-11:00", "'funday' is not a day"),
        ("mon-fry 10:00-11:00", "'fry' is not a day"),
        ("", "is not a window"),
    ],
)
def test_a_bad_window_is_refused_naming_the_key_and_the_entry(
    tmp_path: Path, entry: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        parse_window(entry)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"AWAY_SCHEDULE": ["mon 09:00-10:00", entry]}, indent=2))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    text = str(error.value)
    assert str(config) in text and "AWAY_SCHEDULE.1 (line 2)" in text
    assert says in text and f"(got {entry!r})" in text
    with pytest.raises(RulesError, match=rf"rc.py: REPLY_TO\[0\]: schedule: entry 1 .*{says}"):
        parse_rules({"REPLY_TO": [("1", "2", {"schedule": ["09:00-10:00", entry]})]}, "rc.py")


def test_timezone_is_an_iana_name_and_defaults_to_the_local_zone(tmp_path: Path) -> None:
    assert Settings().TIMEZONE == "" and Settings().AWAY_SCHEDULE == []
    assert Settings().away_schedule().zone is None  # the machine's own rules
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"TIMEZONE": "Mars/Olympus_Mons"}, indent=2))
    with pytest.raises(ConfigError, match=r"TIMEZONE \(line 2\): 'Mars/Olympus_Mons' is not a"):
        load_settings(config)
    config.write_text("{}")
    with pytest.raises(ConfigError, match="environment variable TIMEZONE"):
        load_settings(config, env={"TIMEZONE": "Nowhere/Else"})
    settings = load_settings(
        config, env={"TIMEZONE": "Asia/Tokyo", "AWAY_SCHEDULE": '["sun 10:00-11:00"]'}
    )
    assert settings.away_schedule().zone == ZoneInfo("Asia/Tokyo")


# Is this instant inside, and when does it end (Monday 2026-12-07 is a Monday).


def test_a_window_across_midnight_holds_both_sides_and_ends_the_next_morning() -> None:
    night = schedule("22:00-08:00")
    assert night.active(at("2026-12-07 21:59")) is None
    assert wall(night.next_start(at("2026-12-07 21:59"))) == "Mon 2026-12-07 22:00"
    active = night.active(at("2026-12-07 23:30"))
    assert active is not None and active.window == "22:00-08:00"
    assert wall(active.until) == "Tue 2026-12-08 08:00"
    morning = night.active(at("2026-12-08 07:59"))
    assert morning is not None and wall(morning.until) == "Tue 2026-12-08 08:00"
    assert night.active(at("2026-12-08 08:00")) is None
    assert wall(night.next_change(at("2026-12-08 08:00"))) == "Tue 2026-12-08 22:00"


def test_days_name_the_day_a_window_starts() -> None:
    friday_night = schedule("fri 22:00-02:00")
    assert friday_night.active(at("2026-12-11 23:00")) is not None  # Friday
    assert friday_night.active(at("2026-12-12 01:00")) is not None  # Saturday, started Friday
    assert friday_night.active(at("2026-12-13 01:00")) is None  # Sunday: Saturday is not named
    assert friday_night.active(at("2026-12-10 23:00")) is None  # Thursday
    lunch = schedule("mon-fri 12:30-13:30")
    assert lunch.active(at("2026-12-09 12:30")) is not None  # Wednesday
    assert lunch.active(at("2026-12-09 13:30")) is None  # the end is not inside
    assert lunch.active(at("2026-12-12 13:00")) is None  # Saturday
    assert wall(lunch.next_start(at("2026-12-11 14:00"))) == "Mon 2026-12-14 12:30"


def test_back_to_back_windows_end_together() -> None:
    weekend = schedule("mon-fri 12:30-13:30", "fri 18:00-24:00", "sat,sun 00:00-24:00")
    friday = weekend.active(at("2026-12-11 19:00"))
    assert friday is not None and friday.window == "fri 18:00-24:00"
    assert wall(friday.until) == "Mon 2026-12-14 00:00"
    always = schedule("00:00-24:00")
    active = always.active(at("2026-12-07 10:00"))
    assert active is not None and active.until > at("2026-12-07 10:00") + 7 * 86400


def test_windows_keep_their_wall_clock_hours_across_daylight_saving_changes() -> None:
    night = schedule("22:00-08:00")
    # Spring forward in Berlin: 2026-03-29 02:00 CET becomes 03:00 CEST; the night is 9 h long.
    start = at("2026-03-28 22:00")
    active = night.active(start)
    assert active is not None and wall(active.until) == "Sun 2026-03-29 08:00"
    assert active.until - start == 9 * 3600
    # A window in the skipped hour still ends after it starts.
    skipped = schedule("sun 02:15-02:45").active(at("2026-03-29 01:00") + 3600 + 20 * 60)
    assert skipped is None or skipped.until > at("2026-03-29 01:00")
    # Fall back: 2026-10-25 03:00 CEST becomes 02:00 CET; 02:00-02:30 happens twice.
    twice = schedule("sun 02:00-02:30")
    first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC).timestamp()  # 02:15 CEST
    second = first + 3600  # 02:15 CET, the same wall-clock time again
    assert wall(first) == wall(second) == "Sun 2026-10-25 02:15"
    for now in (first, second):
        inside = twice.active(now)
        assert inside is not None and 0 < inside.until - now <= 15 * 60
    night_in_autumn = night.active(at("2026-10-24 22:00"))
    assert night_in_autumn is not None
    assert night_in_autumn.until - at("2026-10-24 22:00") == 11 * 3600


def test_zones_shift_the_windows() -> None:
    instant = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()  # 21:00 in Tokyo
    assert schedule("20:00-22:00", zone="Asia/Tokyo").active(instant) is not None
    assert schedule("20:00-22:00", zone="America/New_York").active(instant) is None
    local = datetime.fromtimestamp(instant)
    around = f"{local.hour:02d}:00-{(local.hour + 1) % 24:02d}:00"
    assert schedule(around, zone="").active(instant) is not None  # the machine's local time


# The presence rule with away hours.


def test_away_hours_count_as_away_unless_switched_off_and_a_rule_may_have_its_own() -> None:
    night, noon = schedule("22:00-08:00"), schedule("12:00-13:00")
    late = at("2026-12-07 23:00")
    presence = Presence("online", "auto", schedule=night)
    assert presence.away_at(late) and presence.allows("away", now=late).reply
    assert not presence.away_at(at("2026-12-07 09:00"))
    assert not presence.allows("away", noon, now=late).reply  # the rule's hours replace them
    assert presence.allows("away", noon, now=at("2026-12-07 12:30")).reply
    presence.switch = "off"  # the manual switch wins
    decision = presence.allows("away", now=late)
    assert not decision.reply and "switched off" in decision.reason
    assert presence.scheduled(late) is not None  # still shown by `away status`
    presence.switch = "on"
    assert presence.allows("away", now=at("2026-12-07 09:00")).reply


def test_away_status_lines_name_the_window_and_its_end() -> None:
    now = time.time()
    frame: dict[str, Any] = {
        "switch": "auto",
        "presence": "online",
        "replying": True,
        "reply_when": "away",
        "schedule": {"window": "22:00-08:00", "until": now + 3600, "next": None, "zone": "UTC"},
    }
    end = datetime.fromtimestamp(now + 3600, UTC).strftime("%H:%M")
    assert f"away hours:      '22:00-08:00' applies until {end}" in describe_away_status(frame)
    frame["switch"] = "off"
    assert "(not counted: the switch is off)" in describe_away_status(frame)[-1]
    frame["schedule"] = {"window": None, "until": None, "next": now + 3 * 86400, "zone": "UTC"}
    later = datetime.fromtimestamp(now + 3 * 86400, UTC)
    assert describe_away_status(frame)[-1].endswith(
        f"none now; the next starts {later.strftime('%a')} {later.strftime('%H:%M')}"
    )
    assert not any("away hours" in line for line in describe_away_status({"switch": "auto"}))


# The real App over sockets, with windows around the current time in UTC.


def window_from_now(start_minutes: int, length_minutes: int, days: str = "") -> str:
    start = datetime.now(UTC) + timedelta(minutes=start_minutes)
    end = start + timedelta(minutes=length_minutes)
    return f"{days} {start:%H:%M}-{end:%H:%M}".strip()


RULES = (
    'CONTEXT_MESSAGE = "You stand in for Sam."\n'
    "REPLY_TO = [\n"
    '    ("111", "222"),\n'
    '    ("112", "223", {"schedule": [%r]}),\n'
    '    ("113", "224", {"schedule": []}),\n'
    "]\n"
)


async def test_the_relay_answers_inside_the_away_hours_until_switched_off(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    now_window = window_from_now(-1, 90)
    weekday = datetime.now(UTC).strftime("%a").lower()
    rules = RULES % window_from_now(120, 60, days=weekday)  # later today: not now
    settings = away_settings(fake_discord, fake_openai, AWAY_SCHEDULE=[now_window], TIMEZONE="UTC")
    async with running_app(tmp_path, rules, **settings) as running:
        client = await PluginClient.connect(running.url)
        greeting = await client.wait_for_owner_frame("away_status")
        assert greeting["presence"] is None  # no Discord status: the away hours alone decide
        assert (greeting["away"], greeting["replying"]) == (True, True)
        hours = greeting["schedule"]
        assert hours["window"] == now_window and hours["zone"] == "UTC"
        assert 88 * 60 < hours["until"] - time.time() <= 90 * 60 and hours["next"] is None

        await client.message("1001", "111", "222", "anyone there?")
        [posted] = await fake_discord.wait_for_messages(1)
        assert posted["content"].startswith("[auto-reply] echo: anyone there?")
        # A rule's own hours replace AWAY_SCHEDULE: one later today, one with none at all.
        await client.message("1002", "112", "223", "and you?")
        await client.message("1003", "113", "224", "hello?")
        await quiet(running)
        assert len(fake_discord.messages) == 1

        await client.send_raw(json.dumps({"type": "away", "mode": "off"}))
        off = await client.wait_for_owner_frame("away_status", switch="off")
        assert (off["away"], off["replying"]) == (False, False)
        assert off["schedule"]["window"] == now_window  # shown, though not counted
        await client.message("1004", "111", "222", "still there?")
        await quiet(running)
        assert len(fake_discord.messages) == 1 and len(fake_openai.requests) == 1
        await client.close()


async def test_outside_the_away_hours_the_status_says_when_they_start(
    tmp_path: Path, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    later = window_from_now(120, 60)
    rules = RULES % window_from_now(-1, 30)  # this rule's own hours hold now
    settings = away_settings(fake_discord, fake_openai, AWAY_SCHEDULE=[later], TIMEZONE="UTC")
    async with running_app(tmp_path, rules, **settings) as running:
        client = await PluginClient.connect(running.url)
        status = await client.wait_for_owner_frame("away_status")
        assert (status["away"], status["replying"]) == (False, False)
        assert status["schedule"]["window"] is None
        assert 118 * 60 < status["schedule"]["next"] - time.time() <= 120 * 60
        await client.message("1001", "111", "222", "hi")
        await client.message("1002", "112", "223", "and me?")
        [posted] = await fake_discord.wait_for_messages(1)
        await quiet(running)
        assert posted["channel_id"] == "223" and len(fake_discord.messages) == 1
        await client.close()
