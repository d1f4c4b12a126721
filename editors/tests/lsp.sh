#!/usr/bin/env bash
# The language server driven by a real protocol client: Node's
# vscode-languageserver-protocol (the stack VS Code's client uses) runs
# lsp-client/test.mjs against `enigma lsp`, asserting every answer.
#
#   editors/tests/lsp.sh            uses target/debug/enigma
#   ENIGMA_BIN=path editors/tests/lsp.sh
#
# Needs node and npm (Debian: nodejs, npm); installs the one npm package
# (about 2 s) the first time and whenever package-lock.json changes.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${ENIGMA_BIN:-$ROOT/target/debug/enigma}
[ -x "$BIN" ] || { echo "lsp.sh: no enigma binary at $BIN (build it first, or set ENIGMA_BIN)" >&2; exit 1; }
cd "$HERE/lsp-client"
stamp=node_modules/.enigma-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
    echo "lsp.sh: installing vscode-languageserver-protocol (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json "$stamp"
fi
ENIGMA_BIN="$BIN" timeout 120 node test.mjs
