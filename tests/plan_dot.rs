//! The plan's drawing and documents on real lowerings.
//!
//! GPT-2 small on a `pp 4 x tp 2` mesh (four pipeline stages of two
//! tensor-parallel ranks, eight micro-batches, 1F1B) is lowered, drawn with
//! `plan::emit::to_dot` and rendered by Graphviz's `dot -Tsvg`. The SVG must
//! show a box per rank with its coordinates and stage, and a row per stage
//! whose boxes are the forward and backward runs of the stage's program, in
//! order, left to right on one line, the rows stacked from stage 0 down and
//! shifted by the pipeline's dependencies. A 64-rank mesh must draw only
//! group edges. The JSON and YAML documents must parse and agree with the
//! plan. Graphviz is a development dependency (`./dev.sh` installs it); the
//! tests fail, saying so, when `dot` is missing.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use enigma::ir::Graph;
use enigma::plan::emit::{to_dot, to_json, to_yaml};
use enigma::plan::lower::{lower, representatives};
use enigma::plan::program::{Instr, Plan, RankProgram};
use enigma::plan::{Axis, Layout, Mesh};
use serde_json::Value as Json;

#[path = "common/checked.rs"]
mod checked;

fn graph(example: &str) -> Graph {
    checked::example_graph(example)
}

/// A layout over `axes` (slowest first) with data, tensor and pipeline
/// parallelism on the named axes (empty: none), attention and feed-forward
/// dims split over the tensor axis.
fn layout(axes: &[(&str, usize)], data: &str, tensor: &str, pipeline: &str) -> Layout {
    let mut l = Layout::single();
    l.mesh = Mesh::new(
        axes.iter()
            .map(|(n, s)| Axis {
                name: n.to_string(),
                size: *s,
            })
            .collect(),
    )
    .unwrap();
    let on = |a: &str| {
        if a.is_empty() {
            Vec::new()
        } else {
            vec![a.to_string()]
        }
    };
    l.data = on(data);
    l.zero_axes = on(data);
    l.tensor = on(tensor);
    l.pipeline = on(pipeline);
    if !data.is_empty() {
        l.mapped.insert("batch".to_string(), on(data));
    }
    for d in ["heads", "kv_heads", "ffn"] {
        l.mapped.insert(d.to_string(), on(tensor));
    }
    l.mapped.insert("layers".to_string(), on(pipeline));
    l
}

/// GPT-2 small over 4 stages x 2 tensor-parallel ranks, 8 micro-batches.
fn pipelined() -> (Graph, Plan) {
    let g = graph("gpt2_small.enigma");
    let mut l = layout(&[("pp", 4), ("tp", 2)], "", "tp", "pp");
    l.microbatches = 8;
    let plan = lower(&g, &l, None).unwrap_or_else(|e| panic!("lowering: {e}"));
    (g, plan)
}

/// `dot -Tsvg` of `dot_text`. Fails the test with a clear message when
/// Graphviz is not installed, and on any error or warning from `dot`.
fn svg(dot_text: &str) -> String {
    let mut child = match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "Graphviz's `dot` is not on PATH; install graphviz (`./dev.sh` does, \
             or `apt-get install graphviz`) to run the plan drawing tests"
        ),
        Err(e) => panic!("cannot run `dot`: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot_text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dot failed: {stderr}");
    assert!(stderr.trim().is_empty(), "dot complained: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// A node of the rendered SVG: the lines of its label, and each with where
/// it is drawn (the cells of a table).
#[derive(Debug)]
struct Drawn {
    texts: Vec<String>,
    placed: Vec<(String, f64, f64)>,
}

fn unescape(s: &str) -> String {
    s.replace("&#45;", "-")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in an SVG tag.
fn attr(tag: &str, name: &str) -> Option<f64> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].split('"').next()?.parse().ok()
}

/// Every node of the SVG by its DOT name (the `<title>` of its group).
fn nodes(svg: &str) -> HashMap<String, Drawn> {
    let mut out = HashMap::new();
    for block in svg.split("class=\"node\">").skip(1) {
        // A node's drawing runs to the comment that opens the next one
        // (table cells nest groups of their own).
        let block = block.split("<!--").next().unwrap();
        let title = block
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .unwrap();
        let texts: Vec<(String, f64, f64)> = block
            .split("<text")
            .skip(1)
            .map(|t| {
                let (tag, rest) = t.split_once('>').unwrap();
                let text = rest.split("</text>").next().unwrap();
                (
                    unescape(text),
                    attr(tag, "x").unwrap(),
                    attr(tag, "y").unwrap(),
                )
            })
            .collect();
        out.insert(
            unescape(title),
            Drawn {
                texts: texts.iter().map(|t| t.0.clone()).collect(),
                placed: texts,
            },
        );
    }
    out
}

/// The boxes a schedule row should have, computed from the program
/// independently of `emit`: `F<m>` or `B<m>` per run of forward or
/// backward ops (recomputation counts as backward) of one micro-batch,
/// then `step`.
fn expected_row(p: &RankProgram) -> Vec<String> {
    let mut row: Vec<String> = Vec::new();
    for op in &p.ops {
        let label = match op {
            Instr::Forward {
                micro, recompute, ..
            } => format!("{}{micro}", if *recompute { "B" } else { "F" }),
            Instr::Backward { micro, .. } => format!("B{micro}"),
            _ => continue,
        };
        if row.last() != Some(&label) {
            row.push(label);
        }
    }
    if p.ops.iter().any(|o| matches!(o, Instr::Step)) {
        row.push("step".to_string());
    }
    row
}

#[test]
fn the_pipeline_and_mesh_of_a_tensor_parallel_plan_render() {
    let (g, plan) = pipelined();
    let image = svg(&to_dot(&g, &plan));
    assert!(image.starts_with("<?xml"), "an SVG document");
    assert!(image.contains("<svg"), "an SVG document");
    let drawn = nodes(&image);

    // A box per rank: number, coordinates and stage.
    for rank in 0..8 {
        let b = drawn
            .get(&format!("r{rank}"))
            .unwrap_or_else(|| panic!("rank {rank} is drawn"));
        let (pp, tp) = (rank / 2, rank % 2);
        assert_eq!(
            b.texts,
            [
                format!("rank {rank}"),
                format!("pp {pp}, tp {tp}"),
                format!("stage {pp}")
            ]
        );
    }

    // The schedule: a table row per stage, read from its tensor index 0
    // rank (2 s), with the runs of that rank's program in order.
    let table = &drawn["schedule"].placed;
    let mut row_y = Vec::new();
    let row = |s: usize| expected_row(plan.rank(2 * s).unwrap());
    let mut cells: Vec<Vec<(String, f64)>> = Vec::new();
    for s in 0..4 {
        let head = format!("stage {s} (rank {})", 2 * s);
        let (_, _, y) = table
            .iter()
            .find(|(t, _, _)| *t == head)
            .unwrap_or_else(|| panic!("{head} is drawn"));
        let expected = row(s);
        // Every micro-batch's forward and backward run once, then the step.
        assert_eq!(expected.len(), 2 * 8 + 1, "stage {s}: {expected:?}");
        let mut mine: Vec<(String, f64)> = table
            .iter()
            .filter(|(t, _, ty)| (ty - y).abs() < 1.0 && *t != head)
            .map(|(t, x, _)| (t.clone(), *x))
            .collect();
        mine.sort_by(|a, b| a.1.total_cmp(&b.1));
        let labels: Vec<&str> = mine.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(labels, expected, "stage {s}");
        row_y.push(*y);
        cells.push(mine);
    }
    // 1F1B: stage 0 runs 4 forwards before its first backward, the last
    // stage alternates from the start.
    assert_eq!(&row(0)[..6], ["F0", "F1", "F2", "F3", "B0", "F4"]);
    assert_eq!(&row(3)[..4], ["F0", "B0", "F1", "B1"]);
    // Stage 0 on top (SVG y grows downwards).
    assert!(row_y.windows(2).all(|w| w[0] < w[1]), "{row_y:?}");
    // A micro-batch's forward moves right stage by stage, and its backward
    // back left: the pipeline's fill and drain.
    let at = |s: usize, label: &str| -> f64 {
        cells[s].iter().find(|c| c.0 == label).map(|c| c.1).unwrap()
    };
    for s in 0..3 {
        assert!(at(s, "F0") < at(s + 1, "F0"), "F0 on stages {s}, {}", s + 1);
        assert!(at(s, "B7") > at(s + 1, "B7"), "B7 on stages {s}, {}", s + 1);
    }
}

#[test]
fn a_64_rank_mesh_draws_group_edges_only() {
    let g = graph("gpt2_small.enigma");
    let mut l = layout(&[("dp", 2), ("pp", 4), ("tp", 8)], "dp", "tp", "pp");
    l.microbatches = 4;
    // The stages' representatives only, as a search plans them; the other
    // ranks are drawn all the same.
    let reps = representatives(&l);
    let plan = lower(&g, &l, Some(&reps)).unwrap();
    assert_eq!(plan.ranks.len(), 4);
    let image = svg(&to_dot(&g, &plan));
    let drawn = nodes(&image);
    for rank in 0..64 {
        assert!(drawn.contains_key(&format!("r{rank}")), "rank {rank}");
    }
    // 8 tensor groups of 8 ranks, 7 lines each; 16 pipelines of 4 stages,
    // 3 arrows each; nothing else is drawn between ranks.
    let edges = image.matches("class=\"edge\"").count();
    let tensor = image
        .matches("<path fill=\"none\" stroke=\"#1f78b4\"")
        .count();
    let pipeline = image
        .matches("<path fill=\"none\" stroke=\"#e31a1c\"")
        .count();
    assert_eq!((tensor, pipeline), (8 * 7, 16 * 3));
    assert_eq!(edges, tensor + pipeline);
    // Four stage rows in the schedule.
    let table = &drawn["schedule"].texts;
    for (s, rep) in reps.iter().enumerate() {
        let head = format!("stage {s} (rank {rep})");
        assert!(table.contains(&head), "{head}");
    }
}

#[test]
fn the_documents_parse_and_agree_with_the_plan() {
    let (g, plan) = pipelined();
    let doc: Json = serde_json::from_str(&to_json(&g, &plan).unwrap()).unwrap();
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["layout"]["ranks"], 8);
    assert_eq!(doc["layout"]["stages"], 4);
    assert_eq!(doc["layout"]["microbatches"], 8);
    assert_eq!(doc["groups"].as_array().unwrap().len(), plan.groups.len());
    let placements = doc["placements"].as_array().unwrap();
    assert_eq!(placements.len(), plan.placements.len());
    for (d, p) in placements.iter().zip(&plan.placements) {
        assert_eq!(d["param"], g.params[p.param].path.as_str());
        assert_eq!(d["stage"], p.stage);
    }
    let ranks = doc["ranks"].as_array().unwrap();
    assert_eq!(ranks.len(), plan.ranks.len());
    assert_eq!(ranks.len(), 8);
    for (d, p) in ranks.iter().zip(&plan.ranks) {
        assert_eq!(d["rank"], p.rank);
        assert_eq!(d["stage"], p.stage);
        assert_eq!(d["params"].as_array().unwrap().len(), p.params.len());
        let ops = d["ops"].as_array().unwrap();
        assert_eq!(ops.len(), p.ops.len(), "rank {}", p.rank);
        // Instr by op, the same kind.
        for (o, op) in ops.iter().zip(&p.ops) {
            let kind = match op {
                Instr::Load { .. } => "load",
                Instr::Forward { .. } => "forward",
                Instr::Backward { .. } => "backward",
                Instr::Collective(c) => c.kind.as_str(),
                Instr::P2p(_) => "p2p",
                Instr::Step => "step",
            };
            assert_eq!(o["op"], kind);
        }
    }
    // The YAML form is the same document.
    let yaml: Json = serde_saphyr::from_str(&to_yaml(&g, &plan).unwrap()).unwrap();
    assert!(yaml == doc, "YAML and JSON differ");
}
