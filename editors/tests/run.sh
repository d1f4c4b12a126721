#!/usr/bin/env bash
# Every editor check, in order: the language server through a real protocol
# client (lsp.sh), headless Neovim with the plugin (nvim.sh), the
# tree-sitter grammar (tree-sitter.sh) and the VS Code extension with its
# TextMate grammar (vscode.sh). `./dev.sh test` runs this as one step.
#
#   ENIGMA_BIN=path editors/tests/run.sh   (default: target/debug/enigma)
#
# Each script installs what it needs the first time, cached (see
# docs/editors.md, "Testing"); every one must pass.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
failed=()
for t in lsp nvim tree-sitter vscode; do
    echo "editors: $t.sh"
    if ! "$HERE/$t.sh"; then
        failed+=("$t.sh")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "editors: failed: ${failed[*]}" >&2
    exit 1
fi
echo "editors: all four checks passed"
