//! The AVX2 activation quantizer for the x86_64 activation layout (see `layout`).
//!
//! Bit-identical to [`quantize_activation_block`]: the same f32 operations in the same order where
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
use crate::quant::QK;
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
    let kb = k / QK;
    let x = &x[..kb * QK];
    let row = &mut out[i * kb * ACT_REC..(i + 1) * kb * ACT_REC];
    // SAFETY: AVX2 is available (checked above); `x` holds `kb` blocks of 32 values and `row`
    // `kb` records of `ACT_REC` bytes (both sliced to exactly that above, which panics otherwise).
    unsafe { quantize_row_avx2(x, row) }
}

/// # Safety
/// The CPU supports AVX2; `x.len() == row.len() / ACT_REC * QK`, `row.len()` a multiple of
/// `ACT_REC`.
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_avx2(x: &[f32], row: &mut [u8]) {
    debug_assert!(row.len().is_multiple_of(ACT_REC) && x.len() == row.len() / ACT_REC * QK);
    let sign = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    // After packing, 4-byte group `j` of the 32 bytes holds elements of vector `j % 4`,
    // lane-half `j / 4`; this puts them back in element order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (xb, rec) in x.chunks_exact(QK).zip(row.chunks_exact_mut(ACT_REC)) {
        let p = xb.as_ptr();
        // SAFETY: `xb` has 32 f32 (4 unaligned loads of 8); `rec` has 40 bytes (one 32-byte
        // store, two 4-byte stores at ACT_D = 32 and ACT_CORR = 36). AVX2 per this fn's contract.
        unsafe {
            let v: [__m256; 4] = core::array::from_fn(|j| _mm256_loadu_ps(p.add(8 * j)));
            let mut m = _mm256_setzero_ps();
            for &vj in &v {
                m = _mm256_max_ps(_mm256_andnot_ps(sign, vj), m);
            }
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
            let amax = _mm_cvtss_f32(m1);
            let d = amax / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            let id = if id.is_finite() { id } else { 0.0 };
            let vid = _mm256_set1_ps(id);
            let q: [__m256i; 4] = core::array::from_fn(|j| {
                let s = _mm256_mul_ps(v[j], vid);
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(s);
                let r = _mm256_andnot_ps(sign, _mm256_sub_ps(s, t));
                let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(r, half), one);
                let q = _mm256_add_ps(t, _mm256_or_ps(up, _mm256_and_ps(s, sign)));
                // NaN (ordered compare false) -> 0.
                let q = _mm256_and_ps(q, _mm256_cmp_ps::<_CMP_ORD_Q>(s, s));
                _mm256_cvttps_epi32(q)
            });
            let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(sum),
                _mm256_extracti128_si256::<1>(sum),
            );
            let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32::<0b01>(s2));
            let total = _mm_cvtsi128_si32(s1);
            let p01 = _mm256_packs_epi32(q[0], q[1]);
            let p23 = _mm256_packs_epi32(q[2], q[3]);
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order);
            let o = rec.as_mut_ptr();
            _mm256_storeu_si256(o.cast(), bytes);
            o.add(ACT_D).cast::<f32>().write_unaligned(d);
            o.add(ACT_CORR).cast::<i32>().write_unaligned(-8 * total);
            #[cfg(debug_assertions)]
            {
                let r = quantize_activation_block(xb.try_into().expect("32 values"));
                let qs: [i8; QK] = core::array::from_fn(|j| *o.add(j) as i8);
                assert_eq!((r.d.to_bits(), r.qs), (d.to_bits(), qs));
            }
        }
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
        let x: Vec<f32> = (0..32 * 7)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3 * (1 << (i % 5)) as f32)
            .collect();
        let (m, k) = (2, 32 * 7 / 2 / 32 * 32);
        let (mut a, mut b) = (
            vec![0u8; layout::act_size(m, k)],
            vec![0u8; layout::act_size(m, k)],
        );
        for i in 0..m {
            quantize_row(&x[i * k..(i + 1) * k], i, m, k, &mut a);
            layout::quantize_row(&x[i * k..(i + 1) * k], i, m, k, &mut b);
        }
        assert_eq!(a, b);
    }
}
