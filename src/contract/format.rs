//! [`WeightFormat`]: what a block type of 32 weights provides so that `Packed<F>` and the generic
//! matmuls work for it on every tier.
//!
//! Adding a format: its block type and reference (de)quantizer in `crate::quant`, an impl here
//! naming its field of [`Kernels`], a field in [`Kernels`], and a kernel per architecture in
//! `crate::arch::<isa>` registered in that architecture's `table`. Nothing public changes.

use super::gemm::WeightKernel;
use super::table::Kernels;
use crate::quant::{dequantize_q4_0, dequantize_q8_0, BlockQ4_0, BlockQ8_0};
use crate::Result;
use std::fmt::Debug;

mod sealed {
    /// Only this crate implements [`super::WeightFormat`]: a format needs kernels on every tier.
    pub trait Sealed {}
}

/// A weight block format: 32 weights along K per block, a kernel on every tier.
pub trait WeightFormat:
    sealed::Sealed + bytemuck::Pod + Debug + PartialEq + Send + Sync + 'static
{
    /// Lower-case name as GGUF spells the type (`"q4_0"`).
    const NAME: &'static str;
    /// Reference dequantization of `blocks` into `out` (`32 * blocks.len()` values).
    fn dequantize(blocks: &[Self], out: &mut [f32]) -> Result<()>;
    /// The format's kernel in a tier's table.
    #[doc(hidden)]
    fn kernel(k: &Kernels) -> &'static WeightKernel<Self>;
}

impl sealed::Sealed for BlockQ4_0 {}
impl WeightFormat for BlockQ4_0 {
    const NAME: &'static str = "q4_0";
    fn dequantize(blocks: &[Self], out: &mut [f32]) -> Result<()> {
        dequantize_q4_0(blocks, out)
    }
    fn kernel(k: &Kernels) -> &'static WeightKernel<Self> {
        k.q4_0
    }
}

impl sealed::Sealed for BlockQ8_0 {}
impl WeightFormat for BlockQ8_0 {
    const NAME: &'static str = "q8_0";
    fn dequantize(blocks: &[Self], out: &mut [f32]) -> Result<()> {
        dequantize_q8_0(blocks, out)
    }
    fn kernel(k: &Kernels) -> &'static WeightKernel<Self> {
        k.q8_0
    }
}
