//! The registry of diagnostic codes.
//!
//! Every code has a one-line title and a page in `docs/errors/<CODE>.md`.
//! The pages are compiled into the binary with `include_str!`, so a code
//! without a page does not build, and `enigma explain CODE` works from any
//! directory. Codes are stable: once published, a code keeps its meaning.

use std::fmt;

macro_rules! codes {
    ($($code:ident => $title:literal,)*) => {
        /// A stable diagnostic code such as `E0105`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$code,)*];

            /// The code as written: `E0105`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            /// A short description of what the code means.
            pub fn title(self) -> &'static str {
                match self {
                    $(Code::$code => $title,)*
                }
            }

            /// The explanation page, `docs/errors/<CODE>.md`.
            pub fn page(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!(
                        env!("CARGO_MANIFEST_DIR"), "/docs/errors/", stringify!($code), ".md"
                    )),)*
                }
            }
        }
    };
}

codes! {
    E0001 => "syntax error",
    E0002 => "source file is not valid UTF-8",
    E0003 => "source file is too large",
    E0004 => "nesting is too deep",
    E0005 => "unterminated string literal",
    E0006 => "unterminated block comment",
    E0007 => "invalid number literal",
    E0008 => "source file has no items",
    E0101 => "module not found",
    E0102 => "item not found in module",
    E0103 => "import cycle",
    E0104 => "duplicate definition",
    E0105 => "unknown name",
    E0106 => "missing or misplaced return",
    E0107 => "statement not allowed here",
    E0108 => "argument or setting given twice",
    E0109 => "positional argument after a named argument",
    E0110 => "command-line override cannot be applied",
    E0201 => "size arithmetic overflows",
    E0202 => "division by zero",
    E0203 => "size is not positive",
    E0204 => "units do not match",
    E0205 => "not a whole number",
    E0206 => "definition refers to itself",
    E0207 => "unknown setting",
    E0208 => "invalid setting value",
    E0209 => "missing setting",
    E0210 => "settings do not agree",
    E0211 => "dims do not match",
    E0212 => "sampling rates do not match",
    E0213 => "wrong number of dims",
    E0214 => "wrong dtype",
    E0215 => "sizes do not divide or add up",
    E0216 => "dim not found",
    E0217 => "wrong kind of value or argument",
    E0218 => "loss or metric has the wrong shape",
    E0219 => "modality does not match its data",
    E0220 => "layout does not divide the model",
    E0221 => "data the runtime cannot read",
    E0222 => "mesh axis does no work",
    E0301 => "mesh does not match the world size",
    E0302 => "plan does not fit in device memory",
    E0303 => "layout setting not supported by the planner",
    E0401 => "data file cannot be read",
    E0402 => "data file is not in the declared format",
    E0403 => "data file does not match its modality",
    E0404 => "data holds NaN or infinity",
    E0405 => "transform failed on the data",
    E0406 => "no windows can be cut",
    E0407 => "the data loader stopped",
    E0501 => "not supported by this runtime or build",
    E0502 => "tensor operation failed",
    E0503 => "loss or gradient is not finite",
    E0504 => "device not available",
    E0505 => "checkpoint cannot be written or read",
    E0506 => "checkpoint does not fit the experiment",
    E0507 => "run directory cannot be written",
    E0508 => "communication between ranks failed",
    E0509 => "the launch environment is inconsistent",
    E0510 => "the editor connection failed",
    E0900 => "internal error",
    W0101 => "unused import",
    W0201 => "data file not checked",
    W0202 => "mapping shards nothing",
    W0301 => "pipeline stages are unbalanced",
    W0302 => "tensor parallelism spans nodes",
}

impl Code {
    /// Looks a code up by its spelling, ignoring case (`e0105` works too).
    pub fn parse(s: &str) -> Option<Code> {
        let s = s.trim();
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    /// Warnings start with `W`; everything else is an error.
    pub fn is_warning(self) -> bool {
        self.as_str().starts_with('W')
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
