//! Micro-kernel contracts: the argument blocks, function tables and per-ISA traits that every
//! tier implements and that the public ops and the generic drivers call.
//!
//! This is the bottom of the kernel layers: it imports the block formats ([`crate::quant`]), the
//! tier enum and the aligned buffer, never `crate::kernels`, `crate::dispatch`, `crate::drivers`
//! or `crate::arch`. See docs/ARCHITECTURE.md for the module graph.
//!
//! * [`gemm`]: one GEMM call's arguments, the activation quantizer and the weight-format kernel
//!   tables.
//! * [`ops`]: the small layer ops (norm, SiLU, softmax, RoPE, conversions).
//! * [`attention`]: the flash-attention micro-kernel trait, its f32 arithmetic trait, and the
//!   shapes the driver hands them.
//! * [`table`]: [`Kernels`], everything one tier implements, in one value.
//! * [`format`]: [`WeightFormat`], what a weight block type must provide to get packed matmuls.

pub(crate) mod attention;
pub(crate) mod format;
pub(crate) mod gemm;
pub(crate) mod ops;
pub(crate) mod table;

pub use format::WeightFormat;
pub use table::Kernels;
