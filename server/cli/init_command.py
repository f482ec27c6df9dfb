"""`discord-auto-reply init`: write config.json with a random secret and the LLM to use.

In a terminal it asks: OpenAI (the key checked with one `GET /models`), a local OpenAI-compatible
server found on the usual ports, or g4f; then it offers to install the plugin. Flags answer the
same questions for scripts, and with none a plain default config is written. The API key is
never printed; httpx2 is imported only when something is probed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from server.cli.main import can_print
from server.config import ConfigError, write_initial_config

if TYPE_CHECKING:
    import httpx2

LLMChoice = Literal["openai", "local", "g4f", "none"]
KNOWN_SERVERS = {11434: "Ollama", 1234: "LM Studio", 8080: "llama.cpp", 8000: "vLLM"}
"""The usual ports of local OpenAI-compatible servers (the default of --probe-ports)."""
PROBE_TIMEOUT_SECONDS = 0.5
KEY_CHECK_TIMEOUT_SECONDS = 10.0
OPENAI_API_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
G4F_EXTRA = "g4f needs the g4f extra: pip install 'discord-auto-reply[g4f]'"
NEXT_STEP = (
    "Next: enable the plugin in Discord (Settings → Plugins), then right-click a DM → "
    "Auto-reply → Auto-reply to NAME here."
)


@dataclass(frozen=True)
class LocalServer:
    """An OpenAI-compatible server that answered `GET /v1/models`, and the models it lists."""

    name: str
    base_url: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class KeyCheck:
    """What one `GET /models` with the key said: `works`, or `refused` (401/403), or neither
    (no answer); `detail` says it in a few words, never with the key."""

    works: bool
    refused: bool
    detail: str
    models: tuple[str, ...] = ()


def parse_ports(text: str) -> list[int]:
    """ "11434,1234" -> [11434, 1234]; `ConfigError` naming --probe-ports for anything else."""
    try:
        ports = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--probe-ports: expected ports such as 11434,1234, got {text!r}"
        ) from None
    if any(not 0 < port < 65536 for port in ports):
        raise ConfigError(f"--probe-ports: a port is between 1 and 65535, got {text!r}")
    return ports


def openai_values(api_key: str, model: str, base_url: str = "") -> dict[str, object]:
    """The config keys for OpenAI's API (or another keyed OpenAI-compatible service)."""
    return {
        "OPENAI_API_KEY": api_key,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_MODEL": model,
        "LLM_BACKENDS": ["openai"],
    }


def local_values(base_url: str, model: str) -> dict[str, object]:
    """The config keys for a local OpenAI-compatible server (no key: an OpenAI key kept from
    before would be sent to it)."""
    return {
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_MODEL": model,
        "LLM_BACKENDS": ["openai"],
    }


def g4f_values(model: str) -> dict[str, object]:
    """The config keys for g4f alone ("" model: g4f chooses)."""
    return {"LLM_BACKENDS": ["g4f"], "G4F_MODEL": model}


def g4f_installed() -> bool:
    """Whether the g4f extra is installed (checked without importing g4f)."""
    from server.llm.g4f_backend import g4f_installed as installed  # noqa: PLC0415

    return installed()


def _model_ids(response: httpx2.Response) -> tuple[str, ...]:
    """The model ids of a `/models` answer; ValueError if it is not OpenAI's list shape."""
    body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("not an OpenAI model list")
    return tuple(str(item["id"]) for item in data if isinstance(item, dict) and "id" in item)


async def _probe(client: httpx2.AsyncClient, name: str, base_url: str) -> LocalServer | None:
    import httpx2  # noqa: PLC0415

    try:
        response = await client.get(f"{base_url}/models")
        if response.status_code != 200:
            return None
        return LocalServer(name, base_url, _model_ids(response))
    except (httpx2.HTTPError, ValueError):
        return None


async def probe_servers(
    targets: Sequence[tuple[str, str]], timeout: float = PROBE_TIMEOUT_SECONDS
) -> list[LocalServer]:
    """Ask each (name, base URL) for `/models` at once; the ones that answered, in order."""
    import httpx2  # noqa: PLC0415

    async with httpx2.AsyncClient(timeout=timeout, trust_env=False) as client:
        found = await asyncio.gather(*(_probe(client, name, url) for name, url in targets))
    return [server for server in found if server is not None]


def local_targets(ports: Sequence[int]) -> list[tuple[str, str]]:
    """(name, base URL) of the local servers to look for on `ports` of 127.0.0.1."""
    return [
        (KNOWN_SERVERS.get(port, f"server on port {port}"), f"http://127.0.0.1:{port}/v1")
        for port in ports
    ]


async def check_key(
    api_key: str, base_url: str = OPENAI_API_URL, timeout: float = KEY_CHECK_TIMEOUT_SECONDS
) -> KeyCheck:
    """One `GET {base_url}/models` with the key: does the service take it?"""
    import httpx2  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        async with httpx2.AsyncClient(timeout=timeout) as client:
            response = await client.get(f"{base_url}/models", headers=headers)
    except httpx2.HTTPError as exc:
        return KeyCheck(False, False, f"no answer from {base_url} ({type(exc).__name__})")
    if response.status_code in (401, 403):
        return KeyCheck(False, True, f"HTTP {response.status_code}{_error_code(response)}")
    if response.status_code != 200:
        return KeyCheck(False, False, f"HTTP {response.status_code} from {base_url}")
    try:
        models = _model_ids(response)
    except ValueError:
        return KeyCheck(False, False, f"{base_url}/models did not answer with a model list")
    return KeyCheck(True, False, f"{len(models)} models available", models)


def _error_code(response: httpx2.Response) -> str:
    """`: invalid_api_key` from OpenAI's error body; its message is left out: it quotes the key."""
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return f": {code}" if isinstance(code, str) else ""


class Terminal:
    """The questions init asks, on stdin and stdout (a key is read without echo)."""

    def say(self, text: str = "") -> None:
        """Print a line."""
        print(text, flush=True)

    def ask(self, question: str, default: str = "") -> str:
        """A line of text; `default` when the answer is empty."""
        suffix = f" [{default}]" if default else ""
        return input(f"{question}{suffix}: ").strip() or default

    def secret(self, question: str) -> str:
        """A line typed without echo."""
        return getpass.getpass(f"{question}: ").strip()

    def yes(self, question: str, *, default: bool) -> bool:
        """y or n; `default` on an empty answer."""
        hint = "Y/n" if default else "y/N"
        while True:
            answer = input(f"{question} [{hint}] ").strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")

    def choose(self, question: str, options: Sequence[str], default: int = 1) -> int:
        """The 1-based number of one of `options`."""
        self.say(question)
        for number, option in enumerate(options, start=1):
            self.say(f"  {number}) {option}")
        while True:
            answer = self.ask("Choice", str(default))
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return int(answer)
            self.say(f"Type a number from 1 to {len(options)}.")


class Setup:
    """One run of init: the answers come from the flags, then (in a terminal) from questions."""

    def __init__(self, args: argparse.Namespace, terminal: Terminal, *, interactive: bool) -> None:
        self.args = args
        self.terminal = terminal
        self.interactive = interactive
        self.ports = parse_ports(args.probe_ports)

    def run(self) -> int:
        """Ask, write the config, offer the plugin, say what comes next."""
        path: Path = self.args.config
        replace = path.exists()
        if replace and not self.args.force:
            question = f"{path} already exists. Update its LLM settings (every other key kept)?"
            if not self.interactive:
                raise ConfigError(
                    f"{path} already exists; not changing it (--force updates its LLM settings, "
                    "keeping every other key and the WEBSOCKET_SECRET)"
                )
            if not self.terminal.yes(question, default=False):
                self.terminal.say(f"Left {path} as it was.")
                return 0
        values, described = self.llm_values()
        write_initial_config(path, values, replace=replace)
        if replace and not values:
            described = "LLM settings unchanged"
        secret = "its other keys kept" if replace else "a new random WEBSOCKET_SECRET"
        self.terminal.say(f"Wrote {path}: {described}; {secret}.")
        self.offer_plugin(path)
        self.terminal.say("Start the server: discord-auto-reply serve (`make run` starts it too).")
        self.terminal.say(NEXT_STEP if can_print("→") else NEXT_STEP.replace("→", "->"))
        return 0

    def llm_values(self) -> tuple[dict[str, object], str]:
        """The config keys of the chosen LLM, and a few words saying what was chosen."""
        choice = self.args.llm or (None if self.interactive else self.implied_choice())
        found: list[LocalServer] | None = None
        if choice is None and self.interactive:
            found = self.find_local_servers()
            choice = self.ask_llm(found)
        if choice == "openai":
            return self.openai()
        if choice == "local":
            return self.local(found)
        if choice == "g4f":
            if not g4f_installed():
                self.terminal.say(f"Note: {G4F_EXTRA}")
            model = self.args.model or ""
            return g4f_values(model), f"LLM: g4f, model {model or 'chosen by g4f'}"
        return {}, "default LLM settings: set OPENAI_API_KEY or OPENAI_BASE_URL later"

    def implied_choice(self) -> LLMChoice | None:
        """Without --llm, in a script: a key means OpenAI, a base URL alone a local server."""
        if self.args.api_key:
            return "openai"
        return "local" if self.args.base_url else None

    def find_local_servers(self) -> list[LocalServer]:
        """The local servers answering on the probe ports (said as it looks)."""
        ports = ", ".join(str(port) for port in self.ports)
        self.terminal.say(f"Looking for local OpenAI-compatible servers on ports {ports}...")
        return asyncio.run(probe_servers(local_targets(self.ports)))

    def ask_llm(self, found: Sequence[LocalServer]) -> LLMChoice:
        """Which LLM, with what was found on this machine."""
        local = "a local OpenAI-compatible server " + (
            "(found: " + ", ".join(f"{s.name} at {s.base_url}" for s in found) + ")"
            if found
            else "(none answering now; you give its URL)"
        )
        g4f = "g4f: free providers, no key" + ("" if g4f_installed() else f" ({G4F_EXTRA})")
        options = ["OpenAI's API (needs an API key)", local, g4f, "none for now (defaults)"]
        number = self.terminal.choose(
            "Which LLM should write the replies?", options, default=2 if found else 1
        )
        choices: tuple[LLMChoice, ...] = ("openai", "local", "g4f", "none")
        return choices[number - 1]

    def openai(self) -> tuple[dict[str, object], str]:
        """OpenAI's API: the key (asked without echo), checked with one request."""
        base_url = self.args.base_url or ""
        key = self.args.api_key or os.environ.get("OPENAI_API_KEY", "")
        if key and not self.args.api_key:
            self.terminal.say("Using OPENAI_API_KEY from the environment.")
        while True:
            if not key and self.interactive:
                key = self.terminal.secret("OpenAI API key (not shown as you type)")
            if not key:
                raise ConfigError(
                    "--llm openai needs a key: --api-key KEY or OPENAI_API_KEY in the environment"
                )
            where = base_url or OPENAI_API_URL
            self.terminal.say(f"Checking the key with {where}/models ...")
            check = asyncio.run(check_key(key, where))
            if check.works:
                self.terminal.say(f"The key works ({check.detail}).")
                break
            problem = (
                f"{where} refused the key ({check.detail})"
                if check.refused
                else (f"the key could not be checked: {check.detail}")
            )
            if not self.interactive:
                if check.refused:
                    raise ConfigError(f"{problem}; nothing written")
                print(f"warning: {problem}; writing it anyway", file=sys.stderr)
                break
            self.terminal.say(f"Not working: {problem}.")
            if self.terminal.yes("Keep this key anyway?", default=False):
                break
            key = ""
        model = self.args.model or DEFAULT_OPENAI_MODEL
        if self.interactive and not self.args.model:
            model = self.terminal.ask("Model", DEFAULT_OPENAI_MODEL)
        if check.models and model not in check.models:
            self.terminal.say(f"Note: {where} does not list a model named {model}.")
        return openai_values(key, model, base_url), f"LLM: OpenAI at {where}, model {model}"

    def local(self, found: list[LocalServer] | None) -> tuple[dict[str, object], str]:
        """A local OpenAI-compatible server: the one given, or one found on the probe ports."""
        if self.args.base_url:
            url = self.args.base_url.rstrip("/")
            found = asyncio.run(probe_servers([("the server", url)]))
            if not found:
                return self.unlisted_local(url)
        elif found is None:
            found = self.find_local_servers()
        if not found:
            ports = ", ".join(str(port) for port in self.ports)
            if not self.interactive:
                raise ConfigError(
                    f"no local OpenAI-compatible server answered GET /v1/models on 127.0.0.1 "
                    f"ports {ports}; start one (e.g. `ollama serve`) or give --base-url URL"
                )
            self.terminal.say(f"No server answered on ports {ports}.")
            url = self.terminal.ask("The server's URL", "http://127.0.0.1:11434/v1").rstrip("/")
            found = asyncio.run(probe_servers([("the server", url)]))
            if not found:
                return self.unlisted_local(url)
        server, model = self.pick_model(found)
        return local_values(server.base_url, model), (
            f"LLM: {server.name} at {server.base_url}, model {model}"
        )

    def pick_model(self, servers: Sequence[LocalServer]) -> tuple[LocalServer, str]:
        """--model on the first server, or the one picked from every server's models."""
        if self.args.model:
            return servers[0], self.args.model
        pairs = [(server, model) for server in servers for model in server.models or ("",)]
        if not self.interactive or len(pairs) == 1:
            server, model = pairs[0]
            return server, model or self.no_model_listed(server)
        options = [
            f"{model or '(no model listed)'} on {s.name} at {s.base_url}" for s, model in pairs
        ]
        server, model = pairs[self.terminal.choose("Which model?", options) - 1]
        return server, model or self.no_model_listed(server)

    def no_model_listed(self, server: LocalServer) -> str:
        """A model name for a server that lists none: asked, or --model is required."""
        if not self.interactive:
            raise ConfigError(f"{server.base_url} lists no model; give --model NAME")
        return self.terminal.ask(f"{server.base_url} lists no model; the model's name")

    def unlisted_local(self, url: str) -> tuple[dict[str, object], str]:
        """A server that did not answer now: written only with a model name to use later."""
        warning = f"{url}/models did not answer now"
        model = self.args.model
        if not model and self.interactive:
            model = self.terminal.ask(f"{warning}; the model's name to use")
        if not model:
            raise ConfigError(f"{warning}; start the server or give --model NAME")
        print(f"warning: {warning}; writing {model} anyway", file=sys.stderr)
        return local_values(url, model), f"LLM: the server at {url}, model {model}"

    def offer_plugin(self, path: Path) -> None:
        """Install the plugin if asked to (--plugin, --yes, or yes in the terminal)."""
        from server.cli.plugin_installer import default_plugin_dir, install_for  # noqa: PLC0415
        from server.config_file import load_owner_settings  # noqa: PLC0415

        directory: Path = self.args.plugin_dir or default_plugin_dir()
        wanted = self.args.plugin
        if wanted is None:
            question = f"Install the BetterDiscord plugin into {directory} now?"
            wanted = self.args.yes or (
                self.interactive and self.terminal.yes(question, default=True)
            )
        if not wanted:
            self.terminal.say("Install the plugin later with: discord-auto-reply plugin install")
            return
        installed = install_for(load_owner_settings(path), directory)
        self.terminal.say(f"Installed {installed}")


def run(args: argparse.Namespace) -> int:
    """`init` as parsed by server/cli/main.py; questions only when stdin is a terminal."""
    interactive = sys.stdin.isatty() and not args.yes
    return Setup(args, Terminal(), interactive=interactive).run()
