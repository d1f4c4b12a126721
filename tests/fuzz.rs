//! Property-based fuzzing of the front end: arbitrary bytes, and
//! grammar-shaped mutations of the examples and stdlib (token insertions,
//! deletions, duplications, swaps and truncations).
//!
//! A third family keeps the examples well-formed and changes their values
//! instead: numbers replaced by others (zero, odd sizes, huge values,
//! units) and names swapped for other names of the same file, so mutants
//! get through the parser and stress the checker's shape rules.
//!
//! Properties: parsing, resolving, checking and formatting never panic, nor
//! do the language server's queries at any position; and whenever
//! a mutant parses, formatting it is idempotent, keeps its AST (up to spans)
//! and keeps every comment. Raise `PROPTEST_CASES` for a longer run.

mod common;

use common::{comments, shape};
use enigma::base::FileId;
use enigma::fmt::format;
use enigma::source::MemoryLoader;
use enigma::syntax::{decode, parse};
use proptest::prelude::*;

/// Tokens that look like the language, so mutants reach deep into the
/// grammar instead of failing at the first byte.
const TOKENS: &[&str] = &[
    "use",
    "std",
    "::",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ",",
    ";",
    ":",
    "=",
    "->",
    "@",
    "|",
    "..",
    "...",
    ".",
    "+",
    "-",
    "*",
    "/",
    "**",
    "%",
    "==",
    "!=",
    "<=",
    ">=",
    "and",
    "or",
    "not",
    "dim",
    "let",
    "data",
    "modality",
    "from",
    "tokenizer",
    "fn",
    "module",
    "model",
    "param",
    "predict",
    "return",
    "loss",
    "metric",
    "train",
    "parallel",
    "if",
    "else",
    "true",
    "false",
    "per",
    "session",
    "x",
    "d",
    "T",
    "N",
    "Linear",
    "f32",
    "video",
    "2s",
    "30Hz",
    "8Hz",
    "1e-3",
    "50_257",
    "80GB",
    "0.5",
    "\"s\"",
    "\"",
    "//c\n",
    "/*c*/",
    "/*",
    "*/",
    "///d\n",
    "//!m\n",
    "\n",
    " ",
    "\t",
    "\u{e9}",
    "\u{ff}",
];

fn corpus() -> &'static [String] {
    static CORPUS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(load_corpus)
}

fn load_corpus() -> Vec<String> {
    let mut texts = Vec::new();
    for dir in ["examples", "stdlib"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "enigma"))
            .collect();
        paths.sort();
        texts.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    }
    texts
}

#[derive(Clone, Debug)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Swap(usize, usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), 1usize..80).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
        (any::<usize>(), any::<usize>(), 1usize..30).prop_map(|(a, b, n)| Mutation::Swap(a, b, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, m: &Mutation) {
    if text.is_empty() {
        text.push_str("dim d = 1\n");
    }
    let len = text.len();
    match *m {
        Mutation::Insert(at, t) => {
            let at = floor(text, at % (len + 1));
            text.insert_str(at, TOKENS[t]);
        }
        Mutation::Delete(at, n) => {
            let a = floor(text, at % len);
            let b = floor(text, a + n);
            text.replace_range(a..b, "");
        }
        Mutation::Duplicate(at, n) => {
            let a = floor(text, at % len);
            let b = floor(text, a + n);
            let piece = text[a..b].to_string();
            text.insert_str(b, &piece);
        }
        Mutation::Swap(x, y, n) => {
            let (mut a, mut b) = (floor(text, x % len), floor(text, y % len));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            let a2 = floor(text, (a + n).min(b));
            let b2 = floor(text, b + n);
            let first = text[a..a2].to_string();
            let second = text[b..b2].to_string();
            text.replace_range(b..b2, &first);
            text.replace_range(a..a2, &second);
        }
        Mutation::Truncate(at) => {
            let at = floor(text, at % (len + 1));
            text.truncate(at);
        }
    }
}

/// Runs the whole front end on `bytes` and checks the properties.
fn exercise(bytes: &[u8]) {
    let mut loader = MemoryLoader::new();
    loader.insert("main.enigma", bytes.to_vec());
    let a = enigma::driver::compile(
        &loader,
        std::path::Path::new("main.enigma"),
        &enigma::driver::Options::check(),
    )
    .expect("the file is in memory");
    let program = &a.program;
    for d in &a.diagnostics {
        // Rendering must not panic either, whatever the spans.
        let _ = enigma::diagnostics::render::human(d, &program.sources, Default::default());
        let _ = enigma::diagnostics::render::json(d, &program.sources);
    }
    query_everywhere(&loader);
    let Ok(text) = decode(bytes, FileId(0)) else {
        return;
    };
    let Ok(ast) = parse(text, FileId(0)) else {
        return;
    };
    let once = format(text, FileId(0)).expect("a file that parses formats");
    let reparsed = parse(&once, FileId(0)).expect("formatted output parses");
    // The messages show the texts, not the (huge) ASTs.
    assert!(
        shape(&reparsed) == shape(&ast),
        "fmt changed the AST of:\n{text}\n--- formatted:\n{once}"
    );
    assert!(
        comments(&once) == comments(text),
        "fmt lost a comment of:\n{text}\n--- formatted:\n{once}"
    );
    let twice = format(&once, FileId(0)).expect("formatted output formats");
    assert_eq!(twice, once, "fmt is not idempotent on:\n{text}");
}

/// The editor's queries at a spread of positions, and the whole-file ones:
/// none may panic, whatever the text.
fn query_everywhere(loader: &MemoryLoader) {
    use enigma::base::Span;
    use enigma::ide::{complete, fixes, hover, navigate, tokens, Analysis};
    let path = std::path::Path::new("main.enigma");
    let a = Analysis::new(loader, path, Default::default()).expect("the file is in memory");
    let file = a.root();
    let text = a.text(file);
    let whole = Span::new(0, text.len());
    let step = (text.len() / 8).max(1);
    for offset in (0..=text.len())
        .step_by(step)
        .filter(|o| text.is_char_boundary(*o))
    {
        let _ = hover::hover(&a, file, offset);
        let _ = complete::complete(&a, file, offset);
        let _ = complete::signature_help(&a, file, offset);
        let _ = navigate::references(&a, file, offset, true);
        let _ = navigate::rename(&a, file, offset, "renamed");
    }
    let _ = tokens::semantic_tokens(&a, file);
    let _ = tokens::inlay_hints(&a, file, whole);
    let _ = navigate::symbols(&a, file);
    let _ = fixes::quick_fixes(&a, file, whole);
}

/// Numbers a value mutation may write.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "16",
    "64",
    "1000",
    "9223372036854775807",
    "2s",
    "8Hz",
    "0.5",
    "1e30",
];

/// Replaces the `k`-th number of `text` with `NUMBERS[v]`, or the `k`-th
/// name with the `v`-th name, keeping the file parseable most of the time.
fn retype(text: &str, k: usize, v: usize, names: bool) -> String {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let word = c.is_ascii_alphabetic() || c == b'_';
        if (names && word) || (!names && c.is_ascii_digit()) {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b'.' && !names)
            {
                i += 1;
            }
            spans.push((start, i));
        } else if word || c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    let (a, b) = spans[k % spans.len()];
    let with = if names {
        let (x, y) = spans[v % spans.len()];
        &text[x..y]
    } else {
        NUMBERS[v % NUMBERS.len()]
    };
    format!("{}{}{}", &text[..a], with, &text[b..])
}

proptest! {
    #[test]
    fn retyped_examples(pick in any::<usize>(), edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 1..4)) {
        let corpus = corpus();
        let mut text = corpus[pick % corpus.len()].clone();
        for (k, v, names) in &edits {
            text = retype(&text, *k, *v, *names);
        }
        exercise(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_token_soup(tokens in proptest::collection::vec(0..TOKENS.len(), 0..200)) {
        let text: String = tokens.iter().map(|&t| TOKENS[t]).collect::<Vec<_>>().join(" ");
        exercise(text.as_bytes());
    }

    #[test]
    fn mutated_examples(pick in any::<usize>(), ms in proptest::collection::vec(mutation(), 1..5)) {
        let corpus = corpus();
        let mut text = corpus[pick % corpus.len()].clone();
        for m in &ms {
            apply(&mut text, m);
        }
        exercise(text.as_bytes());
    }
}
