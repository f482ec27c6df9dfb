"""`plugin install`: the plugins folder per platform, the rendered defaults line, the file."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from server.cli.main import main
from server.cli.plugin_installer import (
    PLUGIN_FILE_NAME,
    PLUGIN_SOURCE,
    InstallError,
    check_install_target,
    connect_host,
    default_plugin_dir,
    install_plugin,
    render_plugin,
)

HOME = Path("/home/sam")
NODE = os.environ.get("NODE") or shutil.which("node")  # `make test`: tests/plugin/node.sh's

# Evaluates a plugin file as BetterDiscord would (a `module` object, no require) and prints its
# default settings.
READ_DEFAULTS_JS = """
const fs = require("fs"), vm = require("vm");
const module = { exports: {} };
vm.runInNewContext(fs.readFileSync(process.argv[1], "utf8"), { module, exports: module.exports });
process.stdout.write(JSON.stringify(module.exports.internals.DEFAULT_SETTINGS));
"""


def assert_private(path: Path) -> None:
    """Owner-only on POSIX; on Windows the mode is a no-op and the folder's ACL applies."""
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def defaults_in(path: Path) -> object:
    """The DEFAULT_SETTINGS object of the plugin file at `path`, as JavaScript sees it."""
    if NODE is None:
        pytest.skip("node is not installed")
    result = subprocess.run(
        [NODE, "-e", READ_DEFAULTS_JS, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        (
            "win32",
            {"APPDATA": r"C:\Users\sam\AppData\Roaming"},
            Path(r"C:\Users\sam\AppData\Roaming"),
        ),
        ("win32", {}, HOME / "AppData" / "Roaming"),
        ("darwin", {"XDG_CONFIG_HOME": "/x"}, HOME / "Library" / "Application Support"),
        ("linux", {"XDG_CONFIG_HOME": "/xdg"}, Path("/xdg")),
        ("linux", {}, HOME / ".config"),
        ("linux", {"XDG_CONFIG_HOME": ""}, HOME / ".config"),
        ("linux", {"XDG_CONFIG_HOME": "relative/dir"}, HOME / ".config"),
        ("freebsd14", {}, HOME / ".config"),
    ],
)
def test_default_plugin_dir_per_platform(
    platform: str, env: dict[str, str], expected: Path
) -> None:
    assert default_plugin_dir(platform, env, HOME) == expected / "BetterDiscord" / "plugins"


def test_render_replaces_only_the_marked_line() -> None:
    source = PLUGIN_SOURCE.read_text(encoding="utf-8")
    rendered = render_plugin(source, host="127.0.0.2", port=9000, secret="abc")
    old_lines, new_lines = source.splitlines(), rendered.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][1] == (
        'const DEFAULT_SETTINGS = {"host": "127.0.0.2", "port": 9000, "secret": "abc", '
        '"enabled": true}; // @install-defaults'
    )
    assert render_plugin(rendered, host="127.0.0.2", port=9000, secret="abc") == rendered


@pytest.mark.parametrize("count", [0, 2])
def test_render_refuses_a_source_without_exactly_one_marker(count: int) -> None:
    line = 'const DEFAULT_SETTINGS = { host: "127.0.0.1" }; // @install-defaults\n'
    with pytest.raises(ValueError, match=f"found {count}"):
        render_plugin("/**\n * @name X\n */\n" + line * count, host="h", port=1, secret="s")


def test_rendered_plugin_still_runs_and_holds_the_settings(tmp_path: Path) -> None:
    path = install_plugin(tmp_path, host="127.0.0.1", port=8766, secret="s3cret")
    assert defaults_in(path) == {
        "host": "127.0.0.1",
        "port": 8766,
        "secret": "s3cret",
        "enabled": True,
    }


def test_a_secret_with_quotes_backslashes_and_line_breaks_is_encoded_safely(
    tmp_path: Path,
) -> None:
    secret = 'a"b\'c\\d\n}; throw new Error("pwned"); //\u2028\u2029é</script>`${x}`'
    path = install_plugin(tmp_path, host="127.0.0.1", port=8765, secret=secret)
    line = next(x for x in path.read_text(encoding="utf-8").splitlines() if "@install-def" in x)
    assert line.isascii()  # U+2028/U+2029 and the like stay escaped
    assert defaults_in(path) == {
        "host": "127.0.0.1",
        "port": 8765,
        "secret": secret,
        "enabled": True,
    }


def test_install_creates_the_folder_and_a_private_file(tmp_path: Path) -> None:
    directory = tmp_path / "BetterDiscord" / "plugins"
    path = install_plugin(directory, host="127.0.0.1", port=8765, secret="s")
    assert path == directory / PLUGIN_FILE_NAME
    assert_private(path)
    assert path.read_text(encoding="utf-8").startswith("/**\n * @name DiscordAutoReply\n")


def test_reinstalling_updates_the_file_in_place(tmp_path: Path) -> None:
    first = install_plugin(tmp_path, host="127.0.0.1", port=8765, secret="old")
    second = install_plugin(tmp_path, host="127.0.0.1", port=9999, secret="new")
    assert first == second
    assert [p.name for p in tmp_path.iterdir()] == [PLUGIN_FILE_NAME]  # no temp files left
    assert_private(second)
    assert defaults_in(second) == {
        "host": "127.0.0.1",
        "port": 9999,
        "secret": "new",
        "enabled": True,
    }


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"), ("::1", "::1")],
)
def test_a_wildcard_bind_address_becomes_loopback_for_the_plugin(bind: str, expected: str) -> None:
    assert connect_host(bind) == expected


def test_the_cli_installs_with_the_settings_from_config_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"WEBSOCKET_PORT": 8800, "WEBSOCKET_SECRET": "from-config"}))
    plugins = tmp_path / "plugins"
    assert main(["plugin", "install", "--dir", str(plugins), "--config", str(config)]) == 0
    assert str(plugins / PLUGIN_FILE_NAME) in capsys.readouterr().out
    assert defaults_in(plugins / PLUGIN_FILE_NAME) == {
        "host": "127.0.0.1",
        "port": 8800,
        "secret": "from-config",
        "enabled": True,
    }


STORE_PREFIX = (
    r"C:\Program Files\WindowsApps"
    r"\PythonSoftwareFoundation.Python.3.12_3.12.2800.0_x64__qbz5n2kfra8p0"
)
WINDOWS_ENV = {
    "APPDATA": r"C:\Users\sam\AppData\Roaming",
    "LOCALAPPDATA": r"C:\Users\sam\AppData\Local",
}


@pytest.mark.parametrize(
    "directory",
    [
        r"C:\Users\sam\AppData\Roaming\BetterDiscord\plugins",
        r"c:\users\SAM\appdata\roaming\BetterDiscord\plugins",
        r"C:\Users\sam\AppData\Local\BetterDiscord\plugins",
    ],
)
def test_the_store_python_is_refused_under_appdata(directory: str) -> None:
    with pytest.raises(InstallError, match=r"Microsoft Store's Python .* python\.org") as caught:
        check_install_target(
            Path(directory), platform="win32", base_prefix=STORE_PREFIX, env=WINDOWS_ENV
        )
    assert directory in str(caught.value)


@pytest.mark.parametrize(
    ("platform", "base_prefix", "directory"),
    [
        (
            "win32",
            r"C:\Users\sam\AppData\Local\Programs\Python\Python312",
            r"C:\Users\sam\AppData\Roaming\BetterDiscord\plugins",
        ),
        ("win32", STORE_PREFIX, r"D:\BetterDiscord\plugins"),
        ("linux", "/usr", "/home/sam/.config/BetterDiscord/plugins"),
    ],
)
def test_other_pythons_and_folders_are_fine(
    platform: str, base_prefix: str, directory: str
) -> None:
    check_install_target(
        Path(directory), platform=platform, base_prefix=base_prefix, env=WINDOWS_ENV
    )


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InstallError, match=re.escape(f"cannot write the plugin into {blocker}")):
        install_plugin(blocker / "plugins", host="127.0.0.1", port=8765, secret="s")


def test_the_cli_reports_an_unwritable_folder_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"WEBSOCKET_SECRET": "s"}))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["plugin", "install", "--dir", str(blocker / "p"), "--config", str(config)])
    assert code == 2
    assert f"error: cannot write the plugin into {blocker / 'p'}" in capsys.readouterr().err
