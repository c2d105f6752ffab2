//! Kernels: one module per op, each holding the safe entry points and the per-tier dispatch.

pub mod attention;
pub mod dot;
pub mod elementwise;
pub mod embedding;
pub mod matmul;
pub mod matmul_q8;
pub mod norm;
pub mod rope;
