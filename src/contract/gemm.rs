//! GEMM contracts: `y[m][n] = sum_k x[m][k] * w[n][k] (+ bias[n])` on packed operands.

use crate::aligned::AlignedBuf;
use std::ops::Range;

/// The arguments of one GEMM call, validated by `crate::kernels::matmul` before any kernel sees
/// them.
pub(crate) struct GemmArgs<'a> {
    pub w: &'a AlignedBuf,
    pub n: usize,
    pub k: usize,
    pub a: &'a AlignedBuf,
    pub m: usize,
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub bias: Option<&'a [f32]>,
    /// Element `(rows.start, cols.start)`; element `(i, j)` is at `out + (i - rows.start) * ldo + (j - cols.start)`.
    pub out: *mut f32,
    pub ldo: usize,
}

/// A tier's activation quantizer for one activation format whose plain blocks are `A`
/// (`ActBlock`, `ActBlockK`): its layout is what that tier's weight kernels of that format read.
/// Rows are quantized one at a time so that fused producers (RMSNorm + quantize) can hand over a
/// row while it is still in L1.
pub(crate) struct ActKernel<A: 'static> {
    /// Bytes the layout needs for `m` rows of `k` values.
    pub size: fn(m: usize, k: usize) -> usize,
    /// Quantizes row `i` (`x.len() == k`) of an `m x k` matrix into `out` (`size(m, k)` bytes).
    pub quantize_row: fn(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]),
    /// The plain blocks of the quantized activations, `m * k / block length` in row order.
    pub unpack: fn(buf: &[u8], m: usize, k: usize) -> Vec<A>,
    /// Whether the layout starts with plain `A` rows (what [`ActInput::Plain`] reads); it may
    /// carry more after them (NeonI8mm's `Q8_256`: row pairs for SMMLA).
    pub plain: bool,
}

/// How a weight kernel reads its activations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActInput {
    /// The layout of the tier's [`ActKernel`].
    Native,
    /// Plain `ActBlock` rows (`m * k / 32` blocks in row order); the op converts the tier's
    /// layout once per call when it differs.
    Plain,
}

/// A tier's kernel for one weight format whose blocks are `B` (`B::BLOCK_LEN` values each along
/// K), reading activations of the format `B::ACT`.
///
/// Public only so that the sealed [`crate::WeightFormat`] trait can name it; nothing outside
/// the crate can reach its fields.
pub struct WeightKernel<B: 'static> {
    /// Name of the implementation (shown by benches and `Packed::kernel_name`).
    pub(crate) name: &'static str,
    /// Packs `n` rows of `k / B::BLOCK_LEN` blocks.
    pub(crate) pack: fn(blocks: &[B], n: usize, k: usize) -> AlignedBuf,
    /// Inverse of `pack` for one row: writes the blocks of row `row < n` into `out`.
    pub(crate) unpack_row: fn(buf: &AlignedBuf, n: usize, k: usize, row: usize, out: &mut [B]),
    /// Activation layout `gemm` reads.
    pub(crate) acts: ActInput,
    /// # Safety
    /// The CPU supports the kernel's tier, `w` was made by `pack` for `n, k`, `a` is in the
    /// layout `acts` names for `m, k`, the ranges lie within `m` and `n` and are non-empty,
    /// `bias` has `n` values, and `out` is valid for writes of every element of the ranges as
    /// described in [`GemmArgs`].
    pub(crate) gemm: unsafe fn(args: &GemmArgs<'_>),
}
