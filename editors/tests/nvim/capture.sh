#!/usr/bin/env bash
# Captures a real Neovim session with the plugin for docs/images/: Neovim runs
# in a detached 110x32 tmux pane with editors/tests/nvim/init.lua (only the
# plugin), opens fixtures/shape_error.enigma and
#   1. goes to line 28 (`28G`, `zz`) and opens the diagnostic float
#      (`:lua vim.diagnostic.open_float()`), then
#   2. puts the cursor on `h` in line 27 (`27G`, `^`, `w`) and asks for hover
#      (`:lua vim.lsp.buf.hover()`).
# Each screen is captured with `tmux capture-pane -p` (text, for
# docs/images/nvim-session.txt) and `-p -e` (with colours, for the PNG, drawn
# by render_png.py when Python has Pillow).
#
#   ENIGMA_BIN=path ENIGMA_TS_DIR=dir editors/tests/nvim/capture.sh [OUT_DIR]
#
# ENIGMA_TS_DIR (optional): a folder with parser/enigma.so and queries/, for
# tree-sitter highlighting. Needs tmux and nvim. Not part of the tests.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
BIN=${ENIGMA_BIN:-$ROOT/target/debug/enigma}
OUT=${1:-$ROOT/docs/images}
[ -x "$BIN" ] || { echo "capture.sh: no enigma binary at $BIN" >&2; exit 1; }
command -v tmux >/dev/null || { echo "capture.sh: tmux is not installed" >&2; exit 1; }
command -v nvim >/dev/null || { echo "capture.sh: nvim is not installed" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
mkdir -p "$OUT"

tmp=$(mktemp -d)
sock="enigma-capture-$$"
t() { tmux -L "$sock" "$@"; }
trap 't kill-server 2>/dev/null || true; rm -rf "$tmp"' EXIT

version=$(nvim --version | head -1)
cd "$ROOT"
t -f /dev/null new-session -d -s cap -x 110 -y 32 \
    "env TERM=tmux-256color XDG_CACHE_HOME=$tmp XDG_STATE_HOME=$tmp XDG_DATA_HOME=$tmp \
     ENIGMA_BIN=$BIN ENIGMA_TS_DIR=${ENIGMA_TS_DIR:-} \
     nvim -u editors/tests/nvim/init.lua -i NONE editors/tests/fixtures/shape_error.enigma"
# Without this tmux holds an Escape for 500 ms and sends it together with the
# next key, which Neovim then reads as Alt+key.
t set-option -s escape-time 0

# wait_for TEXT: until the screen shows TEXT (10 s at most).
wait_for() {
    for _ in $(seq 100); do
        t capture-pane -p -t cap | grep -qF -- "$1" && return 0
        sleep 0.1
    done
    echo "capture.sh: the screen never showed '$1':" >&2
    t capture-pane -p -t cap >&2
    exit 1
}
keys() { t send-keys -t cap "$@"; sleep 0.3; }
grab() { # grab NAME: the screen as text and with escapes
    t capture-pane -p -t cap | sed 's/[[:space:]]*$//' >"$tmp/$1.txt"
    t capture-pane -p -e -t cap >"$tmp/$1.ansi"
}

wait_for "needs \`width\`"          # the diagnostic's virtual text
keys 28G; keys zz
keys ':lua vim.diagnostic.open_float()' Enter
wait_for "Diagnostics:"
grab diagnostic

keys Escape; keys 27G; keys ^; keys w
keys ':lua vim.lsp.buf.hover()' Enter
wait_for "────"                     # the hover float's separator
sleep 0.3
grab hover
t kill-server

pkg=$(dpkg-query -W -f '${Version}' neovim 2>/dev/null || true)
[ -n "$pkg" ] && version="$version (Debian package neovim $pkg)"
ts_note=""
[ -n "${ENIGMA_TS_DIR:-}" ] && ts_note=" Colours in the .png: the plugin's tree-sitter highlighting (parser built from editors/tree-sitter-enigma)."
cap1="1. $version: nvim -u editors/tests/nvim/init.lua editors/tests/fixtures/shape_error.enigma, then 28G zz and :lua vim.diagnostic.open_float() - the E0211 sign, virtual text and float from enigma lsp.$ts_note"
cap2="2. The same session: 27G ^ w (cursor on h), then :lua vim.lsp.buf.hover() - the type of h, with d=32."
{
    echo "A real Neovim session with the enigma plugin (editors/nvim), a 110x32 tmux pane captured with"
    echo "tmux capture-pane -p. Made by editors/tests/nvim/capture.sh."
    echo
    echo "$cap1"
    echo
    cat "$tmp/diagnostic.txt"
    echo
    echo "$cap2"
    echo
    cat "$tmp/hover.txt"
} >"$OUT/nvim-session.txt"
echo "capture.sh: wrote $OUT/nvim-session.txt"

if python3 -c 'import PIL' 2>/dev/null; then
    python3 "$HERE/render_png.py" "$OUT/nvim-session.png" "$cap1" "$tmp/diagnostic.ansi" "$cap2" "$tmp/hover.ansi"
    echo "capture.sh: wrote $OUT/nvim-session.png"
else
    echo "capture.sh: no PNG (python3 has no Pillow: pip install pillow)"
fi
