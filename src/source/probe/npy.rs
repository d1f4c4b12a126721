//! The header of a NumPy `.npy` file, parsed from its first bytes.
//!
//! The format (NEP 1, "A simple file format for NumPy arrays") is a magic
//! string `\x93NUMPY`, a two-byte version (1.0, 2.0 or 3.0), the length of
//! the header (a little-endian `u16` in version 1, a `u32` in versions 2
//! and 3), then the header itself: the text of a Python dictionary literal
//! such as `{'descr': '<f4', 'fortran_order': False, 'shape': (219, 2000), }`
//! padded with spaces and a newline. The array's bytes follow the header.
//!
//! The dictionary is read by a small hand-written parser rather than by
//! evaluating Python: it accepts the literals numpy writes (strings in either
//! quote, `True`, `False`, `None`, integers, tuples and lists of those) in
//! any key order with any whitespace, and rejects everything else with a
//! message. Every input, however malformed, gives a header or a
//! [`ProbeError`]; nothing here can panic, allocate without bound or recurse
//! without bound on what a file contains.

use std::fmt::Write as _;

use super::{ArrayHeader, ProbeError, ProbeErrorKind};

/// The six bytes every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header the compiler reads. numpy itself refuses headers over
/// 10,000 bytes by default; a megabyte leaves room for odd writers while
/// keeping the read of a multi-gigabyte file bounded.
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// How many bytes of a file a loader must supply so that any header this
/// module accepts is complete: the longest preamble (magic, version and a
/// four-byte length) plus [`MAX_HEADER_LEN`].
pub const PREFIX_LEN: usize = 12 + MAX_HEADER_LEN;

/// How deeply tuples and lists may nest inside the header. numpy's own
/// headers nest two levels (a structured dtype's sub-array shape); the bound
/// keeps the recursive parser's stack small on hostile input.
const MAX_NESTING: usize = 32;

/// A parsed `.npy` header together with where its data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// The element type and shape.
    pub array: ArrayHeader,
    /// The format version, `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// The byte offset at which the array data starts.
    pub data_offset: u64,
    /// The number of data bytes the shape and element type call for.
    pub data_len: u64,
}

/// Parses the header at the start of `bytes` (the whole file or any prefix
/// that contains the header) and returns the array's type and shape.
pub fn parse_header(bytes: &[u8]) -> Result<ArrayHeader, ProbeError> {
    parse(bytes).map(|header| header.array)
}

/// Parses the header at the start of `bytes`, keeping the version, the data
/// offset and the data length beside the type and shape.
pub fn parse(bytes: &[u8]) -> Result<NpyHeader, ProbeError> {
    if bytes.is_empty() {
        return Err(ProbeError::new(
            ProbeErrorKind::NotNpy,
            "not an npy file: the file is empty (an npy file starts with the magic string \\x93NUMPY)",
        ));
    }
    // Compare only as many bytes as there are, so that a file cut short
    // inside the magic string reads as truncated rather than as foreign.
    let seen = bytes.len().min(MAGIC.len());
    if bytes[..seen] != MAGIC[..seen] {
        return Err(ProbeError::new(
            ProbeErrorKind::NotNpy,
            "not an npy file: it does not start with the magic string \\x93NUMPY",
        ));
    }
    let (Some(&major), Some(&minor)) = (bytes.get(6), bytes.get(7)) else {
        return Err(truncated(format!(
            "the file ends inside the npy preamble, after {} bytes",
            bytes.len()
        )));
    };
    // Version 1.0 stores the header length in two bytes; 2.0 widened it to
    // four for huge structured dtypes, and 3.0 only changed the header text
    // from Latin-1 to UTF-8.
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(ProbeError::new(
                ProbeErrorKind::UnsupportedVersion,
                format!(
                    "unsupported npy format version {major}.{minor} (enigma reads versions 1.0, 2.0 and 3.0)"
                ),
            ))
        }
    };
    let start = 8 + len_bytes;
    let Some(len_field) = bytes.get(8..start) else {
        return Err(truncated(format!(
            "the file ends inside the npy preamble, after {} bytes",
            bytes.len()
        )));
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    // The limit is checked before truncation so that a loader which read
    // only `PREFIX_LEN` bytes of a file with a giant header reports the
    // limit, not a bogus truncation.
    let header_len = match usize::try_from(header_len) {
        Ok(len) if len <= MAX_HEADER_LEN => len,
        _ => {
            return Err(ProbeError::new(
                ProbeErrorKind::HeaderTooLong,
                format!(
                    "the npy header declares {header_len} bytes, more than the {} KiB enigma reads",
                    MAX_HEADER_LEN / 1024
                ),
            ))
        }
    };
    let end = start + header_len;
    let Some(raw) = bytes.get(start..end) else {
        return Err(truncated(format!(
            "the npy header declares {header_len} bytes but the file ends after {} of them",
            bytes.len() - start
        )));
    };
    let text = if major >= 3 {
        match std::str::from_utf8(raw) {
            Ok(text) => text.to_owned(),
            Err(e) => {
                return Err(bad_header(format!(
                    "the npy header is not valid UTF-8 (byte {} of the header)",
                    e.valid_up_to()
                )))
            }
        }
    } else {
        // Versions 1 and 2 are Latin-1, where every byte is the code point
        // of the same value, so decoding cannot fail.
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let dict = parse_dict(&text)?;
    let fields = Fields::from_entries(dict)?;
    let dtype = parse_descr(&fields.descr)?;
    let shape = fields.shape;
    let elements = shape
        .iter()
        .try_fold(1u64, |count, &dim| count.checked_mul(dim));
    let data_len = elements.and_then(|n| n.checked_mul(dtype.itemsize));
    let data_offset = end as u64;
    let Some(data_len) = data_len.filter(|len| data_offset.checked_add(*len).is_some()) else {
        return Err(ProbeError::new(
            ProbeErrorKind::ShapeOverflow,
            format!(
                "the npy shape {} of {} is too large: its size in bytes does not fit in 64 bits",
                shape_text(&shape),
                dtype.name
            ),
        ));
    };
    Ok(NpyHeader {
        array: ArrayHeader {
            dtype: dtype.name.to_owned(),
            shape,
            fortran_order: fields.fortran_order,
            big_endian: dtype.big_endian,
        },
        version: (major, minor),
        data_offset,
        data_len,
    })
}

/// Checks that a file of `file_len` bytes holds all the data its header
/// declares. Longer files are accepted, as numpy accepts them.
pub fn check_len(header: &NpyHeader, file_len: u64) -> Result<(), ProbeError> {
    let have = file_len.saturating_sub(header.data_offset);
    if have < header.data_len {
        return Err(ProbeError::new(
            ProbeErrorKind::DataTooShort,
            format!(
                "the npy header declares shape {} of {} ({} bytes of data) but the file holds only {have} bytes after the header",
                shape_text(&header.array.shape),
                header.array.dtype,
                header.data_len
            ),
        ));
    }
    Ok(())
}

/// Parses the header in `prefix` (the first [`PREFIX_LEN`] bytes of a file,
/// or all of it if shorter) and, when the file's total length is known,
/// checks that the data is all there.
pub fn probe(prefix: &[u8], file_len: Option<u64>) -> Result<ArrayHeader, ProbeError> {
    let header = parse(prefix)?;
    if let Some(len) = file_len {
        check_len(&header, len)?;
    }
    Ok(header.array)
}

/// A shape as Python prints a tuple: `()`, `(5,)`, `(219, 2000)`.
pub fn shape_text(shape: &[u64]) -> String {
    let mut text = String::from("(");
    for (i, dim) in shape.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{dim}");
    }
    if shape.len() == 1 {
        text.push(',');
    }
    text.push(')');
    text
}

fn truncated(message: String) -> ProbeError {
    ProbeError::new(ProbeErrorKind::Truncated, message)
}

fn bad_header(message: String) -> ProbeError {
    ProbeError::new(ProbeErrorKind::BadHeader, message)
}

/// An element type in enigma's spelling, with its size and byte order.
struct Dtype {
    name: &'static str,
    itemsize: u64,
    big_endian: bool,
}

/// Maps a numpy type string such as `<f4` to an enigma element type.
fn parse_descr(descr: &Value) -> Result<Dtype, ProbeError> {
    let text = match &descr.kind {
        ValueKind::Str(text) => text.as_str(),
        ValueKind::List | ValueKind::Tuple(_) => {
            return Err(unsupported_dtype(
                &descr.source,
                "structured (record) dtypes are not supported",
            ))
        }
        _ => {
            return Err(bad_header(format!(
                "'descr' must be a string such as '<f4', found {}",
                descr.source
            )))
        }
    };
    let (order, code) = match text.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=' | '!')) => (Some(c), &text[1..]),
        _ => (None, text),
    };
    let (name, itemsize) = match code {
        "f2" => ("f16", 2),
        "f4" => ("f32", 4),
        "f8" => ("f64", 8),
        "i1" => ("i8", 1),
        "i2" => ("i16", 2),
        "i4" => ("i32", 4),
        "i8" => ("i64", 8),
        "u1" => ("u8", 1),
        "u2" => ("u16", 2),
        "u4" => ("u32", 4),
        "u8" => ("u64", 8),
        "b1" => ("bool", 1),
        _ => {
            let why = match code.chars().next() {
                Some('O') => "object arrays hold Python objects, not numbers",
                Some('S' | 'a' | 'U') => "string arrays are not supported",
                Some('V') => "raw void and structured dtypes are not supported",
                Some('c') => "complex numbers are not supported",
                Some('M' | 'm') => "datetimes and timedeltas are not supported",
                _ => "enigma reads bool, f16, f32, f64, i8 to i64 and u8 to u64",
            };
            return Err(unsupported_dtype(&descr.source, why));
        }
    };
    // '>' and '!' are big-endian; '<' is little-endian; '|' marks types
    // with no byte order, and '=' (which numpy never writes to a file) is
    // taken as the little-endian order of every machine enigma targets. A
    // single byte has no order, whatever the prefix says.
    let big_endian = matches!(order, Some('>' | '!')) && itemsize > 1;
    Ok(Dtype {
        name,
        itemsize,
        big_endian,
    })
}

fn unsupported_dtype(source: &str, why: &str) -> ProbeError {
    ProbeError::new(
        ProbeErrorKind::UnsupportedDtype,
        format!("unsupported dtype {source} in the npy header: {why}"),
    )
}

/// The three keys numpy writes, checked and converted.
struct Fields {
    descr: Value,
    fortran_order: bool,
    shape: Vec<u64>,
}

impl Fields {
    fn from_entries(entries: Vec<(Value, Value)>) -> Result<Fields, ProbeError> {
        let mut descr = None;
        let mut fortran_order = None;
        let mut shape = None;
        for (key, value) in entries {
            let ValueKind::Str(name) = &key.kind else {
                return Err(bad_header(format!(
                    "the npy header has a non-string key {}",
                    key.source
                )));
            };
            let slot = match name.as_str() {
                "descr" => &mut descr,
                "fortran_order" => &mut fortran_order,
                "shape" => &mut shape,
                _ => {
                    return Err(bad_header(format!(
                        "unexpected key {} in the npy header (numpy writes only 'descr', 'fortran_order' and 'shape')",
                        key.source
                    )))
                }
            };
            if slot.is_some() {
                return Err(bad_header(format!(
                    "the key {} appears twice in the npy header",
                    key.source
                )));
            }
            *slot = Some(value);
        }
        let missing = |key: &str| bad_header(format!("the npy header has no '{key}' key"));
        let descr = descr.ok_or_else(|| missing("descr"))?;
        let fortran_order = match fortran_order.ok_or_else(|| missing("fortran_order"))? {
            Value {
                kind: ValueKind::Bool(b),
                ..
            } => b,
            other => {
                return Err(bad_header(format!(
                    "'fortran_order' must be True or False, found {}",
                    other.source
                )))
            }
        };
        let shape = shape_dims(&shape.ok_or_else(|| missing("shape"))?)?;
        Ok(Fields {
            descr,
            fortran_order,
            shape,
        })
    }
}

/// Converts the `shape` value, which must be a tuple of non-negative
/// integers.
fn shape_dims(value: &Value) -> Result<Vec<u64>, ProbeError> {
    let not_a_shape = || {
        bad_header(format!(
            "'shape' must be a tuple of non-negative integers such as (219, 2000), found {}",
            value.source
        ))
    };
    let ValueKind::Tuple(items) = &value.kind else {
        return Err(not_a_shape());
    };
    items
        .iter()
        .map(|item| match item.kind {
            ValueKind::Int(Int::Small(n)) => Ok(n),
            ValueKind::Int(Int::Huge) => Err(ProbeError::new(
                ProbeErrorKind::ShapeOverflow,
                format!(
                    "the npy shape {} has a dimension that does not fit in 64 bits",
                    value.source
                ),
            )),
            _ => Err(not_a_shape()),
        })
        .collect()
}

/// One Python literal from the header, with its source text for messages.
#[derive(Debug)]
struct Value {
    kind: ValueKind,
    /// The literal as written (cut short if very long), to quote in errors.
    source: String,
}

#[derive(Debug)]
enum ValueKind {
    Str(String),
    Bool(bool),
    None,
    Int(Int),
    Tuple(Vec<Value>),
    /// A list's items are parsed (to find where it ends) but not kept: the
    /// only list numpy writes is a structured dtype, which is rejected.
    List,
}

#[derive(Debug, Clone, Copy)]
enum Int {
    Small(u64),
    Negative,
    /// Larger than `u64::MAX`.
    Huge,
}

/// Parses the header text as a dictionary literal, returning its entries
/// in order.
fn parse_dict(text: &str) -> Result<Vec<(Value, Value)>, ProbeError> {
    let mut p = Parser { text, pos: 0 };
    p.skip_ws();
    if !p.eat(b'{') {
        return Err(p.error("expected '{' at the start of the header dictionary"));
    }
    let mut entries = Vec::new();
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.value(0)?;
        p.skip_ws();
        if !p.eat(b':') {
            return Err(p.error(&format!("expected ':' after the key {}", key.source)));
        }
        p.skip_ws();
        let value = p.value(0)?;
        entries.push((key, value));
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        if !p.eat(b',') {
            return Err(p.error("expected ',' or '}' after a value"));
        }
    }
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.error("unexpected text after the closing '}'"));
    }
    Ok(entries)
}

/// A cursor over the header text. All the syntax is ASCII, so byte
/// positions always fall on character boundaries where they are used to
/// slice.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> ProbeError {
        let found = match self
            .text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
        {
            Some(c) => format!("found {c:?}"),
            None => "found the end of the header".to_owned(),
        };
        bad_header(format!(
            "the npy header is not a valid dictionary: {what} ({found} at offset {} of the header)",
            self.pos
        ))
    }

    /// The source text from `start` to the cursor, shortened for messages.
    fn source(&self, start: usize) -> String {
        let text = self.text.get(start..self.pos).unwrap_or("");
        match text.char_indices().nth(60) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_owned(),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ProbeError> {
        if depth > MAX_NESTING {
            return Err(self.error("tuples and lists are nested too deeply"));
        }
        let start = self.pos;
        let kind = match self.peek() {
            Some(quote @ (b'\'' | b'"')) => ValueKind::Str(self.string(quote)?),
            Some(b'(') => {
                self.pos += 1;
                let (mut items, trailing_comma) = self.items(b')', depth)?;
                // In Python `(x)` is just `x`; only a comma makes a tuple.
                if items.len() == 1 && !trailing_comma {
                    let mut inner = items.remove(0);
                    inner.source = self.source(start);
                    return Ok(inner);
                }
                ValueKind::Tuple(items)
            }
            Some(b'[') => {
                self.pos += 1;
                self.items(b']', depth)?;
                ValueKind::List
            }
            Some(b'0'..=b'9' | b'-' | b'+') => ValueKind::Int(self.int()?),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'_') => {
                let word_start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_')
                ) {
                    self.pos += 1;
                }
                match &self.text[word_start..self.pos] {
                    "True" => ValueKind::Bool(true),
                    "False" => ValueKind::Bool(false),
                    "None" => ValueKind::None,
                    _ => {
                        self.pos = word_start;
                        return Err(self.error("expected a literal (a name is not allowed)"));
                    }
                }
            }
            _ => return Err(self.error("expected a string, number, True, False, tuple or list")),
        };
        Ok(Value {
            kind,
            source: self.source(start),
        })
    }

    /// Parses comma-separated values up to `close`, after the opening
    /// bracket. Returns them and whether a comma followed the last one.
    fn items(&mut self, close: u8, depth: usize) -> Result<(Vec<Value>, bool), ProbeError> {
        let mut items = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            if self.eat(close) {
                return Ok((items, trailing_comma));
            }
            if !items.is_empty() && !trailing_comma {
                return Err(self.error(&format!("expected ',' or '{}'", char::from(close))));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            trailing_comma = self.eat(b',');
        }
    }

    /// Parses a quoted string. Backslash escapes are kept verbatim after
    /// the backslash: no dtype enigma accepts contains one, so they matter
    /// only for finding the closing quote.
    fn string(&mut self, quote: u8) -> Result<String, ProbeError> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    self.pos = open;
                    return Err(self.error("unterminated string"));
                }
                Some(b'\\') => self.pos += 2,
                Some(b) if b == quote => break,
                Some(_) => self.pos += 1,
            }
        }
        // An escape just before the end can move the cursor one past it.
        self.pos = self.pos.min(self.text.len());
        let text = self.text.get(start..self.pos).unwrap_or("").to_owned();
        self.pos += 1;
        Ok(text)
    }

    /// Parses a decimal integer. A trailing `L` is accepted because numpy
    /// under Python 2 wrote shapes such as `(219L, 2000L)`.
    fn int(&mut self) -> Result<Int, ProbeError> {
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        let digits_start = self.pos;
        let mut value = Some(0u64);
        while let Some(d @ b'0'..=b'9') = self.peek() {
            value = value
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(d - b'0')));
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.error("expected digits"));
        }
        self.eat(b'L');
        if matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'x' | b'j' | b'_')) {
            return Err(self.error("expected a plain decimal integer"));
        }
        Ok(match value {
            _ if negative && value != Some(0) => Int::Negative,
            Some(v) => Int::Small(v),
            None => Int::Huge,
        })
    }
}
