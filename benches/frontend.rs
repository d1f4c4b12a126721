//! One benchmark per front-end stage, on the largest example and on a
//! generated 10,000-line experiment: parse, resolve (imports, stdlib and
//! names; parsing included), check (resolve plus the checks on values and
//! the elaboration of the model through every module: all of `enigma
//! check`) and fmt.
//!
//! Run: `cargo bench --no-default-features --bench frontend`. Figures are
//! recorded in `docs/benchmarks.md`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use enigma::base::FileId;
use enigma::resolve::{self, Options};
use enigma::source::MemoryLoader;

/// A valid experiment of about `lines` lines: dims and modules repeated
/// with fresh names so that resolution does real work, and a model that
/// applies every module in turn so that checking elaborates all of them.
fn generated(lines: usize) -> String {
    let mut s = String::from(
        "use std::nn::{Linear, RMSNorm}\nuse std::losses::{mse}\n\n\
         dim T = 2s\ndim d = 64\n\n\
         data src = synthetic.series(channels: 64) { window: T }\n\
         modality x: series<f32>[T @ 10Hz, d] from src.x\n\n",
    );
    let mut i = 0;
    while s.lines().count() + i < lines {
        s.push_str(&format!(
            "dim d{i} = 64 * {k}\n\
             /// Block {i}.\n\
             module Block{i}(d: dim)(x: [..., d]) -> [..., d] {{\n  \
             let h = RMSNorm(d: d)(x)\n  \
             let y = Linear(d_in: d, d_out: d)(h)\n  \
             return x + gelu(y) * 0.5\n\
             }}\n\n",
            k = i % 7 + 1
        ));
        i += 1;
    }
    s.push_str("model m {\n  let h0 = x\n");
    for j in 0..i {
        s.push_str(&format!("  let h{} = Block{j}(d: d)(h{j})\n", j + 1));
    }
    s.push_str(&format!("  predict y = h{i}\n}}\n\nloss mse(m.y, x)\n"));
    s
}

fn load(text: &str) -> resolve::Program {
    let mut loader = MemoryLoader::new();
    loader.insert("main.enigma", text.as_bytes().to_vec());
    resolve::load(&loader, Path::new("main.enigma"), &Options::default()).expect("in memory")
}

/// What `enigma check` runs: the driver up to the checked experiment.
fn check(text: &str) -> enigma::driver::Artifacts {
    let mut loader = MemoryLoader::new();
    loader.insert("main.enigma", text.as_bytes().to_vec());
    enigma::driver::compile(
        &loader,
        Path::new("main.enigma"),
        &enigma::driver::Options::check(),
    )
    .expect("in memory")
}

fn stages(c: &mut Criterion) {
    let enigma_1b = std::fs::read_to_string("examples/enigma_1b.enigma").expect("example");
    let big = generated(10_000);
    assert!(check(&enigma_1b).diagnostics.is_empty());
    assert!(
        check(&big).diagnostics.is_empty(),
        "the generated file is valid"
    );

    c.bench_function("parse/enigma_1b", |b| {
        b.iter(|| enigma::syntax::parse(&enigma_1b, FileId(0)))
    });
    c.bench_function("resolve/enigma_1b+stdlib", |b| b.iter(|| load(&enigma_1b)));
    c.bench_function("check/enigma_1b+stdlib", |b| b.iter(|| check(&enigma_1b)));
    c.bench_function("fmt/enigma_1b", |b| {
        b.iter(|| enigma::fmt::format(&enigma_1b, FileId(0)))
    });
    let mut slow = c.benchmark_group("generated_10k_lines");
    slow.sample_size(20);
    slow.bench_function("parse", |b| {
        b.iter(|| enigma::syntax::parse(&big, FileId(0)))
    });
    slow.bench_function("resolve", |b| b.iter(|| load(&big)));
    slow.bench_function("check", |b| b.iter(|| check(&big)));
    slow.bench_function("fmt", |b| b.iter(|| enigma::fmt::format(&big, FileId(0))));
    slow.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
