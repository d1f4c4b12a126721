//! Benchmarks of the planner on Enigma-1B as written (64 ranks, ZeRO-3
//! within a node, checkpointing): lowering every rank's program and
//! verifying the plan; lowering the representatives and estimating the
//! step; and the search over every layout of 64 GPUs.
//!
//! Run: `cargo bench --no-default-features --bench plan`. Targets: a whole
//! plan under 100 ms, a search under 2 s. Figures are recorded in
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use enigma::driver::{compile, Options};
use enigma::ir::Graph;
use enigma::plan::cost::{estimate, Cluster};
use enigma::plan::lower::{lower, representatives};
use enigma::plan::search::explore;
use enigma::plan::verify::verify;
use enigma::plan::Layout;
use enigma::source::FsLoader;

fn example(name: &str) -> (Graph, Layout) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let a = compile(&FsLoader, &path, &Options::check()).expect("readable");
    let x = a.experiment.expect("the example checks");
    let layout = Layout::of(&x.parallel).expect("a valid mesh");
    (x.graph, layout)
}

fn planner(c: &mut Criterion) {
    let (g, layout) = example("enigma_1b.enigma");
    let cluster = Cluster::default();
    let plan = lower(&g, &layout, None).expect("lowers");
    verify(&plan).expect("verifies");
    let search = explore(&g, &layout, 64, &cluster);
    eprintln!(
        "search: {} layouts, {} pruned by the memory bound, {} refused, {} over memory, {} kept",
        search.considered,
        search.pruned,
        search.refused,
        search.too_big,
        search.candidates.len()
    );

    let mut group = c.benchmark_group("plan/enigma_1b");
    group.sample_size(20);
    group.bench_function("lower+verify (64 ranks)", |b| {
        b.iter(|| {
            let plan = lower(&g, &layout, None).expect("lowers");
            verify(&plan).expect("verifies");
            black_box(plan)
        })
    });
    group.bench_function("lower representatives+estimate", |b| {
        b.iter(|| {
            let reps = representatives(&layout);
            let plan = lower(&g, &layout, Some(&reps)).expect("lowers");
            black_box(estimate(&g, &plan, &cluster))
        })
    });
    group.sample_size(10);
    group.bench_function("search (world 64)", |b| {
        b.iter(|| black_box(explore(&g, &layout, 64, &cluster)))
    });
    group.finish();
}

criterion_group!(benches, planner);
criterion_main!(benches);
