//! Every example and stdlib file checks cleanly, is already in canonical
//! layout, and survives the formatter: `parse(fmt(x))` equals `parse(x)` up
//! to spans, `fmt` is idempotent, and every comment is kept.

use std::path::{Path, PathBuf};

mod common;

use common::comments;
use enigma::base::FileId;
use enigma::fmt::format;
use enigma::resolve::{self, Options, Stdlib};
use enigma::source::FsLoader;
use enigma::syntax::parse;

fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "enigma"))
        .collect();
    files.sort();
    files
}

fn all_sources() -> Vec<PathBuf> {
    let mut v = files_in("examples");
    v.extend(files_in("stdlib"));
    assert!(v.len() >= 10, "examples and stdlib are present");
    v
}

/// The AST of `text`, spans removed.
fn shape(text: &str) -> serde_json::Value {
    common::shape(&parse(text, FileId(0)).expect("parses"))
}

#[test]
fn examples_and_stdlib_check_cleanly() {
    for path in all_sources() {
        let a =
            enigma::driver::compile(&FsLoader, &path, &enigma::driver::Options::check()).unwrap();
        let program = &a.program;
        // A data file that is not on this machine (the placeholder corpora
        // of the LLM examples; the NWB file in a build without `nwb`) is a
        // W0201 warning; anything else is a failure.
        let problems: Vec<String> = a
            .diagnostics
            .iter()
            .filter(|d| d.code != enigma::diagnostics::Code::W0201)
            .map(|d| enigma::diagnostics::render::plain(d, &program.sources))
            .collect();
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            path.display(),
            problems.concat()
        );
    }
}

#[test]
fn stdlib_from_disk_matches_the_embedded_copy() {
    let dir = Path::new("stdlib");
    let on_disk: Vec<String> = files_in("stdlib")
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let embedded: Vec<String> = resolve::stdlib::EMBEDDED
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        on_disk, embedded,
        "every stdlib/ file is embedded in src/resolve/stdlib.rs"
    );
    for (name, text) in resolve::stdlib::EMBEDDED {
        let disk = std::fs::read_to_string(dir.join(format!("{name}.enigma"))).unwrap();
        assert_eq!(&disk, text);
    }
    let example = Path::new("examples/quickstart.enigma");
    let options = Options {
        stdlib: Stdlib::Dir(dir.to_path_buf()),
    };
    let program = resolve::load(&FsLoader, example, &options).unwrap();
    assert!(program.diagnostics.is_empty());
}

#[test]
fn formatting_is_canonical_idempotent_and_faithful() {
    for path in all_sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let once = format(&text, FileId(0)).unwrap();
        assert_eq!(
            once,
            text,
            "{} is not in canonical layout (run `enigma fmt`)",
            path.display()
        );
        let twice = format(&once, FileId(0)).unwrap();
        assert_eq!(twice, once, "{}: fmt is not idempotent", path.display());
        assert_eq!(
            shape(&once),
            shape(&text),
            "{}: fmt changed the AST",
            path.display()
        );
        assert_eq!(
            comments(&once),
            comments(&text),
            "{}: fmt lost a comment",
            path.display()
        );
    }
}

#[test]
fn formatter_keeps_comments_in_awkward_places() {
    let src = "// head\nuse std::nn::{Linear /* the layer */, MLP} // both\n\n/* block\n   comment */\nmodel m { // open\n  let a = f(1, // one\n    2) // after\n  predict y = a /* inside */ + 1\n  // tail\n}\ntrain { steps: 10 // ten\n  /* before close */ }\n// end\n";
    let out = format(src, FileId(0)).unwrap();
    assert_eq!(comments(&out), comments(src), "{out}");
    assert_eq!(format(&out, FileId(0)).unwrap(), out, "idempotent:\n{out}");
    assert_eq!(shape(&out), shape(src));
}

#[test]
fn long_if_expressions_and_signatures_are_broken_over_lines() {
    let src = "module M(flag: bool)(x: [..., d]) -> [..., d] {\n  let y = if flag { some_long_function_name(x, argument_one: 1, argument_two: 2) } else { another_function(x, 3) }\n  return y\n}\nfn f(first_argument: [..., N], second_argument: [..., N], third_argument: bool[..., N] = true) -> [] {\n  return 1\n}\n";
    let out = format(src, FileId(0)).unwrap();
    assert_eq!(
        out,
        "module M(flag: bool)(x: [..., d]) -> [..., d] {\n  let y = if flag {\n    some_long_function_name(x, argument_one: 1, argument_two: 2)\n  } else {\n    another_function(x, 3)\n  }\n  return y\n}\nfn f(\n  first_argument: [..., N],\n  second_argument: [..., N],\n  third_argument: bool[..., N] = true,\n) -> [] {\n  return 1\n}\n"
    );
    assert!(out.lines().all(|l| l.chars().count() <= 100));
    assert_eq!(format(&out, FileId(0)).unwrap(), out);
}
