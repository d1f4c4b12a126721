//! A modality's transforms (`from v1.response | log1p(max(x, 0))`), as
//! the checker compiled them: elementwise expressions in `x` as small stack
//! programs, and the data-pipeline functions that work on whole signals.
//!
//! The checker folds every sub-expression that does not mention `x` to a
//! constant, so a [`Program`] holds only the work that depends on the
//! data. Each instruction's meaning is defined here ([`Fn1::apply`],
//! [`BinOp::apply`]); the dataset's interpreter runs programs with these
//! functions, and any other backend must give the same bits.

use std::fmt;

/// Functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fn1 {
    Exp,
    Log,
    Log1p,
    Sqrt,
    Rsqrt,
    Abs,
    Square,
    Tanh,
    Sigmoid,
    Relu,
}

impl Fn1 {
    /// The function a transform calls by this name.
    pub fn parse(name: &str) -> Option<Fn1> {
        Some(match name {
            "exp" => Fn1::Exp,
            "log" => Fn1::Log,
            "log1p" => Fn1::Log1p,
            "sqrt" => Fn1::Sqrt,
            "rsqrt" => Fn1::Rsqrt,
            "abs" => Fn1::Abs,
            "square" => Fn1::Square,
            "tanh" => Fn1::Tanh,
            "sigmoid" => Fn1::Sigmoid,
            "relu" => Fn1::Relu,
            _ => return None,
        })
    }

    /// The function's value at `v`, in `f32` as the data pipeline computes.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Fn1::Exp => v.exp(),
            Fn1::Log => v.ln(),
            Fn1::Log1p => v.ln_1p(),
            Fn1::Sqrt => v.sqrt(),
            Fn1::Rsqrt => 1.0 / v.sqrt(),
            Fn1::Abs => v.abs(),
            Fn1::Square => v * v,
            Fn1::Tanh => v.tanh(),
            Fn1::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Fn1::Relu => v.max(0.0),
        }
    }
}

/// Operators of two arguments. Comparisons and logic give 1 or 0; a value
/// is true when it is neither 0 nor NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// Whether a value counts as true in a condition.
pub fn truth(v: f32) -> bool {
    v != 0.0 && !v.is_nan()
}

/// A condition's result as a value.
pub fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl BinOp {
    /// `a op b`, in `f32`.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Rem => a % b,
            BinOp::Pow => a.powf(b),
            BinOp::Eq => flag(a == b),
            BinOp::Ne => flag(a != b),
            BinOp::Lt => flag(a < b),
            BinOp::Le => flag(a <= b),
            BinOp::Gt => flag(a > b),
            BinOp::Ge => flag(a >= b),
            BinOp::And => flag(truth(a) && truth(b)),
            BinOp::Or => flag(truth(a) || truth(b)),
        }
    }
}

/// One instruction of the stack machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ins {
    Const(f32),
    /// The element.
    X,
    Neg,
    Not,
    Bin(BinOp),
    Fn1(Fn1),
    Max,
    Min,
    /// Pops `else`, `then`, `cond`; pushes the chosen one.
    Select,
}

impl Ins {
    /// How many values the instruction pops and pushes.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Ins::Const(_) | Ins::X => (0, 1),
            Ins::Neg | Ins::Not | Ins::Fn1(_) => (1, 1),
            Ins::Bin(_) | Ins::Max | Ins::Min => (2, 1),
            Ins::Select => (3, 1),
        }
    }
}

/// An elementwise expression in `x` as a stack program that never pops
/// what it has not pushed and leaves exactly one value (checked once, when
/// it is made).
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    code: Vec<Ins>,
    /// The deepest the stack gets, to size it once.
    depth: usize,
}

/// Why instructions are not a well-formed program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramError(pub String);

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProgramError {}

impl Program {
    pub fn new(code: Vec<Ins>) -> Result<Program, ProgramError> {
        let mut depth: usize = 0;
        let mut max = 0;
        for ins in &code {
            let (pops, pushes) = ins.arity();
            depth = depth
                .checked_sub(pops)
                .ok_or_else(|| ProgramError(format!("the stack program underflows at {ins:?}")))?
                + pushes;
            max = max.max(depth);
        }
        if depth != 1 {
            return Err(ProgramError(format!(
                "the stack program leaves {depth} values, not 1"
            )));
        }
        Ok(Program { code, depth: max })
    }

    pub fn code(&self) -> &[Ins] {
        &self.code
    }

    /// The deepest the stack gets.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// One `| stage` of a modality, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// An expression in `x`, element by element.
    Elementwise(Program),
    /// A series to `rate` hertz.
    Resample {
        rate: f64,
    },
    /// Events to counts per unit in bins of `width` seconds.
    Bin {
        width: f64,
    },
    /// Per channel, `(x - mean) / std` with the training split's statistics.
    ZScore,
    Standardize {
        mean: f32,
        std: f32,
    },
    Clip {
        low: f32,
        high: f32,
    },
    /// The centred moving average over `width` seconds.
    Smooth {
        width: f64,
    },
    /// Calcium `(F - F0) / F0` over a running baseline of `baseline` seconds.
    Dff {
        baseline: f64,
    },
}

impl Transform {
    /// The stage's name as the language spells it (`zscore`), or
    /// `elementwise` for an expression.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Elementwise(_) => "elementwise",
            Transform::Resample { .. } => "resample",
            Transform::Bin { .. } => "bin",
            Transform::ZScore => "zscore",
            Transform::Standardize { .. } => "standardize",
            Transform::Clip { .. } => "clip",
            Transform::Smooth { .. } => "smooth",
            Transform::Dff { .. } => "dff",
        }
    }
}
