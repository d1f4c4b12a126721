//! The IR as YAML, for other tools (`enigma check --emit ir`).
//!
//! The in-memory graph keeps source locations and symbolic sizes; this
//! module maps it to a plain document: every shape is a list of dims with a
//! name, a size (an integer, or a polynomial in the dims only data binds,
//! as text) and a rate in Hz where the dim is sampled in time; every value
//! is referred to as `%node`, `param:i` or `input:i`. The document starts
//! with a `format` version so readers can tell layouts apart.

use std::collections::BTreeMap;

use serde::Serialize;

use super::op::{Elementwise, Op, Operand};
use super::stats::Stats;
use super::{Graph, Node};
use crate::diagnostics::Error;
use crate::ir::types::size::Size;
use crate::ir::types::tensor::Tensor;

/// Version of the document layout; bump on incompatible changes.
pub const FORMAT: u32 = 1;

#[derive(Serialize)]
struct Doc<'a> {
    format: u32,
    /// Size of the leading `batch` dim in every shape.
    batch: i64,
    float: &'static str,
    stats: StatsDoc,
    inputs: Vec<InputDoc<'a>>,
    scopes: Vec<ScopeDoc<'a>>,
    params: Vec<ParamDoc<'a>>,
    nodes: Vec<NodeDoc<'a>>,
    outputs: Vec<OutputDoc<'a>>,
    objectives: Vec<ObjectiveDoc<'a>>,
}

#[derive(Serialize)]
struct StatsDoc {
    shared_params: SizeDoc,
    params_per_session: SizeDoc,
    forward_flops_per_sample: SizeDoc,
    activation_bytes_per_sample: SizeDoc,
}

/// A size: a number when known, else its polynomial as text.
#[derive(Serialize)]
#[serde(untagged)]
enum SizeDoc {
    Known(i64),
    Symbolic(String),
}

fn size(s: &Size) -> SizeDoc {
    match s.as_const() {
        Some(v) => SizeDoc::Known(v),
        None => SizeDoc::Symbolic(s.to_string()),
    }
}

#[derive(Serialize)]
struct DimDoc {
    /// `None` for an anonymous dim (written as a plain number).
    name: Option<String>,
    size: SizeDoc,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_hz: Option<f64>,
}

#[derive(Serialize)]
struct TypeDoc {
    dtype: &'static str,
    dims: Vec<DimDoc>,
}

fn ty(t: &Tensor) -> TypeDoc {
    TypeDoc {
        dtype: t.dtype.as_str(),
        dims: t
            .dims
            .iter()
            .map(|d| DimDoc {
                name: (!d.is_anon()).then(|| d.name.to_string()),
                size: size(&d.size_or_name()),
                rate_hz: d.rate,
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct InputDoc<'a> {
    name: &'a str,
    kind: &'a str,
    #[serde(rename = "type")]
    ty: TypeDoc,
}

#[derive(Serialize)]
struct ScopeDoc<'a> {
    path: &'a str,
    module: &'a str,
    #[serde(skip_serializing_if = "is_one")]
    repeat: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    hyper: BTreeMap<&'a str, String>,
    /// `[first input, output]` of a `repeat` body.
    #[serde(skip_serializing_if = "Option::is_none")]
    carry: Option<[String; 2]>,
}

fn is_one(n: &i64) -> bool {
    *n == 1
}

#[derive(Serialize)]
struct ParamDoc<'a> {
    id: usize,
    path: &'a str,
    #[serde(rename = "type")]
    ty: TypeDoc,
    init: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    per_session: bool,
}

#[derive(Serialize)]
struct NodeDoc<'a> {
    id: usize,
    op: &'a str,
    scope: &'a str,
    inputs: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attrs: BTreeMap<&'static str, String>,
    #[serde(rename = "type")]
    ty: TypeDoc,
    #[serde(skip_serializing_if = "is_zero")]
    flops: SizeDoc,
}

fn is_zero(s: &SizeDoc) -> bool {
    matches!(s, SizeDoc::Known(0))
}

#[derive(Serialize)]
struct OutputDoc<'a> {
    model: &'a str,
    name: &'a str,
    value: String,
}

#[derive(Serialize)]
struct ObjectiveDoc<'a> {
    kind: &'a str,
    name: &'a str,
    value: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    masked_only: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    log_rate: bool,
}

/// The graph as a YAML document.
pub fn to_yaml(g: &Graph) -> Result<String, Error> {
    let stats = Stats::of(g);
    let scope_path = |i: usize| g.scopes[i].path.as_str();
    let doc = Doc {
        format: FORMAT,
        batch: g.batch,
        float: if g.float_bytes == 2 { "bf16" } else { "f32" },
        stats: StatsDoc {
            shared_params: size(&stats.shared_params),
            params_per_session: size(&stats.session_params),
            forward_flops_per_sample: size(&stats.forward_flops),
            activation_bytes_per_sample: size(&stats.activation_bytes),
        },
        inputs: g
            .inputs
            .iter()
            .map(|i| InputDoc {
                name: &i.name,
                kind: i.kind.name(),
                ty: ty(&i.ty),
            })
            .collect(),
        scopes: g
            .scopes
            .iter()
            .skip(1)
            .map(|s| ScopeDoc {
                path: &s.path,
                module: &s.module,
                repeat: s.repeat,
                hyper: s
                    .hyper
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.to_string()))
                    .collect(),
                carry: s.carry.map(|(a, b)| [a.label(), b.label()]),
            })
            .collect(),
        params: g
            .params
            .iter()
            .enumerate()
            .map(|(id, p)| ParamDoc {
                id,
                path: &p.path,
                ty: ty(&p.ty),
                init: p.init.to_string(),
                per_session: p.per_session,
            })
            .collect(),
        nodes: g
            .nodes
            .iter()
            .enumerate()
            .map(|(id, n)| NodeDoc {
                id,
                op: n.op.name(),
                scope: scope_path(n.scope),
                inputs: n.inputs.iter().map(|v| v.label()).collect(),
                attrs: attrs(g, n),
                ty: ty(&n.out),
                flops: size(&n.flops),
            })
            .collect(),
        outputs: g
            .outputs
            .iter()
            .map(|o| OutputDoc {
                model: &o.model,
                name: &o.name,
                value: o.value.label(),
            })
            .collect(),
        objectives: g
            .objectives
            .iter()
            .map(|o| ObjectiveDoc {
                kind: o.kind.name(),
                name: &o.name,
                value: o.value.label(),
                masked_only: o.masked_only,
                log_rate: o.log_rate,
            })
            .collect(),
    };
    serde_saphyr::to_string(&doc)
        .map_err(|e| Error::internal(format!("cannot write the IR as YAML: {e}")))
}

/// A node's attributes as text, for people and tools; nothing reads them
/// back. Axes are shown by their dims' names.
fn attrs(g: &Graph, n: &Node) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let input = n.inputs.first().map(|&v| g.type_of(v));
    let name_in = |t: Option<&Tensor>, k: usize| -> String {
        t.and_then(|t| t.dims.get(k))
            .map_or_else(|| format!("#{k}"), |d| d.name.to_string())
    };
    let names = |axes: &[usize]| -> String {
        axes.iter()
            .map(|&k| name_in(input, k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let last_of_out = || {
        n.out
            .dims
            .last()
            .map_or(String::new(), |d| d.name.to_string())
    };
    let list = |v: &[i64]| format!("{v:?}");
    match &n.op {
        Op::Elementwise { f, operands } => {
            let plain = operands
                .iter()
                .enumerate()
                .all(|(i, o)| *o == Operand::Input(i));
            if !plain {
                let spelled: Vec<String> = operands.iter().map(Operand::to_string).collect();
                out.insert("operands", spelled.join(", "));
            }
            match f {
                Elementwise::Gelu { tanh } => {
                    out.insert("approximate", if *tanh { "tanh" } else { "none" }.into());
                }
                Elementwise::Clamp { min, max } => {
                    if let Some(v) = min {
                        out.insert("min", format!("{v:?}"));
                    }
                    if let Some(v) = max {
                        out.insert("max", format!("{v:?}"));
                    }
                }
                _ => {}
            }
        }
        Op::Einsum { summed } => {
            let s: Vec<String> = summed.iter().map(Size::to_string).collect();
            out.insert("sum", s.join(", "));
        }
        Op::Conv {
            stride,
            padding,
            dilation,
            groups,
            ..
        } => {
            out.insert("stride", list(stride));
            out.insert("padding", list(padding));
            out.insert("dilation", list(dilation));
            out.insert("groups", groups.to_string());
        }
        Op::Patchify { size } | Op::Unpatchify { size } => {
            out.insert("size", list(size));
        }
        Op::Norm { eps, .. } => {
            out.insert("eps", format!("{eps:?}"));
        }
        Op::Attention {
            causal,
            heads,
            kv_heads,
            dropout,
            scale,
            masked,
        } => {
            out.insert("causal", causal.to_string());
            out.insert("heads", heads.to_string());
            out.insert("kv_heads", kv_heads.to_string());
            if *dropout > 0.0 {
                out.insert("dropout", format!("{dropout:?}"));
            }
            if let Some(s) = scale {
                out.insert("scale", format!("{s:?}"));
            }
            if *masked {
                out.insert("mask", "true".into());
            }
        }
        Op::Rotary { axis, base, scale } => {
            out.insert("dims", names(&[*axis]));
            out.insert("base", format!("{base:?}"));
            out.insert("scale", format!("{scale:?}"));
        }
        Op::Sinusoidal { base, .. } => {
            out.insert("base", format!("{base:?}"));
        }
        Op::Dropout { p } => {
            out.insert("p", super::types::quantity::short(*p));
        }
        Op::MaskTokens { ratio, axes } => {
            out.insert("ratio", super::types::quantity::short(*ratio));
            let at: Vec<String> = axes.iter().map(usize::to_string).collect();
            out.insert("dims", at.join(", "));
        }
        Op::TokenMask { of } => {
            out.insert("of", of.to_string());
        }
        Op::Softmax { axes, .. } | Op::Reduce { axes, .. } => {
            if !axes.is_empty() {
                out.insert("dims", names(axes));
            }
        }
        Op::Permute { order } => {
            out.insert("dims", names(order));
        }
        Op::Concat { axis } => {
            out.insert("dims", name_in(Some(&n.out), *axis));
        }
        Op::Split { part, .. } => {
            out.insert("part", part.to_string());
        }
        Op::Reshape(r) => {
            out.insert("rewrite", r.written.clone());
        }
        Op::Slice { axis, start, end } => {
            out.insert(
                "range",
                format!("{}: {start}..{end}", name_in(input, *axis)),
            );
        }
        Op::Take { axis } => {
            out.insert("dims", names(&[*axis]));
        }
        Op::OneHot | Op::Stack | Op::Arange => {
            out.insert("dims", last_of_out());
        }
        Op::Cast { dtype } => {
            out.insert("dtype", dtype.as_str().to_string());
        }
        Op::Select {
            tokenizer, start, ..
        } => {
            out.insert("tokenizer", tokenizer.clone());
            out.insert("start", start.to_string());
        }
        Op::Linear
        | Op::Matmul
        | Op::Embedding
        | Op::CausalMask
        | Op::Broadcast
        | Op::OnesLike
        | Op::ZerosLike => {}
    }
    out
}
