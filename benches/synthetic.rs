//! Benchmarks of the simulated mouse V1 (`synthetic.mouse_v1`): building
//! the quick start's source (2 sessions x 32 neurons x 600 s) and
//! rendering its video window by window, as the data loader will.
//!
//! Run: `cargo bench --no-default-features --bench synthetic`. Figures are
//! recorded in `docs/synthetic.md` and `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use enigma::dataset::synthetic::{MouseV1, MouseV1Config};

fn synthetic(c: &mut Criterion) {
    let mut group = c.benchmark_group("synthetic");
    group.sample_size(10);
    group.bench_function("build 2 sessions x 32 neurons x 600 s", |b| {
        b.iter(|| MouseV1::new(black_box(MouseV1Config::new(2, 32, 7))))
    });
    let v1 = MouseV1::new(MouseV1Config::new(2, 32, 7)).expect("a valid source");
    let session = v1.session(0).expect("session 0");
    let mut window = vec![0.0f32; 60 * 36 * 64];
    group.bench_function("render 300 windows of 60 frames", |b| {
        b.iter(|| {
            for k in 0..300 {
                session
                    .video(k * 60, 60, &mut window)
                    .expect("inside the session");
            }
            black_box(&window);
        })
    });
    group.finish();
}

criterion_group!(benches, synthetic);
criterion_main!(benches);
