//! Names that are always in scope: primitive operations, initialisers,
//! data sources, optimisers, schedules, dtypes, type names and symbolic
//! values such as `val` or `gpipe`.
//!
//! This table is the one list of what the language provides natively. The
//! resolver uses it to accept these names and to suggest close matches for
//! misspelt ones; the checker (shape rules) and the runtime extend each entry
//! with their own semantics, keyed by the same names. User and standard
//! library definitions shadow builtins.

/// What kind of thing a builtin is; shown in messages and used to decide
/// where a builtin may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKind {
    /// A tensor operation with a shape rule (`linear`, `attention`, `concat`).
    Primitive,
    /// A parameter initialiser (`normal`, `zeros`).
    Init,
    /// A data source constructor or namespace (`synthetic`, `npy`, `nwb`).
    Source,
    /// A data-pipeline helper (`by_time`, `resample`, `bin`).
    Data,
    /// An optimiser (`adamw`).
    Optimizer,
    /// A learning-rate schedule (`warmup_cosine`).
    Schedule,
    /// A symbolic value used in settings (`val`, `gpipe`, `skip`).
    Symbol,
    /// A logical dimension the planner knows (`batch`, `heads`, `layers`).
    LogicalDim,
    /// A dtype (`f32`, `bf16`); usable as a type and as a value.
    Dtype,
}

impl BuiltinKind {
    pub fn describe(self) -> &'static str {
        match self {
            BuiltinKind::Primitive => "primitive operation",
            BuiltinKind::Init => "initialiser",
            BuiltinKind::Source => "data source",
            BuiltinKind::Data => "data-pipeline function",
            BuiltinKind::Optimizer => "optimiser",
            BuiltinKind::Schedule => "learning-rate schedule",
            BuiltinKind::Symbol => "symbolic value",
            BuiltinKind::LogicalDim => "logical dimension",
            BuiltinKind::Dtype => "dtype",
        }
    }
}

/// Tensor operations. Each has a shape rule in the checker and is
/// documented in `docs/language.md` ("Primitives").
pub const PRIMITIVES: &[&str] = &[
    // Dense algebra.
    "linear",
    "matmul",
    "einsum",
    "embedding",
    // Convolutions and patch extraction.
    "conv1d",
    "conv2d",
    "conv3d",
    "patchify",
    "unpatchify",
    // Normalisation.
    "layer_norm",
    "rms_norm",
    // Activations and elementwise functions.
    "gelu",
    "silu",
    "relu",
    "sigmoid",
    "tanh",
    "softplus",
    "exp",
    "log",
    "log1p",
    "sqrt",
    "rsqrt",
    "abs",
    "square",
    "max",
    "min",
    "clamp",
    "where",
    "isnan",
    // Reductions and normalised exponentials.
    "softmax",
    "log_softmax",
    "mean",
    "sum",
    "var",
    "std",
    "amax",
    "logsumexp",
    // Attention and positions.
    "attention",
    "rotary",
    "sinusoidal",
    "causal_mask",
    // Regularisation and masking.
    "dropout",
    "mask_tokens",
    // Named-dim structure.
    "concat",
    "split",
    "reshape",
    "permute",
    "flatten",
    "unflatten",
    "broadcast",
    "slice",
    "take",
    "one_hot",
    "cast",
    "ones_like",
    "zeros_like",
    "arange",
    "stack",
    // Composition of module instances.
    "repeat",
    "sequential",
];

pub const INITS: &[&str] = &[
    "normal",
    "trunc_normal",
    "uniform",
    "zeros",
    "ones",
    "constant",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "scaled_normal",
];

pub const SOURCES: &[&str] = &["synthetic", "npy", "nwb", "suite2p"];

pub const DATA: &[&str] = &[
    "by_time",
    "by_session",
    "resample",
    "bin",
    "zscore",
    "standardize",
    "clip",
    "smooth",
    "select",
    "dff",
];

pub const OPTIMIZERS: &[&str] = &["adamw", "adam", "sgd", "lion"];

pub const SCHEDULES: &[&str] = &[
    "constant",
    "linear_warmup",
    "warmup_cosine",
    "warmup_linear",
    "cosine",
    "step_decay",
];

pub const SYMBOLS: &[&str] = &[
    // Data splits (`train` is a keyword and is written as a key only).
    "val",
    "test",
    "all",
    // Non-finite loss policy.
    "stop",
    "skip",
    // Pipeline schedules.
    "gpipe",
    "one_f_one_b",
    "interleaved",
    // Devices.
    "cpu",
    "cuda",
    // Reductions.
    "none",
];

/// Logical dimensions the planner can map onto mesh axes.
pub const LOGICAL_DIMS: &[&str] = &[
    "batch", "seq", "heads", "kv_heads", "ffn", "vocab", "layers", "experts", "units",
];

pub const DTYPES: &[&str] = &[
    "f16", "bf16", "f32", "f64", "i8", "i32", "i64", "u8", "bool",
];

/// Names usable only in type position (besides dtypes).
pub const TYPE_NAMES: &[&str] = &[
    // Scalars and compile-time values of hyperparameters.
    "dim",
    "int",
    "float",
    "str",
    "duration",
    "rate",
    "bytes",
    "dtype",
    "module",
    "tensor",
    // Modality kinds.
    "video",
    "series",
    "events",
    "intervals",
];

/// Looks up a value-position builtin.
pub fn lookup(name: &str) -> Option<BuiltinKind> {
    let tables: [(&[&str], BuiltinKind); 9] = [
        (PRIMITIVES, BuiltinKind::Primitive),
        (INITS, BuiltinKind::Init),
        (SOURCES, BuiltinKind::Source),
        (DATA, BuiltinKind::Data),
        (OPTIMIZERS, BuiltinKind::Optimizer),
        (SCHEDULES, BuiltinKind::Schedule),
        (SYMBOLS, BuiltinKind::Symbol),
        (LOGICAL_DIMS, BuiltinKind::LogicalDim),
        (DTYPES, BuiltinKind::Dtype),
    ];
    tables
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, kind)| *kind)
}

/// Whether `name` is a builtin type name (dtypes included).
pub fn is_type_name(name: &str) -> bool {
    TYPE_NAMES.contains(&name) || DTYPES.contains(&name)
}

/// Every value-position builtin name, for "did you mean" suggestions.
pub fn all_values() -> impl Iterator<Item = &'static str> {
    [
        PRIMITIVES,
        INITS,
        SOURCES,
        DATA,
        OPTIMIZERS,
        SCHEDULES,
        SYMBOLS,
        LOGICAL_DIMS,
        DTYPES,
    ]
    .into_iter()
    .flatten()
    .copied()
}
