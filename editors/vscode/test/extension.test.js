// Unit test of extension.js without VS Code (which cannot be downloaded in
// CI): `vscode` and `vscode-languageclient/node` are replaced by recording
// fakes, then activation, the missing-binary error, the restart command and
// the restart on a settings change are checked. Run: node test/extension.test.js
'use strict';

const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');

const root = path.resolve(__dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'enigma-ext-test-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

// --- fakes -----------------------------------------------------------------

const log = [];
let settings = {};
let workspaceFolders;
const commands = new Map();
const configListeners = [];
let errorChoice;

const channel = (name) => ({
  name, lines: [],
  info(m) { this.lines.push(m); }, warn(m) { this.lines.push(m); }, error(m) { this.lines.push(m); },
  show() { log.push(['show', name]); }, dispose() {},
});

const vscode = {
  window: {
    createOutputChannel: (name, opts) => {
      assert.deepStrictEqual(opts, { log: true }, 'vscode-languageclient needs log output channels');
      return channel(name);
    },
    showErrorMessage: (message, ...items) => {
      log.push(['error', message, items]);
      return Promise.resolve(errorChoice);
    },
  },
  workspace: {
    get workspaceFolders() { return workspaceFolders; },
    getConfiguration: (section) => {
      assert.strictEqual(section, 'enigma');
      return { get: (key, dflt) => (key in settings ? settings[key] : dflt) };
    },
    onDidChangeConfiguration: (f) => { configListeners.push(f); return { dispose() {} }; },
    onDidGrantWorkspaceTrust: () => ({ dispose() {} }),
    createFileSystemWatcher: (glob) => ({ glob, dispose() {} }),
  },
  commands: {
    registerCommand: (id, f) => { commands.set(id, f); return { dispose() {} }; },
    executeCommand: (...args) => { log.push(['command', ...args]); return Promise.resolve(); },
  },
};

let clients = [];
let failStart = false;
class FakeLanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    Object.assign(this, { id, name, serverOptions, clientOptions, started: false, stopped: false });
    clients.push(this);
  }
  async start() {
    if (failStart) throw new Error('spawn failed');
    this.started = true;
  }
  async stop() { this.stopped = true; }
  async dispose() { this.stopped = true; }
}

const realLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (request === 'vscode') return vscode;
  if (request === 'vscode-languageclient/node') {
    return { LanguageClient: FakeLanguageClient, TransportKind: { stdio: 0, ipc: 1, pipe: 2, socket: 3 } };
  }
  return realLoad.call(this, request, parent, isMain);
};
const ext = require(path.join(root, 'extension.js'));
Module._load = realLoad;

// --- helpers ---------------------------------------------------------------

function executable(dir, name) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  fs.writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return file;
}
const tick = () => new Promise((r) => setTimeout(r, 10));
const context = () => ({ subscriptions: [] });
function changeConfig(...keys) {
  const e = { affectsConfiguration: (s) => keys.some((k) => k === s || k.startsWith(s + '.')) };
  configListeners.forEach((f) => f(e));
}
function reset() {
  log.length = 0; clients = []; settings = {}; commands.clear(); configListeners.length = 0;
  failStart = false; errorChoice = undefined; workspaceFolders = undefined;
}

// --- tests -----------------------------------------------------------------

const tests = [];
const test = (name, f) => tests.push([name, f]);

test('resolveServerPath finds a bare name on PATH, and nothing else', () => {
  const bin = path.join(tmp, 'bin');
  const enigma = executable(bin, 'enigma');
  fs.writeFileSync(path.join(bin, 'not-executable'), '', { mode: 0o644 });
  const env = { PATH: ['/nonexistent', bin].join(path.delimiter) };
  assert.strictEqual(ext.resolveServerPath('enigma', env, 'linux'), enigma);
  assert.strictEqual(ext.resolveServerPath('  ', env, 'linux'), enigma, 'an empty setting means enigma');
  assert.strictEqual(ext.resolveServerPath('missing', env, 'linux'), undefined);
  assert.strictEqual(ext.resolveServerPath('not-executable', env, 'linux'), undefined);
  assert.strictEqual(ext.resolveServerPath('enigma', { PATH: '' }, 'linux'), undefined);
  assert.strictEqual(ext.resolveServerPath(enigma, { PATH: '' }, 'linux'), enigma, 'an absolute path');
  assert.strictEqual(ext.resolveServerPath(bin, { PATH: '' }, 'linux'), undefined, 'a directory is not a binary');
});

test('resolveServerPath takes relative paths and ${workspaceFolder} from the workspace', () => {
  const ws = path.join(tmp, 'ws');
  const built = executable(path.join(ws, 'target', 'release'), 'enigma');
  workspaceFolders = undefined;
  assert.strictEqual(ext.resolveServerPath('target/release/enigma', {}, 'linux'), undefined);
  workspaceFolders = [{ uri: { scheme: 'file', fsPath: ws } }];
  assert.strictEqual(ext.resolveServerPath('target/release/enigma', {}, 'linux'), built);
  assert.strictEqual(ext.resolveServerPath('./target/release/enigma', {}, 'linux'), built);
  assert.strictEqual(ext.resolveServerPath('${workspaceFolder}/target/release/enigma', {}, 'linux'), built);
  assert.strictEqual(ext.resolveServerPath('~/surely/not/there/enigma', {}, 'linux'), undefined);
});

test('activation starts `<path> lsp` (stdin and stdout) for enigma files', async () => {
  const bin = path.join(tmp, 'bin2');
  const enigma = executable(bin, 'enigma');
  const savedPath = process.env.PATH;
  process.env.PATH = bin;
  try {
    await ext.activate(context());
  } finally {
    process.env.PATH = savedPath;
  }
  assert.strictEqual(clients.length, 1);
  const c = clients[0];
  assert.strictEqual(c.id, 'enigma', 'the id makes the client read enigma.trace.server');
  assert.ok(c.started);
  for (const mode of ['run', 'debug']) {
    assert.strictEqual(c.serverOptions[mode].command, enigma);
    assert.deepStrictEqual(c.serverOptions[mode].args, ['lsp']);
    // With a transport the client would append `--stdio`, which `enigma lsp` rejects;
    // without one it talks over stdin and stdout and passes the arguments as they are.
    assert.strictEqual(c.serverOptions[mode].transport, undefined);
  }
  assert.deepStrictEqual(c.clientOptions.documentSelector, [
    { scheme: 'file', language: 'enigma' },
    { scheme: 'untitled', language: 'enigma' },
  ]);
  assert.strictEqual(c.clientOptions.synchronize.fileEvents.glob, '**/*.enigma');
  assert.ok(c.clientOptions.outputChannel && c.clientOptions.traceOutputChannel);
  assert.ok(commands.has('enigma.restartServer'));
  assert.ok(commands.has('enigma.showServerOutput'));
  assert.strictEqual(log.filter((l) => l[0] === 'error').length, 0);
  await ext.deactivate();
  assert.ok(c.stopped);
});

test('a missing binary gives a clear error and offers the settings', async () => {
  settings = { 'server.path': 'enigma-does-not-exist' };
  errorChoice = 'Open Settings';
  await ext.activate(context());
  await tick();
  assert.strictEqual(clients.length, 0, 'no client without a binary');
  const errors = log.filter((l) => l[0] === 'error');
  assert.strictEqual(errors.length, 1);
  assert.match(errors[0][1], /cannot find the language server binary "enigma-does-not-exist"/);
  assert.match(errors[0][1], /enigma\.server\.path/);
  assert.deepStrictEqual(errors[0][2], ['Open Settings']);
  assert.deepStrictEqual(log.find((l) => l[0] === 'command'), ['command', 'workbench.action.openSettings', 'enigma.server']);
  await ext.deactivate();
});

test('a server that fails to start is reported', async () => {
  const enigma = executable(path.join(tmp, 'bin3'), 'enigma');
  settings = { 'server.path': enigma };
  failStart = true;
  await ext.activate(context());
  await tick();
  const errors = log.filter((l) => l[0] === 'error');
  assert.strictEqual(errors.length, 1);
  assert.match(errors[0][1], /failed to start: spawn failed/);
  // Once the binary works, the restart command starts it.
  failStart = false;
  await commands.get('enigma.restartServer')();
  assert.strictEqual(clients.length, 2);
  assert.ok(clients[1].started);
  await ext.deactivate();
});

test('restart command and settings changes restart the server; trace changes do not', async () => {
  const enigma = executable(path.join(tmp, 'bin4'), 'enigma');
  settings = { 'server.path': enigma, 'server.extraArgs': ['--stdlib', 'stdlib'] };
  await ext.activate(context());
  assert.strictEqual(clients.length, 1);
  assert.deepStrictEqual(clients[0].serverOptions.run.args, ['lsp', '--stdlib', 'stdlib']);

  await commands.get('enigma.restartServer')();
  assert.strictEqual(clients.length, 2);
  assert.ok(clients[0].stopped && clients[1].started && !clients[1].stopped);

  changeConfig('enigma.trace.server', 'enigma');
  await tick();
  assert.strictEqual(clients.length, 2, 'enigma.trace.server is applied by the client itself');

  const other = executable(path.join(tmp, 'bin5'), 'enigma');
  settings['server.path'] = other;
  changeConfig('enigma.server.path', 'enigma.server', 'enigma');
  await tick();
  assert.strictEqual(clients.length, 3);
  assert.ok(clients[1].stopped);
  assert.strictEqual(clients[2].serverOptions.run.command, other);

  // Two quick changes: the restarts run one after the other, one client is left running.
  changeConfig('enigma.server.extraArgs', 'enigma.server', 'enigma');
  changeConfig('enigma.server.extraArgs', 'enigma.server', 'enigma');
  await tick();
  assert.strictEqual(clients.filter((c) => c.started && !c.stopped).length, 1);
  await ext.deactivate();
  assert.ok(clients.every((c) => c.stopped));
});

test('package.json declares what extension.js relies on', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.strictEqual(pkg.main, './extension.js');
  assert.deepStrictEqual(pkg.activationEvents, ['onLanguage:enigma']);
  const props = pkg.contributes.configuration.properties;
  assert.strictEqual(props['enigma.server.path'].default, 'enigma');
  assert.deepStrictEqual(props['enigma.trace.server'].enum, ['off', 'messages', 'verbose']);
  assert.ok(props['enigma.server.extraArgs']);
  const ids = pkg.contributes.commands.map((c) => c.command).sort();
  assert.deepStrictEqual(ids, ['enigma.restartServer', 'enigma.showServerOutput']);
  // Pinned exactly, and our engine is at least what the client library needs.
  for (const deps of [pkg.dependencies, pkg.devDependencies]) {
    for (const [name, version] of Object.entries(deps)) assert.match(version, /^\d+\.\d+\.\d+$/, `${name} is pinned`);
  }
  const lc = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/vscode-languageclient/package.json'), 'utf8'));
  assert.strictEqual(lc.version, pkg.dependencies['vscode-languageclient']);
  assert.strictEqual(pkg.engines.vscode, lc.engines.vscode, 'engines.vscode matches vscode-languageclient');
});

test('the pinned vscode-languageclient/node exports what extension.js uses', () => {
  // Load the real library against a permissive stand-in for `vscode`.
  const anything = () => new Proxy(function () {}, {
    get: (_t, k) => (k === Symbol.toPrimitive ? () => 0 : k === 'prototype' ? {} : anything()),
    construct: () => anything(),
    apply: () => anything(),
  });
  const stub = anything();
  const load = Module._load;
  Module._load = function (request, parent, isMain) {
    return request === 'vscode' ? stub : load.call(this, request, parent, isMain);
  };
  try {
    const lc = Module.createRequire(path.join(root, 'extension.js'))('vscode-languageclient/node');
    assert.strictEqual(typeof lc.LanguageClient, 'function');
  } finally {
    Module._load = load;
  }
});

(async () => {
  let failed = 0;
  for (const [name, f] of tests) {
    reset();
    try {
      await f();
      console.log(`ok   ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}\n${err && err.stack}`);
    }
  }
  console.log(`${tests.length - failed}/${tests.length} extension tests passed`);
  process.exit(failed ? 1 : 0);
})();
