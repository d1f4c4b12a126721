//! The bottom of the crate: small types every stage shares and that
//! depend on nothing else in it.
//!
//! - [`span`]: byte spans, file ids and the two together ([`Loc`]), which
//!   the parser, the checker, the IR and every diagnostic carry;
//! - [`host`]: dense `f32` tensors in host memory, which the dataset, the
//!   runtime, checkpoints and backends exchange;
//! - [`rng`]: the deterministic SplitMix64 streams (and the exactly
//!   reproducible transcendental functions they use) behind the simulator,
//!   initialisation and every draw of a run;
//! - [`fnv`]: the stable FNV-1a hash of checkpoints and stream keys.
//!
//! Nothing here imports another module of the crate.

pub mod fnv;
pub mod host;
pub mod rng;
pub mod span;

pub use span::{FileId, Loc, Span};
