//! The libtorch backend on the quickstart: the plan's program trains (a
//! fixed batch is fitted), evaluation reports predictions against targets
//! on the masked entries, and export/import round-trips the state.

use std::path::Path;

use enigma::base::host::HostTensor;
use enigma::ir::train::{NonFinite, Precision, TrainConfig};
use enigma::ir::Graph;
use enigma::plan::lower::lower;
use enigma::plan::program::Plan;
use enigma::plan::Layout;
use enigma::run::backend::{Backend, EvalOutcome, HoldOut, MicroBatch, StepKeys, Update};
use enigma_torch::TorchBackend;

fn quickstart() -> (Graph, Plan, TrainConfig) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.enigma");
    compile(&path)
}

/// Checks, lowers and configures the experiment at `path`.
fn compile(path: &Path) -> (Graph, Plan, TrainConfig) {
    let x = checked::experiment(path);
    let layout = Layout::of(&x.parallel).unwrap();
    let plan = lower(&x.graph, &layout, None).unwrap();
    let config = x.train.expect("a train block");
    (x.graph, plan, config)
}

#[path = "../../../tests/common/checked.rs"]
mod checked;

/// Inputs of the IR's shapes with `b` samples, filled from a simple
/// deterministic pattern.
fn inputs(g: &Graph, b: usize, salt: u32) -> Vec<HostTensor> {
    g.inputs
        .iter()
        .map(|i| {
            let mut shape = vec![b];
            shape.extend(
                i.ty.dims[1..]
                    .iter()
                    .map(|d| d.size.as_ref().unwrap().as_const().unwrap() as usize),
            );
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|k| {
                    ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(salt) % 1000) as f32
                        / 1000.0
                })
                .collect();
            HostTensor::new(shape, data).unwrap()
        })
        .collect()
}

/// A CPU backend of the quickstart's plan, initialised from `seed`.
fn backend(g: &Graph, plan: &Plan, config: &TrainConfig, seed: u64) -> TorchBackend {
    let config = TrainConfig {
        seed,
        precision: Precision::F32,
        ..config.clone()
    };
    let program = plan.rank(0).unwrap();
    TorchBackend::new(g, plan, program, tch::Device::Cpu, &config, None).unwrap()
}

/// Evaluates `data` as a batch of `session` with mask key `key`.
fn eval(
    b: &mut TorchBackend,
    plan: &Plan,
    data: &[HostTensor],
    session: usize,
    key: u64,
) -> EvalOutcome {
    let micro = MicroBatch {
        first: 0,
        session,
        inputs: data,
    };
    b.evaluate(&plan.ranks[0].forward_only(), micro, key, None)
        .unwrap()
}

#[test]
fn the_quickstart_program_fits_a_fixed_batch() {
    let (g, plan, config) = quickstart();
    let mut b = backend(&g, &plan, &config, 7);
    assert_eq!(b.parameters(), 159_040);
    let data = inputs(&g, plan.micro_batch as usize, 1);
    let micro = [MicroBatch {
        first: 0,
        session: 0,
        inputs: &data,
    }];
    let program = &plan.ranks[0];
    let update = Update {
        lr: 3e-3,
        clip: Some(1.0),
        on_nonfinite: NonFinite::Stop,
    };
    // The same masks every step, so the batch can be fitted.
    let keys = StepKeys {
        mask: 11,
        dropout: 3,
    };
    let first = b.train_step(program, &micro, keys, update).unwrap();
    let mut last = first.clone();
    for _ in 0..30 {
        last = b.train_step(program, &micro, keys, update).unwrap();
        assert!(last.skipped.is_none());
    }
    assert!(first.loss.is_finite() && first.grad_norm > 0.0);
    assert!(
        last.loss < 0.9 * first.loss,
        "{} -> {}",
        first.loss,
        last.loss
    );
}

#[test]
fn evaluation_scores_masked_entries_and_state_round_trips() {
    let (g, plan, config) = quickstart();
    let mut a = backend(&g, &plan, &config, 7);
    let data = inputs(&g, 5, 2);
    let e = eval(&mut a, &plan, &data, 1, 99);
    assert!(e.loss.is_finite());
    let p = &e.predictions[0];
    assert_eq!(p.name, "response");
    assert_eq!(p.pred.shape, vec![5, 16, 32]);
    let mask = p.mask.as_ref().unwrap();
    // Half of each sample's 16 x 32 entries are masked.
    assert_eq!(mask.iter().filter(|m| **m).count(), 5 * 256);
    // The same key draws the same masks; the evaluation is deterministic.
    let again = eval(&mut a, &plan, &data, 1, 99);
    assert_eq!(e, again);

    // A step changes the state; importing the exported state of another
    // backend makes the two evaluate identically.
    let train = inputs(&g, 16, 3);
    let update = Update {
        lr: 1e-2,
        clip: None,
        on_nonfinite: NonFinite::Stop,
    };
    a.train_step(
        &plan.ranks[0],
        &[MicroBatch {
            first: 0,
            session: 0,
            inputs: &train,
        }],
        StepKeys {
            mask: 1,
            dropout: 1,
        },
        update,
    )
    .unwrap();
    let state = a.export().unwrap();
    let mut b = backend(&g, &plan, &config, 8);
    assert_ne!(b.export().unwrap(), state);
    b.import(&state).unwrap();
    assert_eq!(b.export().unwrap(), state);
    let ea = eval(&mut a, &plan, &data, 0, 5);
    let eb = eval(&mut b, &plan, &data, 0, 5);
    assert_eq!(ea, eb);
}

/// A tokenizer that hides whole neurons (`whole_units: true`) draws a
/// `[batch, N]` mask; the evaluation lines it up with the `[batch, T, N]`
/// prediction by dim name, so a hidden neuron is scored at every step.
#[test]
fn a_whole_unit_mask_covers_every_step_of_the_hidden_neurons() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.enigma");
    let text = std::fs::read_to_string(&src).unwrap().replace(
        "UnitValues(d: d, mask: 0.5)",
        "UnitValues(d: d, mask: 0.25, whole_units: true)",
    );
    assert!(text.contains("whole_units: true"));
    let dir = std::env::temp_dir().join(format!("enigma-whole-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("whole_units.enigma");
    std::fs::write(&path, text).unwrap();
    let (g, plan, config) = compile(&path);
    let _ = std::fs::remove_dir_all(&dir);
    let mut a = backend(&g, &plan, &config, 7);
    let e = eval(&mut a, &plan, &inputs(&g, 3, 4), 0, 21);
    let p = &e.predictions[0];
    assert_eq!(p.pred.shape, vec![3, 16, 32]);
    let mask = p.mask.as_ref().unwrap();
    for s in 0..3 {
        let hidden: Vec<usize> = (0..32).filter(|&n| mask[s * 512 + n]).collect();
        // A quarter of the 32 neurons, the same ones at all 16 steps.
        assert_eq!(hidden.len(), 8, "sample {s}");
        for t in 0..16 {
            for n in 0..32 {
                assert_eq!(
                    mask[s * 512 + t * 32 + n],
                    hidden.contains(&n),
                    "sample {s}, step {t}, neuron {n}"
                );
            }
        }
    }
}

/// Holding a neuron out masks all of its entries on top of the drawn ones,
/// and leaves the draw of the others as it was.
#[test]
fn a_held_out_neuron_is_masked_at_every_step() {
    let (g, plan, config) = quickstart();
    let mut a = backend(&g, &plan, &config, 7);
    let data = inputs(&g, 2, 5);
    let program = plan.ranks[0].forward_only();
    let micro = || MicroBatch {
        first: 0,
        session: 0,
        inputs: &data,
    };
    let drawn = a.evaluate(&program, micro(), 13, None).unwrap();
    let hold = HoldOut {
        dim: "N".to_string(),
        index: 5,
    };
    let held = a.evaluate(&program, micro(), 13, Some(&hold)).unwrap();
    let (m0, m1) = (
        drawn.predictions[0].mask.as_ref().unwrap(),
        held.predictions[0].mask.as_ref().unwrap(),
    );
    for (k, (&x, &y)) in m0.iter().zip(m1).enumerate() {
        if k % 32 == 5 {
            assert!(y, "entry {k} of the held-out neuron is visible");
        } else {
            assert_eq!(x, y, "entry {k} of another neuron changed");
        }
    }
    // Neuron 5 was partly visible before, so the predictions differ.
    assert!(m0.iter().skip(5).step_by(32).any(|&v| !v));
    assert_ne!(drawn.predictions[0].pred, held.predictions[0].pred);
    let bad = HoldOut {
        dim: "N".to_string(),
        index: 32,
    };
    let e = a.evaluate(&program, micro(), 13, Some(&bad)).unwrap_err();
    assert!(e.to_string().contains("hold out position 32"), "{e}");
}
