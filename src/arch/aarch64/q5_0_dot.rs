//! Q5_0 on `NeonDot`: the SDOT micro-kernels of `asm/aarch64/q5_0_gemm_dotprod.S` (run by the
//! [`matmul_asm`] driver on the shared `Q8_32` activation layout of [`super::act`]) and their
//! weight layout: [`super::q5_0_mmla`]'s tile block (88 bytes per tile of 4 columns and block,
//! 22 per column as in the file; five registers of 5-bit fields R0..R4, then the f16 scales)
//! with the SDOT operand order of Q4_0's `Layout::Dot`: operand `o` (0..8) =
//! `[col 0: K 4o..4o+4][col 1: same][col 2][col 3]`. The kernel's decode is the SMMLA kernel's
//! (operand `j < 4` = `R_j & 0xF8`, operand `4 + j` = `R_j << 3` with its top bits from R4), so
//! operand `j` holds K `4j..4j+4` and operand `4 + j` K `16 + 4j..`.

use super::matmul_asm;
use super::q5_0_mmla::{pack_with, unpack_row_with};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::BlockQ5_0;

/// Operand and byte of value `e` (0..32) of column `c` (0..4) in the SDOT order.
pub(super) fn slot_dot(c: usize, e: usize) -> (usize, usize) {
    (e / 4, 4 * c + e % 4)
}

fn pack(blocks: &[BlockQ5_0], n: usize, k: usize) -> AlignedBuf {
    pack_with(slot_dot, blocks, n, k)
}

fn unpack_row(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ5_0]) {
    unpack_row_with(slot_dot, buf, k, row, out)
}

/// # Safety
/// See [`WeightKernel::gemm`] (the tier, and so FEAT_DotProd, was checked).
unsafe fn gemm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; weights packed by `pack`, activations in `act`'s layout.
    unsafe { matmul_asm::gemm(&matmul_asm::Q5_DOT, args) }
}

/// Q5_0 on `NeonDot`.
pub(crate) static Q5_0_DOT: WeightKernel<BlockQ5_0> = WeightKernel {
    name: "neondot-q5_0-sdot-asm",
    pack,
    unpack_row,
    acts: ActInput::Native,
    gemm,
};
