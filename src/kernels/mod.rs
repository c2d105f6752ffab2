//! The public ops: one module per op, each holding the safe entry points that validate their
//! arguments and then call the kernels of their operands' tier (or of a [`crate::Kernels`]
//! handle). The main names are re-exported at the crate root.

pub mod attention;
pub mod dot;
pub mod elementwise;
pub mod embedding;
pub mod kv_cache;
pub mod matmul;
pub mod norm;
pub mod rope;
