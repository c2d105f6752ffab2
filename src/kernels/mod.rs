//! Kernels: one module per op, each holding the safe entry points and the per-tier dispatch.

pub mod dot;
pub mod matmul;
pub mod matmul_q8;
