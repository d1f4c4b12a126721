//! `enigma export RUN_DIR`: a run's trained weights as a plain safetensors
//! file under PyTorch-style dotted names, with a JSON description beside
//! it (`docs/checkpoints.md`, "Exporting the weights").
//!
//! The weights come from a checkpoint (the newest that verifies, or the one
//! asked for), read with the checkpoint store, so no libtorch is needed.
//! Only the model's weights are written: the optimiser's moments
//! (`optim.m/…`, `optim.v/…`) and its step count (`optim.t`) stay behind.
//!
//! # Names
//!
//! The runtime names a parameter copy `PATH[#LAYER][@COPY]`: `PATH` is the
//! parameter's dotted path in the typed IR
//! (`brain.transformer.blocks.layer.attn.q_proj.w`), `#LAYER` the copy of a
//! `repeat` body, whose scope the elaborator always calls `layer`, and
//! `@COPY` the copy of a per-session table (the session) or of a nested
//! `repeat`. The export names it by two rules, the scheme [`NAMES`]:
//!
//! 1. `#L`: the first path component `layer` is replaced by `L`;
//! 2. `@C`: `C` is appended as the last component.
//!
//! So `brain.transformer.blocks.layer.attn.q_proj.w#0` is
//! `brain.transformer.blocks.0.attn.q_proj.w` (PyTorch's `blocks.0.attn`
//! for a `ModuleList`), `nt.unit@1` is `nt.unit.1`, and a name without
//! either is unchanged. The mapping is reversible ([`internal_name`]):
//! path components are identifiers, never all digits, so in a dotted name
//! a numeric last component is the copy and the first other numeric
//! component is the layer. A name the runtime does not write (a
//! component that is empty or all digits, `#` without a `layer` component
//! before the parameter's own name) is refused rather than given a name
//! that would not map back. Parameter names are kept as the model spells
//! them (`w`, `b`, `weight`, `table`): renaming `w` to `weight` would not
//! be reversible where a module has both.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, View};
use serde_json::{json, Map, Value};

use super::checkpoint::{load, Checkpoint, CheckpointDir, Fs, RealFs};
use super::evaluate::EXPERIMENT_PATH;
use crate::base::host::HostTensor;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::SourceKind;
use crate::ir::types::Value as IrValue;
use crate::ir::Experiment;
use crate::source::files::{expand, Layout};
use crate::source::FsLoader;

/// The naming scheme, recorded in the exported file and the JSON.
pub const NAMES: &str = "enigma-names-1";

/// The version of the JSON description.
pub const DESCRIPTION: &str = "enigma-export-1";

/// The path component that names the body of a `repeat`
/// (`check::elab::call`), which a layer index replaces.
const LAYER: &str = "layer";

/// The prefixes of the optimiser's state, which is not exported.
const OPTIMISER: [&str; 2] = ["optim.m/", "optim.v/"];

/// A parameter copy's name taken apart: `path[#layer][@copy]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyName {
    /// The parameter's dotted path in the typed IR.
    pub path: String,
    /// The copy of a `repeat` body (`#`), when the parameter is in one.
    pub layer: Option<usize>,
    /// The copy of a per-session table (the session) or of a nested
    /// `repeat` (`@`).
    pub copy: Option<usize>,
}

/// Why a tensor cannot be given a dotted name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    pub name: String,
    pub why: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tensor `{}` cannot be exported: {}", self.name, self.why)
    }
}

impl std::error::Error for NameError {}

/// `digits` as an index, when it is written the one way an index is
/// written (no sign, no leading zero), so that the name maps back to the
/// same text.
fn index(digits: &str) -> Option<usize> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// Whether `c` can be a component of a parameter's path: not empty, not
/// all digits (which would read back as an index), none of the characters
/// the names use as separators.
fn component_ok(c: &str) -> bool {
    !c.is_empty() && !c.bytes().all(|b| b.is_ascii_digit()) && !c.contains(['#', '@', '/', '.'])
}

impl CopyName {
    /// The parts of the runtime's name `internal`.
    pub fn parse(internal: &str) -> Result<CopyName, NameError> {
        let fail = |why: &str| NameError {
            name: internal.to_string(),
            why: why.to_string(),
        };
        let (rest, copy) = match internal.rsplit_once('@') {
            Some((rest, c)) => {
                let c = index(c).ok_or_else(|| fail("the copy after `@` is not an index"))?;
                (rest, Some(c))
            }
            None => (internal, None),
        };
        let (path, layer) = match rest.rsplit_once('#') {
            Some((path, l)) => {
                let l = index(l).ok_or_else(|| fail("the layer after `#` is not an index"))?;
                (path, Some(l))
            }
            None => (rest, None),
        };
        let components: Vec<&str> = path.split('.').collect();
        if !components.iter().all(|c| component_ok(c)) {
            return Err(fail(
                "it is not a parameter path `a.b.c[#layer][@copy]` of identifiers",
            ));
        }
        // The layer replaces a `layer` component of the scopes, never the
        // parameter's own name: there it would read back as the copy.
        let scopes = &components[..components.len() - 1];
        if layer.is_some() && !scopes.contains(&LAYER) {
            return Err(fail(
                "it has a layer (`#`) but no `layer` scope (a `repeat` body) to put it in",
            ));
        }
        Ok(CopyName {
            path: path.to_string(),
            layer,
            copy,
        })
    }

    /// The runtime's name: `path[#layer][@copy]`.
    pub fn internal(&self) -> String {
        let mut s = self.path.clone();
        if let Some(l) = self.layer {
            s.push_str(&format!("#{l}"));
        }
        if let Some(c) = self.copy {
            s.push_str(&format!("@{c}"));
        }
        s
    }

    /// The dotted name ([`NAMES`]): the layer in place of the first
    /// `layer` component, the copy appended.
    pub fn dotted(&self) -> String {
        let mut components: Vec<String> = self.path.split('.').map(str::to_string).collect();
        if let Some(l) = self.layer {
            if let Some(c) = components.iter_mut().find(|c| c.as_str() == LAYER) {
                *c = l.to_string();
            }
        }
        if let Some(c) = self.copy {
            components.push(c.to_string());
        }
        components.join(".")
    }

    /// The parts of a dotted name [`CopyName::dotted`] gives, or `None`
    /// for a name it never gives.
    pub fn from_dotted(dotted: &str) -> Option<CopyName> {
        let mut components: Vec<String> = dotted.split('.').map(str::to_string).collect();
        let copy = match components.last().and_then(|c| index(c)) {
            Some(c) if components.len() > 1 => {
                components.pop();
                Some(c)
            }
            _ => None,
        };
        let mut layer = None;
        for c in components.iter_mut() {
            if let Some(l) = index(c) {
                if layer.is_some() {
                    return None;
                }
                layer = Some(l);
                *c = LAYER.to_string();
            }
        }
        let name = CopyName {
            path: components.join("."),
            layer,
            copy,
        };
        // Only names that map back to themselves are ones the export gives.
        let valid = CopyName::parse(&name.internal()).ok()?;
        (valid.dotted() == dotted).then_some(valid)
    }
}

/// The dotted name of the runtime's tensor `internal`.
pub fn dotted_name(internal: &str) -> Result<String, NameError> {
    CopyName::parse(internal).map(|n| n.dotted())
}

/// The runtime's name of the exported tensor `dotted`, or `None` for a
/// name the export never writes.
pub fn internal_name(dotted: &str) -> Option<String> {
    CopyName::from_dotted(dotted).map(|n| n.internal())
}

/// Which checkpoint of a run to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The newest that loads and verifies.
    Newest,
    /// The checkpoint of this step.
    Step(u64),
    /// This checkpoint file (or a job's step directory).
    File(PathBuf),
}

/// The checkpoint `pick` names in `run_dir`, loaded and verified, with its
/// path. Errors name the directory or the file.
pub fn pick_checkpoint(run_dir: &Path, pick: &Pick) -> Result<(PathBuf, Checkpoint), Error> {
    let err = |m: String| Error::new(ErrorKind::Checkpoint, m);
    if let Pick::File(path) = pick {
        return load(path)
            .map(|c| (path.clone(), c))
            .map_err(|e| err(e.to_string()));
    }
    if !run_dir.is_dir() {
        return Err(err(format!(
            "{}: no such run directory (the directory `enigma run --out` wrote)",
            run_dir.display()
        )));
    }
    let ckpts = CheckpointDir::new(run_dir.join("checkpoints"), usize::MAX);
    match pick {
        Pick::Step(step) => {
            let listed = ckpts.list().map_err(|e| err(e.to_string()))?;
            let Some((_, path)) = listed.into_iter().find(|(s, _)| s == step) else {
                return Err(err(format!(
                    "{} has no checkpoint of step {step}",
                    ckpts.dir().display()
                )));
            };
            load(&path)
                .map(|c| (path, c))
                .map_err(|e| err(e.to_string()))
        }
        _ => match ckpts.latest().map_err(|e| err(e.to_string()))? {
            Some(latest) => {
                for (path, why) in &latest.skipped {
                    eprintln!(
                        "warning: skipped damaged checkpoint {}: {}",
                        path.display(),
                        why.message
                    );
                }
                Ok((latest.path, latest.checkpoint))
            }
            None => Err(err(format!(
                "{} holds no checkpoint",
                ckpts.dir().display()
            ))),
        },
    }
}

/// One exported tensor.
#[derive(Debug)]
pub struct Exported<'a> {
    /// Its dotted name.
    pub name: String,
    /// The runtime's name, taken apart.
    pub copy: CopyName,
    pub tensor: &'a HostTensor,
}

/// The model's weights in `ckpt`, by dotted name: every F32 tensor but the
/// optimiser's moments. An error names a tensor whose name the runtime
/// does not write, since exporting it under a made-up name would not map
/// back.
pub fn weights(ckpt: &Checkpoint) -> Result<Vec<Exported<'_>>, NameError> {
    let mut out = Vec::new();
    for (name, tensor) in &ckpt.tensors {
        if OPTIMISER.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let copy = CopyName::parse(name)?;
        out.push(Exported {
            name: copy.dotted(),
            copy,
            tensor,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    // The mapping is one-to-one, so two equal names mean a bug here.
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(NameError {
            name: w[1].copy.internal(),
            why: format!(
                "`{}` and it both map to `{}`",
                w[0].copy.internal(),
                w[1].name
            ),
        });
    }
    Ok(out)
}

/// A borrowed f32 tensor as safetensors writes it.
struct F32View<'a>(&'a HostTensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn data_len(&self) -> usize {
        self.0.data.len() * 4
    }
}

/// Writes `bytes` to `path` atomically: a synced `.tmp` beside it, renamed
/// into place, so that an interrupted export never leaves half a file
/// under the name a reader opens.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::new(ErrorKind::Io, format!("{}: {what}: {e}", p.display()))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    RealFs
        .create_dir_all(&dir)
        .map_err(|e| io("could not create the directory", &dir, e))?;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if let Err(e) = RealFs
        .write_synced(&tmp, bytes)
        .and_then(|_| RealFs.rename(&tmp, path))
    {
        let _ = RealFs.remove(&tmp);
        return Err(io("could not write", path, e));
    }
    RealFs
        .sync_dir(&dir)
        .map_err(|e| io("could not sync the directory of", path, e))
}

/// The JSON file written beside `weights`: its stem with `.json`.
pub fn description_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// What the command line asks of an export.
#[derive(Clone, Debug)]
pub struct ExportRequest {
    pub run_dir: PathBuf,
    /// The safetensors file to write (default `RUN_DIR/model.safetensors`).
    pub out: Option<PathBuf>,
    pub pick: Pick,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub weights: PathBuf,
    pub description: PathBuf,
    pub checkpoint: PathBuf,
    pub step: u64,
    pub tensors: usize,
    pub parameters: usize,
    /// Why the model's configuration is missing from the description, when
    /// the experiment could not be compiled again.
    pub model_error: Option<String>,
}

/// Exports the weights of a checkpoint of `req.run_dir` (see the module
/// documentation) and the JSON description beside them. `model` describes
/// the model the checkpoint belongs to ([`model_config`], from the
/// experiment the caller compiled again), or says why it cannot.
pub fn export(
    req: &ExportRequest,
    model: impl FnOnce(&Checkpoint) -> Result<Value, String>,
) -> Result<ExportReport, Error> {
    let out = req
        .out
        .clone()
        .unwrap_or_else(|| req.run_dir.join("model.safetensors"));
    let description = description_path(&out);
    if description == out {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "--out {}: the description is written beside the weights as `<stem>.json`, so \
                 the weights need another extension (`.safetensors`)",
                out.display()
            ),
        ));
    }
    let (path, ckpt) = pick_checkpoint(&req.run_dir, &req.pick)?;
    let exported = weights(&ckpt)
        .map_err(|e| Error::new(ErrorKind::Checkpoint, format!("{}: {e}", path.display())))?;
    if exported.is_empty() {
        return Err(Error::new(
            ErrorKind::Checkpoint,
            format!("{}: the checkpoint holds no weights", path.display()),
        ));
    }

    let metadata: std::collections::HashMap<String, String> = [
        // What `transformers` and other PyTorch tools look for.
        ("format", "pt".to_string()),
        ("enigma.names", NAMES.to_string()),
        ("enigma.step", ckpt.step.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let views = exported
        .iter()
        .map(|e| (e.name.as_str(), F32View(e.tensor)));
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("{}: could not encode the weights: {e}", out.display()),
        )
    })?;

    let model = model(&ckpt);
    let (model, model_error) = match model {
        Ok(m) => (m, None),
        Err(e) => (Value::Null, Some(e)),
    };
    let doc = describe(
        &req.run_dir,
        &path,
        &ckpt,
        &exported,
        model,
        model_error.as_deref(),
    );
    let text = serde_json::to_string_pretty(&doc).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("{}: could not encode: {e}", description.display()),
        )
    })?;
    write_atomic(&out, &bytes)?;
    write_atomic(&description, format!("{text}\n").as_bytes())?;
    Ok(ExportReport {
        weights: out,
        description,
        checkpoint: path,
        step: ckpt.step,
        tensors: exported.len(),
        parameters: exported.iter().map(|e| e.tensor.numel()).sum(),
        model_error,
    })
}

/// The JSON description of an export: where it came from, the naming
/// scheme, every tensor, and the model's configuration (`model`, or
/// `model_error` saying why it is missing).
pub fn describe(
    run_dir: &Path,
    checkpoint: &Path,
    ckpt: &Checkpoint,
    exported: &[Exported<'_>],
    model: Value,
    model_error: Option<&str>,
) -> Value {
    let per_session = per_session_params(&model);
    let tensors: Vec<Value> = exported
        .iter()
        .map(|e| {
            let session = e.copy.copy.filter(|_| per_session.contains(&e.copy.path));
            json!({
                "name": e.name,
                "original": e.copy.internal(),
                "param": e.copy.path,
                "layer": e.copy.layer,
                "copy": e.copy.copy,
                "session": session,
                "shape": e.tensor.shape,
                "dtype": "F32",
            })
        })
        .collect();
    let named = std::fs::read_to_string(run_dir.join(EXPERIMENT_PATH))
        .ok()
        .map(|s| s.trim().to_string());
    let copy = run_dir.join("experiment.enigma");
    let mut doc = json!({
        "format": DESCRIPTION,
        "names": {
            "scheme": NAMES,
            "rule": "the runtime's PATH[#LAYER][@COPY]: #L replaces the first path component \
                     `layer` (a repeat body) by L; @C appends C as the last component",
        },
        "run_dir": run_dir.display().to_string(),
        "checkpoint": {
            "path": checkpoint.display().to_string(),
            "step": ckpt.step,
            "metadata": ckpt.metadata,
        },
        "experiment": {
            "path": named,
            "copy": copy.is_file().then(|| copy.display().to_string()),
        },
        "tensors": tensors,
        "model": model,
    });
    if let (Some(e), Some(obj)) = (model_error, doc.as_object_mut()) {
        obj.insert("model_error".to_string(), Value::String(e.to_string()));
    }
    doc
}

/// The paths of the per-session parameters in a `model` description.
fn per_session_params(model: &Value) -> Vec<String> {
    let params = model.get("params").and_then(Value::as_array);
    params
        .into_iter()
        .flatten()
        .filter(|p| p.get("per_session").and_then(Value::as_bool) == Some(true))
        .filter_map(|p| p.get("path").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The configuration of the model the run trained, from its experiment
/// `x` (the file `file`, compiled again without opening the data, with
/// the run's `overrides`): the declared dims as written (`dims`, which the
/// caller reads off the file), every module instance with its
/// hyperparameters, every parameter with its dims, the data items and
/// their sessions, and per session the sizes of its `per session` dims
/// (read off its tables' shapes in `ckpt`).
pub fn model_config(
    x: &Experiment,
    file: &Path,
    dims: Map<String, Value>,
    overrides: &[&str],
    ckpt: &Checkpoint,
) -> Value {
    json!({
        "experiment": file.display().to_string(),
        "overrides": overrides,
        "dims": dims,
        "sessions": x.graph.sessions,
        "session_dims": session_dims(x, ckpt),
        "modules": modules(x),
        "params": params(x),
        "data": data_items(x),
    })
}

/// Every module instance of the graph: its path, module, `repeat` count
/// and hyperparameters as evaluated.
fn modules(x: &Experiment) -> Vec<Value> {
    x.graph
        .scopes
        .iter()
        .map(|s| {
            let hyper: Map<String, Value> = s
                .hyper
                .iter()
                .map(|(k, v)| (k.clone(), hyper_value(v)))
                .collect();
            json!({
                "path": s.path,
                "module": s.module,
                "repeat": s.repeat,
                "hyper": hyper,
            })
        })
        .collect()
}

/// A hyperparameter as JSON: whole numbers, fractions, booleans and lists
/// as themselves, anything else (a duration, a size bound by the data, a
/// symbol) as the text it would be written as.
fn hyper_value(v: &IrValue) -> Value {
    match v {
        IrValue::Size(s) => s
            .as_const()
            .map_or_else(|| Value::String(s.to_string()), Value::from),
        IrValue::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        IrValue::Bool(b) => Value::Bool(*b),
        IrValue::List(items) => Value::Array(items.iter().map(hyper_value).collect()),
        other => Value::String(other.to_string()),
    }
}

/// Every parameter of the graph: its path, whether each session has its
/// own copy, and its dims by name (a size for an anonymous dim).
fn params(x: &Experiment) -> Vec<Value> {
    x.graph
        .params
        .iter()
        .map(|p| {
            let dims: Vec<String> = p.ty.dims.iter().map(|d| d.name.to_string()).collect();
            json!({"path": p.path, "per_session": p.per_session, "dims": dims})
        })
        .collect()
}

/// Per session, the size of each `per session` dim, read off the shapes of
/// that session's copies of the per-session parameters in `ckpt` (the
/// experiment compiled without its data does not know them).
fn session_dims(x: &Experiment, ckpt: &Checkpoint) -> Vec<BTreeMap<String, usize>> {
    let sessions = x.graph.sessions.unwrap_or(1).max(1) as usize;
    let mut out = vec![BTreeMap::new(); sessions];
    for p in x.graph.params.iter().filter(|p| p.per_session) {
        for (s, sizes) in out.iter_mut().enumerate() {
            let at = ckpt
                .tensors
                .get(&format!("{}@{s}", p.path))
                .or_else(|| ckpt.tensors.get(&p.path).filter(|_| sessions == 1));
            let Some(t) = at else { continue };
            for (d, &n) in p.ty.dims.iter().zip(&t.shape) {
                if let [name] = d.name.symbols().as_slice() {
                    if d.name.as_const().is_none() {
                        sizes.entry(name.to_string()).or_insert(n);
                    }
                }
            }
        }
    }
    // Only the dims that differ by session are worth listing per session;
    // the others are the same everywhere, and the graph's own.
    let per_session: Vec<String> = x
        .data
        .as_ref()
        .ok()
        .map(|spec| {
            spec.modalities
                .iter()
                .flat_map(|m| &m.dims)
                .filter(|d| d.per_session)
                .map(|d| d.name.clone())
                .collect()
        })
        .unwrap_or_default();
    if !per_session.is_empty() {
        for sizes in &mut out {
            sizes.retain(|k, _| per_session.contains(k));
        }
    }
    out
}

/// Every data item: its name, kind, and its sessions (the files of a file
/// source in session order, as its patterns expand now; the count of a
/// simulated one).
fn data_items(x: &Experiment) -> Vec<Value> {
    let Ok(spec) = &x.data else {
        return Vec::new();
    };
    spec.sources
        .iter()
        .map(|s| {
            let (kind, layout) = match &s.kind {
                SourceKind::Synthetic { sessions, .. } => {
                    return json!({"name": s.name, "kind": "synthetic", "sessions": sessions});
                }
                SourceKind::Npy { .. } => ("npy", Layout::Files("npy")),
                SourceKind::Nwb { .. } => ("nwb", Layout::Files("nwb")),
                SourceKind::Suite2p { .. } => ("suite2p", Layout::Suite2p),
            };
            match expand(s.kind.paths(), layout, &FsLoader) {
                Ok(files) => {
                    let files: Vec<String> =
                        files.iter().map(|f| f.display().to_string()).collect();
                    json!({"name": s.name, "kind": kind, "sessions": files.len(), "files": files})
                }
                Err(e) => json!({"name": s.name, "kind": kind, "files_error": e.to_string()}),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_documented() {
        let cases = [
            (
                "brain.transformer.blocks.layer.attn.q_proj.w#0",
                "brain.transformer.blocks.0.attn.q_proj.w",
            ),
            (
                "brain.transformer.blocks.layer.ln_1.bias.b#11",
                "brain.transformer.blocks.11.ln_1.bias.b",
            ),
            ("nt.unit@1", "nt.unit.1"),
            ("brain.per_unit.w@0", "brain.per_unit.w.0"),
            ("vt.proj.w", "vt.proj.w"),
            // A per-session table inside a repeat body, and a nested
            // repeat whose copies are `@`.
            ("a.layer.w#2@3", "a.2.w.3"),
            ("a.layer.b.layer.w#1", "a.1.b.layer.w"),
            ("a.layer.w@4", "a.layer.w.4"),
        ];
        for (internal, dotted) in cases {
            assert_eq!(dotted_name(internal).unwrap(), dotted, "{internal}");
            assert_eq!(internal_name(dotted).as_deref(), Some(internal), "{dotted}");
        }
    }

    #[test]
    fn names_the_runtime_does_not_write_are_refused() {
        for bad in [
            "optim.m/w",
            "w#0",
            "a.b#1",
            "a.layer#1",
            "a.0.w",
            "a..w",
            "a.w@01",
            "a.w@-1",
            "a.w#x",
            "",
        ] {
            let e = dotted_name(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        for never in ["a.0.b.1.c", "0", "a.layer.w.01", "a.b..c", "w.0.0"] {
            assert_eq!(internal_name(never), None, "{never}");
        }
    }

    #[test]
    fn every_generated_name_maps_back() {
        // Paths of up to three components from a small alphabet, with and
        // without a layer and a copy: the mapping is one-to-one on them.
        let parts = ["layer", "a", "w"];
        let mut seen = BTreeMap::new();
        for n in 1..=3u32 {
            for code in 0..3usize.pow(n) {
                let path: Vec<&str> = (0..n).map(|i| parts[(code / 3usize.pow(i)) % 3]).collect();
                let path = path.join(".");
                for layer in [None, Some(0), Some(7)] {
                    for copy in [None, Some(0), Some(12)] {
                        let c = CopyName {
                            path: path.clone(),
                            layer,
                            copy,
                        };
                        let internal = c.internal();
                        let Ok(parsed) = CopyName::parse(&internal) else {
                            continue;
                        };
                        let dotted = parsed.dotted();
                        assert_eq!(internal_name(&dotted).as_deref(), Some(internal.as_str()));
                        if let Some(other) = seen.insert(dotted.clone(), internal.clone()) {
                            panic!("{other} and {internal} both map to {dotted}");
                        }
                    }
                }
            }
        }
        assert!(seen.len() > 50, "{}", seen.len());
    }

    #[test]
    fn weights_leave_the_optimiser_behind() {
        let t = |n: usize| HostTensor::zeros(vec![n]);
        let mut ckpt = Checkpoint::default();
        for name in ["a.layer.w#0", "optim.m/a.layer.w#0", "optim.v/a.layer.w#0"] {
            ckpt.tensors.insert(name.into(), t(2));
        }
        ckpt.tensors.insert("nt.unit@1".into(), t(3));
        ckpt.ints.insert(
            "optim.t".into(),
            crate::run::checkpoint::I64Tensor::scalar(4),
        );
        let names: Vec<String> = weights(&ckpt)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.0.w", "nt.unit.1"]);
        ckpt.tensors.insert("rng/state".into(), t(1));
        let e = weights(&ckpt).unwrap_err();
        assert_eq!(e.name, "rng/state");
    }
}
