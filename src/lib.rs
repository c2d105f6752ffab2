//! # qkern
//!
//! Hand-tuned SIMD kernels for quantized LLM inference on CPUs (first of all Apple A15+ P-cores),
//! and a minimal Qwen forward pass built on them.
//!
//! * Weights are blocks of a [`WeightFormat`] (Q4_0, Q8_0; GGUF layouts) packed once for a tier
//!   ([`Packed`]); activations are quantized on the fly to int8 blocks of 32
//!   ([`quant::quantize_activation_block`] states the exact rule); outputs are f32.
//! * Every kernel runs at a [`Tier`]: the best one the CPU has is detected once ([`Tier::active`]).
//!   Operands laid out for a tier ([`Packed`], [`QuantizedActivations`], [`KvCache`]) carry it
//!   (`new` for the detected tier, `with_tier` for another one); ops without such operands take a
//!   [`Kernels`] handle, which exists only for a tier the CPU has.
//! * Every kernel has a scalar twin in the `qkern-reference` crate, its test oracle.
//! * Bad shapes, tiers or sizes return [`Error`]; nothing panics on caller input.
//! * The model (`qkern::model`), its loaders and the `qkern` CLI are the default feature `model`;
//!   `default-features = false` gives the kernels alone, without the loaders' dependencies.
//!
//! ```
//! use qkern::quant::{quantize_q4_0, BlockQ4_0};
//! use qkern::{matmul, Packed, QuantizedActivations};
//!
//! # fn main() -> qkern::Result<()> {
//! let (m, n, k) = (2, 3, 64);
//! let w: Vec<f32> = (0..n * k).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
//! let mut blocks = vec![BlockQ4_0 { d: half::f16::ZERO, qs: [0; 16] }; n * k / 32];
//! quantize_q4_0(&w, &mut blocks)?;
//! let w = Packed::<BlockQ4_0>::new(&blocks, n, k)?; // packed once, for the detected tier
//!
//! let x: Vec<f32> = (0..m * k).map(|i| (i as f32).sin()).collect();
//! let mut a = QuantizedActivations::new();
//! a.quantize(&x, m, k)?; // int8 blocks, reusable buffer
//!
//! let mut y = vec![0f32; m * n];
//! matmul(&w, &a, None, &mut y)?;
//! assert!(matmul(&w, &a, None, &mut y[..1]).is_err()); // too short: an error, not a panic
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod aligned;
mod arch;
mod contract;
mod dispatch;
mod drivers;
mod error;
pub mod kernels;
#[cfg(feature = "model")]
pub mod model;
pub mod parallel;
pub mod quant;
pub(crate) mod signpost;
mod tier;

pub use contract::{Kernels, WeightFormat};
pub use error::{Error, Result};
pub use kernels::attention::{attention, attention_parallel, attention_path_name};
pub use kernels::dot::dot_i8;
pub use kernels::elementwise::{add_assign, exp, silu_mul, silu_mul_quantize, softmax};
pub use kernels::embedding::{embedding_row, EmbeddingTable};
pub use kernels::kv_cache::{KvCache, KvDtype};
pub use kernels::matmul::{
    matmul, matmul_parallel, matmul_parallel_parts, matmul_range, Packed, PackedQ4_0, PackedQ8_0,
    QuantizedActivations,
};
pub use kernels::norm::{rmsnorm, rmsnorm_quantize};
pub use kernels::rope::Rope;
pub use tier::{Tier, TIER_ENV};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
