//! Helpers shared by the test files that compare ASTs and comments.

use enigma::fmt::collect_comments;
use enigma::syntax::ast::File;

/// The AST as JSON with every span removed, to compare two parses.
pub fn shape(ast: &File) -> serde_json::Value {
    let mut v = serde_json::to_value(ast).expect("the AST serialises");
    strip_spans(&mut v);
    v
}

fn strip_spans(v: &mut serde_json::Value) {
    match v {
        // Spans are objects of exactly `start` and `end`, under `span` or
        // another key (`per_session`).
        serde_json::Value::Object(m)
            if m.len() == 2 && m.contains_key("start") && m.contains_key("end") =>
        {
            *v = serde_json::Value::Null;
        }
        serde_json::Value::Object(m) => {
            m.remove("span");
            m.values_mut().for_each(strip_spans);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_spans),
        _ => {}
    }
}

/// The texts of a source's ordinary comments, sorted (fmt may move a
/// comment but never drops one).
pub fn comments(text: &str) -> Vec<String> {
    let mut c: Vec<String> = collect_comments(text).into_iter().map(|c| c.text).collect();
    c.sort();
    c
}
