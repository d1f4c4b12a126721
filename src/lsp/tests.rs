//! The server end to end over an in-memory connection: the client's side
//! of each exchange and what the server must answer.

use std::time::Duration;

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{json, Value};

/// A client talking to a server on its own thread.
struct Client {
    conn: Connection,
    server: Option<std::thread::JoinHandle<Result<(), crate::diagnostics::Error>>>,
    next: i32,
}

impl Client {
    fn start() -> Client {
        let (server, client) = Connection::memory();
        let handle = std::thread::spawn(move || super::serve(server));
        let mut c = Client {
            conn: client,
            server: Some(handle),
            next: 0,
        };
        let init = c.request("initialize", json!({ "capabilities": {} }));
        assert!(
            init["capabilities"]["hoverProvider"] == json!(true),
            "{init}"
        );
        c.notify("initialized", json!({}));
        c
    }

    fn notify(&self, method: &str, params: Value) {
        let n = Notification::new(method.to_string(), params);
        assert!(self.conn.sender.send(Message::Notification(n)).is_ok());
    }

    /// Sends a request and returns its result, skipping notifications.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = RequestId::from(self.next);
        let r = Request::new(id.clone(), method.to_string(), params);
        assert!(self.conn.sender.send(Message::Request(r)).is_ok());
        loop {
            match self.conn.receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(Message::Response(resp)) if resp.id == id => {
                    return match resp.response_result {
                        Ok(v) => v,
                        Err(e) => json!({ "error": e.message }),
                    }
                }
                Ok(_) => continue,
                Err(e) => panic!("no answer to {method}: {e}"),
            }
        }
    }

    /// Waits for the next diagnostics published for `uri`.
    fn diagnostics(&self, uri: &str) -> Vec<Value> {
        loop {
            match self.conn.receiver.recv_timeout(Duration::from_secs(30)) {
                Ok(Message::Notification(n))
                    if n.method == "textDocument/publishDiagnostics" && n.params["uri"] == uri =>
                {
                    return n.params["diagnostics"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                }
                Ok(_) => continue,
                Err(e) => panic!("no diagnostics for {uri}: {e}"),
            }
        }
    }

    fn stop(mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(h) = self.server.take() {
            assert!(matches!(h.join(), Ok(Ok(()))));
        }
    }
}

const BROKEN: &str = "dim d = 64\nmodule M()(x: [..., d]) -> [..., d] {\n  return y\n}\n";

#[test]
fn diagnostics_follow_edits_and_hover_answers() {
    let mut c = Client::start();
    let dir = std::env::temp_dir().join(format!("enigma-lsp-test-{}", std::process::id()));
    let path = dir.join("m.enigma");
    let uri = super::path_to_uri(&path).0;
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "enigma", "version": 1, "text": BROKEN } }),
    );
    let diags = c.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "E0105");
    assert_eq!(diags[0]["message"], "unknown name `y`");
    assert_eq!(
        diags[0]["range"]["start"],
        json!({ "line": 2, "character": 9 })
    );
    assert_eq!(diags[0]["severity"], 1);

    // An incremental edit fixes it: `y` becomes `x`.
    c.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri, "version": 2 },
            "contentChanges": [{
                "range": { "start": { "line": 2, "character": 9 }, "end": { "line": 2, "character": 10 } },
                "text": "x"
            }]
        }),
    );
    assert_eq!(c.diagnostics(&uri), Vec::<Value>::new());

    let hover = c.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": 8 } }),
    );
    let shown = hover["contents"]["value"].as_str().unwrap_or("");
    assert!(
        shown.contains("module M()(x: [..., d]) -> [..., d]"),
        "{hover}"
    );

    let formatted = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert!(formatted.is_array(), "{formatted}");

    let unknown = c.request("textDocument/moniker", json!({}));
    assert!(unknown["error"]
        .as_str()
        .is_some_and(|e| e.contains("moniker")));
    c.stop();
}

#[test]
fn references_and_rename_reach_the_open_files_that_import_a_module() {
    let mut c = Client::start();
    let dir = std::env::temp_dir().join(format!("enigma-lsp-xfile-{}", std::process::id()));
    let lib = super::path_to_uri(&dir.join("blocks.enigma")).0;
    let main = super::path_to_uri(&dir.join("main.enigma")).0;
    let lib_text =
        "/// An encoder.\nmodule Enc(d: dim)(x: [..., d]) -> [..., d] {\n  return x\n}\n";
    let main_text = "use blocks::{Enc}\ndim d = 8\nmodule Twice(d: dim)(x: [..., d]) -> [..., d] {\n  return Enc(d: d)(Enc(d: d)(x))\n}\n";
    for (uri, text) in [(&lib, lib_text), (&main, main_text)] {
        c.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "enigma", "version": 1, "text": text } }),
        );
        assert_eq!(c.diagnostics(uri), Vec::<Value>::new(), "{uri}");
    }
    // From the definition in blocks.enigma: the import and both uses in
    // main.enigma, which only main.enigma's own analysis sees.
    let at = json!({
        "textDocument": { "uri": lib },
        "position": { "line": 1, "character": 8 },
        "context": { "includeDeclaration": true }
    });
    let refs = c.request("textDocument/references", at.clone());
    let Some(refs) = refs.as_array() else {
        panic!("no references: {refs}")
    };
    let in_main = refs.iter().filter(|r| r["uri"] == main.as_str()).count();
    let in_lib = refs.iter().filter(|r| r["uri"] == lib.as_str()).count();
    assert_eq!((in_lib, in_main), (1, 3), "{refs:?}");

    let mut rename = at;
    rename["newName"] = json!("Encoder");
    let edit = c.request("textDocument/rename", rename);
    let changes = &edit["changes"];
    assert_eq!(
        changes[lib.as_str()].as_array().map(Vec::len),
        Some(1),
        "{edit}"
    );
    assert_eq!(
        changes[main.as_str()].as_array().map(Vec::len),
        Some(3),
        "{edit}"
    );

    // Editing the imported file checks its importer again: main.enigma now
    // imports a name blocks.enigma no longer defines.
    c.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": lib, "version": 2 },
            "contentChanges": [{ "text": lib_text.replace("Enc(", "Encoder(") }]
        }),
    );
    let diags = c.diagnostics(&main);
    assert!(diags.iter().any(|d| d["code"] == "E0102"), "{diags:?}");
    c.stop();
}

#[test]
fn an_import_changed_on_disk_is_read_again() {
    let c = Client::start();
    let dir = std::env::temp_dir().join(format!("enigma-lsp-disk-{}", std::process::id()));
    assert!(std::fs::create_dir_all(&dir).is_ok());
    let lib_path = dir.join("blocks.enigma");
    let lib_text = "module Enc(d: dim)(x: [..., d]) -> [..., d] {\n  return x\n}\n";
    assert!(std::fs::write(&lib_path, lib_text).is_ok());
    let main = super::path_to_uri(&dir.join("main.enigma")).0;
    let main_text = "use blocks::{Enc}\ndim d = 8\nmodule Twice(d: dim)(x: [..., d]) -> [..., d] {\n  return Enc(d: d)(x)\n}\n";
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": main, "languageId": "enigma", "version": 1, "text": main_text } }),
    );
    assert_eq!(c.diagnostics(&main), Vec::<Value>::new());
    assert!(std::fs::write(&lib_path, lib_text.replace("Enc(", "Encoder(")).is_ok());
    let lib = super::path_to_uri(&lib_path).0;
    c.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": lib, "type": 2 }] }),
    );
    let diags = c.diagnostics(&main);
    assert!(diags.iter().any(|d| d["code"] == "E0102"), "{diags:?}");
    let _ = std::fs::remove_dir_all(&dir);
    c.stop();
}
