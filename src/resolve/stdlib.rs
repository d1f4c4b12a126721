//! The standard library, embedded in the binary.
//!
//! `stdlib/*.enigma` files are compiled in with `include_str!`, so `enigma`
//! works from any directory and the stdlib always matches the compiler. A
//! test checks that every file in `stdlib/` is listed here. For developing
//! the stdlib itself, `--stdlib DIR` reads it from disk instead.

/// `(module name, source)` for every standard module: `use std::nn` names
/// the entry `"nn"`.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("losses", include_str!("../../stdlib/losses.enigma")),
    ("metrics", include_str!("../../stdlib/metrics.enigma")),
    ("nn", include_str!("../../stdlib/nn.enigma")),
    ("readout", include_str!("../../stdlib/readout.enigma")),
    ("tokenize", include_str!("../../stdlib/tokenize.enigma")),
];

/// Where standard modules come from.
#[derive(Clone, Debug, Default)]
pub enum Stdlib {
    /// The copy compiled into the binary.
    #[default]
    Embedded,
    /// A directory holding `<name>.enigma` files (for stdlib development).
    Dir(std::path::PathBuf),
}

pub fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
