//! Sizes only the data can give.
//!
//! The checker binds a data-bound dim from a file's header where it can
//! (`N` is the first axis of `F.npy`), but not where the size depends on
//! the values: `select(N, where: iscell[.., 0] > 0.5)` keeps as many cells
//! as the classifier marked, which only reading `iscell.npy` tells. A
//! parameter sized by such a dim (a per-cell embedding `[N, d]`) cannot be
//! placed, so the driver opens the dataset, takes the sizes
//! [`data_sizes`] finds, and checks the experiment again with them.

use std::collections::BTreeMap;

use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::DataSpec;

/// The sizes of the dims the checker could not size that every session of
/// `dataset` agrees on (`N` = 20), in name order. A dim the sessions
/// disagree on is an error when it sizes a parameter: `symbolic` lists the
/// parameters whose size is still symbolic, with that size as text.
pub fn data_sizes(
    spec: &DataSpec,
    dataset: &Dataset,
    symbolic: &[(String, String)],
) -> Result<Vec<(String, i64)>, Error> {
    // Only the dims the checker could not size: a declared constant or a
    // header-bound size is already in the graph.
    let open: Vec<&str> = spec
        .modalities
        .iter()
        .flat_map(|m| &m.dims)
        .filter(|d| d.size.is_none() && !d.time)
        .map(|d| d.name.as_str())
        .collect();
    let (mut sizes, differing) = agreed_sizes(dataset);
    sizes.retain(|(n, _)| open.contains(&n.as_str()));
    for (name, per_session) in &differing {
        if let Some((param, size)) = symbolic.iter().find(|(_, s)| mentions(s, name)) {
            let listed: Vec<String> = per_session
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} in session {i}"))
                .collect();
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "`{name}` sizes parameters (`{param}` is `{size}`) but the sessions disagree on it ({}); parameters sized per session with different sizes are not supported yet",
                    listed.join(", ")
                ),
            ));
        }
    }
    Ok(sizes)
}

/// The dims every session gives the same size, and those they disagree
/// on with each session's size.
type Agreed = (Vec<(String, i64)>, Vec<(String, Vec<usize>)>);

fn agreed_sizes(ds: &Dataset) -> Agreed {
    let mut all: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for s in ds.sessions() {
        for (name, &size) in &s.dims {
            all.entry(name).or_default().push(size);
        }
    }
    let mut agreed = Vec::new();
    let mut differing = Vec::new();
    for (name, sizes) in all {
        if sizes.windows(2).all(|w| w[0] == w[1]) {
            agreed.push((name.to_string(), sizes[0] as i64));
        } else {
            differing.push((name.to_string(), sizes));
        }
    }
    (agreed, differing)
}

/// Whether the size text `size` (`N`, `4 * N`) names the dim `name`.
fn mentions(size: &str, name: &str) -> bool {
    size.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == name)
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_size_mentions_only_whole_names() {
        assert!(mentions("N", "N"));
        assert!(mentions("4 * N", "N"));
        assert!(!mentions("NT", "N"));
        assert!(!mentions("K", "N"));
    }
}
