//! The units a literal can carry (`250ms`, `30Hz`, `80GB`), converted to
//! quantities in base units. The quantities themselves, and their
//! arithmetic, are the IR's ([`crate::ir::types::quantity`]); only the
//! spelling of a unit belongs to the language.

use crate::ir::types::{Dimension, Quantity};
use crate::syntax::ast::Unit;

/// A literal such as `250ms`, converted to base units.
pub fn quantity(value: f64, unit: Unit) -> Quantity {
    let (scale, dim) = match unit {
        Unit::Us => (1e-6, Dimension::TIME),
        Unit::Ms => (1e-3, Dimension::TIME),
        Unit::S => (1.0, Dimension::TIME),
        Unit::Min => (60.0, Dimension::TIME),
        Unit::Hz => (1.0, Dimension::RATE),
        Unit::KHz => (1e3, Dimension::RATE),
        Unit::B => (1.0, Dimension::BYTES),
        Unit::KB => (1e3, Dimension::BYTES),
        Unit::MB => (1e6, Dimension::BYTES),
        Unit::GB => (1e9, Dimension::BYTES),
        Unit::TB => (1e12, Dimension::BYTES),
        Unit::KiB => (1024.0, Dimension::BYTES),
        Unit::MiB => (1024.0 * 1024.0, Dimension::BYTES),
        Unit::GiB => (1024.0 * 1024.0 * 1024.0, Dimension::BYTES),
        Unit::TiB => (1024.0 * 1024.0 * 1024.0 * 1024.0, Dimension::BYTES),
    };
    Quantity {
        value: value * scale,
        dim,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_times_a_rate_is_a_whole_count() {
        let t = quantity(2.0, Unit::S);
        let frames = t.times(quantity(30.0, Unit::Hz)).unwrap();
        assert_eq!(frames.dim, Dimension::COUNT);
        assert_eq!(frames.as_whole(), Some(60));
        let calcium = t.times(quantity(8.0, Unit::Hz)).unwrap();
        assert_eq!(calcium.as_whole(), Some(16));
        let bins = quantity(0.1, Unit::S)
            .times(quantity(30.0, Unit::Hz))
            .unwrap();
        assert_eq!(bins.as_whole(), Some(3));
        let half = quantity(1.5, Unit::S)
            .times(quantity(7.0, Unit::Hz))
            .unwrap();
        assert_eq!(half.as_whole(), None);
    }

    #[test]
    fn units_are_shown_readably() {
        assert_eq!(quantity(250.0, Unit::Ms).to_string(), "250 ms");
        assert_eq!(quantity(2.0, Unit::S).to_string(), "2 s");
        assert_eq!(quantity(1.5, Unit::KHz).to_string(), "1.5 kHz");
        assert_eq!(quantity(80.0, Unit::GB).to_string(), "80 GB");
        let per_second_squared = Quantity::count(1.0)
            .over(quantity(1.0, Unit::S))
            .unwrap()
            .over(quantity(1.0, Unit::S))
            .unwrap();
        assert_eq!(per_second_squared.dim.unit_name(), "1/s^2");
        assert_eq!(Dimension::RATE.describe(), "a rate");
    }
}
