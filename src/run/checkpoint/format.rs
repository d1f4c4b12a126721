//! The bytes of one checkpoint file: encoding, decoding and verifying.
//!
//! Everything here works on memory; the directory, the atomic write and
//! pruning live in the parent module. Decoding never trusts the file: every
//! length, offset and dtype is checked before it is used, and every failure
//! is a [`CheckpointError`] naming the file (and the tensor, when one is at
//! fault).
//!
//! Two versions are read. [`FORMAT`] (`checkpoint-2`, written) holds F32
//! and I64 tensors and hashes each tensor's dtype with it. [`FORMAT_V1`]
//! (`checkpoint-1`) held F32 only, with the optimiser's step count
//! `optim.t` as two f32 halves of 24 bits each; decoding such a file checks
//! it with the hash of its own version and gives `optim.t` as the I64
//! scalar it stands for, so every caller sees one layout.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorInfo;
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};

use super::{Checkpoint, CheckpointError, CheckpointErrorKind as Kind, I64Tensor};
use crate::base::fnv::Fnv1a;
use crate::base::host::HostTensor;

/// The value of [`FORMAT_KEY`] this build writes (and reads).
pub const FORMAT: &str = "checkpoint-2";

/// The previous format, which this build still reads: F32 tensors only,
/// the step count `optim.t` as two f32 halves, a hash without dtypes.
pub const FORMAT_V1: &str = "checkpoint-1";

/// Metadata keys starting with this prefix belong to the checkpoint store;
/// user metadata may not use them.
pub const RESERVED_PREFIX: &str = "enigma.";

/// The format marker: a safetensors file without it is not a checkpoint.
pub const FORMAT_KEY: &str = "enigma.format";

/// The training step, in decimal.
pub const STEP_KEY: &str = "enigma.step";

/// The content hash, `fnv1a64:` followed by 16 lower-case hex digits.
pub const HASH_KEY: &str = "enigma.hash";

const HASH_PREFIX: &str = "fnv1a64:";

/// safetensors reserves this name for the metadata map, so no tensor can
/// have it.
const METADATA_NAME: &str = "__metadata__";

/// The name under which the runtime stores the optimiser's step count, the
/// one tensor whose layout changed between the two versions.
const STEP_COUNT: &str = "optim.t";

/// The format versions this build reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One tensor as stored, borrowed: what the writer and the hash walk over
/// whatever its dtype.
#[derive(Clone, Copy)]
enum Stored<'a> {
    F32(&'a HostTensor),
    I64(&'a I64Tensor),
}

impl<'a> Stored<'a> {
    fn dtype(self) -> Dtype {
        match self {
            Stored::F32(_) => Dtype::F32,
            Stored::I64(_) => Dtype::I64,
        }
    }

    /// The dtype's name as the header and the hash spell it.
    fn dtype_name(self) -> &'static str {
        match self {
            Stored::F32(_) => "F32",
            Stored::I64(_) => "I64",
        }
    }

    /// The number of bytes of the values.
    fn byte_len(self) -> usize {
        match self {
            Stored::F32(t) => t.data.len() * 4,
            Stored::I64(t) => t.data.len() * 8,
        }
    }

    /// Feeds the little-endian bytes of the values to `h`, value by value,
    /// without a copy of the tensor's bytes.
    fn hash_values(self, h: &mut Fnv1a) {
        match self {
            Stored::F32(t) => t.data.iter().for_each(|v| h.bytes(&v.to_le_bytes())),
            Stored::I64(t) => t.data.iter().for_each(|v| h.bytes(&v.to_le_bytes())),
        }
    }

    fn shape(self) -> &'a [usize] {
        match self {
            Stored::F32(t) => &t.shape,
            Stored::I64(t) => &t.shape,
        }
    }

    fn len(self) -> usize {
        match self {
            Stored::F32(t) => t.data.len(),
            Stored::I64(t) => t.data.len(),
        }
    }

    /// The little-endian bytes of the values.
    fn bytes(self) -> Vec<u8> {
        match self {
            Stored::F32(t) => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Stored::I64(t) => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Every tensor of `tensors` and `ints`, merged in name order. Encoding has
/// checked that no name is in both.
fn stored<'a>(
    tensors: &'a BTreeMap<String, HostTensor>,
    ints: &'a BTreeMap<String, I64Tensor>,
) -> Vec<(&'a str, Stored<'a>)> {
    let mut all: Vec<(&str, Stored)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), Stored::F32(t)))
        .chain(ints.iter().map(|(n, t)| (n.as_str(), Stored::I64(t))))
        .collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

/// The bytes of `ckpt` as a safetensors file, with the reserved metadata
/// added. `path` is only used to name the file in errors.
pub(super) fn encode(ckpt: &Checkpoint, path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let invalid = |message: String| CheckpointError::new(Kind::Invalid, path, message);
    if let Some(key) = ckpt
        .metadata
        .keys()
        .find(|k| k.starts_with(RESERVED_PREFIX))
    {
        return Err(invalid(format!(
            "metadata key `{key}` is reserved: keys starting with `{RESERVED_PREFIX}` are \
             written by the checkpoint store"
        )));
    }
    if let Some(name) = ckpt.ints.keys().find(|n| ckpt.tensors.contains_key(*n)) {
        return Err(invalid(format!(
            "tensor `{name}` is both an F32 and an I64 tensor; a name holds one tensor"
        )));
    }
    for (name, tensor) in stored(&ckpt.tensors, &ckpt.ints) {
        if name == METADATA_NAME {
            return Err(invalid(format!(
                "a tensor cannot be named `{METADATA_NAME}`: safetensors keeps its metadata \
                 under that name"
            )));
        }
        // The fields of a tensor are public, so nothing has checked them
        // yet; a mismatch here would otherwise write a file no one can read.
        if numel(tensor.shape()) != Some(tensor.len()) {
            return Err(invalid(format!(
                "tensor `{name}` has shape {:?} but {} values",
                tensor.shape(),
                tensor.len()
            )));
        }
    }

    let mut metadata = ckpt.metadata.clone();
    metadata.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
    metadata.insert(STEP_KEY.to_string(), ckpt.step.to_string());
    let hash = content_hash(Version::V2, &metadata, &ckpt.tensors, &ckpt.ints);
    metadata.insert(HASH_KEY.to_string(), format!("{HASH_PREFIX}{hash:016x}"));

    let views = stored(&ckpt.tensors, &ckpt.ints)
        .into_iter()
        .map(|(name, tensor)| (name, TensorView(tensor)));
    let metadata: HashMap<String, String> = metadata.into_iter().collect();
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| invalid(format!("could not encode the checkpoint: {e}")))
}

/// The checkpoint in `bytes`, verified: the marker, the step, every
/// tensor's dtype and size, and the content hash. `path` names the file in
/// errors.
pub(super) fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
    let error = |kind: Kind, message: String| CheckpointError::new(kind, path, message);
    let (header_len, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        // safetensors says "invalid shape, data type, or offset for tensor"
        // without the tensor's name; find it ourselves when we can.
        match describe_bad_tensor(bytes) {
            Some(message) => error(Kind::Tensor, message),
            None => error(Kind::Format, describe_format_error(&e, bytes.len())),
        }
    })?;
    let data = header_len
        .checked_add(8)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| error(Kind::Format, "the header runs past the end".to_string()))?;

    let stored_meta: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let version = match stored_meta.get(FORMAT_KEY).map(String::as_str) {
        Some(FORMAT) => Version::V2,
        Some(FORMAT_V1) => Version::V1,
        Some(other) => {
            let message = format!(
                "checkpoint format `{other}` is not one this build reads (`{FORMAT}`, \
                 `{FORMAT_V1}`)"
            );
            return Err(error(Kind::NotCheckpoint, message));
        }
        None => {
            let message = format!(
                "a safetensors file without the `{FORMAT_KEY}` marker: not an enigma checkpoint"
            );
            return Err(error(Kind::NotCheckpoint, message));
        }
    };
    let step = stored_meta
        .get(STEP_KEY)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            error(
                Kind::Corrupt,
                format!("`{STEP_KEY}` is missing or not a whole number"),
            )
        })?;
    let expected_hash = stored_meta
        .get(HASH_KEY)
        .and_then(|h| h.strip_prefix(HASH_PREFIX))
        .and_then(parse_hash)
        .ok_or_else(|| {
            error(
                Kind::Corrupt,
                format!("`{HASH_KEY}` is missing or not `{HASH_PREFIX}` and 16 hex digits"),
            )
        })?;

    let mut tensors = BTreeMap::new();
    let mut ints = BTreeMap::new();
    // Offset order rather than the header's hash-map order, so that the
    // tensor an error names does not change from one run to the next.
    for name in header.offset_keys() {
        let info = header
            .info(&name)
            .ok_or_else(|| error(Kind::Tensor, format!("tensor `{name}` has no header entry")))?;
        match read_tensor(version, &name, info, data) {
            Ok(Read::F32(t)) => {
                tensors.insert(name, t);
            }
            Ok(Read::I64(t)) => {
                ints.insert(name, t);
            }
            Err(TensorProblem(message)) => return Err(error(Kind::Tensor, message)),
        }
    }

    let actual_hash = content_hash(version, &stored_meta, &tensors, &ints);
    if actual_hash != expected_hash {
        return Err(error(
            Kind::Corrupt,
            format!(
                "the contents hash to {HASH_PREFIX}{actual_hash:016x} but the file records \
                 {HASH_PREFIX}{expected_hash:016x}: the file is damaged"
            ),
        ));
    }
    if version == Version::V1 {
        upgrade_step_count(&mut tensors, &mut ints)
            .map_err(|TensorProblem(message)| error(Kind::Tensor, message))?;
    }

    let metadata = stored_meta
        .into_iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
        .collect();
    Ok(Checkpoint {
        step,
        tensors,
        ints,
        metadata,
    })
}

/// A `checkpoint-1` file's `optim.t`, two f32 holding the high and the low
/// 24 bits of the optimiser's step count, moved to `ints` as the I64
/// scalar `checkpoint-2` stores. Both halves must be whole numbers below
/// 2^24; anything else is not a step count, and resuming from it would
/// silently change Adam's bias correction.
fn upgrade_step_count(
    tensors: &mut BTreeMap<String, HostTensor>,
    ints: &mut BTreeMap<String, I64Tensor>,
) -> Result<(), TensorProblem> {
    let Some(t) = tensors.remove(STEP_COUNT) else {
        return Ok(());
    };
    let half = |x: f32| (x.fract() == 0.0 && (0.0..16_777_216.0).contains(&x)).then_some(x as i64);
    match (t.shape.as_slice(), t.data.as_slice()) {
        ([2], &[hi, lo]) => match (half(hi), half(lo)) {
            (Some(hi), Some(lo)) => {
                ints.insert(STEP_COUNT.to_string(), I64Tensor::scalar((hi << 24) | lo));
                Ok(())
            }
            _ => Err(TensorProblem(format!(
                "tensor `{STEP_COUNT}` of this {FORMAT_V1} file holds {hi} and {lo}, which are \
                 not the two 24-bit halves of a step count (whole numbers from 0 to 16777215)"
            ))),
        },
        (shape, _) => Err(TensorProblem(format!(
            "tensor `{STEP_COUNT}` of this {FORMAT_V1} file has shape {shape:?}; that version \
             stores the step count as F32 of shape [2] (two 24-bit halves)"
        ))),
    }
}

/// Why a tensor's bytes cannot be read, before the caller names the file.
struct TensorProblem(String);

/// A tensor read from the file, in its dtype.
enum Read {
    F32(HostTensor),
    I64(I64Tensor),
}

/// The tensor `name` whose header entry is `info`, from `data` (the bytes
/// after the header) of a file of `version`, or why it cannot be read.
fn read_tensor(
    version: Version,
    name: &str,
    info: &TensorInfo,
    data: &[u8],
) -> Result<Read, TensorProblem> {
    let problem = TensorProblem;
    let width = match (info.dtype, version) {
        (Dtype::F32, _) => 4,
        (Dtype::I64, Version::V2) => 8,
        (other, Version::V2) => {
            return Err(problem(format!(
                "tensor `{name}` is {other}; checkpoints hold only F32 and I64"
            )))
        }
        (other, Version::V1) => {
            return Err(problem(format!(
                "tensor `{name}` is {other}; {FORMAT_V1} files hold only F32"
            )))
        }
    };
    let (start, end) = info.data_offsets;
    let raw = data
        .get(start..end)
        .ok_or_else(|| problem(format!("the data of tensor `{name}` lies outside the file")))?;
    if numel(&info.shape).and_then(|n| n.checked_mul(width)) != Some(raw.len()) {
        return Err(problem(format!(
            "tensor `{name}` has shape {:?} but {} bytes of data",
            info.shape,
            raw.len()
        )));
    }
    let misaligned = || problem(format!("tensor `{name}` is misaligned"));
    let shape = info.shape.clone();
    // chunks_exact yields slices of exactly `width` bytes only, so the
    // conversions cannot fail; they are still checked rather than unwrapped.
    if info.dtype == Dtype::I64 {
        let values: Option<Vec<i64>> = raw
            .chunks_exact(8)
            .map(|c| c.try_into().ok().map(i64::from_le_bytes))
            .collect();
        let data = values.ok_or_else(misaligned)?;
        return Ok(Read::I64(I64Tensor { shape, data }));
    }
    let values: Option<Vec<f32>> = raw
        .chunks_exact(4)
        .map(|c| c.try_into().ok().map(f32::from_le_bytes))
        .collect();
    let data = values.ok_or_else(misaligned)?;
    Ok(Read::F32(HostTensor { shape, data }))
}

/// The value of exactly 16 lower-case hex digits. Being strict means that
/// a bit flip in the stored hash can never spell the same value (as `A`
/// for `a` would with a lenient parse).
fn parse_hash(hex: &str) -> Option<u64> {
    let lower = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if hex.len() != 16 || !hex.bytes().all(lower) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The product of `shape`, or `None` when it overflows.
fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// A borrowed tensor as safetensors wants it: little-endian bytes of its
/// own dtype.
struct TensorView<'a>(Stored<'a>);

impl View for TensorView<'_> {
    fn dtype(&self) -> Dtype {
        self.0.dtype()
    }

    fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// safetensors asks for each tensor's bytes once, while it copies them
    /// into the file's buffer, so converting here keeps one tensor's bytes
    /// in memory at a time instead of a second copy of the whole model.
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.bytes())
    }

    fn data_len(&self) -> usize {
        self.0.byte_len()
    }
}

/// The content hash: FNV-1a over the metadata entries except the hash
/// itself, in key order, then over every tensor's name, dtype (from
/// `checkpoint-2` on), shape and little-endian bytes, in name order. Every
/// variable-length field is preceded by its length. The definition is in
/// `docs/checkpoints.md`.
fn content_hash(
    version: Version,
    metadata: &BTreeMap<String, String>,
    tensors: &BTreeMap<String, HostTensor>,
    ints: &BTreeMap<String, I64Tensor>,
) -> u64 {
    let mut h = Fnv1a::new();
    let hashed = || metadata.iter().filter(|(k, _)| k.as_str() != HASH_KEY);
    h.u64(hashed().count() as u64);
    for (key, value) in hashed() {
        h.str(key);
        h.str(value);
    }
    let all = stored(tensors, ints);
    h.u64(all.len() as u64);
    for (name, tensor) in all {
        h.str(name);
        if version == Version::V2 {
            // The dtype is hashed so that the same bytes read as another
            // dtype (a flipped dtype in the header) cannot verify.
            h.str(tensor.dtype_name());
        }
        h.u64(tensor.shape().len() as u64);
        for &d in tensor.shape() {
            h.u64(d as u64);
        }
        h.u64(tensor.byte_len() as u64);
        tensor.hash_values(&mut h);
    }
    h.finish()
}

/// Why safetensors could not read the header, in words that say what
/// probably happened to the file.
fn describe_format_error(e: &SafeTensorError, len: usize) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => {
            format!("the file is {len} bytes, too short for a safetensors header (truncated?)")
        }
        SafeTensorError::InvalidHeaderLength => format!(
            "the header length in the first 8 bytes is more than the file's {len} bytes: \
             not a safetensors file, or truncated"
        ),
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the file's {len} bytes disagree with the tensor sizes in its header: truncated \
             or damaged"
        ),
        SafeTensorError::HeaderTooLarge => {
            "not a safetensors file: the first 8 bytes give an impossible header length".to_string()
        }
        SafeTensorError::InvalidHeader(_) | SafeTensorError::InvalidHeaderStart => {
            format!("not a safetensors file: {e}")
        }
        SafeTensorError::InvalidHeaderDeserialization(_) => {
            format!("not a safetensors file, or its header is damaged: {e}")
        }
        _ => format!("the safetensors header is inconsistent: {e}"),
    }
}

/// The first tensor (in name order) whose header entry is not an F32 or
/// I64 tensor whose shape matches its byte range, described; `None` when
/// the header cannot be read that far or every entry is consistent.
fn describe_bad_tensor(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..end)?).ok()?;
    for (name, info) in &header {
        if name == METADATA_NAME {
            continue;
        }
        let width = match info.get("dtype")?.as_str()? {
            "F32" => 4,
            "I64" => 8,
            other => {
                return Some(format!(
                    "tensor `{name}` is {other}; checkpoints hold only F32 and I64"
                ))
            }
        };
        let shape: Vec<u64> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        let offsets = info.get("data_offsets")?.as_array()?;
        let (start, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        let needed = shape.iter().try_fold(width, |n: u64, &d| n.checked_mul(d));
        if end < start || needed != Some(end - start) {
            let needed = needed.map_or("more than 2^64".to_string(), |n| n.to_string());
            return Some(format!(
                "tensor `{name}` has shape {shape:?}, which needs {needed} bytes, but its \
                 data offsets {start}..{end} span {} bytes",
                end.saturating_sub(start)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("dir/step-00000007.safetensors")
    }

    fn tensor(shape: Vec<usize>, data: Vec<f32>) -> HostTensor {
        HostTensor { shape, data }
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            step: 7,
            tensors: BTreeMap::from([("w".to_string(), tensor(vec![2], vec![1.0, -0.0]))]),
            ints: BTreeMap::new(),
            metadata: BTreeMap::from([("note".to_string(), "hi".to_string())]),
        }
    }

    /// `checkpoint()` with the step count the runtime stores.
    fn with_step_count() -> Checkpoint {
        let mut c = checkpoint();
        c.ints
            .insert(STEP_COUNT.to_string(), I64Tensor::scalar(1 << 40));
        c
    }

    /// The bytes of a `checkpoint-1` file as the previous build wrote it:
    /// F32 tensors only, `optim.t` as two 24-bit halves, the hash without
    /// dtypes.
    fn v1_file(halves: [f32; 2]) -> Vec<u8> {
        let mut tensors = checkpoint().tensors;
        tensors.insert(STEP_COUNT.to_string(), tensor(vec![2], halves.to_vec()));
        let mut metadata = checkpoint().metadata;
        metadata.insert(FORMAT_KEY.into(), FORMAT_V1.into());
        metadata.insert(STEP_KEY.into(), "7".into());
        let hash = content_hash(Version::V1, &metadata, &tensors, &BTreeMap::new());
        metadata.insert(HASH_KEY.into(), format!("{HASH_PREFIX}{hash:016x}"));
        let views = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), TensorView(Stored::F32(t))));
        safetensors::serialize(views, Some(metadata.into_iter().collect())).unwrap()
    }

    /// A safetensors file with `header` as its JSON header, made by hand so
    /// that it can be wrong in ways the writer never is.
    fn raw(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    const MARKED: &str = r#""__metadata__":{"enigma.format":"checkpoint-1","enigma.step":"7","enigma.hash":"fnv1a64:0000000000000000"}"#;

    #[test]
    fn the_hash_is_the_documented_fnv1a() {
        // Computed independently (in Python) from the definitions in
        // docs/checkpoints.md, so the code and the document agree.
        let none = BTreeMap::new();
        let empty = content_hash(Version::V2, &BTreeMap::new(), &BTreeMap::new(), &none);
        assert_eq!(empty, 0x8820_1fb9_60ff_6465);
        let mut metadata = checkpoint().metadata;
        metadata.insert(FORMAT_KEY.into(), FORMAT_V1.into());
        metadata.insert(STEP_KEY.into(), "7".into());
        // checkpoint-1: no dtypes in the hash.
        let v1 = content_hash(Version::V1, &metadata, &checkpoint().tensors, &none);
        assert_eq!(v1, 0xfbc5_fe0c_a694_706d);
        // The stored hash itself is not hashed.
        metadata.insert(HASH_KEY.into(), "anything".into());
        let again = content_hash(Version::V1, &metadata, &checkpoint().tensors, &none);
        assert_eq!(again, 0xfbc5_fe0c_a694_706d);
        // checkpoint-2: each tensor's dtype after its name, I64 tensors
        // merged with the F32 ones in name order.
        metadata.remove(HASH_KEY);
        metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        let c = with_step_count();
        let v2 = content_hash(Version::V2, &metadata, &c.tensors, &c.ints);
        assert_eq!(v2, V2_HASH);
    }

    /// The checkpoint-2 hash of `with_step_count()` with the format and
    /// step keys, from the Python transcription of the definition.
    const V2_HASH: u64 = 0xf5ac_dfcb_3d00_81a0;

    #[test]
    fn the_hash_sees_shapes_names_dtypes_and_metadata() {
        let none = BTreeMap::new();
        let one = |name: &str, shape: Vec<usize>| {
            let t = BTreeMap::from([(name.to_string(), tensor(shape, vec![0.0; 6]))]);
            content_hash(Version::V2, &BTreeMap::new(), &t, &none)
        };
        assert_ne!(one("w", vec![2, 3]), one("w", vec![3, 2]));
        assert_ne!(one("w", vec![6]), one("v", vec![6]));
        let meta = |k: &str, v: &str| {
            let m = BTreeMap::from([(k.to_string(), v.to_string())]);
            content_hash(Version::V2, &m, &BTreeMap::new(), &none)
        };
        assert_ne!(meta("ab", "c"), meta("a", "bc"));
        // The same eight zero bytes as two F32 or as one I64 hash apart.
        let f = BTreeMap::from([("t".to_string(), tensor(vec![2], vec![0.0; 2]))]);
        let i = BTreeMap::from([("t".to_string(), I64Tensor::new(vec![1], vec![0]).unwrap())]);
        let empty = BTreeMap::new();
        assert_ne!(
            content_hash(Version::V2, &empty, &f, &none),
            content_hash(Version::V2, &empty, &BTreeMap::new(), &i)
        );
    }

    #[test]
    fn encode_rejects_what_it_cannot_store_faithfully() {
        let mut reserved = checkpoint();
        reserved.metadata.insert("enigma.step".into(), "8".into());
        let e = encode(&reserved, path()).unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
        assert!(e.message.contains("`enigma.step` is reserved"), "{e}");

        let mut named = checkpoint();
        named
            .tensors
            .insert(METADATA_NAME.into(), tensor(vec![1], vec![0.0]));
        assert_eq!(encode(&named, path()).unwrap_err().kind, Kind::Invalid);

        let mut short = checkpoint();
        short
            .tensors
            .insert("b".into(), tensor(vec![2, 2], vec![0.0; 3]));
        let e = encode(&short, path()).unwrap_err();
        assert!(
            e.message
                .contains("tensor `b` has shape [2, 2] but 3 values"),
            "{e}"
        );

        let mut huge = checkpoint();
        huge.tensors
            .insert("b".into(), tensor(vec![usize::MAX, 2], vec![]));
        assert_eq!(encode(&huge, path()).unwrap_err().kind, Kind::Invalid);

        let mut both = checkpoint();
        both.ints.insert("w".into(), I64Tensor::scalar(1));
        let e = encode(&both, path()).unwrap_err();
        assert_eq!(e.kind, Kind::Invalid);
        assert!(e.message.contains("`w` is both an F32 and an I64"), "{e}");

        let mut short = checkpoint();
        short.ints.insert(
            "n".into(),
            I64Tensor {
                shape: vec![3],
                data: vec![1],
            },
        );
        let e = encode(&short, path()).unwrap_err();
        assert!(
            e.message.contains("tensor `n` has shape [3] but 1 values"),
            "{e}"
        );
    }

    #[test]
    fn decode_inverts_encode() {
        let bytes = encode(&checkpoint(), path()).unwrap();
        let back = decode(&bytes, path()).unwrap();
        assert_eq!(back.step, 7);
        assert_eq!(back.metadata, checkpoint().metadata);
        let w = &back.tensors["w"];
        assert_eq!(w.shape, vec![2]);
        assert_eq!(w.data[1].to_bits(), (-0.0f32).to_bits());
        assert!(back.ints.is_empty());
    }

    #[test]
    fn i64_tensors_are_stored_as_i64_in_their_own_map() {
        let mut c = with_step_count();
        let big = I64Tensor::new(vec![2, 2], vec![i64::MIN, -1, 0, i64::MAX]).unwrap();
        c.ints.insert("counts".into(), big.clone());
        let bytes = encode(&c, path()).unwrap();
        // What any safetensors reader sees: the dtype and shape as written.
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor(STEP_COUNT).unwrap();
        assert_eq!(t.dtype(), Dtype::I64);
        assert_eq!(t.shape(), &[] as &[usize]);
        assert_eq!(t.data(), (1i64 << 40).to_le_bytes());
        assert_eq!(st.tensor("w").unwrap().dtype(), Dtype::F32);
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap_or_default();
        assert_eq!(meta.get(FORMAT_KEY).map(String::as_str), Some(FORMAT));

        let back = decode(&bytes, path()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.ints[STEP_COUNT].single(), Some(1 << 40));
        assert!(!back.tensors.contains_key(STEP_COUNT));
    }

    #[test]
    fn a_checkpoint_1_file_loads_with_its_step_count_as_i64() {
        // 2^40 + 5 as the previous build split it: 2^16 and 5.
        let t = (1u64 << 40) + 5;
        let bytes = v1_file([(t >> 24) as f32, (t & 0xFF_FFFF) as f32]);
        let back = decode(&bytes, path()).unwrap();
        assert_eq!(back.step, 7);
        assert_eq!(back.metadata, checkpoint().metadata);
        assert_eq!(back.tensors, checkpoint().tensors);
        assert_eq!(back.ints[STEP_COUNT], I64Tensor::scalar(t as i64));
        // Saved again, it is a checkpoint-2 file with the same contents.
        let again = decode(&encode(&back, path()).unwrap(), path()).unwrap();
        assert_eq!(again, back);
    }

    #[test]
    fn a_checkpoint_1_step_count_that_is_not_one_is_named() {
        for halves in [
            [1.5, 0.0],
            [0.0, 16_777_216.0],
            [-1.0, 0.0],
            [f32::NAN, 0.0],
        ] {
            let e = decode(&v1_file(halves), path()).unwrap_err();
            assert_eq!(e.kind, Kind::Tensor, "{halves:?}");
            assert!(e.message.contains("tensor `optim.t`"), "{e}");
            assert!(e.message.contains("checkpoint-1"), "{e}");
            assert!(e.to_string().contains("step-00000007.safetensors"), "{e}");
        }
    }

    #[test]
    fn a_checkpoint_1_file_cannot_hold_i64() {
        let header =
            format!(r#"{{{MARKED},"optim.t":{{"dtype":"I64","shape":[],"data_offsets":[0,8]}}}}"#);
        let e = decode(&raw(&header, &[0; 8]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::Tensor);
        assert!(
            e.message
                .contains("tensor `optim.t` is I64; checkpoint-1 files hold only F32"),
            "{e}"
        );
    }

    #[test]
    fn a_tensor_that_is_not_f32_is_named() {
        let header = format!(
            r#"{{{MARKED},"brain.w#0":{{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}}}"#
        );
        let e = decode(&raw(&header, &[0; 4]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::Tensor);
        assert!(e.message.contains("tensor `brain.w#0` is F16"), "{e}");
        assert!(e.to_string().contains("step-00000007.safetensors"), "{e}");
    }

    #[test]
    fn a_dtype_checkpoints_do_not_hold_is_named() {
        let marked = MARKED.replace("checkpoint-1", "checkpoint-2");
        let header =
            format!(r#"{{{marked},"optim.t":{{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}}}"#);
        let e = decode(&raw(&header, &[0; 4]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::Tensor);
        assert!(
            e.message
                .contains("tensor `optim.t` is I32; checkpoints hold only F32 and I64"),
            "{e}"
        );
        // An I64 whose bytes are not 8 per element is named, with the size.
        let header =
            format!(r#"{{{marked},"optim.t":{{"dtype":"I64","shape":[],"data_offsets":[0,4]}}}}"#);
        let e = decode(&raw(&header, &[0; 4]), path()).unwrap_err();
        assert!(e.message.contains("tensor `optim.t` has shape []"), "{e}");
        assert!(e.message.contains("needs 8 bytes"), "{e}");
    }

    #[test]
    fn a_shape_that_disagrees_with_its_bytes_is_named() {
        let header = format!(
            r#"{{{MARKED},"adam.m/w":{{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}}}"#
        );
        let e = decode(&raw(&header, &[0; 8]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::Tensor);
        assert!(e.message.contains("tensor `adam.m/w` has shape [3]"), "{e}");
        assert!(e.message.contains("needs 12 bytes"), "{e}");
    }

    #[test]
    fn a_safetensors_file_without_the_marker_is_not_a_checkpoint() {
        let header = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let e = decode(&raw(header, &[0; 4]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::NotCheckpoint);
        assert!(e.message.contains("enigma.format"), "{e}");

        let header = r#"{"__metadata__":{"enigma.format":"checkpoint-9"}}"#;
        let e = decode(&raw(header, &[]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::NotCheckpoint);
        assert!(e.message.contains("checkpoint-9"), "{e}");
        assert!(e.message.contains("`checkpoint-2`, `checkpoint-1`"), "{e}");
    }

    #[test]
    fn a_wrong_hash_or_step_is_corruption() {
        // MARKED records a zero hash, which these contents do not have.
        let header =
            format!(r#"{{{MARKED},"w":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#);
        let e = decode(&raw(&header, &[0; 4]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::Corrupt);
        assert!(e.message.contains("damaged"), "{e}");

        let header = r#"{"__metadata__":{"enigma.format":"checkpoint-1","enigma.step":"-1"}}"#;
        let e = decode(&raw(header, &[]), path()).unwrap_err();
        assert_eq!(e.kind, Kind::Corrupt);
        assert!(e.message.contains("enigma.step"), "{e}");
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_an_error() {
        let bytes = encode(&with_step_count(), path()).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], path()).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[i] ^= 1 << bit;
                assert!(decode(&flipped, path()).is_err(), "bit {bit} of byte {i}");
            }
        }
    }
}
