//! Lowers pest's parse tree into the typed AST.
//!
//! This is the only module that sees pest types. Each method of [`Lower`]
//! takes the pair of one grammar rule and returns the AST node for it,
//! carrying the pair's exact byte span. Items, statements, types and
//! settings are lowered here; expressions in `expr.rs`; helpers over pairs
//! (spans, identifiers, placeholders) in `pairs.rs`. Grammar errors become
//! diagnostics in `../errors.rs`; errors found while lowering (an operator
//! chain too deep to fold, a number too large) are collected in `Lower`.

mod expr;
mod pairs;

use pest::iterators::Pair;
use pest::Parser as _;

use super::ast::*;
use crate::base::FileId;
use crate::base::Span;
use crate::diagnostics::{Code, Diagnostic};
use pairs::{children, ident, missing_expr, missing_ident, missing_type, span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/enigma.pest"]
pub(crate) struct EnigmaParser;

/// The deepest expression tree accepted. Brackets are limited by the
/// pre-scan; this bounds chains of binary operators, which the grammar reads
/// as flat sequences but which fold into trees as deep as the chain is long.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Why the grammar rejected a whole text: the diagnostic for the place
/// where pest stopped, and that place as a byte offset.
pub struct Failure {
    pub diag: Diagnostic,
    pub pos: usize,
}

/// Parses and lowers a whole file. `text` has passed the pre-scan.
///
/// On success, returns the AST with the problems lowering found (a number
/// out of range, an operator chain too deep), which leave the tree whole
/// but still make the file invalid. On a syntax error, returns where the
/// grammar stopped; the caller decides whether to recover.
pub fn parse_file(text: &str, file: FileId) -> Result<(File, Vec<Diagnostic>), Failure> {
    let mut pairs = EnigmaParser::parse(Rule::file, text).map_err(|e| Failure {
        pos: super::errors::position(&e),
        diag: explain(text, &e, text, 0, file),
    })?;
    let mut lower = Lower {
        file,
        diags: Vec::new(),
    };
    let Some(root) = pairs.next() else {
        return Err(Failure {
            diag: Diagnostic::new(Code::E0001, "empty parse"),
            pos: 0,
        });
    };
    let ast = lower.file(root);
    Ok((ast, lower.diags))
}

/// Runs the grammar over `text[range]` alone, as if it were a file of its
/// own, and returns its syntax error placed in the whole `text`, or `None`
/// when it parses. Error recovery calls this for each top-level item.
pub fn check_chunk(text: &str, range: std::ops::Range<usize>, file: FileId) -> Option<Diagnostic> {
    let Some(chunk) = text.get(range.clone()) else {
        // Chunks are cut at line starts, which are always character
        // boundaries; should that ever fail, the chunk is reported broken
        // rather than skipped.
        return Some(
            Diagnostic::new(Code::E0001, "this item could not be read").primary(
                file,
                Span::new(range.start, range.end),
                "here",
            ),
        );
    };
    let err = EnigmaParser::parse(Rule::file, chunk).err()?;
    Some(explain(chunk, &err, text, range.start, file))
}

/// The diagnostic for a failed parse of `input`, which starts at byte `base`
/// of the whole `text`.
fn explain(
    input: &str,
    err: &pest::error::Error<Rule>,
    text: &str,
    base: usize,
    file: FileId,
) -> Diagnostic {
    // Tracking which literal tokens were expected slows every parse, so it
    // is switched on only to explain a failure, by parsing again.
    pest::set_error_detail(true);
    let detailed = EnigmaParser::parse(Rule::file, input).err();
    pest::set_error_detail(false);
    super::errors::from_pest(detailed.as_ref().unwrap_or(err), text, base, file)
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
                Rule::inner_doc => docs.push(pairs::doc(&p, "//!")),
                Rule::item => items.push(self.item(p)),
                _ => {}
            }
        }
        File {
            docs,
            items,
            span: sp,
            broken: Vec::new(),
        }
    }

    fn item(&mut self, pair: Pair<Rule>) -> Item {
        let mut docs = Vec::new();
        let mut kind = None;
        let mut sp = span(&pair);
        for p in children(pair) {
            if p.as_rule() == Rule::doc_comment {
                docs.push(pairs::doc(&p, "///"));
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
                    let (ret, body) = self.signature_end(&mut it);
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
                    let (ret, body) = self.signature_end(&mut it);
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
                Rule::doc_comment => docs.push(pairs::doc(&p, "///")),
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

    /// The optional `-> type` and the body that end a fn or module.
    fn signature_end<'i>(
        &mut self,
        it: &mut std::iter::Peekable<impl Iterator<Item = Pair<'i, Rule>>>,
    ) -> (Option<TypeExpr>, Body) {
        let ret = it
            .next_if(|p| p.as_rule() == Rule::return_type)
            .map(|p| self.return_type(p));
        (ret, self.body_or_default(it.next()))
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
                docs.push(pairs::doc(&p, "///"));
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
                        Rule::doc_comment => docs.push(pairs::doc(&p, "///")),
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
}
