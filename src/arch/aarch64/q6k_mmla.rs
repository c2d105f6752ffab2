//! Q6_K on `NeonI8mm`: the SMMLA micro-kernels of `asm/aarch64/q6k_gemm_i8mm.S` and their weight
//! layout. They read the tier's row-paired `Q8_256` activations of [`super::q4k_mmla`] (the Q4_K
//! kernel's [`super::q4k_mmla::ACT_KERNEL_K`], unchanged: a Q4_K sub-block of 32 is two Q6_K
//! sub-blocks of 16; only the pair scales of the tail are read) and share its driver
//! ([`super::q4k_mmla::gemm_with`]) and argument block.
//!
//! # Weights
//!
//! Columns in tiles of 4 (the last padded with zero blocks), each tile's super-blocks
//! contiguous, 904 bytes per tile and super-block (226 per column; GGUF's 210):
//!
//! ```text
//! [sub-block s = 0..16: A, B, C, 16 bytes each]                                          (768)
//! [sub-scales i16 [16][4]] [d f16 [4]]                                                 (128 + 8)
//! ```
//!
//! Sub-block `s` holds four SMMLA operands `O = 2 cp + h` (column pair `cp`, K half `h`), byte
//! `e`: column `2 cp + e / 8`, value `16 s + 8 h + e % 8`, as `w = q - 32` in 6-bit two's
//! complement. `A = O0 << 2 | O3 & 3`, `B = O1 << 2 | (O3 >> 2) & 3`, `C = O2 << 2 | O3 >> 4`:
//! the kernel gets each operand as `4 w` (low bits zero) with one or two shift/mask ops.

use super::formats::{get_f16, put_f16, q6k_block};
use super::pack::{pack_tiles, unpack_tiles, NR};
use super::q4k_mmla::{gemm_with, AsmKernels, KArgs};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::{BlockQ6K, QK_K};
use bytemuck::Zeroable;

/// Offsets in a tile super-block: sub-scales, d; its size.
const SC: usize = 768;
const D: usize = 896;
pub(super) const TILE_SB: usize = 904;
const _: () = assert!(SC == 16 * 48 && D == SC + 128 && TILE_SB == D + 8);

/// Where byte `e` (0..16) of operand `o` (0..4) of sub-block `s` comes from: (column, value
/// index). The tile layout is the same for the SDOT kernel of `NeonDot` ([`super::q6k_dot`]) but
/// for this order of the operands' bytes.
pub(super) type Lanes = fn(usize, usize, usize) -> (usize, usize);

/// SMMLA operands: `[col 2cp: 8 values][col 2cp + 1: same]`, `o = 2 cp + h` (K half `h`).
fn lanes_mmla(s: usize, o: usize, e: usize) -> (usize, usize) {
    let (cp, h) = (o / 2, o % 2);
    (2 * cp + e / 8, 16 * s + 8 * h + e % 8)
}

/// Writes the tile super-block of 4 columns' blocks into `dst` (904 zeroed bytes).
fn put(lane: Lanes, b: &[BlockQ6K; NR], dst: &mut [u8]) {
    let p = b.map(|b| b.parts());
    for s in 0..16 {
        for e in 0..16 {
            // 6-bit two's complement of q - 32 per operand.
            let w: [u8; 4] = std::array::from_fn(|o| {
                let (col, k) = lane(s, o, e);
                p[col].1[k] as u8 & 63
            });
            let g = &mut dst[48 * s..][..48];
            g[e] = w[0] << 2 | (w[3] & 3);
            g[16 + e] = w[1] << 2 | ((w[3] >> 2) & 3);
            g[32 + e] = w[2] << 2 | (w[3] >> 4);
        }
    }
    for (col, p) in p.iter().enumerate() {
        for s in 0..16 {
            let o = SC + 8 * s + 2 * col;
            dst[o..o + 2].copy_from_slice(&(p.0[s] as i16).to_ne_bytes());
        }
    }
    put_f16(b.map(|b| b.d), &mut dst[D..]);
}

/// Block of column `col` from a tile super-block.
fn get(lane: Lanes, src: &[u8], col: usize) -> BlockQ6K {
    let mut u = [0u8; 256];
    for s in 0..16 {
        let g = &src[48 * s..][..48];
        for e in 0..16 {
            let (a, b, c) = (g[e], g[16 + e], g[32 + e]);
            let w = [
                a >> 2,
                b >> 2,
                c >> 2,
                (a & 3) | (b & 3) << 2 | (c & 3) << 4,
            ];
            for (o, &w) in w.iter().enumerate() {
                let (c, k) = lane(s, o, e);
                if c == col {
                    u[k] = w ^ 32;
                }
            }
        }
    }
    let sc: [i8; 16] = std::array::from_fn(|s| {
        let o = SC + 8 * s + 2 * col;
        i16::from_ne_bytes([src[o], src[o + 1]]) as i8
    });
    q6k_block(&u, sc, get_f16(&src[D..], col))
}

/// Packs `n` columns of `k` values (rows of `blocks`) into tiles with the operand order `lane`.
pub(super) fn pack_with(lane: Lanes, blocks: &[BlockQ6K], n: usize, k: usize) -> AlignedBuf {
    let put = |b: &[BlockQ6K; NR], dst: &mut [u8]| put(lane, b, dst);
    pack_tiles(blocks, n, k, QK_K, TILE_SB, BlockQ6K::zeroed(), put)
}

/// Column `row`'s blocks from tiles packed by [`pack_with`] with the same `lane`.
pub(super) fn unpack_row_with(
    lane: Lanes,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ6K],
) {
    unpack_tiles(buf, k, QK_K, TILE_SB, row, out, |src, c| get(lane, src, c))
}

fn pack(blocks: &[BlockQ6K], n: usize, k: usize) -> AlignedBuf {
    pack_with(lanes_mmla, blocks, n, k)
}

fn unpack_row(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ6K]) {
    unpack_row_with(lanes_mmla, buf, k, row, out)
}

asm_family! {
    static Q6K_ASM: AsmKernels = "q6k_mmla", "i8mm", KArgs, { tile_sb: TILE_SB, i8mm: true }
}

/// # Safety
/// See [`WeightKernel::gemm`]; `w` packed by [`pack`], `a` in
/// [`super::q4k_mmla::ACT_KERNEL_K`]'s layout.
unsafe fn gemm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; `Q6K_ASM` reads the layout of `pack` (TILE_SB bytes per tile
    // super-block) and the activation bytes the Q4_K kernels read, or fewer.
    unsafe { gemm_with(&Q6K_ASM, args) }
}

/// Q6_K on `NeonI8mm`.
pub(crate) static Q6_K_I8MM: WeightKernel<BlockQ6K> = WeightKernel {
    name: "neoni8mm-q6_k-smmla-asm",
    pack,
    unpack_row,
    acts: ActInput::Native,
    gemm,
};
