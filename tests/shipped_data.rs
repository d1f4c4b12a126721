//! The real recordings shipped in `examples/data/` are intact: each file
//! has the sha256 that `examples/data/SHA256SUMS` lists (so a damaged
//! copy, or a Git LFS pointer checked out in place of a file, fails here
//! by name rather than as a puzzling parse error in another test), the
//! folder holds nothing unlisted, the README quotes the same sums, and
//! every `data/...` file an example names is among them.
//!
//! The digest is computed by the small SHA-256 below rather than by a
//! crate or by `sha256sum`, so that the check needs neither a new
//! dependency nor a tool that not every system has under that name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// The files `SHA256SUMS` lists, as (name, lowercase hex digest), in the
/// file's order. It has `sha256sum`'s text format: the digest, two
/// spaces, the file name.
fn listed_sums() -> Vec<(String, String)> {
    let path = data_dir().join("SHA256SUMS");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let sums: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (digest, name) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("SHA256SUMS: not `DIGEST  NAME`: {line:?}"));
            assert!(
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "SHA256SUMS: not a sha256 digest: {digest:?}"
            );
            (name.to_string(), digest.to_ascii_lowercase())
        })
        .collect();
    assert!(!sums.is_empty(), "SHA256SUMS lists no file");
    sums
}

#[test]
fn every_shipped_file_has_its_listed_sha256() {
    for (name, want) in listed_sums() {
        let path = data_dir().join(&name);
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        // A clone made with Git LFS configured but not installed leaves a
        // small text pointer where the file should be: say so plainly.
        assert!(
            !bytes.starts_with(b"version https://git-lfs"),
            "{} is a Git LFS pointer, not the recording: fetch the real file",
            path.display()
        );
        assert_eq!(
            hex(&sha256(&bytes)),
            want,
            "{} is not the shipped recording ({} bytes): the copy is damaged",
            path.display(),
            bytes.len()
        );
    }
}

#[test]
fn the_folder_holds_only_the_listed_files_and_their_readme() {
    let listed: BTreeSet<String> = listed_sums().into_iter().map(|(n, _)| n).collect();
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(data_dir()).expect("examples/data is readable") {
        let name = entry
            .expect("examples/data is readable")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != "README.md" && name != "SHA256SUMS" {
            present.insert(name);
        }
    }
    // A file added without its sum would escape the check above.
    assert_eq!(
        present, listed,
        "add every file of examples/data to SHA256SUMS"
    );
}

#[test]
fn the_readme_quotes_the_same_sums() {
    let readme = std::fs::read_to_string(data_dir().join("README.md")).expect("the README");
    for (name, digest) in listed_sums() {
        let line = format!("{digest}  {name}");
        assert!(
            readme.lines().any(|l| l.trim() == line),
            "examples/data/README.md does not quote `{line}`"
        );
    }
}

#[test]
fn every_data_file_an_example_names_is_shipped() {
    let listed: BTreeSet<String> = listed_sums().into_iter().map(|(n, _)| n).collect();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut named = BTreeSet::new();
    for entry in std::fs::read_dir(&examples).expect("examples/ is readable") {
        let path = entry.expect("examples/ is readable").path();
        if path.extension().is_none_or(|e| e != "enigma") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("an example is text");
        // Data paths are relative to the example, so a shipped file is
        // named `"data/NAME"`.
        for rest in text.split("\"data/").skip(1) {
            let name = rest.split('"').next().unwrap_or_default();
            named.insert(name.to_string());
        }
    }
    assert!(
        named.contains("F.npy") && named.contains("A8604-211122.nwb"),
        "the real-data examples no longer name data/...: {named:?}"
    );
    let missing: Vec<&String> = named.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "named by an example but not shipped: {missing:?}"
    );
}

/// The digest agrees with FIPS 180-2's three examples (one block, two
/// blocks, a million bytes) and the empty message, which between them
/// cover the padding's edge cases.
#[test]
fn sha256_matches_the_standard_test_vectors() {
    let cases: [(Vec<u8>, &str); 4] = [
        (
            Vec::new(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc".to_vec(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            vec![b'a'; 1_000_000],
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(hex(&sha256(&input)), want, "{} bytes", input.len());
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The round constants: the first 32 bits of the fractional parts of the
/// cube roots of the first 64 primes (FIPS 180-4, 4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 of `data` (FIPS 180-4, 6.2).
fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    // Padding: a 1 bit, zeros up to 56 bytes mod 64, the length in bits.
    let bits = (data.len() as u64).wrapping_mul(8);
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bits.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}
