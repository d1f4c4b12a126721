//! Planner diagnostics, each at the part of the `parallel` block it is
//! about: the mesh against the world size (E0301), a rank's memory against
//! its device (E0302), layout settings the planner does not lower (E0303),
//! pipeline stages of unequal work (W0301) and tensor-parallel groups that
//! span nodes (W0302).
//!
//! The planner's errors come after `enigma check`'s: a program reaching
//! here has a well-formed block that divides the model (E0220), so what is
//! left is what only a plan knows.

use crate::diagnostics::{Code, Diagnostic};
use crate::ir::layout::ParallelSpec;

/// E0301: the mesh has `ranks` ranks but the job runs `world` processes.
pub fn world_size(spec: &ParallelSpec, ranks: usize, world: usize) -> Option<Diagnostic> {
    if ranks == world {
        return None;
    }
    let s = &spec.places;
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
        .primary(at.file, at.span, label)
        .help(format!(
            "make the product of the mesh axes {world}, or launch {ranks} processes (`mpirun -n {ranks}`, `srun`, or `enigma run FILE --nproc {ranks}`)"
        )),
    )
}

/// E0302: a rank needs `need` bytes and its device has `capacity`.
/// `breakdown` says what the bytes are; `fix`, when the search found one,
/// is a layout that fits.
pub fn memory(
    spec: &ParallelSpec,
    rank: usize,
    need: f64,
    capacity: f64,
    breakdown: &str,
    fix: Option<String>,
) -> Diagnostic {
    let s = &spec.places;
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
        s.mesh.unwrap_or(s.block).file,
        s.mesh.unwrap_or(s.block).span,
        format!("rank {rank} does not fit"),
    )
    .note(format!("rank {rank}: {breakdown}"));
    if let Some(at) = s.setting("device_memory") {
        d = d.secondary(at.file, at.span, format!("{} per device", gb(capacity)));
    }
    d.help(fix.unwrap_or_else(|| {
        "no layout of this many ranks fits: add ranks, shard more with `zero: 3`, or turn on `checkpoint_activations`".to_string()
    }))
}

/// E0303: a setting the planner cannot lower yet.
pub fn unsupported(spec: &ParallelSpec, what: &str, setting: &str) -> Diagnostic {
    let s = &spec.places;
    let at = s.setting(setting).unwrap_or(s.block);
    Diagnostic::new(
        Code::E0303,
        format!("{what} is not supported by the planner yet"),
    )
    .primary(at.file, at.span, "cannot be lowered")
    .help(match setting {
        "pipeline_schedule" => "use `pipeline_schedule: one_f_one_b` (the default) or `gpipe`",
        _ => "write the model without it",
    })
}

/// W0302: a tensor-parallel group whose ranks are on more than one node
/// (ranks are numbered row-major, the last mesh axis fastest, and node `n`
/// holds ranks `n * gpus_per_node ..`): its all-reduces, several per layer,
/// then cross the network instead of NVLink.
pub fn tensor_span(
    spec: &ParallelSpec,
    group: &[usize],
    gpus_per_node: usize,
) -> Option<Diagnostic> {
    let gpn = gpus_per_node.max(1);
    let first = group.first()? / gpn;
    if group.iter().all(|r| r / gpn == first) {
        return None;
    }
    let at = ["heads", "kv_heads", "ffn", "vocab"]
        .iter()
        .find_map(|k| spec.mapping_of(k))
        .unwrap_or(spec.places.block);
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
        .primary(at.file, at.span, "all-reduced every layer, across the network")
        .help("put the tensor-parallel axis last in `mesh` (ranks count the last axis fastest), and make it at most the GPUs of one node"),
    )
}

/// W0301: pipeline stages whose compute differs by more than a fifth: the
/// slowest stage paces every other. `times` are seconds of compute per
/// step, one per stage.
pub fn balance(spec: &ParallelSpec, times: &[f64]) -> Option<Diagnostic> {
    if times.len() < 2 {
        return None;
    }
    let (slow, &max) = times.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    if !(mean > 0.0 && max > 1.2 * mean) {
        return None;
    }
    let at = spec.mapping_of("layers").unwrap_or(spec.places.block);
    let ms: Vec<String> = times.iter().map(|t| format!("{:.1} ms", t * 1e3)).collect();
    Some(
        Diagnostic::new(
            Code::W0301,
            format!(
                "pipeline stage {slow} computes {:.0}% more than the average stage",
                (max / mean - 1.0) * 100.0
            ),
        )
        .primary(at.file, at.span, "stages of equal layers")
        .note(format!("compute per step by stage: {}", ms.join(", ")))
        .help("the first stage also runs the tokenizers and embeddings and the last the heads and losses; use fewer stages, or more layers per stage"),
    )
}
