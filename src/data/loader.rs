//! Loader (being written).
