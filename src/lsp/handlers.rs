//! One function per request: find the analysis that holds the document,
//! convert the position to a byte offset, ask [`crate::ide`], convert the
//! answer back. Nothing here decides anything about the language.

use std::collections::HashMap;

use lsp_server::{Request, Response};
use lsp_types as lsp;
use lsp_types::Request as _;

use super::convert::{path_to_uri, uri_to_path, LineIndex};
use super::{error, params, Server};
use crate::base::{FileId, Span};
use crate::diagnostics::Severity;
use crate::ide::complete::{self, ItemKind};
use crate::ide::tokens::TokenKind;
use crate::ide::{fixes, hover, navigate, tokens, Analysis, DefKind, Target};

/// The semantic token modifiers, in the order of the legend's bits.
pub const TOKEN_MODIFIERS: &[&str] = &["declaration", "defaultLibrary", "documentation"];

/// Answers one request.
pub fn request(s: &Server, req: Request) -> Response {
    let method = req.method.clone();
    let m = method.as_str();
    let result = if m == lsp::HoverRequest::METHOD.as_str() {
        on::<lsp::HoverRequest>(s, req, |s, p| {
            let at = p.text_document_position_params;
            with_offset(s, &at, |a, file, offset| {
                let h = hover::hover(a, file, offset)?;
                let ix = LineIndex::new(a.text(file));
                Some(lsp::Hover {
                    contents: lsp::Contents::MarkupContent(markdown(h.markdown)),
                    range: Some(ix.range(h.span)),
                })
            })
        })
    } else if m == lsp::CompletionRequest::METHOD.as_str() {
        on::<lsp::CompletionRequest>(s, req, |s, p| {
            let at = p.text_document_position_params;
            with_offset(s, &at, |a, file, offset| {
                let ix = LineIndex::new(a.text(file));
                let items = complete::complete(a, file, offset)
                    .into_iter()
                    .map(|c| completion_item(&ix, c))
                    .collect();
                Some(lsp::CompletionResponse::CompletionItemList(items))
            })
        })
    } else if m == lsp::SignatureHelpRequest::METHOD.as_str() {
        on::<lsp::SignatureHelpRequest>(s, req, |s, p| {
            let at = p.text_document_position_params;
            with_offset(s, &at, |a, file, offset| {
                let h = complete::signature_help(a, file, offset)?;
                Some(signature_help(h))
            })
        })
    } else if m == lsp::DefinitionRequest::METHOD.as_str() {
        on::<lsp::DefinitionRequest>(s, req, |s, p| {
            let at = p.text_document_position_params;
            with_offset(s, &at, |a, file, offset| {
                let (f, span) = navigate::definition(a, file, offset)?;
                let loc = location(a, f, span)?;
                Some(lsp::DefinitionResponse::Definition(
                    lsp::Definition::Location(loc),
                ))
            })
        })
    } else if m == lsp::ReferencesRequest::METHOD.as_str() {
        on::<lsp::ReferencesRequest>(s, req, |s, p| {
            let with_decl = p.context.include_declaration;
            let at = p.text_document_position_params;
            with_offset(s, &at, |a, file, offset| {
                let mut out: Vec<lsp::Location> = navigate::references(a, file, offset, with_decl)
                    .into_iter()
                    .filter_map(|(f, span)| location(a, f, span))
                    .collect();
                out.extend(elsewhere(s, a, file, offset, None));
                dedup(&mut out);
                Some(out)
            })
        })
    } else if m == lsp::PrepareRenameRequest::METHOD.as_str() {
        return prepare_rename(s, req);
    } else if m == lsp::RenameRequest::METHOD.as_str() {
        return rename(s, req);
    } else if m == lsp::DocumentFormattingRequest::METHOD.as_str() {
        on::<lsp::DocumentFormattingRequest>(s, req, |s, p| {
            let path = uri_to_path(&p.text_document.uri)?;
            let (a, file) = s.analysis_for(&path)?;
            let text = a.text(file);
            // A file with syntax errors is left as it is (as `enigma fmt`
            // leaves it); the diagnostics already say why.
            let formatted = crate::fmt::format(text, file).ok()?;
            if formatted == text {
                return Some(Vec::new());
            }
            let ix = LineIndex::new(text);
            Some(vec![lsp::TextEdit {
                range: ix.range(Span::new(0, text.len())),
                new_text: formatted,
            }])
        })
    } else if m == lsp::DocumentSymbolRequest::METHOD.as_str() {
        on::<lsp::DocumentSymbolRequest>(s, req, |s, p| {
            let path = uri_to_path(&p.text_document.uri)?;
            let (a, file) = s.analysis_for(&path)?;
            let ix = LineIndex::new(a.text(file));
            let symbols = navigate::symbols(a, file)
                .into_iter()
                .map(|sym| document_symbol(&ix, sym))
                .collect();
            Some(lsp::DocumentSymbolResponse::DocumentSymbolList(symbols))
        })
    } else if m == lsp::CodeActionRequest::METHOD.as_str() {
        on::<lsp::CodeActionRequest>(s, req, |s, p| {
            let path = uri_to_path(&p.text_document.uri)?;
            let (a, file) = s.analysis_for(&path)?;
            let ix = LineIndex::new(a.text(file));
            let range = ix.span(p.range);
            let actions = fixes::quick_fixes(a, file, range)
                .into_iter()
                .map(|f| {
                    let edit = lsp::TextEdit {
                        range: ix.range(f.span),
                        new_text: f.replacement,
                    };
                    let changes = HashMap::from([(p.text_document.uri.clone(), vec![edit])]);
                    lsp::CodeActionResponse::CodeAction(lsp::CodeAction {
                        title: f.title,
                        kind: Some(lsp::CodeActionKind::QuickFix),
                        diagnostics: Some(vec![diagnostic(a, &f.diagnostic, &ix)]),
                        is_preferred: Some(true),
                        edit: Some(lsp::WorkspaceEdit {
                            changes: Some(changes),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                })
                .collect::<Vec<_>>();
            Some(actions)
        })
    } else if m == lsp::InlayHintRequest::METHOD.as_str() {
        on::<lsp::InlayHintRequest>(s, req, |s, p| {
            let path = uri_to_path(&p.text_document.uri)?;
            let (a, file) = s.analysis_for(&path)?;
            let ix = LineIndex::new(a.text(file));
            let hints = tokens::inlay_hints(a, file, ix.span(p.range))
                .into_iter()
                .map(|h| lsp::InlayHint {
                    position: ix.position(h.offset),
                    label: lsp::Label::String(h.label),
                    kind: Some(lsp::InlayHintKind::Type),
                    text_edits: None,
                    tooltip: None,
                    padding_left: Some(false),
                    padding_right: Some(false),
                    data: None,
                })
                .collect::<Vec<_>>();
            Some(hints)
        })
    } else if m == lsp::SemanticTokensRequest::METHOD.as_str() {
        on::<lsp::SemanticTokensRequest>(s, req, |s, p| {
            let path = uri_to_path(&p.text_document.uri)?;
            let (a, file) = s.analysis_for(&path)?;
            Some(lsp::SemanticTokens {
                result_id: None,
                data: semantic_tokens(a, file),
            })
        })
    } else {
        return Response::new_err(
            req.id,
            lsp_server::ErrorCode::MethodNotFound as i32,
            format!("enigma lsp does not answer `{m}`"),
        );
    };
    result
}

/// Decodes a request's parameters, runs `f`, and encodes its answer
/// (`null` when it is `None`).
fn on<R: lsp::Request>(
    s: &Server,
    req: Request,
    f: impl FnOnce(&Server, R::Params) -> R::Result,
) -> Response {
    match params::<R>(req) {
        Ok((id, p)) => Response::new_ok(id, f(s, p)),
        Err(resp) => resp,
    }
}

/// Runs `f` on the analysis, file and byte offset of a position.
fn with_offset<T>(
    s: &Server,
    at: &lsp::TextDocumentPositionParams,
    f: impl FnOnce(&Analysis, FileId, usize) -> Option<T>,
) -> Option<T> {
    let path = uri_to_path(&at.text_document.uri)?;
    let (a, file) = s.analysis_for(&path)?;
    let offset = LineIndex::new(a.text(file)).offset(at.position);
    f(a, file, offset)
}

fn prepare_rename(s: &Server, req: Request) -> Response {
    let (id, p) = match params::<lsp::PrepareRenameRequest>(req) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let at = p.text_document_position_params;
    let answer = with_offset(s, &at, |a, file, offset| {
        let (span, _) = a.target_at(file, offset)?;
        // The same checks as the rename itself, with the current name.
        let current = a.text(file).get(span.range())?.to_string();
        Some(navigate::rename(a, file, offset, &current).map(|_| {
            lsp::PrepareRenameResult::PrepareRenamePlaceholder(lsp::PrepareRenamePlaceholder {
                range: LineIndex::new(a.text(file)).range(span),
                placeholder: current,
            })
        }))
    });
    match answer {
        Some(Ok(r)) => Response::new_ok(id, r),
        Some(Err(e)) => error(id, e.0),
        None => Response::new_ok(id, serde_json::Value::Null),
    }
}

fn rename(s: &Server, req: Request) -> Response {
    let (id, p) = match params::<lsp::RenameRequest>(req) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let at = p.text_document_position_params;
    let answer = with_offset(s, &at, |a, file, offset| {
        Some(
            navigate::rename(a, file, offset, &p.new_name).map(|places| {
                let mut changes: HashMap<lsp::Uri, Vec<lsp::TextEdit>> = HashMap::new();
                let mut locations: Vec<lsp::Location> = places
                    .into_iter()
                    .filter_map(|(f, span)| location(a, f, span))
                    .collect();
                let old = a
                    .target_at(file, offset)
                    .and_then(|(span, _)| a.text(file).get(span.range()).map(str::to_string));
                locations.extend(elsewhere(s, a, file, offset, old.as_deref()));
                dedup(&mut locations);
                for loc in locations {
                    changes.entry(loc.uri).or_default().push(lsp::TextEdit {
                        range: loc.range,
                        new_text: p.new_name.clone(),
                    });
                }
                lsp::WorkspaceEdit {
                    changes: Some(changes),
                    ..Default::default()
                }
            }),
        )
    });
    match answer {
        Some(Ok(edit)) => Response::new_ok(id, edit),
        Some(Err(e)) => error(id, e.0),
        None => error(id, "there is no name here to rename".to_string()),
    }
}

/// The uses of the definition at `offset` found by the other open
/// documents' analyses: a file's importers are open documents whose
/// programs load it, which its own analysis does not see. With `spelt`,
/// only uses written that way outside the standard library (a rename).
fn elsewhere(
    s: &Server,
    a: &Analysis,
    file: FileId,
    offset: usize,
    spelt: Option<&str>,
) -> Vec<lsp::Location> {
    let Some((_, Target::Def(site))) = a.target_at(file, offset) else {
        return Vec::new();
    };
    let Some(path) = a.program().sources.get(site.file).path.clone() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for b in s.analyses.values() {
        if std::ptr::eq(a, b) {
            continue;
        }
        let Some(there) = b.file_at(&path) else {
            continue;
        };
        let target = Target::Def(crate::resolve::DefSite {
            file: there,
            span: site.span,
        });
        for (f, span) in navigate::references_to(b, &target) {
            let keep =
                spelt.is_none_or(|old| b.text(f).get(span.range()) == Some(old) && !b.is_stdlib(f));
            if keep {
                out.extend(location(b, f, span));
            }
        }
    }
    out
}

fn dedup(locations: &mut Vec<lsp::Location>) {
    let mut seen = std::collections::HashSet::new();
    locations
        .retain(|l| seen.insert((l.uri.0.clone(), l.range.start.line, l.range.start.character)));
}

fn markdown(value: String) -> lsp::MarkupContent {
    lsp::MarkupContent {
        kind: lsp::MarkupKind::Markdown,
        value,
    }
}

/// The location of a span of a loaded file that lives on disk.
fn location(a: &Analysis, file: FileId, span: Span) -> Option<lsp::Location> {
    let path = a.program().sources.get(file).path.as_ref()?;
    let ix = LineIndex::new(a.text(file));
    Some(lsp::Location {
        uri: path_to_uri(path),
        range: ix.range(span),
    })
}

/// The diagnostics of `file` as the protocol has them: the message as
/// `enigma check` prints it, the code, the severity, and every other label,
/// the help and the notes as related information.
pub fn diagnostics(a: &Analysis, file: FileId) -> Vec<lsp::Diagnostic> {
    let ix = LineIndex::new(a.text(file));
    a.artifacts
        .diagnostics
        .iter()
        .filter(|d| d.primary_label().is_some_and(|l| l.file == file))
        .map(|d| diagnostic(a, d, &ix))
        .collect()
}

fn diagnostic(a: &Analysis, d: &crate::diagnostics::Diagnostic, ix: &LineIndex) -> lsp::Diagnostic {
    let primary = d.primary_label();
    let range = primary.map_or_else(lsp::Range::default, |l| ix.range(l.span));
    let mut related = Vec::new();
    for l in &d.labels {
        if l.message.is_empty() {
            continue;
        }
        if let Some(location) = location(a, l.file, l.span) {
            related.push(lsp::DiagnosticRelatedInformation {
                location,
                message: l.message.clone(),
            });
        }
    }
    if let Some(here) = primary.and_then(|l| location(a, l.file, l.span)) {
        let extra = d.help.iter().map(|h| format!("help: {h}"));
        let notes = d.notes.iter().map(|n| format!("note: {n}"));
        for message in extra.chain(notes) {
            related.push(lsp::DiagnosticRelatedInformation {
                location: here.clone(),
                message,
            });
        }
    }
    lsp::Diagnostic {
        range,
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::Error,
            Severity::Warning => lsp::DiagnosticSeverity::Warning,
        }),
        code: Some(lsp::Code::String(d.code.as_str().to_string())),
        source: Some("enigma".to_string()),
        message: lsp::Message::String(d.message.clone()),
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

fn completion_item(ix: &LineIndex, c: complete::Completion) -> lsp::CompletionItem {
    let kind = match c.kind {
        ItemKind::Keyword => lsp::CompletionItemKind::Keyword,
        ItemKind::Property => lsp::CompletionItemKind::Property,
        ItemKind::EnumMember => lsp::CompletionItemKind::EnumMember,
        ItemKind::Unit => lsp::CompletionItemKind::Unit,
        ItemKind::Function => lsp::CompletionItemKind::Function,
        ItemKind::Module => lsp::CompletionItemKind::Module,
        ItemKind::Variable => lsp::CompletionItemKind::Variable,
        ItemKind::Dim => lsp::CompletionItemKind::TypeParameter,
        ItemKind::Argument => lsp::CompletionItemKind::Field,
    };
    let new_text = c.insert.clone().unwrap_or_else(|| c.label.clone());
    lsp::CompletionItem {
        label: c.label,
        kind: Some(kind),
        detail: (!c.detail.is_empty()).then_some(c.detail),
        documentation: (!c.docs.is_empty())
            .then(|| lsp::Documentation::MarkupContent(markdown(c.docs))),
        text_edit: Some(lsp::CompletionItemTextEdit::TextEdit(lsp::TextEdit {
            range: ix.range(c.replace),
            new_text,
        })),
        ..Default::default()
    }
}

fn signature_help(h: complete::SignatureHelp) -> lsp::SignatureHelp {
    let params = h
        .params
        .into_iter()
        .map(|(label, docs)| lsp::ParameterInformation {
            label: lsp::ParameterInformationLabel::String(label),
            documentation: (!docs.is_empty()).then_some(lsp::Documentation::String(docs)),
        })
        .collect();
    let active = h.active.map(|i| lsp::ActiveParameter::Int(i as u32));
    lsp::SignatureHelp {
        signatures: vec![lsp::SignatureInformation {
            label: h.label,
            documentation: (!h.docs.is_empty())
                .then(|| lsp::Documentation::MarkupContent(markdown(h.docs))),
            parameters: Some(params),
            active_parameter: active,
        }],
        active_signature: Some(0),
        active_parameter: active,
    }
}

// `deprecated` is a field of the struct; it is left unset.
#[allow(deprecated)]
fn document_symbol(ix: &LineIndex, s: navigate::Symbol) -> lsp::DocumentSymbol {
    let kind = match s.kind {
        None => lsp::SymbolKind::Struct,
        Some(DefKind::Dim | DefKind::GenericDim) => lsp::SymbolKind::TypeParameter,
        Some(DefKind::Let) => lsp::SymbolKind::Constant,
        Some(DefKind::Data | DefKind::Modality | DefKind::Tokenizer) => lsp::SymbolKind::Variable,
        Some(DefKind::Fn) => lsp::SymbolKind::Function,
        Some(DefKind::Module | DefKind::Model) => lsp::SymbolKind::Class,
        Some(DefKind::Loss | DefKind::Metric) => lsp::SymbolKind::Event,
        Some(DefKind::Param) => lsp::SymbolKind::TypeParameter,
        Some(DefKind::Local) => lsp::SymbolKind::Variable,
        Some(DefKind::Weight) => lsp::SymbolKind::Field,
        Some(DefKind::Predict) => lsp::SymbolKind::Property,
    };
    let children: Vec<lsp::DocumentSymbol> = s
        .children
        .into_iter()
        .map(|c| document_symbol(ix, c))
        .collect();
    lsp::DocumentSymbol {
        name: s.name,
        detail: Some(s.detail),
        kind,
        tags: None,
        deprecated: None,
        range: ix.range(s.span),
        selection_range: ix.range(s.selection),
        children: (!children.is_empty()).then_some(children),
    }
}

/// The protocol's relative encoding of the tokens; a token spanning lines
/// (a block comment) is split into one token per line, since clients need
/// not support multi-line tokens.
fn semantic_tokens(a: &Analysis, file: FileId) -> Vec<lsp::SemanticToken> {
    let text = a.text(file);
    let ix = LineIndex::new(text);
    let mut out = Vec::new();
    let (mut line, mut col) = (0u32, 0u32);
    for t in tokens::semantic_tokens(a, file) {
        let kind = TokenKind::ALL
            .iter()
            .position(|k| *k == t.kind)
            .unwrap_or(0) as u32;
        let mods = u32::from(t.declaration)
            | (u32::from(t.library) << 1)
            | (u32::from(t.documentation) << 2);
        let mut start = t.span.start as usize;
        let end = t.span.end as usize;
        while start < end {
            let line_end = text[start..end].find('\n').map_or(end, |n| start + n);
            let (p, q) = (ix.position(start), ix.position(line_end));
            if q.character > p.character {
                let delta_line = p.line - line;
                let delta_start = if delta_line == 0 {
                    p.character - col
                } else {
                    p.character
                };
                out.push(lsp::SemanticToken {
                    delta_line,
                    delta_start,
                    length: q.character - p.character,
                    token_type: kind,
                    token_modifiers_bitset: mods,
                });
                line = p.line;
                col = p.character;
            }
            start = line_end + 1;
        }
    }
    out
}
