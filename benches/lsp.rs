//! The language server's answer time after an edit, on the 1B reference
//! (`examples/enigma_1b.enigma`), beside its peer: `enigma check` on the
//! same text (the driver without the types the server records).
//!
//! - `check`: what `enigma check` runs, in memory;
//! - `edit+hover`: a `didChange` of the whole document followed by a hover
//!   request, through an in-memory connection to a real server thread:
//!   the re-analysis the edit forces and the answer;
//! - `edit+completion` and `edit+semantic tokens`: the same with the two
//!   heaviest answers.
//!
//! After the timed runs it edits the document 2,000 more times and prints
//! the server process's resident memory before and after, which must not
//! grow with the length of the session.
//!
//! Run: `cargo bench --no-default-features --bench lsp`. Figures are
//! recorded in `docs/benchmarks.md`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use enigma::source::MemoryLoader;
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{json, Value};

const FILE: &str = "examples/enigma_1b.enigma";

struct Client {
    conn: Connection,
    next: i32,
    version: i32,
}

impl Client {
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = RequestId::from(self.next);
        let r = Request::new(id.clone(), method.to_string(), params);
        self.conn
            .sender
            .send(Message::Request(r))
            .expect("server alive");
        loop {
            match self.conn.receiver.recv_timeout(Duration::from_secs(60)) {
                Ok(Message::Response(resp)) if resp.id == id => {
                    return resp.response_result.unwrap_or(Value::Null)
                }
                Ok(_) => continue,
                Err(e) => panic!("no answer to {method}: {e}"),
            }
        }
    }

    fn notify(&self, method: &str, params: Value) {
        let n = Notification::new(method.to_string(), params);
        self.conn
            .sender
            .send(Message::Notification(n))
            .expect("server alive");
    }

    fn edit(&mut self, uri: &str, text: &str) {
        self.version += 1;
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": self.version },
                    "contentChanges": [{ "text": text }] }),
        );
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(FILE).expect("run from the repository root");
    let path = std::fs::canonicalize(FILE).expect("the reference exists");
    let uri = enigma::lsp::path_to_uri(&path).0;
    // A position inside the model, on a name with a tensor type.
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("let h").map(|c| (i, c + 4)))
        .expect("the reference binds `h`");

    c.bench_function("lsp/check (peer: enigma check)", |b| {
        b.iter(|| {
            let mut loader = MemoryLoader::new();
            loader.insert(path.clone(), text.as_bytes().to_vec());
            enigma::driver::compile(&loader, &path, &enigma::driver::Options::check())
        })
    });

    let (server, conn) = Connection::memory();
    let handle = std::thread::spawn(move || enigma::lsp::serve(server));
    let mut client = Client {
        conn,
        next: 0,
        version: 1,
    };
    client.request("initialize", json!({ "capabilities": {} }));
    client.notify("initialized", json!({}));
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "enigma", "version": 1, "text": text } }),
    );
    let at =
        json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": col } });
    let hover = client.request("textDocument/hover", at.clone());
    assert!(
        hover["contents"]["value"].is_string(),
        "hover answered {hover}"
    );

    // Alternating between two texts keeps every edit a real change.
    let edited = format!("{text}\n");
    let mut flip = false;
    let mut next_text = move || {
        flip = !flip;
        if flip {
            edited.clone()
        } else {
            text.clone()
        }
    };
    let mut timed = |name: &str, method: &str, params: &Value| {
        c.bench_function(name, |b| {
            b.iter(|| {
                let t = next_text();
                client.edit(&uri, &t);
                client.request(method, params.clone())
            })
        });
    };
    timed("lsp/edit+hover", "textDocument/hover", &at);
    timed("lsp/edit+completion", "textDocument/completion", &at);
    timed(
        "lsp/edit+semantic tokens",
        "textDocument/semanticTokens/full",
        &json!({ "textDocument": { "uri": uri } }),
    );

    let before = rss_kib();
    for i in 0..2000 {
        let t = next_text();
        client.edit(&uri, &t);
        if i % 100 == 0 {
            client.request("textDocument/hover", at.clone());
        }
    }
    client.request("textDocument/hover", at.clone());
    let after = rss_kib();
    println!("lsp/memory: resident {before} KiB before 2,000 edits, {after} KiB after");

    client.request("shutdown", Value::Null);
    client.notify("exit", Value::Null);
    let _ = handle.join();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
