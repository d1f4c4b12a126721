//! Sizes only the data can give.
//!
//! The checker binds a data-bound dim from a file's header where it can
//! (`N` is the first axis of `F.npy`), but not where the size depends on
//! the values: `select(N, where: iscell[.., 0] > 0.5)` keeps as many cells
//! as the classifier marked, which only reading `iscell.npy` tells. A
//! parameter sized by such a dim (a per-cell embedding `[N, d]`) cannot be
//! placed, so the driver opens the dataset, takes the sizes
//! [`data_sizes`] finds, and checks the experiment again with them. Where
//! sessions differ (each file its own cells, `dim N per session`), it
//! checks the experiment once per session with that session's sizes.

use std::collections::BTreeMap;

use crate::dataset::loader::Dataset;
use crate::diagnostics::{Error, ErrorKind};
use crate::ir::data::DataSpec;

/// The sizes only the data gives: those every session agrees on, and
/// for each session its own sizes of the dims the sessions disagree on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSizes {
    /// Agreed sizes of the dims the checker could not size, in name order
    /// (`N` = 20).
    pub agreed: Vec<(String, i64)>,
    /// Per session, its sizes of the dims declared `per session` that the
    /// sessions disagree on (each file its own cells), in name order;
    /// empty when they all agree.
    pub per_session: Vec<Vec<(String, i64)>>,
}

impl DataSizes {
    /// Every size session `s` gives: the agreed ones and its own.
    pub fn of_session(&self, s: usize) -> Vec<(String, i64)> {
        let mut all = self.agreed.clone();
        if let Some(own) = self.per_session.get(s) {
            all.extend(own.iter().cloned());
        }
        all.sort();
        all
    }
}

/// The sizes of the dims the checker could not size that `dataset` gives.
/// A dim the sessions disagree on must be declared `per session` (the
/// loader already refuses one that is not), and is then given per session.
pub fn data_sizes(spec: &DataSpec, dataset: &Dataset) -> Result<DataSizes, Error> {
    // Only the dims the checker could not size: a declared constant or a
    // header-bound size is already in the graph.
    let open: Vec<&str> = spec
        .modalities
        .iter()
        .flat_map(|m| &m.dims)
        .filter(|d| d.size.is_none() && !d.time)
        .map(|d| d.name.as_str())
        .collect();
    let per_session_dims: Vec<&str> = spec
        .modalities
        .iter()
        .flat_map(|m| &m.dims)
        .filter(|d| d.per_session)
        .map(|d| d.name.as_str())
        .collect();
    let (mut agreed, differing) = agreed_sizes(dataset);
    agreed.retain(|(n, _)| open.contains(&n.as_str()));
    let mut per_session: Vec<Vec<(String, i64)>> = Vec::new();
    for (name, sizes) in &differing {
        if !per_session_dims.contains(&name.as_str()) {
            let listed: Vec<String> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} in session {i}"))
                .collect();
            return Err(Error::new(
                ErrorKind::DataShape,
                format!(
                    "the sessions disagree on `{name}` ({}); declare `dim {name} per session` if each session has its own",
                    listed.join(", ")
                ),
            ));
        }
        per_session.resize(sizes.len().max(per_session.len()), Vec::new());
        for (s, &n) in sizes.iter().enumerate() {
            per_session[s].push((name.clone(), n as i64));
        }
    }
    Ok(DataSizes {
        agreed,
        per_session,
    })
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
