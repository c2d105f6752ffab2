//! Q4_K on `NeonI8mm`: the SMMLA micro-kernels of `asm/aarch64/q4k_gemm_i8mm.S`, their weight
//! and activation layouts, safe wrapper and driver (which the SDOT kernels of `NeonDot`,
//! [`super::q4k_dot`], share with their own weight layout).
//!
//! # Activations (`Q8_256` of `NeonDot` and `NeonI8mm`, [`ACT_KERNEL_K`])
//!
//! The buffer starts with the plain `ActBlockK` rows (`m * k / 256` blocks, row order), which
//! the other K-quant kernels of the tier read ([`ActInput::Plain`]); then, at the next multiple
//! of 64, the same values as row pairs for SMMLA. Pairs go in groups of up to 8 (16 rows), as in
//! [`super::act`]; the last pair of an odd `m` holds its row twice. Group `g` with `P` pairs,
//! super-block `b` (`P * 560` bytes):
//!
//! ```text
//! sub-block j = 0..8: [pair q = 0..P: 4 chunks c of [row 2q: k 32j+8c..+8][row 2q+1: same]]  (P * 512)
//! pair q = 0..P: H [row 2q: h_0..h_7][row 2q+1: h_0..h_7], L likewise, [d0, d0, d1, d1] f32 (P * 48)
//! ```
//!
//! where `asum_j = 64 h_j + l_j` is the sum of sub-block `j`'s 32 quants (`h_j` in -64..=63,
//! `l_j` in 0..=63), so that the mins term `sum_j m_j asum_j` is two SMMLAs per pair and column
//! pair.
//!
//! # Weights
//!
//! Columns in tiles of 4 (the last padded with zero blocks), each tile's super-blocks
//! contiguous, 592 bytes per tile and super-block (148 per column; GGUF's 144):
//!
//! ```text
//! [sub-block j = 0..8: 4 registers r = 2 cp + c of [col 2cp: 8 bytes][col 2cp+1: 8 bytes];
//!    byte e: q[32j + 8c + e] | q[32j + 8c + 16 + e] << 4]                             (512)
//! [sub-scales u8 [8][4]] [mins u8 [col 0: m_0..m_7][col 1]..[col 3]] [d f16 [4]] [dmin f16 [4]]
//! ```

use super::act::quantize_block_k_neon;
use super::formats::{get_sc_mins, mins_by_col, put_sc_mins, q4k_block};
use super::pack::{pack_tiles, unpack_tiles, NR};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, ActKernel, GemmArgs, WeightKernel};
use crate::quant::{ActBlockK, BlockQ4K, QK_K};
use bytemuck::Zeroable;
use core::arch::aarch64::*;
use std::ops::Range;

/// Packed bytes per tile and super-block.
const TILE_SB: usize = 592;
/// Offsets in a tile super-block.
const SC: usize = 512;
const MINS: usize = 544;
const D: usize = 576;
const DMIN: usize = 584;
/// Row pairs per activation group (16 rows, the tallest kernel).
pub(super) const GROUP_PAIRS: usize = 8;
/// Activation bytes of one pair and sub-block.
const PAIR_SUB: usize = 64;
/// Activation bytes of one pair's tail (H, L, scales) per super-block.
const PAIR_TAIL: usize = 48;
/// Activation bytes of one pair and super-block.
const PAIR_SB: usize = 8 * PAIR_SUB + PAIR_TAIL;
const _: () = assert!(size_of::<ActBlockK>() == 292 && TILE_SB == DMIN + 8);
// The tail (scales, mins, d, dmin) is `formats::put_sc_mins`'s.
const _: () = assert!(MINS == SC + 32 && D == MINS + 32 && DMIN == D + 8);

// ---------------------------------------------------------------------------------------------
// Activation layout.

/// Where one group of row pairs lives.
#[derive(Clone, Copy, Debug)]
struct Group {
    /// Byte offset of super-block 0.
    base: usize,
    /// Pairs in the group (1..=8).
    pairs: usize,
}

impl Group {
    fn sub_stride(&self) -> usize {
        self.pairs * PAIR_SUB
    }
    fn sb_stride(&self) -> usize {
        self.pairs * PAIR_SB
    }
    /// Values of pair `q` (of this group), super-block 0, sub-block 0.
    fn data(&self, q: usize) -> usize {
        self.base + q * PAIR_SUB
    }
    /// Tail of pair `q`, super-block 0.
    fn tail(&self, q: usize) -> usize {
        self.base + 8 * self.sub_stride() + q * PAIR_TAIL
    }
}

/// Bytes of the plain rows, rounded up to 64: where the pairs start.
fn paired_base(m: usize, k: usize) -> usize {
    (m * (k / QK_K) * size_of::<ActBlockK>()).next_multiple_of(64)
}

fn group(g: usize, m: usize, k: usize) -> Group {
    let kb = k / QK_K;
    Group {
        base: paired_base(m, k) + g * GROUP_PAIRS * PAIR_SB * kb,
        pairs: (m.div_ceil(2) - g * GROUP_PAIRS).min(GROUP_PAIRS),
    }
}

fn act_size(m: usize, k: usize) -> usize {
    paired_base(m, k) + m.div_ceil(2) * PAIR_SB * (k / QK_K)
}

/// Quantizes row `i` of `m`: its plain blocks (as the other tiers) and, from the same registers,
/// its half of a pair (both halves for the last row of an odd `m`).
fn act_quantize_row(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]) {
    assert!(x.len() == k && i < m && out.len() >= act_size(m, k));
    let kb = k / QK_K;
    let base = paired_base(m, k);
    let (plain, paired) = out.split_at_mut(base);
    let row = &mut bytemuck::cast_slice_mut::<u8, ActBlockK>(
        &mut plain[..(i + 1) * kb * size_of::<ActBlockK>()],
    )[i * kb..];
    let g = group(i / (2 * GROUP_PAIRS), m, k);
    let q = (i % (2 * GROUP_PAIRS)) / 2;
    let both = i + 1 == m && i.is_multiple_of(2);
    for (b, (blk, xb)) in row.iter_mut().zip(x.chunks_exact(QK_K)).enumerate() {
        let xb: &[f32; QK_K] = xb.try_into().expect("chunk of 256");
        let sb = &mut paired[g.base - base + b * g.sb_stride()..][..g.sb_stride()];
        if both {
            quantize_block_paired::<true>(xb, blk, sb, g.pairs, q, 0);
        } else {
            quantize_block_paired::<false>(xb, blk, sb, g.pairs, q, i % 2);
        }
    }
}

/// Quantizes one super-block into `blk` and into half `h` of pair `q` (both halves if `BOTH`)
/// of `sb`, a group's super-block of `pairs` pairs: per 16 values two 8-byte stores per half, the
/// H/L sums and scales with a few vector operations.
#[inline(always)]
fn quantize_block_paired<const BOTH: bool>(
    x: &[f32; QK_K],
    blk: &mut ActBlockK,
    sb: &mut [u8],
    pairs: usize,
    q: usize,
    h: usize,
) {
    let sub = pairs * PAIR_SUB;
    let data = q * PAIR_SUB + 8 * h;
    let tail = 8 * sub + q * PAIR_TAIL + 8 * h;
    // The farthest bytes written: sub-block 7's last chunk, the scales (+ 8 for both halves).
    let extra = if BOTH { 8 } else { 0 };
    assert!(q < pairs && h < 2 && sb.len() == pairs * PAIR_SB);
    assert!(data + 7 * sub + 56 + extra <= 8 * sub && tail + 40 + extra <= sb.len());
    let p = sb.as_mut_ptr();
    let bsums = quantize_block_k_neon(x, blk, |s, lo, hi| {
        // SAFETY: chunk `c = 2 (s % 2)` of sub-block `s / 2` and the next are at most
        // `data + 7 sub + 48 (+ 8) .. + 8` in `sb` (asserted above).
        unsafe {
            let o = p.add(data + (s / 2) * sub + (s % 2) * 32);
            vst1_s8(o.cast(), lo);
            vst1_s8(o.add(16).cast(), hi);
            if BOTH {
                vst1_s8(o.add(8).cast(), lo);
                vst1_s8(o.add(24).cast(), hi);
            }
        }
    });
    // SAFETY: NEON is part of the aarch64 baseline; the stores write `tail .. tail + 40 (+ 8)`,
    // inside `sb` (asserted above).
    unsafe {
        // asum_j = bsums[2j] + bsums[2j + 1], |asum_j| <= 32 * 127: H = asum >> 6, L = asum & 63.
        let asum = vpaddq_s16(bsums[0], bsums[1]);
        let hi = vmovn_s16(vshrq_n_s16::<6>(asum));
        let lo = vmovn_s16(vandq_s16(asum, vdupq_n_s16(63)));
        let d = vdup_n_f32(blk.d);
        let t = p.add(tail);
        vst1_s8(t.cast(), hi);
        vst1_s8(t.add(16).cast(), lo);
        vst1_f32(t.add(32).cast(), d);
        if BOTH {
            vst1_s8(t.add(8).cast(), hi);
            vst1_s8(t.add(24).cast(), lo);
            vst1_f32(t.add(40).cast(), d);
        }
    }
}

/// `Q8_256` activations of `NeonDot` and `NeonI8mm`: plain rows (read by the tiers' other
/// K-quant kernels), then the row pairs the Q4_K SDOT and SMMLA kernels (and Q5_K, Q6_K) read.
pub(crate) static ACT_KERNEL_K: ActKernel<ActBlockK> = ActKernel {
    size: act_size,
    quantize_row: act_quantize_row,
    unpack: crate::arch::scalar::matmul::unpack_plain_acts_k,
    plain: true,
};

// ---------------------------------------------------------------------------------------------
// Weight layout.

/// Writes the tile super-block of 4 columns' blocks into `dst` (592 zeroed bytes).
fn put(b: &[BlockQ4K; NR], dst: &mut [u8]) {
    let p = b.map(|b| b.parts());
    for (col, p) in p.iter().enumerate() {
        let (cp, half) = (col / 2, col % 2);
        for j in 0..8 {
            for c in 0..2 {
                for e in 0..8 {
                    let lo = p.q[32 * j + 8 * c + e];
                    let hi = p.q[32 * j + 8 * c + 16 + e];
                    dst[64 * j + 16 * (2 * cp + c) + 8 * half + e] = lo | (hi << 4);
                }
            }
        }
    }
    put_sc_mins(
        &p,
        b.map(|b| b.d),
        b.map(|b| b.dmin),
        mins_by_col,
        &mut dst[SC..],
    );
}

/// Block of column `col` from a tile super-block.
fn get(src: &[u8], col: usize) -> BlockQ4K {
    let (cp, half) = (col / 2, col % 2);
    let mut q = [0u8; 256];
    for j in 0..8 {
        for c in 0..2 {
            for e in 0..8 {
                let byte = src[64 * j + 16 * (2 * cp + c) + 8 * half + e];
                q[32 * j + 8 * c + e] = byte & 0x0F;
                q[32 * j + 8 * c + 16 + e] = byte >> 4;
            }
        }
    }
    let (sc, mn, d, dmin) = get_sc_mins(&src[SC..], col, mins_by_col);
    q4k_block(&q, &sc, &mn, d, dmin)
}

fn pack(blocks: &[BlockQ4K], n: usize, k: usize) -> AlignedBuf {
    pack_tiles(blocks, n, k, QK_K, TILE_SB, BlockQ4K::zeroed(), put)
}

fn unpack_row(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ4K]) {
    unpack_tiles(buf, k, QK_K, TILE_SB, row, out, get)
}

// ---------------------------------------------------------------------------------------------
// The micro-kernels and their safe wrapper.

/// The argument block of the micro-kernels (offsets `ARGK_*` in `asm/include/q4k_gemm.h`), the
/// same for the Q6_K SMMLA kernels ([`super::q6k_mmla`]), the Q5_K kernels ([`super::q5k_mmla`],
/// [`super::q5k_dot`]) and the Q4_K SDOT kernels
/// ([`super::q4k_dot`]).
#[repr(C)]
pub(super) struct KArgs {
    w: *const u8,
    a: *const u8,
    a_tail: *const u8,
    sub_stride: usize,
    sb_stride: usize,
    kb: usize,
    ntiles: usize,
    out: *mut f32,
    ldo_bytes: usize,
    nrows: usize,
}

/// The `#define ARG*` lines of `asm/include/q4k_gemm.h`, as constants (generated by build.rs).
mod asm_args {
    include!(concat!(env!("OUT_DIR"), "/asm_q4k_gemm.rs"));
}

// The assembly reads `KArgs` at the header's offsets: each must be the field's.
const _: () = {
    use asm_args::*;
    use std::mem::offset_of;
    assert!(offset_of!(KArgs, w) == ARGK_W);
    assert!(offset_of!(KArgs, a) == ARGK_A);
    assert!(offset_of!(KArgs, a_tail) == ARGK_AT);
    assert!(offset_of!(KArgs, sub_stride) == ARGK_SUBSTRIDE);
    assert!(offset_of!(KArgs, sb_stride) == ARGK_SBSTRIDE);
    assert!(offset_of!(KArgs, kb) == ARGK_KB);
    assert!(offset_of!(KArgs, ntiles) == ARGK_NTILES);
    assert!(offset_of!(KArgs, out) == ARGK_OUT);
    assert!(offset_of!(KArgs, ldo_bytes) == ARGK_LDO);
    assert!(offset_of!(KArgs, nrows) == ARGK_NROWS);
    assert!(size_of::<KArgs>() == ARGK_SIZE);
};

pub(super) type RawKernel = unsafe extern "C" fn(*const KArgs);

/// One format's micro-kernels on the row-paired activations, and what the driver must know.
pub(super) struct AsmKernels {
    /// Packed bytes per column tile of 4 and super-block (`w` is `ntiles * kb` of these).
    pub(super) tile_sb: usize,
    /// Row pairs 1 ..= 8.
    pub(super) pairs: [RawKernel; GROUP_PAIRS],
    /// One row, from a pair that holds it twice.
    pub(super) gemv: RawKernel,
    /// Whether the routines use SMMLA (FEAT_I8MM); all may use SDOT (FEAT_DotProd).
    pub(super) i8mm: bool,
}

asm_family! {
    static Q4K_ASM: AsmKernels = "q4k_mmla", "i8mm", KArgs, { tile_sb: TILE_SB, i8mm: true }
}

/// Row shape of a micro-kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rows {
    /// `np` row pairs, 1 ..= 8.
    Pairs(usize),
    /// One row, from a pair that holds the same row twice (the GEMV).
    One,
}

/// Where a micro-kernel's row pairs are in the activation buffer.
#[derive(Clone, Copy, Debug)]
struct ActPairs {
    /// Values of the first pair, super-block 0, sub-block 0.
    data: usize,
    /// Tail of the first pair, super-block 0.
    tail: usize,
    sub_stride: usize,
    sb_stride: usize,
}

/// Runs one micro-kernel: `rows` (row pairs, or one row) of `a` times column tiles `t0 .. t0 + ntiles` of `w`
/// (`kb` super-blocks each); stores the first `store_rows` rows into `out` (row stride `ldo`).
/// Checks everything the routine assumes and panics otherwise.
#[allow(clippy::too_many_arguments)]
fn run_kernel(
    set: &AsmKernels,
    rows: Rows,
    w: &[u8],
    t0: usize,
    ntiles: usize,
    kb: usize,
    a: &[u8],
    ap: ActPairs,
    out: &mut [f32],
    ldo: usize,
    store_rows: usize,
) {
    assert!(
        std::arch::is_aarch64_feature_detected!("dotprod"),
        "CPU lacks FEAT_DotProd"
    );
    assert!(
        !set.i8mm || std::arch::is_aarch64_feature_detected!("i8mm"),
        "CPU lacks FEAT_I8MM"
    );
    let (np, kernel, max_rows) = match rows {
        Rows::Pairs(np) => {
            assert!((1..=GROUP_PAIRS).contains(&np));
            (np, set.pairs[np - 1], 2 * np)
        }
        Rows::One => (1, set.gemv, 1),
    };
    assert!(ntiles >= 1 && kb >= 1);
    // Weights: ntiles whole tiles of kb super-blocks, contiguous.
    let w_off = t0 * kb * set.tile_sb;
    assert!(w_off + ntiles * kb * set.tile_sb <= w.len());
    // Activations: super-block b < kb, sub-block j < 8, pair p < np reads 64 bytes at
    // data + b sb_stride + j sub_stride + 64 p, and 48 bytes at tail + b sb_stride + 48 p.
    let last = (kb - 1) * ap.sb_stride;
    assert!(ap.data + last + 7 * ap.sub_stride + np * PAIR_SUB <= a.len());
    assert!(ap.tail + last + np * PAIR_TAIL <= a.len());
    // Output: store_rows rows of 4 * ntiles values, stride ldo.
    assert!((1..=max_rows).contains(&store_rows));
    assert!(ldo >= NR * ntiles);
    assert!((store_rows - 1) * ldo + NR * ntiles <= out.len());
    let args = KArgs {
        w: w[w_off..].as_ptr(),
        a: a[ap.data..].as_ptr(),
        a_tail: a[ap.tail..].as_ptr(),
        sub_stride: ap.sub_stride,
        sb_stride: ap.sb_stride,
        kb,
        ntiles,
        out: out.as_mut_ptr(),
        ldo_bytes: ldo * 4,
        nrows: store_rows,
    };
    // SAFETY: the CPU has FEAT_DotProd and, for a set that uses SMMLA, FEAT_I8MM (checked); the
    // routine (of `set`, whose `tile_sb` is its tile super-block size) reads `ntiles * kb` tile
    // super-blocks from `w`, the activation bytes bounded above from `a`, and writes
    // `store_rows` rows of 4 * ntiles values with stride `ldo` into `out`: all inside the
    // slices, as checked above. It saves the callee-saved registers it uses and restores sp.
    unsafe { kernel(&args) };
}

/// Column tiles per scratch call.
const SCRATCH_TILES: usize = 16;
const SCRATCH_LD: usize = SCRATCH_TILES * NR;

/// The GEMM: per 16-row group, the pairs that hold the wanted rows, one kernel call per 16
/// column tiles into a scratch tile, then the wanted elements (plus bias) to the output.
///
/// # Safety
/// See [`WeightKernel::gemm`]; `w` packed for `set`, `a` in [`ACT_KERNEL_K`]'s layout.
pub(super) unsafe fn gemm_with(set: &AsmKernels, args: &GemmArgs<'_>) {
    let (m, k) = (args.m, args.k);
    let kb = k / QK_K;
    let (rows, cols): (Range<usize>, Range<usize>) = (args.rows.clone(), args.cols.clone());
    assert!(kb >= 1 && !rows.is_empty() && !cols.is_empty());
    assert!(rows.end <= m && cols.end <= args.n);
    let out_len = (rows.len() - 1) * args.ldo + cols.len();
    // SAFETY: the caller guarantees `out` valid for every element of the ranges with stride
    // `ldo`, i.e. for `out_len` elements from `args.out`; nothing else uses it during this call.
    let out = unsafe { std::slice::from_raw_parts_mut(args.out, out_len) };
    let (w, a) = (args.w.bytes(), args.a.bytes());
    assert!(a.len() >= act_size(m, k));
    if let Some(b) = args.bias {
        assert!(b.len() >= args.n);
    }
    let mut tmp = [0f32; 2 * GROUP_PAIRS * SCRATCH_LD];
    let group_rows = 2 * GROUP_PAIRS;
    for g in rows.start / group_rows..rows.end.div_ceil(group_rows) {
        let grp = group(g, m, k);
        let g0 = g * group_rows;
        let (lo, hi) = (rows.start.max(g0), rows.end.min(g0 + 2 * grp.pairs));
        let (q0, q1) = ((lo - g0) / 2, (hi - g0).div_ceil(2));
        let row0 = g0 + 2 * q0;
        let ap = ActPairs {
            data: grp.data(q0),
            tail: grp.tail(q0),
            sub_stride: grp.sub_stride(),
            sb_stride: grp.sb_stride(),
        };
        // One row that is the last of an odd M: its pair holds it twice, the GEMV's input.
        let kind = if hi - lo == 1 && lo + 1 == m && m % 2 == 1 {
            Rows::One
        } else {
            Rows::Pairs(q1 - q0)
        };
        let mut t = cols.start / NR;
        while t < cols.end.div_ceil(NR) {
            let nt = (cols.end.div_ceil(NR) - t).min(SCRATCH_TILES);
            run_kernel(
                set,
                kind,
                w,
                t,
                nt,
                kb,
                a,
                ap,
                &mut tmp,
                SCRATCH_LD,
                hi - row0,
            );
            let (c_lo, c_hi) = ((t * NR).max(cols.start), ((t + nt) * NR).min(cols.end));
            for i in lo..hi {
                let src = &tmp[(i - row0) * SCRATCH_LD..];
                let dst = &mut out[(i - rows.start) * args.ldo..];
                for j in c_lo..c_hi {
                    let b = args.bias.map_or(0.0, |b| b[j]);
                    dst[j - cols.start] = src[j - t * NR] + b;
                }
            }
            t += nt;
        }
    }
}

/// # Safety
/// See [`WeightKernel::gemm`]; `w` packed by [`pack`], `a` in [`ACT_KERNEL_K`]'s layout.
unsafe fn gemm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; `Q4K_ASM` reads the layout of `pack`.
    unsafe { gemm_with(&Q4K_ASM, args) }
}

/// Q4_K on `NeonI8mm`.
pub(crate) static Q4_K_I8MM: WeightKernel<BlockQ4K> = WeightKernel {
    name: "neoni8mm-q4_k-smmla-asm",
    pack,
    unpack_row,
    acts: ActInput::Native,
    gemm,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairs as the scalar copy from the plain rows wrote them before the fused quantizer
    /// (the layout the asm kernels read), byte for byte.
    fn pairs_from_plain(out: &mut [u8], m: usize, k: usize) {
        let (kb, ab) = (k / QK_K, size_of::<ActBlockK>());
        for i in 0..m {
            let g = group(i / (2 * GROUP_PAIRS), m, k);
            let q = (i % (2 * GROUP_PAIRS)) / 2;
            let halves: &[usize] = match (i % 2, i + 1 == m) {
                (1, _) => &[1],
                (_, true) => &[0, 1],
                _ => &[0],
            };
            for b in 0..kb {
                let blk: ActBlockK = bytemuck::pod_read_unaligned(&out[(i * kb + b) * ab..][..ab]);
                let sb = b * g.sb_stride();
                for &h in halves {
                    for j in 0..8 {
                        for c in 0..4 {
                            let o = g.data(q) + sb + j * g.sub_stride() + c * 16 + h * 8;
                            let src = &blk.qs[32 * j + 8 * c..][..8];
                            out[o..o + 8].copy_from_slice(bytemuck::cast_slice(src));
                        }
                        let asum = blk.bsums[2 * j] as i32 + blk.bsums[2 * j + 1] as i32;
                        let t = g.tail(q) + sb + h * 8 + j;
                        out[t] = (asum >> 6) as i8 as u8;
                        out[t + 16] = (asum & 63) as u8;
                    }
                    let t = g.tail(q) + sb + 32 + h * 8;
                    out[t..t + 4].copy_from_slice(&blk.d.to_ne_bytes());
                    out[t + 4..t + 8].copy_from_slice(&blk.d.to_ne_bytes());
                }
            }
        }
    }

    /// The fused NEON pair writes give the bytes of the scalar copy: odd and even `m`, a partial
    /// last group, the last unpaired row, all-zero and saturating blocks.
    #[test]
    fn paired_activations_match_the_scalar_copy() {
        let mut seed = 12345u32;
        for (m, kb) in [(1, 1), (2, 2), (3, 1), (16, 1), (17, 2), (33, 3), (34, 1)] {
            let k = kb * QK_K;
            let x: Vec<f32> = (0..m * k)
                .map(|e| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let v = (seed >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0;
                    match (e / QK_K) % 5 {
                        0 => 0.0,
                        1 => v * 1e30,
                        _ => v * (e % 7) as f32,
                    }
                })
                .collect();
            let size = act_size(m, k);
            // u32 words: the plain rows are read as `ActBlockK`s (4-byte aligned).
            let mut words = vec![0x5a5a_5a5au32; size.div_ceil(4)];
            let got: &mut [u8] = &mut bytemuck::cast_slice_mut(&mut words)[..size];
            for (i, row) in x.chunks_exact(k).enumerate() {
                act_quantize_row(row, i, m, k, got);
            }
            let mut want = got.to_vec();
            want[paired_base(m, k)..].fill(0xa5);
            pairs_from_plain(&mut want, m, k);
            assert!(got[..] == want[..], "m {m} k {k}");
        }
    }
}
