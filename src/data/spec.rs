//! Data spec (being written).
