//! The plan as one YAML or JSON document.
//!
//! The document borrows from the plan and the graph, like `ir::yaml`:
//! parameters are named by their paths, values by their IR labels (`%12`,
//! `param:3`, `input:0`) with the copy and micro-batch they belong to, and
//! every op is a small map tagged by `op` (`forward`, `all_reduce`, `p2p`,
//! ...). Keys come in the order of the struct fields and lists in the
//! plan's order, so the same plan always gives the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_saphyr::{FlowMap, FlowSeq};

use crate::diagnostics::Error;
use crate::ir::layout::PipelineSchedule;
use crate::ir::types::tensor::DType;
use crate::ir::Graph;
use crate::plan::layout::Layout;
use crate::plan::program::{
    Collective, CollectiveKind, Group, Instr, LocalParam, Plan, Purpose, RankProgram, Transfer,
    Value,
};
use crate::plan::shard::Placement;

/// Version of the document layout; bump on incompatible changes.
pub const FORMAT: u32 = 1;

#[derive(Serialize)]
struct Doc<'a> {
    format: u32,
    /// The model float: `bf16` or `f32`.
    float: &'static str,
    layout: LayoutDoc<'a>,
    groups: Vec<FlowMap<GroupDoc<'a>>>,
    placements: Vec<FlowMap<PlacementDoc<'a>>>,
    ranks: Vec<RankDoc<'a>>,
}

#[derive(Serialize)]
struct AxisDoc<'a> {
    name: &'a str,
    size: usize,
}

#[derive(Serialize)]
struct LayoutDoc<'a> {
    /// Axes slowest first; ranks are row-major over them.
    mesh: Vec<FlowMap<AxisDoc<'a>>>,
    ranks: usize,
    data: FlowSeq<&'a [String]>,
    tensor: FlowSeq<&'a [String]>,
    pipeline: FlowSeq<&'a [String]>,
    stages: usize,
    /// Logical dims by the mesh axes they are split over.
    mapped: FlowMap<&'a BTreeMap<String, Vec<String>>>,
    zero: u8,
    zero_axes: FlowSeq<&'a [String]>,
    /// Samples per micro-batch on one rank.
    micro_batch: i64,
    /// Micro-batches per rank per optimizer step: `pipeline_microbatches`
    /// times `accumulate`; the `micro` of every op counts these.
    microbatches: usize,
    pipeline_microbatches: usize,
    accumulate: usize,
    schedule: &'static str,
    checkpointing: bool,
    sequence_parallel: bool,
    device_memory: f64,
    bucket: f64,
}

fn schedule(s: PipelineSchedule) -> &'static str {
    // The spellings of the `pipeline_schedule` setting.
    match s {
        PipelineSchedule::OneFOneB => "one_f_one_b",
        PipelineSchedule::GPipe => "gpipe",
        PipelineSchedule::Interleaved => "interleaved",
    }
}

fn layout(plan: &Plan) -> LayoutDoc<'_> {
    let l: &Layout = &plan.layout;
    LayoutDoc {
        mesh: l
            .mesh
            .axes()
            .iter()
            .map(|a| {
                FlowMap(AxisDoc {
                    name: &a.name,
                    size: a.size,
                })
            })
            .collect(),
        ranks: l.mesh.size(),
        data: FlowSeq(&l.data),
        tensor: FlowSeq(&l.tensor),
        pipeline: FlowSeq(&l.pipeline),
        stages: l.stages(),
        mapped: FlowMap(&l.mapped),
        zero: l.zero,
        zero_axes: FlowSeq(&l.zero_axes),
        micro_batch: plan.micro_batch,
        microbatches: plan.microbatches,
        pipeline_microbatches: l.microbatches,
        accumulate: l.accumulate,
        schedule: schedule(l.schedule),
        checkpointing: l.checkpoint_activations,
        sequence_parallel: l.sequence_parallel,
        device_memory: l.device_memory,
        bucket: l.bucket,
    }
}

#[derive(Serialize)]
struct GroupDoc<'a> {
    id: usize,
    kind: &'static str,
    axes: &'a [String],
    ranks: &'a [usize],
}

fn group(id: usize, g: &Group) -> GroupDoc<'_> {
    GroupDoc {
        id,
        kind: g.kind.as_str(),
        axes: &g.axes,
        ranks: &g.ranks,
    }
}

#[derive(Serialize)]
struct PlacementDoc<'a> {
    id: usize,
    /// The parameter's path in the graph (absent if the plan names a
    /// parameter the graph does not have).
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<usize>,
    stage: usize,
    /// Per dim, the mesh axes it is split over (empty: whole).
    split: &'a [Vec<String>],
    shape: &'a [i64],
    copies: i64,
}

fn placement<'a>(g: &'a Graph, id: usize, p: &'a Placement) -> PlacementDoc<'a> {
    PlacementDoc {
        id,
        param: g.params.get(p.param).map(|q| q.path.as_str()),
        layer: p.layer,
        stage: p.stage,
        split: &p.split,
        shape: &p.shape,
        copies: p.copies,
    }
}

#[derive(Serialize)]
struct RankDoc<'a> {
    rank: usize,
    coords: FlowSeq<&'a [usize]>,
    stage: usize,
    params: Vec<FlowMap<ParamDoc>>,
    ops: Vec<FlowMap<OpDoc<'a>>>,
}

#[derive(Serialize)]
struct ParamDoc {
    placement: usize,
    /// Half-open `[start, end)` per dim.
    ranges: Vec<[i64; 2]>,
    owner: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    zero_slice: Option<[i64; 2]>,
}

fn param(p: &LocalParam) -> ParamDoc {
    ParamDoc {
        placement: p.placement,
        ranges: p.ranges.iter().map(|&(a, b)| [a, b]).collect(),
        owner: p.owner,
        zero_slice: p.zero_slice.map(|(a, b)| [a, b]),
    }
}

/// A dtype as written: the IR's `float` (the model float) as the plan's
/// concrete float, `bf16` or `f32`, so that a reader can size buffers.
fn dtype(d: DType, float: &'static str) -> &'static str {
    if d == DType::Float {
        float
    } else {
        d.as_str()
    }
}

/// One op: a map whose `op` key says which.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum OpDoc<'a> {
    Load {
        input: usize,
        /// The modality's name.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        micro: usize,
        shape: &'a [i64],
        dtype: &'static str,
    },
    Forward {
        node: usize,
        /// The node's primitive (`matmul`, `attention`, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        prim: Option<&'a str>,
        copy: usize,
        micro: usize,
        shape: &'a [i64],
        dtype: &'static str,
        flops: f64,
        saved: bool,
        recompute: bool,
        /// `[input position, dim]` pairs cut to this rank's part.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        narrow: Vec<[usize; 2]>,
        /// Inputs taken whole from the tensor-parallel gather before.
        #[serde(skip_serializing_if = "<[usize]>::is_empty")]
        gather: &'a [usize],
        /// Inputs whose gradient this application leaves partial.
        #[serde(skip_serializing_if = "<[usize]>::is_empty")]
        partial_grad: &'a [usize],
    },
    Backward {
        node: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        prim: Option<&'a str>,
        copy: usize,
        micro: usize,
        flops: f64,
    },
    AllReduce(CollectiveDoc),
    AllGather(CollectiveDoc),
    ReduceScatter(CollectiveDoc),
    P2p {
        transfers: Vec<TransferDoc<'a>>,
    },
    Step,
}

#[derive(Serialize)]
struct CollectiveDoc {
    group: usize,
    dtype: &'static str,
    /// Elements of the whole buffer on one rank.
    elems: i64,
    /// The dim a tensor-parallel gather or scatter works along.
    #[serde(skip_serializing_if = "Option::is_none")]
    dim: Option<usize>,
    purpose: PurposeDoc,
}

/// A value of one copy and micro-batch.
#[derive(Serialize)]
struct ValueDoc {
    value: String,
    copy: usize,
    micro: usize,
}

fn value(v: &Value) -> ValueDoc {
    ValueDoc {
        value: v.value.label(),
        copy: v.copy,
        micro: v.micro,
    }
}

/// Why a collective runs: a map with one key, the reason, whose value is
/// the value or the placements it applies to.
enum PurposeDoc {
    Forward(ValueDoc),
    Backward(ValueDoc),
    GatherParams(Vec<usize>),
    Gradients(Vec<usize>),
    UpdatedParams(Vec<usize>),
}

impl Serialize for PurposeDoc {
    // Written as a one-entry map rather than derived: serde's externally
    // tagged enum is a newtype variant, which serde_saphyr writes inside a
    // flow map as `purpose: forward: {...}`, not valid YAML; a map is
    // written `purpose: {forward: {...}}` in both YAML and JSON.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            PurposeDoc::Forward(v) => m.serialize_entry("forward", v)?,
            PurposeDoc::Backward(v) => m.serialize_entry("backward", v)?,
            PurposeDoc::GatherParams(p) => m.serialize_entry("gather_params", p)?,
            PurposeDoc::Gradients(p) => m.serialize_entry("gradients", p)?,
            PurposeDoc::UpdatedParams(p) => m.serialize_entry("updated_params", p)?,
        }
        m.end()
    }
}

fn collective(c: &Collective, float: &'static str) -> CollectiveDoc {
    CollectiveDoc {
        group: c.group,
        dtype: dtype(c.dtype, float),
        elems: c.elems,
        dim: c.dim,
        purpose: match &c.purpose {
            Purpose::Forward(v) => PurposeDoc::Forward(value(v)),
            Purpose::Backward(v) => PurposeDoc::Backward(value(v)),
            Purpose::GatherParams(p) => PurposeDoc::GatherParams(p.clone()),
            Purpose::Gradients(p) => PurposeDoc::Gradients(p.clone()),
            Purpose::UpdatedParams(p) => PurposeDoc::UpdatedParams(p.clone()),
        },
    }
}

#[derive(Serialize)]
struct TransferDoc<'a> {
    send: bool,
    peer: usize,
    value: String,
    copy: usize,
    micro: usize,
    grad: bool,
    shape: &'a [i64],
    dtype: &'static str,
}

fn transfer<'a>(t: &'a Transfer, float: &'static str) -> TransferDoc<'a> {
    TransferDoc {
        send: t.send,
        peer: t.peer,
        value: t.value.value.label(),
        copy: t.value.copy,
        micro: t.value.micro,
        grad: t.grad,
        shape: &t.shape,
        dtype: dtype(t.dtype, float),
    }
}

fn op<'a>(g: &'a Graph, float: &'static str, op: &'a Instr) -> OpDoc<'a> {
    let prim = |node: usize| g.nodes.get(node).map(|n| n.op.name());
    match op {
        Instr::Load {
            input,
            micro,
            shape,
            dtype,
        } => OpDoc::Load {
            input: *input,
            name: g.inputs.get(*input).map(|i| i.name.as_str()),
            micro: *micro,
            shape,
            dtype: self::dtype(*dtype, float),
        },
        Instr::Forward {
            node,
            copy,
            micro,
            shape,
            dtype,
            flops,
            saved,
            recompute,
            narrow,
            gather,
            partial_grad,
        } => OpDoc::Forward {
            node: *node,
            prim: prim(*node),
            copy: *copy,
            micro: *micro,
            shape,
            dtype: self::dtype(*dtype, float),
            flops: *flops,
            saved: *saved,
            recompute: *recompute,
            narrow: narrow.iter().map(|&(i, d)| [i, d]).collect(),
            gather,
            partial_grad,
        },
        Instr::Backward {
            node,
            copy,
            micro,
            flops,
        } => OpDoc::Backward {
            node: *node,
            prim: prim(*node),
            copy: *copy,
            micro: *micro,
            flops: *flops,
        },
        Instr::Collective(c) => match c.kind {
            CollectiveKind::AllReduce => OpDoc::AllReduce(collective(c, float)),
            CollectiveKind::AllGather => OpDoc::AllGather(collective(c, float)),
            CollectiveKind::ReduceScatter => OpDoc::ReduceScatter(collective(c, float)),
        },
        Instr::P2p(ts) => OpDoc::P2p {
            transfers: ts.iter().map(|t| transfer(t, float)).collect(),
        },
        Instr::Step => OpDoc::Step,
    }
}

fn rank<'a>(g: &'a Graph, float: &'static str, r: &'a RankProgram) -> RankDoc<'a> {
    RankDoc {
        rank: r.rank,
        coords: FlowSeq(&r.coords),
        stage: r.stage,
        params: r.params.iter().map(|p| FlowMap(param(p))).collect(),
        ops: r.ops.iter().map(|o| FlowMap(op(g, float, o))).collect(),
    }
}

fn doc<'a>(g: &'a Graph, plan: &'a Plan) -> Doc<'a> {
    let float = if plan.float_bytes == 2 { "bf16" } else { "f32" };
    Doc {
        format: FORMAT,
        float,
        layout: layout(plan),
        groups: plan
            .groups
            .iter()
            .enumerate()
            .map(|(i, x)| FlowMap(group(i, x)))
            .collect(),
        placements: plan
            .placements
            .iter()
            .enumerate()
            .map(|(i, p)| FlowMap(placement(g, i, p)))
            .collect(),
        ranks: plan.ranks.iter().map(|r| rank(g, float, r)).collect(),
    }
}

/// The plan as a YAML document. An error is the serializer's (a bug:
/// every value of the document serialises).
pub fn to_yaml(g: &Graph, plan: &Plan) -> Result<String, Error> {
    serde_saphyr::to_string(&doc(g, plan))
        .map_err(|e| Error::internal(format!("cannot write the plan as YAML: {e}")))
}

/// The plan as one line of JSON, the same document as [`to_yaml`].
pub fn to_json(g: &Graph, plan: &Plan) -> Result<String, Error> {
    serde_json::to_string(&doc(g, plan))
        .map_err(|e| Error::internal(format!("cannot write the plan as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

    use super::*;
    use crate::plan::emit::sample;

    fn parsed() -> Json {
        let (g, plan) = (sample::graph(), sample::plan());
        serde_json::from_str(&to_json(&g, &plan).unwrap()).unwrap()
    }

    #[test]
    fn the_document_holds_layout_groups_placements_and_programs() {
        let doc = parsed();
        assert_eq!(doc["format"], 1);
        assert_eq!(doc["float"], "bf16");
        let layout = &doc["layout"];
        assert_eq!(
            layout["mesh"],
            json!([{"name": "p\"p", "size": 2}, {"name": "tp", "size": 2}])
        );
        assert_eq!(layout["ranks"], 4);
        assert_eq!(layout["stages"], 2);
        assert_eq!(layout["tensor"], json!(["tp"]));
        assert_eq!(layout["micro_batch"], 4);
        assert_eq!(layout["microbatches"], 2);
        assert_eq!(layout["schedule"], "one_f_one_b");
        assert_eq!(layout["checkpointing"], false);
        assert_eq!(
            doc["groups"],
            json!([{"id": 0, "kind": "tensor", "axes": ["tp"], "ranks": [0, 1]}])
        );
        // A placement names its parameter by path; one outside a repeat
        // has no layer.
        assert_eq!(
            doc["placements"],
            json!([{"id": 0, "param": "m.w", "stage": 0, "split": [["tp"], []],
                    "shape": [8, 8], "copies": 1}])
        );
        let ranks = doc["ranks"].as_array().unwrap();
        assert_eq!(ranks.len(), 2);
        assert_eq!(ranks[1]["rank"], 2);
        assert_eq!(ranks[1]["coords"], json!([1, 0]));
        assert_eq!(ranks[1]["stage"], 1);
        assert_eq!(
            ranks[0]["params"],
            json!([{"placement": 0, "ranges": [[0, 4], [0, 8]], "owner": true,
                    "zero_slice": [0, 16]}])
        );
        let plan = sample::plan();
        for (r, p) in ranks.iter().zip(&plan.ranks) {
            assert_eq!(r["ops"].as_array().unwrap().len(), p.ops.len());
        }
    }

    #[test]
    fn every_op_is_a_map_tagged_by_op() {
        let doc = parsed();
        let ops = doc["ranks"][0]["ops"].as_array().unwrap();
        let tags: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(
            tags,
            [
                "load",
                "forward",
                "all_reduce",
                "forward",
                "p2p",
                "forward",
                "forward",
                "p2p",
                "forward",
                "backward",
                "backward",
                "p2p",
                "backward",
                "backward",
                "reduce_scatter",
                "all_gather",
                "step"
            ]
        );
        // The model float is written as the plan's float; other dtypes as
        // they are.
        assert_eq!(
            ops[0],
            json!({"op": "load", "input": 0, "name": "text", "micro": 0,
                   "shape": [4, 9], "dtype": "i64"})
        );
        assert_eq!(
            ops[2],
            json!({"op": "all_reduce", "group": 0, "dtype": "bf16", "elems": 32,
                   "purpose": {"forward": {"value": "%0", "copy": 0, "micro": 0}}})
        );
        assert_eq!(
            ops[7]["transfers"],
            json!([
                {"send": true, "peer": 2, "value": "%1", "copy": 0, "micro": 1,
                 "grad": false, "shape": [4, 8], "dtype": "bf16"},
                {"send": false, "peer": 2, "value": "%1", "copy": 0, "micro": 0,
                 "grad": true, "shape": [4, 8], "dtype": "bf16"}
            ])
        );
        assert_eq!(ops[8]["recompute"], true);
        assert_eq!(ops[8]["saved"], false);
        assert_eq!(
            ops[9],
            json!({"op": "backward", "node": 1, "prim": "add", "copy": 0, "micro": 0,
                   "flops": 128.0})
        );
        assert_eq!(ops[14]["purpose"], json!({"gradients": [0]}));
        assert_eq!(ops[15]["dtype"], "f32");
        assert_eq!(ops[15]["purpose"], json!({"updated_params": [0]}));
        assert_eq!(ops[16], json!({"op": "step"}));
        let ops = doc["ranks"][1]["ops"].as_array().unwrap();
        assert_eq!(
            ops[5]["purpose"],
            json!({"backward": {"value": "%1", "copy": 0, "micro": 1}})
        );
        assert_eq!(ops[8]["purpose"], json!({"gather_params": [0]}));
    }

    #[test]
    fn keys_keep_their_order() {
        let (g, plan) = (sample::graph(), sample::plan());
        let json = to_json(&g, &plan).unwrap();
        assert!(json.starts_with("{\"format\":1,\"float\":\"bf16\",\"layout\":{\"mesh\":"));
        assert!(json.contains(
            "{\"op\":\"forward\",\"node\":0,\"prim\":\"linear\",\"copy\":0,\"micro\":0,\
             \"shape\":[4,8],\"dtype\":\"bf16\",\"flops\":64.0,\"saved\":true,\"recompute\":false}"
        ));
        let yaml = to_yaml(&g, &plan).unwrap();
        assert!(
            yaml.starts_with("format: 1\nfloat: bf16\nlayout:\n"),
            "{yaml}"
        );
    }

    #[test]
    fn yaml_and_json_are_the_same_document() {
        let (g, plan) = (sample::graph(), sample::plan());
        let yaml = to_yaml(&g, &plan).unwrap();
        // Every op is one line of YAML.
        assert!(yaml.contains("\n  - {op: step}\n"), "{yaml}");
        let from_yaml: Json = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(from_yaml, parsed());
    }
}
