//! What the baselines predict and from what, read from the experiment's
//! graph the way the runtime reads it: the scored prediction is the first
//! model output named like an input (its target), the mask is the one the
//! first `token_mask` node reports, and the values the model sees are those
//! of the input the masked tokenizer reads.

use crate::diagnostics::{Error, ErrorKind};
use crate::ir::{Graph, ModalityKind, ObjectiveKind, Op, ValueRef};

/// How the experiment's loss scores a prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// `poisson_nll`: `log_rate` when it reads the prediction as a log-rate.
    Poisson { log_rate: bool },
    /// `mse`.
    Mse,
    /// Another loss, or several: the baselines' loss is not comparable.
    Other,
}

/// The masked tokenizer the model is scored behind.
#[derive(Clone, Debug, PartialEq)]
pub struct Masked {
    /// The graph input the tokenizer reads: what the model sees, where
    /// visible.
    pub input: usize,
    /// The share of positions hidden.
    pub ratio: f64,
    /// The dims the mask is drawn over, by name (`T`, `N`, or `N` alone
    /// when whole units are hidden), in the order the draw numbers them.
    pub drawn: Vec<String>,
}

/// What the baselines are fitted and scored on.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// The graph input that is the scored prediction's target.
    pub target: usize,
    /// Its name (`activity`).
    pub name: String,
    /// The target's dims after `batch`: time, then units.
    pub dims: [String; 2],
    pub masked: Option<Masked>,
    pub loss: LossKind,
    /// The stimulus and behaviour inputs (`covariates.rs`): the graph
    /// inputs besides the neural ones whose first dim is the target's time.
    pub covariates: Vec<usize>,
}

impl Setup {
    /// Reads the setup from `g`, or says why the baselines do not apply.
    pub fn of(g: &Graph) -> Result<Setup, Error> {
        let unsupported = |why: String| Error::new(ErrorKind::Unsupported, why);
        let (target, name) = g
            .outputs
            .iter()
            .filter(|o| matches!(o.value, ValueRef::Node(_)))
            .find_map(|o| {
                let i = g.inputs.iter().position(|i| i.name == o.name)?;
                Some((i, o.name.clone()))
            })
            .ok_or_else(|| {
                unsupported(
                    "the baselines predict a modality, but no prediction of the model is named like one"
                        .to_string(),
                )
            })?;
        let dims = names(g, target);
        let [time, units] = dims.as_slice() else {
            return Err(unsupported(format!(
                "the baselines predict a modality of time by units, but `{name}` has dims [{}]",
                dims.join(", ")
            )));
        };
        let dims = [time.clone(), units.clone()];
        let masked = g.nodes.iter().find_map(|n| match n.op {
            Op::TokenMask { of } => Some((of, n)),
            _ => None,
        });
        let masked = match masked {
            None => None,
            Some((of, mask)) => {
                let Op::MaskTokens { ratio, .. } = g.nodes[of].op else {
                    return Err(Error::internal(format!(
                        "token_mask reads node {of}, which is not mask_tokens"
                    )));
                };
                let input = source_input(g, of).ok_or_else(|| {
                    unsupported("the masked tokenizer reads no modality directly".to_string())
                })?;
                if names(g, input) != dims {
                    return Err(unsupported(format!(
                        "the baselines predict `{name}` from the values the masked tokenizer reads, `{}`, which must have the same dims [{}]",
                        g.inputs[input].name,
                        dims.join(", ")
                    )));
                }
                let drawn: Vec<String> = mask
                    .out
                    .dims
                    .iter()
                    .skip(1)
                    .map(|d| d.name.to_string())
                    .collect();
                if drawn.iter().any(|d| !dims.contains(d)) {
                    return Err(unsupported(format!(
                        "the mask is drawn over [{}], not over the dims of `{name}`",
                        drawn.join(", ")
                    )));
                }
                Some(Masked {
                    input,
                    ratio,
                    drawn,
                })
            }
        };
        let losses: Vec<_> = g
            .objectives
            .iter()
            .filter(|o| o.kind == ObjectiveKind::Loss)
            .collect();
        let loss = match losses.as_slice() {
            [o] if o.log_rate => LossKind::Poisson { log_rate: true },
            [o] if o.name.contains("poisson") => LossKind::Poisson { log_rate: false },
            [o] if o.name.contains("mse") => LossKind::Mse,
            _ => LossKind::Other,
        };
        let neural = [Some(target), masked.as_ref().map(|m| m.input)];
        let covariates = (0..g.inputs.len())
            .filter(|i| !neural.contains(&Some(*i)))
            .filter(|&i| {
                matches!(g.inputs[i].kind, ModalityKind::Series | ModalityKind::Video)
                    && names(g, i).first() == Some(&dims[0])
            })
            .collect();
        Ok(Setup {
            target,
            name,
            dims,
            masked,
            loss,
            covariates,
        })
    }

    /// The graph inputs the baselines read.
    pub fn inputs(&self) -> Vec<usize> {
        let mut v = vec![self.target];
        if let Some(m) = &self.masked {
            v.push(m.input);
        }
        v
    }

    /// Whether a unit's own values at other steps are visible: not when
    /// the mask hides whole units.
    pub fn own_values_visible(&self) -> bool {
        self.masked
            .as_ref()
            .is_some_and(|m| m.drawn.contains(&self.dims[0]))
    }
}

/// The names of input `i`'s dims after `batch`.
fn names(g: &Graph, i: usize) -> Vec<String> {
    g.inputs[i]
        .ty
        .dims
        .iter()
        .skip(1)
        .map(|d| d.name.to_string())
        .collect()
}

/// The graph input node `n` is computed from: the first one reached
/// through its inputs, depth first in order, parameters aside.
fn source_input(g: &Graph, n: usize) -> Option<usize> {
    let mut stack = vec![ValueRef::Node(n)];
    let mut seen = vec![false; g.nodes.len()];
    while let Some(v) = stack.pop() {
        match v {
            ValueRef::Input(i) => return Some(i),
            ValueRef::Node(m) => {
                if !std::mem::replace(seen.get_mut(m)?, true) {
                    stack.extend(g.nodes[m].inputs.iter().rev().copied());
                }
            }
            ValueRef::Param(_) => {}
        }
    }
    None
}
