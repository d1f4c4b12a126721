//! A plan written out for other tools and for people.
//!
//! - [`to_yaml`] and [`to_json`] write one document (`doc.rs`): the layout,
//!   the process groups, every parameter placement and each planned rank's
//!   program, op by op. Both come from the same serde structs, so the two
//!   forms always say the same thing; the document starts with a `format`
//!   version, as `--emit ir` does.
//! - [`to_dot`] draws the plan in Graphviz's DOT language (`dot.rs`): the
//!   device mesh with its tensor-parallel and pipeline groups, and the
//!   pipeline schedule, one row of forward and backward runs per stage.
//!
//! Everything here reads a finished [`Plan`](super::program::Plan) and the
//! [`Graph`](crate::ir::Graph) it was lowered from; nothing decides
//! anything, so what is written is what the runtime would run.

mod doc;
mod dot;

pub use doc::{to_json, to_yaml, FORMAT};
pub use dot::to_dot;

#[cfg(test)]
pub(crate) mod sample {
    //! A small hand-built plan with every kind of op, for the tests of
    //! both forms.

    use crate::ir::types::size::Size;
    use crate::ir::types::tensor::{DType, Tensor};
    use crate::ir::{
        Elementwise, Graph, Init, Input, ModalityKind, Node, Op, Operand, Param, Scope, ValueRef,
    };
    use crate::plan::mesh::{Axis, Mesh};
    use crate::plan::program::*;
    use crate::plan::shard::Placement;
    use crate::plan::Layout;

    /// A graph of one input, one parameter and two nodes.
    pub fn graph() -> Graph {
        let t = |dtype| Tensor::new(dtype, Vec::new());
        let node = |op: Op| Node {
            op,
            scope: 0,
            inputs: vec![ValueRef::Input(0), ValueRef::Param(0)],
            out: t(DType::Float),
            flops: Size::constant(0),
        };
        Graph {
            batch: 1,
            float_bytes: 2,
            inputs: vec![Input {
                name: "text".to_string(),
                kind: ModalityKind::Series,
                ty: t(DType::I64),
            }],
            scopes: vec![Scope {
                path: "m".to_string(),
                module: "model".to_string(),
                parent: None,
                repeat: 1,
                hyper: Vec::new(),
                carry: None,
            }],
            params: vec![Param {
                path: "m.w".to_string(),
                scope: 0,
                ty: t(DType::Float),
                init: Init::Zeros,
                per_session: false,
            }],
            nodes: vec![
                node(Op::Linear),
                node(Op::Elementwise {
                    f: Elementwise::Add,
                    operands: vec![Operand::Input(0), Operand::Input(1)],
                }),
            ],
            ..Graph::default()
        }
    }

    /// Two pipeline stages on a mesh `pp 2 x tp 2` whose first axis name
    /// needs escaping; ranks 0 and 2 planned.
    pub fn plan() -> Plan {
        let mut layout = Layout::single();
        layout.mesh = Mesh::new(vec![
            Axis {
                name: "p\"p".to_string(),
                size: 2,
            },
            Axis {
                name: "tp".to_string(),
                size: 2,
            },
        ])
        .unwrap();
        layout.pipeline = vec!["p\"p".to_string()];
        layout.tensor = vec!["tp".to_string()];
        layout.microbatches = 2;
        let value = |node, micro| Value {
            value: ValueRef::Node(node),
            copy: 0,
            micro,
        };
        let forward = |node, micro, recompute: bool| Instr::Forward {
            node,
            copy: 0,
            micro,
            shape: vec![4, 8],
            dtype: DType::Float,
            flops: 64.0,
            saved: !recompute,
            recompute,
            narrow: Vec::new(),
            gather: Vec::new(),
            partial_grad: Vec::new(),
        };
        let backward = |node, micro| Instr::Backward {
            node,
            copy: 0,
            micro,
            flops: 128.0,
        };
        let reduce = |group, purpose| {
            Instr::Collective(Collective {
                kind: CollectiveKind::AllReduce,
                group,
                dtype: DType::Float,
                elems: 32,
                dim: None,
                purpose,
            })
        };
        let send = |send, peer, micro, grad| Transfer {
            send,
            peer,
            value: value(1, micro),
            grad,
            shape: vec![4, 8],
            dtype: DType::Float,
        };
        let stage0 = vec![
            Instr::Load {
                input: 0,
                micro: 0,
                shape: vec![4, 9],
                dtype: DType::I64,
            },
            forward(0, 0, false),
            reduce(0, Purpose::Forward(value(0, 0))),
            forward(1, 0, false),
            Instr::P2p(vec![send(true, 2, 0, false)]),
            forward(0, 1, false),
            forward(1, 1, false),
            Instr::P2p(vec![send(true, 2, 1, false), send(false, 2, 0, true)]),
            forward(1, 0, true),
            backward(1, 0),
            backward(0, 0),
            Instr::P2p(vec![send(false, 2, 1, true)]),
            backward(1, 1),
            backward(0, 1),
            Instr::Collective(Collective {
                kind: CollectiveKind::ReduceScatter,
                group: 0,
                dtype: DType::Float,
                elems: 64,
                dim: None,
                purpose: Purpose::Gradients(vec![0]),
            }),
            Instr::Collective(Collective {
                kind: CollectiveKind::AllGather,
                group: 0,
                dtype: DType::F32,
                elems: 64,
                dim: None,
                purpose: Purpose::UpdatedParams(vec![0]),
            }),
            Instr::Step,
        ];
        let stage1 = vec![
            Instr::P2p(vec![send(false, 0, 0, false)]),
            forward(1, 0, false),
            backward(1, 0),
            Instr::P2p(vec![send(true, 0, 0, true), send(false, 0, 1, false)]),
            forward(1, 1, false),
            reduce(0, Purpose::Backward(value(1, 1))),
            backward(1, 1),
            Instr::P2p(vec![send(true, 0, 1, true)]),
            reduce(0, Purpose::GatherParams(vec![0])),
            Instr::Step,
        ];
        Plan {
            layout,
            micro_batch: 4,
            microbatches: 2,
            float_bytes: 2,
            placements: vec![Placement {
                param: 0,
                layer: None,
                stage: 0,
                split: vec![vec!["tp".to_string()], Vec::new()],
                shape: vec![8, 8],
                copies: 1,
            }],
            groups: vec![Group {
                kind: GroupKind::Tensor,
                axes: vec!["tp".to_string()],
                ranks: vec![0, 1],
            }],
            ranks: vec![
                RankProgram {
                    rank: 0,
                    coords: vec![0, 0],
                    stage: 0,
                    params: vec![LocalParam {
                        placement: 0,
                        ranges: vec![(0, 4), (0, 8)],
                        owner: true,
                        zero_slice: Some((0, 16)),
                    }],
                    ops: stage0,
                },
                RankProgram {
                    rank: 2,
                    coords: vec![1, 0],
                    stage: 1,
                    params: Vec::new(),
                    ops: stage1,
                },
            ],
        }
    }
}
