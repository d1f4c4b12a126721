#!/usr/bin/env bash
# Tests the tree-sitter grammar in editors/tree-sitter-enigma/.
#
#   editors/tests/tree-sitter.sh
#
# 1. Installs tree-sitter-cli (pinned below) with cargo into
#    $ENIGMA_TOOLS_DIR/tree-sitter-<version> (default ~/.cache/enigma/tools)
#    if it is not there yet. Nothing is downloaded except crates through cargo.
# 2. Regenerates the parser from grammar.js in a temporary copy, with
#    `--abi 14`, and fails if the committed src/ differs from the result.
# 3. Runs `tree-sitter test`: the corpus in test/corpus/ and the highlight
#    assertions in test/highlight/.
# 4. Parses every .enigma file under examples/ and stdlib/ and fails, naming
#    the file, if a tree has an ERROR or MISSING node.
# 5. Runs every query in queries/ over a file, so each one must compile.
# 6. Builds the shared library with `tree-sitter build`, and, when `nvim` is
#    on PATH, checks that Neovim loads it and compiles the queries.
#
# The CLI's configuration and its cache of compiled parsers go to a
# temporary directory, so the user's ~/.config/tree-sitter is neither read
# nor written. Needs: cargo (for the first install), a C compiler, bash.
set -euo pipefail

TS_VERSION=0.27.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
grammar="$root/editors/tree-sitter-enigma"
tools="${ENIGMA_TOOLS_DIR:-$HOME/.cache/enigma/tools}"
ts_root="$tools/tree-sitter-$TS_VERSION"
ts="$ts_root/bin/tree-sitter"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "tree-sitter: FAILED: $*" >&2
  exit 1
}

# --- 1. The CLI ---------------------------------------------------------------
if [[ ! -x "$ts" ]]; then
  echo "tree-sitter-cli $TS_VERSION is not in $ts_root: installing it with cargo (the first install takes ~4.5 min on 2 idle cores)"
  command -v cargo >/dev/null || fail "cargo is needed to install tree-sitter-cli"
  mkdir -p "$tools"
  # A target directory of its own, so that a CARGO_TARGET_DIR set for the
  # project is neither used nor locked.
  build_dir="$tools/.build-tree-sitter-$TS_VERSION"
  CARGO_TARGET_DIR="$build_dir" cargo install "tree-sitter-cli@$TS_VERSION" \
    --locked --quiet --root "$ts_root" || fail "cargo install tree-sitter-cli@$TS_VERSION"
  rm -rf "$build_dir"
fi
version="$("$ts" --version)"
[[ "$version" == "tree-sitter $TS_VERSION" ]] ||
  fail "$ts reports '$version', expected tree-sitter $TS_VERSION"

export TREE_SITTER_DIR="$tmp/config"
export TREE_SITTER_LIBDIR="$tmp/lib"
mkdir -p "$TREE_SITTER_DIR" "$TREE_SITTER_LIBDIR" "$tmp/no-parsers"
# An (empty) parser directory keeps the CLI from warning that none is set.
printf '{"parser-directories": ["%s"]}\n' "$tmp/no-parsers" >"$TREE_SITTER_DIR/config.json"

# --- 2. The committed parser is generated from grammar.js ---------------------
# QuickJS, built into the CLI, evaluates grammar.js: node is not needed, and
# the output is the same as with node.
gen="$tmp/generate"
mkdir -p "$gen/src"
cp "$grammar/grammar.js" "$grammar/tree-sitter.json" "$grammar/package.json" "$gen/"
cp "$grammar/src/scanner.c" "$gen/src/"
(cd "$gen" && "$ts" generate --abi 14 --js-runtime native) >"$tmp/generate.log" 2>&1 || {
  cat "$tmp/generate.log" >&2
  fail "tree-sitter generate"
}
if ! diff -rq "$gen/src" "$grammar/src" >"$tmp/stale.txt" 2>&1; then
  cat "$tmp/stale.txt" >&2
  fail "editors/tree-sitter-enigma/src/ is not what grammar.js generates; run \`tree-sitter generate --abi 14\` in editors/tree-sitter-enigma and commit src/"
fi
grep -q '^#define LANGUAGE_VERSION 14$' "$grammar/src/parser.c" ||
  fail "src/parser.c is not ABI 14 (Neovim 0.7-0.9 load only ABI 13-14)"

# --- 3. Corpus and highlight tests --------------------------------------------
if ! (cd "$grammar" && "$ts" test) >"$tmp/test.log" 2>&1; then
  cat "$tmp/test.log" >&2
  fail "tree-sitter test"
fi
tests_passed="$(grep -c '✓' "$tmp/test.log" || true)"

# --- 4. Every example and standard-library file parses cleanly ----------------
files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(
  find "$root/examples" "$root/stdlib" -name '*.enigma' -print0 | sort -z
)
[[ ${#files[@]} -gt 0 ]] || fail "no .enigma files found under examples/ and stdlib/"
# With --quiet, the CLI prints one line for each file whose tree has an
# ERROR or MISSING node, and exits 1 if there is any.
if ! (cd "$grammar" && "$ts" parse --quiet "${files[@]}") >"$tmp/parse.log" 2>&1 ||
  grep -q 'ERROR\|MISSING' "$tmp/parse.log"; then
  cat "$tmp/parse.log" >&2
  fail "these files do not parse without an ERROR or MISSING node: $(
    grep -o '^[^[:space:]]*\.enigma' "$tmp/parse.log" | sed "s|^$root/||" | tr '\n' ' ' | sed 's/ $//'
  )"
fi

# --- 5. Every query compiles --------------------------------------------------
queries=("$grammar"/queries/*.scm)
for q in "${queries[@]}"; do
  (cd "$grammar" && "$ts" query "$q" "$root/examples/quickstart.enigma") >"$tmp/query.log" 2>&1 || {
    cat "$tmp/query.log" >&2
    fail "query ${q#"$root"/} does not compile"
  }
done

# --- 6. The shared library builds (and loads in Neovim, where there is one) ---
(cd "$grammar" && "$ts" build -o "$tmp/enigma.so") >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log" >&2
  fail "tree-sitter build"
}
[[ -s "$tmp/enigma.so" ]] || fail "tree-sitter build wrote no library"

nvim_result="nvim not found, load check skipped"
if command -v nvim >/dev/null; then
  cat >"$tmp/check.lua" <<'EOF'
-- Loads the library, parses a file and compiles and runs every query.
-- Written for Neovim 0.7 and later (the API moved in 0.9).
local so, dir, file = os.getenv("ENIGMA_SO"), os.getenv("ENIGMA_TS"), os.getenv("ENIGMA_FILE")
local ts = vim.treesitter
local function out(s) io.stdout:write(s .. "\n") end
local ok, err = pcall(function()
  if ts.language and ts.language.add then
    local added, msg = ts.language.add("enigma", { path = so })
    if added == nil and msg then error(msg) end
  else
    ts.require_language("enigma", so)
  end
  local parse_query = (ts.query and ts.query.parse) or ts.parse_query
  local src = table.concat(vim.fn.readfile(file), "\n")
  local root = ts.get_string_parser(src, "enigma"):parse()[1]:root()
  if root:has_error() then error("the tree of " .. file .. " has an error") end
  for _, q in ipairs(vim.fn.glob(dir .. "/queries/*.scm", false, true)) do
    local query = parse_query("enigma", table.concat(vim.fn.readfile(q), "\n"))
    for _ in query:iter_captures(root, src, 0, -1) do end
  end
end)
if ok then out("ok") else out("error: " .. tostring(err)); vim.cmd("cquit 1") end
EOF
  nvim_version="$(nvim --version | head -n 1)"
  if nvim_out="$(ENIGMA_SO="$tmp/enigma.so" ENIGMA_TS="$grammar" ENIGMA_FILE="$root/examples/quickstart.enigma" \
    timeout 60 nvim --headless -u NONE -i NONE -c "luafile $tmp/check.lua" -c 'qall!' 2>&1)" &&
    [[ "$nvim_out" == *ok* ]]; then
    nvim_result="$nvim_version loads it"
  else
    echo "$nvim_out" >&2
    fail "$nvim_version cannot load the parser or its queries"
  fi
fi

echo "tree-sitter: OK: src/ up to date (ABI 14), $tests_passed corpus and highlight tests passed, ${#files[@]} example and stdlib files parsed cleanly, ${#queries[@]} queries compile, enigma.so built; $nvim_result"
