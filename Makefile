# Two commands: `make run` sets up and runs the server, `make test` sets up and runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Extras installed by `make run`: g4f is the no-key fallback backend, macro the GUI messenger.
EXTRAS ?= g4f
comma := ,
RUN_STAMP := $(VENV)/.installed-run-$(subst $(comma),-,$(EXTRAS))

.PHONY: run test node lint typecheck pytest node-test system-deps bench soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@

config.json: | $(RUN_STAMP)
	$(BIN)/discord-auto-reply init --config $@

run: $(RUN_STAMP) config.json
	$(BIN)/discord-auto-reply serve --config config.json --reply-config reply_config.py

# Xvfb, xclip and Tk for the GUI macro test (a real window); Chromium for the plugin in a browser.
system-deps:
	@missing=""; \
	command -v Xvfb >/dev/null || missing="$$missing xvfb"; \
	command -v xclip >/dev/null || missing="$$missing xclip"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	$(PYTHON) -c "import tkinter" 2>/dev/null || missing="$$missing python3-tk"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check server tests bench
	$(BIN)/ruff format --check server tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy server

# NODE: the plugin-installer tests evaluate the installed plugin file with it. Two processes, a
# file each at a time (its module fixtures and order kept): the tests mostly wait, not compute.
pytest: $(VENV)/.installed-test system-deps node
	NODE="$$(bash tests/plugin/node.sh | cut -d' ' -f1)" $(BIN)/pytest -n 2 --dist loadfile

# A Node with a WebSocket for the plugin tests (22+, or 20.10+ with a flag): checked first, so an
# old one is reported before anything runs; fetched into .cache/node when there is none.
node: | $(BIN)/python
	@node=$$(bash tests/plugin/node.sh --install "$(BIN)/python") && \
	echo "plugin tests will use Node $$($${node%% *} --version): $$node"

# The plugin suite twice: over the WebSocket, then with loopback WebSockets blocked as Chromium's
# Local Network Access does, so the plugin falls back to HTTP through BdApi.Net.fetch. Two files
# at a time (Node's default is one fewer than the cores: one on two), each with its own server.
node-test: $(VENV)/.installed-test system-deps node
	@node=$$(bash tests/plugin/node.sh) && set -x && \
	PYTHON="$(abspath $(BIN)/python)" DAR_TRANSPORT=websocket $$node --test --test-concurrency=2 tests/plugin/*.test.js && \
	PYTHON="$(abspath $(BIN)/python)" DAR_TRANSPORT=http $$node --test --test-concurrency=2 tests/plugin/*.test.js

test: node lint typecheck pytest node-test

# Benchmarks are run by hand (the relay, then each command's start-to-exit time); figures are
# quoted in docs/performance.md.
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.relay_bench
	$(BIN)/python -m bench.command_latency

# The soak: 1,000 messages through the real server under LLM and Discord faults and 10 kill -9.
soak: $(VENV)/.installed-test
	$(BIN)/python -m bench.soak
