#!/usr/bin/env bash
# Tests of the VS Code extension in editors/vscode, without VS Code itself
# (which cannot be downloaded in CI):
#
#   1. npm ci, only when node_modules is missing or package.json or
#      package-lock.json changed since the last run (a stamp in node_modules);
#   2. node --check extension.js, and the grammar is what
#      editors/tools/gen_tmlanguage.py generates;
#   3. extension.js against stand-ins for the VS Code API (test/extension.test.js);
#   4. the TextMate scope tests test/syntax/*.enigma (vscode-tmgrammar-test),
#      and a deliberately wrong assertion must fail;
#   5. every .enigma file of examples/ and stdlib/ tokenizes and ends at the
#      top level (test/tokenize-corpus.js);
#   6. npm run package builds a .vsix in a temporary directory; it must hold
#      the manifest, extension.js, the grammar and every runtime dependency,
#      nothing from test/ or the dev dependencies, and its extension.js must
#      load vscode-languageclient from the packaged node_modules.
#
# Needs node (20 or newer), npm and python3; the npm registry for the first
# npm ci only. Usage: editors/tests/vscode.sh (from any directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ext="$root/editors/vscode"
started=$SECONDS

fail() { echo "vscode.sh: $*" >&2; exit 1; }
for tool in node npm python3; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 20 )) || fail "node 20 or newer is required (found $(node --version))"

export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$ext"

# 1. Dependencies.
stamp=node_modules/.enigma-npm-ci-stamp
want="$(node -e '
  const c = require("crypto").createHash("sha256");
  for (const f of ["package.json", "package-lock.json"]) c.update(require("fs").readFileSync(f));
  console.log(c.digest("hex") + " node " + process.versions.node.split(".")[0]);')"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  ci_started=$SECONDS
  npm ci --loglevel=error
  echo "$want" > "$stamp"
  echo "npm ci: $((SECONDS - ci_started)) s"
fi
bin=node_modules/.bin

# 2. Syntax of extension.js; the grammar is up to date with its generator.
node --check extension.js
(cd "$root" && python3 editors/tools/gen_tmlanguage.py --check) >/dev/null 2>&1 \
  || fail "editors/vscode/syntaxes/enigma.tmLanguage.json is stale: run python3 editors/tools/gen_tmlanguage.py"

# 3. extension.js against stand-ins for the VS Code API.
node test/extension.test.js > "$tmp/extension.log" || { cat "$tmp/extension.log"; fail "extension tests failed"; }
ext_tests="$(sed -n 's|^\([0-9]*\)/[0-9]* extension tests passed$|\1|p' "$tmp/extension.log")"

# 4. Scope tests.
"$bin/vscode-tmgrammar-test" -c -g syntaxes/enigma.tmLanguage.json 'test/syntax/*.enigma' > "$tmp/tm.log" 2>&1 \
  || { cat "$tmp/tm.log"; fail "TextMate scope tests failed"; }
syntax_files="$(ls test/syntax/*.enigma | wc -l | tr -d ' ')"
assertions="$(cat test/syntax/*.enigma | grep -cE '^// +(\^|<[~-])')"
# The runner must be able to fail: a wrong scope on a known token.
mkdir "$tmp/wrong"
printf '%s\n' '// SYNTAX TEST "source.enigma" "must fail"' 'dim d = 64' '// <--- keyword.not-this.enigma' > "$tmp/wrong/wrong.enigma"
if "$bin/vscode-tmgrammar-test" -g syntaxes/enigma.tmLanguage.json "$tmp/wrong/wrong.enigma" > "$tmp/wrong.log" 2>&1; then
  cat "$tmp/wrong.log"; fail "vscode-tmgrammar-test accepted a wrong scope"
fi

# 5. The examples and the standard library tokenize.
node test/tokenize-corpus.js > "$tmp/corpus.log" || { cat "$tmp/corpus.log"; fail "tokenizing examples/ and stdlib/ failed"; }
corpus="$(sed -n 's/^tokenized \([0-9]*\) files.*/\1/p' "$tmp/corpus.log")"

# 6. The package.
vsix="$tmp/enigma.vsix"
npm run --silent package -- --out "$vsix" > "$tmp/package.log" 2>&1 || { cat "$tmp/package.log"; fail "npm run package failed"; }
[[ -f "$vsix" ]] || fail "npm run package wrote no .vsix"
[[ -z "$(ls ./*.vsix 2>/dev/null)" ]] || fail "a .vsix was left in editors/vscode"
python3 - "$vsix" "$tmp/unpacked" > "$tmp/vsix.summary" <<'EOF'
import json, sys, zipfile
vsix, out = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(vsix)
names = set(z.namelist())
problems = []
required = ["extension.vsixmanifest", "extension/package.json", "extension/extension.js",
            "extension/readme.md", "extension/language-configuration.json",
            "extension/syntaxes/enigma.tmLanguage.json"]
# Every package the extension needs at run time (not "dev" in the lock file).
lock = json.load(open("package-lock.json"))
runtime = sorted(k for k, v in lock["packages"].items() if k.startswith("node_modules/") and not v.get("dev"))
if "node_modules/vscode-languageclient" not in runtime:
    problems.append("vscode-languageclient is not a runtime dependency in package-lock.json")
required += [f"extension/{k}/package.json" for k in runtime]
problems += [f"missing {n}" for n in required if n not in names]
dev = [k for k, v in lock["packages"].items() if k.startswith("node_modules/") and v.get("dev")]
for n in sorted(names):
    if n.startswith("extension/test/") or n.endswith((".vsix", "package-lock.json")) \
            or any(part.startswith(".") for part in n.split("/")) \
            or any(n.startswith(f"extension/{d}/") for d in dev):
        problems.append(f"should not be packaged: {n}")
manifest = json.loads(z.read("extension/package.json"))
if manifest.get("main") != "./extension.js":
    problems.append(f"packaged main is {manifest.get('main')!r}")
if problems:
    sys.exit("bad .vsix:\n  " + "\n  ".join(problems))
z.extractall(out)
size = sum(i.file_size for i in z.infolist())
print(f"{len(names)} files, {size // 1024} KiB unpacked, {len(runtime)} runtime packages")
EOF
# The packaged extension.js loads vscode-languageclient from the packaged node_modules.
node - "$tmp/unpacked/extension" <<'EOF'
const Module = require('module');
const path = require('path');
const dir = process.argv[2];
const anything = () => new Proxy(function () {}, {
  get: (_t, k) => (k === Symbol.toPrimitive ? () => 0 : k === 'prototype' ? {} : anything()),
  construct: () => anything(),
  apply: () => anything(),
});
const stub = anything();
const load = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === 'vscode') return stub;
  const resolved = Module._resolveFilename(request, parent, isMain);
  if (path.isAbsolute(resolved) && !resolved.startsWith(dir)) {
    throw new Error(`the packaged extension loaded ${resolved} from outside the package`);
  }
  return load.call(this, request, parent, isMain);
};
const extension = require(path.join(dir, 'extension.js'));
for (const f of ['activate', 'deactivate']) {
  if (typeof extension[f] !== 'function') throw new Error(`the packaged extension.js exports no ${f}`);
}
EOF

echo "vscode: ok: ${ext_tests} extension tests, ${assertions} scope assertions in ${syntax_files} files," \
  "${corpus} example and stdlib files tokenized, .vsix $(cat "$tmp/vsix.summary") ($((SECONDS - started)) s)"
