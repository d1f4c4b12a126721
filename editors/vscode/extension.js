// The Enigma extension: starts the enigma language server (`enigma lsp`,
// JSON-RPC over stdio) for `.enigma` files and restarts it on request or when
// its settings change. Syntax highlighting comes from the TextMate grammar
// declared in package.json and works without the server.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

const CLIENT_ID = 'enigma'; // vscode-languageclient reads `enigma.trace.server`
const CLIENT_NAME = 'Enigma Language Server';

/** @type {LanguageClient | undefined} */
let client;
/** @type {vscode.LogOutputChannel | undefined} */
let outputChannel;
/** @type {vscode.LogOutputChannel | undefined} */
let traceChannel;
/** @type {vscode.FileSystemWatcher | undefined} */
let watcher;
// Starts and stops run one after the other, never interleaved.
let queue = Promise.resolve();

function enqueue(task) {
  queue = queue.then(task, task);
  return queue;
}

function firstWorkspaceFolder() {
  const folders = vscode.workspace.workspaceFolders;
  return folders && folders.length > 0 && folders[0].uri.scheme === 'file'
    ? folders[0].uri.fsPath
    : undefined;
}

function isExecutableFile(file) {
  try {
    if (!fs.statSync(file).isFile()) return false;
    if (process.platform !== 'win32') fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path of the server binary for the `enigma.server.path` setting,
 * or undefined when there is no such executable file. A bare name is searched
 * on PATH (with PATHEXT on Windows); `~` and `${workspaceFolder}` are
 * expanded; a relative path is taken from the first workspace folder.
 */
function resolveServerPath(setting, env = process.env, platform = process.platform) {
  let p = (typeof setting === 'string' ? setting : '').trim() || 'enigma';
  const folder = firstWorkspaceFolder();
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\')) p = path.join(os.homedir(), p.slice(1));
  if (p.includes('${workspaceFolder}')) {
    if (!folder) return undefined;
    p = p.split('${workspaceFolder}').join(folder);
  }
  const exts = platform === 'win32'
    ? ['', ...(env.PATHEXT || '.COM;.EXE;.BAT;.CMD').split(';').filter(Boolean)]
    : [''];
  const withExt = (base) => exts.map((e) => base + e).find(isExecutableFile);
  if (p.includes('/') || (platform === 'win32' && p.includes('\\'))) {
    if (!path.isAbsolute(p)) {
      if (!folder) return undefined;
      p = path.join(folder, p);
    }
    return withExt(p);
  }
  const dirs = (env.PATH || env.Path || '').split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const found = withExt(path.join(dir, p));
    if (found) return found;
  }
  return undefined;
}

function serverSettings() {
  const config = vscode.workspace.getConfiguration('enigma');
  const extraArgs = config.get('server.extraArgs', []);
  return {
    path: config.get('server.path', 'enigma'),
    extraArgs: Array.isArray(extraArgs) ? extraArgs.filter((a) => typeof a === 'string') : [],
  };
}

async function showNotFound(setting) {
  const open = 'Open Settings';
  const choice = await vscode.window.showErrorMessage(
    `Enigma: cannot find the language server binary "${setting}" (setting enigma.server.path). ` +
      'Install enigma (cargo install --path . in the enigma repository) or set enigma.server.path ' +
      'to the enigma binary, for example target/release/enigma. Highlighting works without it.',
    open,
  );
  if (choice === open) {
    await vscode.commands.executeCommand('workbench.action.openSettings', 'enigma.server');
  }
}

async function startServer() {
  if (client) return;
  const settings = serverSettings();
  const command = resolveServerPath(settings.path);
  if (!command) {
    outputChannel.error(`cannot find the enigma binary "${settings.path}" (enigma.server.path)`);
    void showNotFound(settings.path);
    return;
  }
  const args = ['lsp', ...settings.extraArgs];
  outputChannel.info(`starting ${command} ${args.join(' ')}`);

  // No `transport`: the server speaks on stdin and stdout all the same, but
  // with `TransportKind.stdio` the client would append `--stdio` to the
  // command line, which `enigma lsp` does not take. The client runs the
  // server in the first workspace folder.
  const executable = { command, args };
  /** @type {import('vscode-languageclient/node').ServerOptions} */
  const serverOptions = { run: executable, debug: executable };
  /** @type {import('vscode-languageclient/node').LanguageClientOptions} */
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'enigma' },
      { scheme: 'untitled', language: 'enigma' },
    ],
    // Files that `use` another file see its changes even when it is not open.
    synchronize: { fileEvents: watcher },
    outputChannel,
    traceOutputChannel: traceChannel,
  };
  const next = new LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions, clientOptions);
  client = next;
  try {
    await next.start();
  } catch (err) {
    if (client === next) client = undefined;
    const message = err instanceof Error ? err.message : String(err);
    outputChannel.error(`the language server failed to start: ${message}`);
    void vscode.window
      .showErrorMessage(
        `Enigma: the language server (${command} ${args.join(' ')}) failed to start: ${message}. ` +
          'An enigma binary without the lsp command is too old: update it, or point enigma.server.path at a newer one.',
        'Show Output',
      )
      .then((choice) => { if (choice) outputChannel.show(); });
    try { await next.dispose(); } catch { /* already stopped */ }
  }
}

async function stopServer() {
  const current = client;
  client = undefined;
  if (!current) return;
  try {
    await current.stop();
  } catch (err) {
    outputChannel.warn(`stopping the language server: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function restartServer() {
  return enqueue(async () => {
    await stopServer();
    await startServer();
  });
}

/** @param {vscode.ExtensionContext} context */
function activate(context) {
  outputChannel = vscode.window.createOutputChannel(CLIENT_NAME, { log: true });
  // vscode-languageclient traces only while this channel's log level is Trace
  // (Output panel, gear menu, Set Log Level); `enigma.trace.server` then picks
  // `messages` or `verbose`.
  traceChannel = vscode.window.createOutputChannel(`${CLIENT_NAME} Trace`, { log: true });
  watcher = vscode.workspace.createFileSystemWatcher('**/*.enigma');
  context.subscriptions.push(
    outputChannel,
    traceChannel,
    watcher,
    vscode.commands.registerCommand('enigma.restartServer', restartServer),
    vscode.commands.registerCommand('enigma.showServerOutput', () => outputChannel.show()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      // `enigma.trace.server` is applied by the client itself, without a restart.
      if (e.affectsConfiguration('enigma.server')) void restartServer();
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void restartServer()),
  );
  return enqueue(startServer);
}

function deactivate() {
  return enqueue(stopServer);
}

module.exports = { activate, deactivate, resolveServerPath };
