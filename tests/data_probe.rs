//! Reading the headers of data files: the `.npy` parser on real suite2p
//! files and on hand-made headers (every version, layout and error path),
//! property tests that no input makes it panic, the loaders' `probe`, and
//! (with the `nwb` feature) the dataset listing of a real NWB file.
//!
//! The real files are shipped in `examples/data/` (see the README there
//! for their provenance and checksums); see `common/real.rs` for how they
//! are found.

use std::path::{Path, PathBuf};

use enigma::source::probe::npy::{self, NpyHeader};
use enigma::source::probe::{ArrayHeader, DataFormat, DataHeader, ProbeError, ProbeErrorKind};
use enigma::source::{FsLoader, MemoryLoader, SourceLoader};
use proptest::prelude::*;

#[path = "common/real.rs"]
mod real_data;

/// A file of the real recordings (shipped in `examples/data/`).
fn real(name: &str) -> PathBuf {
    real_data::real_data().join(name)
}

fn array(dtype: &str, shape: &[u64]) -> ArrayHeader {
    ArrayHeader {
        dtype: dtype.to_owned(),
        shape: shape.to_vec(),
        fortran_order: false,
        big_endian: false,
    }
}

/// Builds an `.npy` file as numpy does: the preamble for `version`, the
/// dictionary padded with spaces and a newline to a multiple of 64 bytes,
/// then `data_len` zero bytes.
fn npy_file(version: u8, dict: &str, data_len: usize) -> Vec<u8> {
    let len_bytes = if version == 1 { 2 } else { 4 };
    let preamble = 8 + len_bytes;
    let mut header = dict.as_bytes().to_vec();
    while !(preamble + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = npy::MAGIC.to_vec();
    bytes.extend([version, 0]);
    if version == 1 {
        bytes.extend((header.len() as u16).to_le_bytes());
    } else {
        bytes.extend((header.len() as u32).to_le_bytes());
    }
    bytes.extend(header);
    bytes.extend(std::iter::repeat_n(0u8, data_len));
    bytes
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let fortran = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
}

fn parse_err(bytes: &[u8]) -> ProbeError {
    match npy::parse(bytes) {
        Ok(header) => panic!("expected an error, parsed {header:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_err(bytes: &[u8], kind: ProbeErrorKind, needle: &str) {
    let err = parse_err(bytes);
    assert_eq!(err.kind, kind, "{err}");
    assert!(
        err.message.contains(needle),
        "message {:?} lacks {needle:?}",
        err.message
    );
    assert_eq!(err.path, None);
}

// ---------------------------------------------------------------------------
// Real files.

#[test]
fn real_suite2p_files() {
    let cases = [
        ("F.npy", "f32", [219, 2000], 4),
        ("spks.npy", "f32", [219, 2000], 4),
        ("iscell.npy", "f64", [219, 2], 8),
    ];
    for (name, dtype, shape, itemsize) in cases {
        let path = real(name);
        let bytes = std::fs::read(&path).expect("the shared test data is present");
        let header = npy::parse(&bytes).expect("a valid npy file");
        let data_len = shape[0] * shape[1] * itemsize;
        assert_eq!(
            header,
            NpyHeader {
                array: array(dtype, &shape),
                version: (1, 0),
                data_offset: 128,
                data_len,
            },
            "{name}"
        );
        assert_eq!(bytes.len() as u64, 128 + data_len, "{name}");
        assert_eq!(
            FsLoader.probe(&path, DataFormat::Npy),
            Ok(DataHeader::Array(array(dtype, &shape))),
            "{name}"
        );
    }
}

#[test]
fn fs_loader_reads_a_bounded_prefix() {
    let path = real("F.npy");
    let prefix = FsLoader.read_prefix(&path, 100).expect("readable");
    assert_eq!(prefix.len(), 100);
    assert_eq!(FsLoader.len(&path), Some(1_752_128));
    // The default, for loaders without a cheaper way, truncates a full read.
    let mut memory = MemoryLoader::new();
    memory.insert("F.npy", std::fs::read(&path).expect("readable"));
    let prefix = memory
        .read_prefix(Path::new("F.npy"), 100)
        .expect("present");
    assert_eq!(prefix.len(), 100);
    assert_eq!(memory.len(Path::new("F.npy")), None);
}

#[test]
fn fs_loader_detects_a_file_cut_short() {
    let path = real("F.npy");
    let full = std::fs::read(path).expect("readable");
    let dir = std::env::temp_dir().join(format!("enigma-data-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("cut.npy");
    std::fs::write(&path, &full[..1000]).expect("temp file");
    let result = FsLoader.probe(&path, DataFormat::Npy);
    let _ = std::fs::remove_dir_all(&dir);
    let err = result.expect_err("the data is cut short");
    assert_eq!(err.kind, ProbeErrorKind::DataTooShort);
    assert_eq!(err.path.as_deref(), Some(path.as_path()));
    assert!(
        err.message
            .contains("(219, 2000) of f32 (1752000 bytes of data)")
            && err.message.contains("only 872 bytes"),
        "{err}"
    );
    // A memory loader does not know the length, so it checks only the
    // header, which is intact.
    let mut memory = MemoryLoader::new();
    memory.insert("cut.npy", &full[..1000]);
    assert_eq!(
        memory.probe(Path::new("cut.npy"), DataFormat::Npy),
        Ok(DataHeader::Array(array("f32", &[219, 2000])))
    );
}

#[test]
fn long_headers_are_read_whole() {
    // Longer than the loaders' first read of 16 KiB, within the 1 MiB limit.
    let text = format!(
        "{{'descr': '<f4',{}'fortran_order': False, 'shape': (3,), }}",
        " ".repeat(40_000)
    );
    let bytes = npy_file(2, &text, 12);
    let dir = std::env::temp_dir().join(format!("enigma-long-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("long.npy");
    std::fs::write(&path, &bytes).expect("temp file");
    let whole = FsLoader.probe(&path, DataFormat::Npy);
    std::fs::write(&path, &bytes[..30_000]).expect("temp file");
    let cut = FsLoader.probe(&path, DataFormat::Npy);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(whole, Ok(DataHeader::Array(array("f32", &[3]))));
    assert_eq!(cut.expect_err("cut").kind, ProbeErrorKind::Truncated);
    let mut memory = MemoryLoader::new();
    memory.insert("long.npy", bytes);
    assert_eq!(
        memory.probe(Path::new("long.npy"), DataFormat::Npy),
        Ok(DataHeader::Array(array("f32", &[3])))
    );
}

#[test]
fn probe_errors_carry_the_path() {
    // Any directory will do for a file that is not there.
    let missing = std::env::temp_dir().join("enigma-no-such-file.npy");
    let err = FsLoader
        .probe(&missing, DataFormat::Npy)
        .expect_err("missing");
    assert_eq!(err.kind, ProbeErrorKind::Io);
    assert_eq!(err.path.as_deref(), Some(missing.as_path()));
    assert!(err.to_string().starts_with(&missing.display().to_string()));

    let mut memory = MemoryLoader::new();
    memory.insert("x.npy", b"PK\x03\x04 a zip file".to_vec());
    let err = memory
        .probe(Path::new("x.npy"), DataFormat::Npy)
        .expect_err("not npy");
    assert_eq!(err.kind, ProbeErrorKind::NotNpy);
    assert_eq!(
        err.to_string(),
        "x.npy: not an npy file: it does not start with the magic string \\x93NUMPY"
    );
}

#[test]
fn memory_loader_cannot_read_nwb() {
    let mut memory = MemoryLoader::new();
    memory.insert("a.nwb", b"\x89HDF\r\n\x1a\n".to_vec());
    let err = memory
        .probe(Path::new("a.nwb"), DataFormat::Nwb)
        .expect_err("unsupported in memory");
    assert_eq!(err.kind, ProbeErrorKind::Unsupported);
    assert!(err.message.contains("NWB"), "{err}");
}

#[test]
fn data_format_from_extension() {
    assert_eq!(
        DataFormat::from_path(Path::new("a/F.npy")),
        Some(DataFormat::Npy)
    );
    assert_eq!(
        DataFormat::from_path(Path::new("x.NWB")),
        Some(DataFormat::Nwb)
    );
    assert_eq!(DataFormat::from_path(Path::new("x.h5")), None);
    assert_eq!(DataFormat::from_path(Path::new("npy")), None);
}

// ---------------------------------------------------------------------------
// Hand-made headers that parse.

#[test]
fn version_1_and_2_and_3() {
    for version in [1, 2, 3] {
        let bytes = npy_file(version, &dict("<f4", false, "(3, 4)"), 48);
        let header = npy::parse(&bytes).expect("valid");
        assert_eq!(header.array, array("f32", &[3, 4]));
        assert_eq!(header.version, (version, 0));
        assert_eq!(header.data_offset % 64, 0);
        assert_eq!(header.data_len, 48);
        assert_eq!(
            npy::probe(&bytes, Some(bytes.len() as u64)),
            Ok(header.array)
        );
    }
}

#[test]
fn version_3_header_is_utf8() {
    // Version 3 exists for UTF-8 field names; a plain dtype still parses.
    let bytes = npy_file(
        3,
        "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), 'é': 1}",
        4,
    );
    // The extra key is rejected, but only after the text decoded, and the
    // message quotes it intact.
    assert_err(&bytes, ProbeErrorKind::BadHeader, "unexpected key 'é'");
}

#[test]
fn fortran_order_and_byte_orders() {
    let header = npy::parse_header(&npy_file(1, &dict(">f8", true, "(2, 3)"), 48)).expect("ok");
    assert_eq!(
        header,
        ArrayHeader {
            dtype: "f64".into(),
            shape: vec![2, 3],
            fortran_order: true,
            big_endian: true,
        }
    );
    let header = npy::parse_header(&npy_file(1, &dict("!i4", false, "(1,)"), 4)).expect("ok");
    assert!(header.big_endian);
    for descr in ["<u2", "=u2", "u2"] {
        let header = npy::parse_header(&npy_file(1, &dict(descr, false, "(1,)"), 2)).expect("ok");
        assert_eq!(header, array("u16", &[1]), "{descr}");
    }
    // A single byte has no byte order, whatever the prefix says.
    let header = npy::parse_header(&npy_file(1, &dict(">u1", false, "(1,)"), 1)).expect("ok");
    assert_eq!(header, array("u8", &[1]));
}

#[test]
fn every_supported_dtype() {
    let cases = [
        ("<f2", "f16"),
        ("<f4", "f32"),
        ("<f8", "f64"),
        ("|i1", "i8"),
        ("<i2", "i16"),
        ("<i4", "i32"),
        ("<i8", "i64"),
        ("|u1", "u8"),
        ("<u2", "u16"),
        ("<u4", "u32"),
        ("<u8", "u64"),
        ("|b1", "bool"),
    ];
    for (descr, name) in cases {
        let header = npy::parse_header(&npy_file(1, &dict(descr, false, "(7,)"), 0)).expect(descr);
        assert_eq!(header.dtype, name, "{descr}");
    }
}

#[test]
fn scalar_and_empty_shapes() {
    let scalar = npy::parse(&npy_file(1, &dict("<f8", false, "()"), 8)).expect("scalar");
    assert_eq!(scalar.array.shape, Vec::<u64>::new());
    assert_eq!(scalar.array.element_count(), Some(1));
    assert_eq!(scalar.data_len, 8);
    let one = npy::parse(&npy_file(1, &dict("<f8", false, "(5,)"), 40)).expect("1-d");
    assert_eq!(one.array.shape, vec![5]);
    let empty = npy::parse(&npy_file(1, &dict("<f8", false, "(0, 3)"), 0)).expect("empty");
    assert_eq!(empty.array.shape, vec![0, 3]);
    assert_eq!(empty.data_len, 0);
}

#[test]
fn tolerant_dictionary_syntax() {
    let spellings = [
        // Any key order, double quotes, no trailing comma.
        r#"{"shape": (219, 2000), "fortran_order": False, "descr": "<f4"}"#,
        // Whitespace everywhere, tabs and newlines included.
        "  {\t'descr' :'<f4' ,\n 'fortran_order':False,'shape':( 219 ,2000 , ) , }",
        // Python 2 numpy wrote long integers with an `L`.
        "{'descr': '<f4', 'fortran_order': False, 'shape': (219L, 2000L), }",
        // A parenthesised value is the value itself.
        "{'descr': ('<f4'), 'fortran_order': (False), 'shape': ((219, 2000)), }",
    ];
    for text in spellings {
        let header = npy::parse_header(&npy_file(1, text, 0)).expect(text);
        assert_eq!(header, array("f32", &[219, 2000]), "{text}");
    }
}

#[test]
fn shape_text_is_python_tuple_syntax() {
    assert_eq!(npy::shape_text(&[]), "()");
    assert_eq!(npy::shape_text(&[5]), "(5,)");
    assert_eq!(npy::shape_text(&[219, 2000]), "(219, 2000)");
}

// ---------------------------------------------------------------------------
// Error paths.

#[test]
fn not_an_npy_file() {
    assert_err(b"", ProbeErrorKind::NotNpy, "the file is empty");
    assert_err(b"\x89HDF\r\n\x1a\n", ProbeErrorKind::NotNpy, "magic string");
    assert_err(b"\x93NUMPX\x01\x00", ProbeErrorKind::NotNpy, "magic string");
}

#[test]
fn truncated_files() {
    let full = npy_file(1, &dict("<f4", false, "(3,)"), 12);
    // Inside the magic, inside the version, inside the length field.
    for cut in [1, 5, 6, 7, 8, 9] {
        assert_err(&full[..cut], ProbeErrorKind::Truncated, "preamble");
    }
    // Inside the header text (the dictionary pads to 118 bytes, so the data
    // starts at 128).
    for cut in [10, 11, 40, 127] {
        assert_err(
            &full[..cut],
            ProbeErrorKind::Truncated,
            "the npy header declares 118 bytes",
        );
    }
    // The header is whole but the data is not: only a known length shows it.
    let header = npy::parse(&full[..128]).expect("whole header");
    assert_eq!(header.data_offset, 128);
    assert_eq!(npy::check_len(&header, 140), Ok(()));
    assert_eq!(npy::check_len(&header, 1_000), Ok(()));
    let err = npy::check_len(&header, 134).expect_err("short");
    assert_eq!(err.kind, ProbeErrorKind::DataTooShort);
    assert!(err.message.contains("only 6 bytes"), "{err}");
    let err = npy::probe(&full[..128], Some(10)).expect_err("shorter than its header");
    assert_eq!(err.kind, ProbeErrorKind::DataTooShort);
    assert!(err.message.contains("only 0 bytes"), "{err}");
}

#[test]
fn unsupported_versions() {
    let mut bytes = npy_file(1, &dict("<f4", false, "(3,)"), 12);
    bytes[6] = 9;
    assert_err(&bytes, ProbeErrorKind::UnsupportedVersion, "version 9.0");
    bytes[6] = 1;
    bytes[7] = 1;
    assert_err(&bytes, ProbeErrorKind::UnsupportedVersion, "version 1.1");
    bytes[6] = 0;
    bytes[7] = 0;
    assert_err(&bytes, ProbeErrorKind::UnsupportedVersion, "version 0.0");
}

#[test]
fn header_longer_than_the_limit() {
    let mut bytes = npy::MAGIC.to_vec();
    bytes.extend([2, 0]);
    bytes.extend((npy::MAX_HEADER_LEN as u32 + 1).to_le_bytes());
    bytes.extend(b"{'descr': '<f4'");
    assert_err(&bytes, ProbeErrorKind::HeaderTooLong, "1024 KiB");
    let mut bytes = npy::MAGIC.to_vec();
    bytes.extend([3, 0]);
    bytes.extend(u32::MAX.to_le_bytes());
    assert_err(&bytes, ProbeErrorKind::HeaderTooLong, "4294967295 bytes");
}

#[test]
fn bad_dictionaries() {
    let cases = [
        ("", "expected '{'"),
        ("['descr', '<f4']", "expected '{'"),
        ("{'descr': '<f4' 'shape': (3,)}", "expected ',' or '}'"),
        ("{'descr' '<f4'}", "expected ':' after the key 'descr'"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)",
            "found the end",
        ),
        ("{'descr': '<f4}", "unterminated string"),
        ("{'descr': <f4}", "expected a string, number"),
        ("{'descr': float32}", "a name is not allowed"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3 4)}",
            "expected ',' or ')'",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3.5,)}",
            "plain decimal",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0x10,)}",
            "plain decimal",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-,)}",
            "expected digits",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} x",
            "after the closing",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}}",
            "after the closing",
        ),
        ("{1: '<f4'}", "non-string key 1"),
        ("{'descr': '<f4', 'fortran_order': False}", "no 'shape' key"),
        ("{'descr': '<f4', 'shape': (3,)}", "no 'fortran_order' key"),
        ("{'fortran_order': False, 'shape': (3,)}", "no 'descr' key"),
        ("{}", "no 'descr' key"),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
            "unexpected key 'extra'",
        ),
        (
            "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (3,)}",
            "'descr' appears twice",
        ),
        (
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}",
            "'fortran_order' must be True or False, found 0",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}",
            "'shape' must be a tuple of non-negative integers such as (219, 2000), found (3)",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': [3]}",
            "must be a tuple",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1)}",
            "found (3, -1)",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (None,)}",
            "must be a tuple",
        ),
        (
            "{'descr': 4, 'fortran_order': False, 'shape': (3,)}",
            "'descr' must be a string",
        ),
    ];
    for (text, needle) in cases {
        let bytes = npy_file(1, text, 0);
        let err = parse_err(&bytes);
        assert_eq!(err.kind, ProbeErrorKind::BadHeader, "{text}: {err}");
        assert!(
            err.message.contains(needle),
            "{text}: message {:?} lacks {needle:?}",
            err.message
        );
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}3,{}}}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    // Version 2, since the header is longer than a u16 can say.
    assert_err(
        &npy_file(2, &deep, 0),
        ProbeErrorKind::BadHeader,
        "nested too deeply",
    );
}

#[test]
fn invalid_utf8_in_version_3() {
    let mut bytes = npy_file(3, "{'descr': '<f4\u{80}', 'fortran_order': False}", 0);
    // Replace the two-byte encoding of U+0080 with a lone continuation byte.
    let at = bytes
        .windows(2)
        .position(|w| w == [0xc2, 0x80])
        .expect("present");
    bytes[at] = b' ';
    assert_err(&bytes, ProbeErrorKind::BadHeader, "not valid UTF-8");
    // Versions 1 and 2 are Latin-1, where any byte is a character, so the
    // same kind of text reaches the dtype check instead.
    let err = parse_err(&npy_file(
        1,
        "{'descr': '<f4\u{ff}', 'fortran_order': False, 'shape': ()}",
        0,
    ));
    assert_eq!(err.kind, ProbeErrorKind::UnsupportedDtype);
}

#[test]
fn unsupported_dtypes() {
    let cases = [
        (
            "[('x', '<f4'), ('y', '<i4', (2,))]",
            "unsupported dtype [('x', '<f4'), ('y', '<i4', (2,))] in the npy header: structured",
        ),
        (
            "'|O'",
            "unsupported dtype '|O' in the npy header: object arrays",
        ),
        ("'<U8'", "string arrays"),
        ("'|S3'", "string arrays"),
        ("'|V16'", "raw void"),
        ("'<c8'", "complex numbers"),
        ("'<M8[ns]'", "datetimes"),
        ("'<f16'", "enigma reads bool, f16, f32, f64"),
        ("'<f3'", "enigma reads bool"),
        ("''", "enigma reads bool"),
    ];
    for (descr, needle) in cases {
        let text = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (3,), }}");
        let err = parse_err(&npy_file(1, &text, 0));
        assert_eq!(err.kind, ProbeErrorKind::UnsupportedDtype, "{descr}: {err}");
        assert!(
            err.message.contains(needle),
            "{descr}: message {:?} lacks {needle:?}",
            err.message
        );
    }
}

#[test]
fn shape_overflow() {
    let huge = "(18446744073709551616,)";
    assert_err(
        &npy_file(1, &dict("<f4", false, huge), 0),
        ProbeErrorKind::ShapeOverflow,
        "does not fit in 64 bits",
    );
    // Each dimension fits, but the product does not.
    assert_err(
        &npy_file(1, &dict("<f4", false, "(4294967296, 4294967296)"), 0),
        ProbeErrorKind::ShapeOverflow,
        "(4294967296, 4294967296) of f32 is too large",
    );
    // The element count fits but the byte count does not.
    assert_err(
        &npy_file(1, &dict("<f8", false, "(4611686018427387904,)"), 0),
        ProbeErrorKind::ShapeOverflow,
        "too large",
    );
    // A zero anywhere makes an empty array, however large the rest.
    let ok = npy::parse(&npy_file(
        1,
        &dict("<f8", false, "(0, 18446744073709551615)"),
        0,
    ))
    .expect("empty");
    assert_eq!(ok.data_len, 0);
}

// ---------------------------------------------------------------------------
// No input makes the parser panic.

/// A valid header with an arbitrary dtype, layout and shape.
fn valid_file() -> impl Strategy<Value = (Vec<u8>, ArrayHeader)> {
    let dtypes = prop::sample::select(vec![
        ("<f4", "f32"),
        (">f8", "f64"),
        ("|b1", "bool"),
        ("<i2", "i16"),
        ("|u1", "u8"),
    ]);
    (
        1u8..=3,
        dtypes,
        any::<bool>(),
        prop::collection::vec(0u64..1_000, 0..5),
    )
        .prop_map(|(version, (descr, name), fortran, shape)| {
            let bytes = npy_file(version, &dict(descr, fortran, &npy::shape_text(&shape)), 0);
            let header = ArrayHeader {
                dtype: name.to_owned(),
                shape,
                fortran_order: fortran,
                big_endian: descr.starts_with('>'),
            };
            (bytes, header)
        })
}

/// One edit to a byte string: overwrite, insert, delete or truncate.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes from the header's own alphabet reach deeper than random ones.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"{}()[],:'\" 0123456789-LTrueFalse<>|f4i8\n\x00\xff".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match *edit {
        Edit::Set(i, b) if len > 0 => bytes[i % len] = b,
        Edit::Insert(i, b) => bytes.insert(i % (len + 1), b),
        Edit::Delete(i) if len > 0 => {
            bytes.remove(i % len);
        }
        Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
        _ => {}
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = npy::probe(&bytes, Some(bytes.len() as u64));
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic(
        version in prop::sample::select(vec![[1u8, 0], [2, 0], [3, 0]]),
        len in prop::collection::vec(any::<u8>(), 4),
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = npy::MAGIC.to_vec();
        bytes.extend(version);
        bytes.extend(len);
        bytes.extend(rest);
        let _ = npy::probe(&bytes, Some(bytes.len() as u64));
    }

    #[test]
    fn valid_headers_round_trip((bytes, expected) in valid_file()) {
        prop_assert_eq!(npy::parse_header(&bytes), Ok(expected));
    }

    #[test]
    fn mutated_headers_never_panic(
        (bytes, _) in valid_file(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let mut bytes = bytes;
        for e in &edits {
            apply(&mut bytes, e);
        }
        if let Ok(header) = npy::parse(&bytes) {
            // Whatever parses must be self-consistent.
            prop_assert!(header.data_offset as usize <= bytes.len());
            prop_assert!(header.array.element_count().is_some());
        }
        let _ = npy::probe(&bytes, Some(bytes.len() as u64));
        let mut memory = MemoryLoader::new();
        memory.insert("m.npy", bytes);
        let _ = memory.probe(Path::new("m.npy"), DataFormat::Npy);
    }
}

// ---------------------------------------------------------------------------
// NWB.

#[cfg(not(feature = "nwb"))]
#[test]
fn nwb_needs_the_feature() {
    let path = std::env::temp_dir().join("enigma-any.nwb");
    let err = FsLoader
        .probe(&path, DataFormat::Nwb)
        .expect_err("no libhdf5 in this build");
    assert_eq!(err.kind, ProbeErrorKind::Unsupported);
    assert!(err.message.contains("`nwb` feature"), "{err}");
}

#[cfg(feature = "nwb")]
mod nwb {
    use super::*;
    use enigma::source::probe::nwb::probe;
    use std::collections::BTreeMap;

    fn listing() -> BTreeMap<String, ArrayHeader> {
        probe(&real("A8604-211122.nwb")).expect("a readable NWB file")
    }

    #[test]
    fn units_table() {
        let datasets = listing();
        assert_eq!(datasets["units/spike_times"], array("f64", &[21_354]));
        assert_eq!(datasets["units/spike_times_index"], array("u16", &[3]));
        assert_eq!(datasets["units/id"], array("i64", &[3]));
        assert_eq!(datasets["units/group"], array("i64", &[3]));
        assert_eq!(datasets["units/location"], array("string", &[3]));
        assert_eq!(datasets["units/electrode_group"], array("reference", &[3]));
    }

    #[test]
    fn epochs_and_electrodes() {
        let datasets = listing();
        assert_eq!(datasets["intervals/epochs/start_time"], array("f64", &[1]));
        assert_eq!(datasets["intervals/epochs/stop_time"], array("f64", &[1]));
        assert_eq!(datasets["intervals/epochs/id"], array("i64", &[1]));
        assert_eq!(datasets["intervals/epochs/tags_index"], array("u8", &[1]));
        let electrodes = "general/extracellular_ephys/electrodes";
        assert_eq!(datasets[&format!("{electrodes}/x")], array("f64", &[383]));
        assert_eq!(datasets[&format!("{electrodes}/id")], array("i32", &[383]));
        // Scalars have an empty shape.
        assert_eq!(datasets["session_start_time"], array("string", &[]));
    }

    #[test]
    fn every_dataset_once_and_no_groups() {
        // `h5ls -r` lists 56 datasets; the soft link
        // `general/extracellular_ephys/group0_psb/device` is not followed.
        let datasets = listing();
        assert_eq!(datasets.len(), 56);
        assert!(datasets.keys().all(|k| !k.starts_with('/')));
        assert!(!datasets.contains_key("units"));
        assert!(!datasets.keys().any(|k| k.contains("group0_psb/device/")));
    }

    #[test]
    fn through_the_loader() {
        let path = real("A8604-211122.nwb");
        match FsLoader.probe(&path, DataFormat::Nwb) {
            Ok(DataHeader::Nwb(datasets)) => assert_eq!(datasets, listing()),
            other => panic!("expected an NWB listing, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_file() {
        let npy_file = real("F.npy");
        let err = probe(&npy_file).expect_err("not HDF5");
        assert_eq!(err.kind, ProbeErrorKind::NotHdf5);
        assert_eq!(err.path.as_deref(), Some(npy_file.as_path()));
        assert!(err.to_string().contains("F.npy: not an HDF5 file"), "{err}");

        let missing = npy_file.with_file_name("missing.nwb");
        let err = probe(&missing).expect_err("missing");
        assert_eq!(err.kind, ProbeErrorKind::Io);
        assert!(err
            .to_string()
            .contains("missing.nwb: cannot read the file"));

        let dir = std::env::temp_dir();
        let err = probe(&dir).expect_err("a directory");
        assert_eq!(err.kind, ProbeErrorKind::Io);
        assert!(err.message.contains("directory"), "{err}");
    }

    #[test]
    fn a_file_cut_short_is_an_error() {
        let path = real("A8604-211122.nwb");
        let full = std::fs::read(path).expect("readable");
        let dir = std::env::temp_dir().join(format!("enigma-nwb-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("cut.nwb");
        std::fs::write(&path, &full[..4096]).expect("temp file");
        let result = probe(&path);
        let _ = std::fs::remove_dir_all(&dir);
        let err = result.expect_err("cut short");
        assert_eq!(err.kind, ProbeErrorKind::Hdf5, "{err}");
        assert_eq!(err.path.as_deref(), Some(path.as_path()));
    }
}
