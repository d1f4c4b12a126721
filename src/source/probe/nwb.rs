//! The datasets of an NWB file, listed from its HDF5 metadata.
//!
//! An NWB file is an HDF5 file whose groups follow the NWB schema: spike
//! times live in `units/spike_times` with their ragged index in
//! `units/spike_times_index`, epochs in `intervals/epochs/start_time`, and
//! so on. [`probe`] walks every group and lists each dataset's element type
//! and shape. It reads only the file's metadata through libhdf5 (linked
//! from the system by the `hdf5-metno` crate), never a dataset's values.
//!
//! libhdf5 opens files by name itself, so unlike the `.npy` parser this
//! works on the real file system only.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use hdf5_metno::datatype::ByteOrder;
use hdf5_metno::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5_metno::{Group, LinkType, LocationToken, LocationType};

use super::{ArrayHeader, ProbeError, ProbeErrorKind};

/// How deeply groups may nest. NWB files nest four or five levels; the
/// bound keeps the recursive walk's stack small on a hostile file.
const MAX_DEPTH: usize = 64;

/// How many links the walk follows before giving up. Hard links can make
/// one group reachable by many paths, so without a bound a small file
/// could describe exponentially many paths.
const MAX_LINKS: usize = 1_000_000;

/// The eight bytes that start an HDF5 superblock.
const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Lists every dataset in the NWB (HDF5) file at `path`, keyed by its
/// slash-separated path without the leading slash, with its element type
/// and shape. Soft and external links are not followed, so each dataset
/// appears under the paths by which it is stored, not under aliases.
pub fn probe(path: &Path) -> Result<BTreeMap<String, ArrayHeader>, ProbeError> {
    // libhdf5 prints its error stack to stderr by default; the crate turns
    // that off when it first initialises the library, and asking again
    // makes the intent explicit and survives any other code turning it on.
    hdf5_metno::silence_errors(true);
    // Checking with the standard library first gives a plain message for
    // the common mistakes (no such file, a directory) instead of libhdf5's.
    let meta = fs::metadata(path).map_err(|e| ProbeError::io(path, &e))?;
    if meta.is_dir() {
        return Err(ProbeError::new(
            ProbeErrorKind::Io,
            "cannot read the file: it is a directory",
        )
        .at(path));
    }
    let file = match hdf5_metno::File::open(path) {
        Ok(file) => file,
        Err(error) => {
            let err = if has_hdf5_signature(path, meta.len()) {
                ProbeError::new(
                    ProbeErrorKind::Hdf5,
                    format!("libhdf5 cannot open the file: {error}"),
                )
            } else {
                ProbeError::new(
                    ProbeErrorKind::NotHdf5,
                    "not an HDF5 file (no HDF5 signature found); NWB files are HDF5 files",
                )
            };
            return Err(err.at(path));
        }
    };
    let mut walk = Walk {
        datasets: BTreeMap::new(),
        ancestors: Vec::new(),
        links: 0,
    };
    walk.group(&file, "", 0).map_err(|e| e.at(path))?;
    Ok(walk.datasets)
}

/// Whether the file has an HDF5 superblock signature where the format
/// allows one: at offset 0, 512, 1024, 2048 and so on (after a user block).
/// Used only to explain a failed open, so read errors just mean "no".
fn has_hdf5_signature(path: &Path, len: u64) -> bool {
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let mut offset = 0u64;
    while offset.saturating_add(8) <= len {
        let mut buf = [0u8; 8];
        if file.seek(SeekFrom::Start(offset)).is_err() || file.read_exact(&mut buf).is_err() {
            return false;
        }
        if &buf == HDF5_SIGNATURE {
            return true;
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    false
}

/// The state of one walk over a file's groups.
struct Walk {
    datasets: BTreeMap<String, ArrayHeader>,
    /// The groups on the current path, so a hard link back to an ancestor
    /// (a cycle) is skipped instead of followed forever.
    ancestors: Vec<LocationToken>,
    links: usize,
}

impl Walk {
    fn group(&mut self, group: &Group, prefix: &str, depth: usize) -> Result<(), ProbeError> {
        if depth > MAX_DEPTH {
            return Err(hdf5_error(
                prefix,
                &format!("groups are nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        let token = group
            .loc_info()
            .map_err(|e| hdf5_error(prefix, &e.to_string()))?
            .token;
        if self.ancestors.contains(&token) {
            return Ok(());
        }
        self.ancestors.push(token);
        // Gather the names first and walk them after, so no libhdf5 call is
        // made from inside libhdf5's own iteration callback.
        for name in hard_links(group, prefix)? {
            self.links += 1;
            if self.links > MAX_LINKS {
                return Err(hdf5_error(
                    prefix,
                    &format!("the file has more than {MAX_LINKS} links"),
                ));
            }
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let info = group
                .loc_info_by_name(&name)
                .map_err(|e| hdf5_error(&path, &e.to_string()))?;
            match info.loc_type {
                LocationType::Group => {
                    let child = group
                        .group(&name)
                        .map_err(|e| hdf5_error(&path, &e.to_string()))?;
                    self.group(&child, &path, depth + 1)?;
                }
                LocationType::Dataset => {
                    let header = dataset_header(group, &name)
                        .map_err(|e| hdf5_error(&path, &e.to_string()))?;
                    self.datasets.insert(path, header);
                }
                // Committed datatypes hold no data.
                _ => {}
            }
        }
        self.ancestors.pop();
        Ok(())
    }
}

/// The names of the group's hard links, in name order.
fn hard_links(group: &Group, prefix: &str) -> Result<Vec<String>, ProbeError> {
    let mut names = Vec::new();
    group
        .iter_visit_default(|name, info| {
            if info.link_type == LinkType::Hard {
                names.push(name.to_owned());
            }
            Ok(())
        })
        .map_err(|e| hdf5_error(prefix, &e.to_string()))?;
    Ok(names)
}

fn hdf5_error(object: &str, message: &str) -> ProbeError {
    let object = if object.is_empty() { "/" } else { object };
    ProbeError::new(
        ProbeErrorKind::Hdf5,
        format!("cannot read the HDF5 object {object}: {message}"),
    )
}

/// The element type and shape of one dataset, from its metadata.
fn dataset_header(group: &Group, name: &str) -> hdf5_metno::Result<ArrayHeader> {
    let dataset = group.dataset(name)?;
    let dtype = dataset.dtype()?;
    let shape = dataset
        .space()?
        .shape()
        .into_iter()
        .map(|dim| dim as u64)
        .collect();
    let big_endian = dtype.size() > 1 && dtype.byte_order() == ByteOrder::BigEndian;
    Ok(ArrayHeader {
        dtype: dtype_name(dtype.to_descriptor().ok()).to_owned(),
        shape,
        // HDF5 stores every dataset in row-major (C) order.
        fortran_order: false,
        big_endian,
    })
}

/// Names an HDF5 type the way `.npy` element types are named, so both
/// formats compare alike; types without a numeric meaning get a word.
fn dtype_name(descriptor: Option<TypeDescriptor>) -> &'static str {
    match descriptor {
        Some(TypeDescriptor::Integer(size)) => match size {
            IntSize::U1 => "i8",
            IntSize::U2 => "i16",
            IntSize::U4 => "i32",
            IntSize::U8 => "i64",
        },
        Some(TypeDescriptor::Unsigned(size)) => match size {
            IntSize::U1 => "u8",
            IntSize::U2 => "u16",
            IntSize::U4 => "u32",
            IntSize::U8 => "u64",
        },
        Some(TypeDescriptor::Float(size)) => match size {
            FloatSize::U2 => "f16",
            FloatSize::U4 => "f32",
            FloatSize::U8 => "f64",
        },
        // h5py stores booleans as an enum of FALSE and TRUE, which the
        // crate already reports as `Boolean`.
        Some(TypeDescriptor::Boolean) => "bool",
        Some(TypeDescriptor::Enum(_)) => "enum",
        Some(TypeDescriptor::Compound(_)) => "compound",
        Some(TypeDescriptor::FixedArray(..)) => "array",
        Some(TypeDescriptor::VarLenArray(_)) => "vlen",
        Some(
            TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_)
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenUnicode,
        ) => "string",
        Some(TypeDescriptor::Reference(_)) => "reference",
        // Types the crate cannot describe (opaque, bitfield, time, odd
        // sizes) are still listed, so a shape check can name them.
        None => "opaque",
    }
}
