//! Planner diagnostics, each at the part of the `parallel` block it is
//! about: the mesh against the world size (E0301), a rank's memory against
//! its device (E0302), layout settings the planner does not lower (E0303),
//! pipeline stages of unequal work (W0301) and tensor-parallel groups that
//! span nodes (W0302).
//!
//! The planner's errors come after `enigma check`'s: a program reaching
//! here has a well-formed block that divides the model (E0220), so what is
//! left is what only a plan knows.

use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::resolve::Program;
use crate::syntax::ast::*;

/// Where the parts of the root file's `parallel` block are.
struct Spans {
    file: FileId,
    /// The whole block, or the `train` block (or the file's start) when
    /// there is no `parallel` block.
    block: Span,
    mesh: Option<Span>,
    settings: Vec<(String, Span)>,
    mappings: Vec<(String, Span)>,
}

fn spans(program: &Program) -> Spans {
    let root = program.root_module();
    let mut out = Spans {
        file: root.file,
        block: Span::default(),
        mesh: None,
        settings: Vec::new(),
        mappings: Vec::new(),
    };
    let Some(ast) = &root.ast else { return out };
    for item in &ast.items {
        match &item.kind {
            ItemKind::Train(_) if out.block == Span::default() => out.block = item.span,
            ItemKind::Parallel(block) => {
                out.block = item.span;
                for e in &block.entries {
                    match &e.kind {
                        EntryKind::Block { key, .. } if key.name == "mesh" => {
                            out.mesh = Some(e.span)
                        }
                        EntryKind::Setting { key, .. } => {
                            out.settings.push((key.name.clone(), e.span))
                        }
                        EntryKind::Mapping { keys, .. } => {
                            for k in keys {
                                out.mappings.push((k.name.clone(), e.span));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl Spans {
    fn setting(&self, name: &str) -> Option<Span> {
        self.settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, s)| *s)
    }

    fn mapping(&self, name: &str) -> Option<Span> {
        self.mappings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, s)| *s)
    }
}

/// E0301: the mesh has `ranks` ranks but the job runs `world` processes.
pub fn world_size(program: &Program, ranks: usize, world: usize) -> Option<Diagnostic> {
    if ranks == world {
        return None;
    }
    let s = spans(program);
    let at = s.mesh.unwrap_or(s.block);
    let label = if s.mesh.is_some() {
        format!("{ranks} rank{}", if ranks == 1 { "" } else { "s" })
    } else {
        "no `parallel` block: one rank".to_string()
    };
    Some(
        Diagnostic::new(
            Code::E0301,
            format!("the mesh has {ranks} ranks but the world has {world}"),
        )
        .primary(s.file, at, label)
        .help(format!(
            "make the product of the mesh axes {world}, or launch {ranks} processes"
        )),
    )
}

/// E0302: a rank needs `need` bytes and its device has `capacity`.
/// `breakdown` says what the bytes are; `fix`, when the search found one,
/// is a layout that fits.
pub fn memory(
    program: &Program,
    rank: usize,
    need: f64,
    capacity: f64,
    breakdown: &str,
    fix: Option<String>,
) -> Diagnostic {
    let s = spans(program);
    let gb = |b: f64| format!("{:.1} GB", b / 1e9);
    let mut d = Diagnostic::new(
        Code::E0302,
        format!(
            "rank {rank} needs {} but its device has {}: {} over",
            gb(need),
            gb(capacity),
            gb(need - capacity)
        ),
    )
    .primary(
        s.file,
        s.mesh.unwrap_or(s.block),
        format!("rank {rank} does not fit"),
    )
    .note(format!("rank {rank}: {breakdown}"));
    if let Some(at) = s.setting("device_memory") {
        d = d.secondary(s.file, at, format!("{} per device", gb(capacity)));
    }
    d.help(fix.unwrap_or_else(|| {
        "no layout of this many ranks fits: add ranks, shard more with `zero: 3`, or turn on `checkpoint_activations`".to_string()
    }))
}

/// E0303: a setting the planner cannot lower yet.
pub fn unsupported(program: &Program, what: &str, setting: &str) -> Diagnostic {
    let s = spans(program);
    let at = s.setting(setting).unwrap_or(s.block);
    Diagnostic::new(
        Code::E0303,
        format!("{what} is not supported by the planner yet"),
    )
    .primary(s.file, at, "cannot be lowered")
    .help(match setting {
        "pipeline_schedule" => "use `pipeline_schedule: one_f_one_b` (the default) or `gpipe`",
        _ => "write the model without it",
    })
}

/// W0302: a tensor-parallel group whose ranks are on more than one node
/// (ranks are numbered row-major, the last mesh axis fastest, and node `n`
/// holds ranks `n * gpus_per_node ..`): its all-reduces, several per layer,
/// then cross the network instead of NVLink.
pub fn tensor_span(program: &Program, group: &[usize], gpus_per_node: usize) -> Option<Diagnostic> {
    let gpn = gpus_per_node.max(1);
    let first = group.first()? / gpn;
    if group.iter().all(|r| r / gpn == first) {
        return None;
    }
    let s = spans(program);
    let at = ["heads", "kv_heads", "ffn", "vocab"]
        .iter()
        .find_map(|k| s.mapping(k))
        .unwrap_or(s.block);
    let nodes = {
        let mut n: Vec<usize> = group.iter().map(|r| r / gpn).collect();
        n.dedup();
        n.len()
    };
    Some(
        Diagnostic::new(
            Code::W0302,
            format!(
                "the tensor-parallel group of rank 0 spans {nodes} nodes of {gpn} GPUs: ranks {}",
                group
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .primary(s.file, at, "all-reduced every layer, across the network")
        .help("put the tensor-parallel axis last in `mesh` (ranks count the last axis fastest), and make it at most the GPUs of one node"),
    )
}

/// W0301: pipeline stages whose compute differs by more than a fifth: the
/// slowest stage paces every other. `times` are seconds of compute per
/// step, one per stage.
pub fn balance(program: &Program, times: &[f64]) -> Option<Diagnostic> {
    if times.len() < 2 {
        return None;
    }
    let (slow, &max) = times.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    if !(mean > 0.0 && max > 1.2 * mean) {
        return None;
    }
    let s = spans(program);
    let ms: Vec<String> = times.iter().map(|t| format!("{:.1} ms", t * 1e3)).collect();
    Some(
        Diagnostic::new(
            Code::W0301,
            format!(
                "pipeline stage {slow} computes {:.0}% more than the average stage",
                (max / mean - 1.0) * 100.0
            ),
        )
        .primary(s.file, s.mapping("layers").unwrap_or(s.block), "stages of equal layers")
        .note(format!("compute per step by stage: {}", ms.join(", ")))
        .help("the first stage also runs the tokenizers and embeddings and the last the heads and losses; use fewer stages, or more layers per stage"),
    )
}
