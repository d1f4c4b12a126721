//! The modalities of a spec: kind, dims, origin, `select` conditions and
//! compiled transforms.
//!
//! The dims come from the declared type, with the sizes the checker put in
//! the IR (which include the data-bound dims it could bind from headers).
//! `select(D, where: cond)` stages are taken out of the pipeline and kept
//! as [`Cond`] trees over data items, since they read other data; the
//! remaining stages compile into transforms (`transform.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::{dotted, quantity, rate, whole, Problem};
use crate::ir::data::{CompareOp, Cond, DimSpec, ModalitySpec, Origin, Select, SourceSpec};
use crate::ir::types::quantity::Dimension;
use crate::ir::types::Value;
use crate::ir::{Graph, ModalityKind};
use crate::resolve::Program;
use crate::syntax::ast::{
    BinaryOp, Expr, ExprKind, IndexKind, ModalityItem, ShapeDimKind, TypeKind, UnaryOp,
};

/// A data item in a `where:` condition: its index, the field read (a
/// suite2p folder's `iscell`), and the index written after it.
type DataRef = (usize, Vec<String>, Vec<Option<usize>>);

/// What the modalities are read against.
pub(super) struct Context<'a> {
    pub program: &'a Program,
    pub graph: &'a Graph,
    pub sources: &'a [SourceSpec],
    pub modalities: &'a BTreeMap<&'a str, usize>,
    pub per_session: &'a BTreeSet<String>,
    pub time_dims: &'a BTreeSet<String>,
}

impl Context<'_> {
    pub fn modality(&self, m: &ModalityItem) -> Result<ModalitySpec, Problem> {
        let TypeKind::Named { name, shape, .. } = &m.ty.kind else {
            return Err(Problem::new("a modality's type is `kind<dtype>[dims]`"));
        };
        let kind = ModalityKind::parse(&name.name).ok_or_else(|| {
            Problem::new(format!("unknown modality kind `{}`", name.name)).at(name.span)
        })?;
        let input = self.graph.inputs.iter().position(|i| i.name == m.name.name);
        let mut dims = Vec::new();
        for (k, sd) in shape.iter().flat_map(|s| &s.dims).enumerate() {
            let ShapeDimKind::Dim { size, rate: r } = &sd.kind else {
                return Err(Problem::new("a modality's shape cannot hold `...`"));
            };
            let name = match &size.kind {
                ExprKind::Path(p) if p.len() == 1 => p[0].name.clone(),
                ExprKind::Number(n) => n.text.clone(),
                _ => format!("dim {k}"),
            };
            let rate = r.as_ref().and_then(|r| rate(self.program, r));
            let time = rate.is_some() || self.time_dims.contains(&name);
            // The IR has the checker's sizes, with the dims it could bind
            // from the data's headers; its dims are these after `batch`.
            let ir = input.and_then(|i| self.graph.inputs[i].ty.dims.get(k + 1));
            let size = match ir {
                Some(d) => d.size.as_ref().and_then(|s| s.as_const()),
                None => match super::super::constant(self.program, size) {
                    Value::Size(s) => s.as_const(),
                    Value::Quantity(q) => rate.map(|r| (q.value * r).round() as i64),
                    _ => None,
                },
            }
            .and_then(|s| usize::try_from(s).ok());
            dims.push(DimSpec {
                per_session: self.per_session.contains(&name),
                name,
                size,
                rate,
                time,
            });
        }
        let rate = dims.iter().find_map(|d| d.rate);
        if matches!(kind, ModalityKind::Video | ModalityKind::Series) && rate.is_none() {
            return Err(Problem::new(
                "a video or series needs a sampled time dim such as `T @ 30Hz`",
            )
            .at(m.ty.span));
        }
        let origin = self.origin(&m.source).map_err(|p| p.at(m.source.span))?;
        let mut select = Vec::new();
        let mut stages = Vec::new();
        for t in &m.transforms {
            match t {
                Expr {
                    kind: ExprKind::Call { callee, args },
                    ..
                } if dotted(callee).as_deref() == Some(&["select".to_string()]) => {
                    select.push(self.select(args, &dims).map_err(|p| p.at(t.span))?);
                }
                _ => stages.push(t),
            }
        }
        let transforms = stages
            .iter()
            .map(|t| super::transform::compile(self.program, t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModalitySpec {
            name: m.name.name.clone(),
            kind,
            input,
            dims,
            rate,
            origin,
            select,
            transforms,
        })
    }

    fn origin(&self, e: &Expr) -> Result<Origin, Problem> {
        let names = dotted(e).unwrap_or_default();
        let Some((first, field)) = names.split_first() else {
            return Err(Problem::new(
                "`from` names a data item's field (`v1.video`) or another modality",
            ));
        };
        if let Some(source) = self.sources.iter().position(|s| &s.name == first) {
            return Ok(Origin::Source {
                source,
                field: field.to_vec(),
            });
        }
        match self.modalities.get(first.as_str()) {
            Some(&m) if field.is_empty() => Ok(Origin::Modality(m)),
            _ => Err(Problem::new(format!(
                "`from {}` names neither a data item nor a modality",
                names.join(".")
            ))),
        }
    }

    /// `select(N, where: cond)`.
    fn select(
        &self,
        args: &[crate::syntax::ast::Arg],
        dims: &[DimSpec],
    ) -> Result<Select, Problem> {
        let usage = "`select` is written `select(N, where: item[.., 0] > 0.5)`";
        let dim = match args
            .iter()
            .find(|a| a.name.is_none())
            .map(|a| &a.value.kind)
        {
            Some(ExprKind::Path(p)) if p.len() == 1 => p[0].name.clone(),
            _ => return Err(Problem::new(usage)),
        };
        if !dims.iter().any(|d| d.name == dim && !d.time) {
            return Err(Problem::new(format!(
                "`select({dim}, ...)` names a dim the modality does not have (or its time)"
            )));
        }
        let cond = args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "where"))
            .ok_or_else(|| Problem::new(usage))?;
        Ok(Select {
            dim,
            cond: self.cond(&cond.value)?,
        })
    }

    fn cond(&self, e: &Expr) -> Result<Cond, Problem> {
        match &e.kind {
            ExprKind::Paren(inner) => self.cond(inner),
            ExprKind::Unary {
                op: UnaryOp::Not,
                operand,
            } => Ok(Cond::Not(Box::new(self.cond(operand)?))),
            ExprKind::Binary { op, lhs, rhs } => {
                let cmp = |op| match op {
                    BinaryOp::Lt => Some(CompareOp::Lt),
                    BinaryOp::Le => Some(CompareOp::Le),
                    BinaryOp::Gt => Some(CompareOp::Gt),
                    BinaryOp::Ge => Some(CompareOp::Ge),
                    BinaryOp::Eq => Some(CompareOp::Eq),
                    BinaryOp::Ne => Some(CompareOp::Ne),
                    _ => None,
                };
                match op {
                    BinaryOp::And => Ok(Cond::And(
                        Box::new(self.cond(lhs)?),
                        Box::new(self.cond(rhs)?),
                    )),
                    BinaryOp::Or => Ok(Cond::Or(
                        Box::new(self.cond(lhs)?),
                        Box::new(self.cond(rhs)?),
                    )),
                    _ => {
                        let op = cmp(*op).ok_or_else(|| self.cond_error())?;
                        // The constant may be on either side.
                        if let Ok((source, field, index)) = self.data_ref(lhs) {
                            let value = self.number(rhs)?;
                            Ok(Cond::Compare {
                                source,
                                field,
                                index,
                                op,
                                value,
                            })
                        } else {
                            let (source, field, index) = self.data_ref(rhs)?;
                            let value = self.number(lhs)?;
                            let op = match op {
                                CompareOp::Lt => CompareOp::Gt,
                                CompareOp::Le => CompareOp::Ge,
                                CompareOp::Gt => CompareOp::Lt,
                                CompareOp::Ge => CompareOp::Le,
                                same => same,
                            };
                            Ok(Cond::Compare {
                                source,
                                field,
                                index,
                                op,
                                value,
                            })
                        }
                    }
                }
            }
            // A data reference alone holds where it is not zero.
            _ => {
                let (source, field, index) = self.data_ref(e)?;
                Ok(Cond::Compare {
                    source,
                    field,
                    index,
                    op: CompareOp::Ne,
                    value: 0.0,
                })
            }
        }
    }

    fn cond_error(&self) -> Problem {
        Problem::new(
            "a `where:` condition compares a data item with numbers (`iscell[.., 0] > 0.5`), combined with `and`, `or` and `not`",
        )
    }

    fn number(&self, e: &Expr) -> Result<f64, Problem> {
        match quantity(self.program, e) {
            Some((v, d)) if d == Dimension::COUNT => Ok(v),
            _ => Err(self.cond_error()),
        }
    }

    /// `iscell[.., 0]` or `mask`: a data item and its index.
    fn data_ref(&self, e: &Expr) -> Result<DataRef, Problem> {
        let (base, items) = match &e.kind {
            ExprKind::Index { base, items } => (base.as_ref(), items.as_slice()),
            _ => (e, &[][..]),
        };
        let (name, field) = match dotted(base).as_deref() {
            Some([n, field @ ..]) => (n.clone(), field.to_vec()),
            _ => return Err(self.cond_error()),
        };
        let source = self
            .sources
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| self.cond_error())?;
        let index = items
            .iter()
            .map(|i| match &i.kind {
                IndexKind::Range {
                    start: None,
                    end: None,
                } => Ok(None),
                IndexKind::Expr(e) => whole(self.program, e).map(Some).ok_or_else(|| {
                    Problem::new("an index in a `where:` condition is `..` or a position")
                }),
                _ => Err(Problem::new(
                    "an index in a `where:` condition is `..` or a position",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((source, field, index))
    }
}
