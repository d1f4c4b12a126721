//! Tensor types: dtypes and named dims with symbolic sizes and rates.
//!
//! A dim has a *name* and a *size*, both [`Size`] polynomials. The name is
//! a polynomial over dim names (`d`, `heads*head_dim`, `T/2`): two dims are
//! the same dim when their names are equal after normalisation, which is
//! what lets the checker align operands by name and catch a `[T, N]` given
//! where `[N, T]` was meant. A dim written as a plain number (`1` in
//! `video<f32>[T @ 30Hz, 1, 144, 256]`, or `ffn: 5632`) is *anonymous*: its
//! name is a constant, and it matches any dim of the same size, taking that
//! dim's name. The size is a polynomial over the dims only data can bind
//! (`N` per session), so shapes stay exact before the data is seen.
//!
//! A dim may carry a sampling rate: `T @ 8Hz` over a 2 s window is 16
//! samples at 8 Hz, and it does not unify with `T @ 30Hz` (60 samples): the
//! user must resample explicitly.

use std::fmt;

use serde::Serialize;

use super::size::{Size, SizeError};
use crate::base::Loc;

/// Element types. `Float` is the model's floating-point type, decided by
/// the `train` block's `precision` (bf16 or f32); a tensor is `Float` until
/// something fixes its dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Float,
    F16,
    BF16,
    F32,
    F64,
    I8,
    I32,
    I64,
    U8,
    Bool,
}

impl DType {
    pub fn parse(name: &str) -> Option<DType> {
        Some(match name {
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            "f32" => DType::F32,
            "f64" => DType::F64,
            "i8" => DType::I8,
            "i32" => DType::I32,
            "i64" => DType::I64,
            "u8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DType::Float => "float",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Float | DType::F16 | DType::BF16 | DType::F32 | DType::F64
        )
    }

    pub fn is_int(self) -> bool {
        matches!(self, DType::I8 | DType::I32 | DType::I64 | DType::U8)
    }

    /// Bytes per element; `Float` counts as `float_bytes` (2 under bf16
    /// training, 4 under f32).
    pub fn bytes(self, float_bytes: u64) -> u64 {
        match self {
            DType::Float => float_bytes,
            DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The dtype of an arithmetic result: floats win over integers, a
    /// concrete float type over the model float.
    pub fn join(self, other: DType) -> DType {
        match (self, other) {
            (a, b) if a == b => a,
            (DType::Float, b) | (b, DType::Float) if b.is_float() => b,
            (a, _) if a.is_float() => a,
            (_, b) if b.is_float() => b,
            (DType::Bool, b) => b,
            (a, _) => a,
        }
    }
}

/// One dim of a tensor.
#[derive(Clone, Debug)]
pub struct Dim {
    /// What the dim is called: a polynomial over dim names; a constant for
    /// an anonymous dim.
    pub name: Size,
    /// How many positions it has; `None` for a duration dim named without
    /// a rate (`T` where `dim T = 2s`), which matches `T` at any rate.
    pub size: Option<Size>,
    /// Samples per second, for dims sampled in time.
    pub rate: Option<f64>,
    /// Where the dim got its size, for explanations.
    pub origin: Option<Loc>,
    /// The name is only a signature's label for an anonymous dim (`H` in
    /// `[..., C, H, W]` bound to a plain 144): it still matches any dim of
    /// its size, like an anonymous one.
    pub soft: bool,
}

impl Dim {
    /// An anonymous dim of a constant size.
    pub fn anon(size: i64, origin: Option<Loc>) -> Dim {
        Dim {
            name: Size::constant(size),
            size: Some(Size::constant(size)),
            rate: None,
            origin,
            soft: false,
        }
    }

    /// A dim called `name` with the given size.
    pub fn named(name: &str, size: Size, origin: Option<Loc>) -> Dim {
        Dim {
            name: Size::symbol(name),
            size: Some(size),
            rate: None,
            origin,
            soft: false,
        }
    }

    pub fn is_anon(&self) -> bool {
        self.name.as_const().is_some()
    }

    /// The size, or the symbolic name of an unsized duration dim.
    pub fn size_or_name(&self) -> Size {
        self.size.clone().unwrap_or_else(|| self.name.clone())
    }

    /// Whether `other` is the same dim: the same name (or one of them
    /// anonymous), the same size where both are known, the same rate
    /// where both have one.
    pub fn matches(&self, other: &Dim) -> Result<(), Mismatch> {
        let wildcard = |d: &Dim| d.is_anon() || d.soft;
        if !(wildcard(self) || wildcard(other) || self.name == other.name) {
            return Err(Mismatch::Name);
        }
        // A rate difference explains a size difference (`T @ 30Hz` has 60
        // samples where `T @ 8Hz` has 16), so it is reported first.
        if let (Some(a), Some(b)) = (self.rate, other.rate) {
            if (a - b).abs() > 1e-9 * a.abs().max(b.abs()) {
                return Err(Mismatch::Rate);
            }
        }
        if let (Some(a), Some(b)) = (&self.size, &other.size) {
            if a != b {
                return Err(Mismatch::Size);
            }
        }
        Ok(())
    }

    /// The dim both `self` and `other` are (after [`Dim::matches`]): the
    /// named one's name, the known size and rate.
    pub fn merge(&self, other: &Dim) -> Dim {
        // A real name wins over a signature's label, which wins over none.
        let rank = |d: &Dim| {
            if d.is_anon() {
                0
            } else if d.soft {
                1
            } else {
                2
            }
        };
        let (named, anon) = if rank(other) > rank(self) {
            (other, self)
        } else {
            (self, other)
        };
        Dim {
            name: named.name.clone(),
            size: named.size.clone().or_else(|| anon.size.clone()),
            rate: named.rate.or(anon.rate),
            origin: named.origin.or(anon.origin),
            soft: named.soft,
        }
    }

    /// The dim written the way a user reads it: `T (16 @ 8 Hz)`, `d (2048)`,
    /// `512`.
    pub fn describe(&self) -> String {
        let rate = self
            .rate
            .map(|r| format!(" @ {}Hz", super::quantity::short(r)))
            .unwrap_or_default();
        match (&self.size, self.is_anon() || self.soft) {
            (Some(s), true) => format!("`{s}`{rate}"),
            (Some(s), false) if *s == self.name => format!("`{}`{rate}", self.name),
            (Some(s), false) => format!("`{}` ({s}{rate})", self.name),
            (None, _) => format!("`{}`", self.name),
        }
    }
}

/// Why two dims are not the same dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    Name,
    Size,
    Rate,
}

/// The name of `a / b` where the quotient is not a polynomial: a new name
/// atom spelt `a/b`.
pub fn name_div(a: &Size, b: &Size) -> Result<Size, SizeError> {
    match a.div(b) {
        Ok(q) => Ok(q),
        Err(SizeError::NotExact) => Ok(Size::symbol(&format!("{}/{}", paren(a), paren(b)))),
        Err(e) => Err(e),
    }
}

fn paren(s: &Size) -> String {
    let text = s.to_string();
    if text.contains(' ') {
        format!("({text})")
    } else {
        text
    }
}

/// A tensor's type.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub dtype: DType,
    pub dims: Vec<Dim>,
}

impl Tensor {
    pub fn new(dtype: DType, dims: Vec<Dim>) -> Tensor {
        Tensor { dtype, dims }
    }

    pub fn scalar(dtype: DType) -> Tensor {
        Tensor::new(dtype, Vec::new())
    }

    /// The positions of the dims called `name`.
    pub fn find(&self, name: &Size) -> Vec<usize> {
        (0..self.dims.len())
            .filter(|&i| self.dims[i].name == *name)
            .collect()
    }

    /// The number of elements, when every size is known.
    pub fn numel(&self) -> Result<Size, SizeError> {
        let mut n = Size::constant(1);
        for d in &self.dims {
            n = n.mul(&d.size_or_name())?;
        }
        Ok(n)
    }

    /// `f32[batch, T (16 @ 8Hz), N]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(short_dim).collect();
        let dtype = if self.dtype == DType::Float {
            String::new()
        } else {
            self.dtype.as_str().to_string()
        };
        format!("{dtype}[{}]", dims.join(", "))
    }
}

/// A dim inside a shape: `T=16@8Hz`, `d=2048`, `512`.
pub fn short_dim(d: &Dim) -> String {
    let rate = d
        .rate
        .map(|r| format!("@{}Hz", super::quantity::short(r)))
        .unwrap_or_default();
    match &d.size {
        Some(s) if d.is_anon() || *s == d.name => format!("{}{rate}", d.name),
        Some(s) => format!("{}={s}{rate}", d.name),
        None => d.name.to_string(),
    }
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: &str, size: i64) -> Dim {
        Dim::named(n, Size::constant(size), None)
    }

    #[test]
    fn anonymous_dims_take_the_other_name() {
        let d = named("d", 2048);
        let a = Dim::anon(2048, None);
        assert!(d.matches(&a).is_ok());
        assert_eq!(a.merge(&d).name, Size::symbol("d"));
        assert_eq!(d.matches(&Dim::anon(64, None)), Err(Mismatch::Size));
        assert_eq!(d.matches(&named("ffn", 2048)), Err(Mismatch::Name));
    }

    #[test]
    fn rates_must_agree() {
        let mut a = named("T", 16);
        a.rate = Some(8.0);
        let mut b = named("T", 16);
        b.rate = Some(30.0);
        assert_eq!(a.matches(&b), Err(Mismatch::Rate));
        assert_eq!(a.describe(), "`T` (16 @ 8Hz)");
    }

    #[test]
    fn inexact_division_names_a_new_dim() {
        let d = Size::symbol("d");
        let q = name_div(&d, &Size::constant(12)).unwrap();
        assert_eq!(q.to_string(), "d/12");
        let twelve_d = Size::constant(12).mul(&d).unwrap();
        assert_eq!(name_div(&twelve_d, &Size::constant(12)).unwrap(), d);
    }

    #[test]
    fn dtypes_join_towards_floats() {
        assert_eq!(DType::I64.join(DType::Float), DType::Float);
        assert_eq!(DType::Float.join(DType::F32), DType::F32);
        assert_eq!(DType::Bool.join(DType::I64), DType::I64);
    }
}
