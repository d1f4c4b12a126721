//! Parameter initialisation: seeded, on the host, the same on every
//! machine.
//!
//! Each parameter copy (a layer of a `repeat`, a session's copy of a
//! per-session parameter) gets its own SplitMix64 stream keyed by the run's
//! seed and a hash of its name (`brain.transformer.blocks.layer.attn.q_proj.w#1`),
//! so values do not depend on the order parameters are listed in, on the
//! device, or on the backend. Draws use the synthetic source's IEEE-exact
//! generator (`base::rng`): a run with the same seed starts from
//! bit-identical weights on any machine.
//!
//! The initialisers are those of `docs/primitives.md` ("Initialisers"), with
//! PyTorch's fan conventions: a shape `[out, in, k...]` has fan-in
//! `in * prod(k)` and fan-out `out * prod(k)`; a vector's fan-in and fan-out
//! are its length.

use std::fmt;

use crate::base::host::HostTensor;
use crate::base::rng::{derive, SplitMix64};
use crate::ir::Init;

/// An initialiser the runtime does not know, or a malformed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitError {
    pub param: String,
    pub message: String,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "initialising `{}`: {}", self.param, self.message)
    }
}

impl std::error::Error for InitError {}

/// A 64-bit FNV-1a hash of a name: stable across builds and platforms,
/// unlike `std`'s hasher.
pub fn name_key(name: &str) -> u64 {
    let mut h = crate::base::fnv::Fnv1a::new();
    h.bytes(name.as_bytes());
    h.finish()
}

fn fans(shape: &[usize]) -> (f64, f64) {
    match shape {
        [] => (1.0, 1.0),
        [n] => (*n as f64, *n as f64),
        [out, inp, rest @ ..] => {
            let k: usize = rest.iter().product();
            ((inp * k) as f64, (out * k) as f64)
        }
    }
}

/// The initial value of one parameter copy named `name` of `shape`, from
/// its initialiser.
pub fn init(name: &str, init: &Init, shape: &[usize], seed: u64) -> Result<HostTensor, InitError> {
    let fail = |m: String| InitError {
        param: name.to_string(),
        message: m,
    };
    let n: usize = shape.iter().product();
    let mut rng = SplitMix64::new(derive(seed, name_key(name)));
    let (fan_in, fan_out) = fans(shape);
    let normal = |rng: &mut SplitMix64, std: f64, mean: f64| -> Vec<f32> {
        (0..n).map(|_| (mean + std * rng.normal()) as f32).collect()
    };
    let uniform = |rng: &mut SplitMix64, lo: f64, hi: f64| -> Vec<f32> {
        (0..n).map(|_| rng.range(lo, hi) as f32).collect()
    };
    let data: Vec<f32> = match *init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Constant { value } => vec![value as f32; n],
        Init::Normal { mean, std } => normal(&mut rng, std, mean),
        Init::ScaledNormal { std, layers } => {
            normal(&mut rng, std / (2.0 * layers.max(1.0)).sqrt(), 0.0)
        }
        Init::XavierNormal { gain } => {
            normal(&mut rng, gain * (2.0 / (fan_in + fan_out)).sqrt(), 0.0)
        }
        Init::KaimingNormal { a } => {
            normal(&mut rng, (2.0 / (1.0 + a * a)).sqrt() / fan_in.sqrt(), 0.0)
        }
        Init::Uniform { low, high } => uniform(&mut rng, low, high),
        Init::XavierUniform { gain } => {
            let b = gain * (6.0 / (fan_in + fan_out)).sqrt();
            uniform(&mut rng, -b, b)
        }
        Init::KaimingUniform { a } => {
            let b = (6.0 / ((1.0 + a * a) * fan_in)).sqrt();
            uniform(&mut rng, -b, b)
        }
        Init::TruncNormal { mean, std, a, b } => {
            if a >= b {
                return Err(fail(format!("trunc_normal needs a < b, not {a} and {b}")));
            }
            // Rejection sampling: redraw outside [a, b] standard deviations.
            // At the defaults 95% of draws are kept.
            let mut out = Vec::with_capacity(n);
            let mut tries: u64 = 0;
            while out.len() < n {
                let z = rng.normal();
                tries += 1;
                if tries > 1_000 * (n as u64 + 1) {
                    return Err(fail(format!(
                        "trunc_normal's interval [{a}, {b}] is too narrow to sample"
                    )));
                }
                if (a..=b).contains(&z) {
                    out.push((mean + std * z) as f32);
                }
            }
            out
        }
    };
    Ok(HostTensor {
        shape: shape.to_vec(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const N02: Init = Init::Normal {
        mean: 0.0,
        std: 0.02,
    };

    #[test]
    fn normal_has_the_requested_spread_and_is_reproducible() {
        let a = init("w", &N02, &[256, 64], 7).unwrap();
        let b = init("w", &N02, &[256, 64], 7).unwrap();
        assert_eq!(a, b);
        let n = a.data.len() as f64;
        let mean = a.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = a
            .data
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.001, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 0.0005, "{}", var.sqrt());
        // Another name or another seed is another stream.
        assert_ne!(a, init("w#1", &N02, &[256, 64], 7).unwrap());
        assert_ne!(a, init("w", &N02, &[256, 64], 8).unwrap());
    }

    #[test]
    fn constants_bounds_and_fans() {
        assert!(init("b", &Init::Zeros, &[3], 0)
            .unwrap()
            .data
            .iter()
            .all(|&v| v == 0.0));
        assert!(init("g", &Init::Ones, &[3], 0)
            .unwrap()
            .data
            .iter()
            .all(|&v| v == 1.0));
        let c = init("s", &Init::Constant { value: -1.5 }, &[2], 0).unwrap();
        assert_eq!(c.data, vec![-1.5, -1.5]);
        let u = init(
            "u",
            &Init::Uniform {
                low: -0.5,
                high: 0.5,
            },
            &[1000],
            1,
        )
        .unwrap();
        assert!(u.data.iter().all(|&v| (-0.5..0.5).contains(&v)));
        // Xavier uniform on [out 30, in 10]: bound sqrt(6 / 40).
        let x = init("x", &Init::XavierUniform { gain: 1.0 }, &[30, 10], 1).unwrap();
        let bound = (6.0f64 / 40.0).sqrt() as f32;
        assert!(x.data.iter().all(|&v| v.abs() <= bound));
        assert!(x.data.iter().any(|&v| v.abs() > 0.9 * bound));
        let t = init(
            "t",
            &Init::TruncNormal {
                mean: 0.0,
                std: 1.0,
                a: -2.0,
                b: 2.0,
            },
            &[2000],
            1,
        )
        .unwrap();
        assert!(t.data.iter().all(|&v| v.abs() <= 2.0));
    }

    #[test]
    fn an_empty_truncation_interval_is_an_error_naming_the_parameter() {
        let bad = Init::TruncNormal {
            mean: 0.0,
            std: 1.0,
            a: 1.0,
            b: -1.0,
        };
        let e = init("p", &bad, &[2, 2], 0).unwrap_err();
        assert!(
            e.to_string().contains("`p`") && e.message.contains("a < b"),
            "{e}"
        );
    }
}
