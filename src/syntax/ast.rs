//! The typed abstract syntax tree of a `.enigma` file.
//!
//! Every node carries the byte [`Span`] it was parsed from, so later stages can
//! point diagnostics at the exact source text. The tree is a faithful picture
//! of what was written (parentheses and number spellings included), which is
//! what lets `enigma fmt` print it back without changing its meaning. Nothing
//! here knows about pest: the parser lowers pest pairs into these types.

use serde::Serialize;

use crate::base::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A `///` or `//!` comment line, without its marker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Doc {
    pub text: String,
    pub span: Span,
}

/// A whole source file: its module documentation and its items in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct File {
    pub docs: Vec<Doc>,
    pub items: Vec<Item>,
    pub span: Span,
    /// The top-level items that could not be parsed, in source order; empty
    /// when the whole file parsed. A file with syntax errors still has the
    /// items around them (see `syntax::parse_recovering`), and later stages
    /// use this list to tell "not defined" from "defined in an item that
    /// did not parse", so that one typo does not cascade into errors about
    /// every use of the names the broken item defines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub broken: Vec<BrokenItem>,
}

/// A top-level item that did not parse, as far as it can be read without
/// the grammar.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BrokenItem {
    /// From the item's keyword (or its first token, when it does not start
    /// with one) to the end of its last token. Its doc comments and the
    /// trivia after it are left out, as they are from [`Item`] spans.
    pub span: Span,
    /// The item keyword the text starts with (`"module"`, `"dim"`, ...), or
    /// `None` for text before the first item that is not an item at all.
    pub keyword: Option<&'static str>,
    /// The name the item would define, when the words after the keyword
    /// spell one: `module Foo(` gives `Foo`, `dim d` gives `d`, `loss recon =`
    /// gives `recon`, `use a::b as c` gives `c` and `use a::b` gives `b`. A
    /// `use` with a group `{...}`, `train`, `parallel` and unlabelled losses
    /// and metrics give `None`.
    pub name: Option<Ident>,
}

/// A top-level declaration with its doc comments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub docs: Vec<Doc>,
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ItemKind {
    Use(UseItem),
    Dim(DimItem),
    Let(LetItem),
    Data(DataItem),
    Modality(ModalityItem),
    Tokenizer(TokenizerItem),
    Fn(FnItem),
    Module(ModuleItem),
    Model(ModelItem),
    Loss(ObjectiveItem),
    Metric(ObjectiveItem),
    Train(ConfigBlock),
    Parallel(ConfigBlock),
}

impl ItemKind {
    /// The keyword that introduces this kind of item, for messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            ItemKind::Use(_) => "use",
            ItemKind::Dim(_) => "dim",
            ItemKind::Let(_) => "let",
            ItemKind::Data(_) => "data",
            ItemKind::Modality(_) => "modality",
            ItemKind::Tokenizer(_) => "tokenizer",
            ItemKind::Fn(_) => "fn",
            ItemKind::Module(_) => "module",
            ItemKind::Model(_) => "model",
            ItemKind::Loss(_) => "loss",
            ItemKind::Metric(_) => "metric",
            ItemKind::Train(_) => "train",
            ItemKind::Parallel(_) => "parallel",
        }
    }

    /// The name this item defines in its file's namespace, if any.
    pub fn defined_name(&self) -> Option<&Ident> {
        match self {
            ItemKind::Dim(d) => Some(&d.name),
            ItemKind::Let(l) => Some(&l.name),
            ItemKind::Data(d) => Some(&d.name),
            ItemKind::Modality(m) => Some(&m.name),
            ItemKind::Tokenizer(t) => Some(&t.name),
            ItemKind::Fn(f) => Some(&f.name),
            ItemKind::Module(m) => Some(&m.name),
            ItemKind::Model(m) => Some(&m.name),
            ItemKind::Loss(o) | ItemKind::Metric(o) => o.label.as_ref(),
            ItemKind::Use(_) | ItemKind::Train(_) | ItemKind::Parallel(_) => None,
        }
    }
}

/// `use std::nn::{Linear, Transformer as Tx}`, `use std::nn`, `use blocks::Encoder`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UseItem {
    pub path: Vec<Ident>,
    pub imports: UseImports,
}

impl UseItem {
    /// The names this `use` binds in the importing file.
    pub fn locals(&self) -> Vec<&Ident> {
        match &self.imports {
            UseImports::Group(names) => names.iter().map(UseName::local).collect(),
            UseImports::Single { alias } => alias.iter().chain(self.path.last()).take(1).collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum UseImports {
    /// `use a::b` or `use a::b as c`: the last segment names a module file,
    /// or an item of the module named by the segments before it.
    Single { alias: Option<Ident> },
    /// `use a::b::{x, y as z}`: items of the module `a::b`.
    Group(Vec<UseName>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UseName {
    pub name: Ident,
    pub alias: Option<Ident>,
}

impl UseName {
    /// The name the import binds in the importing file.
    pub fn local(&self) -> &Ident {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

/// `dim T = 2s`, `dim N`, `dim N per session`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DimItem {
    pub name: Ident,
    pub value: Option<Expr>,
    /// Where `per session` was written, when the dim is bound per session.
    pub per_session: Option<Span>,
}

/// `let name: type = value` at the top level.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LetItem {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub value: Expr,
}

/// `data name = source(...) { settings }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataItem {
    pub name: Ident,
    pub source: Expr,
    pub config: Option<ConfigBlock>,
}

/// `modality name: kind<dtype>[dims] from source | transform | ...`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModalityItem {
    pub name: Ident,
    pub ty: TypeExpr,
    pub source: Expr,
    pub transforms: Vec<Expr>,
    pub config: Option<ConfigBlock>,
}

/// `tokenizer name = tokenizer_module(...)(modality)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenizerItem {
    pub name: Ident,
    pub value: Expr,
}

/// `fn name(params) -> type { body }`: a stateless function.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FnItem {
    pub name: Ident,
    pub params: ParamList,
    pub ret: Option<TypeExpr>,
    pub body: Body,
}

/// `module Name(hyperparameters)(inputs) -> type { body }`: a layer with
/// parameters, instantiated with its hyperparameters and applied to inputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModuleItem {
    pub name: Ident,
    pub hyper: ParamList,
    pub inputs: ParamList,
    pub ret: Option<TypeExpr>,
    pub body: Body,
}

/// `model name(params) { ... predict x = ... }`: the experiment's network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelItem {
    pub name: Ident,
    pub params: Option<ParamList>,
    pub body: Body,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ParamList {
    pub params: Vec<Param>,
    pub span: Span,
}

/// One declared parameter: `name: type = default`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Param {
    pub docs: Vec<Doc>,
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub default: Option<Expr>,
    pub span: Span,
}

/// `loss label = expr { settings }` or `metric expr`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectiveItem {
    pub label: Option<Ident>,
    pub value: Expr,
    pub config: Option<ConfigBlock>,
}

/// `{ key: value, dims -> axes, key { ... } }` in train, parallel, data and
/// objective items. Keys are checked against a schema by a later stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConfigBlock {
    pub entries: Vec<ConfigEntry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigEntry {
    pub docs: Vec<Doc>,
    pub kind: EntryKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum EntryKind {
    /// `key: value`
    Setting { key: Ident, value: Expr },
    /// `heads, ffn -> gpu` or `batch -> (node, gpu)`
    Mapping { keys: Vec<Ident>, target: Expr },
    /// `mesh { node: 8, gpu: 8 }`
    Block { key: Ident, block: ConfigBlock },
}

/// `{ statements }` of a fn, module or model.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Body {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum StmtKind {
    Let {
        name: Ident,
        ty: Option<TypeExpr>,
        value: Expr,
    },
    Param {
        docs: Vec<Doc>,
        name: Ident,
        ty: TypeExpr,
        init: Option<Expr>,
    },
    Predict {
        name: Ident,
        ty: Option<TypeExpr>,
        value: Expr,
    },
    Return(Expr),
    If(IfStmt),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IfStmt {
    pub cond: Expr,
    pub then: Body,
    pub els: Option<Else>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Else {
    If(Box<IfStmt>),
    Body(Body),
}

/// A type: `f32[T @ 30Hz, N]`, `video<f32>[T, 1, H, W]`, `[..., d]`, `dim`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TypeKind {
    /// A bare shape, its dtype left to inference: `[..., d]`.
    Shape(Shape),
    /// A named type with optional generic arguments and shape.
    Named {
        name: Ident,
        args: Vec<TypeExpr>,
        shape: Option<Shape>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Shape {
    pub dims: Vec<ShapeDim>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShapeDim {
    pub kind: ShapeDimKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ShapeDimKind {
    /// `...`: any number of leading dims.
    Ellipsis,
    /// A size expression with an optional sampling rate: `T @ 30Hz`.
    Dim { size: Expr, rate: Option<Expr> },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    Number(Number),
    Str(String),
    Bool(bool),
    /// `x`, `nn::Linear`: a name, possibly qualified by a module alias.
    Path(Vec<Ident>),
    /// `(e)`: kept so that the formatter prints the parentheses written.
    Paren(Box<Expr>),
    /// `()`, `(a, b)`, `(a,)`.
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
    },
    Index {
        base: Box<Expr>,
        items: Vec<IndexItem>,
    },
    Field {
        base: Box<Expr>,
        name: Ident,
    },
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        els: Box<Expr>,
    },
}

/// A numeric literal as written, with its value and unit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Number {
    /// The digits as written (underscores and exponent kept), without the unit.
    pub text: String,
    pub value: f64,
    /// True when written without a fraction or exponent.
    pub is_int: bool,
    pub unit: Option<Unit>,
}

/// Units a number may carry: time, frequency and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Unit {
    Us,
    Ms,
    S,
    Min,
    Hz,
    KHz,
    B,
    KB,
    MB,
    GB,
    TB,
    KiB,
    MiB,
    GiB,
    TiB,
}

impl Unit {
    pub const ALL: [Unit; 15] = [
        Unit::Us,
        Unit::Ms,
        Unit::S,
        Unit::Min,
        Unit::Hz,
        Unit::KHz,
        Unit::B,
        Unit::KB,
        Unit::MB,
        Unit::GB,
        Unit::TB,
        Unit::KiB,
        Unit::MiB,
        Unit::GiB,
        Unit::TiB,
    ];

    /// The unit's spelling in source.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Us => "us",
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::Min => "min",
            Unit::Hz => "Hz",
            Unit::KHz => "kHz",
            Unit::B => "B",
            Unit::KB => "KB",
            Unit::MB => "MB",
            Unit::GB => "GB",
            Unit::TB => "TB",
            Unit::KiB => "KiB",
            Unit::MiB => "MiB",
            Unit::GiB => "GiB",
            Unit::TiB => "TiB",
        }
    }

    pub fn parse(s: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arg {
    /// The name of a named argument (`lr: 3e-4`).
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

/// One item inside `x[...]`: a position, a slice, or a dim rewrite.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IndexItem {
    /// The dim named by `t: 0..16`.
    pub dim: Option<Ident>,
    pub kind: IndexKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum IndexKind {
    /// `x[i]`, `h[nt]`, `concat[seq]`.
    Expr(Expr),
    /// `a..b`, `..b`, `a..`, `..`.
    Range {
        start: Option<Expr>,
        end: Option<Expr>,
    },
    /// `d -> (heads, head_dim)`.
    Arrow { from: Expr, to: Expr },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

impl BinaryOp {
    /// Binding power: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 5,
            BinaryOp::Pow => 6,
        }
    }

    /// `**` groups to the right (`a ** b ** c` is `a ** (b ** c)`).
    pub fn right_assoc(self) -> bool {
        self == BinaryOp::Pow
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Pow => "**",
        }
    }
}

impl UnaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Not => "not ",
        }
    }
}
