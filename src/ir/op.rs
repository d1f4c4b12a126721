//! The primitive operations of the model graph, with typed attributes.
//!
//! Every node of an [`crate::ir::Graph`] applies one [`Op`]. The checker
//! builds each variant from a primitive call once its shape rule has
//! passed, with every attribute evaluated and every default filled in (a
//! norm's `eps`, attention's scale, rotary's base), so nothing after the
//! checker reads an operation's name or an attribute as text. [`Op::name`],
//! [`Op::is_view`], the IR's YAML rendering, the planner's tensor-parallel
//! rule and the runtime match on this enum without a catch-all arm: a new
//! primitive is a compile error in each place that must handle it
//! (`docs/ARCHITECTURE.md`, "Adding a primitive"). The statistics and the
//! cost model read each node's FLOPs and [`Op::is_view`].
//!
//! Axes are positions in the node's first input (or, where noted, its
//! output). IR shapes are per sample but keep the leading `batch` dim, so a
//! position in the IR type is the same position in the run-time tensor.

use std::fmt;

use super::types::{DType, Size};

/// An elementwise function. Its operands broadcast by dim name; the
/// output has the node's type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elementwise {
    // One operand.
    Neg,
    Not,
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
    Silu,
    Softplus,
    /// GELU, exact (`erf`) or with the tanh approximation.
    Gelu {
        tanh: bool,
    },
    IsNan,
    /// `x` limited to `[min, max]`; a missing bound does not limit.
    Clamp {
        min: Option<f64>,
        max: Option<f64>,
    },
    // Two operands.
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
    Max,
    Min,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    // Three operands.
    /// `where(cond, a, b)`.
    Where,
}

impl Elementwise {
    /// The primitive's name as the language spells it.
    pub fn name(self) -> &'static str {
        use Elementwise::*;
        match self {
            Neg => "neg",
            Not => "not",
            Exp => "exp",
            Log => "log",
            Log1p => "log1p",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Abs => "abs",
            Square => "square",
            Tanh => "tanh",
            Sigmoid => "sigmoid",
            Relu => "relu",
            Silu => "silu",
            Softplus => "softplus",
            Gelu { .. } => "gelu",
            IsNan => "isnan",
            Clamp { .. } => "clamp",
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            Rem => "rem",
            Pow => "pow",
            Max => "max",
            Min => "min",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            And => "and",
            Or => "or",
            Where => "where",
        }
    }

    /// How many operands it takes.
    pub fn arity(self) -> usize {
        use Elementwise::*;
        match self {
            Neg
            | Not
            | Exp
            | Log
            | Log1p
            | Sqrt
            | Rsqrt
            | Abs
            | Square
            | Tanh
            | Sigmoid
            | Relu
            | Silu
            | Softplus
            | Gelu { .. }
            | IsNan
            | Clamp { .. } => 1,
            Add | Sub | Mul | Div | Rem | Pow | Max | Min | Eq | Ne | Lt | Le | Gt | Ge | And
            | Or => 2,
            Where => 3,
        }
    }

    /// Whether the result is boolean (comparisons, logic, `isnan`).
    pub fn is_boolean(self) -> bool {
        use Elementwise::*;
        matches!(self, Not | IsNan | Eq | Ne | Lt | Le | Gt | Ge | And | Or)
    }

    /// The function of one operand with this name (`exp`, `gelu`), as a
    /// primitive call or a data transform names it.
    pub fn unary(name: &str) -> Option<Elementwise> {
        use Elementwise::*;
        Some(match name {
            "exp" => Exp,
            "log" => Log,
            "log1p" => Log1p,
            "sqrt" => Sqrt,
            "rsqrt" => Rsqrt,
            "abs" => Abs,
            "square" => Square,
            "tanh" => Tanh,
            "sigmoid" => Sigmoid,
            "relu" => Relu,
            "silu" => Silu,
            "softplus" => Softplus,
            "gelu" => Gelu { tanh: false },
            "isnan" => IsNan,
            _ => return None,
        })
    }

    /// The value at a constant, for folding (`log(init_sigma)` in an
    /// initialiser): `None` for functions that do not fold to a number.
    pub fn fold1(self, v: f64) -> Option<f64> {
        use Elementwise::*;
        Some(match self {
            Neg => -v,
            Exp => v.exp(),
            Log => v.ln(),
            Log1p => v.ln_1p(),
            Sqrt => v.sqrt(),
            Rsqrt => 1.0 / v.sqrt(),
            Abs => v.abs(),
            Square => v * v,
            Tanh => v.tanh(),
            Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Relu => v.max(0.0),
            _ => return None,
        })
    }
}

/// One operand of an elementwise node: one of the node's inputs, or a
/// constant written in the source (constants are not values of the
/// graph).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// The `k`-th input of the node.
    Input(usize),
    Number(f64),
    Bool(bool),
    /// A dim's size used as a number where the size is bound per session:
    /// there is no one value to record. The runtime refuses such a node.
    DataBound,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Input(k) => write!(f, "${k}"),
            Operand::Number(x) => write!(f, "{x:?}"),
            Operand::Bool(b) => write!(f, "{b}"),
            Operand::DataBound => f.write_str("?"),
        }
    }
}

/// A reduction over some axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Mean,
    Sum,
    /// Population variance (no Bessel correction).
    Var,
    /// Population standard deviation.
    Std,
    Amax,
    LogSumExp,
}

impl Reduction {
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
            Reduction::Var => "var",
            Reduction::Std => "std",
            Reduction::Amax => "amax",
            Reduction::LogSumExp => "logsumexp",
        }
    }
}

/// A normalisation over the last dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps) * w + b`.
    Layer,
    /// `x / sqrt(mean(x^2) + eps) * w`.
    Rms,
}

/// How the output of a `reshape` (or `flatten`/`unflatten`) relates to its
/// input: the elements in the same order, regrouped into the output type.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewrite {
    /// The rewrite as written (`d -> (h, e)`), for people; the shapes are
    /// the node's types.
    pub written: String,
}

/// One primitive application's operation and attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// An elementwise function of the operands, broadcast by dim name.
    Elementwise {
        f: Elementwise,
        operands: Vec<Operand>,
    },
    /// `linear(x, w, b?)`: `x @ w^T + b` over the last dim of `x`.
    Linear,
    /// `matmul(a, b)` over the last dim of `a` and the second-to-last of
    /// `b`, broadcasting the leading dims.
    Matmul,
    /// `einsum[D...](a, b, ...)`: the product of the operands aligned by
    /// dim name, summed over the dims `summed` (the dims the output lacks).
    Einsum { summed: Vec<Size> },
    /// `embedding(ids, table)`: the rows of `table` at `ids`.
    Embedding,
    /// `conv1d`/`conv2d`/`conv3d(x, w, b?)` over the last `spatial` dims,
    /// channels before them.
    Conv {
        spatial: usize,
        stride: Vec<i64>,
        padding: Vec<i64>,
        dilation: Vec<i64>,
        groups: i64,
    },
    /// `patchify(x, size)`: `[..., T, C, H, W]` (or `[..., C, H, W]`) cut
    /// into patches of `size`, each flattened in `(C, t, h, w)` order.
    Patchify { size: Vec<i64> },
    /// The inverse of [`Op::Patchify`].
    Unpatchify { size: Vec<i64> },
    /// `layer_norm(x, w?, b?)` or `rms_norm(x, w?)` over the last dim.
    Norm { kind: NormKind, eps: f64 },
    /// `attention(q, k, v, mask?)` on `[..., S, heads, e]`, grouped-query
    /// when `kv_heads` is smaller than `heads`.
    Attention {
        causal: bool,
        heads: Size,
        kv_heads: Size,
        /// Attention dropout, in training.
        dropout: f64,
        /// The scale of the logits; `None` is `1 / sqrt(e)`.
        scale: Option<f64>,
        /// Whether a fourth input is a boolean mask (true where a query
        /// may attend to a key).
        masked: bool,
    },
    /// `rotary[S](x)`: rotary position embedding of the positions along
    /// axis `axis` of `x`, over pairs of the last dim.
    Rotary { axis: usize, base: f64, scale: f64 },
    /// `sinusoidal[D](d)` or `sinusoidal(t, d)`: sines and cosines of the
    /// positions of `D` (in seconds when `D` has a rate), or of the times
    /// in `t` when `times`.
    Sinusoidal { base: f64, times: bool },
    /// `causal_mask[S, S2]()`: true where key position <= query position.
    CausalMask,
    /// `dropout(x, p)`, in training.
    Dropout { p: f64 },
    /// `mask_tokens[D...](x, ratio:, token:)`: in each sample, `ratio` of
    /// the positions of the axes `axes` replaced by the vector `token`.
    MaskTokens { ratio: f64, axes: Vec<usize> },
    /// The mask the [`Op::MaskTokens`] node `of` drew, `[batch, D...]`,
    /// true where masked. It takes no input: the draw is a pure function of
    /// the run's seed, the step, the micro-batch and the sample.
    TokenMask { of: usize },
    /// `softmax[D...]` / `log_softmax[D...]` jointly over `axes`.
    Softmax { log: bool, axes: Vec<usize> },
    /// `mean`, `sum`, ...`[D...](x)` over `axes`; no axes is every axis.
    Reduce { f: Reduction, axes: Vec<usize> },
    /// `concat[D](a, b, ...)` along axis `axis` of the output.
    Concat { axis: usize },
    /// One part of `split[D -> (D1, D2, ...)](x)`: the positions
    /// `start..start + len` of axis `axis` (the length is the output's).
    Split {
        axis: usize,
        part: usize,
        start: Size,
    },
    /// `reshape`, `flatten`, `unflatten`: the elements in order, in the
    /// output's shape.
    Reshape(Rewrite),
    /// `permute[D...](x)`: the last `order.len()` axes in the order of
    /// `order` (positions in `x`).
    Permute { order: Vec<usize> },
    /// `broadcast(x, like)`: `x` expanded to the dims of `like`.
    Broadcast,
    /// `slice[D](x, a, b)` or `x[D: a..b]`.
    Slice { axis: usize, start: Size, end: Size },
    /// `take[D](x, idx)`: gather along axis `axis` of `x`.
    Take { axis: usize },
    /// `one_hot[C](idx)`.
    OneHot,
    /// `cast(x, dtype)`.
    Cast { dtype: DType },
    /// `ones_like(x)`.
    OnesLike,
    /// `zeros_like(x)`.
    ZerosLike,
    /// `arange[D]()`: `0, 1, ..., D - 1`.
    Arange,
    /// `stack[D](a, b, ...)`: a new last axis.
    Stack,
    /// `h[tok]`: the tokens of tokenizer `tokenizer` in a sequence built by
    /// `concat[seq]`: positions `start..` of axis `axis` (the sequence) of
    /// the input, as many as the output has.
    Select {
        tokenizer: String,
        axis: usize,
        start: Size,
    },
}

impl Op {
    /// The primitive's name as the language spells it (`linear`,
    /// `layer_norm`, `add`): what messages and `--emit ir` show.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Elementwise { f, .. } => f.name(),
            Op::Linear => "linear",
            Op::Matmul => "matmul",
            Op::Einsum { .. } => "einsum",
            Op::Embedding => "embedding",
            Op::Conv { spatial: 1, .. } => "conv1d",
            Op::Conv { spatial: 2, .. } => "conv2d",
            Op::Conv { .. } => "conv3d",
            Op::Patchify { .. } => "patchify",
            Op::Unpatchify { .. } => "unpatchify",
            Op::Norm {
                kind: NormKind::Layer,
                ..
            } => "layer_norm",
            Op::Norm {
                kind: NormKind::Rms,
                ..
            } => "rms_norm",
            Op::Attention { .. } => "attention",
            Op::Rotary { .. } => "rotary",
            Op::Sinusoidal { .. } => "sinusoidal",
            Op::CausalMask => "causal_mask",
            Op::Dropout { .. } => "dropout",
            Op::MaskTokens { .. } => "mask_tokens",
            Op::TokenMask { .. } => "token_mask",
            Op::Softmax { log: false, .. } => "softmax",
            Op::Softmax { log: true, .. } => "log_softmax",
            Op::Reduce { f, .. } => f.name(),
            Op::Concat { .. } => "concat",
            Op::Split { .. } => "split",
            Op::Reshape(_) => "reshape",
            Op::Permute { .. } => "permute",
            Op::Broadcast => "broadcast",
            Op::Slice { .. } => "slice",
            Op::Take { .. } => "take",
            Op::OneHot => "one_hot",
            Op::Cast { .. } => "cast",
            Op::OnesLike => "ones_like",
            Op::ZerosLike => "zeros_like",
            Op::Arange => "arange",
            Op::Stack => "stack",
            Op::Select { .. } => "select",
        }
    }

    /// Whether the output is a view of the first input, holding no memory
    /// of its own (the cost model counts no activation for it).
    pub fn is_view(&self) -> bool {
        match self {
            Op::Reshape(_)
            | Op::Permute { .. }
            | Op::Slice { .. }
            | Op::Select { .. }
            | Op::Split { .. }
            | Op::Broadcast => true,
            Op::Dropout { p } => *p == 0.0,
            Op::Elementwise { .. }
            | Op::Linear
            | Op::Matmul
            | Op::Einsum { .. }
            | Op::Embedding
            | Op::Conv { .. }
            | Op::Patchify { .. }
            | Op::Unpatchify { .. }
            | Op::Norm { .. }
            | Op::Attention { .. }
            | Op::Rotary { .. }
            | Op::Sinusoidal { .. }
            | Op::CausalMask
            | Op::MaskTokens { .. }
            | Op::TokenMask { .. }
            | Op::Softmax { .. }
            | Op::Reduce { .. }
            | Op::Concat { .. }
            | Op::Take { .. }
            | Op::OneHot
            | Op::Cast { .. }
            | Op::OnesLike
            | Op::ZerosLike
            | Op::Arange
            | Op::Stack => false,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
