//! The bytes of one checkpoint file: encoding, decoding and verifying.
//!
//! Everything here works on memory; the directory, the atomic write and
//! pruning live in the parent module. Decoding never trusts the file: every
//! length, offset and dtype is checked before it is used, and every failure
//! is a [`CheckpointError`] naming the file (and the tensor, when one is at
//! fault).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::TensorInfo;
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};

use super::{Checkpoint, CheckpointError, CheckpointErrorKind as Kind};
use crate::base::fnv::Fnv1a;
use crate::base::host::HostTensor;

/// The value of [`FORMAT_KEY`] this build writes and reads.
pub const FORMAT: &str = "checkpoint-1";

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
    for (name, tensor) in &ckpt.tensors {
        if name == METADATA_NAME {
            return Err(invalid(format!(
                "a tensor cannot be named `{METADATA_NAME}`: safetensors keeps its metadata \
                 under that name"
            )));
        }
        // The fields of a HostTensor are public, so nothing has checked them
        // yet; a mismatch here would otherwise write a file no one can read.
        if numel(&tensor.shape) != Some(tensor.data.len()) {
            return Err(invalid(format!(
                "tensor `{name}` has shape {:?} but {} values",
                tensor.shape,
                tensor.data.len()
            )));
        }
    }

    let mut metadata = ckpt.metadata.clone();
    metadata.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
    metadata.insert(STEP_KEY.to_string(), ckpt.step.to_string());
    let hash = content_hash(&metadata, &ckpt.tensors);
    metadata.insert(HASH_KEY.to_string(), format!("{HASH_PREFIX}{hash:016x}"));

    let views = ckpt.tensors.iter().map(|(name, tensor)| {
        let view = F32View {
            shape: &tensor.shape,
            data: &tensor.data,
        };
        (name, view)
    });
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

    let stored: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    match stored.get(FORMAT_KEY) {
        Some(format) if format == FORMAT => {}
        Some(other) => {
            let message =
                format!("checkpoint format `{other}` is not one this build reads (`{FORMAT}`)");
            return Err(error(Kind::NotCheckpoint, message));
        }
        None => {
            let message = format!(
                "a safetensors file without the `{FORMAT_KEY}` marker: not an enigma checkpoint"
            );
            return Err(error(Kind::NotCheckpoint, message));
        }
    }
    let step = stored
        .get(STEP_KEY)
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            error(
                Kind::Corrupt,
                format!("`{STEP_KEY}` is missing or not a whole number"),
            )
        })?;
    let expected_hash = stored
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
    // Offset order rather than the header's hash-map order, so that the
    // tensor an error names does not change from one run to the next.
    for name in header.offset_keys() {
        let info = header
            .info(&name)
            .ok_or_else(|| error(Kind::Tensor, format!("tensor `{name}` has no header entry")))?;
        let tensor = read_tensor(&name, info, data)
            .map_err(|TensorProblem(message)| error(Kind::Tensor, message))?;
        tensors.insert(name, tensor);
    }

    let actual_hash = content_hash(&stored, &tensors);
    if actual_hash != expected_hash {
        return Err(error(
            Kind::Corrupt,
            format!(
                "the contents hash to {HASH_PREFIX}{actual_hash:016x} but the file records \
                 {HASH_PREFIX}{expected_hash:016x}: the file is damaged"
            ),
        ));
    }

    let metadata = stored
        .into_iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
        .collect();
    Ok(Checkpoint {
        step,
        tensors,
        metadata,
    })
}

/// Why a tensor's bytes cannot be read, before the caller names the file.
struct TensorProblem(String);

/// The tensor `name` whose header entry is `info`, from `data` (the bytes
/// after the header), or why it cannot be read.
fn read_tensor(name: &str, info: &TensorInfo, data: &[u8]) -> Result<HostTensor, TensorProblem> {
    let problem = TensorProblem;
    if info.dtype != Dtype::F32 {
        return Err(problem(format!(
            "tensor `{name}` is {}; checkpoints hold only F32",
            info.dtype
        )));
    }
    let (start, end) = info.data_offsets;
    let raw = data
        .get(start..end)
        .ok_or_else(|| problem(format!("the data of tensor `{name}` lies outside the file")))?;
    if numel(&info.shape).and_then(|n| n.checked_mul(4)) != Some(raw.len()) {
        return Err(problem(format!(
            "tensor `{name}` has shape {:?} but {} bytes of data",
            info.shape,
            raw.len()
        )));
    }
    // chunks_exact(4) yields 4-byte slices only, so the conversion cannot
    // fail; it is still checked rather than unwrapped.
    let values: Option<Vec<f32>> = raw
        .chunks_exact(4)
        .map(|c| c.try_into().ok().map(f32::from_le_bytes))
        .collect();
    let data = values.ok_or_else(|| problem(format!("tensor `{name}` is misaligned")))?;
    Ok(HostTensor {
        shape: info.shape.clone(),
        data,
    })
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

/// A borrowed f32 tensor as safetensors wants it: little-endian bytes.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    /// safetensors asks for each tensor's bytes once, while it copies them
    /// into the file's buffer, so converting here keeps one tensor's bytes
    /// in memory at a time instead of a second copy of the whole model.
    fn data(&self) -> Cow<'_, [u8]> {
        let mut bytes = Vec::with_capacity(self.data_len());
        for v in self.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Cow::Owned(bytes)
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// The content hash: FNV-1a over the metadata entries except the hash
/// itself, in key order, then over every tensor's name, shape and
/// little-endian bytes, in name order. Every variable-length field is
/// preceded by its length. The definition is in `docs/checkpoints.md`.
fn content_hash(
    metadata: &BTreeMap<String, String>,
    tensors: &BTreeMap<String, HostTensor>,
) -> u64 {
    let mut h = Fnv1a::new();
    let hashed = || metadata.iter().filter(|(k, _)| k.as_str() != HASH_KEY);
    h.u64(hashed().count() as u64);
    for (key, value) in hashed() {
        h.str(key);
        h.str(value);
    }
    h.u64(tensors.len() as u64);
    for (name, tensor) in tensors {
        h.str(name);
        h.u64(tensor.shape.len() as u64);
        for &d in &tensor.shape {
            h.u64(d as u64);
        }
        h.u64(tensor.data.len() as u64 * 4);
        for v in &tensor.data {
            h.bytes(&v.to_le_bytes());
        }
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

/// The first tensor (in name order) whose header entry is not an f32
/// tensor whose shape matches its byte range, described; `None` when the
/// header cannot be read that far or every entry is consistent.
fn describe_bad_tensor(bytes: &[u8]) -> Option<String> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..end)?).ok()?;
    for (name, info) in &header {
        if name == METADATA_NAME {
            continue;
        }
        let dtype = info.get("dtype")?.as_str()?;
        if dtype != "F32" {
            return Some(format!(
                "tensor `{name}` is {dtype}; checkpoints hold only F32"
            ));
        }
        let shape: Vec<u64> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        let offsets = info.get("data_offsets")?.as_array()?;
        let (start, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        let needed = shape.iter().try_fold(4u64, |n, &d| n.checked_mul(d));
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
            metadata: BTreeMap::from([("note".to_string(), "hi".to_string())]),
        }
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
        // Computed independently (in Python) from the definition in
        // docs/checkpoints.md, so the code and the document agree.
        let empty = content_hash(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!(empty, 0x8820_1fb9_60ff_6465);
        let mut metadata = checkpoint().metadata;
        metadata.insert(FORMAT_KEY.into(), FORMAT.into());
        metadata.insert(STEP_KEY.into(), "7".into());
        assert_eq!(
            content_hash(&metadata, &checkpoint().tensors),
            0xfbc5_fe0c_a694_706d
        );
        // The stored hash itself is not hashed.
        metadata.insert(HASH_KEY.into(), "anything".into());
        assert_eq!(
            content_hash(&metadata, &checkpoint().tensors),
            0xfbc5_fe0c_a694_706d
        );
    }

    #[test]
    fn the_hash_sees_shapes_names_and_metadata() {
        let one = |name: &str, shape: Vec<usize>| {
            let t = BTreeMap::from([(name.to_string(), tensor(shape, vec![0.0; 6]))]);
            content_hash(&BTreeMap::new(), &t)
        };
        assert_ne!(one("w", vec![2, 3]), one("w", vec![3, 2]));
        assert_ne!(one("w", vec![6]), one("v", vec![6]));
        let meta = |k: &str, v: &str| {
            let m = BTreeMap::from([(k.to_string(), v.to_string())]);
            content_hash(&m, &BTreeMap::new())
        };
        assert_ne!(meta("ab", "c"), meta("a", "bc"));
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
        let bytes = encode(&checkpoint(), path()).unwrap();
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
