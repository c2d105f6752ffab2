//! Q5_K on `NeonDot`: the SDOT micro-kernels of `asm/aarch64/q5k_gemm_dotprod.S` and their
//! weight layout. Activations, argument block and driver are the Q4_K kernels'
//! ([`super::q4k_mmla`]): SDOT by element reads the row pairs' 8-byte runs as 4-byte lanes of one
//! row, as [`super::q4k_dot`] does.
//!
//! # Weights
//!
//! Columns in tiles of 4 (the last padded with zero blocks), each tile's super-blocks
//! contiguous, 720 bytes per tile and super-block (180 per column; GGUF's 176):
//!
//! ```text
//! [sub-block j = 0..8: R0..R4, 16 bytes each]                                            (640)
//! [sub-scales u8 [8][4]] [mins u8 [col c: m_0..m_3] x 4, then [col c: m_4..m_7] x 4]
//! [d f16 [4]] [dmin f16 [4]]
//! ```
//!
//! The SDOT operand `W_t` (t = 0..8) of sub-block `j` is `[col c = 0..4: q[32j + 4t + e], e =
//! 0..4]` (`q` in 0..=31, signed-safe). Byte `b` of the registers:
//!
//! ```text
//! R_j (j < 4): W_j[b] << 3 | W_4+j[b] & 7
//! R4:          the top 2 bits of W_4, W_5, W_6, W_7 at bits 7..6, 5..4, 3..2, 1..0
//! ```
//!
//! so `W_j = R_j >> 3` and `W_4+j` is R_j with bits 7..3 replaced (`sli #3`) by the isolated 2 bits
//! of R4: 14 SIMD ops per sub-block and tile.

use super::formats::{get_sc_mins, mins_sdot, put_sc_mins, q5k_block};
use super::pack::{pack_tiles, unpack_tiles, NR};
use super::q4k_mmla::{gemm_with, AsmKernels, KArgs};
use super::q5_0_mmla::{get_r5, put_r5};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::{BlockQ5K, QK_K};
use bytemuck::Zeroable;

/// Bytes of one sub-block (R0..R4); offsets in a tile super-block; its size.
const SUB: usize = 80;
const SC: usize = 640;
const MINS: usize = 672;
const D: usize = 704;
const DMIN: usize = 712;
const TILE_SB: usize = 720;
// The tail (scales, mins, d, dmin) is `formats::put_sc_mins`'s.
const _: () = assert!(SC == 8 * SUB && MINS == SC + 32 && D == MINS + 32 && TILE_SB == DMIN + 8);
const _: () = assert!(DMIN == D + 8);

/// Bit position of operand `4 + j`'s top two bits in R4 (the SDOT operand order).
const HI_SHIFT: [usize; 4] = [6, 4, 2, 0];

/// Writes the tile super-block of 4 columns' blocks into `dst` (720 zeroed bytes).
fn put(b: &[BlockQ5K; NR], dst: &mut [u8]) {
    let p = b.map(|b| b.parts());
    for (col, p) in p.iter().enumerate() {
        for j in 0..8 {
            for t in 0..8 {
                for e in 0..4 {
                    let q = p.q[32 * j + 4 * t + e];
                    put_r5(&mut dst[SUB * j..][..SUB], t, 4 * col + e, q, &HI_SHIFT);
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
fn get(src: &[u8], col: usize) -> BlockQ5K {
    // Value k: sub-block k / 32, operand (k % 32) / 4, byte 4 col + k % 4.
    let q: [u8; 256] = std::array::from_fn(|k| {
        let g = &src[SUB * (k / 32)..][..SUB];
        get_r5(g, (k % 32) / 4, 4 * col + k % 4, &HI_SHIFT)
    });
    let (sc, mn, d, dmin) = get_sc_mins(&src[SC..], col, mins_sdot);
    q5k_block(&q, &sc, &mn, d, dmin)
}

fn pack(blocks: &[BlockQ5K], n: usize, k: usize) -> AlignedBuf {
    pack_tiles(blocks, n, k, QK_K, TILE_SB, BlockQ5K::zeroed(), put)
}

fn unpack_row(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ5K]) {
    unpack_tiles(buf, k, QK_K, TILE_SB, row, out, get)
}

asm_family! {
    static Q5K_DOT_ASM: AsmKernels = "q5k_dot", "dotprod", KArgs, { tile_sb: TILE_SB, i8mm: false }
}

/// # Safety
/// See [`WeightKernel::gemm`]; `w` packed by [`pack`], `a` in
/// [`super::q4k_mmla::ACT_KERNEL_K`]'s layout.
unsafe fn gemm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; `Q5K_DOT_ASM` reads the layout of `pack` (TILE_SB bytes per
    // tile super-block) and the activation bytes the Q4_K kernels read.
    unsafe { gemm_with(&Q5K_DOT_ASM, args) }
}

/// Q5_K on `NeonDot`.
pub(crate) static Q5_K_DOT: WeightKernel<BlockQ5K> = WeightKernel {
    name: "neondot-q5_k-sdot-asm",
    pack,
    unpack_row,
    acts: ActInput::Native,
    gemm,
};
