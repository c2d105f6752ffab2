//! Q8_0 weights on `NeonI8mm`: SMMLA on the shared activation layout ([`super::act`]: row pairs,
//! each 16 bytes `[row 2p: K 8c..8c+8][row 2p + 1: K 8c..8c+8]`, already an SMMLA operand), for
//! prefill; the SDOT GEMV (`matmul_q8`) stays on `NeonDot`.
//!
//! Layout ([`pack`]): columns in tiles of [`NR`] = 4 (the last padded with zero columns), a tile's
//! blocks contiguous, [`TB`] = 144 bytes per block (36 per column): 8 vectors of 16 bytes,
//! vector `2h + s` = `[column 2s: K 8h..8h+8][column 2s + 1: K 8h..8h+8]`; the f16 scales as in
//! the file, in the order of the SMMLA results, `[d(2s), d(2s + 1), d(2s), d(2s + 1)]` for
//! `s` = 0, 1 (widened with FCVTL / FCVTL2; unpacking gives the blocks back bit for bit).
//!
//! Micro-kernel: up to [`PP`] row pairs (8 rows) x 4 columns; per block and pair, 4 activation
//! loads and 8 SMMLA into two 2 x 2 int32 accumulators (exact block sums), then one float step
//! each, `y += f32(isum) * (d_w d_a)`. Rows of a pair outside the requested range (an odd
//! start, the repeated last row of an odd `m`) are computed and not written.

use super::act::{self, GROUP_PAIRS};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::{BlockQ8_0, QK};
use core::arch::aarch64::*;
use half::f16;

/// Columns per tile.
const NR: usize = 4;
/// Row pairs per weight pass.
const PP: usize = 4;
/// Packed bytes per tile and block: 128 quants, 8 f16 scales.
const TB: usize = 128 + 16;

pub(crate) static Q8_MMLA: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "neoni8mm-q8-smmla",
    pack,
    unpack_row,
    acts: ActInput::Native,
    gemm,
};

/// Byte of value `e` of column `c` in a tile block.
fn pos(e: usize, c: usize) -> usize {
    16 * (2 * (e / 8) + c / 2) + 8 * (c % 2) + e % 8
}

fn tiles(n: usize) -> usize {
    n.div_ceil(NR)
}

fn pack(blocks: &[BlockQ8_0], n: usize, k: usize) -> AlignedBuf {
    let kb = k / QK;
    assert!(blocks.len() >= n * kb);
    let mut buf = AlignedBuf::zeroed(tiles(n) * kb * TB);
    let bytes = buf.bytes_mut();
    for (j, row) in blocks.chunks_exact(kb).enumerate().take(n) {
        let (t, c) = (j / NR, j % NR);
        for (b, blk) in row.iter().enumerate() {
            let dst = &mut bytes[(t * kb + b) * TB..][..TB];
            for (e, &q) in blk.qs.iter().enumerate() {
                dst[pos(e, c)] = q as u8;
            }
            let d = blk.d.to_bits().to_ne_bytes();
            let (s, h) = (c / 2, c % 2);
            dst[128 + 8 * s + 2 * h..][..2].copy_from_slice(&d);
            dst[128 + 8 * s + 4 + 2 * h..][..2].copy_from_slice(&d);
        }
    }
    buf
}

fn unpack_row(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ8_0]) {
    let kb = k / QK;
    let (t, c) = (row / NR, row % NR);
    for (b, blk) in out.iter_mut().enumerate().take(kb) {
        let src = &buf.bytes()[(t * kb + b) * TB..][..TB];
        for (e, q) in blk.qs.iter_mut().enumerate() {
            *q = src[pos(e, c)] as i8;
        }
        let o = 128 + 8 * (c / 2) + 2 * (c % 2);
        blk.d = f16::from_bits(u16::from_ne_bytes([src[o], src[o + 1]]));
    }
}

/// `acc += ` SMMLA of the row-pair vector `$a` and the column-pair vector `$w`.
macro_rules! smmla {
    ($acc:expr, $a:expr, $w:expr) => {
        // (Expanded inside an `unsafe` block whose SAFETY comment covers it.)
        core::arch::asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {w:v}.16b",
            acc = inout(vreg) $acc,
            a = in(vreg) $a,
            w = in(vreg) $w,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
}

/// `P` row pairs of one activation group (pair data at `a`, scales at `sc`, block 0; `stride`
/// bytes per block) times one column tile (`kb` tile blocks at `w`) into `out` (row `2p + i`,
/// column `c`).
///
/// # Safety
/// `w` is valid for `kb * TB` bytes; `a + b * stride + 64 p` for 64 bytes and
/// `sc + b * stride + 16 p` for 16 bytes, for every `b < kb`, `p < P`; the calling function is
/// compiled with FEAT_I8MM enabled and runs on a CPU that has it.
#[inline(always)]
unsafe fn tile<const P: usize>(
    w: *const u8,
    a: *const u8,
    sc: *const u8,
    stride: usize,
    kb: usize,
    out: &mut [[f32; NR]; 2 * PP],
) {
    // SAFETY: the loads stay within the caller's bounds; SMMLA (inline asm on registers only)
    // runs in a function with FEAT_I8MM enabled, on a CPU that has it (the caller).
    unsafe {
        let mut y = [[vdupq_n_f32(0.0); 2]; P];
        for b in 0..kb {
            let wb = w.add(b * TB);
            let wv: [int8x16_t; 8] = std::array::from_fn(|v| vld1q_s8(wb.add(16 * v).cast()));
            let h = vld1q_u16(wb.add(128).cast());
            let (ws0, ws1): (float32x4_t, float32x4_t);
            // (FCVTL / FCVTL2: base ARMv8.0, registers only; covered by this block's SAFETY.)
            core::arch::asm!(
                "fcvtl {a:v}.4s, {h:v}.4h",
                "fcvtl2 {b:v}.4s, {h:v}.8h",
                h = in(vreg) h,
                a = out(vreg) ws0,
                b = out(vreg) ws1,
                options(pure, nomem, nostack, preserves_flags)
            );
            let ws = [ws0, ws1];
            for (p, yp) in y.iter_mut().enumerate() {
                let ap = a.add(b * stride + 64 * p);
                let mut acc = [vdupq_n_s32(0); 2];
                for h in 0..4 {
                    let av = vld1q_s8(ap.add(16 * h).cast());
                    smmla!(acc[0], av, wv[2 * h]);
                    smmla!(acc[1], av, wv[2 * h + 1]);
                }
                let da = vld1q_f32(sc.add(b * stride + 16 * p).cast());
                for s in 0..2 {
                    yp[s] = vfmaq_f32(yp[s], vcvtq_f32_s32(acc[s]), vmulq_f32(ws[s], da));
                }
            }
        }
        // y[p][s] = [row 2p: columns 2s, 2s + 1; row 2p + 1: columns 2s, 2s + 1].
        for (p, yp) in y.iter().enumerate() {
            for (s, v) in yp.iter().enumerate() {
                let mut t = [0f32; 4];
                vst1q_f32(t.as_mut_ptr(), *v);
                out[2 * p][2 * s..2 * s + 2].copy_from_slice(&t[..2]);
                out[2 * p + 1][2 * s..2 * s + 2].copy_from_slice(&t[2..]);
            }
        }
    }
}

/// # Safety
/// See [`WeightKernel::gemm`]; `w` made by [`pack`], `a` in the [`act`] layout; FEAT_I8MM present.
#[target_feature(enable = "i8mm")]
unsafe fn gemm_i8mm(args: &GemmArgs<'_>) {
    let kb = args.k / QK;
    let (w, a) = (args.w.bytes(), args.a.bytes());
    let (rows, cols, ldo) = (args.rows.clone(), args.cols.clone(), args.ldo);
    // The bounds the tile kernel reads within.
    assert!(kb >= 1 && !rows.is_empty() && !cols.is_empty());
    assert!(rows.end <= args.m && cols.end <= args.n);
    assert!(tiles(args.n) * kb * TB <= w.len());
    assert!(act::size(args.m, args.k) <= a.len());
    if let Some(b) = args.bias {
        assert!(b.len() >= args.n);
    }
    // Pairs holding the requested rows.
    let (p_lo, p_hi) = (rows.start / 2, (rows.end - 1) / 2 + 1);
    let mut tmp = [[0f32; NR]; 2 * PP];
    for t in cols.start / NR..cols.end.div_ceil(NR) {
        // SAFETY: tile t < tiles(n): its kb tile blocks lie within `w` (asserted).
        let wt = unsafe { w.as_ptr().add(t * kb * TB) };
        let (c_lo, c_hi) = ((t * NR).max(cols.start), ((t + 1) * NR).min(cols.end));
        let mut p = p_lo;
        while p < p_hi {
            let g = act::group(p / GROUP_PAIRS, args.m, args.k);
            let q = p % GROUP_PAIRS;
            let np = (p_hi - p).min(PP).min(g.pairs - q);
            // SAFETY: pairs q .. q + np < g.pairs of group g, every block: within the layout's
            // `act::size(m, k)` bytes (asserted); FEAT_I8MM is enabled here and present (the
            // caller).
            unsafe {
                let (ad, asc) = (a.as_ptr().add(g.data(q)), a.as_ptr().add(g.scales(q)));
                match np {
                    1 => tile::<1>(wt, ad, asc, g.stride, kb, &mut tmp),
                    2 => tile::<2>(wt, ad, asc, g.stride, kb, &mut tmp),
                    3 => tile::<3>(wt, ad, asc, g.stride, kb, &mut tmp),
                    _ => tile::<4>(wt, ad, asc, g.stride, kb, &mut tmp),
                }
            }
            for (i, y) in tmp.iter().enumerate().take(2 * np) {
                let r = 2 * p + i;
                if !rows.contains(&r) {
                    continue;
                }
                for j in c_lo..c_hi {
                    let v = y[j - t * NR] + args.bias.map_or(0.0, |b| b[j]);
                    // SAFETY: (r, j) lies in the ranges, for which the caller guarantees `out`
                    // valid at this offset.
                    unsafe { *args.out.add((r - rows.start) * ldo + (j - cols.start)) = v };
                }
            }
            p += np;
        }
    }
}

/// # Safety
/// See [`WeightKernel::gemm`] (the tier, and so FEAT_I8MM, was checked; re-checked here).
unsafe fn gemm(args: &GemmArgs<'_>) {
    assert!(
        std::arch::is_aarch64_feature_detected!("i8mm"),
        "CPU lacks FEAT_I8MM"
    );
    // SAFETY: forwarded contract; the CPU has FEAT_I8MM (checked).
    unsafe { gemm_i8mm(args) }
}
