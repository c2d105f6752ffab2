//! Q4_K on `NeonDot`: the SDOT micro-kernels of `asm/aarch64/q4k_gemm_dotprod.S` and their
//! weight layout. Activations, argument block and driver are the SMMLA kernels' ([`super::q4k_mmla`]):
//! SDOT by element reads the row pairs' 8-byte runs as 4-byte lanes of one row.
//!
//! # Weights
//!
//! Columns in tiles of 4 (the last padded with zero blocks), each tile's super-blocks
//! contiguous, 592 bytes per tile and super-block (148 per column; GGUF's 144):
//!
//! ```text
//! [sub-block j = 0..8: 4 registers r of [col c = 0..4: 4 bytes e];
//!    byte: q[32j + 4r + e] | q[32j + 16 + 4r + e] << 4]                                (512)
//! [sub-scales u8 [8][4]] [mins u8 [col c: m_0..m_3] x 4, then [col c: m_4..m_7] x 4]
//! [d f16 [4]] [dmin f16 [4]]
//! ```
//!
//! so that a register's low nibbles are the SDOT operand of K `4r..4r+3` of the sub-block for
//! the 4 columns, its high nibbles that of K `16 + 4r..`, and the mins are SDOT operands of the
//! activation sub-block sums.

use super::formats::{get_sc_mins, mins_sdot, put_sc_mins, q4k_block};
use super::pack::{pack_tiles, unpack_tiles, NR};
use super::q4k_mmla::{gemm_with, AsmKernels, KArgs};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::{BlockQ4K, QK_K};
use bytemuck::Zeroable;

/// Packed bytes per tile and super-block.
const TILE_SB: usize = 592;
/// Offsets in a tile super-block.
const SC: usize = 512;
const MINS: usize = 544;
const D: usize = 576;
const DMIN: usize = 584;
// The tail (scales, mins, d, dmin) is `formats::put_sc_mins`'s.
const _: () = assert!(MINS == SC + 32 && D == MINS + 32 && DMIN == D + 8 && TILE_SB == DMIN + 8);
const _: () = assert!(TILE_SB.is_multiple_of(16));

/// Writes the tile super-block of 4 columns' blocks into `dst` (592 zeroed bytes).
fn put(b: &[BlockQ4K; NR], dst: &mut [u8]) {
    let p = b.map(|b| b.parts());
    for (col, p) in p.iter().enumerate() {
        for j in 0..8 {
            for r in 0..4 {
                for e in 0..4 {
                    let lo = p.q[32 * j + 4 * r + e];
                    let hi = p.q[32 * j + 16 + 4 * r + e];
                    dst[64 * j + 16 * r + 4 * col + e] = lo | (hi << 4);
                }
            }
        }
    }
    put_sc_mins(
        &p,
        b.map(|b| b.d),
        b.map(|b| b.dmin),
        mins_sdot,
        &mut dst[SC..],
    );
}

/// Block of column `col` from a tile super-block.
fn get(src: &[u8], col: usize) -> BlockQ4K {
    let mut q = [0u8; 256];
    for j in 0..8 {
        for r in 0..4 {
            for e in 0..4 {
                let byte = src[64 * j + 16 * r + 4 * col + e];
                q[32 * j + 4 * r + e] = byte & 0x0F;
                q[32 * j + 16 + 4 * r + e] = byte >> 4;
            }
        }
    }
    let (sc, mn, d, dmin) = get_sc_mins(&src[SC..], col, mins_sdot);
    q4k_block(&q, &sc, &mn, d, dmin)
}

fn pack(blocks: &[BlockQ4K], n: usize, k: usize) -> AlignedBuf {
    pack_tiles(blocks, n, k, QK_K, TILE_SB, BlockQ4K::zeroed(), put)
}

fn unpack_row(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ4K]) {
    unpack_tiles(buf, k, QK_K, TILE_SB, row, out, get)
}

asm_family! {
    static Q4K_DOT_ASM: AsmKernels = "q4k_dot", "dotprod", KArgs, { tile_sb: TILE_SB, i8mm: false }
}

/// # Safety
/// See [`WeightKernel::gemm`]; `w` packed by [`pack`], `a` in the `NeonDot` `Q8_256` layout
/// ([`super::q4k_mmla::ACT_KERNEL_K`]).
unsafe fn gemm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; `pack` writes the SDOT set's layout.
    unsafe { gemm_with(&Q4K_DOT_ASM, args) }
}

/// Q4_K on `NeonDot`.
pub(crate) static Q4_K_DOT: WeightKernel<BlockQ4K> = WeightKernel {
    name: "neondot-q4_k-sdot-asm",
    pack,
    unpack_row,
    acts: ActInput::Native,
    gemm,
};
