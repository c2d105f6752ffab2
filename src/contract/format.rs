//! [`WeightFormat`]: what a weight block type provides so that `Packed<F>` and the generic
//! matmuls work for it on every tier.
//!
//! Adding a format: its block type and reference dequantizer in `crate::quant`, a field in
//! [`Kernels`] and a line in the table below naming it, and a kernel per architecture in
//! `crate::arch::<isa>` registered in that architecture's tier tables. Nothing public changes.

use super::gemm::WeightKernel;
use super::table::Kernels;
use crate::quant::*;
use crate::Result;
use std::fmt::Debug;

mod sealed {
    /// Only this crate implements [`super::WeightFormat`]: a format needs kernels on every tier.
    pub trait Sealed {}
}

/// A weight block format: `BLOCK_LEN` weights along K per block, a kernel on every tier.
pub trait WeightFormat:
    sealed::Sealed + bytemuck::Pod + Debug + PartialEq + Send + Sync + 'static
{
    /// Lower-case name as GGUF spells the type (`"q4_0"`, `"q4_k"`).
    const NAME: &'static str;
    /// Values per block (32, or 256 for the K-quants): K must be a multiple of it.
    const BLOCK_LEN: usize;
    /// The activation format the kernels read.
    const ACT: ActFormat;
    /// Reference dequantization of `blocks` into `out` (`BLOCK_LEN * blocks.len()` values).
    fn dequantize(blocks: &[Self], out: &mut [f32]) -> Result<()>;
    /// The format's kernel in a tier's table.
    #[doc(hidden)]
    fn kernel(k: &Kernels) -> &'static WeightKernel<Self>;
}

/// One line per format: block type, name, block length, activation format, dequantizer, and its
/// field of [`Kernels`].
macro_rules! weight_formats {
    ($($block:ty: $name:literal, $len:expr, $act:ident, $deq:path, $field:ident;)*) => {$(
        impl sealed::Sealed for $block {}
        impl WeightFormat for $block {
            const NAME: &'static str = $name;
            const BLOCK_LEN: usize = $len;
            const ACT: ActFormat = ActFormat::$act;
            fn dequantize(blocks: &[Self], out: &mut [f32]) -> Result<()> {
                $deq(blocks, out)
            }
            fn kernel(k: &Kernels) -> &'static WeightKernel<Self> {
                k.$field
            }
        }
    )*};
}

weight_formats! {
    BlockQ4_0: "q4_0", QK, Q8_32, dequantize_q4_0, q4_0;
    BlockQ8_0: "q8_0", QK, Q8_32, dequantize_q8_0, q8_0;
    BlockQ4_1: "q4_1", QK, Q8_32, dequantize_q4_1, q4_1;
    BlockQ5_0: "q5_0", QK, Q8_32, dequantize_q5_0, q5_0;
    BlockQ5_1: "q5_1", QK, Q8_32, dequantize_q5_1, q5_1;
    BlockQ4K: "q4_k", QK_K, Q8_256, dequantize_q4_k, q4_k;
    BlockQ5K: "q5_k", QK_K, Q8_256, dequantize_q5_k, q5_k;
    BlockQ6K: "q6_k", QK_K, Q8_256, dequantize_q6_k, q6_k;
}
