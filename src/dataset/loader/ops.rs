//! The frame rate of a suite2p plane, from its `ops.npy`.
//!
//! suite2p saves its settings as `ops.npy`: a NumPy object array holding
//! one Python dictionary, written with `pickle`. The frame rate is the
//! dictionary's `fs` entry. Running arbitrary pickles is out of the
//! question, and a general unpickler would be a large dependency for one
//! number, so this module reads the pickle's opcodes after the key `fs`.
//! It understands the ways NumPy and Python write a number there: a Python
//! float (`BINFLOAT`), a small integer (`BININT1`, `BININT2`, `BININT`), or
//! a NumPy `float64` scalar (the `f8` dtype, then its eight bytes). It skips
//! the memo opcodes of pickle protocols 2 to 5 in between.
//!
//! Anything else is `None`: the experiment's `rate:` is then needed, and
//! the error says so. A damaged file is never a panic.

use std::path::Path;

use super::{Error, ErrorKind};

/// `fs` from the `ops.npy` at `path`: `Ok(None)` when the file holds no
/// plain number under that key.
pub fn ops_rate(path: &Path) -> Result<Option<f64>, Error> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::new(ErrorKind::DataIo, format!("cannot read the file: {e}")).file(path)
    })?;
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(Error::new(ErrorKind::DataFormat, "not a `.npy` file").file(path));
    }
    Ok(rate_in(&bytes).filter(|r| r.is_finite() && *r > 0.0))
}

/// The keys `fs` as pickle writes them: `SHORT_BINUNICODE` (protocol 4
/// and up), `BINUNICODE` (protocol 3) and `SHORT_BINSTRING` (protocol 2).
const KEYS: [&[u8]; 3] = [b"\x8c\x02fs", b"X\x02\x00\x00\x00fs", b"U\x02fs"];

/// The number after the first key `fs` in a pickle's bytes.
fn rate_in(bytes: &[u8]) -> Option<f64> {
    let at = KEYS
        .iter()
        .filter_map(|k| find(bytes, k).map(|i| i + k.len()))
        .min()?;
    let mut i = skip_memo(bytes, at);
    let take = |i: usize, n: usize| bytes.get(i..i + n);
    match *bytes.get(i)? {
        b'G' => Some(f64::from_be_bytes(take(i + 1, 8)?.try_into().ok()?)),
        b'K' => Some(f64::from(*bytes.get(i + 1)?)),
        b'M' => Some(f64::from(u16::from_le_bytes(
            take(i + 1, 2)?.try_into().ok()?,
        ))),
        b'J' => Some(f64::from(i32::from_le_bytes(
            take(i + 1, 4)?.try_into().ok()?,
        ))),
        _ => {
            // A NumPy scalar: `scalar(dtype('f8', ...), b'<8 bytes>')`. Its
            // bytes are the first 8-byte `SHORT_BINBYTES` after the `f8`
            // dtype, within the few dozen opcodes that build it.
            let window = bytes.get(i..(i + 160).min(bytes.len()))?;
            let dtype = find(window, b"\x02f8").or_else(|| find(window, b"\x02<f8"))?;
            let rest = &window[dtype..];
            let data = find(rest, b"C\x08")?;
            i = dtype + data + 2;
            Some(f64::from_le_bytes(window.get(i..i + 8)?.try_into().ok()?))
        }
    }
}

/// Past the memo opcodes at `i`: `MEMOIZE`, `BINPUT n`, `LONG_BINPUT n`.
fn skip_memo(bytes: &[u8], mut i: usize) -> usize {
    loop {
        match bytes.get(i) {
            Some(0x94) => i += 1,
            Some(b'q') => i += 2,
            Some(b'r') => i += 5,
            _ => return i,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::rate_in;

    /// The pickles NumPy 2 writes for `np.save("ops.npy", ops)`, from the
    /// key `fs` on (the bytes before it do not matter to the reader).
    #[test]
    fn the_number_after_fs_is_read_however_numpy_wrote_it() {
        // `'fs': 30.0`, protocol 4.
        let float = b"}\x94(\x8c\x02fs\x94G@>\x00\x00\x00\x00\x00\x00\x8c\x07nplanes";
        assert_eq!(rate_in(float), Some(30.0));
        // `'fs': 10`.
        assert_eq!(rate_in(b"\x8c\x02fs\x94K\x0a\x8c\x03tau"), Some(10.0));
        // `'fs': 1000`, protocol 3 with a `BINPUT`.
        assert_eq!(rate_in(b"X\x02\x00\x00\x00fsq\x13M\xe8\x03"), Some(1000.0));
        // `'fs': np.float64(15.5)`: `scalar(dtype('f8'), bytes)`.
        let mut scalar = b"\x8c\x02fs\x94h\x00\x8c\x06scalar\x94\x93\x94h\x0b\x8c\x02f8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94bC\x08".to_vec();
        scalar.extend(15.5f64.to_le_bytes());
        assert_eq!(rate_in(&scalar), Some(15.5));
    }

    #[test]
    fn anything_else_is_none() {
        assert_eq!(rate_in(b"\x8c\x02fs\x94N"), None);
        assert_eq!(rate_in(b"no key here"), None);
        assert_eq!(rate_in(b"\x8c\x02fs\x94G@>"), None);
    }
}
