//! Checkpoints of a job of several processes: one shard per rank that
//! holds state of its own, and a manifest that makes them a checkpoint.
//!
//! ```text
//! checkpoints/step-00000200/rank-00000.safetensors   rank 0's parts
//! checkpoints/step-00000200/rank-00001.safetensors   rank 1's parts
//! checkpoints/step-00000200/manifest.json            written last
//! ```
//!
//! A shard is an ordinary checkpoint file (`format.rs`: safetensors with
//! the content hash) whose tensors are *parts*: a run of a tensor's
//! flattened elements, stored 1-d under the tensor's name, with the start
//! and the whole tensor's shape in the metadata (`part/<name>`). Under ZeRO
//! a rank's parts are its slices; a tensor every rank holds whole is
//! written by one of them. Integer tensors (the optimiser's step count
//! `optim.t`, an I64 scalar) are small and never sliced: the rank that
//! writes one stores it whole, in its own dtype, without a place.
//!
//! **Publishing.** Every rank writes its shard atomically (a `.tmp` file,
//! synced, renamed, the directory synced); the ranks then meet at a
//! barrier, and rank 0 writes the manifest the same atomic way, naming
//! every shard with its size and content hash, and the run's metadata (the
//! loader's position, the seed). A step directory without a manifest is not
//! a checkpoint: a crash at any point leaves the previous checkpoint as the
//! newest, and the next publication removes the leftovers.
//!
//! **Loading** reads the manifest, verifies every shard (its own hash, and
//! that it is the file the manifest names), and assembles whole tensors,
//! checking that the parts of each cover it exactly once. What comes out is
//! the same [`Checkpoint`] a one-process run writes, so a job resumes under
//! any world size or ZeRO stage (each rank takes its slice of the whole),
//! and `enigma checkpoint consolidate` writes it as one file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{
    format, Checkpoint, CheckpointError, CheckpointErrorKind as Kind, Fs, I64Tensor, RealFs,
};
use crate::base::host::HostTensor;

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// The manifest's format marker.
const FORMAT: &str = "enigma-sharded-1";

/// The metadata key of a part: `part/<name>` = `<start>:<d0>,<d1>,...`.
const PART_PREFIX: &str = "part/";

/// A run of a tensor's flattened elements: `data` from element `start` of
/// the tensor `name`, whose whole shape is `shape`; or, when `region` is
/// not empty, from element `start` of the box `region` (a half-open range
/// per dim) of it, flattened: a tensor-parallel shard, or a ZeRO slice of
/// one.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub name: String,
    pub shape: Vec<usize>,
    pub region: Vec<(usize, usize)>,
    pub start: usize,
    pub data: Vec<f32>,
}

impl Part {
    /// The whole of `t` as one part.
    pub fn whole(name: &str, t: &HostTensor) -> Part {
        Part {
            name: name.to_string(),
            shape: t.shape.clone(),
            region: Vec::new(),
            start: 0,
            data: t.data.clone(),
        }
    }
}

/// The directory of the sharded checkpoint of `step`.
pub fn step_dir(ckpts: &Path, step: u64) -> PathBuf {
    ckpts.join(format!("step-{step:08}"))
}

fn shard_name(rank: usize) -> String {
    format!("rank-{rank:05}.safetensors")
}

/// Writes `content` to `path` atomically, with the calls single-file
/// checkpoints make ([`RealFs`]): a synced `.tmp` file renamed into place,
/// then the directory synced.
fn write_atomic(path: &Path, content: &[u8]) -> Result<(), CheckpointError> {
    let fs = RealFs;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = super::tmp_path(path);
    let written = fs
        .write_synced(&tmp, content)
        .and_then(|_| fs.rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs.remove(&tmp);
        return Err(CheckpointError::io("could not write", path, &e));
    }
    fs.sync_dir(dir)
        .map_err(|e| CheckpointError::io("could not sync the directory of", path, &e))
}

/// Writes `rank`'s `parts` of the checkpoint of `step` into its step
/// directory under `ckpts`. A rank with no parts writes nothing.
pub fn write_shard(
    ckpts: &Path,
    step: u64,
    rank: usize,
    parts: &[Part],
) -> Result<Option<PathBuf>, CheckpointError> {
    write_shard_state(ckpts, step, rank, parts, &BTreeMap::new())
}

/// Writes `rank`'s `parts` and whole integer tensors `ints` (the step count
/// `optim.t`, on the rank that holds it) of the checkpoint of `step` into
/// its step directory under `ckpts`. A rank with neither writes nothing.
pub fn write_shard_state(
    ckpts: &Path,
    step: u64,
    rank: usize,
    parts: &[Part],
    ints: &BTreeMap<String, I64Tensor>,
) -> Result<Option<PathBuf>, CheckpointError> {
    if parts.is_empty() && ints.is_empty() {
        return Ok(None);
    }
    let dir = step_dir(ckpts, step);
    fs::create_dir_all(&dir)
        .map_err(|e| CheckpointError::io("could not create the step directory", &dir, &e))?;
    let path = dir.join(shard_name(rank));
    let mut ckpt = Checkpoint {
        step,
        ints: ints.clone(),
        ..Checkpoint::default()
    };
    for p in parts {
        let shape: Vec<String> = p.shape.iter().map(usize::to_string).collect();
        let mut place = format!("{}:{}", p.start, shape.join(","));
        if !p.region.is_empty() {
            let region: Vec<String> = p.region.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            place.push(':');
            place.push_str(&region.join(","));
        }
        ckpt.metadata
            .insert(format!("{PART_PREFIX}{}", p.name), place);
        ckpt.tensors.insert(
            p.name.clone(),
            HostTensor {
                shape: vec![p.data.len()],
                data: p.data.clone(),
            },
        );
    }
    let bytes = format::encode(&ckpt, &path)?;
    write_atomic(&path, &bytes)?;
    Ok(Some(path))
}

/// The content hash a checkpoint file records, read from its header only.
fn recorded_hash(path: &Path) -> Result<String, CheckpointError> {
    let mut f = File::open(path).map_err(|e| CheckpointError::io("could not open", path, &e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| CheckpointError::io("could not read the header", path, &e))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(CheckpointError::new(
            Kind::Corrupt,
            path,
            "the header is larger than 100 MB".to_string(),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| CheckpointError::io("could not read the header", path, &e))?;
    header_hash(&header, path)
}

/// The largest safetensors header read.
const MAX_HEADER: u64 = 100 << 20;

/// The content hash recorded in a safetensors `header` (its JSON).
fn header_hash(header: &[u8], path: &Path) -> Result<String, CheckpointError> {
    let corrupt = |m: &str| CheckpointError::new(Kind::Corrupt, path, m.to_string());
    let v: Value = serde_json::from_slice(header).map_err(|_| corrupt("the header is not JSON"))?;
    v.get("__metadata__")
        .and_then(|m| m.get(format::HASH_KEY))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| corrupt("the header records no content hash"))
}

/// The content hash recorded in a whole checkpoint file's `bytes`.
fn bytes_hash(bytes: &[u8], path: &Path) -> Result<String, CheckpointError> {
    let header = bytes
        .get(..8)
        .and_then(|l| l.try_into().ok())
        .map(u64::from_le_bytes)
        .filter(|&n| n <= MAX_HEADER)
        .and_then(|n| bytes.get(8..8 + n as usize))
        .ok_or_else(|| {
            CheckpointError::new(Kind::Corrupt, path, "the header is damaged".to_string())
        })?;
    header_hash(header, path)
}

/// Rank 0, once every rank has written its shard of `step`: writes the
/// manifest that makes the step directory a checkpoint.
pub fn publish(
    ckpts: &Path,
    step: u64,
    world: usize,
    metadata: &BTreeMap<String, String>,
) -> Result<PathBuf, CheckpointError> {
    let dir = step_dir(ckpts, step);
    let mut shards = Vec::new();
    let entries =
        fs::read_dir(&dir).map_err(|e| CheckpointError::io("could not list", &dir, &e))?;
    let mut names: Vec<(usize, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let rank = name
                .strip_prefix("rank-")?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()?;
            Some((rank, e.path()))
        })
        .collect();
    names.sort();
    for (rank, path) in names {
        let bytes = fs::metadata(&path)
            .map_err(|e| CheckpointError::io("could not read", &path, &e))?
            .len();
        shards.push(json!({
            "file": path.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
            "rank": rank,
            "bytes": bytes,
            "hash": recorded_hash(&path)?,
        }));
    }
    if shards.is_empty() {
        return Err(CheckpointError::new(
            Kind::Invalid,
            &dir,
            "no rank wrote a shard".to_string(),
        ));
    }
    let manifest = json!({
        "format": FORMAT,
        "step": step,
        "world": world,
        "metadata": metadata,
        "shards": shards,
    });
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CheckpointError::new(Kind::Invalid, &dir, format!("the manifest: {e}")))?;
    write_atomic(&dir.join(MANIFEST), format!("{text}\n").as_bytes())?;
    Ok(dir)
}

/// Whether `dir` is a published sharded checkpoint.
pub fn is_published(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// Loads the sharded checkpoint in `dir`: every shard verified against the
/// manifest, the parts assembled into whole tensors.
pub fn load_dir(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let mpath = dir.join(MANIFEST);
    let corrupt = |m: String| CheckpointError::new(Kind::Corrupt, &mpath, m);
    let text = fs::read_to_string(&mpath)
        .map_err(|e| CheckpointError::io("could not read", &mpath, &e))?;
    let m: Value = serde_json::from_str(&text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    if m.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(corrupt(format!("not a `{FORMAT}` manifest")));
    }
    let step = m
        .get("step")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("no step".to_string()))?;
    let metadata: BTreeMap<String, String> = m
        .get("metadata")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let shards = m
        .get("shards")
        .and_then(Value::as_array)
        .ok_or_else(|| corrupt("no shards".to_string()))?;
    let mut parts: BTreeMap<String, Runs> = BTreeMap::new();
    let mut ints: BTreeMap<String, I64Tensor> = BTreeMap::new();
    for s in shards {
        let file = s
            .get("file")
            .and_then(Value::as_str)
            .filter(|f| !f.contains('/') && !f.contains(".."))
            .ok_or_else(|| corrupt("a shard without a file name".to_string()))?;
        let path = dir.join(file);
        let want = s.get("hash").and_then(Value::as_str).unwrap_or_default();
        let bytes =
            fs::read(&path).map_err(|e| CheckpointError::io("could not read", &path, &e))?;
        let shard = format::decode(&bytes, &path)?;
        // The bytes read once: decoded and verified above, their recorded
        // hash compared with the manifest's here.
        if bytes_hash(&bytes, &path)? != want || shard.step != step {
            return Err(CheckpointError::new(
                Kind::Corrupt,
                &path,
                format!("the shard is not the one the manifest of step {step} names"),
            ));
        }
        // Integer tensors are whole in the one shard that holds them (a
        // `checkpoint-1` shard's `optim.t` comes out of decoding as one, and
        // its `part/optim.t` place is then not needed).
        for (name, t) in shard.ints {
            if ints.insert(name.clone(), t).is_some() {
                return Err(CheckpointError::new(
                    Kind::Corrupt,
                    &path,
                    format!("`{name}` is in two shards; a whole tensor is written once"),
                ));
            }
        }
        for (name, t) in shard.tensors {
            let spec = shard
                .metadata
                .get(&format!("{PART_PREFIX}{name}"))
                .ok_or_else(|| {
                    CheckpointError::new(Kind::Corrupt, &path, format!("`{name}` has no place"))
                })?;
            let (start, shape, region) = parse_place(spec).ok_or_else(|| {
                CheckpointError::new(
                    Kind::Corrupt,
                    &path,
                    format!("`{name}` has a bad place `{spec}`"),
                )
            })?;
            let entry = parts
                .entry(name.clone())
                .or_insert((shape.clone(), Vec::new()));
            if entry.0 != shape {
                return Err(CheckpointError::new(
                    Kind::Corrupt,
                    &path,
                    format!(
                        "`{name}` is {shape:?} here but {:?} in another shard",
                        entry.0
                    ),
                ));
            }
            entry.1.push((region, start, t.data));
        }
    }
    let mut tensors = BTreeMap::new();
    for (name, (shape, runs)) in parts {
        let data = assemble(&shape, &runs).map_err(|m| corrupt(format!("`{name}`: {m}")))?;
        tensors.insert(name, HostTensor { shape, data });
    }
    if let Some(name) = ints.keys().find(|n| tensors.contains_key(*n)) {
        return Err(corrupt(format!(
            "`{name}` is an I64 tensor in one shard and F32 parts in another"
        )));
    }
    Ok(Checkpoint {
        step,
        tensors,
        ints,
        metadata,
    })
}

/// A box of a tensor: a half-open range per dim (empty: all of it).
type Region = Vec<(usize, usize)>;

/// A run of a part: its region, its start in the region's flattened
/// elements, and its elements.
type Run = (Region, usize, Vec<f32>);

/// A tensor's whole shape and the runs of it the shards hold.
type Runs = (Vec<usize>, Vec<Run>);

/// The whole tensor of `shape` from `runs`, which must cover every element
/// exactly once.
fn assemble(shape: &[usize], runs: &[Run]) -> Result<Vec<f32>, String> {
    let numel: usize = shape.iter().product();
    let mut data = vec![0f32; numel];
    let mut covered = vec![false; numel];
    for (region, start, run) in runs {
        let region: Vec<(usize, usize)> = if region.is_empty() {
            shape.iter().map(|&n| (0, n)).collect()
        } else {
            region.clone()
        };
        if region.len() != shape.len()
            || region.iter().zip(shape).any(|(&(a, b), &n)| a > b || b > n)
        {
            return Err(format!(
                "a part's region {region:?} is not inside {shape:?}"
            ));
        }
        let extent: Vec<usize> = region.iter().map(|(a, b)| b - a).collect();
        let boxed: usize = extent.iter().product();
        if start + run.len() > boxed {
            return Err(format!(
                "a part of {} elements from {start} overruns its region of {boxed}",
                run.len()
            ));
        }
        for (j, &x) in run.iter().enumerate() {
            // The element's coordinates in the box, then in the whole.
            let mut rest = start + j;
            let mut index = 0;
            let mut stride = 1;
            for k in (0..shape.len()).rev() {
                let c = rest % extent[k];
                rest /= extent[k];
                index += (region[k].0 + c) * stride;
                stride *= shape[k];
            }
            if covered[index] {
                return Err(format!("element {index} is covered twice"));
            }
            covered[index] = true;
            data[index] = x;
        }
    }
    if let Some(i) = covered.iter().position(|c| !c) {
        let n = covered.iter().filter(|c| **c).count();
        return Err(format!(
            "the parts cover {n} of its {numel} elements (element {i} is missing)"
        ));
    }
    Ok(data)
}

/// `<start>:<d0>,<d1>,...[:<a0>-<b0>,<a1>-<b1>,...]` (no dims for a
/// scalar; the region only for part of a box).
fn parse_place(spec: &str) -> Option<(usize, Vec<usize>, Region)> {
    let mut fields = spec.split(':');
    let start = fields.next()?.parse().ok()?;
    let shape = fields.next()?;
    let shape = if shape.is_empty() {
        Vec::new()
    } else {
        shape
            .split(',')
            .map(|d| d.parse().ok())
            .collect::<Option<Vec<usize>>>()?
    };
    let region = match fields.next() {
        None => Vec::new(),
        Some(r) => r
            .split(',')
            .map(|x| {
                let (a, b) = x.split_once('-')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect::<Option<Vec<(usize, usize)>>>()?,
    };
    if fields.next().is_some() {
        return None;
    }
    Some((start, shape, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("enigma-sharded-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn part(name: &str, shape: &[usize], start: usize, data: &[f32]) -> Part {
        Part {
            name: name.into(),
            shape: shape.to_vec(),
            region: Vec::new(),
            start,
            data: data.to_vec(),
        }
    }

    #[test]
    fn tensor_parallel_boxes_and_their_zero_slices_assemble() {
        // A [2, 4] weight split by columns over two ranks; rank 1's box is
        // further cut in two ZeRO slices of two elements each.
        let d = scratch("boxes");
        let boxed = |start: usize, region: &[(usize, usize)], data: &[f32]| Part {
            region: region.to_vec(),
            ..part("w", &[2, 4], start, data)
        };
        write_shard(&d, 5, 0, &[boxed(0, &[(0, 2), (0, 2)], &[0., 1., 4., 5.])]).unwrap();
        write_shard(&d, 5, 1, &[boxed(0, &[(0, 2), (2, 4)], &[2., 3.])]).unwrap();
        write_shard(&d, 5, 2, &[boxed(2, &[(0, 2), (2, 4)], &[6., 7.])]).unwrap();
        let dir = publish(&d, 5, 3, &BTreeMap::new()).unwrap();
        let c = load_dir(&dir).unwrap();
        assert_eq!(c.tensors["w"].data, vec![0., 1., 2., 3., 4., 5., 6., 7.]);
        // The same box twice is an error, not a silent overwrite.
        write_shard(&d, 6, 0, &[boxed(0, &[(0, 2), (0, 2)], &[0., 1., 4., 5.])]).unwrap();
        write_shard(&d, 6, 1, &[boxed(0, &[(0, 2), (0, 2)], &[0., 1., 4., 5.])]).unwrap();
        let dir = publish(&d, 6, 2, &BTreeMap::new()).unwrap();
        let e = load_dir(&dir).unwrap_err();
        assert!(e.message.contains("covered twice"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn two_ranks_slices_load_as_whole_tensors() {
        let d = scratch("whole");
        let count = BTreeMap::from([("optim.t".to_string(), I64Tensor::scalar(7))]);
        write_shard_state(
            &d,
            7,
            0,
            &[
                part("w", &[2, 3], 0, &[0., 1., 2.]),
                part("t", &[2], 0, &[0., 7.]),
            ],
            &count,
        )
        .unwrap();
        write_shard(&d, 7, 1, &[part("w", &[2, 3], 3, &[3., 4., 5.])]).unwrap();
        // A rank without state of its own writes nothing.
        assert_eq!(write_shard(&d, 7, 2, &[]).unwrap(), None);
        let mut meta = BTreeMap::new();
        meta.insert("loader.epoch".to_string(), "1".to_string());
        let dir = publish(&d, 7, 3, &meta).unwrap();
        assert!(is_published(&dir));
        let c = load_dir(&dir).unwrap();
        assert_eq!(c.step, 7);
        assert_eq!(c.tensors["w"].shape, vec![2, 3]);
        assert_eq!(c.tensors["w"].data, vec![0., 1., 2., 3., 4., 5.]);
        assert_eq!(c.tensors["t"].data, vec![0., 7.]);
        assert_eq!(c.ints["optim.t"], I64Tensor::scalar(7));
        assert_eq!(c.metadata["loader.epoch"], "1");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_part_or_a_swapped_shard_is_an_error() {
        let d = scratch("gap");
        write_shard(&d, 3, 0, &[part("w", &[4], 0, &[0., 1.])]).unwrap();
        let dir = publish(&d, 3, 2, &BTreeMap::new()).unwrap();
        let e = load_dir(&dir).unwrap_err();
        assert!(e.message.contains("cover 2 of its 4 elements"), "{e}");
        // A shard rewritten after publication is not the manifest's.
        write_shard(&d, 3, 0, &[part("w", &[4], 0, &[9., 9., 9., 9.])]).unwrap();
        let e = load_dir(&dir).unwrap_err();
        assert!(e.message.contains("not the one the manifest"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_integer_tensor_in_two_shards_is_an_error() {
        let d = scratch("ints");
        let count = BTreeMap::from([("optim.t".to_string(), I64Tensor::scalar(3))]);
        // A rank with only integer state still writes its shard.
        let only = write_shard_state(&d, 4, 1, &[], &count).unwrap();
        assert!(only.is_some_and(|p| p.is_file()));
        write_shard_state(&d, 4, 0, &[part("w", &[1], 0, &[1.])], &count).unwrap();
        let dir = publish(&d, 4, 2, &BTreeMap::new()).unwrap();
        let e = load_dir(&dir).unwrap_err();
        assert!(e.message.contains("`optim.t` is in two shards"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn places_parse_with_and_without_dims() {
        assert_eq!(parse_place("12:3,4"), Some((12, vec![3, 4], vec![])));
        assert_eq!(parse_place("0:"), Some((0, vec![], vec![])));
        assert_eq!(
            parse_place("2:4,6:0-2,3-6"),
            Some((2, vec![4, 6], vec![(0, 2), (3, 6)]))
        );
        assert_eq!(parse_place("x:3"), None);
        assert_eq!(parse_place("0:3:0-"), None);
    }
}
