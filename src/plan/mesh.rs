//! The device mesh: named axes, ranks and process groups.
//!
//! Ranks are numbered row-major over the mesh axes in the order the
//! `parallel` block declares them, so the **last axis is the fastest**:
//! with `mesh { node: 8, gpu: 8 }`, ranks 0-7 are the eight GPUs of node 0.
//! A layout puts tensor parallelism on the last axis so that its frequent
//! collectives stay inside a node, on NVLink.
//!
//! A process group over a set of axes is every rank that shares the
//! coordinates of all the *other* axes: the data-parallel group of a rank
//! is the ranks that hold the same shard of the model, the tensor-parallel
//! group the ranks that together hold one layer. The groups over any set of
//! axes partition the ranks; the planner relies on that, and the tests
//! check it.

use std::fmt;

/// One named axis of the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    pub name: String,
    pub size: usize,
}

/// A device mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mesh {
    axes: Vec<Axis>,
    /// The number of ranks, the product of the axis sizes.
    size: usize,
}

/// Why a mesh cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshError {
    /// An axis of size 0.
    EmptyAxis(String),
    /// The same axis name twice.
    DuplicateAxis(String),
    /// More ranks than fit in a `usize`.
    TooLarge,
    /// A group names an axis the mesh does not have.
    UnknownAxis(String),
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshError::EmptyAxis(a) => write!(f, "mesh axis `{a}` has size 0"),
            MeshError::DuplicateAxis(a) => write!(f, "mesh axis `{a}` is declared twice"),
            MeshError::TooLarge => f.write_str("the mesh has more ranks than can be counted"),
            MeshError::UnknownAxis(a) => write!(f, "the mesh has no axis `{a}`"),
        }
    }
}

impl std::error::Error for MeshError {}

impl Mesh {
    /// A mesh with these axes, slowest first.
    pub fn new(axes: Vec<Axis>) -> Result<Mesh, MeshError> {
        let mut size: usize = 1;
        for (i, a) in axes.iter().enumerate() {
            if a.size == 0 {
                return Err(MeshError::EmptyAxis(a.name.clone()));
            }
            if axes[..i].iter().any(|b| b.name == a.name) {
                return Err(MeshError::DuplicateAxis(a.name.clone()));
            }
            size = size.checked_mul(a.size).ok_or(MeshError::TooLarge)?;
        }
        Ok(Mesh { axes, size })
    }

    /// One rank, no axes: a single-process run.
    pub fn single() -> Mesh {
        Mesh {
            axes: Vec::new(),
            size: 1,
        }
    }

    pub fn axes(&self) -> &[Axis] {
        &self.axes
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The size of an axis, or of the product of several.
    pub fn degree(&self, axes: &[String]) -> Result<usize, MeshError> {
        let mut d: usize = 1;
        for a in axes {
            d *= self.axis(a)?.1.size;
        }
        Ok(d)
    }

    fn axis(&self, name: &str) -> Result<(usize, &Axis), MeshError> {
        self.axes
            .iter()
            .enumerate()
            .find(|(_, a)| a.name == name)
            .ok_or_else(|| MeshError::UnknownAxis(name.to_string()))
    }

    /// The coordinates of a rank, one per axis (slowest first).
    pub fn coords(&self, rank: usize) -> Vec<usize> {
        let mut rest = rank % self.size;
        let mut out = vec![0; self.axes.len()];
        for (i, a) in self.axes.iter().enumerate().rev() {
            out[i] = rest % a.size;
            rest /= a.size;
        }
        out
    }

    /// The rank at these coordinates.
    pub fn rank(&self, coords: &[usize]) -> usize {
        self.axes
            .iter()
            .zip(coords)
            .fold(0, |r, (a, &c)| r * a.size + c % a.size)
    }

    /// The ranks that share every coordinate of `rank` except those of
    /// `axes`, in increasing order: `rank`'s process group over `axes`.
    pub fn group(&self, rank: usize, axes: &[String]) -> Result<Vec<usize>, MeshError> {
        let free: Vec<usize> = axes
            .iter()
            .map(|a| self.axis(a).map(|(i, _)| i))
            .collect::<Result<_, _>>()?;
        let base = self.coords(rank);
        let mut out: Vec<usize> = (0..self.size)
            .filter(|&r| {
                let c = self.coords(r);
                (0..self.axes.len()).all(|i| free.contains(&i) || c[i] == base[i])
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Every process group over `axes`, ordered by their first rank. They
    /// partition the ranks.
    pub fn groups(&self, axes: &[String]) -> Result<Vec<Vec<usize>>, MeshError> {
        let mut seen = vec![false; self.size];
        let mut out = Vec::new();
        for r in 0..self.size {
            if seen[r] {
                continue;
            }
            let g = self.group(r, axes)?;
            for &m in &g {
                seen[m] = true;
            }
            out.push(g);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(axes: &[(&str, usize)]) -> Mesh {
        Mesh::new(
            axes.iter()
                .map(|(n, s)| Axis {
                    name: n.to_string(),
                    size: *s,
                })
                .collect(),
        )
        .unwrap()
    }

    fn names(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_last_axis_is_the_fastest() {
        let m = mesh(&[("node", 2), ("gpu", 4)]);
        assert_eq!(m.size(), 8);
        assert_eq!(m.coords(5), vec![1, 1]);
        assert_eq!(m.rank(&[1, 1]), 5);
        // The GPUs of one node are consecutive ranks.
        assert_eq!(m.group(5, &names(&["gpu"])).unwrap(), vec![4, 5, 6, 7]);
        assert_eq!(m.group(5, &names(&["node"])).unwrap(), vec![1, 5]);
        assert_eq!(
            m.groups(&names(&["node"])).unwrap(),
            vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]
        );
        assert_eq!(
            m.group(3, &names(&["node", "gpu"])).unwrap(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(m.group(3, &[]).unwrap(), vec![3]);
    }

    #[test]
    fn groups_partition_the_ranks_for_every_axis_set() {
        let m = mesh(&[("stage", 2), ("dp", 3), ("tp", 4)]);
        let all = ["stage", "dp", "tp"];
        for mask in 0..8u32 {
            let axes: Vec<String> = (0..3)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| all[i].to_string())
                .collect();
            let groups = m.groups(&axes).unwrap();
            let degree = m.degree(&axes).unwrap();
            let mut covered: Vec<usize> = groups.iter().flatten().copied().collect();
            covered.sort_unstable();
            assert_eq!(covered, (0..24).collect::<Vec<_>>(), "{axes:?}");
            assert!(groups.iter().all(|g| g.len() == degree), "{axes:?}");
            assert_eq!(groups.len() * degree, 24);
        }
        for r in 0..24 {
            assert_eq!(m.rank(&m.coords(r)), r);
        }
    }

    #[test]
    fn bad_meshes_are_errors() {
        let axis = |n: &str, s| Axis {
            name: n.to_string(),
            size: s,
        };
        assert_eq!(
            Mesh::new(vec![axis("a", 0)]),
            Err(MeshError::EmptyAxis("a".into()))
        );
        assert_eq!(
            Mesh::new(vec![axis("a", 2), axis("a", 2)]),
            Err(MeshError::DuplicateAxis("a".into()))
        );
        assert_eq!(
            Mesh::new(vec![axis("a", usize::MAX), axis("b", 2)]),
            Err(MeshError::TooLarge)
        );
        let m = mesh(&[("gpu", 2)]);
        assert_eq!(
            m.group(0, &names(&["tp"])),
            Err(MeshError::UnknownAxis("tp".into()))
        );
        assert_eq!(Mesh::single().groups(&[]).unwrap(), vec![vec![0]]);
    }
}
