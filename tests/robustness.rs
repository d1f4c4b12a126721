//! Bad input never panics (exit 101) or hangs: each case below exits with 1
//! and a coded diagnostic, through the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("enigma-rob-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check_bytes(name: &str, bytes: &[u8]) -> Output {
    let dir = scratch(name);
    let path = dir.join("main.enigma");
    std::fs::write(&path, bytes).unwrap();
    check_path(&path)
}

fn check_path(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enigma"))
        .args(["--error-format", "json", "check"])
        .arg(path)
        .output()
        .unwrap()
}

/// Asserts exit status 1 and that a diagnostic with `code` was printed.
fn expect(out: &Output, code: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&format!("\"code\":\"{code}\""))),
        "expected {code} in {stdout}"
    );
}

#[test]
fn empty_and_comment_only_files() {
    expect(&check_bytes("empty", b""), "E0008");
    expect(&check_bytes("blank", b"\n\n   \t\n"), "E0008");
    expect(
        &check_bytes("comments", b"// nothing\n/* here */\n"),
        "E0008",
    );
}

#[test]
fn binary_garbage() {
    // A deterministic stream of bytes from a linear congruential generator.
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    expect(&check_bytes("garbage", &bytes), "E0002");
    // Printable garbage fails in the pre-scan or the grammar, depending on
    // which quotes and brackets it happens to hold.
    let ascii: Vec<u8> = bytes.iter().map(|b| b' ' + b % 95).collect();
    let out = check_bytes("ascii", &ascii);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"code\":\"E000"));
    expect(&check_bytes("nul", b"dim d = 1\0\n"), "E0001");
}

#[test]
fn invalid_utf8() {
    let out = check_bytes("utf8", b"dim d = 64\ndim \xff\xfe = 2\n");
    expect(&out, "E0002");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"start\":15"));
}

#[test]
fn deeply_nested_expressions() {
    let deep = format!("dim d = {}1{}\n", "(".repeat(100_000), ")".repeat(100_000));
    expect(&check_bytes("parens", deep.as_bytes()), "E0004");
    let brackets = format!("let x = {}\n", "[".repeat(100_000));
    expect(&check_bytes("brackets", brackets.as_bytes()), "E0004");
    let chain = format!("dim d = 1{}\n", " + 1".repeat(100_000));
    expect(&check_bytes("chain", chain.as_bytes()), "E0004");
    let fields = format!("let x = a{}\n", ".b".repeat(100_000));
    expect(&check_bytes("fields", fields.as_bytes()), "E0004");
    let pow = format!("dim d = 2{}\n", " ** 2".repeat(100_000));
    expect(&check_bytes("pow", pow.as_bytes()), "E0004");
    let ifs = format!(
        "let x = {}1{}\n",
        "if a { ".repeat(100_000),
        " } else { 0 }".repeat(100_000)
    );
    expect(&check_bytes("ifs", ifs.as_bytes()), "E0004");
}

#[test]
fn unterminated_literals() {
    expect(&check_bytes("string", b"data v = npy(\"F.npy)\n"), "E0005");
    expect(
        &check_bytes("comment", b"dim d = 1 /* open /* nested */\n"),
        "E0006",
    );
}

#[test]
fn unknown_imports() {
    expect(
        &check_bytes("import", b"use std::nope::{X}\nuse mine::{Y}\ndim d = 1\n"),
        "E0101",
    );
}

#[test]
fn import_cycles() {
    let dir = scratch("cycle");
    std::fs::write(dir.join("a.enigma"), "use b::{B}\nlet A = B\n").unwrap();
    std::fs::write(dir.join("b.enigma"), "use a::{A}\nlet B = A\n").unwrap();
    std::fs::write(dir.join("main.enigma"), "use a::{A}\nlet M = A\n").unwrap();
    expect(&check_path(&dir.join("main.enigma")), "E0103");
    std::fs::write(dir.join("selfish.enigma"), "use selfish::{S}\nlet S = 1\n").unwrap();
    expect(&check_path(&dir.join("selfish.enigma")), "E0103");
}

#[test]
fn duplicate_definitions() {
    expect(&check_bytes("dup", b"dim d = 1\nlet d = 2\n"), "E0104");
}

#[test]
fn a_ten_megabyte_file() {
    let line = "dim d = 1 // a line of a generated experiment, repeated many times\n";
    let big = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    assert!(big.len() > 10 * 1024 * 1024);
    expect(&check_bytes("big", big.as_bytes()), "E0003");
}

#[test]
fn files_just_under_the_limit_are_checked() {
    // A valid file of many items close to the size limit checks cleanly.
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 3 * 1024 * 1024 {
        text.push_str(&format!("dim d{i} = {i} * 2 + 1\n"));
        i += 1;
    }
    let out = check_bytes("large", text.as_bytes());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
