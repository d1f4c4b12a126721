//! Compile-time values: what a `dim`, a `let`, a setting or a
//! hyperparameter evaluates to before anything runs.
//!
//! One enum for every stage: the checker's constant evaluator produces
//! these, the elaborator wraps them (beside tensors, modules and other
//! values only elaboration has), and the IR keeps them where a value is
//! part of the experiment (a module's hyperparameters).

use std::fmt;

use super::quantity::Quantity;
use super::size::Size;

/// A compile-time value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A whole number or a dimension size, possibly depending on dims bound
    /// by data.
    Size(Size),
    /// A number with a fraction and no unit.
    Float(f64),
    /// A number with a unit other than a plain count: a duration, a rate,
    /// a size in bytes.
    Quantity(Quantity),
    Bool(bool),
    Str(String),
    /// A builtin symbol or dtype (`val`, `bf16`).
    Symbol(String),
    /// A list or tuple of values (`[2, 16, 16]`, `(0.9, 0.95)`).
    List(Vec<Value>),
    /// Not known at compile time.
    Opaque,
}

impl Value {
    /// How the value reads in a message: `60`, `2 s`, `a string`.
    pub fn describe(&self) -> String {
        match self {
            Value::Size(s) if s.as_const().is_none() => {
                format!("a size bound by the data (`{s}`)")
            }
            Value::Size(s) => format!("`{s}`"),
            Value::Float(f) => format!("`{}`", super::quantity::short(*f)),
            Value::Quantity(q) => format!("`{q}` ({})", q.dim.describe()),
            Value::Bool(_) => "a boolean".to_string(),
            Value::Str(_) => "a string".to_string(),
            Value::Symbol(s) => format!("the symbol `{s}`"),
            Value::List(items) => format!("a list of {}", items.len()),
            Value::Opaque => "a value known only at run time".to_string(),
        }
    }

    /// As a quantity, when it is a number.
    pub fn quantity(&self) -> Option<Quantity> {
        match self {
            Value::Size(s) => s.as_const().map(|c| Quantity::count(c as f64)),
            Value::Float(f) => Some(Quantity::count(*f)),
            Value::Quantity(q) => Some(*q),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// The value as it would be written: `60`, `0.00001` (the shortest
    /// form that reads back exactly), `2 s`, a string without its quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Size(s) => write!(f, "{s}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Quantity(q) => write!(f, "{q}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) | Value::Symbol(s) => f.write_str(s),
            Value::List(items) => {
                let parts: Vec<String> = items.iter().map(Value::to_string).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            Value::Opaque => f.write_str("?"),
        }
    }
}
