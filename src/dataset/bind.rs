//! Sizes only the data can give, bound before planning.
//!
//! The checker binds a data-bound dim from a file's header where it can
//! (`N` is the first axis of `F.npy`), but not where the size depends on
//! the values: `select(N, where: iscell[.., 0] > 0.5)` keeps as many cells
//! as the classifier marked, which only reading `iscell.npy` tells. A
//! parameter sized by such a dim (a per-cell embedding `[N, d]`) cannot be
//! placed, so `enigma run` and `enigma plan` call [`bind`]: when a
//! parameter's size is still symbolic, it opens the dataset, takes the
//! sizes every session agrees on, and elaborates the experiment again with
//! them. The graph it returns differs from the checker's only in those
//! sizes; the dataset it opened is handed back, so a run reads its data
//! once.

use std::collections::BTreeMap;
use std::path::Path;

use crate::dataset::loader::Dataset;
use crate::dataset::spec::DataSpec;
use crate::ir::Graph;
use crate::resolve::Program;
use crate::source::SourceLoader;

/// The checked graph with every data-bound size the data gives.
pub struct Bound {
    pub graph: Graph,
    /// The dataset, when it had to be opened to find the sizes.
    pub dataset: Option<Dataset>,
    /// The sizes taken from the data (`N` = 20), in name order.
    pub sizes: Vec<(String, i64)>,
}

/// The parameters whose size the checker left symbolic, with that size.
pub fn unsized_params(g: &Graph) -> Vec<(String, String)> {
    g.params
        .iter()
        .filter_map(|p| {
            p.ty.dims
                .iter()
                .map(|d| d.size_or_name())
                .find(|s| s.as_const().is_none())
                .map(|s| (p.path.clone(), s.to_string()))
        })
        .collect()
}

/// Binds what `graph` leaves symbolic from the data of `program`, whose
/// relative paths resolve against `base`. A graph with every parameter
/// sized comes back as it is, without reading any data.
pub fn bind(
    program: &Program,
    graph: Graph,
    loader: &dyn SourceLoader,
    base: &Path,
) -> Result<Bound, String> {
    let symbolic = unsized_params(&graph);
    let Some((param, size)) = symbolic.first() else {
        return Ok(Bound {
            graph,
            dataset: None,
            sizes: Vec::new(),
        });
    };
    let spec = DataSpec::from_program(program, &graph, base).map_err(|e| e.to_string())?;
    let dataset = Dataset::open(&spec).map_err(|e| {
        format!("the size of `{param}` is `{size}`, which only the data gives, and opening the data failed: {e}")
    })?;
    // Only the dims the checker could not size: a declared constant or a
    // header-bound size is already in the graph.
    let open: Vec<&str> = spec
        .modalities
        .iter()
        .flat_map(|m| &m.dims)
        .filter(|d| d.size.is_none() && !d.time)
        .map(|d| d.name.as_str())
        .collect();
    let (mut sizes, differing) = agreed_sizes(&dataset);
    sizes.retain(|(n, _)| open.contains(&n.as_str()));
    for (name, per_session) in &differing {
        if symbolic.iter().any(|(_, s)| mentions(s, name)) {
            let listed: Vec<String> = per_session
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} in session {i}"))
                .collect();
            return Err(format!(
                "`{name}` sizes parameters (`{param}` is `{size}`) but the sessions disagree on it ({}); parameters sized per session with different sizes are not supported yet",
                listed.join(", ")
            ));
        }
    }
    let (diags, rebound) = crate::check::check_program_bound(program, loader, &sizes);
    let shown: Vec<String> = sizes.iter().map(|(n, v)| format!("{n} = {v}")).collect();
    let Some(graph) = rebound else {
        let first = diags
            .iter()
            .find(|d| d.is_error())
            .map_or("no graph came back".to_string(), |d| d.message.clone());
        return Err(format!(
            "the experiment does not check with the sizes its data gives ({}): {first}",
            shown.join(", ")
        ));
    };
    if let Some((param, size)) = unsized_params(&graph).first() {
        return Err(format!(
            "the size of `{param}` is `{size}` even with the sizes the data gives ({}); no data item binds it",
            shown.join(", ")
        ));
    }
    Ok(Bound {
        graph,
        dataset: Some(dataset),
        sizes,
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

/// Whether the size text `size` (`N`, `4 * N`) names the dim `name`.
fn mentions(size: &str, name: &str) -> bool {
    size.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == name)
}

#[cfg(test)]
mod tests {
    use super::{bind, mentions, unsized_params};
    use crate::dataset::loader::tests::{dir, npy};
    use crate::resolve::Options;
    use crate::source::FsLoader;

    /// Six ROIs over 4 s at 10 Hz, of which the classifier column marks
    /// `cells` as cells; a per-cell embedding and readout sized by them.
    fn experiment(
        name: &str,
        cells: &[f64],
    ) -> (
        crate::resolve::Program,
        crate::ir::Graph,
        std::path::PathBuf,
    ) {
        let d = dir(name);
        let v: Vec<f64> = (0..6 * 40).map(|i| f64::from(i % 7)).collect();
        npy(&d.join("f.npy"), "<f4", &[6, 40], &v);
        let table: Vec<f64> = cells.iter().flat_map(|&c| [c, 0.5]).collect();
        npy(&d.join("cells.npy"), "<f8", &[6, 2], &table);
        let text = "use std::tokenize::{UnitValues}\nuse std::readout::{PerUnit}\nuse std::losses::{mse}\n\
            dim T = 1s\ndim N per session\ndim d = 8\n\
            data f = npy(\"f.npy\", axes: [N, T], rate: 10Hz) {\n  window: T\n  stride: 500ms\n  split: by_time(train: 0.5, val: 0.25, test: 0.25)\n}\n\
            data cells = npy(\"cells.npy\", axes: [N, 2])\n\
            modality x: series<f32>[T @ 10Hz, N] from f | select(N, where: cells[.., 0] > 0.5)\n\
            tokenizer xt = UnitValues(d: d, mask: 0.25)(x)\n\
            model m {\n  predict x = PerUnit(d: d)(xt, x)\n}\n\
            loss mse(m.x, x)\n";
        let path = d.join("main.enigma");
        std::fs::write(&path, text).unwrap();
        let (program, graph) = crate::check::check_file_ir(&FsLoader, &path, &Options::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let graph = graph.unwrap_or_else(|| panic!("{:?}", program.diagnostics));
        (program, graph, d)
    }

    #[test]
    fn the_cells_a_select_keeps_size_the_parameters() {
        let (program, graph, d) = experiment("bind-select", &[1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        // The checker cannot count the cells: the embedding is `[N, d]`.
        let open = unsized_params(&graph);
        assert!(
            open.iter().any(|(p, s)| p == "xt.unit" && s == "N"),
            "{open:?}"
        );
        let b = bind(&program, graph, &FsLoader, &d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.sizes, [("N".to_string(), 4)]);
        assert!(unsized_params(&b.graph).is_empty());
        let unit = b.graph.params.iter().find(|p| p.path == "xt.unit").unwrap();
        let sizes: Vec<Option<i64>> = unit
            .ty
            .dims
            .iter()
            .map(|d| d.size_or_name().as_const())
            .collect();
        assert_eq!(sizes, [Some(4), Some(8)]);
        // The dataset opened to count them comes back for the run to read.
        let ds = b.dataset.expect("the dataset that was opened");
        assert_eq!(ds.sessions()[0].dims.get("N"), Some(&4));
    }

    #[test]
    fn a_select_that_keeps_nothing_is_an_error_not_an_empty_model() {
        let (program, graph, d) = experiment("bind-none", &[0.0; 6]);
        let e = match bind(&program, graph, &FsLoader, &d) {
            Ok(b) => panic!("bound {:?}", b.sizes),
            Err(e) => e,
        };
        assert!(e.contains("keeps none of the 6 positions of `N`"), "{e}");
        assert!(e.contains("modality `x`") && e.contains("xt.unit"), "{e}");
    }

    #[test]
    fn a_graph_with_every_size_known_reads_no_data() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.enigma");
        let (program, graph) =
            crate::check::check_file_ir(&FsLoader, &path, &Options::default()).unwrap();
        let graph = graph.unwrap();
        let params = graph.params.len();
        let b = bind(
            &program,
            graph,
            &FsLoader,
            std::path::Path::new("/nonexistent"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(b.dataset.is_none() && b.sizes.is_empty());
        assert_eq!(b.graph.params.len(), params);
    }

    #[test]
    fn a_size_mentions_only_whole_names() {
        assert!(mentions("N", "N"));
        assert!(mentions("4 * N", "N"));
        assert!(!mentions("NT", "N"));
        assert!(!mentions("K", "N"));
    }
}
