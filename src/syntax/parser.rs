//! Lowers pest's parse tree into the typed AST.
//!
//! This is the only module that sees pest types. Each `lower_*` function
//! takes the pair of one grammar rule and returns the AST node for it,
//! carrying the pair's byte span. Grammar errors are turned into our own
//! diagnostics in `errors.rs`; errors found while lowering (an operator chain
//! too deep to fold, a number too large) are collected here.

use pest::iterators::Pair;
use pest::Parser as _;

use super::ast::*;
use super::span::Span;
use crate::diagnostics::{Code, Diagnostic};
use crate::source::FileId;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/enigma.pest"]
pub(crate) struct EnigmaParser;

/// The deepest expression tree accepted. Brackets are limited by the
/// pre-scan; this bounds chains of binary operators, which the grammar reads
/// as flat sequences but which fold into trees as deep as the chain is long.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Parses a whole file. `text` has passed the pre-scan.
pub fn parse_file(text: &str, file: FileId) -> Result<File, Vec<Diagnostic>> {
    let mut pairs = EnigmaParser::parse(Rule::file, text).map_err(|e| {
        // Tracking which literal tokens were expected slows every parse, so
        // it is switched on only to explain a failure, by parsing again.
        pest::set_error_detail(true);
        let detailed = EnigmaParser::parse(Rule::file, text).err();
        pest::set_error_detail(false);
        vec![super::errors::from_pest(
            detailed.as_ref().unwrap_or(&e),
            text,
            file,
        )]
    })?;
    let mut lower = Lower {
        file,
        diags: Vec::new(),
    };
    let Some(root) = pairs.next() else {
        return Err(vec![Diagnostic::new(Code::E0001, "empty parse")]);
    };
    let ast = lower.file(root);
    if ast.items.is_empty() {
        // Nothing to check is almost always a mistake: the wrong path, a
        // truncated write, a file of comments only.
        lower.diags.push(
            Diagnostic::new(Code::E0008, "source file has no items")
                .primary(
                    file,
                    Span::new(0, text.len().min(1)),
                    "no items in this file",
                )
                .help("an `.enigma` file holds at least one item: `use`, `dim`, `model`, ..."),
        );
    }
    if lower.diags.is_empty() {
        Ok(ast)
    } else {
        Err(lower.diags)
    }
}

/// The exact span of a pair. Pest consumes whitespace and comments between
/// the elements of a rule, and when a rule ends with an optional element
/// that did not match, the skipped trivia stays inside the rule's span. The
/// true end is the last token: the end of the last child, or a literal
/// (such as `}`) written after it.
fn span(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    let (start, end) = (s.start(), s.end());
    let after_children = match pair.clone().into_inner().last() {
        Some(last) => span(&last).end as usize,
        None => start,
    };
    Span::new(start, last_token_end(pair.get_input(), after_children, end))
}

/// The end of the last non-trivia character in `text[from..to]`, or `from`
/// when that range holds only whitespace and comments.
fn last_token_end(text: &str, from: usize, to: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = from;
    let mut i = from;
    while i < to {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < to && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = super::trivia::block_comment_end(bytes, i)
                    .unwrap_or(to)
                    .min(to);
            }
            _ => {
                i += 1;
                end = i;
            }
        }
    }
    end.min(to)
}

/// The children of a pair, without keyword tokens.
fn children(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_use
            | Rule::kw_as
            | Rule::kw_dim
            | Rule::kw_let
            | Rule::kw_data
            | Rule::kw_modality
            | Rule::kw_from
            | Rule::kw_tokenizer
            | Rule::kw_fn
            | Rule::kw_module
            | Rule::kw_model
            | Rule::kw_param
            | Rule::kw_predict
            | Rule::kw_return
            | Rule::kw_loss
            | Rule::kw_metric
            | Rule::kw_train
            | Rule::kw_parallel
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_per
            | Rule::kw_session
            | Rule::EOI
    )
}

struct Lower {
    file: FileId,
    diags: Vec<Diagnostic>,
}

impl Lower {
    fn file(&mut self, pair: Pair<Rule>) -> File {
        let sp = span(&pair);
        let mut docs = Vec::new();
        let mut items = Vec::new();
        for p in children(pair) {
            match p.as_rule() {
                Rule::inner_doc => docs.push(doc(&p, "//!")),
                Rule::item => items.push(self.item(p)),
                _ => {}
            }
        }
        File {
            docs,
            items,
            span: sp,
        }
    }

    fn item(&mut self, pair: Pair<Rule>) -> Item {
        let mut docs = Vec::new();
        let mut kind = None;
        let mut sp = span(&pair);
        for p in children(pair) {
            if p.as_rule() == Rule::doc_comment {
                docs.push(doc(&p, "///"));
                continue;
            }
            // The item's own span starts after its doc comments, so that
            // labels on an item do not underline its documentation.
            sp = span(&p);
            kind = Some(match p.as_rule() {
                Rule::use_item => ItemKind::Use(self.use_item(p)),
                Rule::dim_item => ItemKind::Dim(self.dim_item(p)),
                Rule::let_item => {
                    let (name, ty, value) = self.let_parts(p);
                    ItemKind::Let(LetItem { name, ty, value })
                }
                Rule::data_item => {
                    let mut it = children(p);
                    let name = ident(it.next());
                    let source = self.expr_opt(it.next());
                    let config = it.next().map(|c| self.config_block(c));
                    ItemKind::Data(DataItem {
                        name,
                        source,
                        config,
                    })
                }
                Rule::modality_item => ItemKind::Modality(self.modality_item(p)),
                Rule::tokenizer_item => {
                    let mut it = children(p);
                    let name = ident(it.next());
                    let value = self.expr_opt(it.next());
                    ItemKind::Tokenizer(TokenizerItem { name, value })
                }
                Rule::fn_item => {
                    let mut it = children(p).peekable();
                    let name = ident(it.next());
                    let params = self.param_list_or_default(it.next());
                    let ret = it
                        .next_if(|p| p.as_rule() == Rule::return_type)
                        .map(|p| self.return_type(p));
                    let body = self.body_or_default(it.next());
                    ItemKind::Fn(FnItem {
                        name,
                        params,
                        ret,
                        body,
                    })
                }
                Rule::module_item => {
                    let mut it = children(p).peekable();
                    let name = ident(it.next());
                    let hyper = self.param_list_or_default(it.next());
                    let inputs = self.param_list_or_default(it.next());
                    let ret = it
                        .next_if(|p| p.as_rule() == Rule::return_type)
                        .map(|p| self.return_type(p));
                    let body = self.body_or_default(it.next());
                    ItemKind::Module(ModuleItem {
                        name,
                        hyper,
                        inputs,
                        ret,
                        body,
                    })
                }
                Rule::model_item => {
                    let mut it = children(p).peekable();
                    let name = ident(it.next());
                    let params = it
                        .next_if(|p| p.as_rule() == Rule::param_list)
                        .map(|p| self.param_list(p));
                    let body = self.body_or_default(it.next());
                    ItemKind::Model(ModelItem { name, params, body })
                }
                Rule::loss_item => ItemKind::Loss(self.objective(p)),
                Rule::metric_item => ItemKind::Metric(self.objective(p)),
                Rule::train_item => {
                    ItemKind::Train(self.config_block_or_default(children(p).next()))
                }
                Rule::parallel_item => {
                    ItemKind::Parallel(self.config_block_or_default(children(p).next()))
                }
                _ => continue,
            });
        }
        Item {
            docs,
            // The grammar guarantees one item alternative; an empty `use`
            // stands in only if that invariant were ever broken.
            kind: kind.unwrap_or(ItemKind::Use(UseItem {
                path: Vec::new(),
                imports: UseImports::Single { alias: None },
            })),
            span: sp,
        }
    }

    fn use_item(&mut self, pair: Pair<Rule>) -> UseItem {
        let mut path = Vec::new();
        let mut imports = UseImports::Single { alias: None };
        for p in children(pair) {
            match p.as_rule() {
                Rule::module_path => path = children(p).map(|i| ident(Some(i))).collect(),
                Rule::use_alias => {
                    imports = UseImports::Single {
                        alias: Some(ident(children(p).next())),
                    }
                }
                Rule::use_group => {
                    let names = children(p)
                        .map(|n| {
                            let mut it = children(n);
                            let name = ident(it.next());
                            let alias = it.next().map(|a| ident(children(a).next()));
                            UseName { name, alias }
                        })
                        .collect();
                    imports = UseImports::Group(names);
                }
                _ => {}
            }
        }
        UseItem { path, imports }
    }

    fn dim_item(&mut self, pair: Pair<Rule>) -> DimItem {
        let mut name = None;
        let mut value = None;
        let mut per_session = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(ident(Some(p))),
                Rule::expr => value = Some(self.expr(p)),
                Rule::per_session => per_session = Some(span(&p)),
                _ => {}
            }
        }
        DimItem {
            name: name.unwrap_or_else(missing_ident),
            value,
            per_session,
        }
    }

    /// `let name (: type)? = value`, shared by items and statements.
    fn let_parts(&mut self, pair: Pair<Rule>) -> (Ident, Option<TypeExpr>, Expr) {
        let mut name = None;
        let mut ty = None;
        let mut value = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(ident(Some(p))),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                Rule::expr => value = Some(self.expr(p)),
                _ => {}
            }
        }
        (
            name.unwrap_or_else(missing_ident),
            ty,
            value.unwrap_or_else(missing_expr),
        )
    }

    fn modality_item(&mut self, pair: Pair<Rule>) -> ModalityItem {
        let mut name = None;
        let mut ty = None;
        let mut source = None;
        let mut transforms = Vec::new();
        let mut config = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::ident => name = Some(ident(Some(p))),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                Rule::expr => source = Some(self.expr(p)),
                Rule::transform => transforms.push(self.expr_opt(children(p).next())),
                Rule::config_block => config = Some(self.config_block(p)),
                _ => {}
            }
        }
        ModalityItem {
            name: name.unwrap_or_else(missing_ident),
            ty: ty.unwrap_or_else(|| TypeExpr {
                kind: TypeKind::Shape(Shape {
                    dims: Vec::new(),
                    span: Span::default(),
                }),
                span: Span::default(),
            }),
            source: source.unwrap_or_else(missing_expr),
            transforms,
            config,
        }
    }

    fn objective(&mut self, pair: Pair<Rule>) -> ObjectiveItem {
        let mut label = None;
        let mut value = None;
        let mut config = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::item_label => label = Some(ident(children(p).next())),
                Rule::expr => value = Some(self.expr(p)),
                Rule::config_block => config = Some(self.config_block(p)),
                _ => {}
            }
        }
        ObjectiveItem {
            label,
            value: value.unwrap_or_else(missing_expr),
            config,
        }
    }

    fn param_list_or_default(&mut self, pair: Option<Pair<Rule>>) -> ParamList {
        pair.map(|p| self.param_list(p)).unwrap_or_default()
    }

    fn config_block_or_default(&mut self, pair: Option<Pair<Rule>>) -> ConfigBlock {
        pair.map(|p| self.config_block(p)).unwrap_or_default()
    }

    fn body_or_default(&mut self, pair: Option<Pair<Rule>>) -> Body {
        pair.map(|p| self.body(p)).unwrap_or_default()
    }

    fn param_list(&mut self, pair: Pair<Rule>) -> ParamList {
        let sp = span(&pair);
        let params = children(pair).map(|p| self.param_decl(p)).collect();
        ParamList { params, span: sp }
    }

    fn param_decl(&mut self, pair: Pair<Rule>) -> Param {
        let sp = span(&pair);
        let mut docs = Vec::new();
        let mut name = None;
        let mut ty = None;
        let mut default = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::doc_comment => docs.push(doc(&p, "///")),
                Rule::ident => name = Some(ident(Some(p))),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                Rule::expr => default = Some(self.expr(p)),
                _ => {}
            }
        }
        let name = name.unwrap_or_else(missing_ident);
        // Like items, a parameter's span starts after its doc comments.
        let sp = Span {
            start: name.span.start,
            end: sp.end,
        };
        Param {
            docs,
            name,
            ty,
            default,
            span: sp,
        }
    }

    fn return_type(&mut self, pair: Pair<Rule>) -> TypeExpr {
        match children(pair).next() {
            Some(t) => self.type_expr(t),
            None => missing_type(),
        }
    }

    fn config_block(&mut self, pair: Pair<Rule>) -> ConfigBlock {
        let sp = span(&pair);
        let entries = children(pair).map(|e| self.config_entry(e)).collect();
        ConfigBlock { entries, span: sp }
    }

    fn config_entry(&mut self, pair: Pair<Rule>) -> ConfigEntry {
        let mut docs = Vec::new();
        let mut sp = span(&pair);
        let mut kind = None;
        for p in children(pair) {
            if p.as_rule() == Rule::doc_comment {
                docs.push(doc(&p, "///"));
                continue;
            }
            sp = span(&p);
            kind = Some(match p.as_rule() {
                Rule::setting => {
                    let mut it = children(p);
                    let key = ident(it.next());
                    let value = self.expr_opt(it.next());
                    EntryKind::Setting { key, value }
                }
                Rule::mapping => {
                    let mut keys = Vec::new();
                    let mut target = None;
                    for c in children(p) {
                        match c.as_rule() {
                            Rule::key => keys.push(ident(Some(c))),
                            Rule::expr => target = Some(self.expr(c)),
                            _ => {}
                        }
                    }
                    EntryKind::Mapping {
                        keys,
                        target: target.unwrap_or_else(missing_expr),
                    }
                }
                Rule::config_sub => {
                    let mut it = children(p);
                    let key = ident(it.next());
                    let block = self.config_block_or_default(it.next());
                    EntryKind::Block { key, block }
                }
                _ => continue,
            });
        }
        ConfigEntry {
            docs,
            kind: kind.unwrap_or(EntryKind::Setting {
                key: missing_ident(),
                value: missing_expr(),
            }),
            span: sp,
        }
    }

    fn body(&mut self, pair: Pair<Rule>) -> Body {
        let sp = span(&pair);
        let stmts = children(pair).map(|s| self.stmt(s)).collect();
        Body { stmts, span: sp }
    }

    fn stmt(&mut self, pair: Pair<Rule>) -> Stmt {
        let sp = span(&pair);
        let Some(inner) = children(pair).next() else {
            return Stmt {
                kind: StmtKind::Return(missing_expr()),
                span: sp,
            };
        };
        let kind = match inner.as_rule() {
            Rule::let_stmt => {
                let (name, ty, value) = self.let_parts(inner);
                StmtKind::Let { name, ty, value }
            }
            Rule::param_stmt => {
                let mut docs = Vec::new();
                let mut name = None;
                let mut ty = None;
                let mut init = None;
                for p in children(inner) {
                    match p.as_rule() {
                        Rule::doc_comment => docs.push(doc(&p, "///")),
                        Rule::ident => name = Some(ident(Some(p))),
                        Rule::type_expr => ty = Some(self.type_expr(p)),
                        Rule::expr => init = Some(self.expr(p)),
                        _ => {}
                    }
                }
                StmtKind::Param {
                    docs,
                    name: name.unwrap_or_else(missing_ident),
                    ty: ty.unwrap_or_else(missing_type),
                    init,
                }
            }
            Rule::predict_stmt => {
                let (name, ty, value) = self.let_parts(inner);
                StmtKind::Predict { name, ty, value }
            }
            Rule::return_stmt => StmtKind::Return(self.expr_opt(children(inner).next())),
            Rule::if_stmt => StmtKind::If(self.if_stmt(inner)),
            _ => StmtKind::Return(missing_expr()),
        };
        Stmt { kind, span: sp }
    }

    fn if_stmt(&mut self, pair: Pair<Rule>) -> IfStmt {
        let sp = span(&pair);
        let mut it = children(pair);
        let cond = self.expr_opt(it.next());
        let then = self.body_or_default(it.next());
        let els = it.next().map(|p| match p.as_rule() {
            Rule::if_stmt => Else::If(Box::new(self.if_stmt(p))),
            _ => Else::Body(self.body(p)),
        });
        IfStmt {
            cond,
            then,
            els,
            span: sp,
        }
    }

    fn type_expr(&mut self, pair: Pair<Rule>) -> TypeExpr {
        let sp = span(&pair);
        let mut name = None;
        let mut args = Vec::new();
        let mut shape = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::type_name => name = Some(ident(Some(p))),
                Rule::generic_args => {
                    args = children(p)
                        .map(|i| {
                            let name = ident(Some(i));
                            TypeExpr {
                                span: name.span,
                                kind: TypeKind::Named {
                                    name,
                                    args: Vec::new(),
                                    shape: None,
                                },
                            }
                        })
                        .collect()
                }
                Rule::shape => shape = Some(self.shape(p)),
                _ => {}
            }
        }
        let kind = match (name, shape) {
            (Some(name), shape) => TypeKind::Named { name, args, shape },
            (None, Some(shape)) => TypeKind::Shape(shape),
            (None, None) => TypeKind::Shape(Shape {
                dims: Vec::new(),
                span: sp,
            }),
        };
        TypeExpr { kind, span: sp }
    }

    fn shape(&mut self, pair: Pair<Rule>) -> Shape {
        let sp = span(&pair);
        let dims = children(pair)
            .map(|d| {
                let dsp = span(&d);
                let mut size = None;
                let mut rate = None;
                let mut ellipsis = false;
                for p in children(d) {
                    match p.as_rule() {
                        Rule::ellipsis => ellipsis = true,
                        Rule::expr => size = Some(self.expr(p)),
                        Rule::rate => rate = Some(self.expr_opt(children(p).next())),
                        _ => {}
                    }
                }
                let kind = if ellipsis {
                    ShapeDimKind::Ellipsis
                } else {
                    ShapeDimKind::Dim {
                        size: size.unwrap_or_else(missing_expr),
                        rate,
                    }
                };
                ShapeDim { kind, span: dsp }
            })
            .collect();
        Shape { dims, span: sp }
    }

    fn expr_opt(&mut self, pair: Option<Pair<Rule>>) -> Expr {
        match pair {
            Some(p) => self.expr(p),
            None => missing_expr(),
        }
    }

    /// Folds `unary (op unary)*` by precedence with explicit stacks, so a
    /// long chain costs no recursion; rejects trees deeper than
    /// [`MAX_EXPR_DEPTH`].
    fn expr(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let mut operands: Vec<(Expr, usize)> = Vec::new();
        let mut ops: Vec<BinaryOp> = Vec::new();
        for p in children(pair) {
            match p.as_rule() {
                Rule::unary => {
                    let at = span(&p);
                    let e = self.unary(p);
                    let d = depth_capped(&e, MAX_EXPR_DEPTH);
                    if d > MAX_EXPR_DEPTH {
                        self.too_deep(at);
                        return missing_expr();
                    }
                    operands.push((e, d));
                }
                rule => {
                    let Some(op) = binary_op(rule) else { continue };
                    while let Some(&top) = ops.last() {
                        let reduce = top.precedence() > op.precedence()
                            || (top.precedence() == op.precedence() && !op.right_assoc());
                        if !reduce {
                            break;
                        }
                        ops.pop();
                        if !self.reduce(&mut operands, top, sp) {
                            return missing_expr();
                        }
                    }
                    ops.push(op);
                }
            }
        }
        while let Some(op) = ops.pop() {
            if !self.reduce(&mut operands, op, sp) {
                return missing_expr();
            }
        }
        operands.pop().map(|(e, _)| e).unwrap_or_else(missing_expr)
    }

    fn reduce(&mut self, operands: &mut Vec<(Expr, usize)>, op: BinaryOp, whole: Span) -> bool {
        let (Some((rhs, rd)), Some((lhs, ld))) = (operands.pop(), operands.pop()) else {
            return false;
        };
        let depth = 1 + ld.max(rd);
        if depth > MAX_EXPR_DEPTH {
            self.too_deep(whole);
            return false;
        }
        let sp = lhs.span.to(rhs.span);
        operands.push((
            Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span: sp,
            },
            depth,
        ));
        true
    }

    fn too_deep(&mut self, at: Span) {
        self.diags.push(
            Diagnostic::new(
                Code::E0004,
                format!("expression is nested more than {MAX_EXPR_DEPTH} levels deep"),
            )
            .primary(self.file, at, "this expression")
            .help("name intermediate results with `let` to split the expression"),
        );
    }

    fn unary(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let mut op = None;
        let mut operand = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::op_neg => op = Some(UnaryOp::Neg),
                Rule::op_not => op = Some(UnaryOp::Not),
                Rule::postfix => operand = Some(self.postfix(p)),
                _ => {}
            }
        }
        let operand = operand.unwrap_or_else(missing_expr);
        match op {
            Some(op) => Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(operand),
                },
                span: sp,
            },
            None => operand,
        }
    }

    fn postfix(&mut self, pair: Pair<Rule>) -> Expr {
        let mut it = children(pair);
        let mut e = match it.next() {
            Some(p) => self.primary(p),
            None => missing_expr(),
        };
        for (n, p) in it.enumerate() {
            // A chain such as `x.a.b.c...` builds a tree as deep as it is
            // long; stop before it becomes too deep to walk or drop.
            if n >= MAX_EXPR_DEPTH {
                self.too_deep(e.span);
                return missing_expr();
            }
            let sp = Span {
                start: e.span.start,
                end: span(&p).end,
            };
            let kind = match p.as_rule() {
                Rule::call_args => ExprKind::Call {
                    callee: Box::new(e),
                    args: children(p).map(|a| self.arg(a)).collect(),
                },
                Rule::index_args => ExprKind::Index {
                    base: Box::new(e),
                    items: children(p).map(|i| self.index_item(i)).collect(),
                },
                Rule::field => ExprKind::Field {
                    base: Box::new(e),
                    name: ident(children(p).next()),
                },
                _ => continue,
            };
            e = Expr { kind, span: sp };
        }
        e
    }

    fn arg(&mut self, pair: Pair<Rule>) -> Arg {
        let sp = span(&pair);
        let mut name = None;
        let mut value = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::key => name = Some(ident(Some(p))),
                Rule::expr => value = Some(self.expr(p)),
                _ => {}
            }
        }
        Arg {
            name,
            value: value.unwrap_or_else(missing_expr),
            span: sp,
        }
    }

    fn index_item(&mut self, pair: Pair<Rule>) -> IndexItem {
        let sp = span(&pair);
        let mut dim = None;
        let mut lead = None;
        let mut kind = None;
        for p in children(pair) {
            match p.as_rule() {
                Rule::key => dim = Some(ident(Some(p))),
                Rule::expr => lead = Some(self.expr(p)),
                Rule::range_to => {
                    kind = Some(IndexKind::Range {
                        start: None,
                        end: children(p).next().map(|e| self.expr(e)),
                    })
                }
                Rule::range_from => {
                    kind = Some(IndexKind::Range {
                        start: lead.take(),
                        end: children(p).next().map(|e| self.expr(e)),
                    })
                }
                Rule::arrow_to => {
                    kind = Some(IndexKind::Arrow {
                        from: lead.take().unwrap_or_else(missing_expr),
                        to: self.expr_opt(children(p).next()),
                    })
                }
                _ => {}
            }
        }
        let kind = kind.unwrap_or_else(|| IndexKind::Expr(lead.unwrap_or_else(missing_expr)));
        IndexItem {
            dim,
            kind,
            span: sp,
        }
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let Some(inner) = children(pair).next() else {
            return missing_expr();
        };
        let kind = match inner.as_rule() {
            Rule::number => ExprKind::Number(self.number(inner)),
            Rule::string => ExprKind::Str(unescape(
                children(inner).next().map(|p| p.as_str()).unwrap_or(""),
            )),
            Rule::boolean => ExprKind::Bool(
                inner
                    .into_inner()
                    .next()
                    .is_some_and(|k| k.as_rule() == Rule::kw_true),
            ),
            Rule::path => ExprKind::Path(children(inner).map(|i| ident(Some(i))).collect()),
            Rule::paren => {
                let mut trailing_comma = false;
                let mut items = Vec::new();
                for p in children(inner) {
                    match p.as_rule() {
                        Rule::trailing_comma => trailing_comma = true,
                        _ => items.push(self.expr(p)),
                    }
                }
                if items.len() == 1 && !trailing_comma {
                    ExprKind::Paren(Box::new(items.remove(0)))
                } else {
                    ExprKind::Tuple(items)
                }
            }
            Rule::list => ExprKind::List(children(inner).map(|e| self.expr(e)).collect()),
            Rule::if_expr => return self.if_expr(inner),
            _ => return missing_expr(),
        };
        Expr { kind, span: sp }
    }

    fn if_expr(&mut self, pair: Pair<Rule>) -> Expr {
        let sp = span(&pair);
        let mut it = children(pair);
        let cond = self.expr_opt(it.next());
        let then = self.expr_opt(it.next());
        let els = match it.next() {
            Some(p) if p.as_rule() == Rule::if_expr => self.if_expr(p),
            other => self.expr_opt(other),
        };
        Expr {
            kind: ExprKind::If {
                cond: Box::new(cond),
                then: Box::new(then),
                els: Box::new(els),
            },
            span: sp,
        }
    }

    fn number(&mut self, pair: Pair<Rule>) -> Number {
        let sp = span(&pair);
        let mut text = String::new();
        let mut unit = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::number_value => text = p.as_str().to_string(),
                Rule::unit => unit = Unit::parse(p.as_str()),
                _ => {}
            }
        }
        let digits: String = text.chars().filter(|c| *c != '_').collect();
        let is_int = !digits.contains(['.', 'e', 'E']);
        let value = digits.parse::<f64>().unwrap_or(f64::INFINITY);
        let exact_int = !is_int || digits.parse::<i64>().is_ok();
        if !value.is_finite() || !exact_int {
            self.diags.push(
                Diagnostic::new(Code::E0007, format!("number `{text}` is out of range"))
                    .primary(self.file, sp, "too large to represent")
                    .help(if is_int {
                        "integers must fit in 64 bits (at most 9223372036854775807)"
                    } else {
                        "floating-point numbers must be finite (at most about 1.8e308)"
                    }),
            );
        }
        Number {
            text,
            value,
            is_int,
            unit,
        }
    }
}

fn binary_op(rule: Rule) -> Option<BinaryOp> {
    Some(match rule {
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        Rule::op_div => BinaryOp::Div,
        Rule::op_rem => BinaryOp::Rem,
        Rule::op_pow => BinaryOp::Pow,
        _ => return None,
    })
}

/// The depth of an expression tree, counted no further than `cap + 1` so
/// that measuring never recurses deeper than the limit being enforced.
fn depth_capped(e: &Expr, cap: usize) -> usize {
    if cap == 0 {
        return 1;
    }
    let below = |x: &Expr| depth_capped(x, cap - 1);
    1 + match &e.kind {
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Path(_) => 0,
        ExprKind::Paren(x) => below(x),
        ExprKind::Unary { operand, .. } => below(operand),
        ExprKind::Field { base, .. } => below(base),
        ExprKind::Tuple(xs) | ExprKind::List(xs) => xs.iter().map(below).max().unwrap_or(0),
        ExprKind::Binary { lhs, rhs, .. } => below(lhs).max(below(rhs)),
        ExprKind::If { cond, then, els } => below(cond).max(below(then)).max(below(els)),
        ExprKind::Call { callee, args } => args
            .iter()
            .map(|a| below(&a.value))
            .max()
            .unwrap_or(0)
            .max(below(callee)),
        ExprKind::Index { base, items } => items
            .iter()
            .map(|i| match &i.kind {
                IndexKind::Expr(x) => below(x),
                IndexKind::Range { start, end } => start
                    .as_ref()
                    .map(below)
                    .unwrap_or(0)
                    .max(end.as_ref().map(below).unwrap_or(0)),
                IndexKind::Arrow { from, to } => below(from).max(below(to)),
            })
            .max()
            .unwrap_or(0)
            .max(below(base)),
    }
}

fn doc(pair: &Pair<Rule>, marker: &str) -> Doc {
    let text = pair.as_str();
    let text = text.strip_prefix(marker).unwrap_or(text);
    Doc {
        text: text.trim_end().to_string(),
        span: span(pair),
    }
}

fn ident(pair: Option<Pair<Rule>>) -> Ident {
    match pair {
        Some(p) => Ident {
            name: p.as_str().to_string(),
            span: span(&p),
        },
        None => missing_ident(),
    }
}

/// Placeholders for nodes the grammar guarantees. They are never reached on
/// grammatical input; they exist so that lowering has no panicking paths.
fn missing_ident() -> Ident {
    Ident {
        name: String::new(),
        span: Span::default(),
    }
}

fn missing_expr() -> Expr {
    Expr {
        kind: ExprKind::Tuple(Vec::new()),
        span: Span::default(),
    }
}

fn missing_type() -> TypeExpr {
    TypeExpr {
        kind: TypeKind::Shape(Shape {
            dims: Vec::new(),
            span: Span::default(),
        }),
        span: Span::default(),
    }
}

/// Decodes the escapes `\"`, `\\`, `\n`, `\t`; any other escaped character
/// stands for itself.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
