"""The bot's personas and sessions in the SQLite file: same answers as in memory, and kept."""

from __future__ import annotations

from pathlib import Path

from server.bot.sqlite_state import SqliteBotState
from server.bot.state import MAIN_SESSION, InMemoryBotState
from server.storage.database import Database

PAIR = ("111", "222")


async def exercise(state: SqliteBotState | InMemoryBotState) -> list[object]:
    """The same calls on either store; what they answered."""
    seen: list[object] = [await state.persona(PAIR), await state.sessions(PAIR)]
    await state.set_persona(PAIR, "pirate")
    seen += [
        await state.persona(PAIR),
        await state.add_session(PAIR, "trip"),
        await state.add_session(PAIR, "trip"),
        await state.add_session(PAIR, MAIN_SESSION),
        await state.current_session(PAIR),
        await state.switch_session(PAIR, "nope"),
        await state.switch_session(PAIR, MAIN_SESSION),
        await state.current_session(PAIR),
        await state.sessions(PAIR),
        await state.sessions(("333", "222")),
    ]
    return seen


async def test_it_answers_like_the_in_memory_store_and_keeps_choices_across_a_reopen(
    tmp_path: Path,
) -> None:
    database = Database(tmp_path / "db")
    await database.open()
    stored = await exercise(SqliteBotState(database))
    assert stored == await exercise(InMemoryBotState())
    await SqliteBotState(database).switch_session(PAIR, "trip")
    await database.close()

    reopened = Database(tmp_path / "db")
    state = SqliteBotState(reopened)
    assert await state.persona(PAIR) == "pirate"
    assert await state.sessions(PAIR) == [MAIN_SESSION, "trip"]
    assert await state.current_session(PAIR) == "trip"
    await reopened.close()
