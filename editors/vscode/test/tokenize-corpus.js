// Tokenizes every .enigma file of the repository's examples/ and stdlib/ (or
// the files and directories given as arguments) with the TextMate grammar, as
// VS Code does, and fails when a file does not end at the top level (a string,
// comment or block the grammar never closes would colour the rest of the
// file) or when a line is slow to tokenize (a regular expression that
// backtracks). Run: node test/tokenize-corpus.js [PATH...]
'use strict';

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const ext = path.resolve(__dirname, '..');
const repo = path.resolve(ext, '..', '..');
const SLOW_LINE_MS = 200;

function enigmaFiles(p) {
  const stat = fs.statSync(p);
  if (stat.isFile()) return [p];
  return fs.readdirSync(p, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? enigmaFiles(path.join(p, e.name))
      : e.name.endsWith('.enigma') ? [path.join(p, e.name)] : []))
    .sort();
}

async function main() {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scope) => {
      if (scope !== 'source.enigma') return null;
      const file = path.join(ext, 'syntaxes', 'enigma.tmLanguage.json');
      return vsctm.parseRawGrammar(fs.readFileSync(file, 'utf8'), file);
    },
  });
  const grammar = await registry.loadGrammar('source.enigma');

  const roots = process.argv.length > 2
    ? process.argv.slice(2).map((p) => path.resolve(p))
    : [path.join(repo, 'examples'), path.join(repo, 'stdlib')];
  const files = roots.flatMap(enigmaFiles);
  const problems = [];
  let lines = 0;
  let tokens = 0;
  const started = Date.now();
  for (const file of files) {
    const rel = path.relative(repo, file);
    const text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
    // A last empty line closes what a blank line closes (a modality's transforms).
    const fileLines = (text.endsWith('\n') ? text : text + '\n').split(/\r?\n/);
    let state = vsctm.INITIAL;
    fileLines.forEach((line, i) => {
      const t0 = Date.now();
      const result = grammar.tokenizeLine(line, state);
      const ms = Date.now() - t0;
      if (ms > SLOW_LINE_MS) problems.push(`${rel}:${i + 1}: took ${ms} ms to tokenize`);
      tokens += result.tokens.length;
      state = result.ruleStack;
    });
    lines += fileLines.length;
    if (state.depth !== 1) {
      problems.push(`${rel}: the file ends inside an unclosed region (rule stack depth ${state.depth})`);
    }
  }
  if (files.length === 0) problems.push(`no .enigma files under ${roots.join(', ')}`);
  for (const p of problems) console.log(`FAIL ${p}`);
  console.log(`tokenized ${files.length} files (${lines} lines, ${tokens} tokens) in ${Date.now() - started} ms`
    + (problems.length ? `: ${problems.length} problems` : ''));
  process.exit(problems.length ? 1 : 0);
}

main().catch((err) => { console.error(err); process.exit(1); });
