"""config.json loading: defaults, file and environment sources, errors that name the culprit."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from server.config import ConfigError, Settings, load_settings, write_initial_config

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, values: object) -> Path:
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.json", env={})
    assert settings == Settings(DATABASE=str(tmp_path / "auto_reply.db"))

    assert settings.WEBSOCKET_HOST == "127.0.0.1"
    assert settings.REPLY_PREFIX == "[auto-reply] "
    assert settings.ALLOWED_ORIGINS == [
        "https://discord.com",
        "https://ptb.discord.com",
        "https://canary.discord.com",
    ]


def test_a_relative_database_is_next_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"DATABASE": "data/chats.db"}', encoding="utf-8")
    settings = load_settings(config, env={})
    assert str(tmp_path / "data" / "chats.db") == settings.DATABASE
    absolute = str(tmp_path / "elsewhere.db")
    assert absolute == load_settings(config, env={"DATABASE": absolute}).DATABASE


def test_example_file_matches_the_defaults() -> None:
    example = json.loads((ROOT / "config.example.json").read_text(encoding="utf-8"))
    assert example == Settings().model_dump()


def test_memory_keeps_ten_interactions_by_default() -> None:
    # Three were too few for an afternoon away; CONTEXT_TOKENS still bounds the request.
    assert Settings().MEMORY_LENGTH == 10


def test_file_values_are_used(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"WEBSOCKET_PORT": 9000, "LLM_BACKENDS": ["g4f"]})
    settings = load_settings(path, env={})
    assert settings.WEBSOCKET_PORT == 9000
    assert settings.LLM_BACKENDS == ["g4f"]


def test_durations_are_floats_and_ints_are_accepted_for_them(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"TYPING_INTERVAL_SECONDS": 0.02, "LLM_TIMEOUT_SECONDS": 3})
    settings = load_settings(path, env={})
    assert settings.TYPING_INTERVAL_SECONDS == 0.02
    assert settings.LLM_TIMEOUT_SECONDS == 3.0


def test_wrong_type_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"WEBSOCKET_PORT": "eighty"})
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert str(path) in str(caught.value)
    assert "WEBSOCKET_PORT" in str(caught.value)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"OPENAI_MODLE": "gpt-4o"})
    with pytest.raises(ConfigError, match=r"unknown key 'OPENAI_MODLE'"):
        load_settings(path, env={})


def test_bad_enum_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"MESSENGER": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="MESSENGER"):
        load_settings(path, env={})


def test_invalid_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "WEBSOCKET_PORT": 1,\n}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.json: not valid JSON \(line 3"):
        load_settings(path, env={})


def test_bad_values_name_the_key_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{\n  "MAX_TOKENS": 100,\n  "WEBSOCKET_PORT": "x",\n  "OPENAI_MODLE": "m"\n}',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert str(caught.value) == (
        f"{path}: WEBSOCKET_PORT (line 3): Input should be a valid integer (got 'x'); "
        "unknown key 'OPENAI_MODLE' (line 4)"
    )


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"WEBSOCKET_PORT": 9000, "OPENAI_API_KEY": "from-file"})
    env = {
        "WEBSOCKET_PORT": "9100",
        "OPENAI_API_KEY": "12345",  # numeric-looking text stays a string for string keys
        "LLM_BACKENDS": '["g4f"]',
        "MESSENGER": "plugin",
        "TYPING_INTERVAL_SECONDS": "0.5",
        "UNRELATED": "ignored",
    }
    settings = load_settings(path, env=env)
    assert settings.WEBSOCKET_PORT == 9100
    assert settings.OPENAI_API_KEY == "12345"
    assert settings.LLM_BACKENDS == ["g4f"]
    assert settings.MESSENGER == "plugin"
    assert settings.TYPING_INTERVAL_SECONDS == 0.5


def test_base_urls_must_be_http_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment variable OPENAI_BASE_URL: OPENAI_BASE_URL"):
        load_settings(tmp_path / "absent.json", env={"OPENAI_BASE_URL": "localhost:11434/v1"})
    path = write(tmp_path / "c.json", {"DISCORD_API_BASE": ""})
    with pytest.raises(ConfigError, match=r"c\.json: DISCORD_API_BASE"):
        load_settings(path, env={})
    url = "http://127.0.0.1:11434/v1"
    assert load_settings(tmp_path / "absent.json", env={"OPENAI_BASE_URL": url}).OPENAI_BASE_URL


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable MAX_TOKENS"):
        load_settings(tmp_path / "absent.json", env={"MAX_TOKENS": "lots"})


def test_errors_never_echo_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"DISCORD_AUTHORIZATION": ["mfa.secret-token-value"]})
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "DISCORD_AUTHORIZATION" in str(caught.value)
    assert "secret-token-value" not in str(caught.value)


def test_bot_keys_are_checked_and_the_bot_token_is_a_secret(tmp_path: Path) -> None:
    key = "ab" * 32
    settings = load_settings(
        tmp_path / "absent.json",
        env={
            "DISCORD_BOT_TOKEN": "bot-token-value",
            "DISCORD_APPLICATION_ID": "1180000000000000042",
            "DISCORD_PUBLIC_KEY": key,
        },
    )
    assert settings.DISCORD_APPLICATION_ID == "1180000000000000042"
    assert key == settings.DISCORD_PUBLIC_KEY
    assert "bot-token-value" in settings.secret_values()
    for name, value in (("DISCORD_APPLICATION_ID", "my-app"), ("DISCORD_PUBLIC_KEY", "abc")):
        with pytest.raises(ConfigError, match=rf"c\.json: {name}"):
            load_settings(write(tmp_path / "c.json", {name: value}), env={})
    path = write(tmp_path / "c.json", {"DISCORD_BOT_TOKEN": ["bot-token-value"]})
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "DISCORD_BOT_TOKEN" in str(caught.value)
    assert "bot-token-value" not in str(caught.value)


def test_init_writes_a_private_file_with_a_random_secret(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_initial_config(first)
    write_initial_config(second)
    a, b = load_settings(first, env={}), load_settings(second, env={})
    assert len(a.WEBSOCKET_SECRET) >= 32
    assert a.WEBSOCKET_SECRET != b.WEBSOCKET_SECRET
    if os.name == "posix":  # on Windows the file takes the folder's permissions instead
        assert stat.S_IMODE(first.stat().st_mode) == 0o600


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Windows PowerShell 5 (`Set-Content -Encoding UTF8`) writes UTF-8 with a BOM."""
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"WEBSOCKET_PORT": 9100}).encode())
    assert load_settings(path, env={}).WEBSOCKET_PORT == 9100


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", {"WEBSOCKET_SECRET": "keep-me"})
    with pytest.raises(ConfigError, match="already exists"):
        write_initial_config(path)
    assert load_settings(path, env={}).WEBSOCKET_SECRET == "keep-me"


def test_messenger_auto_resolves_by_token() -> None:
    assert Settings().messenger_name() == "plugin"
    assert Settings(DISCORD_AUTHORIZATION="t").messenger_name() == "rest"
    assert Settings(DISCORD_AUTHORIZATION="t", MESSENGER="macro").messenger_name() == "macro"
