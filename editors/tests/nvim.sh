#!/usr/bin/env bash
# The Neovim plugin in editors/nvim/ driven by a real Neovim, headless:
# nvim/drive.lua puts the plugin on 'runtimepath', calls
# require("enigma").setup{ cmd = { ENIGMA_BIN, "lsp" } }, opens
# fixtures/shape_error.enigma and checks filetype detection, the ftplugin,
# the one diagnostic (E0211, line 28) and hover on `h` (line 27, shows d=32).
#
#   editors/tests/nvim.sh            uses target/debug/enigma
#   ENIGMA_BIN=path editors/tests/nvim.sh
#   NVIM=path editors/tests/nvim.sh  another Neovim (default: nvim on PATH)
#   ENIGMA_TS_DIR=dir editors/tests/nvim.sh
#                                    also load the tree-sitter parser from
#                                    dir/parser/enigma.so and dir/queries/
#
# The CI client is Debian 12's Neovim 0.7.2 (`apt-get install -y neovim`),
# which exercises the plugin's 0.7 path (vim.lsp.start_client). If nvim is
# missing and this runs as root on Debian, the script installs that package;
# otherwise it stops with a message. Nothing else is installed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${ENIGMA_BIN:-$ROOT/target/debug/enigma}
NVIM=${NVIM:-nvim}
[ -x "$BIN" ] || { echo "nvim.sh: no enigma binary at $BIN (build it first, or set ENIGMA_BIN)" >&2; exit 1; }
"$BIN" lsp --help >/dev/null 2>&1 || { echo "nvim.sh: $BIN has no \`lsp\` command (rebuild it, or set ENIGMA_BIN)" >&2; exit 1; }

if ! command -v "$NVIM" >/dev/null 2>&1; then
    if [ "$NVIM" = nvim ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ]; then
        echo "nvim.sh: nvim not found; installing Debian's neovim package (apt-get install -y neovim)"
        # A fresh container has no package lists: read them once, then retry.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq neovim >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq neovim >/dev/null; }
        command -v nvim >/dev/null 2>&1 || { echo "nvim.sh: apt-get installed neovim, but nvim is not on PATH" >&2; exit 1; }
    else
        echo "nvim.sh: '$NVIM' not found; install Neovim 0.7 or later (Debian/Ubuntu: apt-get install neovim) or set NVIM" >&2
        exit 1
    fi
fi

BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
cd "$ROOT"
# -u NONE: no user config or plugins; -i NONE: no shada file. XDG_* point at
# a temporary directory so the user's state (LSP log included) is untouched.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
ENIGMA_ROOT="$ROOT" ENIGMA_BIN="$BIN" ENIGMA_TS_DIR="${ENIGMA_TS_DIR:-}" \
XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state" XDG_CACHE_HOME="$tmp/cache" \
    timeout 60 "$NVIM" --headless -u NONE -i NONE -c "luafile $HERE/nvim/drive.lua" </dev/null || status=$?
if [ "$status" = 124 ]; then
    echo "nvim.sh: FAILED: Neovim did not finish within 60 s" >&2
fi
exit "$status"
