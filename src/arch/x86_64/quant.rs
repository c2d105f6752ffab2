//! The AVX2 activation quantizers: `Q8_32` into the x86_64 activation layout (see `layout`), and
//! `Q8_256` into plain `ActBlockK`s (with the per-16 sums).
//!
//! Bit-identical to [`quantize_activation_block`] and [`quantize_activation_block_k`]: the same f32 operations in the same order where
//! order matters.
//! * absmax: `vmaxps(|x|, m)` returns `m` when `|x|` is NaN, so NaN is ignored like `f32::max`;
//!   max is exact and order-free on non-NaN values without signed zeros (`|x|` has none).
//! * `d = amax / 127` and `id` are computed in scalar f32, exactly as the rule.
//! * `v = x * id` is one `vmulps` (the rule's multiply; Rust does not contract to FMA).
//! * round half away from zero: `t = trunc(v)`, `r = v - t` (exact: `|v|` is at most about 127,
//!   far below 2^23), `q = t + (|r| >= 0.5 ? copysign(1, v) : 0)`, exact in f32. `vcvtps2dq`'s
//!   round-half-even would differ on ties.
//! * NaN `v` (only from an infinite input, where `id` is 0) gives 0, like the rule's saturating
//!   `as i8`; `|q| <= 127` otherwise, so the saturating packs never clamp.

use super::layout::{self, ACT_CORR, ACT_D, ACT_REC};
#[cfg(debug_assertions)]
use crate::quant::quantize_activation_block;
use crate::quant::{quantize_activation_block_k, ActBlockK, QK, QK_K};
use core::arch::x86_64::*;

/// Quantizes row `i` of an `m x k` matrix into the x86_64 activation layout (the `ActKernel`
/// entry of every x86_64 tier).
pub(super) fn quantize_row(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]) {
    // The x86_64 act kernel is only reachable through a `QuantizedActivations` whose x86_64 tier
    // passed `Tier::check`, and every x86_64 tier requires AVX2. The detection is a cached load,
    // checked once per row, so this wrapper is sound on its own; the scalar row is never taken
    // in practice.
    if !std::arch::is_x86_feature_detected!("avx2") {
        return layout::quantize_row(x, i, m, k, out);
    }
    let (x, row) = row_records(x, i, k, out);
    // SAFETY: AVX2 is available (checked above); `row_records`' shapes.
    unsafe { quantize_row_avx2(x, row) }
}

/// Row `i`'s `k / 32` blocks of `x` and records of `out`, sliced to exactly that (panics
/// otherwise): `x.len() == row.len() / ACT_REC * QK`, what the quantizers' bodies assume.
fn row_records<'a>(
    x: &'a [f32],
    i: usize,
    k: usize,
    out: &'a mut [u8],
) -> (&'a [f32], &'a mut [u8]) {
    let kb = k / QK;
    (
        &x[..kb * QK],
        &mut out[i * kb * ACT_REC..(i + 1) * kb * ACT_REC],
    )
}

/// # Safety
/// The CPU supports AVX2; `x.len() == row.len() / ACT_REC * QK`, `row.len()` a multiple of
/// `ACT_REC`.
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(x: &[f32], row: &mut [u8]) {
    debug_assert!(row.len().is_multiple_of(ACT_REC) && x.len() == row.len() / ACT_REC * QK);
    // Two passes over groups of up to 16 blocks, the scales first (see the AVX-512 version).
    let kb = x.len() / QK;
    let (mut ds, mut ids) = ([0f32; 16], [0f32; 16]);
    let load = |b: usize| -> [__m256; 4] {
        // SAFETY: callers pass blocks b < kb: 32 f32 at 32 b of `x` (4 unaligned loads of 8).
        // AVX2 per this fn's contract.
        let p = unsafe { x.as_ptr().add(b * QK) };
        core::array::from_fn(|j| unsafe { _mm256_loadu_ps(p.add(8 * j)) })
    };
    for g0 in (0..kb).step_by(16) {
        let n = (kb - g0).min(16);
        for j in 0..n {
            // SAFETY: AVX2 per this fn's contract.
            ds[j] = scale(unsafe { absmax(&load(g0 + j)) });
            ids[j] = inverse(ds[j]);
        }
        for j in 0..n {
            let b = g0 + j;
            // SAFETY: block b < kb: `rec` is 40 bytes at 40 b of `row` (one 32-byte store, two
            // 4-byte stores at ACT_D = 32 and ACT_CORR = 36). AVX2 per this fn's contract.
            unsafe {
                let q = round(&load(b), ids[j]);
                let sum =
                    _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
                let s4 = _mm_add_epi32(
                    _mm256_castsi256_si128(sum),
                    _mm256_extracti128_si256::<1>(sum),
                );
                let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
                let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32::<0b01>(s2));
                let total = _mm_cvtsi128_si32(s1);
                let o = row.as_mut_ptr().add(b * ACT_REC);
                _mm256_storeu_si256(o.cast(), bytes(q));
                o.add(ACT_D).cast::<f32>().write_unaligned(ds[j]);
                o.add(ACT_CORR).cast::<i32>().write_unaligned(-8 * total);
                #[cfg(debug_assertions)]
                {
                    let xb = &x[b * QK..(b + 1) * QK];
                    let r = quantize_activation_block(xb.try_into().expect("32 values"));
                    let qs: [i8; QK] = core::array::from_fn(|j| *o.add(j) as i8);
                    assert_eq!((r.d.to_bits(), r.qs), (ds[j].to_bits(), qs));
                }
            }
        }
    }
}

/// Whether the CPU has the AVX-512 subsets the AVX-512 quantizers use (a cached detection).
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// [`quantize_row`] with AVX-512 (the `ActKernel` entry of the `Avx512Vnni` tier): the same
/// records, bit for bit, two 16-lane vectors per block.
pub(super) fn quantize_row_avx512(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]) {
    // As `quantize_row`: the tier passed `Tier::check` (AVX-512 F / BW / VL), and the cached
    // detection keeps the wrapper sound on its own.
    if !has_avx512() {
        return quantize_row(x, i, m, k, out);
    }
    let (x, row) = row_records(x, i, k, out);
    // SAFETY: AVX-512 F / BW / VL are available (checked above); `row_records`' shapes.
    unsafe { quantize_row_avx512_body(x, row) }
}

/// # Safety
/// The CPU supports AVX-512 F / BW / VL; `x.len() == row.len() / ACT_REC * QK`, `row.len()` a
/// multiple of `ACT_REC`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_avx512_body(x: &[f32], row: &mut [u8]) {
    debug_assert!(row.len().is_multiple_of(ACT_REC) && x.len() == row.len() / ACT_REC * QK);
    // Two passes over groups of up to 16 blocks: the scales first, then the values. One pass per
    // block makes a dependency chain of about 100 cycles (maximum, two divisions, rounding,
    // packing) that fills the scheduler before the next block can start; split, each pass is
    // short chains that overlap.
    let kb = x.len() / QK;
    let (mut ds, mut ids) = ([0f32; 16], [0f32; 16]);
    for g0 in (0..kb).step_by(16) {
        let n = (kb - g0).min(16);
        for j in 0..n {
            // SAFETY: block g0 + j < kb: 32 f32 at 32 (g0 + j) of `x` (2 unaligned loads).
            // AVX-512 per this fn's contract.
            unsafe {
                let p = x.as_ptr().add((g0 + j) * QK);
                // max(|x|, m) keeps m where |x| is NaN (see the module notes); the lanes of m
                // are never NaN, so the reduction's order does not matter.
                let m = _mm512_max_ps(abs16(_mm512_loadu_ps(p)), _mm512_setzero_ps());
                ds[j] = scale(absmax16(_mm512_max_ps(
                    abs16(_mm512_loadu_ps(p.add(16))),
                    m,
                )));
                ids[j] = inverse(ds[j]);
            }
        }
        for j in 0..n {
            let b = g0 + j;
            // SAFETY: block b < kb: 32 f32 at 32 b of `x` (2 unaligned loads of 16), 40 bytes at
            // 40 b of `row` (one 32-byte store, two 4-byte stores at ACT_D = 32 and ACT_CORR =
            // 36). AVX-512 per this fn's contract.
            unsafe {
                let p = x.as_ptr().add(b * QK);
                let vid = _mm512_set1_ps(ids[j]);
                let q = [0, 1].map(|h| round16(_mm512_loadu_ps(p.add(16 * h)), vid));
                // Per 128-bit lane j after the packs: dword 0 = values 4 j .. 4 j + 4 of q[0],
                // dword 1 the same of q[1]; gathered back into element order.
                let p8 = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_setzero_si512());
                let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
                let bytes = _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, p8));
                let total = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
                let o = row.as_mut_ptr().add(b * ACT_REC);
                _mm256_storeu_si256(o.cast(), bytes);
                o.add(ACT_D).cast::<f32>().write_unaligned(ds[j]);
                o.add(ACT_CORR).cast::<i32>().write_unaligned(-8 * total);
                #[cfg(debug_assertions)]
                {
                    let xb = &x[b * QK..(b + 1) * QK];
                    let r = quantize_activation_block(xb.try_into().expect("32 values"));
                    let qs: [i8; QK] = core::array::from_fn(|j| *o.add(j) as i8);
                    assert_eq!((r.d.to_bits(), r.qs), (ds[j].to_bits(), qs));
                }
            }
        }
    }
}

/// Quantizes row `i` of an `m x k` matrix into plain `ActBlockK`s (the `Q8_256` activation
/// kernel of every x86_64 tier; the layout is the scalar one).
pub(super) fn quantize_row_k(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]) {
    let (x, row) = row_blocks_k(x, i, k, out);
    if !std::arch::is_x86_feature_detected!("avx2") {
        // Not reached (see `quantize_row`); the scalar rule keeps this wrapper sound on its own.
        let _ = m;
        for (o, xb) in row.iter_mut().zip(x.chunks_exact(QK_K)) {
            *o = quantize_activation_block_k(xb.try_into().expect("chunk of 256"));
        }
        return;
    }
    // SAFETY: AVX2 is available (checked above); `row_blocks_k`' shapes.
    unsafe { quantize_row_k_avx2(x, row) }
}

/// Row `i`'s `k / 256` blocks of `x` and of `out` (plain `ActBlockK`s), sliced to exactly that
/// (panics otherwise): `x.len() == row.len() * QK_K`, what the quantizers' bodies assume.
fn row_blocks_k<'a>(
    x: &'a [f32],
    i: usize,
    k: usize,
    out: &'a mut [u8],
) -> (&'a [f32], &'a mut [ActBlockK]) {
    let kb = k / QK_K;
    let bytes = &mut out[..(i + 1) * kb * size_of::<ActBlockK>()];
    (
        &x[..kb * QK_K],
        &mut bytemuck::cast_slice_mut::<u8, ActBlockK>(bytes)[i * kb..],
    )
}

/// # Safety
/// The CPU supports AVX2; `x.len() == row.len() * QK_K`.
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_k_avx2(x: &[f32], row: &mut [ActBlockK]) {
    debug_assert_eq!(x.len(), row.len() * QK_K);
    for (xb, o) in x.chunks_exact(QK_K).zip(row.iter_mut()) {
        let p = xb.as_ptr();
        // SAFETY: `xb` has 256 f32, read as 32 unaligned vectors of 8; the stores go to `o`'s
        // 256 values (8 stores of 32 bytes). AVX2 per this fn's contract.
        unsafe {
            let mut m = [_mm256_setzero_ps(); 4];
            for j in 0..32 {
                // Four running maxima of |x| (NaN ignored as in `absmax`), then their maximum.
                let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_loadu_ps(p.add(8 * j)));
                m[j % 4] = _mm256_max_ps(a, m[j % 4]);
            }
            let d = scale(absmax(&m));
            let id = inverse(d);
            o.d = d;
            for c in 0..8 {
                let v: [__m256; 4] =
                    core::array::from_fn(|j| _mm256_loadu_ps(p.add(32 * c + 8 * j)));
                let q = round(&v, id);
                _mm256_storeu_si256(o.qs.as_mut_ptr().add(32 * c).cast(), bytes(q));
                // Sums of values 32 c .. + 16 (vectors 0, 1) and + 16 .. + 32 (vectors 2, 3).
                let h =
                    _mm256_hadd_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
                let h = _mm256_hadd_epi32(h, h);
                let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
                o.bsums[2 * c] = _mm_cvtsi128_si32(s) as i16;
                o.bsums[2 * c + 1] = _mm_extract_epi32::<1>(s) as i16;
            }
            #[cfg(debug_assertions)]
            {
                let r = quantize_activation_block_k(xb.try_into().expect("256 values"));
                assert_eq!(
                    (r.d.to_bits(), r.qs, r.bsums),
                    (o.d.to_bits(), o.qs, o.bsums)
                );
            }
        }
    }
}

/// [`quantize_row_k`] with AVX-512 (the `Q8_256` kernel of the `Avx512Vnni` tier): the same
/// blocks, bit for bit.
pub(super) fn quantize_row_k_avx512(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]) {
    // As `quantize_row_avx512`.
    if !has_avx512() {
        return quantize_row_k(x, i, m, k, out);
    }
    let (x, row) = row_blocks_k(x, i, k, out);
    // SAFETY: AVX-512 F / BW / VL are available (checked above); `row_blocks_k`' shapes.
    unsafe { quantize_row_k_avx512_body(x, row) }
}

/// # Safety
/// The CPU supports AVX-512 F / BW / VL; `x.len() == row.len() * QK_K`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_k_avx512_body(x: &[f32], row: &mut [ActBlockK]) {
    debug_assert_eq!(x.len(), row.len() * QK_K);
    for (xb, o) in x.chunks_exact(QK_K).zip(row.iter_mut()) {
        let p = xb.as_ptr();
        // SAFETY: `xb` has 256 f32, read as 16 unaligned vectors of 16; the stores go to `o`'s
        // 256 values (4 stores of 64 bytes) and 16 sums (one store of 32 bytes). AVX-512 per
        // this fn's contract.
        unsafe {
            // Four running maxima of |x| (NaN ignored as in `absmax`), then their maximum.
            let mut m = [_mm512_setzero_ps(); 4];
            for j in 0..16 {
                m[j % 4] = _mm512_max_ps(abs16(_mm512_loadu_ps(p.add(16 * j))), m[j % 4]);
            }
            let m = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
            let d = scale(absmax16(m));
            let vid = _mm512_set1_ps(inverse(d));
            o.d = d;
            // Per 64 values c: the bytes, and per 128-bit lane j the sum of values 64 c + 16 j
            // .. + 16 as four i32 partial sums.
            let mut part = [_mm512_setzero_si512(); 4];
            for (c, part) in part.iter_mut().enumerate() {
                let q: [__m512i; 4] =
                    [0, 1, 2, 3].map(|j| round16(_mm512_loadu_ps(p.add(64 * c + 16 * j)), vid));
                // After the packs, dword k of 128-bit lane j holds values 4 j .. 4 j + 4 of q[k].
                let p8 = _mm512_packs_epi16(
                    _mm512_packs_epi32(q[0], q[1]),
                    _mm512_packs_epi32(q[2], q[3]),
                );
                let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
                let b = _mm512_permutexvar_epi32(order, p8);
                _mm512_storeu_si512(o.qs.as_mut_ptr().add(64 * c).cast(), b);
                let pairs = _mm512_maddubs_epi16(_mm512_set1_epi8(1), b);
                *part = _mm512_madd_epi16(pairs, _mm512_set1_epi16(1));
            }
            // Lane j, dword c of the reduction: the sum of values 64 c + 16 j .. + 16, which is
            // bsums[4 c + j]; transposed into that order.
            let a01 = _mm512_add_epi32(
                _mm512_unpacklo_epi32(part[0], part[1]),
                _mm512_unpackhi_epi32(part[0], part[1]),
            );
            let a23 = _mm512_add_epi32(
                _mm512_unpacklo_epi32(part[2], part[3]),
                _mm512_unpackhi_epi32(part[2], part[3]),
            );
            let sums = _mm512_add_epi32(
                _mm512_unpacklo_epi64(a01, a23),
                _mm512_unpackhi_epi64(a01, a23),
            );
            let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            let sums = _mm512_permutexvar_epi32(order, sums);
            _mm256_storeu_si256(o.bsums.as_mut_ptr().cast(), _mm512_cvtepi32_epi16(sums));
            #[cfg(debug_assertions)]
            {
                let r = quantize_activation_block_k(xb.try_into().expect("256 values"));
                assert_eq!(
                    (r.d.to_bits(), r.qs, r.bsums),
                    (o.d.to_bits(), o.qs, o.bsums)
                );
            }
        }
    }
}

/// `|v|` per lane (AVX-512 F has the bitwise operations on integer vectors only).
#[inline(always)]
unsafe fn abs16(v: __m512) -> __m512 {
    // SAFETY: register operations; AVX-512 F per the caller's target features.
    unsafe {
        _mm512_castsi512_ps(_mm512_and_si512(
            _mm512_castps_si512(v),
            _mm512_set1_epi32(0x7fff_ffff),
        ))
    }
}

/// The largest lane of `m`, whose lanes are never NaN (so the order does not matter).
#[inline(always)]
unsafe fn absmax16(m: __m512) -> f32 {
    // SAFETY: register operations; AVX-512 F per the caller's target features.
    unsafe {
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(m)));
        absmax(&[_mm256_max_ps(_mm512_castps512_ps256(m), hi)])
    }
}

/// [`round`] on 16 lanes with masks: `t + copysign(1, s)` where `|s - t| >= 0.5`, `t = trunc(s)`,
/// `s = v * vid`; NaN to 0.
#[inline(always)]
unsafe fn round16(v: __m512, vid: __m512) -> __m512i {
    // SAFETY: register operations; AVX-512 F per the caller's target features.
    unsafe {
        let s = _mm512_mul_ps(v, vid);
        let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(s);
        let r = abs16(_mm512_sub_ps(s, t));
        let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(r, _mm512_set1_ps(0.5));
        // copysign(1, s): (s & sign) | 1.0
        let one = _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xEA>(
            _mm512_castps_si512(s),
            _mm512_set1_epi32(i32::MIN),
            _mm512_set1_epi32(0x3f80_0000),
        ));
        let q = _mm512_mask_add_ps(t, up, t, one);
        let ord = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(s, s);
        _mm512_maskz_cvttps_epi32(ord, q)
    }
}

/// The largest `|x|` over the lanes of `v` (a NaN is ignored, see the module notes).
#[inline(always)]
unsafe fn absmax(v: &[__m256]) -> f32 {
    // SAFETY: register operations; AVX2 per the caller's target features.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        for &vj in v {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, vj), m);
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
        _mm_cvtss_f32(m1)
    }
}

/// `d = amax / 127`, as the rule.
#[inline(always)]
fn scale(amax: f32) -> f32 {
    amax / 127.0
}

/// `1 / d`, or 0 where `d` is 0 or `1 / d` overflows, as the rule.
#[inline(always)]
fn inverse(d: f32) -> f32 {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    if id.is_finite() {
        id
    } else {
        0.0
    }
}

/// `round(v * id)`, half away from zero, NaN to 0, as i32 lanes (see the module notes).
#[inline(always)]
unsafe fn round(v: &[__m256; 4], id: f32) -> [__m256i; 4] {
    // SAFETY: register operations; AVX2 per the caller's target features.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let vid = _mm256_set1_ps(id);
        // A loop, not `array::from_fn`: a closure here would not inherit the caller's features.
        let mut out = [_mm256_setzero_si256(); 4];
        for (o, &vj) in out.iter_mut().zip(v) {
            let s = _mm256_mul_ps(vj, vid);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(s);
            let r = _mm256_andnot_ps(sign, _mm256_sub_ps(s, t));
            let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(r, half), one);
            let q = _mm256_add_ps(t, _mm256_or_ps(up, _mm256_and_ps(s, sign)));
            // NaN (ordered compare false) -> 0.
            let q = _mm256_and_ps(q, _mm256_cmp_ps::<_CMP_ORD_Q>(s, s));
            *o = _mm256_cvttps_epi32(q);
        }
        out
    }
}

/// The 32 values of `q` (each at most 127 in magnitude) as bytes in element order.
#[inline(always)]
unsafe fn bytes(q: [__m256i; 4]) -> __m256i {
    // SAFETY: register operations; AVX2 per the caller's target features.
    unsafe {
        // After packing, 4-byte group `j` of the 32 bytes holds elements of vector `j % 4`,
        // lane-half `j / 4`; this puts them back in element order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let p01 = _mm256_packs_epi32(q[0], q[1]);
        let p23 = _mm256_packs_epi32(q[2], q[3]);
        _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_record_bytes_as_the_scalar_row() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        // Rows of 3 blocks, and of 37 (two groups of 16 and a tail of the AVX-512 passes).
        for (m, kb) in [(2usize, 3usize), (3, 37)] {
            let k = kb * 32;
            let mut x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3 * (1 << (i % 5)) as f32)
                .collect();
            // Specials: a NaN (ignored by the maximum, quantized to 0), an infinity (scale inf,
            // every value 0), a block of zeros, ties at +-0.5 after scaling, the largest finite.
            x[3] = f32::NAN;
            x[40] = f32::INFINITY;
            x[64..96].fill(0.0);
            x[96] = 127.0;
            x[97] = 0.5;
            x[98] = -1.5;
            x[99] = -0.5;
            x[130] = f32::MAX;
            let mut a = vec![0u8; layout::act_size(m, k)];
            let (mut b, mut c) = (a.clone(), a.clone());
            for i in 0..m {
                let xr = &x[i * k..(i + 1) * k];
                quantize_row(xr, i, m, k, &mut a);
                layout::quantize_row(xr, i, m, k, &mut b);
                quantize_row_avx512(xr, i, m, k, &mut c); // AVX2 without AVX-512
            }
            assert_eq!(a, b, "AVX2, {m} x {k}");
            assert_eq!(c, b, "AVX-512, {m} x {k}");
        }
    }

    #[test]
    fn same_k_blocks_as_the_rule() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let (m, kb) = (3usize, 3usize);
        let k = kb * QK_K;
        let mut x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3 * (1 << (i % 7)) as f32)
            .collect();
        // Specials as above, and a block whose values tie at +-0.5 after scaling.
        x[3] = f32::NAN;
        x[300] = f32::INFINITY;
        x[512..768].fill(0.0);
        x[768] = 127.0;
        x[769] = 0.5;
        x[770] = -1.5;
        x[771] = -0.5;
        x[1100] = f32::MAX;
        let size = m * kb * size_of::<ActBlockK>();
        let (mut a, mut b) = (vec![0u8; size], vec![0u8; size]);
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            quantize_row_k(xr, i, m, k, &mut a);
            quantize_row_k_avx512(xr, i, m, k, &mut b); // AVX2 without AVX-512
        }
        let want: Vec<ActBlockK> = x
            .chunks_exact(QK_K)
            .map(|c| quantize_activation_block_k(c.try_into().expect("256 values")))
            .collect();
        let want: &[u8] = bytemuck::cast_slice(&want);
        assert_eq!(a, want, "AVX2");
        assert_eq!(b, want, "AVX-512");
    }
}
