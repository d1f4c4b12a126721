//! Symbolic dimension sizes.
//!
//! A size is an integer polynomial over the dims that only the data can
//! bind (`dim N`, `dim N per session`): `64`, `N`, `2*N + 1`, `N*T`. Sizes
//! known at compile time are constants. Arithmetic is checked: overflow,
//! division by zero and a division that does not come out whole are errors
//! carried back to the expression that caused them, never a panic or a
//! silent wrap.

use std::collections::BTreeMap;
use std::fmt;

/// Why size arithmetic failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    Overflow,
    DivisionByZero,
    /// The division is not whole (`7 / 2`), or divides by a symbolic size.
    NotExact,
}

/// A product of data-bound dims, sorted: `[]` is the constant term,
/// `["N", "N"]` is `N^2`.
type Monomial = Vec<String>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Size {
    /// Non-zero coefficients by monomial.
    terms: BTreeMap<Monomial, i64>,
}

impl Size {
    pub fn constant(value: i64) -> Size {
        let mut terms = BTreeMap::new();
        if value != 0 {
            terms.insert(Vec::new(), value);
        }
        Size { terms }
    }

    /// A dim bound by data.
    pub fn symbol(name: &str) -> Size {
        let mut terms = BTreeMap::new();
        terms.insert(vec![name.to_string()], 1);
        Size { terms }
    }

    /// The value, when the size is known at compile time.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// The data-bound dims the size depends on.
    pub fn symbols(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.terms.keys().flatten().map(String::as_str).collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn add(&self, other: &Size) -> Result<Size, SizeError> {
        let mut terms = self.terms.clone();
        for (m, c) in &other.terms {
            let entry = terms.entry(m.clone()).or_insert(0);
            *entry = entry.checked_add(*c).ok_or(SizeError::Overflow)?;
        }
        terms.retain(|_, c| *c != 0);
        Ok(Size { terms })
    }

    pub fn neg(&self) -> Result<Size, SizeError> {
        let mut terms = BTreeMap::new();
        for (m, c) in &self.terms {
            terms.insert(m.clone(), c.checked_neg().ok_or(SizeError::Overflow)?);
        }
        Ok(Size { terms })
    }

    pub fn sub(&self, other: &Size) -> Result<Size, SizeError> {
        self.add(&other.neg()?)
    }

    pub fn mul(&self, other: &Size) -> Result<Size, SizeError> {
        let mut terms: BTreeMap<Monomial, i64> = BTreeMap::new();
        for (ma, ca) in &self.terms {
            for (mb, cb) in &other.terms {
                let mut m = ma.clone();
                m.extend(mb.iter().cloned());
                m.sort();
                let c = ca.checked_mul(*cb).ok_or(SizeError::Overflow)?;
                let entry = terms.entry(m).or_insert(0);
                *entry = entry.checked_add(c).ok_or(SizeError::Overflow)?;
            }
        }
        terms.retain(|_, c| *c != 0);
        Ok(Size { terms })
    }

    /// Exact division by a constant: every coefficient must divide.
    pub fn div(&self, other: &Size) -> Result<Size, SizeError> {
        let Some(d) = other.as_const() else {
            return Err(SizeError::NotExact);
        };
        if d == 0 {
            return Err(SizeError::DivisionByZero);
        }
        let mut terms = BTreeMap::new();
        for (m, c) in &self.terms {
            if c % d != 0 {
                return Err(SizeError::NotExact);
            }
            terms.insert(m.clone(), c.checked_div(d).ok_or(SizeError::Overflow)?);
        }
        Ok(Size { terms })
    }

    /// The size with some symbols replaced by their values.
    pub fn substitute(&self, value: &dyn Fn(&str) -> Option<i64>) -> Result<Size, SizeError> {
        let mut out = Size::constant(0);
        for (m, c) in &self.terms {
            let mut term = Size::constant(*c);
            for s in m {
                let factor = match value(s) {
                    Some(v) => Size::constant(v),
                    None => Size::symbol(s),
                };
                term = term.mul(&factor)?;
            }
            out = out.add(&term)?;
        }
        Ok(out)
    }

    /// The value with every symbol bound, as a float (for estimates).
    pub fn eval_f64(&self, value: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
        let mut total = 0.0;
        for (m, c) in &self.terms {
            let mut term = *c as f64;
            for s in m {
                term *= value(s)?;
            }
            total += term;
        }
        Some(total)
    }

    /// Whether the size is certainly at least one for every binding of its
    /// symbols to positive integers: a positive constant, or a polynomial
    /// with no negative coefficient and a positive term.
    pub fn is_positive(&self) -> bool {
        !self.terms.is_empty() && self.terms.values().all(|c| *c > 0)
    }
}

impl fmt::Display for Size {
    /// Written as a user would: `64`, `N`, `2*N + 1`, `N^2 - N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Highest-degree terms first, the constant last.
        let mut terms: Vec<(&Monomial, &i64)> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (m, c)) in terms.iter().enumerate() {
            let c = **c;
            let magnitude = c.unsigned_abs();
            if i == 0 {
                if c < 0 {
                    f.write_str("-")?;
                }
            } else {
                f.write_str(if c < 0 { " - " } else { " + " })?;
            }
            let product = monomial(m);
            match (product.is_empty(), magnitude) {
                (true, _) => write!(f, "{magnitude}")?,
                (false, 1) => f.write_str(&product)?,
                (false, _) => write!(f, "{magnitude}*{product}")?,
            }
        }
        Ok(())
    }
}

fn monomial(m: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < m.len() {
        let mut j = i;
        while j < m.len() && m[j] == m[i] {
            j += 1;
        }
        parts.push(if j - i == 1 {
            m[i].clone()
        } else {
            format!("{}^{}", m[i], j - i)
        });
        i = j;
    }
    parts.join("*")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Size {
        Size::symbol("N")
    }

    #[test]
    fn polynomials_normalise_and_print() {
        let two_n_plus_one = Size::constant(2)
            .mul(&n())
            .unwrap()
            .add(&Size::constant(1))
            .unwrap();
        assert_eq!(two_n_plus_one.to_string(), "2*N + 1");
        let square = n().mul(&n()).unwrap().sub(&n()).unwrap();
        assert_eq!(square.to_string(), "N^2 - N");
        assert_eq!(n().sub(&n()).unwrap(), Size::constant(0));
        assert_eq!(
            Size::constant(4)
                .mul(&Size::constant(64))
                .unwrap()
                .as_const(),
            Some(256)
        );
        assert_eq!(two_n_plus_one.symbols(), vec!["N"]);
    }

    #[test]
    fn arithmetic_is_checked() {
        let big = Size::constant(i64::MAX);
        assert_eq!(big.add(&Size::constant(1)), Err(SizeError::Overflow));
        assert_eq!(big.mul(&Size::constant(2)), Err(SizeError::Overflow));
        assert_eq!(Size::constant(i64::MIN).neg(), Err(SizeError::Overflow));
        assert_eq!(
            Size::constant(7).div(&Size::constant(0)),
            Err(SizeError::DivisionByZero)
        );
        assert_eq!(
            Size::constant(7).div(&Size::constant(2)),
            Err(SizeError::NotExact)
        );
        assert_eq!(Size::constant(8).div(&n()), Err(SizeError::NotExact));
        let four_n = Size::constant(4).mul(&n()).unwrap();
        assert_eq!(four_n.div(&Size::constant(2)).unwrap().to_string(), "2*N");
    }

    #[test]
    fn positivity_is_conservative() {
        assert!(Size::constant(3).is_positive());
        assert!(!Size::constant(0).is_positive());
        assert!(!Size::constant(-2).is_positive());
        assert!(n().is_positive());
        assert!(!n().sub(&Size::constant(1)).unwrap().is_positive());
    }
}
