//! Static checks of a lowered plan: the invariants a runtime relies on.
//!
//! - **Collectives agree**: the `k`-th collective of a group is the same
//!   operation on every rank of the group, with the same kind, element
//!   count and dtype.
//! - **Transfers pair up**: every send has a receive of the same value on
//!   its peer, with the same shape and dtype, and the other way round.
//! - **No deadlock**: the programs are run symbolically, rank by rank.
//!   A collective completes once every rank of its group has reached it; a
//!   batched transfer once each of its sends and receives has its
//!   counterpart posted, which is NCCL's semantics for grouped point-to-
//!   point calls. If no rank can move and some have not finished, the
//!   error names where each is waiting.
//! - **Ownership**: the ranks of each data-parallel replica own every
//!   element of every placement exactly once.
//!
//! The check needs every rank's program (a plan of representatives
//! cannot be verified).

use std::collections::HashMap;
use std::fmt;

use super::program::*;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The plan holds some ranks' programs only.
    Partial,
    /// Ranks of a group disagree on one of its collectives.
    Mismatch {
        group: usize,
        index: usize,
        ranks: (usize, usize),
        ops: (String, String),
    },
    /// A send or receive without its counterpart.
    Unpaired { rank: usize, op: String },
    /// A send and its receive disagree on shape or dtype.
    Shape {
        from: usize,
        to: usize,
        sent: String,
        received: String,
    },
    /// No rank can move: where each unfinished rank waits.
    Deadlock { waiting: Vec<(usize, String)> },
    /// A placement is not owned exactly once by a replica.
    Ownership {
        placement: usize,
        replica: usize,
        owned: i64,
        numel: i64,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Partial => f.write_str("the plan does not hold every rank's program"),
            VerifyError::Mismatch {
                group,
                index,
                ranks,
                ops,
            } => write!(
                f,
                "collective {index} of group {group} differs: rank {} runs `{}`, rank {} runs `{}`",
                ranks.0, ops.0, ranks.1, ops.1
            ),
            VerifyError::Unpaired { rank, op } => {
                write!(f, "rank {rank}: `{op}` has no counterpart")
            }
            VerifyError::Shape {
                from,
                to,
                sent,
                received,
            } => write!(
                f,
                "rank {from} sends {sent} but rank {to} receives {received}"
            ),
            VerifyError::Deadlock { waiting } => {
                f.write_str("the ranks wait on each other forever:")?;
                for (r, op) in waiting.iter().take(8) {
                    write!(f, " rank {r} at `{op}`;")?;
                }
                if waiting.len() > 8 {
                    write!(f, " and {} more", waiting.len() - 8)?;
                }
                Ok(())
            }
            VerifyError::Ownership {
                placement,
                replica,
                owned,
                numel,
            } => write!(
                f,
                "placement {placement} has {numel} elements but replica {replica} owns {owned}"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The key that pairs a send with its receive.
type Key = (usize, usize, Value, bool);

fn key(rank: usize, t: &Transfer) -> Key {
    if t.send {
        (rank, t.peer, t.value, t.grad)
    } else {
        (t.peer, rank, t.value, t.grad)
    }
}

/// Checks every invariant of `plan`.
pub fn verify(plan: &Plan) -> Result<(), VerifyError> {
    let world = plan.layout.mesh.size();
    if plan.ranks.len() != world || (0..world).any(|r| plan.ranks[r].rank != r) {
        return Err(VerifyError::Partial);
    }
    pairs(plan)?;
    run(plan)?;
    ownership(plan)
}

/// Every send meets one receive with the same shape and dtype.
fn pairs(plan: &Plan) -> Result<(), VerifyError> {
    let mut sends: HashMap<Key, &Transfer> = HashMap::new();
    let mut recvs: HashMap<Key, &Transfer> = HashMap::new();
    for p in &plan.ranks {
        for op in &p.ops {
            if let Instr::P2p(ts) = op {
                for t in ts {
                    let side = if t.send { &mut sends } else { &mut recvs };
                    side.insert(key(p.rank, t), t);
                }
            }
        }
    }
    for (k, s) in &sends {
        let Some(r) = recvs.get(k) else {
            return Err(VerifyError::Unpaired {
                rank: k.0,
                op: describe(s),
            });
        };
        if s.shape != r.shape || s.dtype != r.dtype {
            return Err(VerifyError::Shape {
                from: k.0,
                to: k.1,
                sent: format!("{:?} {}", s.shape, s.dtype.as_str()),
                received: format!("{:?} {}", r.shape, r.dtype.as_str()),
            });
        }
    }
    if let Some((k, r)) = recvs.iter().find(|(k, _)| !sends.contains_key(*k)) {
        return Err(VerifyError::Unpaired {
            rank: k.1,
            op: describe(r),
        });
    }
    Ok(())
}

fn describe(t: &Transfer) -> String {
    Instr::P2p(vec![t.clone()]).to_string()
}

/// Runs the programs symbolically until every rank finishes or none can
/// move.
fn run(plan: &Plan) -> Result<(), VerifyError> {
    let n = plan.ranks.len();
    let mut pc = vec![0usize; n];
    // Per rank and group: how many of the group's collectives it has
    // reached (the next one's index).
    let mut seq: Vec<HashMap<usize, usize>> = vec![HashMap::new(); n];
    // Per (group, index): the first rank's op, and how many have arrived.
    let mut arrived: HashMap<(usize, usize), (usize, &Collective, usize)> = HashMap::new();
    // Whether this rank has posted its current op already.
    let mut posted_here = vec![false; n];
    let mut posted: HashMap<(Key, bool), bool> = HashMap::new();
    loop {
        let mut moved = false;
        for r in 0..n {
            let ops = &plan.ranks[r].ops;
            while pc[r] < ops.len() {
                let done = match &ops[pc[r]] {
                    Instr::Collective(c) => {
                        let index = *seq[r].get(&c.group).unwrap_or(&0);
                        if !posted_here[r] {
                            posted_here[r] = true;
                            let entry = arrived.entry((c.group, index)).or_insert((r, c, 0));
                            let (first, theirs, _) = *entry;
                            if theirs.kind != c.kind
                                || theirs.elems != c.elems
                                || theirs.dtype != c.dtype
                            {
                                return Err(VerifyError::Mismatch {
                                    group: c.group,
                                    index,
                                    ranks: (first, r),
                                    ops: (
                                        Instr::Collective(theirs.clone()).to_string(),
                                        Instr::Collective(c.clone()).to_string(),
                                    ),
                                });
                            }
                            entry.2 += 1;
                        }
                        let size = plan.groups.get(c.group).map_or(1, |g| g.ranks.len());
                        let complete = arrived.get(&(c.group, index)).is_some_and(|e| e.2 >= size);
                        if complete {
                            seq[r].insert(c.group, index + 1);
                        }
                        complete
                    }
                    Instr::P2p(ts) => {
                        if !posted_here[r] {
                            posted_here[r] = true;
                            for t in ts {
                                posted.insert((key(r, t), t.send), true);
                            }
                        }
                        ts.iter()
                            .all(|t| posted.contains_key(&(key(r, t), !t.send)))
                    }
                    _ => true,
                };
                if !done {
                    break;
                }
                posted_here[r] = false;
                pc[r] += 1;
                moved = true;
            }
        }
        if (0..n).all(|r| pc[r] >= plan.ranks[r].ops.len()) {
            return Ok(());
        }
        if !moved {
            let waiting = (0..n)
                .filter(|&r| pc[r] < plan.ranks[r].ops.len())
                .map(|r| (plan.ranks[r].rank, plan.ranks[r].ops[pc[r]].to_string()))
                .collect();
            return Err(VerifyError::Deadlock { waiting });
        }
    }
}

/// The owned shards of each data-parallel replica cover every placement
/// exactly once (counted in elements; `shard.rs` tests that they do not
/// overlap).
fn ownership(plan: &Plan) -> Result<(), VerifyError> {
    let l = &plan.layout;
    let model_axes: Vec<String> = l.tensor.iter().chain(&l.pipeline).cloned().collect();
    let replicas = l.mesh.groups(&model_axes).unwrap_or_default();
    for (i, replica) in replicas.iter().enumerate() {
        let mut owned = vec![0i64; plan.placements.len()];
        for &r in replica {
            for p in plan.ranks[r].params.iter().filter(|p| p.owner) {
                owned[p.placement] += p.numel();
            }
        }
        for (k, p) in plan.placements.iter().enumerate() {
            let numel: i64 = p.shape.iter().product();
            if owned[k] != numel {
                return Err(VerifyError::Ownership {
                    placement: k,
                    replica: i,
                    owned: owned[k],
                    numel,
                });
            }
        }
    }
    Ok(())
}
