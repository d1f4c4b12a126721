//! The values of a `.npy` file, read whole into memory.
//!
//! [`crate::source::probe::npy`] parses the header; this module reads the data that
//! follows it, in any element type the header parser accepts (`bool`,
//! `f16`, `f32`, `f64`, `i8` to `i64`, `u8` to `u64`), either byte order
//! and either memory order, and returns a row-major [`Array`] of `f32` or
//! `f64`. It also permutes axes (a file stored `[N, T]` becomes the
//! modality's `[T, N]`) and finds the first value that is not finite, with
//! its position in the file's own coordinates for the message.
//!
//! The data is read in bounded chunks, so a file costs its converted size
//! in memory and no more; a file shorter than its header claims is an
//! error before anything is allocated.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::{Error, ErrorKind};
use crate::source::probe::npy;

/// A dense, row-major array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// The element types an array can be read into.
pub trait Element: Copy + Default + Send + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

impl Element for f32 {
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

/// Bytes read per chunk: large enough to amortise the calls, small enough
/// not to matter beside the array.
const CHUNK: usize = 1 << 20;

/// An opened `.npy` file: its handle, shape, element decoder and where
/// its data starts, with the file's length already checked against the
/// header.
pub struct NpyFile {
    pub path: std::path::PathBuf,
    pub file: File,
    /// The shape in the file's memory order (reversed for Fortran order).
    pub shape: Vec<usize>,
    pub fortran: bool,
    pub data_offset: u64,
    /// Bytes per element.
    pub size: usize,
    pub decode: Decode,
}

impl NpyFile {
    /// Opens `path` and parses its header.
    pub fn open(path: &Path) -> Result<NpyFile, Error> {
        let mut file = File::open(path).map_err(|e| Error::io(path, &e))?;
        let len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
        let prefix_len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(npy::PREFIX_LEN);
        let mut prefix = vec![0u8; prefix_len];
        file.read_exact(&mut prefix)
            .map_err(|e| Error::io(path, &e))?;
        let header = npy::parse(&prefix).map_err(|e| Error::from(e.at(path)))?;
        npy::check_len(&header, len).map_err(|e| Error::from(e.at(path)))?;
        let (size, decode) =
            decoder(&header.array.dtype, header.array.big_endian).ok_or_else(|| {
                Error::new(
                    ErrorKind::DataFormat,
                    format!("cannot read elements of type {}", header.array.dtype),
                )
                .file(path)
            })?;
        let mut shape: Vec<usize> = header
            .array
            .shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| too_big(path)))
            .collect::<Result<_, _>>()?;
        let fortran = header.array.fortran_order && shape.len() > 1;
        if fortran {
            shape.reverse();
        }
        Ok(NpyFile {
            path: path.to_path_buf(),
            file,
            shape,
            fortran,
            data_offset: header.data_offset,
            size,
            decode,
        })
    }
}

fn too_big(path: &Path) -> Error {
    Error::new(
        ErrorKind::DataFormat,
        "the array is too large for this machine's address space",
    )
    .file(path)
}

/// Reads the whole array in the `.npy` file at `path`.
pub fn read_npy<T: Element>(path: &Path) -> Result<Array<T>, Error> {
    let NpyFile {
        mut file,
        shape,
        fortran,
        data_offset,
        size,
        decode,
        ..
    } = NpyFile::open(path)?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| too_big(path))?;
    file.seek(SeekFrom::Start(data_offset))
        .map_err(|e| Error::io(path, &e))?;
    let mut data: Vec<T> = Vec::with_capacity(count);
    let mut buf = vec![0u8; (CHUNK / size) * size];
    while data.len() < count {
        let want = ((count - data.len()) * size).min(buf.len());
        let chunk = &mut buf[..want];
        file.read_exact(chunk).map_err(|e| Error::io(path, &e))?;
        data.extend(chunk.chunks_exact(size).map(|b| T::from_f64(decode(b))));
    }
    // A Fortran-order array is the C-order array of the reversed shape with
    // its axes reversed.
    if fortran {
        let axes: Vec<usize> = (0..shape.len()).rev().collect();
        return permute(&Array { shape, data }, &axes).ok_or_else(|| too_big(path));
    }
    Ok(Array { shape, data })
}

/// A function from one element's bytes to its value.
pub type Decode = fn(&[u8]) -> f64;

/// The element size and decoder for an element type in enigma's spelling.
fn decoder(dtype: &str, big: bool) -> Option<(usize, Decode)> {
    macro_rules! num {
        ($t:ty, $n:expr) => {
            if big {
                (
                    $n,
                    (|b: &[u8]| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(&b[..$n]);
                        <$t>::from_be_bytes(a) as f64
                    }) as Decode,
                )
            } else {
                (
                    $n,
                    (|b: &[u8]| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(&b[..$n]);
                        <$t>::from_le_bytes(a) as f64
                    }) as Decode,
                )
            }
        };
    }
    Some(match dtype {
        "bool" => (1, (|b: &[u8]| f64::from(u8::from(b[0] != 0))) as Decode),
        "u8" => (1, (|b: &[u8]| f64::from(b[0])) as Decode),
        "i8" => (1, (|b: &[u8]| f64::from(b[0] as i8)) as Decode),
        "f16" => {
            if big {
                (
                    2,
                    (|b: &[u8]| half(u16::from_be_bytes([b[0], b[1]]))) as Decode,
                )
            } else {
                (
                    2,
                    (|b: &[u8]| half(u16::from_le_bytes([b[0], b[1]]))) as Decode,
                )
            }
        }
        "i16" => num!(i16, 2),
        "u16" => num!(u16, 2),
        "i32" => num!(i32, 4),
        "u32" => num!(u32, 4),
        "f32" => num!(f32, 4),
        "i64" => num!(i64, 8),
        "u64" => num!(u64, 8),
        "f64" => num!(f64, 8),
        _ => return None,
    })
}

/// An IEEE 754 half-precision value.
fn half(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut out = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1] * shape[i + 1];
    }
    out
}

/// The array with its axes in the order `axes` (output axis `j` is input
/// axis `axes[j]`), or `None` when `axes` is not a permutation of the
/// array's axes or its values do not fill its shape.
pub fn permute<T: Copy>(a: &Array<T>, axes: &[usize]) -> Option<Array<T>> {
    let mut seen = vec![false; a.shape.len()];
    for &k in axes {
        if std::mem::replace(seen.get_mut(k)?, true) {
            return None;
        }
    }
    if axes.len() != a.shape.len() || a.shape.iter().product::<usize>() != a.data.len() {
        return None;
    }
    let in_strides = strides(&a.shape);
    let shape: Vec<usize> = axes.iter().map(|&k| a.shape[k]).collect();
    let gather: Vec<usize> = axes.iter().map(|&k| in_strides[k]).collect();
    if a.data.is_empty() || axes.iter().enumerate().all(|(j, &k)| j == k) {
        return Some(Array {
            shape,
            data: a.data.clone(),
        });
    }
    let mut data = Vec::with_capacity(a.data.len());
    let last = shape.len() - 1;
    let mut index = vec![0usize; shape.len()];
    let mut base = 0usize;
    loop {
        // Every offset is below the element count, which the checks above
        // tie to the shape.
        let step = gather[last];
        data.extend((0..shape[last]).map(|i| a.data[base + i * step]));
        // Advance the odometer over every axis but the last.
        let mut k = last;
        loop {
            if k == 0 {
                return Some(Array { shape, data });
            }
            k -= 1;
            index[k] += 1;
            base += gather[k];
            if index[k] < shape[k] {
                break;
            }
            base -= gather[k] * index[k];
            index[k] = 0;
        }
    }
}

/// The multi-index of flat position `flat` in a row-major `shape`.
pub fn unravel(shape: &[usize], mut flat: usize) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            out[k] = flat % d;
            flat /= d;
        }
    }
    out
}

/// A position for messages: "row 3, column 4" in a matrix, "element 7" in
/// a vector, "index [1, 2, 3]" otherwise.
pub fn position_text(index: &[usize]) -> String {
    match index {
        [i] => format!("element {i}"),
        [r, c] => format!("row {r}, column {c}"),
        _ => format!(
            "index [{}]",
            index
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What a non-finite value is, for messages.
pub fn non_finite_name(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else {
        "infinite"
    }
}

/// The multi-index of the first value that is not finite, skipping the
/// positions `keep` rules out: `keep(axis, i)` says whether position `i`
/// of `axis` reaches the model (a `select` drops the rest).
pub fn first_non_finite<T: Element>(
    a: &Array<T>,
    keep: &dyn Fn(usize, usize) -> bool,
) -> Option<(Vec<usize>, f64)> {
    let mut from = 0;
    while let Some(offset) = a
        .data
        .get(from..)?
        .iter()
        .position(|v| !v.to_f64().is_finite())
    {
        let flat = from + offset;
        let index = unravel(&a.shape, flat);
        if index.iter().enumerate().all(|(k, &i)| keep(k, i)) {
            return Some((index, a.data[flat].to_f64()));
        }
        from = flat + 1;
    }
    None
}

/// A version 1.0 `.npy` file of `descr`, `fortran` and `shape` (a Python
/// tuple, `(3, 4)`) holding `data`: the one `.npy` writer, of the loader's
/// test files and of `enigma predict`'s outputs.
pub(crate) fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Array<f64>, Error> {
        let dir = std::env::temp_dir().join(format!(
            "enigma-array-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        std::fs::write(&path, bytes).unwrap();
        read_npy::<f64>(&path)
    }

    #[test]
    fn every_element_type_and_byte_order_reads() {
        let vals: Vec<f64> = vec![1.0, -2.0, 3.0, 4.0, -5.0, 6.0];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "<f4",
                vals.iter()
                    .flat_map(|v| (*v as f32).to_le_bytes())
                    .collect(),
            ),
            (
                ">f4",
                vals.iter()
                    .flat_map(|v| (*v as f32).to_be_bytes())
                    .collect(),
            ),
            ("<f8", vals.iter().flat_map(|v| v.to_le_bytes()).collect()),
            (">f8", vals.iter().flat_map(|v| v.to_be_bytes()).collect()),
            (
                "<i2",
                vals.iter()
                    .flat_map(|v| (*v as i16).to_le_bytes())
                    .collect(),
            ),
            (
                ">i4",
                vals.iter()
                    .flat_map(|v| (*v as i32).to_be_bytes())
                    .collect(),
            ),
            (
                "<i8",
                vals.iter()
                    .flat_map(|v| (*v as i64).to_le_bytes())
                    .collect(),
            ),
            ("|i1", vals.iter().map(|v| *v as i8 as u8).collect()),
            // 1.0 and -2.0 ... as half floats.
            (
                "<f2",
                [0x3c00u16, 0xc000, 0x4200, 0x4400, 0xc500, 0x4600]
                    .iter()
                    .flat_map(|h| h.to_le_bytes())
                    .collect(),
            ),
        ];
        for (descr, data) in cases {
            let a = read(&npy_bytes(descr, false, "(2, 3)", &data)).unwrap();
            assert_eq!(a.shape, [2, 3], "{descr}");
            assert_eq!(a.data, vals, "{descr}");
        }
        let u = read(&npy_bytes("<u2", false, "(3,)", &[1, 0, 0, 1, 255, 255])).unwrap();
        assert_eq!(u.data, [1.0, 256.0, 65535.0]);
        let b = read(&npy_bytes("|b1", false, "(3,)", &[1, 0, 1])).unwrap();
        assert_eq!(b.data, [1.0, 0.0, 1.0]);
    }

    #[test]
    fn fortran_order_is_turned_into_row_major() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let data: Vec<u8> = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = read(&npy_bytes("<f8", true, "(2, 3)", &data)).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn short_and_foreign_files_are_errors_naming_the_file() {
        let e = read(&npy_bytes("<f8", false, "(2, 3)", &[0; 40])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::DataFormat);
        assert!(e.to_string().contains("a.npy") && e.to_string().contains("holds only 40 bytes"));
        let e = read(b"not an npy file").unwrap_err();
        assert!(e.to_string().contains("not an npy file"), "{e}");
    }

    #[test]
    fn permute_and_positions() {
        let a = Array {
            shape: vec![2, 3, 2],
            data: (0..12).map(|v| v as f32).collect::<Vec<_>>(),
        };
        let p = permute(&a, &[2, 0, 1]).unwrap();
        assert!(permute(&a, &[0, 0, 1]).is_none() && permute(&a, &[0, 1]).is_none());
        assert_eq!(p.shape, [2, 2, 3]);
        assert_eq!(p.data[..6], [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(p.data[6..], [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
        assert_eq!(unravel(&[2, 3, 2], 7), [1, 0, 1]);
        assert_eq!(position_text(&[3, 4]), "row 3, column 4");
        let mut b = Array {
            shape: vec![3, 2],
            data: vec![0.0f64; 6],
        };
        b.data[1] = f64::NAN;
        b.data[4] = f64::INFINITY;
        assert_eq!(
            first_non_finite(&b, &|_, _| true).map(|x| x.0),
            Some(vec![0, 1])
        );
        // Row 0 dropped by a selection: the infinity in row 2 is first.
        let (at, v) = first_non_finite(&b, &|axis, i| axis != 0 || i != 0).unwrap();
        assert_eq!((at, non_finite_name(v)), (vec![2, 0], "infinite"));
    }
}
