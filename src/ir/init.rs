//! Parameter initialisers, with every argument evaluated and every default
//! filled in by the checker (`docs/primitives.md`, "Initialisers").
//!
//! The runtime draws from these (`run::init`) with PyTorch's fan
//! conventions: a shape `[out, in, k...]` has fan-in `in * prod(k)` and
//! fan-out `out * prod(k)`.

use std::fmt;

/// How a parameter's initial value is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant {
        value: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// Gaussian with standard deviation `std / sqrt(2 * layers)` (GPT-2's
    /// residual projections).
    ScaledNormal {
        std: f64,
        layers: f64,
    },
    /// Gaussian redrawn outside `[a, b]` standard deviations.
    TruncNormal {
        mean: f64,
        std: f64,
        a: f64,
        b: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    XavierUniform {
        gain: f64,
    },
    XavierNormal {
        gain: f64,
    },
    KaimingUniform {
        a: f64,
    },
    KaimingNormal {
        a: f64,
    },
}

/// The initialiser of a parameter declared without one.
pub const DEFAULT_INIT: Init = Init::Normal {
    mean: 0.0,
    std: 0.02,
};

impl Init {
    /// The initialiser as the language spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Init::Zeros => "zeros",
            Init::Ones => "ones",
            Init::Constant { .. } => "constant",
            Init::Normal { .. } => "normal",
            Init::ScaledNormal { .. } => "scaled_normal",
            Init::TruncNormal { .. } => "trunc_normal",
            Init::Uniform { .. } => "uniform",
            Init::XavierUniform { .. } => "xavier_uniform",
            Init::XavierNormal { .. } => "xavier_normal",
            Init::KaimingUniform { .. } => "kaiming_uniform",
            Init::KaimingNormal { .. } => "kaiming_normal",
        }
    }

    /// The arguments with their values, in the documented order.
    pub fn args(&self) -> Vec<(&'static str, f64)> {
        match *self {
            Init::Zeros | Init::Ones => Vec::new(),
            Init::Constant { value } => vec![("value", value)],
            Init::Normal { mean, std } => vec![("mean", mean), ("std", std)],
            Init::ScaledNormal { std, layers } => vec![("std", std), ("layers", layers)],
            Init::TruncNormal { mean, std, a, b } => {
                vec![("mean", mean), ("std", std), ("a", a), ("b", b)]
            }
            Init::Uniform { low, high } => vec![("low", low), ("high", high)],
            Init::XavierUniform { gain } | Init::XavierNormal { gain } => vec![("gain", gain)],
            Init::KaimingUniform { a } | Init::KaimingNormal { a } => vec![("a", a)],
        }
    }
}

impl fmt::Display for Init {
    /// `normal(mean: 0, std: 0.02)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args: Vec<String> = self
            .args()
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        write!(f, "{}({})", self.name(), args.join(", "))
    }
}
