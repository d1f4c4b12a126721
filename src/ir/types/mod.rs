//! The types the IR is written in, shared by the checker that builds it
//! and every stage that reads it.
//!
//! - [`size`]: symbolic integer sizes (polynomials over the dims only data
//!   binds), with checked arithmetic;
//! - [`tensor`]: element types and named dims with sizes and sampling
//!   rates, and the rules by which dims match;
//! - [`quantity`]: values with physical units (durations, rates, bytes);
//! - [`value`]: compile-time values.

pub mod quantity;
pub mod size;
pub mod tensor;
pub mod value;

pub use quantity::{Dimension, Quantity};
pub use size::{Size, SizeError};
pub use tensor::{DType, Dim, Mismatch, Tensor};
pub use value::Value;
