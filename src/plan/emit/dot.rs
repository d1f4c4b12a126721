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
//! counts as part of the backward it serves. It is one HTML-like table
//! with a column per time slot: a forward takes one slot and a backward
//! two, each starting once its stage is free and the previous stage's
//! forward (the next stage's backward) of the same micro-batch is done, so
//! the picture shows the pipeline's fill, steady state and drain.

use std::collections::HashMap;

use crate::ir::Graph;
use crate::plan::layout::Layout;
use crate::plan::program::{Instr, Plan, RankProgram};

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
            Instr::Forward {
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
            Instr::Backward { micro, flops, .. } => (Pass::Backward, *micro, *flops),
            Instr::Step => {
                step = true;
                continue;
            }
            Instr::Load { .. } | Instr::Collective(_) | Instr::P2p(_) => continue,
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

/// Escapes text for an HTML-like label.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// When each run starts, in time slots (a forward takes one, a backward
/// two): as soon as the stage's previous run has ended and, for a forward,
/// the previous stage's forward of the same micro-batch (for a backward,
/// the next stage's backward). Runs whose dependency never runs start
/// after their predecessor only.
fn slots(rows: &[Vec<Run>]) -> Vec<Vec<usize>> {
    let width = |r: &Run| if r.pass == Pass::Forward { 1 } else { 2 };
    let mut start: Vec<Vec<Option<usize>>> = rows.iter().map(|r| vec![None; r.len()]).collect();
    let end_of = |start: &[Vec<Option<usize>>], s: usize, pass: Pass, micro: usize| {
        rows[s]
            .iter()
            .zip(&start[s])
            .find(|(r, _)| r.pass == pass && r.micro == micro)
            .map(|(r, t)| t.map(|t| t + width(r)))
    };
    // Each sweep places at least one more run unless all are placed or
    // the dependencies are circular; bounded either way.
    let total: usize = rows.iter().map(Vec::len).sum();
    for _ in 0..=total {
        let mut placed = false;
        for s in 0..rows.len() {
            for i in 0..rows[s].len() {
                if start[s][i].is_some() {
                    continue;
                }
                let prev = match i {
                    0 => Some(0),
                    _ => start[s][i - 1].map(|t| t + width(&rows[s][i - 1])),
                };
                let r = &rows[s][i];
                let dep = match r.pass {
                    Pass::Forward if s > 0 => end_of(&start, s - 1, Pass::Forward, r.micro),
                    Pass::Backward if s + 1 < rows.len() => {
                        end_of(&start, s + 1, Pass::Backward, r.micro)
                    }
                    _ => None,
                };
                let ready = match (prev, dep) {
                    (Some(p), None) => Some(p),
                    (Some(p), Some(Some(d))) => Some(p.max(d)),
                    _ => None,
                };
                if ready.is_some() {
                    start[s][i] = ready;
                    placed = true;
                }
            }
        }
        if !placed {
            break;
        }
    }
    // Anything left (a dependency that cannot be met) follows its row.
    start
        .into_iter()
        .zip(rows)
        .map(|(row, runs)| {
            let mut out = Vec::with_capacity(row.len());
            let mut t = 0;
            for (x, r) in row.into_iter().zip(runs) {
                let at = x.unwrap_or(t).max(t);
                out.push(at);
                t = at + width(r);
            }
            out
        })
        .collect()
}

/// Points of width per time slot in the schedule.
const SLOT: usize = 22;

/// Empty time slots.
fn gap(slots: usize) -> String {
    format!(
        "<TD BORDER=\"0\" COLSPAN=\"{slots}\" WIDTH=\"{}\"></TD>",
        SLOT * slots
    )
}

/// The schedule: one HTML-like table, a row per stage and a column per
/// time slot, so that rows cannot drift apart whatever the layout engine
/// does with the mesh beside it.
fn schedule(d: &mut Dot, plan: &Plan) {
    let stages = plan.layout.stages().max(1);
    let reps: Vec<Option<&RankProgram>> = (0..stages).map(|s| representative(plan, s)).collect();
    let rows: Vec<(Vec<Run>, bool)> = reps
        .iter()
        .map(|r| r.map(runs).unwrap_or_default())
        .collect();
    let runs_only: Vec<Vec<Run>> = rows.iter().map(|(r, _)| r.clone()).collect();
    let starts = slots(&runs_only);
    let end = runs_only
        .iter()
        .zip(&starts)
        .filter_map(|(r, s)| {
            r.last()
                .zip(s.last())
                .map(|(r, s)| s + if r.pass == Pass::Forward { 1 } else { 2 })
        })
        .max()
        .unwrap_or(0);
    let mut t = String::new();
    t.push_str("<TABLE BORDER=\"0\" CELLBORDER=\"1\" CELLSPACING=\"2\" CELLPADDING=\"4\">");
    t.push_str(&format!(
        "<TR><TD BORDER=\"0\" COLSPAN=\"{}\">schedule per step: {} micro-batches of {} samples; blue F forward, orange B backward</TD></TR>",
        end + 2,
        plan.microbatches,
        plan.micro_batch
    ));
    for s in 0..stages {
        let head = match reps[s] {
            Some(r) => format!("stage {s} (rank {})", r.rank),
            None => format!("stage {s}: no rank planned"),
        };
        t.push_str(&format!(
            "<TR><TD BORDER=\"0\" ALIGN=\"LEFT\">{}</TD>",
            html(&head)
        ));
        let mut at = 0;
        for (r, &start) in rows[s].0.iter().zip(&starts[s]) {
            if start > at {
                t.push_str(&gap(start - at));
            }
            let (letter, fill, span) = match r.pass {
                Pass::Forward => ("F", FORWARD_FILL, 1),
                Pass::Backward => ("B", BACKWARD_FILL, 2),
            };
            t.push_str(&format!(
                "<TD COLSPAN=\"{span}\" WIDTH=\"{}\" BGCOLOR=\"{fill}\" TITLE=\"{} of micro-batch {}: {} ops, {:.3e} FLOPs\">{letter}{}</TD>",
                SLOT * span,
                if r.pass == Pass::Forward { "forward" } else { "backward" },
                r.micro,
                r.ops,
                r.flops,
                r.micro
            ));
            at = start + span;
        }
        if end > at {
            t.push_str(&gap(end - at));
        }
        if rows[s].1 {
            t.push_str(&format!("<TD BGCOLOR=\"{STEP_FILL}\">step</TD>"));
        }
        t.push_str("</TR>");
    }
    t.push_str("</TABLE>");
    d.line(format!(
        "  \"schedule\" [shape=plaintext, style=\"\", label=<{t}>];"
    ));
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
    fn the_schedule_places_runs_in_time_slots_by_their_dependencies() {
        let plan = sample::plan();
        let rows: Vec<Vec<Run>> = (0..2)
            .map(|s| runs(representative(&plan, s).unwrap()).0)
            .collect();
        let labels = |s: usize| -> Vec<String> {
            rows[s]
                .iter()
                .map(|r| {
                    format!(
                        "{}{}",
                        if r.pass == Pass::Forward { "F" } else { "B" },
                        r.micro
                    )
                })
                .collect()
        };
        assert_eq!(labels(0), ["F0", "F1", "B0", "B1"]);
        assert_eq!(labels(1), ["F0", "B0", "F1", "B1"]);
        // A forward takes one slot, a backward two. Stage 1's F0 waits for
        // stage 0's; stage 0's B0 for stage 1's (which ends at 4), and its
        // B1 for stage 1's B1 (ends at 7).
        assert_eq!(slots(&rows), [vec![0, 1, 4, 7], vec![1, 2, 4, 5]]);
        let dot = to_dot(&sample::graph(), &plan);
        assert!(dot.contains("stage 0 (rank 0)</TD>"), "{dot}");
        assert!(dot.contains("stage 1 (rank 2)</TD>"));
        assert!(dot.contains(&format!("BGCOLOR=\"{FORWARD_FILL}\"")));
        assert!(dot.contains(&format!("BGCOLOR=\"{BACKWARD_FILL}\"")));
        // Stage 0 idles two slots between F1 and B0 (the bubble).
        assert!(
            dot.contains(">F1</TD><TD BORDER=\"0\" COLSPAN=\"2\""),
            "{dot}"
        );
        assert_eq!(dot.matches(">step</TD>").count(), 2);
    }

    #[test]
    fn a_stage_without_a_planned_rank_is_said_so() {
        let mut plan = sample::plan();
        plan.ranks.truncate(1);
        let dot = to_dot(&sample::graph(), &plan);
        assert!(dot.contains("stage 1: no rank planned</TD>"), "{dot}");
        // Its forward waits for nothing it can see: stage 0 still draws.
        assert!(dot.contains(">F0</TD>"));
    }
}
