//! `enigma lsp`: the language server, a thin protocol layer over
//! [`crate::ide`].
//!
//! The server is synchronous (rust-analyzer's `lsp-server` scaffold): one
//! thread owns the state and reads messages in order. Edits mark their
//! document, and every open document that imports it, as dirty; the
//! analyses are redone once no edit has come for [`DEBOUNCE`], or at once
//! when a request needs them, so a burst of keystrokes costs one check.
//! Each open document is analysed as the root of its own program (the
//! driver on in-memory sources: open buffers first, then the disk), and
//! gets the diagnostics whose primary label is in it.
//!
//! The standard library is written once to a read-only directory in the
//! user's cache and read from there, so go to definition into `std::nn`
//! opens a real file the editor can show (and the server refuses to
//! rename in).
//!
//! - `convert.rs`: offsets, positions and URIs;
//! - `handlers.rs`: one function per request;
//! - `stdlib.rs`: the read-only copy of the standard library.
//!
//! Memory: the server keeps the text and one analysis per open document
//! and nothing else; closing a document drops both.

mod convert;
mod handlers;
mod stdlib;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use lsp_types::Notification as _;

use crate::diagnostics::{Error, ErrorKind};
use crate::ide::Analysis;
use crate::resolve::{Options as ResolveOptions, Stdlib};
use crate::source::{FsLoader, SourceLoader};

pub use convert::{path_to_uri, uri_to_path, LineIndex};

/// How long the server waits after an edit before checking again.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// An open document.
#[derive(Debug)]
struct Document {
    text: String,
    version: i32,
}

/// The server's state.
pub struct Server {
    conn: Connection,
    docs: BTreeMap<PathBuf, Document>,
    analyses: BTreeMap<PathBuf, Analysis>,
    dirty: BTreeSet<PathBuf>,
    deadline: Option<Instant>,
    resolve: ResolveOptions,
}

/// A broken connection to the editor (E0510).
fn broken(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Editor, format!("{what}: {e}"))
}

/// Runs the server on stdin and stdout until the client says `exit`.
pub fn run_stdio() -> Result<(), Error> {
    let (conn, threads) = Connection::stdio();
    serve(conn)?;
    threads
        .join()
        .map_err(|e| broken("the language server's stdin or stdout failed", e))
}

/// Runs the server on a connection (stdio, or in memory for tests).
pub fn serve(conn: Connection) -> Result<(), Error> {
    let (id, _params) = conn
        .initialize_start()
        .map_err(|e| broken("the client did not initialize", e))?;
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": { "name": "enigma", "version": env!("CARGO_PKG_VERSION") },
    });
    conn.initialize_finish(id, result)
        .map_err(|e| broken("the client did not finish initializing", e))?;
    let resolve = ResolveOptions {
        stdlib: stdlib::materialize().map_or(Stdlib::Embedded, Stdlib::Dir),
    };
    let mut server = Server {
        conn,
        docs: BTreeMap::new(),
        analyses: BTreeMap::new(),
        dirty: BTreeSet::new(),
        deadline: None,
        resolve,
    };
    server.main_loop()
}

/// What the server offers, announced at initialization.
fn capabilities() -> serde_json::Value {
    let legend_types: Vec<&str> = crate::ide::tokens::TokenKind::ALL
        .iter()
        .map(|k| k.lsp_name())
        .collect();
    serde_json::json!({
        "positionEncoding": "utf-16",
        "textDocumentSync": { "openClose": true, "change": 2, "save": { "includeText": false } },
        "hoverProvider": true,
        "completionProvider": { "triggerCharacters": [":", "(", ",", " ", "."] },
        "signatureHelpProvider": { "triggerCharacters": ["(", ","], "retriggerCharacters": [","] },
        "definitionProvider": true,
        "referencesProvider": true,
        "renameProvider": { "prepareProvider": true },
        "documentFormattingProvider": true,
        "documentSymbolProvider": true,
        "codeActionProvider": { "codeActionKinds": ["quickfix"] },
        "inlayHintProvider": true,
        "semanticTokensProvider": {
            "legend": {
                "tokenTypes": legend_types,
                "tokenModifiers": handlers::TOKEN_MODIFIERS,
            },
            "full": true,
        },
    })
}

/// Reads open buffers first, then the disk.
struct Overlay<'s> {
    docs: &'s BTreeMap<PathBuf, Document>,
}

impl SourceLoader for Overlay<'_> {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.docs.get(path) {
            Some(d) => Ok(d.text.clone().into_bytes()),
            None => FsLoader.read(path),
        }
    }

    fn is_file(&self, path: &Path) -> bool {
        self.docs.contains_key(path) || FsLoader.is_file(path)
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        if self.docs.contains_key(path) {
            return path.to_path_buf();
        }
        FsLoader.canonical(path)
    }

    fn read_prefix(&self, path: &Path, max: usize) -> io::Result<Vec<u8>> {
        FsLoader.read_prefix(path, max)
    }

    fn len(&self, path: &Path) -> Option<u64> {
        FsLoader.len(path)
    }

    fn probe(
        &self,
        path: &Path,
        format: crate::source::probe::DataFormat,
    ) -> Result<crate::source::probe::DataHeader, crate::source::probe::ProbeError> {
        FsLoader.probe(path, format)
    }
}

impl Server {
    fn main_loop(&mut self) -> Result<(), Error> {
        loop {
            let msg = match self.deadline {
                Some(at) => match self.conn.receiver.recv_deadline(at) {
                    Ok(m) => Some(m),
                    Err(crossbeam_timeout) if crossbeam_timeout.is_timeout() => None,
                    Err(_) => return Ok(()),
                },
                None => match self.conn.receiver.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Ok(()),
                },
            };
            let Some(msg) = msg else {
                self.flush();
                continue;
            };
            match msg {
                Message::Request(req) => {
                    if self
                        .conn
                        .handle_shutdown(&req)
                        .map_err(|e| broken("the client's shutdown failed", e))?
                    {
                        return Ok(());
                    }
                    self.flush();
                    let response = handlers::request(self, req);
                    self.send(Message::Response(response));
                }
                Message::Notification(n) => self.notification(n),
                Message::Response(_) => {}
            }
        }
    }

    fn send(&self, msg: Message) {
        // A closed connection ends the main loop at the next receive.
        let _ = self.conn.sender.send(msg);
    }

    fn notification(&mut self, n: Notification) {
        use lsp_types::{
            DidChangeTextDocumentNotification as Change, DidCloseTextDocumentNotification as Close,
            DidOpenTextDocumentNotification as Open, TextDocumentContentChangeEvent as Event,
        };
        let method = n.method.clone();
        let method = method.as_str();
        if method == Open::METHOD.as_str() {
            let Ok(p) = n.extract::<lsp_types::DidOpenTextDocumentParams>(method) else {
                return;
            };
            let Some(path) = uri_to_path(&p.text_document.uri) else {
                return;
            };
            self.docs.insert(
                path.clone(),
                Document {
                    text: p.text_document.text,
                    version: p.text_document.version,
                },
            );
            // Opening is when the user looks: no debounce.
            self.touch(&path);
            self.flush();
        } else if method == Change::METHOD.as_str() {
            let Ok(p) = n.extract::<lsp_types::DidChangeTextDocumentParams>(method) else {
                return;
            };
            let Some(path) = uri_to_path(&p.text_document.text_document_identifier.uri) else {
                return;
            };
            let Some(doc) = self.docs.get_mut(&path) else {
                return;
            };
            for change in p.content_changes {
                match change {
                    Event::TextDocumentContentChangeWholeDocument(w) => doc.text = w.text,
                    Event::TextDocumentContentChangePartial(c) => {
                        let span = LineIndex::new(&doc.text).span(c.range);
                        doc.text.replace_range(span.range(), &c.text);
                    }
                }
            }
            doc.version = p.text_document.version;
            self.touch(&path);
            self.deadline = Some(Instant::now() + DEBOUNCE);
        } else if method == lsp_types::DidChangeWatchedFilesNotification::METHOD.as_str() {
            // A file changed on disk (the client watches `*.enigma`): the
            // open documents that import it read it again.
            let Ok(p) = n.extract::<lsp_types::DidChangeWatchedFilesParams>(method) else {
                return;
            };
            for change in p.changes {
                if let Some(path) = uri_to_path(&change.uri) {
                    if !self.docs.contains_key(&path) {
                        self.touch(&path);
                    }
                }
            }
            self.deadline = Some(Instant::now() + DEBOUNCE);
        } else if method == Close::METHOD.as_str() {
            let Ok(p) = n.extract::<lsp_types::DidCloseTextDocumentParams>(method) else {
                return;
            };
            let Some(path) = uri_to_path(&p.text_document.uri) else {
                return;
            };
            self.docs.remove(&path);
            self.analyses.remove(&path);
            self.dirty.remove(&path);
            self.publish(&path, Vec::new(), None);
            // The files that imported it now read it from the disk.
            self.touch(&path);
        }
    }

    /// Marks `path` and every open document whose program reads it.
    fn touch(&mut self, path: &Path) {
        if self.docs.contains_key(path) {
            self.dirty.insert(path.to_path_buf());
        }
        for (root, a) in &self.analyses {
            if a.file_at(path).is_some() {
                self.dirty.insert(root.clone());
            }
        }
    }

    /// Analyses the dirty documents again and publishes their diagnostics.
    fn flush(&mut self) {
        self.deadline = None;
        let dirty = std::mem::take(&mut self.dirty);
        for path in dirty {
            let Some(version) = self.docs.get(&path).map(|d| d.version) else {
                continue;
            };
            let loader = Overlay { docs: &self.docs };
            match Analysis::new(&loader, &path, self.resolve.clone()) {
                Ok(a) => {
                    let diags = handlers::diagnostics(&a, a.root());
                    self.analyses.insert(path.clone(), a);
                    self.publish(&path, diags, Some(version));
                }
                Err(e) => {
                    self.analyses.remove(&path);
                    self.log(&format!("enigma lsp: {e}"));
                }
            }
        }
    }

    fn publish(&self, path: &Path, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) {
        let params = lsp_types::PublishDiagnosticsParams {
            uri: path_to_uri(path),
            version,
            diagnostics,
        };
        let method = lsp_types::PublishDiagnosticsNotification::METHOD.as_str();
        self.send(Message::Notification(Notification::new(
            method.to_string(),
            params,
        )));
    }

    fn log(&self, message: &str) {
        let params = serde_json::json!({ "type": 3, "message": message });
        let method = lsp_types::LogMessageNotification::METHOD.as_str();
        self.send(Message::Notification(Notification::new(
            method.to_string(),
            params,
        )));
    }

    /// The analysis that holds `path`: its own when it is open, otherwise
    /// the first open document's program that loaded it (a standard
    /// library file reached by go to definition).
    fn analysis_for(&self, path: &Path) -> Option<(&Analysis, crate::base::FileId)> {
        if let Some(a) = self.analyses.get(path) {
            return Some((a, a.root()));
        }
        self.analyses
            .values()
            .find_map(|a| a.file_at(path).map(|f| (a, f)))
    }
}

/// An error response for a request that cannot be answered.
fn error(id: RequestId, message: String) -> Response {
    Response::new_err(id, lsp_server::ErrorCode::RequestFailed as i32, message)
}

/// Extracts typed parameters, or an error response.
fn params<R: lsp_types::Request>(req: Request) -> Result<(RequestId, R::Params), Response> {
    let id = req.id.clone();
    req.extract::<R::Params>(R::METHOD.as_str()).map_err(|e| {
        Response::new_err(
            id,
            lsp_server::ErrorCode::InvalidParams as i32,
            format!("{e:?}"),
        )
    })
}

#[cfg(test)]
mod tests;
