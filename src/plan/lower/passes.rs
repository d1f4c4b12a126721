//! The forward and backward passes of one rank, op by op.
//!
//! A [`Builder`] walks the rank's schedule of chunks (one forward or one
//! backward pass over one micro-batch) and appends ops: receives at the
//! start of a chunk posted together with the previous chunk's sends (so
//! that neighbouring stages exchanging activations one way and gradients
//! the other never wait on each other, as in Megatron-LM's
//! `send_forward_recv_backward`), data loads, ZeRO-3 parameter gathers,
//! tensor-parallel collectives around the nodes that need them, gradient
//! reductions as buckets become ready, and at the end tied-parameter
//! reductions, the optimizer step and ZeRO-1/2's gathers of the updated
//! weights.

use super::*;

impl Builder<'_, '_> {
    /// The rank at stage `s` with this rank's other coordinates.
    fn peer(&self, s: usize) -> usize {
        self.lw
            .layout
            .mesh
            .rank(&stage_coords(self.lw.layout, &self.coords, s))
    }

    /// Posts the pending sends with `recvs` as one batched transfer.
    pub(super) fn flush(&mut self, recvs: Vec<Transfer>) {
        let mut all = std::mem::take(&mut self.pending);
        all.extend(recvs);
        if !all.is_empty() {
            self.ops.push(Instr::P2p(all));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn collective(
        &mut self,
        kind: CollectiveKind,
        group: Option<usize>,
        dtype: DType,
        elems: i64,
        dim: Option<usize>,
        purpose: Purpose,
    ) {
        if let Some(group) = group {
            self.ops.push(Instr::Collective(Collective {
                kind,
                group,
                dtype,
                elems,
                dim,
                purpose,
            }));
        }
    }

    /// A transfer of `p`'s output (or its gradient) with `peer`.
    fn transfer(&self, p: Inst, mb: usize, send: bool, grad: bool, peer_stage: usize) -> Transfer {
        let lw = self.lw;
        let node = &lw.g.nodes[p.node];
        Transfer {
            send,
            peer: self.peer(peer_stage),
            value: Value {
                value: ValueRef::Node(p.node),
                copy: p.copy,
                micro: mb,
            },
            grad,
            shape: lw.local_shape(&node.out, lw.out_split(p.node)),
            dtype: if grad {
                DType::Float
            } else {
                compute_dtype(node.out.dtype)
            },
        }
    }

    /// The ZeRO-3 unit whose parameters `inst` uses: its layer, or `None`
    /// for parameters outside the layers; `None` outright without
    /// parameters.
    fn unit(&self, inst: Inst) -> Option<Option<usize>> {
        let lw = self.lw;
        let uses = lw.g.nodes[inst.node]
            .inputs
            .iter()
            .any(|v| matches!(v, ValueRef::Param(_)));
        if !uses {
            return None;
        }
        Some(match (lw.body_of[inst.node], lw.pipelined) {
            (Some(b), Some(p)) if b == p => Some(inst.copy),
            _ => None,
        })
    }

    /// Gathers a ZeRO-3 unit's weights if the last gather was another's.
    fn gather_unit(&mut self, inst: Inst, current: &mut Option<Option<usize>>) {
        let lw = self.lw;
        if lw.layout.zero < 3 || self.zero.is_none() {
            return;
        }
        let Some(unit) = self.unit(inst) else { return };
        if *current == Some(unit) {
            return;
        }
        *current = Some(unit);
        let members: Vec<usize> = lw
            .by_layer
            .get(&unit)
            .map(|ks| {
                ks.iter()
                    .copied()
                    .filter(|&k| lw.holders[k].contains(&self.stage))
                    .collect()
            })
            .unwrap_or_default();
        let elems = members.iter().map(|&k| lw.shard_elems(k)).sum();
        self.collective(
            CollectiveKind::AllGather,
            self.zero,
            DType::Float,
            elems,
            None,
            Purpose::GatherParams(members),
        );
    }

    /// The forward of one instance, with its tensor-parallel collectives.
    fn forward_one(&mut self, k: usize, mb: usize, recompute: bool) {
        let lw = self.lw;
        let inst = lw.order[k];
        let node = &lw.g.nodes[inst.node];
        let plan = &lw.tp[inst.node];
        for &i in &plan.gather {
            let v = node.inputs[i];
            let key = Value {
                value: v,
                copy: lw.producer(inst, v).map_or(inst.copy, |p| p.copy),
                micro: mb,
            };
            // One gather serves every consumer in this pass (the query,
            // key and value projections of one normed input).
            if matches!(v, ValueRef::Node(_)) {
                if self.gathered.contains(&key) {
                    continue;
                }
                self.gathered.push(key);
            }
            let (value, elems) = match lw.producer(inst, v) {
                Some(p) => (
                    Value {
                        value: v,
                        copy: p.copy,
                        micro: mb,
                    },
                    lw.whole_elems(p.node),
                ),
                None => {
                    let ty = lw.g.type_of(v);
                    (
                        Value {
                            value: v,
                            copy: inst.copy,
                            micro: mb,
                        },
                        lw.local_shape(ty, None).iter().product(),
                    )
                }
            };
            let dim = match v {
                ValueRef::Node(j) => lw.out_split(j),
                ValueRef::Param(p) => lw
                    .placement(p, inst)
                    .and_then(|k| lw.placements[k].split.iter().position(|a| !a.is_empty())),
                ValueRef::Input(_) => None,
            };
            self.collective(
                CollectiveKind::AllGather,
                self.tensor,
                compute_dtype(lw.g.type_of(v).dtype),
                elems,
                dim,
                Purpose::Forward(value),
            );
        }
        let checkpointed = lw.layout.checkpoint_activations
            && lw.pipelined.is_some()
            && lw.body_of[inst.node] == lw.pipelined;
        let carry_out = lw
            .pipelined
            .and_then(|p| lw.g.scopes[p].carry)
            .map(|(_, out)| out);
        let flops = node.flops.as_const().unwrap_or(0) as f64 * lw.micro_batch as f64
            / plan.work_div.max(1.0);
        self.ops.push(Instr::Forward {
            node: inst.node,
            copy: inst.copy,
            micro: mb,
            shape: lw.local_shape(&node.out, lw.out_split(inst.node)),
            dtype: compute_dtype(node.out.dtype),
            flops,
            saved: recompute || !checkpointed || carry_out == Some(ValueRef::Node(inst.node)),
            recompute,
            narrow: lw.narrowed(inst),
            gather: plan.gather.clone(),
            partial_grad: plan
                .reduce_grad
                .iter()
                .copied()
                .filter(|&i| {
                    lw.producer(inst, node.inputs[i])
                        .is_some_and(|p| lw.needs_grad[p.node])
                })
                .collect(),
        });
        if plan.reduce_out || plan.scatter_out.is_some() {
            let kind = if plan.reduce_out {
                CollectiveKind::AllReduce
            } else {
                CollectiveKind::ReduceScatter
            };
            self.collective(
                kind,
                self.tensor,
                compute_dtype(node.out.dtype),
                lw.whole_elems(inst.node),
                plan.scatter_out,
                Purpose::Forward(Value {
                    value: ValueRef::Node(inst.node),
                    copy: inst.copy,
                    micro: mb,
                }),
            );
        }
    }

    /// One forward pass of micro-batch `mb` over this stage's instances.
    pub(super) fn forward(&mut self, mine: &[usize], mb: usize) {
        let lw = self.lw;
        let recvs: Vec<Transfer> = lw.incoming[self.stage]
            .iter()
            .map(|&(p, from)| self.transfer(p, mb, false, false, from))
            .collect();
        self.flush(recvs);
        self.gathered.clear();
        let mut loaded: Vec<usize> = Vec::new();
        let mut unit = None;
        for &k in mine {
            let inst = lw.order[k];
            for v in &lw.g.nodes[inst.node].inputs {
                if let ValueRef::Input(i) = *v {
                    if !loaded.contains(&i) {
                        loaded.push(i);
                        let ty = &lw.g.inputs[i].ty;
                        self.ops.push(Instr::Load {
                            input: i,
                            micro: mb,
                            shape: lw.local_shape(ty, None),
                            dtype: ty.dtype,
                        });
                    }
                }
            }
            self.gather_unit(inst, &mut unit);
            self.forward_one(k, mb, false);
        }
        self.pending = lw.outgoing[self.stage]
            .iter()
            .map(|&(p, to)| self.transfer(p, mb, true, false, to))
            .collect();
    }

    /// One backward pass of micro-batch `mb`, in reverse program order,
    /// with gradient buckets reduced as they become ready.
    pub(super) fn backward(&mut self, mine: &[usize], mb: usize, buckets: &[Bucket], last: bool) {
        let lw = self.lw;
        let recvs: Vec<Transfer> = lw.outgoing[self.stage]
            .iter()
            .filter(|(p, _)| lw.needs_grad[p.node])
            .map(|&(p, to)| self.transfer(p, mb, false, true, to))
            .collect();
        self.flush(recvs);
        let mut unit = None;
        let mut recomputed: Option<usize> = None;
        for &k in mine.iter().rev() {
            let inst = lw.order[k];
            let in_body = lw.pipelined.is_some() && lw.body_of[inst.node] == lw.pipelined;
            if lw.layout.checkpoint_activations && in_body && recomputed != Some(inst.copy) {
                // Run the block's forward again, from its saved input.
                recomputed = Some(inst.copy);
                self.gathered.clear();
                for &j in mine {
                    let other = lw.order[j];
                    if other.copy == inst.copy && lw.body_of[other.node] == lw.pipelined {
                        self.gather_unit(other, &mut unit);
                        self.forward_one(j, mb, true);
                    }
                }
            }
            self.gather_unit(inst, &mut unit);
            let node = &lw.g.nodes[inst.node];
            let forward_flops = node.flops.as_const().unwrap_or(0) as f64 * lw.micro_batch as f64
                / lw.tp[inst.node].work_div.max(1.0);
            let this = Value {
                value: ValueRef::Node(inst.node),
                copy: inst.copy,
                micro: mb,
            };
            if lw.tp[inst.node].scatter_out.is_some() {
                // The output was reduce-scattered to sequence shards; the
                // backward needs its whole gradient.
                self.collective(
                    CollectiveKind::AllGather,
                    self.tensor,
                    DType::Float,
                    lw.whole_elems(inst.node),
                    lw.tp[inst.node].scatter_out,
                    Purpose::Backward(this),
                );
            }
            self.ops.push(Instr::Backward {
                node: inst.node,
                copy: inst.copy,
                micro: mb,
                flops: 2.0 * forward_flops,
            });
            // A narrowed input has a gradient for this rank's part only;
            // gather the parts to the whole value's gradient.
            for (i, d) in lw.narrowed(inst) {
                self.input_grad(CollectiveKind::AllGather, inst, i, mb, Some(d));
            }
            let kind = if lw.tp[inst.node].scatter_grad {
                CollectiveKind::ReduceScatter
            } else {
                CollectiveKind::AllReduce
            };
            for &i in &lw.reduce_grad[inst.node] {
                // A reduce-scatter returns the gradient to the sequence
                // shards the input was gathered from.
                let dim = match (kind, node.inputs[i]) {
                    (CollectiveKind::ReduceScatter, ValueRef::Node(j)) => lw.out_split(j),
                    _ => None,
                };
                self.input_grad(kind, inst, i, mb, dim);
            }
            for b in buckets.iter().filter(|b| b.ready == k) {
                self.reduce_bucket(b, last);
            }
        }
        self.pending = lw.incoming[self.stage]
            .iter()
            .filter(|(p, _)| lw.needs_grad[p.node])
            .map(|&(p, from)| self.transfer(p, mb, true, true, from))
            .collect();
    }

    /// A tensor-group collective on the gradient of input `i` of `inst`,
    /// when that input is a value with a gradient.
    fn input_grad(
        &mut self,
        kind: CollectiveKind,
        inst: Inst,
        i: usize,
        mb: usize,
        dim: Option<usize>,
    ) {
        let lw = self.lw;
        let v = lw.g.nodes[inst.node].inputs[i];
        let Some(p) = lw.producer(inst, v).filter(|p| lw.needs_grad[p.node]) else {
            return;
        };
        self.collective(
            kind,
            self.tensor,
            DType::Float,
            lw.whole_elems(p.node),
            dim,
            Purpose::Backward(Value {
                value: v,
                copy: p.copy,
                micro: mb,
            }),
        );
    }

    /// The data-parallel reduction of a bucket of gradients: ZeRO-2/3
    /// reduce-scatter every micro-batch (each rank keeps only its slice),
    /// then average the slices across replicas at the last; otherwise one
    /// all-reduce after the last micro-batch's backward.
    fn reduce_bucket(&mut self, b: &Bucket, last: bool) {
        let purpose = Purpose::Gradients(b.placements.clone());
        if self.lw.layout.zero >= 2 && self.zero.is_some() {
            self.collective(
                CollectiveKind::ReduceScatter,
                self.zero,
                DType::Float,
                b.elems,
                None,
                purpose.clone(),
            );
            if last {
                let degree = self
                    .lw
                    .layout
                    .mesh
                    .degree(&self.lw.layout.zero_axes)
                    .unwrap_or(1)
                    .max(1) as i64;
                let slice = (b.elems + degree - 1) / degree;
                self.collective(
                    CollectiveKind::AllReduce,
                    self.replica,
                    DType::Float,
                    slice,
                    None,
                    purpose,
                );
            }
        } else if last {
            self.collective(
                CollectiveKind::AllReduce,
                self.data,
                DType::Float,
                b.elems,
                None,
                purpose,
            );
        }
    }

    /// The elements of placement `k`'s gradient this rank holds at the end
    /// of the backward pass: its tensor shard, or under ZeRO-2/3 its slice.
    fn grad_elems(&self, k: usize) -> i64 {
        let l = self.lw.layout;
        let elems = self.lw.shard_elems(k);
        if l.zero >= 2 && self.zero.is_some() {
            let degree = l.mesh.degree(&l.zero_axes).unwrap_or(1).max(1) as i64;
            (elems + degree - 1) / degree
        } else {
            elems
        }
    }

    /// After the last backward: tied parameters' gradients summed across
    /// the stages holding them, the optimizer step, and ZeRO-1/2's gathers
    /// of the updated weights.
    pub(super) fn finish(&mut self, groups: &mut Groups, buckets: &[Bucket]) {
        let lw = self.lw;
        let l = lw.layout;
        for (k, hs) in lw.holders.iter().enumerate() {
            if hs.len() < 2 || !hs.contains(&self.stage) {
                continue;
            }
            let mut ranks: Vec<usize> = hs.iter().map(|&s| self.peer(s)).collect();
            ranks.sort_unstable();
            ranks.dedup();
            let tied = groups.id(GroupKind::Tied, &[], ranks);
            let elems = self.grad_elems(k);
            self.collective(
                CollectiveKind::AllReduce,
                tied,
                DType::Float,
                elems,
                None,
                Purpose::Gradients(vec![k]),
            );
        }
        // Parameters applied to split data have partial gradients on each
        // rank of the tensor group (a norm's gain under sequence
        // parallelism): sum them.
        for &k in &lw.partial_grads {
            if !lw.holders[k].contains(&self.stage) {
                continue;
            }
            let elems = self.grad_elems(k);
            self.collective(
                CollectiveKind::AllReduce,
                self.tensor,
                DType::Float,
                elems,
                None,
                Purpose::Gradients(vec![k]),
            );
        }
        self.ops.push(Instr::Step);
        if (1..=2).contains(&l.zero) {
            for b in buckets {
                self.collective(
                    CollectiveKind::AllGather,
                    self.zero,
                    DType::Float,
                    b.elems,
                    None,
                    Purpose::UpdatedParams(b.placements.clone()),
                );
            }
        }
    }
}
