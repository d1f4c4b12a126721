//! Quantities with units: durations, rates, byte sizes and plain counts.
//!
//! A quantity is a value in base units (seconds, bytes) with its physical
//! dimension as exponents of time and bytes, so arithmetic carries units
//! through: a duration times a rate is a count (`2s * 30Hz` is 60), a count
//! over a duration is a rate. Adding quantities of different dimensions is
//! an error the checker reports with both operands' units.

use std::fmt;

/// Exponents of seconds and bytes: `s^time * B^bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dimension {
    pub time: i8,
    pub bytes: i8,
}

impl Dimension {
    pub const COUNT: Dimension = Dimension { time: 0, bytes: 0 };
    pub const TIME: Dimension = Dimension { time: 1, bytes: 0 };
    pub const RATE: Dimension = Dimension { time: -1, bytes: 0 };
    pub const BYTES: Dimension = Dimension { time: 0, bytes: 1 };

    /// What a user would call a quantity of this dimension.
    pub fn describe(self) -> String {
        match self {
            Dimension::COUNT => "a plain number".to_string(),
            Dimension::TIME => "a duration".to_string(),
            Dimension::RATE => "a rate".to_string(),
            Dimension::BYTES => "a size in bytes".to_string(),
            d => format!("a quantity in {}", d.unit_name()),
        }
    }

    /// The base unit of this dimension: `s`, `Hz`, `B`, `s^2`, `B/s`.
    pub fn unit_name(self) -> String {
        let mut num = Vec::new();
        let mut den = Vec::new();
        for (exp, name) in [(self.time, "s"), (self.bytes, "B")] {
            let part = if exp.abs() == 1 {
                name.to_string()
            } else {
                format!("{name}^{}", exp.abs())
            };
            match exp {
                0 => {}
                e if e > 0 => num.push(part),
                _ => den.push(part),
            }
        }
        match (num.is_empty(), den.is_empty()) {
            (true, true) => String::new(),
            (true, false) if den == ["s"] => "Hz".to_string(),
            (true, false) => format!("1/{}", den.join("*")),
            (false, true) => num.join("*"),
            (false, false) => format!("{}/{}", num.join("*"), den.join("*")),
        }
    }

    fn combine(self, other: Dimension, sign: i8) -> Option<Dimension> {
        Some(Dimension {
            time: self.time.checked_add(other.time.checked_mul(sign)?)?,
            bytes: self.bytes.checked_add(other.bytes.checked_mul(sign)?)?,
        })
    }
}

/// A value in base units with its dimension.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub dim: Dimension,
}

impl Quantity {
    pub fn count(value: f64) -> Quantity {
        Quantity {
            value,
            dim: Dimension::COUNT,
        }
    }

    /// A value of `dim` in its base units (seconds, hertz, bytes).
    pub fn new(value: f64, dim: Dimension) -> Quantity {
        Quantity { value, dim }
    }

    pub fn times(self, other: Quantity) -> Option<Quantity> {
        Some(Quantity {
            value: self.value * other.value,
            dim: self.dim.combine(other.dim, 1)?,
        })
    }

    pub fn over(self, other: Quantity) -> Option<Quantity> {
        Some(Quantity {
            value: self.value / other.value,
            dim: self.dim.combine(other.dim, -1)?,
        })
    }

    /// The value as a whole number, when it is one up to rounding error in
    /// the decimal literals (`0.1s * 30Hz` is 3, not 3.0000000000000004).
    pub fn as_whole(self) -> Option<i64> {
        let rounded = self.value.round();
        let tolerance = 1e-9 * self.value.abs().max(1.0);
        let whole = (self.value - rounded).abs() <= tolerance;
        (whole && rounded.abs() < 9.0e18).then_some(rounded as i64)
    }
}

impl fmt::Display for Quantity {
    /// Shown in the most readable unit: `2 s`, `250 ms`, `30 Hz`, `80 GB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        let (shown, unit) = match self.dim {
            Dimension::TIME if v != 0.0 && v.abs() < 1e-3 => (v * 1e6, "us".to_string()),
            Dimension::TIME if v != 0.0 && v.abs() < 1.0 => (v * 1e3, "ms".to_string()),
            Dimension::RATE if v.abs() >= 1e3 => (v / 1e3, "kHz".to_string()),
            Dimension::BYTES if v.abs() >= 1e9 => (v / 1e9, "GB".to_string()),
            Dimension::BYTES if v.abs() >= 1e6 => (v / 1e6, "MB".to_string()),
            d => (v, d.unit_name()),
        };
        let number = short(shown);
        if unit.is_empty() {
            f.write_str(&number)
        } else {
            write!(f, "{number} {unit}")
        }
    }
}

/// A number for messages: whole numbers as they are, others with at most
/// four decimals (`142.8571`, `10.5`).
pub fn short(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        return format!("{}", v.round());
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
