//! Portable implementations: plain Rust, no `unsafe` beyond writing through the validated output
//! pointer. They define the packed layouts that other tiers fall back to.

pub(crate) mod attention;
pub(crate) mod matmul;
pub(crate) mod matmul_q8;
pub(crate) mod ops;

pub(crate) use matmul::{ACT_KERNEL, Q4_KERNEL};
pub(crate) use matmul_q8::Q8_KERNEL;
