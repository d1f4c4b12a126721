// Drives `enigma lsp` through a whole session with
// vscode-languageserver-protocol, the JSON-RPC stack VS Code's language
// client is built on, and asserts every answer. Run by editors/tests/lsp.sh:
//
//   ENIGMA_BIN=target/debug/enigma node editors/tests/lsp-client/test.mjs
//
// Exits 0 when every step passed, 1 (naming the step) otherwise.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import rpcModule from "vscode-languageserver-protocol/node";

const rpc = rpcModule;

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.ENIGMA_BIN || "enigma";
const fixture = resolve(here, "..", "fixtures", "shape_error.enigma");
const uri = pathToFileURL(fixture).href;
const text = readFileSync(fixture, "utf8");
const lines = text.split("\n");

let failures = 0;
function check(step, ok, detail) {
  if (ok) {
    console.log(`ok   ${step}`);
  } else {
    failures += 1;
    console.log(`FAIL ${step}: ${detail}`);
  }
}

// The 0-based position of the `n`-th occurrence of `needle` on the line
// that contains `line`, plus `skip` characters.
function pos(line, needle, skip = 0) {
  const l = lines.findIndex((s) => s.includes(line));
  if (l < 0) throw new Error(`fixture has no line with ${line}`);
  return { line: l, character: lines[l].indexOf(needle) + skip };
}

const child = spawn(bin, ["lsp"], { stdio: ["pipe", "pipe", "inherit"] });
child.on("error", (e) => {
  console.log(`FAIL start: cannot run ${bin} lsp: ${e.message}`);
  process.exit(1);
});
const conn = rpc.createProtocolConnection(
  new rpc.StreamMessageReader(child.stdout),
  new rpc.StreamMessageWriter(child.stdin),
);
const published = new Map();
const waiters = [];
conn.onNotification(rpc.PublishDiagnosticsNotification.type, (p) => {
  published.set(p.uri, p.diagnostics);
  for (const w of waiters.splice(0)) w();
});
conn.listen();

function diagnosticsFor(u, timeoutMs = 10000) {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const look = () => {
      if (published.has(u)) return res(published.get(u));
      if (Date.now() - t0 > timeoutMs) return rej(new Error(`no diagnostics for ${u}`));
      waiters.push(look);
      setTimeout(look, 50);
    };
    look();
  });
}

const watchdog = setTimeout(() => {
  console.log("FAIL the session took longer than 60 s");
  child.kill();
  process.exit(1);
}, 60000);

try {
  const init = await conn.sendRequest(rpc.InitializeRequest.type, {
    processId: process.pid,
    rootUri: pathToFileURL(dirname(fixture)).href,
    capabilities: {},
    workspaceFolders: null,
  });
  const caps = init.capabilities;
  check(
    "initialize announces the features",
    caps.hoverProvider && caps.completionProvider && caps.definitionProvider &&
      caps.documentFormattingProvider && caps.semanticTokensProvider && caps.inlayHintProvider,
    JSON.stringify(caps),
  );
  await conn.sendNotification(rpc.InitializedNotification.type, {});

  const t0 = Date.now();
  await conn.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: "enigma", version: 1, text },
  });
  const diags = await diagnosticsFor(uri);
  const shape = diags.find((d) => d.code === "E0211");
  check(
    `the shape error is published (${Date.now() - t0} ms after didOpen)`,
    diags.length === 1 && shape && shape.range.start.line === pos("Head(width: 16)", "(h)").line,
    JSON.stringify(diags),
  );
  check(
    "the diagnostic carries the message of enigma check and its labels",
    shape && shape.message.startsWith("`x` needs `width` = `16` here") &&
      shape.severity === 1 && shape.source === "enigma" &&
      (shape.relatedInformation || []).some((r) => r.message === "declared here"),
    JSON.stringify(shape),
  );

  const hover = await conn.sendRequest(rpc.HoverRequest.type, {
    textDocument: { uri },
    position: pos("let h = Transformer", "h", 0),
  });
  const shown = hover && hover.contents && hover.contents.value;
  check("hover on a tensor shows its type with named dims", shown && shown.includes("d=32"), shown);

  const completion = await conn.sendRequest(rpc.CompletionRequest.type, {
    textDocument: { uri },
    position: pos("precision: f32", "precision"),
  });
  const labels = (Array.isArray(completion) ? completion : completion.items).map((c) => c.label);
  check(
    "completion in the train block offers the schema's keys not yet given",
    labels.includes("clip") && labels.includes("checkpoint") && !labels.includes("steps"),
    labels.join(", "),
  );

  const def = await conn.sendRequest(rpc.DefinitionRequest.type, {
    textDocument: { uri },
    position: pos("let h = Transformer", "Transformer", 2),
  });
  const target = Array.isArray(def) ? def[0] : def;
  let defText = "";
  if (target) {
    const stdLines = readFileSync(fileURLToPath(target.uri), "utf8").split("\n");
    defText = stdLines[target.range.start.line].slice(target.range.start.character, target.range.end.character);
  }
  check(
    "definition goes into the standard library's nn.enigma",
    target && target.uri.endsWith("/nn.enigma") && defText === "Transformer",
    JSON.stringify(def),
  );

  const messy = pathToFileURL(join(dirname(fixture), "messy.enigma")).href;
  await conn.sendNotification(rpc.DidOpenTextDocumentNotification.type, {
    textDocument: { uri: messy, languageId: "enigma", version: 1, text: "dim   d=64\n" },
  });
  const edits = await conn.sendRequest(rpc.DocumentFormattingRequest.type, {
    textDocument: { uri: messy },
    options: { tabSize: 2, insertSpaces: true },
  });
  check(
    "formatting returns the enigma fmt text",
    Array.isArray(edits) && edits.length === 1 && edits[0].newText === "dim d = 64\n",
    JSON.stringify(edits),
  );

  await conn.sendRequest(rpc.ShutdownRequest.type);
  await conn.sendNotification(rpc.ExitNotification.type);
  const code = await new Promise((res) => child.on("exit", (c) => res(c)));
  check("shutdown and exit end the server with status 0", code === 0, `exit status ${code}`);
} catch (e) {
  failures += 1;
  console.log(`FAIL ${e.stack || e}`);
  child.kill();
}
clearTimeout(watchdog);
console.log(failures === 0 ? "lsp client test: all steps passed" : `lsp client test: ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
