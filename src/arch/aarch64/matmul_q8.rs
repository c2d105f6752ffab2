//! Q8_0-weight matmul for the aarch64 tiers (the model's output head: a GEMV per decode step).
//!
//! Layout ([`pack`]): columns in tiles of [`NR`] = 4 (the last padded with zero columns), each
//! tile's `kb` blocks contiguous, [`TILE_BLOCK`] = 144 bytes per block: 8 groups of 16 bytes
//! `[K 4g..4g+3 of columns 0, 1, 2, 3]`, then the 4 column scales as f32. After all tiles, the
//! original f16 scales (`n * kb`, row-major), read only by [`unpack_row`] so unpacking gives the
//! blocks back bit for bit. Activations are plain `ActBlock` rows (`ActInput::Plain`).
//!
//! `NeonDot` and `NeonI8mm` run `asm/aarch64/q8_gemv_dotprod.S` (SDOT by element: one int32
//! lane per column, no reduction), 1..=4 rows per weight pass; `Neon` runs [`gemm_neon`]
//! (SMULL + SADALP intrinsics) on the same layout. Both compute whole tiles into a scratch tile
//! and copy the requested columns (plus bias) out, so nothing outside the ranges is written.

use crate::aligned::AlignedBuf;
use crate::contract::gemm::GemmArgs;
use crate::contract::gemm::{ActInput, WeightKernel};
use crate::quant::{ActBlock, BlockQ8_0, QK};
use half::f16;
use std::arch::aarch64::*;

/// Columns per tile.
const NR: usize = 4;
/// Packed bytes per tile and block: 128 weight bytes, 4 f32 scales.
const TILE_BLOCK: usize = NR * QK + NR * 4;
/// Bytes per plain activation block.
const ACT_BLOCK: usize = size_of::<ActBlock>();
/// Rows per weight pass.
const MR: usize = 4;
/// Column tiles per scratch chunk (a chunk of weights is reused, from cache, by every row group).
const CHUNK_TILES: usize = 16;
const SCRATCH_LD: usize = CHUNK_TILES * NR;

pub(crate) static Q8_DOT: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "neondot-q8-sdot-asm",
    pack,
    unpack_row,
    acts: ActInput::Plain,
    gemm: gemm_dot,
};

pub(crate) static Q8_NEON: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "neon-q8-smull",
    pack,
    unpack_row,
    acts: ActInput::Plain,
    gemm: gemm_neon,
};

fn tiles(n: usize) -> usize {
    n.div_ceil(NR)
}

/// Bytes of the tiled part (the f16 scale table follows).
fn tiled_bytes(n: usize, kb: usize) -> usize {
    tiles(n) * kb * TILE_BLOCK
}

fn pack(blocks: &[BlockQ8_0], n: usize, k: usize) -> AlignedBuf {
    let kb = k / QK;
    let tiled = tiled_bytes(n, kb);
    let mut buf = AlignedBuf::zeroed(tiled + n * kb * 2);
    let bytes = buf.bytes_mut();
    for (j, row) in blocks.chunks_exact(kb).enumerate().take(n) {
        let (t, c) = (j / NR, j % NR);
        for (b, blk) in row.iter().enumerate() {
            let dst = &mut bytes[(t * kb + b) * TILE_BLOCK..][..TILE_BLOCK];
            for g in 0..QK / 4 {
                for e in 0..4 {
                    dst[g * 16 + c * 4 + e] = blk.qs[g * 4 + e] as u8;
                }
            }
            dst[NR * QK + c * 4..][..4].copy_from_slice(&blk.d.to_f32().to_ne_bytes());
            bytes[tiled + (j * kb + b) * 2..][..2].copy_from_slice(&blk.d.to_bits().to_ne_bytes());
        }
    }
    buf
}

fn unpack_row(buf: &AlignedBuf, n: usize, k: usize, row: usize, out: &mut [BlockQ8_0]) {
    let kb = k / QK;
    let tiled = tiled_bytes(n, kb);
    let bytes = buf.bytes();
    let (t, c) = (row / NR, row % NR);
    for (b, blk) in out.iter_mut().enumerate().take(kb) {
        let src = &bytes[(t * kb + b) * TILE_BLOCK..][..TILE_BLOCK];
        for g in 0..QK / 4 {
            for e in 0..4 {
                blk.qs[g * 4 + e] = src[g * 16 + c * 4 + e] as i8;
            }
        }
        let d = &bytes[tiled + (row * kb + b) * 2..][..2];
        blk.d = f16::from_bits(u16::from_ne_bytes([d[0], d[1]]));
    }
}

/// The argument block of the asm routines (offsets `ARG8_*` in `asm/aarch64/q8_gemv_dotprod.S`).
#[repr(C)]
struct Q8Args {
    w: *const u8,
    a: *const u8,
    a_row: usize,
    kb: usize,
    ntiles: usize,
    out: *mut f32,
    ldo_bytes: usize,
}

unsafe extern "C" {
    fn qkern_q8_dot_r1_dotprod(args: *const Q8Args);
    fn qkern_q8_dot_r2_dotprod(args: *const Q8Args);
    fn qkern_q8_dot_r3_dotprod(args: *const Q8Args);
    fn qkern_q8_dot_r4_dotprod(args: *const Q8Args);
}

/// Which micro-kernel computes a scratch chunk.
#[derive(Clone, Copy)]
enum Isa {
    Neon,
    Dot,
}

/// One chunk: rows `r0 .. r0 + nr` (`nr` = 1..=4) of the plain activations `a` times tiles
/// `t0 .. t0 + nt` of the packed weights `w`, `kb` blocks each, into `tmp` (row stride
/// [`SCRATCH_LD`]). Checks every bound the routines assume; panics otherwise (internal
/// invariants: the public API validated the user's input).
#[allow(clippy::too_many_arguments)]
fn run_chunk(
    isa: Isa,
    w: &[u8],
    t0: usize,
    nt: usize,
    kb: usize,
    a: &[u8],
    r0: usize,
    nr: usize,
    tmp: &mut [f32; MR * SCRATCH_LD],
) {
    assert!((1..=MR).contains(&nr) && (1..=CHUNK_TILES).contains(&nt) && kb >= 1);
    assert!((t0 + nt) * kb * TILE_BLOCK <= w.len());
    assert!((r0 + nr) * kb * ACT_BLOCK <= a.len());
    let w = &w[t0 * kb * TILE_BLOCK..(t0 + nt) * kb * TILE_BLOCK];
    let a = &a[r0 * kb * ACT_BLOCK..(r0 + nr) * kb * ACT_BLOCK];
    match isa {
        Isa::Dot => {
            assert!(
                std::arch::is_aarch64_feature_detected!("dotprod"),
                "CPU lacks FEAT_DotProd"
            );
            let args = Q8Args {
                w: w.as_ptr(),
                a: a.as_ptr(),
                a_row: kb * ACT_BLOCK,
                kb,
                ntiles: nt,
                out: tmp.as_mut_ptr(),
                ldo_bytes: SCRATCH_LD * 4,
            };
            let f = [
                qkern_q8_dot_r1_dotprod,
                qkern_q8_dot_r2_dotprod,
                qkern_q8_dot_r3_dotprod,
                qkern_q8_dot_r4_dotprod,
            ][nr - 1];
            // SAFETY: the CPU has FEAT_DotProd (checked). The routine reads `nt * kb` tile blocks
            // of `TILE_BLOCK` bytes from `w` and `kb` activation blocks of each of its `nr` rows
            // (stride `kb * ACT_BLOCK`) from `a`, both exactly the slices above, and writes `nr`
            // rows of `4 * nt <= SCRATCH_LD` floats at stride SCRATCH_LD into `tmp` (which holds
            // MR rows). It uses only caller-saved registers.
            unsafe { f(&args) };
        }
        Isa::Neon => neon_chunk(w, nt, kb, a, nr, tmp),
    }
}

/// The `Neon` micro-kernel (baseline ISA): per group of 4 K, SMULL of the 16 weight bytes with
/// the row's 4 activation bytes broadcast (one int16 product each, |p| <= 128 * 127, no
/// overflow), SADALP into int32 pairs; a final pairwise add gives one lane per column.
fn neon_chunk(w: &[u8], nt: usize, kb: usize, a: &[u8], nr: usize, tmp: &mut [f32]) {
    for t in 0..nt {
        for r in 0..nr {
            let arow = &a[r * kb * ACT_BLOCK..(r + 1) * kb * ACT_BLOCK];
            let mut acc = [0f32; NR];
            // SAFETY: NEON is baseline on aarch64; every load reads inside the slices (16 weight
            // bytes at 16g < 128 of a TILE_BLOCK block, 16 activation bytes at 4 and 20 of a
            // 36-byte block) and the store writes the 4-float array.
            unsafe {
                let mut facc = vdupq_n_f32(0.0);
                for b in 0..kb {
                    let wb = &w[(t * kb + b) * TILE_BLOCK..][..TILE_BLOCK];
                    let ab = &arow[b * ACT_BLOCK..][..ACT_BLOCK];
                    let mut lo = vdupq_n_s32(0);
                    let mut hi = vdupq_n_s32(0);
                    for h in 0..2 {
                        let av = vreinterpretq_s32_s8(vld1q_s8(ab[4 + 16 * h..].as_ptr().cast()));
                        let groups = [
                            vreinterpretq_s8_s32(vdupq_laneq_s32::<0>(av)),
                            vreinterpretq_s8_s32(vdupq_laneq_s32::<1>(av)),
                            vreinterpretq_s8_s32(vdupq_laneq_s32::<2>(av)),
                            vreinterpretq_s8_s32(vdupq_laneq_s32::<3>(av)),
                        ];
                        for (i, ag) in groups.into_iter().enumerate() {
                            let g = 4 * h + i;
                            let wv = vld1q_s8(wb[16 * g..].as_ptr().cast());
                            lo = vpadalq_s16(lo, vmull_s8(vget_low_s8(wv), vget_low_s8(ag)));
                            hi = vpadalq_s16(hi, vmull_high_s8(wv, ag));
                        }
                    }
                    let isum = vpaddq_s32(lo, hi);
                    let ws = vld1q_f32(wb[NR * QK..].as_ptr().cast());
                    let ad = f32::from_ne_bytes([ab[0], ab[1], ab[2], ab[3]]);
                    facc = vfmaq_f32(facc, vcvtq_f32_s32(isum), vmulq_n_f32(ws, ad));
                }
                vst1q_f32(acc.as_mut_ptr(), facc);
            }
            tmp[r * SCRATCH_LD + t * NR..][..NR].copy_from_slice(&acc);
        }
    }
}

/// The `gemm` of both kernels: per chunk of [`CHUNK_TILES`] column tiles, every group of up to
/// [`MR`] rows into the scratch tile, then the requested columns (plus bias) to the output.
///
/// # Safety
/// See `Q8Kernel::gemm`; `w` made by [`pack`], `a` plain `ActBlock` rows.
unsafe fn gemm(isa: Isa, args: &GemmArgs<'_>) {
    let kb = args.k / QK;
    let (rows, cols, ldo) = (args.rows.clone(), args.cols.clone(), args.ldo);
    let out_len = (rows.len() - 1) * ldo + cols.len();
    // SAFETY: the caller hands over an output valid for every element of the ranges, i.e.
    // `out_len` elements from `args.out`; nothing else uses it during this call.
    let out = unsafe { std::slice::from_raw_parts_mut(args.out, out_len) };
    let (w, a) = (args.w.bytes(), args.a.bytes());
    let mut tmp = [0f32; MR * SCRATCH_LD];
    let (t_lo, t_hi) = (cols.start / NR, cols.end.div_ceil(NR));
    let mut t = t_lo;
    while t < t_hi {
        let nt = (t_hi - t).min(CHUNK_TILES);
        let (c_lo, c_hi) = ((t * NR).max(cols.start), ((t + nt) * NR).min(cols.end));
        for r0 in rows.clone().step_by(MR) {
            let nr = (rows.end - r0).min(MR);
            run_chunk(isa, w, t, nt, kb, a, r0, nr, &mut tmp);
            for i in 0..nr {
                let src = &tmp[i * SCRATCH_LD..];
                let dst = &mut out[(r0 + i - rows.start) * ldo..];
                for j in c_lo..c_hi {
                    let b = args.bias.map_or(0.0, |b| b[j]);
                    dst[j - cols.start] = src[j - t * NR] + b;
                }
            }
        }
        t += nt;
    }
}

/// # Safety
/// See `Q8Kernel::gemm` (the tier, and so FEAT_DotProd, was checked; re-checked per call).
unsafe fn gemm_dot(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract.
    unsafe { gemm(Isa::Dot, args) }
}

/// # Safety
/// See `Q8Kernel::gemm`.
unsafe fn gemm_neon(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; NEON is baseline.
    unsafe { gemm(Isa::Neon, args) }
}
