//! The Q4_0 GEMM/GEMV driver and register-blocked micro-kernel, written once for every x86_64
//! tier over the few vector operations of [`Isa`].
//!
//! A micro-kernel call computes an `MR x (NG * C)` output tile over the whole of K: per block of
//! 32 it loads 4 weight vectors per column group, splits each into its low and high nibbles
//! (unsigned `0..15`), multiplies them against activation bytes broadcast per row (`vpdpbusd`, or
//! `vpmaddubsw` + adds on AVX2) into an integer accumulator started at the row's correction
//! `-8 * sum(a)`, and folds it into the f32 tile: `y += f32(isum) * (d_w * d_a)`. Every output
//! element sees the same sequence of float operations whatever tile computes it, so any split of a
//! call into sub-ranges gives bit-identical results.
//!
//! Rows come in tiles of `MR` (then of at most 3), columns in tiles of `NG` groups (then single
//! groups); calls of at most 3 rows (GEMV) use tiles of `NGV` groups. Columns are walked in panels
//! of about 64 so that a panel's weights stay in L2 while every row tile passes over them.
//!
//! The same driver runs Q8_0 weights (`KIND = Q8`, VNNI tiers only): 8 weight vectors per block
//! and column group, stored offset by +128 as u8, against the row's correction times 16
//! (`-128 * sum(a)`); and Q5_0 weights (`KIND = Q5`, VNNI tiers only): the Q4_0 nibbles with each
//! column's fifth bits ORed in as 0x10 per byte (so `q` = 0..31), against the correction times 2
//! (`-16 * sum(a)`). The rest is unchanged.
//!
//! Everything here is `#[inline(always)]`: the tier's `#[target_feature]` entry point in `mod.rs`
//! instantiates it, so the intrinsics inside the [`Isa`] methods compile with that tier's features.

use super::layout::{
    k6_qh, k6_ql, k6_sc, k_dmin, k_mins, k_qh, k_qs, k_sc, rec_at, w_rec, w_size, w_vecs_of,
    ACT_CORR, ACT_D, ACT_REC, AK_BSUMS, AK_D, AK_QS, AK_REC, PANEL, Q41, Q4K, Q5, Q51, Q5K, Q6K,
    Q8,
};
use crate::contract::gemm::GemmArgs;
use crate::quant::{QK, QK_K};
use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};

/// How far ahead GEMV tiles prefetch their weights, in bytes.
const PREFETCH: usize = 2048;
/// How far ahead a GEMM call's first row tile prefetches its panel's weights, in bytes.
const PREFETCH_GEMM: usize = 4096;

/// Prefetches the panels' next `PANEL * rec` bytes (one block) ahead of `wb` (the tile's groups
/// at the current block), where the weights come from memory:
/// * a GEMV tile (at most 3 rows) is bound by its weight stream, and the hardware prefetchers
///   alone kept a Q4_K GEMV at 20 GB/s on one Zen 5 core (Q4_0: 34): always, [`PREFETCH`] ahead;
/// * in a GEMM call, the first row tile on a panel (`first`) brings its weights in for the row
///   tiles below it: [`PREFETCH_GEMM`] ahead (one Zen 5 core, N = 17920, K = 1536, 64 and 128
///   rows: Q4_0 +4-7% on `Avx512Vnni`, +8% `AvxVnni`, +7-10% `Avx2`, Q4_K +7%).
#[inline(always)]
fn prefetch<const MR: usize, const NG: usize>(wb: &[*const u8; NG], rec: usize, first: bool) {
    if MR > 3 && !first {
        return;
    }
    let ahead_by = if MR > 3 { PREFETCH_GEMM } else { PREFETCH };
    for g in (0..NG).step_by(PANEL) {
        let ahead = wb[g].wrapping_add(ahead_by);
        for line in (0..PANEL * rec).step_by(64) {
            // SAFETY: a prefetch only hints the cache; it never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast()) };
        }
    }
}

/// The vector operations the micro-kernel needs. Implementations call intrinsics of one tier.
///
/// # Safety
/// Every method may only run on a CPU with the implementation's tier, and pointer arguments must
/// be valid for the bytes the method reads or writes (stated per method).
pub(super) unsafe trait Isa {
    /// i32 lanes (= output columns) per vector.
    const C: usize;
    /// Whether `dot` is exact for any u8 weight byte (Q8_0), not only nibbles.
    const U8_FULL_RANGE: bool;
    /// Integer vector of `4 * C` bytes.
    type V: Copy;
    /// Per-block integer accumulator.
    type Acc: Copy;
    /// f32 vector of `C` lanes.
    type F: Copy;

    /// All bytes 0.
    unsafe fn vzero() -> Self::V;
    /// Loads `4 * C` bytes (any alignment).
    unsafe fn load(p: *const u8) -> Self::V;
    /// `(v & 0x0F, (v >> 4) & 0x0F)` per byte.
    unsafe fn nibbles(v: Self::V) -> (Self::V, Self::V);
    /// Per 32-bit lane `h`: byte `t` (0..4) is `((h >> (shift + t)) & 1) << 4` (`shift` < 29).
    unsafe fn fifth_bits(h: Self::V, shift: i32) -> Self::V;
    /// `a | b`.
    unsafe fn or(a: Self::V, b: Self::V) -> Self::V;
    /// The 4 bytes at `p` (any alignment) in every 32-bit lane.
    unsafe fn bcast4(p: *const u8) -> Self::V;
    /// A block accumulator for a row whose correction is `corr`.
    unsafe fn acc_init(corr: i32) -> Self::Acc;
    /// Per lane: `acc += sum of 4 u8(w) * i8(a)` (exact).
    unsafe fn dot(acc: Self::Acc, w: Self::V, a: Self::V) -> Self::Acc;
    /// The exact integer block sum (`corr` included) per lane, as f32.
    unsafe fn finish(acc: Self::Acc, corr: i32) -> Self::F;
    /// The exact block sum per lane as i32 lanes (no correction; K-quant sub-blocks).
    unsafe fn acc_i32(acc: Self::Acc) -> Self::V;
    /// `part` plus the exact block sum per lane, `corr` included (as `finish`), as i32 lanes: for
    /// tiers whose `dot` must be flushed to i32 within a block (`U8_FULL_RANGE` false, 5- and
    /// 6-bit weights).
    unsafe fn acc_sum(acc: Self::Acc, corr: i32, part: Self::V) -> Self::V;
    /// `C` bytes at `p` (any alignment), zero-extended to `C` i32 lanes.
    unsafe fn load_u8_i32(p: *const u8) -> Self::V;
    /// `2 C` bytes at `p` (any alignment), zero-extended to `2 C` i16 (pairs per i32 lane).
    unsafe fn load_u8_i16(p: *const u8) -> Self::V;
    /// `C` bytes at `p` (any alignment), sign-extended to `C` i32 lanes.
    unsafe fn load_i8_i32(p: *const u8) -> Self::V;
    /// Per byte: `((v >> shift) & 3) << 4` (`shift` <= 6).
    unsafe fn two_bits(v: Self::V, shift: i32) -> Self::V;
    /// Per byte: `((v >> shift) & 1) << 4` (`shift` <= 7).
    unsafe fn one_bit(v: Self::V, shift: i32) -> Self::V;
    /// Per i32 lane: `acc + a * b` (low 32 bits of the product; exact for the K-quants' ranges).
    unsafe fn mullo_add(acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// Per i32 lane: `acc + a.lo16 * b.lo16 + a.hi16 * b.hi16` (i16 pairs, exact).
    unsafe fn madd16_add(acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// i32 lanes to f32 (exact below 2^24).
    unsafe fn cvt(v: Self::V) -> Self::F;
    /// `c - a * b`, fused.
    unsafe fn fnmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// All lanes 0.
    unsafe fn fzero() -> Self::F;
    /// Loads `C` f32 (any alignment).
    unsafe fn fload(p: *const f32) -> Self::F;
    /// Loads `C` f16 (`2 * C` bytes, any alignment) and converts them to f32 (exact).
    unsafe fn fload_f16(p: *const u8) -> Self::F;
    /// `x` in every lane.
    unsafe fn fset1(x: f32) -> Self::F;
    /// `a * b`.
    unsafe fn fmul(a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c`, fused.
    unsafe fn fmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `a + b`.
    unsafe fn fadd(a: Self::F, b: Self::F) -> Self::F;
    /// Stores `C` f32 (any alignment).
    unsafe fn fstore(p: *mut f32, v: Self::F);
}

/// Where a tile's results go: element `(i, j)` at `ptr + (i - r0) * ldo + (j - c0)`, for
/// `j` in `c0..c1` only.
struct Out<'a> {
    ptr: *mut f32,
    ldo: usize,
    r0: usize,
    c0: usize,
    c1: usize,
    bias: Option<&'a [f32]>,
}

/// Stores lanes `j0 .. j0 + C` of row `i`, those inside `c0..c1`, adding the bias.
///
/// # Safety
/// `I`'s tier is supported; `i` is a row of the call and `o` describes a valid output.
#[inline(always)]
unsafe fn store<I: Isa>(o: &Out<'_>, i: usize, j0: usize, mut y: I::F) {
    // SAFETY: row `i` is inside the call's rows, so its start (column c0) is inside `out`.
    let row = unsafe { o.ptr.add((i - o.r0) * o.ldo) };
    if j0 >= o.c0 && j0 + I::C <= o.c1 {
        // SAFETY: columns j0 .. j0 + C lie in c0..c1 <= n: inside the output row and the bias.
        unsafe {
            if let Some(b) = o.bias {
                y = I::fadd(y, I::fload(b.as_ptr().add(j0)));
            }
            I::fstore(row.add(j0 - o.c0), y);
        }
    } else {
        let mut tmp = [0f32; 16];
        debug_assert!(I::C <= tmp.len());
        // SAFETY: tmp holds 16 >= C values.
        unsafe { I::fstore(tmp.as_mut_ptr(), y) };
        for (l, &v) in tmp[..I::C].iter().enumerate() {
            let j = j0 + l;
            if (o.c0..o.c1).contains(&j) {
                let v = o.bias.map_or(v, |b| v + b[j]);
                // SAFETY: column j lies in c0..c1, so the element is inside the output.
                unsafe { *row.add(j - o.c0) = v };
            }
        }
    }
}

/// One `MR x NG*C` tile over all of K: rows `i0 .. i0 + MR`, column groups `g0 .. g0 + NG`.
///
/// # Safety
/// `I`'s tier is supported; `a` points to row `i0`'s first activation record (rows `a_stride`
/// bytes apart, `kb` records each, `MR` rows readable); `w` to the packed weights, in which groups
/// `g0 .. g0 + NG` exist; `o` describes a valid output containing rows `i0 .. i0 + MR`.
// Index loops over the register tile read more plainly than iterator chains here.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<I: Isa, const MR: usize, const NG: usize, const KIND: u8>(
    a: *const u8,
    a_stride: usize,
    w: *const u8,
    kb: usize,
    o: &Out<'_>,
    i0: usize,
    g0: usize,
) {
    if KIND == Q4K || KIND == Q5K {
        // SAFETY: forwarded (the same contract, with Q4_K / Q5_K records and Q8_256 activations).
        return unsafe { tile_k::<I, MR, NG, KIND>(a, a_stride, w, kb, o, i0, g0) };
    }
    if KIND == Q6K {
        // SAFETY: forwarded (the same contract, with Q6_K records and Q8_256 activations).
        return unsafe { tile_k6::<I, MR, NG>(a, a_stride, w, kb, o, i0, g0) };
    }
    let rec = w_rec::<KIND>(I::C);
    // SAFETY: (whole body) every pointer formed below addresses a record of a row < MR or a group
    // < NG, block < kb, inside the buffers as stated in this function's contract; the Isa methods
    // run on a supported CPU.
    unsafe {
        let mut y = [[I::fzero(); NG]; MR];
        // Block 0 of each group; block b is PANEL records further per block.
        let mut wg = [w; NG];
        for g in 0..NG {
            wg[g] = w.add(rec_at(rec, kb, g0 + g, 0));
        }
        for b in 0..kb {
            let ab = a.add(b * ACT_REC);
            let wb = wg.map(|p| p.add(b * PANEL * rec));
            // The call's first row tile, in the tile that starts a layout panel.
            prefetch::<MR, NG>(&wb, rec, i0 == o.r0 && g0.is_multiple_of(PANEL));
            let mut corr = [0i32; MR];
            // Q4_1 / Q5_1: the row's `sum(a)` for the min term (their quants have no offset).
            let mut asum = [0i32; MR];
            let mut acc = [[I::acc_init(0); NG]; MR];
            for r in 0..MR {
                corr[r] = ab
                    .add(r * a_stride + ACT_CORR)
                    .cast::<i32>()
                    .read_unaligned();
                match KIND {
                    Q8 => corr[r] *= 16, // -128 * sum(a) for weights offset by +128
                    Q5 => corr[r] *= 2,  // -16 * sum(a) for the 5-bit values q - 16
                    Q41 | Q51 => {
                        asum[r] = corr[r] / -8;
                        corr[r] = 0;
                    }
                    _ => {}
                }
                acc[r] = [I::acc_init(corr[r]); NG];
            }
            // i32 partial sums of the first half block (only where `split` below).
            let mut part = [[I::vzero(); NG]; MR];
            if KIND == Q8 {
                for v in 0..8 {
                    let mut wv = [I::vzero(); NG];
                    for g in 0..NG {
                        wv[g] = I::load(wb[g].add(w_vecs_of::<KIND>(I::C) + 4 * I::C * v));
                    }
                    for r in 0..MR {
                        let av = I::bcast4(ab.add(r * a_stride + 4 * v));
                        for g in 0..NG {
                            acc[r][g] = I::dot(acc[r][g], wv[g], av);
                        }
                    }
                }
            } else {
                let five = KIND == Q5 || KIND == Q51;
                let mut qh = [I::vzero(); NG];
                if five {
                    for g in 0..NG {
                        qh[g] = I::load(wb[g].add(w_vecs_of::<KIND>(I::C) + 16 * I::C));
                    }
                }
                // Without vpdpbusd the i16 pair sums of 5-bit weights are flushed to i32 after
                // half the block (4 dots of at most 2 * 31 * 127 per i16 lane).
                let split = five && !I::U8_FULL_RANGE;
                for v in 0..4 {
                    if split && v == 2 {
                        for r in 0..MR {
                            for g in 0..NG {
                                part[r][g] = I::acc_i32(acc[r][g]);
                                acc[r][g] = I::acc_init(corr[r]);
                            }
                        }
                    }
                    let mut lo = [I::vzero(); NG];
                    let mut hi = lo;
                    for g in 0..NG {
                        let raw = I::load(wb[g].add(w_vecs_of::<KIND>(I::C) + 4 * I::C * v));
                        (lo[g], hi[g]) = I::nibbles(raw);
                        if five {
                            lo[g] = I::or(lo[g], I::fifth_bits(qh[g], 4 * v as i32));
                            hi[g] = I::or(hi[g], I::fifth_bits(qh[g], 16 + 4 * v as i32));
                        }
                    }
                    for r in 0..MR {
                        let ar = ab.add(r * a_stride);
                        let alo = I::bcast4(ar.add(4 * v));
                        let ahi = I::bcast4(ar.add(16 + 4 * v));
                        for g in 0..NG {
                            acc[r][g] = I::dot(acc[r][g], lo[g], alo);
                            acc[r][g] = I::dot(acc[r][g], hi[g], ahi);
                        }
                    }
                }
            }
            let mut dw = [I::fzero(); NG];
            let mut mw = [I::fzero(); NG];
            for g in 0..NG {
                dw[g] = I::fload_f16(wb[g]);
                if KIND == Q41 || KIND == Q51 {
                    mw[g] = I::fload_f16(wb[g].add(2 * I::C));
                }
            }
            for r in 0..MR {
                let da = I::fset1(ab.add(r * a_stride + ACT_D).cast::<f32>().read_unaligned());
                for g in 0..NG {
                    let isum = if (KIND == Q5 || KIND == Q51) && !I::U8_FULL_RANGE {
                        I::cvt(I::acc_sum(acc[r][g], corr[r], part[r][g]))
                    } else {
                        I::finish(acc[r][g], corr[r])
                    };
                    y[r][g] = I::fmadd(isum, I::fmul(dw[g], da), y[r][g]);
                    if KIND == Q41 || KIND == Q51 {
                        let asum = I::fset1(asum[r] as f32);
                        y[r][g] = I::fmadd(asum, I::fmul(mw[g], da), y[r][g]);
                    }
                }
            }
        }
        for r in 0..MR {
            for g in 0..NG {
                store::<I>(o, i0 + r, (g0 + g) * I::C, y[r][g]);
            }
        }
    }
}

/// [`tile`] for Q4_K weights (`layout::pack_q4k`, `kb` super-blocks; Q5_K: `layout::pack_q5k`,
/// the fifth bits ORed into the nibbles) and `Q8_256` activations
/// (plain `ActBlockK` records of `AK_REC` bytes). Per super-block, row and column group: for each
/// sub-block of 32 the exact integer dot (`dot`, 8 vectors of 4 values), times the column's
/// 6-bit scale, summed in i32 (`mullo_add`); the mins term `sum_j m_j asum_j` from the row's
/// per-32 sums (i16 pairs, `madd16_add`); then one float step per super-block:
/// `y += S * (d_w d_a) - M * (dmin_w d_a)`.
///
/// # Safety
/// As [`tile`].
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile_k<I: Isa, const MR: usize, const NG: usize, const KIND: u8>(
    a: *const u8,
    a_stride: usize,
    w: *const u8,
    kb: usize,
    o: &Out<'_>,
    i0: usize,
    g0: usize,
) {
    let c = I::C;
    let rec = w_rec::<KIND>(c);
    // Without vpdpbusd the i16 sums of 5-bit values are flushed to i32 after 4 of the 8 dots.
    let split = KIND == Q5K && !I::U8_FULL_RANGE;
    // SAFETY: (whole body) as in `tile`: every pointer addresses a record of a row < MR or a group
    // < NG, super-block < kb, inside the buffers of the contract.
    unsafe {
        let mut y = [[I::fzero(); NG]; MR];
        let mut wg = [w; NG];
        for g in 0..NG {
            wg[g] = w.add(rec_at(rec, kb, g0 + g, 0));
        }
        for b in 0..kb {
            let ab = a.add(b * AK_REC);
            let wb = wg.map(|p| p.add(b * PANEL * rec));
            // The call's first row tile, in the tile that starts a layout panel.
            prefetch::<MR, NG>(&wb, rec, i0 == o.r0 && g0.is_multiple_of(PANEL));
            // Per row: the sums of each sub-block of 32 as i16 pairs (sub-blocks 2h, 2h + 1).
            let mut pairs = [[0u32; 4]; MR];
            for r in 0..MR {
                let bs = ab
                    .add(r * a_stride + AK_BSUMS)
                    .cast::<[i16; 16]>()
                    .read_unaligned();
                for h in 0..4 {
                    let lo = (bs[4 * h] + bs[4 * h + 1]) as u16 as u32;
                    let hi = (bs[4 * h + 2] + bs[4 * h + 3]) as u16 as u32;
                    pairs[r][h] = lo | (hi << 16);
                }
            }
            let mut tot = [[I::vzero(); NG]; MR];
            // Sub-block `j = 2 q + HALF`: the low (HALF 0) or high nibbles of vectors 8 q ..;
            // a macro so that the choice of nibble is fixed in each copy.
            macro_rules! sub_block {
                ($q:expr, $half:literal) => {{
                    let j = 2 * $q + $half;
                    let mut acc = [[I::acc_init(0); NG]; MR];
                    let mut part = [[I::vzero(); NG]; MR];
                    for t in 0..8 {
                        if split && t == 4 {
                            for r in 0..MR {
                                for g in 0..NG {
                                    part[r][g] = I::acc_i32(acc[r][g]);
                                    acc[r][g] = I::acc_init(0);
                                }
                            }
                        }
                        let mut wv = [I::vzero(); NG];
                        for g in 0..NG {
                            let raw = I::load(wb[g].add(k_qs(c) + (8 * $q + t) * 4 * c));
                            let (lo, hi) = I::nibbles(raw);
                            wv[g] = if $half == 0 { lo } else { hi };
                            if KIND == Q5K {
                                let qh = I::load(wb[g].add(k_qh(c) + t * 4 * c));
                                wv[g] = I::or(wv[g], I::one_bit(qh, j as i32));
                            }
                        }
                        for r in 0..MR {
                            let av = I::bcast4(ab.add(r * a_stride + AK_QS + 32 * j + 4 * t));
                            for g in 0..NG {
                                acc[r][g] = I::dot(acc[r][g], wv[g], av);
                            }
                        }
                    }
                    for g in 0..NG {
                        let sc = I::load_u8_i32(wb[g].add(k_sc(c) + j * c));
                        for r in 0..MR {
                            let isum = if split {
                                I::acc_sum(acc[r][g], 0, part[r][g])
                            } else {
                                I::acc_i32(acc[r][g])
                            };
                            tot[r][g] = I::mullo_add(tot[r][g], isum, sc);
                        }
                    }
                }};
            }
            for q in 0..4 {
                sub_block!(q, 0);
                sub_block!(q, 1);
            }
            for g in 0..NG {
                let dw = I::fload_f16(wb[g]);
                let dm = I::fload_f16(wb[g].add(k_dmin(c)));
                for r in 0..MR {
                    let mut mins = I::vzero();
                    for h in 0..4 {
                        let m = I::load_u8_i16(wb[g].add(k_mins(c) + h * 2 * c));
                        let s = I::bcast4(pairs[r].as_ptr().add(h).cast());
                        mins = I::madd16_add(mins, m, s);
                    }
                    let da = I::fset1(ab.add(r * a_stride + AK_D).cast::<f32>().read_unaligned());
                    y[r][g] = I::fmadd(I::cvt(tot[r][g]), I::fmul(dw, da), y[r][g]);
                    y[r][g] = I::fnmadd(I::cvt(mins), I::fmul(dm, da), y[r][g]);
                }
            }
        }
        for r in 0..MR {
            for g in 0..NG {
                store::<I>(o, i0 + r, (g0 + g) * I::C, y[r][g]);
            }
        }
    }
}

/// [`tile`] for Q6_K weights (`layout::pack_q6k`) and `Q8_256` activations. Per super-block, row
/// and column group: for each sub-block of 16 the exact dot of the unsigned 6-bit values with the
/// activations, started at `-32 * bsum` (so it is the dot of `q - 32`), times the column's i8 scale,
/// summed in i32; then `y += S * (d_w d_a)` once per super-block.
///
/// # Safety
/// As [`tile`].
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile_k6<I: Isa, const MR: usize, const NG: usize>(
    a: *const u8,
    a_stride: usize,
    w: *const u8,
    kb: usize,
    o: &Out<'_>,
    i0: usize,
    g0: usize,
) {
    let c = I::C;
    let rec = w_rec::<Q6K>(c);
    // SAFETY: (whole body) as in `tile`.
    unsafe {
        let mut y = [[I::fzero(); NG]; MR];
        let mut wg = [w; NG];
        for g in 0..NG {
            wg[g] = w.add(rec_at(rec, kb, g0 + g, 0));
        }
        for b in 0..kb {
            let ab = a.add(b * AK_REC);
            let wb = wg.map(|p| p.add(b * PANEL * rec));
            // The call's first row tile, in the tile that starts a layout panel.
            prefetch::<MR, NG>(&wb, rec, i0 == o.r0 && g0.is_multiple_of(PANEL));
            let mut bsums = [[0i16; 16]; MR];
            for r in 0..MR {
                bsums[r] = ab
                    .add(r * a_stride + AK_BSUMS)
                    .cast::<[i16; 16]>()
                    .read_unaligned();
            }
            let mut tot = [[I::vzero(); NG]; MR];
            // Sub-block `s` (values 16 s ..): vectors `u = 4 s ..`, in the low nibbles for
            // s < 8 (`HIGH` 0) and the high ones above; a macro so that the choice is fixed in
            // each copy.
            macro_rules! sub_blocks {
                ($high:literal) => {
                    for s in 8 * $high..8 * $high + 8 {
                        let mut acc = [[I::acc_init(0); NG]; MR];
                        for r in 0..MR {
                            acc[r] = [I::acc_init(-32 * bsums[r][s] as i32); NG];
                        }
                        // Without vpdpbusd, flush the i16 sums after 2 of the 4 dots (6-bit values:
                        // at most 2 * 63 * 127 per dot and i16 lane).
                        let split = !I::U8_FULL_RANGE;
                        let mut part = [[I::vzero(); NG]; MR];
                        for uu in 0..4 {
                            if split && uu == 2 {
                                for r in 0..MR {
                                    for g in 0..NG {
                                        part[r][g] = I::acc_i32(acc[r][g]);
                                        acc[r][g] = I::acc_init(0);
                                    }
                                }
                            }
                            let u = 4 * s + uu;
                            let mut wv = [I::vzero(); NG];
                            for g in 0..NG {
                                let raw = I::load(wb[g].add(k6_ql(c) + (u % 32) * 4 * c));
                                let (lo, hi) = I::nibbles(raw);
                                let hb = I::load(wb[g].add(k6_qh(c) + (u % 16) * 4 * c));
                                let nib = if $high == 0 { lo } else { hi };
                                wv[g] = I::or(nib, I::two_bits(hb, 2 * (u / 16) as i32));
                            }
                            for r in 0..MR {
                                let av = I::bcast4(ab.add(r * a_stride + AK_QS + 4 * u));
                                for g in 0..NG {
                                    acc[r][g] = I::dot(acc[r][g], wv[g], av);
                                }
                            }
                        }
                        for g in 0..NG {
                            let sc = I::load_i8_i32(wb[g].add(k6_sc(c) + s * c));
                            for r in 0..MR {
                                let isum = if split {
                                    I::acc_sum(acc[r][g], -32 * bsums[r][s] as i32, part[r][g])
                                } else {
                                    I::acc_i32(acc[r][g])
                                };
                                tot[r][g] = I::mullo_add(tot[r][g], isum, sc);
                            }
                        }
                    }
                };
            }
            sub_blocks!(0);
            sub_blocks!(1);
            for g in 0..NG {
                let dw = I::fload_f16(wb[g]);
                for r in 0..MR {
                    let da = I::fset1(ab.add(r * a_stride + AK_D).cast::<f32>().read_unaligned());
                    y[r][g] = I::fmadd(I::cvt(tot[r][g]), I::fmul(dw, da), y[r][g]);
                }
            }
        }
        for r in 0..MR {
            for g in 0..NG {
                store::<I>(o, i0 + r, (g0 + g) * I::C, y[r][g]);
            }
        }
    }
}

/// The whole GEMM of `args` with tiles `MR x NG` (calls of more than 3 rows) and `1..=3 x NGV`.
/// `KIND`: the weights are Q4_0 (`layout::pack`), Q8_0 (`layout::pack_q8`) or Q5_0
/// (`layout::pack_q5`).
///
/// # Safety
/// `I`'s tier is supported and `args` satisfies the contract of `WeightKernel::gemm`, with weights
/// packed for `KIND` for group width `I::C` and activations
/// by `layout::quantize_row`.
#[inline(always)]
pub(super) unsafe fn gemm<
    I: Isa,
    const MR: usize,
    const NG: usize,
    const NGV: usize,
    const KIND: u8,
>(
    args: &GemmArgs<'_>,
) {
    // Q8_0 weights offset to u8 reach 255 * 127 per product: only exact with vpdpbusd. The 5- and
    // 6-bit formats flush their i16 sums to i32 often enough on the other tiers (`split`).
    const { assert!(KIND != Q8 || I::U8_FULL_RANGE) };
    let c = I::C;
    let (kb, a_stride) = if KIND == Q4K || KIND == Q5K || KIND == Q6K {
        (args.k / QK_K, args.k / QK_K * AK_REC)
    } else {
        (args.k / QK, args.k / QK * ACT_REC)
    };
    let (g0, g1) = (args.cols.start / c, args.cols.end.div_ceil(c));
    let o = Out {
        ptr: args.out,
        ldo: args.ldo,
        r0: args.rows.start,
        c0: args.cols.start,
        c1: args.cols.end,
        bias: args.bias,
    };
    let t = Tiles {
        a: args.a.bytes().as_ptr(),
        a_stride,
        w: args.w.bytes().as_ptr(),
        kb,
        o,
    };
    // Buffers hold what the tiles read: `m` rows of `kb` records, `ceil(n / C)` groups of `kb`.
    debug_assert!(args.a.bytes().len() >= args.m * a_stride);
    debug_assert!(args.w.bytes().len() >= w_size(w_rec::<KIND>(c), c, args.n, kb));

    let rows = args.rows.clone();
    if rows.len() <= 3 {
        // SAFETY: the tiles cover exactly the call's rows (<= m) and groups g0..g1 (< ceil(n / C)).
        unsafe { cols::<I, MR, NG, NGV, KIND>(&t, rows.start, rows.len(), g0, g1, NGV) };
        return;
    }
    let panel = (64 / c).div_ceil(NG) * NG;
    let mut p = g0;
    while p < g1 {
        let pend = (p + panel).min(g1);
        let mut i = rows.start;
        while i < rows.end {
            let left = rows.end - i;
            let (mr, ng) = if left >= MR {
                (MR, NG)
            } else {
                (left.min(3), NGV)
            };
            // SAFETY: rows i .. i + mr lie in the call's rows, groups p .. pend in g0..g1.
            unsafe { cols::<I, MR, NG, NGV, KIND>(&t, i, mr, p, pend, ng) };
            i += mr;
        }
        p = pend;
    }
}

/// The operands of one call, for [`cols`] and [`run`].
struct Tiles<'a> {
    a: *const u8,
    a_stride: usize,
    w: *const u8,
    kb: usize,
    o: Out<'a>,
}

/// Rows `i .. i + mr`, groups `g .. end`: tiles of `ng` groups, then single groups.
///
/// # Safety
/// As [`run`] for every tile.
#[inline(always)]
unsafe fn cols<I: Isa, const MR: usize, const NG: usize, const NGV: usize, const KIND: u8>(
    t: &Tiles<'_>,
    i: usize,
    mr: usize,
    g: usize,
    end: usize,
    ng: usize,
) {
    let mut g = g;
    // SAFETY: the caller's contract, tile by tile.
    unsafe {
        while g + ng <= end {
            run::<I, MR, NG, NGV, KIND>(t, i, mr, g, ng);
            g += ng;
        }
        for g in g..end {
            run::<I, MR, NG, NGV, KIND>(t, i, mr, g, 1);
        }
    }
}

/// One tile of `mr` rows from row `i` and `ng` groups from group `g`; `(mr, ng)` is `(MR, NG)`,
/// `(MR, 1)`, `(1..=3, NGV)` or `(1..=3, 1)`.
///
/// # Safety
/// `I`'s tier is supported, rows `i .. i + mr` are rows of the call and groups `g .. g + ng` exist
/// in the packed weights.
#[inline(always)]
unsafe fn run<I: Isa, const MR: usize, const NG: usize, const NGV: usize, const KIND: u8>(
    t: &Tiles<'_>,
    i: usize,
    mr: usize,
    g: usize,
    ng: usize,
) {
    // SAFETY: row i exists, so the offset stays inside the activations; the tile reads `mr` rows
    // from there and `ng` groups from `g`, which exist by the contract.
    unsafe {
        let a = t.a.add(i * t.a_stride);
        macro_rules! go {
            ($mr:expr, $ng:expr) => {
                tile::<I, { $mr }, { $ng }, KIND>(a, t.a_stride, t.w, t.kb, &t.o, i, g)
            };
        }
        if mr == MR && ng == NG {
            go!(MR, NG)
        } else if mr == MR && ng == 1 {
            go!(MR, 1)
        } else if ng == NGV {
            match mr {
                1 => go!(1, NGV),
                2 => go!(2, NGV),
                _ => go!(3, NGV),
            }
        } else {
            debug_assert_eq!(ng, 1);
            match mr {
                1 => go!(1, 1),
                2 => go!(2, 1),
                _ => go!(3, 1),
            }
        }
    }
}
