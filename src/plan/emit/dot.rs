//! The plan drawn in Graphviz's DOT language: the mesh and the pipeline
//! schedule.
//!
//! The mesh is a box per rank (its number, coordinates and stage, filled
//! with its stage's colour), grouped into one cluster per index of the
//! first mesh axis when there are two or more axes (the nodes of a
//! `node x gpu` mesh). Only group *edges* are drawn, not all pairs, so the
//! picture stays readable at 64 ranks: consecutive ranks of a
//! tensor-parallel group are joined by blue lines, and consecutive stages
//! of a pipeline by red arrows. Invisible edges along the last (fastest)
//! axis lay each cluster out as rows, so a mesh reads as a grid.
//!
//! The schedule has one row per pipeline stage, read from one rank of the
//! stage (the one with data and tensor index 0 when it was planned): a box
//! per run of forward (`F3`) or backward (`B3`) ops of one micro-batch, in
//! execution order, then the optimizer step. Communication between them
//! does not break a run, and recomputation of checkpointed activations
//! counts as part of the backward it serves. Invisible edges keep each row
//! in order and put every forward after the previous stage's forward of
//! the same micro-batch (and every backward after the next stage's
//! backward), so the columns show the pipeline's fill and drain.

use std::collections::{HashMap, HashSet};

use crate::ir::Graph;
use crate::plan::layout::Layout;
use crate::plan::program::{Op, Plan, RankProgram};

/// Fill colours of pipeline stages in the mesh (ColorBrewer's Set3),
/// repeated past twelve stages.
const STAGE_COLOURS: &[&str] = &[
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f",
];
const TENSOR_EDGE: &str = "#1f78b4";
const PIPELINE_EDGE: &str = "#e31a1c";
const FORWARD_FILL: &str = "#9ecae1";
const BACKWARD_FILL: &str = "#fdae6b";
const STEP_FILL: &str = "#d9d9d9";

/// The plan as a Graphviz digraph.
pub fn to_dot(g: &Graph, plan: &Plan) -> String {
    let mut d = Dot::default();
    d.line("digraph plan {");
    let title = match g.outputs.first() {
        Some(o) => format!("plan of {} on {} ranks", o.model, plan.layout.mesh.size()),
        None => format!("plan on {} ranks", plan.layout.mesh.size()),
    };
    d.line(format!(
        "  graph [rankdir=LR, newrank=true, fontname=\"Helvetica\", labelloc=t, label={}];",
        quote(&[title])
    ));
    d.line("  node [shape=box, style=filled, fontname=\"Helvetica\", fontsize=10];");
    d.line("  edge [fontname=\"Helvetica\"];");
    mesh(&mut d, plan);
    schedule(&mut d, plan);
    d.line("}");
    d.out
}

/// The DOT text being written, line by line.
#[derive(Default)]
struct Dot {
    out: String,
}

impl Dot {
    fn line(&mut self, s: impl AsRef<str>) {
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }
}

/// A DOT string literal of `lines`, one label line each: quotes and
/// backslashes are escaped so that no text can end the string or start an
/// escape of its own, and the lines are joined by DOT's centred line break.
fn quote(lines: &[String]) -> String {
    let mut s = String::from("\"");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            s.push_str("\\n");
        }
        for c in line.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\r' => {}
                c => s.push(c),
            }
        }
    }
    s.push('"');
    s
}

/// The pipeline stage of the rank at `coords`: its index, row-major, over
/// the pipeline axes (as `shard::shards` computes it).
fn stage_of(layout: &Layout, coords: &[usize]) -> usize {
    layout
        .mesh
        .axes()
        .iter()
        .zip(coords)
        .filter(|(a, _)| layout.pipeline.contains(&a.name))
        .fold(0, |s, (a, &c)| s * a.size + c)
}

fn rank_id(rank: usize) -> String {
    format!("\"r{rank}\"")
}

fn mesh(d: &mut Dot, plan: &Plan) {
    let layout = &plan.layout;
    let mesh = &layout.mesh;
    let axes = mesh.axes();
    let shape: Vec<String> = axes
        .iter()
        .map(|a| format!("{} {}", a.name, a.size))
        .collect();
    let mut label = vec![format!(
        "mesh {} ({} ranks)",
        if shape.is_empty() {
            "of one rank".to_string()
        } else {
            shape.join(" x ")
        },
        mesh.size()
    )];
    if layout.data_degree() > 1 {
        label.push(format!("data-parallel over {}", layout.data.join(", ")));
    }
    if layout.zero > 0 && !layout.zero_axes.is_empty() {
        label.push(format!(
            "ZeRO stage {} over {}",
            layout.zero,
            layout.zero_axes.join(", ")
        ));
    }
    if layout.tensor_degree() > 1 {
        label.push(format!(
            "tensor-parallel over {} (blue lines)",
            layout.tensor.join(", ")
        ));
    }
    if layout.stages() > 1 {
        label.push(format!(
            "pipeline over {} (red arrows, in stage order)",
            layout.pipeline.join(", ")
        ));
    }
    d.line("  subgraph cluster_mesh {");
    d.line(format!("    label={};", quote(&label)));
    d.line("    style=rounded;");
    let planned: HashMap<usize, &RankProgram> = plan.ranks.iter().map(|r| (r.rank, r)).collect();
    let rank_box = |d: &mut Dot, rank: usize, indent: &str| {
        let coords = mesh.coords(rank);
        let stage = planned
            .get(&rank)
            .map_or_else(|| stage_of(layout, &coords), |p| p.stage);
        let mut lines = vec![format!("rank {rank}")];
        if !axes.is_empty() {
            lines.push(
                axes.iter()
                    .zip(&coords)
                    .map(|(a, c)| format!("{} {c}", a.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        lines.push(format!("stage {stage}"));
        // A rank the plan has no program for (a search planned only
        // representatives) is drawn dashed.
        let style = if planned.contains_key(&rank) {
            "filled"
        } else {
            "filled,dashed"
        };
        d.line(format!(
            "{indent}{} [label={}, style=\"{style}\", fillcolor=\"{}\"];",
            rank_id(rank),
            quote(&lines),
            STAGE_COLOURS[stage % STAGE_COLOURS.len()]
        ));
    };
    if axes.len() >= 2 {
        // One cluster per index of the first axis; ranks are row-major, so
        // each cluster is a consecutive block of ranks.
        let block = mesh.size() / axes[0].size.max(1);
        for i in 0..axes[0].size {
            d.line(format!("    subgraph cluster_mesh_{i} {{"));
            d.line(format!(
                "      label={};",
                quote(&[format!("{} {i}", axes[0].name)])
            ));
            for rank in i * block..(i + 1) * block {
                rank_box(d, rank, "      ");
            }
            d.line("    }");
        }
    } else {
        for rank in 0..mesh.size() {
            rank_box(d, rank, "    ");
        }
    }
    d.line("  }");
    // Rows along the last axis, so that the clusters read as grids.
    if let Some(last) = axes.last() {
        for rank in 0..mesh.size() {
            if mesh.coords(rank).last().is_some_and(|&c| c + 1 < last.size) {
                d.line(format!(
                    "  {} -> {} [style=invis, weight=10];",
                    rank_id(rank),
                    rank_id(rank + 1)
                ));
            }
        }
    }
    // Group edges: consecutive members only. They do not constrain the
    // layout, which the rows above set.
    let chain = |d: &mut Dot, axes: &[String], attrs: &str| {
        if axes.is_empty() {
            return;
        }
        // A layout naming an axis the mesh lacks has no groups to draw.
        for group in mesh.groups(axes).unwrap_or_default() {
            for pair in group.windows(2) {
                d.line(format!(
                    "  {} -> {} [{attrs}, constraint=false];",
                    rank_id(pair[0]),
                    rank_id(pair[1])
                ));
            }
        }
    };
    chain(
        d,
        &layout.tensor,
        &format!("dir=none, color=\"{TENSOR_EDGE}\", penwidth=2"),
    );
    // A pipeline group's ranks ascend in stage order (row-major over the
    // pipeline axes, the others fixed).
    chain(d, &layout.pipeline, &format!("color=\"{PIPELINE_EDGE}\""));
}

/// What a box of the schedule stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pass {
    Forward,
    Backward,
}

/// Consecutive compute ops of one pass over one micro-batch.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    pass: Pass,
    micro: usize,
    ops: usize,
    flops: f64,
}

/// The runs of a program, in order, and whether it ends with an optimizer
/// step. Communication and data loads do not break a run; a recomputed
/// forward belongs to the backward pass it feeds.
fn runs(p: &RankProgram) -> (Vec<Run>, bool) {
    let mut out: Vec<Run> = Vec::new();
    let mut step = false;
    for op in &p.ops {
        let (pass, micro, flops) = match op {
            Op::Forward {
                micro,
                flops,
                recompute,
                ..
            } => (
                if *recompute {
                    Pass::Backward
                } else {
                    Pass::Forward
                },
                *micro,
                *flops,
            ),
            Op::Backward { micro, flops, .. } => (Pass::Backward, *micro, *flops),
            Op::Step => {
                step = true;
                continue;
            }
            Op::Load { .. } | Op::Collective(_) | Op::P2p(_) => continue,
        };
        match out.last_mut() {
            Some(r) if r.pass == pass && r.micro == micro => {
                r.ops += 1;
                r.flops += flops;
            }
            _ => out.push(Run {
                pass,
                micro,
                ops: 1,
                flops,
            }),
        }
    }
    (out, step)
}

/// The rank whose program stands for stage `s`: data and tensor index 0
/// if planned, else the lowest planned rank of the stage.
fn representative(plan: &Plan, s: usize) -> Option<&RankProgram> {
    let layout = &plan.layout;
    let first = |r: &&RankProgram| {
        layout
            .mesh
            .axes()
            .iter()
            .zip(&r.coords)
            .all(|(a, &c)| c == 0 || layout.pipeline.contains(&a.name))
    };
    let of_stage = || plan.ranks.iter().filter(move |r| r.stage == s);
    of_stage()
        .find(first)
        .or_else(|| of_stage().min_by_key(|r| r.rank))
}

fn schedule(d: &mut Dot, plan: &Plan) {
    let stages = plan.layout.stages().max(1);
    d.line("  subgraph cluster_schedule {");
    d.line(format!(
        "    label={};",
        quote(&[
            format!(
                "schedule per step: micro-batches: {}, samples each: {}",
                plan.microbatches, plan.micro_batch
            ),
            "blue F: forward, orange B: backward".to_string(),
        ])
    ));
    d.line("    style=rounded;");
    // Per stage, its runs and the ids of their boxes.
    let mut rows: Vec<Vec<(Run, String)>> = Vec::with_capacity(stages);
    for s in 0..stages {
        let head = format!("\"s{s}\"");
        let rep = representative(plan, s);
        let label = match rep {
            Some(r) => vec![format!("stage {s} (rank {})", r.rank)],
            None => vec![format!("stage {s}"), "no rank planned".to_string()],
        };
        d.line(format!(
            "    {head} [label={}, shape=plaintext, style=\"\"];",
            quote(&label)
        ));
        let (rs, step) = rep.map(runs).unwrap_or_default();
        let mut prev = head;
        let mut row = Vec::with_capacity(rs.len());
        for (i, r) in rs.into_iter().enumerate() {
            let id = format!("\"s{s}_{i}\"");
            let (letter, fill, pass) = match r.pass {
                Pass::Forward => ("F", FORWARD_FILL, "forward"),
                Pass::Backward => ("B", BACKWARD_FILL, "backward"),
            };
            let tooltip = format!(
                "{pass} of micro-batch {}: {} ops, {:.3e} FLOPs",
                r.micro, r.ops, r.flops
            );
            d.line(format!(
                "    {id} [label={}, fillcolor=\"{fill}\", tooltip={}];",
                quote(&[format!("{letter}{}", r.micro)]),
                quote(&[tooltip])
            ));
            d.line(format!("    {prev} -> {id} [style=invis, weight=100];"));
            prev = id.clone();
            row.push((r, id));
        }
        if step {
            let id = format!("\"s{s}_step\"");
            d.line(format!(
                "    {id} [label=\"step\", fillcolor=\"{STEP_FILL}\", tooltip=\"optimizer step\"];"
            ));
            d.line(format!("    {prev} -> {id} [style=invis, weight=100];"));
        }
        rows.push(row);
    }
    // The row headers form one column, stage 0 on top: with `rankdir=LR`
    // the order along an edge within a column runs upwards, hence the
    // edges from the last stage to the first.
    let heads: Vec<String> = (0..stages).rev().map(|s| format!("\"s{s}\"")).collect();
    d.line(format!("    {{ rank=same; {}; }}", heads.join("; ")));
    for pair in heads.windows(2) {
        d.line(format!("    {} -> {} [style=invis];", pair[0], pair[1]));
    }
    d.line("  }");
    // A forward on stage s + 1 waits for the forward of the same
    // micro-batch on stage s, and a backward on stage s for the backward on
    // stage s + 1: from the last run of the sender to the first of the
    // receiver.
    let last = |row: &[(Run, String)], pass: Pass, micro: usize| {
        row.iter()
            .rev()
            .find(|(r, _)| r.pass == pass && r.micro == micro)
            .map(|(_, id)| id.clone())
    };
    let first = |row: &[(Run, String)], pass: Pass, micro: usize| {
        row.iter()
            .find(|(r, _)| r.pass == pass && r.micro == micro)
            .map(|(_, id)| id.clone())
    };
    let mut seen = HashSet::new();
    for s in 0..stages.saturating_sub(1) {
        for (r, _) in &rows[s + 1] {
            let (from, to) = match r.pass {
                Pass::Forward => (
                    last(&rows[s], Pass::Forward, r.micro),
                    first(&rows[s + 1], Pass::Forward, r.micro),
                ),
                Pass::Backward => (
                    last(&rows[s + 1], Pass::Backward, r.micro),
                    first(&rows[s], Pass::Backward, r.micro),
                ),
            };
            if let (Some(from), Some(to)) = (from, to) {
                if seen.insert((from.clone(), to.clone())) {
                    d.line(format!("  {from} -> {to} [style=invis];"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::emit::sample;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            quote(&["a \"b\" \\n".to_string(), "c\nd".to_string()]),
            r#""a \"b\" \\n\nc\nd""#
        );
        let dot = to_dot(&sample::graph(), &sample::plan());
        // The axis `p"p` appears only escaped, and every line has balanced
        // quotes once escapes are removed.
        assert!(dot.contains(r#"p\"p 0"#), "{dot}");
        assert!(!dot.contains(r#" p"p"#), "{dot}");
        for line in dot.lines() {
            let bare = line.replace("\\\\", "").replace("\\\"", "");
            assert_eq!(bare.matches('"').count() % 2, 0, "{line}");
        }
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    }

    #[test]
    fn runs_compress_a_pass_over_one_micro_batch() {
        let plan = sample::plan();
        let (rs, step) = runs(&plan.ranks[0]);
        let got: Vec<(Pass, usize, usize)> = rs.iter().map(|r| (r.pass, r.micro, r.ops)).collect();
        // Loads, collectives and transfers do not break a run; the
        // recomputed forward belongs to the backward of micro-batch 0.
        assert_eq!(
            got,
            [
                (Pass::Forward, 0, 2),
                (Pass::Forward, 1, 2),
                (Pass::Backward, 0, 3),
                (Pass::Backward, 1, 2)
            ]
        );
        assert_eq!(rs[2].flops, 64.0 + 128.0 + 128.0);
        assert!(step);
        let (rs, _) = runs(&plan.ranks[1]);
        let got: Vec<(Pass, usize)> = rs.iter().map(|r| (r.pass, r.micro)).collect();
        assert_eq!(
            got,
            [
                (Pass::Forward, 0),
                (Pass::Backward, 0),
                (Pass::Forward, 1),
                (Pass::Backward, 1)
            ]
        );
    }

    #[test]
    fn the_mesh_shows_every_rank_and_only_group_edges() {
        let dot = to_dot(&sample::graph(), &sample::plan());
        // One cluster per index of the first axis.
        assert!(dot.contains("subgraph cluster_mesh_0 {"));
        assert!(dot.contains("subgraph cluster_mesh_1 {"));
        assert!(!dot.contains("cluster_mesh_2"));
        for rank in 0..4 {
            assert!(dot.contains(&format!("\"r{rank}\" [label=\"rank {rank}\\n")));
        }
        // Ranks 1 and 3 have no program in the plan: dashed.
        assert!(
            dot.contains(r#""r1" [label="rank 1\np\"p 0, tp 1\nstage 0", style="filled,dashed""#)
        );
        assert!(dot.contains(r#""r2" [label="rank 2\np\"p 1, tp 0\nstage 1", style="filled""#));
        let edges = |colour: &str| -> Vec<String> {
            dot.lines()
                .filter(|l| l.contains(colour))
                .map(|l| l.split(" [").next().unwrap_or("").trim().to_string())
                .collect()
        };
        assert_eq!(edges(TENSOR_EDGE), ["\"r0\" -> \"r1\"", "\"r2\" -> \"r3\""]);
        assert_eq!(
            edges(PIPELINE_EDGE),
            ["\"r0\" -> \"r2\"", "\"r1\" -> \"r3\""]
        );
    }

    #[test]
    fn the_schedule_has_a_row_per_stage_aligned_by_dependencies() {
        let dot = to_dot(&sample::graph(), &sample::plan());
        assert!(dot.contains(r#""s0" [label="stage 0 (rank 0)""#));
        assert!(dot.contains(r#""s1" [label="stage 1 (rank 2)""#));
        let label = |id: &str| -> String {
            let start = format!("    \"{id}\" [label=\"");
            let line = dot.lines().find(|l| l.starts_with(&start)).unwrap();
            line[start.len()..].split('"').next().unwrap().to_string()
        };
        let row =
            |s: usize| -> Vec<String> { (0..4).map(|i| label(&format!("s{s}_{i}"))).collect() };
        assert_eq!(row(0), ["F0", "F1", "B0", "B1"]);
        assert_eq!(row(1), ["F0", "B0", "F1", "B1"]);
        assert!(dot.contains(&format!(
            "\"s0_0\" [label=\"F0\", fillcolor=\"{FORWARD_FILL}\""
        )));
        assert!(dot.contains(&format!(
            "\"s0_2\" [label=\"B0\", fillcolor=\"{BACKWARD_FILL}\""
        )));
        // Rows in order, then the step.
        for edge in [
            "\"s0\" -> \"s0_0\" [style=invis, weight=100]",
            "\"s0_0\" -> \"s0_1\" [style=invis, weight=100]",
            "\"s0_3\" -> \"s0_step\" [style=invis, weight=100]",
        ] {
            assert!(dot.contains(edge), "{edge}");
        }
        // Forwards wait for the previous stage, backwards for the next.
        for edge in [
            "\"s0_0\" -> \"s1_0\"",
            "\"s0_1\" -> \"s1_2\"",
            "\"s1_1\" -> \"s0_2\"",
            "\"s1_3\" -> \"s0_3\"",
        ] {
            assert!(dot.contains(&format!("  {edge} [style=invis];")), "{edge}");
        }
    }

    #[test]
    fn a_stage_without_a_planned_rank_is_said_so() {
        let mut plan = sample::plan();
        plan.ranks.truncate(1);
        let dot = to_dot(&sample::graph(), &plan);
        assert!(
            dot.contains(r#""s1" [label="stage 1\nno rank planned""#),
            "{dot}"
        );
        assert!(!dot.contains("\"s1_0\""));
    }
}
