"""`OwnerSettings`, the light commands' reading of config.json, agrees with `Settings`.

Every default, and every sample value's fate (accepted as the same value, or refused), from
the file and from the environment, is the same as `load_settings` gives; so are the file's
errors and where DATABASE points.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from server.config import ConfigError, Settings, load_settings
from server.config_file import OWNER_DEFAULTS, SETTING_NAMES, OwnerSettings, load_owner_settings

Loader = Callable[..., object]
KEYS = [field.name for field in fields(OwnerSettings)]
FILE_SAMPLES: dict[str, list[object]] = {
    "WEBSOCKET_HOST": ["127.0.0.1", "", "::1", 1, None, ["host"]],
    "WEBSOCKET_PORT": [0, 8765, 65535, -1, 65536, 10**30, 8765.0, "8765", True, None],
    "WEBSOCKET_SECRET": ["", "s3cret", 3, None],
    "DATABASE": ["x.db", " ", "~/x.db", "/abs/x.db", "", 5, None],
    "MODE": ["send", "draft", "Send", "", None, 1],
    "REPLY_WHEN": ["away", "always", "never", "", None],
    "SEND_TIMEOUT_SECONDS": [30.0, 1, 1e-300, float("inf"), 0, -1.0, float("nan"), "3", True],
}
ENV_SAMPLES: dict[str, list[str]] = {
    "WEBSOCKET_HOST": ["localhost", "", "123", "null"],
    "WEBSOCKET_PORT": ["8080", "0", "-1", "65536", "80.0", "eighty", '"8080"', "true", ""],
    "WEBSOCKET_SECRET": ["abc", "123", "null", ""],
    "DATABASE": ["chats.db", "7", "", "[1]"],
    "MODE": ["draft", "send", '"draft"', "x"],
    "REPLY_WHEN": ["always", "away", "null", '"away"'],
    "SEND_TIMEOUT_SECONDS": ["5", "0.5", "0", "-2", "Infinity", "NaN", "soon"],
}


def fate(load: Loader, config: Path, env: dict[str, str], key: str) -> str:
    """The type and value of `key` as `load` reads it, or "refused" (a `ConfigError`)."""
    try:
        value = getattr(load(config, env=env), key)
    except ConfigError:
        return "refused"
    return f"{type(value).__name__} {value!r}"


def error(load: Loader, config: Path) -> str:
    """The text of the `ConfigError` that loading `config` raises ("loaded" if none)."""
    try:
        load(config, env={})
    except ConfigError as exc:
        return str(exc)
    return "loaded"


def test_every_default_is_the_one_settings_has() -> None:
    assert set(KEYS) <= set(Settings.model_fields)
    defaults = Settings()
    assert {key: getattr(defaults, key) for key in KEYS} == asdict(OWNER_DEFAULTS)


def test_every_key_has_samples_accepted_and_refused(tmp_path: Path) -> None:
    """So that the agreement below means something (any text is a string in the environment)."""
    config = tmp_path / "config.json"
    for key in KEYS:
        refused: set[bool] = set()
        for value in FILE_SAMPLES[key]:
            config.write_text(json.dumps({key: value}), encoding="utf-8")
            refused.add(fate(load_owner_settings, config, {}, key) == "refused")
        assert refused == {True, False}, key


@pytest.mark.parametrize("key", KEYS)
def test_file_values_fare_as_with_settings(tmp_path: Path, key: str) -> None:
    config = tmp_path / "config.json"
    for value in FILE_SAMPLES[key]:
        config.write_text(json.dumps({key: value}), encoding="utf-8")
        full = fate(load_settings, config, {}, key)
        assert fate(load_owner_settings, config, {}, key) == full, f"{key}: {value!r}"


@pytest.mark.parametrize("key", KEYS)
def test_environment_values_fare_as_with_settings(tmp_path: Path, key: str) -> None:
    config = tmp_path / "config.json"
    for text in ENV_SAMPLES[key]:
        full = fate(load_settings, config, {key: text}, key)
        assert fate(load_owner_settings, config, {key: text}, key) == full, f"{key}={text!r}"


def test_the_environment_overrides_the_file_and_database_resolves_alike(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"DATABASE": "data/chats.db", "WEBSOCKET_PORT": 9000}', encoding="utf-8")
    env = {"WEBSOCKET_PORT": "9001", "MODE": "draft"}
    light = load_owner_settings(config, env=env)
    full = load_settings(config, env=env)
    assert asdict(light) == {key: getattr(full, key) for key in KEYS}
    assert str(tmp_path / "data" / "chats.db") == light.DATABASE
    assert light.WEBSOCKET_PORT == 9001


@pytest.mark.parametrize(
    "text",
    ["{ not json", "[1, 2]", "\ufeff" + '{"WEBSOCKET_PORT": 1}', '{\n "WEBSOCKET_PORT": }'],
    ids=["not json", "not an object", "byte order mark", "bad line"],
)
def test_the_file_is_read_with_the_same_errors(tmp_path: Path, text: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(text, encoding="utf-8")
    assert error(load_owner_settings, config) == error(load_settings, config)


def test_bytes_that_are_not_utf8_name_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(b'{"WEBSOCKET_HOST": "\xff"}')
    for load in (load_settings, load_owner_settings):
        with pytest.raises(ConfigError, match=r"config\.json: not UTF-8 text \(byte 20"):
            load(config, env={})


def test_an_error_names_the_key_its_line_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{\n  "MODE": "draft",\n  "WEBSOCKET_PORT": 70000\n}', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_owner_settings(config, env={})
    assert str(error.value) == (
        f"{config}: WEBSOCKET_PORT (line 3): must be a whole number from 0 to 65535 (got 70000)"
    )
    with pytest.raises(ConfigError, match=r"^environment variable MODE: MODE: must be \"send\""):
        load_owner_settings(tmp_path / "absent", env={"MODE": "later"})


def test_an_error_never_echoes_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{\n  "WEBSOCKET_SECRET": 123456789\n}', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_owner_settings(config, env={})
    assert "123456789" not in str(error.value)
    assert "WEBSOCKET_SECRET (line 2): must be a string" in str(error.value)


def test_keys_the_light_commands_do_not_read_are_left_to_serve_and_check(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"LLM_BACKENDS": ["nope"]}', encoding="utf-8")
    assert load_owner_settings(config, env={}).WEBSOCKET_PORT == 8765
    with pytest.raises(ConfigError, match="LLM_BACKENDS"):
        load_settings(config, env={})


def test_the_key_names_are_those_of_settings() -> None:
    assert set(Settings.model_fields) == SETTING_NAMES


def test_a_misspelt_key_is_refused_as_serve_refuses_it(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{\n  "MODE": "draft",\n  "DATABSE": "other.db"\n}', encoding="utf-8")
    with pytest.raises(ConfigError) as light:
        load_owner_settings(config, env={})
    with pytest.raises(ConfigError) as full:
        load_settings(config, env={})
    assert str(light.value) == str(full.value) == f"{config}: unknown key 'DATABSE' (line 3)"
