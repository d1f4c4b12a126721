; Syntax highlighting for .enigma files.
;
; Capture names follow nvim-treesitter (`@keyword.function`, `@variable.member`,
; ...); other editors fall back on the part before the first dot.
;
; No two patterns capture the same node (patterns that could are split by
; predicates), so the result does not depend on which of two matching
; patterns an editor prefers: the tree-sitter CLI lets the first one win,
; Neovim the last.
;
; The builtin lists mirror src/resolve/builtins.rs (docs/language.md,
; section 21).

; ---------------------------------------------------------------------------
; Comments
; ---------------------------------------------------------------------------

[
  (line_comment)
  (block_comment)
] @comment

[
  (doc_comment)
  (inner_doc)
] @comment.documentation

; ---------------------------------------------------------------------------
; Keywords
; ---------------------------------------------------------------------------

[
  "use"
  "as"
] @keyword.import

[
  "dim"
  "let"
  "data"
  "modality"
  "from"
  "tokenizer"
  "module"
  "model"
  "param"
  "predict"
  "loss"
  "metric"
  "train"
  "parallel"
  "per"
  "session"
] @keyword

"fn" @keyword.function

"return" @keyword.return

[
  "if"
  "else"
] @keyword.conditional

[
  "and"
  "or"
  "not"
] @keyword.operator

; ---------------------------------------------------------------------------
; Literals
; ---------------------------------------------------------------------------

(number) @number

; The unit of a quantity: 2s, 30Hz, 80GB.
(unit) @type.builtin

(string) @string

(escape_sequence) @string.escape

(boolean) @boolean

(ellipsis) @punctuation.special

; ---------------------------------------------------------------------------
; Definitions: the name each item, parameter and statement binds
; ---------------------------------------------------------------------------

(dim_item
  name: (identifier) @type.definition)

(let_item
  name: (identifier) @constant)

(data_item
  name: (identifier) @variable)

(modality_item
  name: (identifier) @variable)

(tokenizer_item
  name: (identifier) @variable)

(fn_item
  name: (identifier) @function)

(module_item
  name: (identifier) @type)

(model_item
  name: (identifier) @type)

(loss_item
  name: (identifier) @label)

(metric_item
  name: (identifier) @label)

(param_decl
  name: (identifier) @variable.parameter)

(param_stmt
  name: (identifier) @variable.member)

(predict_stmt
  name: (identifier) @variable.member)

(let_stmt
  name: (identifier) @variable)

; Imports: the module path of a `use` and the module of a `module::item` path.
(use_item
  path: (module_path
    (identifier) @module))

(path
  .
  (identifier) @module)

; ---------------------------------------------------------------------------
; Types and dims
; ---------------------------------------------------------------------------

((type_name) @type.builtin
  (#any-of? @type.builtin
    "dim" "int" "float" "bool" "str" "duration" "rate" "bytes" "dtype" "module"
    "tensor" "video" "series" "events" "intervals" "f16" "bf16" "f32" "f64" "i8"
    "i32" "i64" "u8"))

((type_name) @type
  (#not-any-of? @type
    "dim" "int" "float" "bool" "str" "duration" "rate" "bytes" "dtype" "module"
    "tensor" "video" "series" "events" "intervals" "f16" "bf16" "f32" "f64" "i8"
    "i32" "i64" "u8"))

; Dims written in a shape: [T @ 30Hz, N], [..., heads * head_dim].
(shape
  (identifier) @type)

(rated_dim
  dim: (identifier) @type)

(shape
  (binary_expression
    left: (identifier) @type))

(shape
  (binary_expression
    right: (identifier) @type))

; ---------------------------------------------------------------------------
; Keys, fields and labels (words that are never looked up as names)
; ---------------------------------------------------------------------------

; Configuration keys: steps: 2000, checkpoint { ... }, batch -> dp.
(key) @property

; v1.video, brain.response
(field_identifier) @variable.member

; adamw(lr: 3e-4)
(named_argument
  name: (identifier) @variable.parameter)

; x[T: 0..16]
(labeled_index
  label: (identifier) @label)

; ---------------------------------------------------------------------------
; Calls
; ---------------------------------------------------------------------------

; Builtin functions: primitives, initialisers, data sources, data-pipeline
; functions, optimisers and schedules; also with dim parameters, mean[T](x).
((call_expression
  function: (identifier) @function.builtin)
  (#any-of? @function.builtin
    "linear" "matmul" "einsum" "embedding" "conv1d" "conv2d" "conv3d" "patchify"
    "unpatchify" "layer_norm" "rms_norm" "gelu" "silu" "relu" "sigmoid" "tanh"
    "softplus" "exp" "log" "log1p" "sqrt" "rsqrt" "abs" "square" "max" "min" "clamp"
    "where" "isnan" "softmax" "log_softmax" "mean" "sum" "var" "std" "amax"
    "logsumexp" "attention" "rotary" "sinusoidal" "causal_mask" "dropout"
    "mask_tokens" "concat" "split" "reshape" "permute" "flatten" "unflatten"
    "broadcast" "slice" "take" "one_hot" "cast" "ones_like" "zeros_like" "arange"
    "stack" "repeat" "sequential" "normal" "trunc_normal" "uniform" "zeros" "ones"
    "constant" "xavier_uniform" "xavier_normal" "kaiming_uniform" "kaiming_normal"
    "scaled_normal" "synthetic" "npy" "nwb" "suite2p" "by_time" "by_session"
    "resample" "bin" "zscore" "standardize" "clip" "smooth" "select" "dff" "adamw"
    "adam" "sgd" "lion" "linear_warmup" "warmup_cosine" "warmup_linear" "cosine"
    "step_decay"))

((call_expression
  function: (index_expression
    value: (identifier) @function.builtin))
  (#any-of? @function.builtin
    "einsum" "softmax" "log_softmax" "mean" "sum" "var" "std" "amax" "logsumexp"
    "rotary" "sinusoidal" "causal_mask" "mask_tokens" "concat" "split" "reshape"
    "permute" "flatten" "unflatten" "slice" "take" "one_hot" "arange" "stack"))

; Module instantiation: Linear(d_in: 4, d_out: 4)(x).
((call_expression
  function: (identifier) @constructor)
  (#match? @constructor "^[A-Z]"))

((call_expression
  function: (identifier) @function.call)
  (#not-match? @function.call "^[A-Z]")
  (#not-any-of? @function.call
    "linear" "matmul" "einsum" "embedding" "conv1d" "conv2d" "conv3d" "patchify"
    "unpatchify" "layer_norm" "rms_norm" "gelu" "silu" "relu" "sigmoid" "tanh"
    "softplus" "exp" "log" "log1p" "sqrt" "rsqrt" "abs" "square" "max" "min" "clamp"
    "where" "isnan" "softmax" "log_softmax" "mean" "sum" "var" "std" "amax"
    "logsumexp" "attention" "rotary" "sinusoidal" "causal_mask" "dropout"
    "mask_tokens" "concat" "split" "reshape" "permute" "flatten" "unflatten"
    "broadcast" "slice" "take" "one_hot" "cast" "ones_like" "zeros_like" "arange"
    "stack" "repeat" "sequential" "normal" "trunc_normal" "uniform" "zeros" "ones"
    "constant" "xavier_uniform" "xavier_normal" "kaiming_uniform" "kaiming_normal"
    "scaled_normal" "synthetic" "npy" "nwb" "suite2p" "by_time" "by_session"
    "resample" "bin" "zscore" "standardize" "clip" "smooth" "select" "dff" "adamw"
    "adam" "sgd" "lion" "linear_warmup" "warmup_cosine" "warmup_linear" "cosine"
    "step_decay"))

; ---------------------------------------------------------------------------
; Builtin values in settings and arguments: split: val, precision: bf16
; ---------------------------------------------------------------------------

((setting
  value: (identifier) @constant.builtin)
  (#any-of? @constant.builtin
    "val" "test" "all" "stop" "skip" "gpipe" "one_f_one_b" "interleaved" "cpu"
    "cuda" "none"))

((setting
  value: (identifier) @type.builtin)
  (#any-of? @type.builtin "f16" "bf16" "f32" "f64" "i8" "i32" "i64" "u8" "bool"))

((named_argument
  value: (identifier) @constant.builtin)
  (#any-of? @constant.builtin
    "val" "test" "all" "stop" "skip" "gpipe" "one_f_one_b" "interleaved" "cpu"
    "cuda" "none"))

; ---------------------------------------------------------------------------
; Operators and punctuation
; ---------------------------------------------------------------------------

[
  "="
  "=="
  "!="
  "<="
  ">="
  "+"
  "-"
  "*"
  "/"
  "%"
  "**"
  "->"
  "|"
  "@"
  ".."
] @operator

(binary_expression
  operator: [
    "<"
    ">"
  ] @operator)

(generic_args
  [
    "<"
    ">"
  ] @punctuation.bracket)

[
  "("
  ")"
  "["
  "]"
  "{"
  "}"
] @punctuation.bracket

[
  ","
  ";"
  ":"
  "::"
  "."
] @punctuation.delimiter
