//! Planning the communicators (pure, so it is tested without a GPU): which
//! NCCL communicators a rank takes part in, in the order every rank
//! creates them, and the exchange of their unique ids.

use super::super::{memberships, partitions, CommError};
use super::*;

/// One NCCL communicator this rank takes part in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommSpec {
    /// The group id, or [`WORLD_KEY`] for the world communicator; the id
    /// exchange labels the unique ids with it.
    pub(super) key: u32,
    /// The world rank that makes the unique id (the group's first rank).
    pub(super) root: usize,
    /// This rank's position and the communicator's size.
    pub(super) pos: usize,
    pub(super) size: usize,
}

/// The communicators of one rank, in the order every rank creates them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommPlan {
    pub(super) specs: Vec<CommSpec>,
    /// The group that spans the world in rank order, if any: send and recv
    /// use it instead of a communicator of their own.
    pub(super) world_group: Option<usize>,
}

/// Checks the groups and lists the communicators `rank` needs: the world
/// one first (unless a group is the world), then one per partition the rank
/// is in, in [`partitions`] order. Every rank computes the same order, which
/// is what keeps the blocking `ncclCommInitRank` calls from deadlocking.
pub(super) fn plan_comms(
    rank: usize,
    world: usize,
    groups: &[Group],
) -> Result<CommPlan, CommError> {
    if world == 0 || rank >= world || i32::try_from(world).is_err() {
        return Err(CommError::new(format!(
            "nccl: rank {rank} is not in a world of {world}"
        )));
    }
    if groups.len() >= WORLD_KEY as usize {
        return Err(CommError::new(format!(
            "nccl: {} groups are too many",
            groups.len()
        )));
    }
    for (id, g) in groups.iter().enumerate() {
        let mut sorted = g.ranks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if g.ranks.is_empty() || sorted.len() != g.ranks.len() || sorted.iter().any(|&r| r >= world)
        {
            return Err(CommError::new(format!(
                "nccl: group {id} ({}) has ranks {:?}, which are not distinct ranks of a world of {world}",
                describe(g),
                g.ranks
            )));
        }
    }
    let parts = partitions(groups);
    for part in &parts {
        let mut seen = vec![None; world];
        for &id in part {
            for &r in &groups[id].ranks {
                if let Some(other) = seen[r].replace(id) {
                    return Err(CommError::new(format!(
                        "nccl: groups {other} and {id} ({}) both hold rank {r}; groups of one kind over the same axes must be disjoint",
                        describe(&groups[id])
                    )));
                }
            }
        }
    }
    let everyone: Vec<usize> = (0..world).collect();
    let world_group = groups.iter().position(|g| g.ranks == everyone);
    let mut specs = Vec::new();
    if world_group.is_none() {
        specs.push(CommSpec {
            key: WORLD_KEY,
            root: 0,
            pos: rank,
            size: world,
        });
    }
    let mine = memberships(groups, rank);
    for part in &parts {
        if let Some(&(id, pos, size)) = mine.iter().find(|(id, _, _)| part.contains(id)) {
            specs.push(CommSpec {
                key: id as u32,
                root: groups[id].ranks[0],
                pos,
                size,
            });
        }
    }
    Ok(CommPlan { specs, world_group })
}

/// Hands each communicator's unique id from its root to its members with
/// one all-gather over the world: every rank sends `(key, id)` pairs for the
/// communicators it is root of. Returns the ids in `specs` order. `make_id`
/// is `ncclGetUniqueId` in production and a fake in tests.
pub(super) fn exchange_ids(
    rank: usize,
    world: usize,
    specs: &[CommSpec],
    bootstrap: &mut dyn Bootstrap,
    make_id: &mut dyn FnMut() -> Result<[u8; ID_BYTES], CommError>,
) -> Result<Vec<[u8; ID_BYTES]>, CommError> {
    let mut blob = Vec::new();
    for spec in specs.iter().filter(|s| s.root == rank) {
        blob.extend_from_slice(&spec.key.to_le_bytes());
        blob.extend_from_slice(&make_id()?);
    }
    let all = bootstrap.all_gather_bytes(&blob)?;
    if all.len() != world {
        return Err(CommError::new(format!(
            "nccl: the bootstrap returned {} parts for {world} ranks",
            all.len()
        )));
    }
    specs
        .iter()
        .map(|spec| {
            all[spec.root]
                .chunks(4 + ID_BYTES)
                .find(|c| c.len() == 4 + ID_BYTES && c[..4] == spec.key.to_le_bytes())
                .map(|c| {
                    let mut id = [0u8; ID_BYTES];
                    id.copy_from_slice(&c[4..]);
                    id
                })
                .ok_or_else(|| {
                    CommError::new(format!(
                        "nccl: rank {} sent no unique id for {}",
                        spec.root,
                        key_name(spec.key)
                    ))
                })
        })
        .collect()
}

/// A group for messages: `data over node,gpu`.
pub(super) fn describe(g: &Group) -> String {
    if g.axes.is_empty() {
        g.kind.as_str().to_string()
    } else {
        format!("{} over {}", g.kind.as_str(), g.axes.join(","))
    }
}

/// A communicator key for messages.
pub(super) fn key_name(key: u32) -> String {
    if key == WORLD_KEY {
        "the world communicator".to_string()
    } else {
        format!("group {key}")
    }
}
