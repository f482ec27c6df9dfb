"""`plugin install`: copy the BetterDiscord plugin into BD's plugins folder with our settings."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.config_file import OwnerSettings

PLUGIN_FILE_NAME = "discord-auto-reply.plugin.js"
PLUGIN_SOURCE = Path(__file__).resolve().parent.parent.parent / "plugin" / PLUGIN_FILE_NAME
_HOME = Path.home()
# Where the Microsoft Store installs Python (Windows' app-container packages live in WindowsApps).
_STORE_PYTHON = "\\windowsapps\\pythonsoftwarefoundation.python."


class InstallError(Exception):
    """The plugin cannot be installed there; the message names the folder and what to do."""


# The one line of the plugin that holds its default settings; see the plugin's top.
_DEFAULTS_LINE = re.compile(
    r"^const DEFAULT_SETTINGS = \{.*\}; // @install-defaults$", flags=re.MULTILINE
)


def default_plugin_dir(
    platform: str = sys.platform,
    env: Mapping[str, str] = os.environ,
    home: Path = _HOME,
) -> Path:
    """BetterDiscord's plugins folder for `platform` (a `sys.platform` value)."""
    if platform.startswith("win"):
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and xdg.startswith("/") else home / ".config"  # must be absolute
    return base / "BetterDiscord" / "plugins"


def check_install_target(
    directory: Path,
    *,
    platform: str = sys.platform,
    base_prefix: str = sys.base_prefix,
    env: Mapping[str, str] = os.environ,
) -> None:
    """Refuse a folder this Python cannot really write to; `InstallError` says why.

    The Microsoft Store's Python runs in an app container: Windows keeps the files it creates
    under %APPDATA% and %LOCALAPPDATA% in a private copy that Discord never sees.
    """
    if not platform.startswith("win") or _STORE_PYTHON not in base_prefix.lower():
        return
    target = PureWindowsPath(directory)
    roots = [PureWindowsPath(env[key]) for key in ("APPDATA", "LOCALAPPDATA") if env.get(key)]
    if any(target.is_relative_to(root) for root in roots):
        raise InstallError(
            f"cannot install into {directory}: this is the Microsoft Store's Python "
            f"({base_prefix}), and Windows keeps the files it writes under %APPDATA% in a "
            "private copy that Discord never sees. Install Python from python.org and make "
            f"the .venv again with it, or copy plugin\\{PLUGIN_FILE_NAME} into that folder by "
            "hand and type the secret in the plugin's settings"
        )


def render_plugin(source: str, *, host: str, port: int, secret: str) -> str:
    """The plugin source with its marked defaults line set to these values.

    Raises ValueError if the source does not hold exactly one marked defaults line.
    """
    found = _DEFAULTS_LINE.findall(source)
    if len(found) != 1:
        raise ValueError(
            f"the plugin source must hold exactly one `const DEFAULT_SETTINGS = {{...}}; "
            f"// @install-defaults` line, found {len(found)}"
        )
    # JSON is a valid JS object literal; ensure_ascii keeps U+2028/U+2029 and the like escaped.
    values = json.dumps(
        {"host": host, "port": port, "secret": secret, "enabled": True}, ensure_ascii=True
    )
    line = f"const DEFAULT_SETTINGS = {values}; // @install-defaults"
    return _DEFAULTS_LINE.sub(lambda _match: line, source, count=1)


def connect_host(bind_host: str) -> str:
    """The address a client uses for a server bound to `bind_host` (wildcards -> loopback)."""
    return "127.0.0.1" if bind_host.strip() in ("", "0.0.0.0", "::", "[::]") else bind_host.strip()


def install_for(settings: OwnerSettings, directory: Path) -> Path:
    """Check `directory`, then install the plugin there with the server's address and secret
    from `settings`; returns the installed file. Raises `InstallError` naming what is wrong."""
    check_install_target(directory)
    return install_plugin(
        directory,
        host=settings.WEBSOCKET_HOST,
        port=settings.WEBSOCKET_PORT,
        secret=settings.WEBSOCKET_SECRET,
    )


def install_plugin(directory: Path, *, host: str, port: int, secret: str) -> Path:
    """Write the rendered plugin into `directory` (created if needed) and return its path.

    `host` is the server's bind address (a wildcard becomes 127.0.0.1). The file is replaced
    atomically and, on POSIX, readable only by the owner, since it holds the secret (on Windows
    the mode is a no-op: the file takes the folder's permissions, private to the user under
    %APPDATA%). Raises `InstallError` naming the folder when it cannot be written.
    """
    try:
        source = PLUGIN_SOURCE.read_text(encoding="utf-8")
    except OSError as exc:
        raise InstallError(
            f"cannot read the plugin at {PLUGIN_SOURCE} ({exc.strerror or exc}); "
            "install from the source folder with `pip install -e .`"
        ) from exc
    text = render_plugin(source, host=connect_host(host), port=port, secret=secret)
    try:
        return _write_atomically(directory, text)
    except OSError as exc:
        raise InstallError(
            f"cannot write the plugin into {directory}: {exc.strerror or exc}"
        ) from exc


def _write_atomically(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / PLUGIN_FILE_NAME
    handle, temp_name = tempfile.mkstemp(
        dir=directory, prefix=f".{PLUGIN_FILE_NAME}.", suffix=".tmp"
    )
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target
