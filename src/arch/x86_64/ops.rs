//! x86_64 layer ops: AVX2 + FMA + F16C (tiers `Avx2`, `AvxVnni`) and AVX-512F (`Avx512Vnni`).
//!
//! Every function here is `#[target_feature]` and reached only through the [`OpsKernel`] tables,
//! which `crate::kernels` hands out after `Tier::check` (the CPU has AVX2, FMA, F16C, and for the
//! AVX-512 table AVX-512F/BW/VL). Tails shorter than a vector run the scalar code.

use crate::arch::scalar::ops::{
    self as scalar, reduce_lanes, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, SS_LANES,
};
use crate::contract::ops::OpsKernel;
use half::f16;
use std::arch::x86_64::*;

pub(crate) static AVX2: OpsKernel = OpsKernel {
    name: "avx2",
    sum_squares: avx2::sum_squares,
    scale_mul: avx2::scale_mul,
    silu_mul: avx2::silu_mul,
    add_assign: avx2::add_assign,
    max: avx2::max,
    exp_sub_sum: avx2::exp_sub_sum,
    scale: avx2::scale,
    exp: avx2::exp,
    rope: avx2::rope,
    f16_to_f32: avx2::f16_to_f32,
    f32_to_f16: avx2::f32_to_f16,
    max_abs: scalar::max_abs,
    dot_i8: scalar::dot_i8,
};

pub(crate) static AVX512: OpsKernel = OpsKernel {
    name: "avx512",
    sum_squares: avx512::sum_squares,
    scale_mul: avx512::scale_mul,
    silu_mul: avx512::silu_mul,
    add_assign: avx2::add_assign,
    max: avx512::max,
    exp_sub_sum: avx512::exp_sub_sum,
    scale: avx2::scale,
    exp: avx512::exp,
    rope: avx2::rope,
    f16_to_f32: avx512::f16_to_f32,
    f32_to_f16: avx2::f32_to_f16,
    max_abs: scalar::max_abs,
    dot_i8: scalar::dot_i8,
};

pub(crate) mod avx2 {
    use super::*;

    /// The shared exp approximation on 8 lanes (0 below `EXP_LO`, saturated above `EXP_HI`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn exp8(x: __m256) -> __m256 {
        let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_LO));
        let x = _mm256_max_ps(
            _mm256_min_ps(x, _mm256_set1_ps(EXP_HI)),
            _mm256_set1_ps(EXP_LO),
        );
        let n = _mm256_floor_ps(_mm256_fmadd_ps(
            x,
            _mm256_set1_ps(LOG2E),
            _mm256_set1_ps(0.5),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(EXP_P[0]);
        for &c in &EXP_P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(
            _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvttps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_andnot_ps(tiny, _mm256_mul_ps(e, _mm256_castsi256_ps(bits)))
    }

    /// Horizontal sum of 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn hmax(v: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn sum_squares(x: &[f32]) -> f32 {
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut chunks = x.chunks_exact(SS_LANES);
        for c in &mut chunks {
            // SAFETY: `c` has 16 values.
            let (v0, v1) = unsafe {
                (
                    _mm256_loadu_ps(c.as_ptr()),
                    _mm256_loadu_ps(c.as_ptr().add(8)),
                )
            };
            // Product rounded, then added: the canonical order, no FMA.
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(v0, v0));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(v1, v1));
        }
        let mut acc = [0f32; SS_LANES];
        // SAFETY: `acc` has 16 values.
        unsafe {
            _mm256_storeu_ps(acc.as_mut_ptr(), a0);
            _mm256_storeu_ps(acc.as_mut_ptr().add(8), a1);
        }
        for (l, &v) in chunks.remainder().iter().enumerate() {
            acc[l] += v * v;
        }
        reduce_lanes(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn scale_mul(x: &[f32], r: f32, w: &[f32], out: &mut [f32]) {
        let n = x.len().min(w.len()).min(out.len());
        let body = n / 8 * 8;
        let rv = _mm256_set1_ps(r);
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= n for all three slices.
            unsafe {
                let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), rv);
                let v = _mm256_mul_ps(v, _mm256_loadu_ps(w.as_ptr().add(i)));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
            }
        }
        scalar::scale_mul(&x[body..n], r, &w[body..n], &mut out[body..n]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
        let n = gate.len().min(up.len()).min(out.len());
        let one = _mm256_set1_ps(1.0);
        // silu(g) * u for the 8 values at i (i + 8 <= n for all three slices).
        let at = |i: usize| -> (__m256, __m256) {
            // SAFETY: i + 8 <= n (callers).
            unsafe {
                let g = _mm256_loadu_ps(gate.as_ptr().add(i));
                (g, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g)))
            }
        };
        let mut put = |i: usize, (g, e): (__m256, __m256)| {
            // SAFETY: i + 8 <= n (callers).
            unsafe {
                let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
                let v = _mm256_mul_ps(s, _mm256_loadu_ps(up.as_ptr().add(i)));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
            }
        };
        // Four vectors per iteration (four exp chains in flight), then one at a time.
        let (body4, body) = (n / 32 * 32, n / 8 * 8);
        for i in (0..body4).step_by(32) {
            let ge: [(__m256, __m256); 4] = core::array::from_fn(|j| at(i + 8 * j));
            for (j, x) in ge.into_iter().enumerate() {
                put(i + 8 * j, x);
            }
        }
        for i in (body4..body).step_by(8) {
            put(i, at(i));
        }
        scalar::silu_mul(&gate[body..n], &up[body..n], &mut out[body..n]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn add_assign(x: &mut [f32], y: &[f32]) {
        let n = x.len().min(y.len());
        let body = n / 8 * 8;
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= n for both slices.
            unsafe {
                let v = _mm256_add_ps(
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _mm256_loadu_ps(y.as_ptr().add(i)),
                );
                _mm256_storeu_ps(x.as_mut_ptr().add(i), v);
            }
        }
        scalar::add_assign(&mut x[body..n], &y[body..n]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn max(x: &[f32]) -> f32 {
        let body = x.len() / 8 * 8;
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= len. max_ps(v, m) returns m where v is NaN: NaN is ignored.
            m = _mm256_max_ps(unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) }, m);
        }
        hmax(m).max(scalar::max(&x[body..]))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
        let body = x.len() / 8 * 8;
        let mv = _mm256_set1_ps(m);
        let mut s = _mm256_setzero_ps();
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= len.
            unsafe {
                let p = x.as_mut_ptr().add(i);
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
                _mm256_storeu_ps(p, e);
                s = _mm256_add_ps(s, e);
            }
        }
        hsum(s) + exp_tail(&mut x[body..], m)
    }

    /// The scalar tail of `exp_sub_sum`, with the vector formula (so every lane sees one exp).
    #[target_feature(enable = "avx2,fma")]
    fn exp_tail(x: &mut [f32], m: f32) -> f32 {
        let mut buf = [f32::NEG_INFINITY; 8];
        for (b, &v) in buf.iter_mut().zip(x.iter()) {
            *b = v - m;
        }
        // SAFETY: `buf` has 8 values.
        let e = unsafe { exp8(_mm256_loadu_ps(buf.as_ptr())) };
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), e) };
        let mut s = 0.0;
        for (v, &b) in x.iter_mut().zip(&buf) {
            *v = b;
            s += b;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn scale(x: &mut [f32], s: f32) {
        let body = x.len() / 8 * 8;
        let sv = _mm256_set1_ps(s);
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= len.
            unsafe {
                let p = x.as_mut_ptr().add(i);
                _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), sv));
            }
        }
        scalar::scale(&mut x[body..], s);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn exp(x: &mut [f32]) {
        for c in x.chunks_mut(8) {
            let mut buf = [0f32; 8];
            buf[..c.len()].copy_from_slice(c);
            // SAFETY: `buf` has 8 values.
            unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), exp8(_mm256_loadu_ps(buf.as_ptr()))) };
            let n = c.len();
            c.copy_from_slice(&buf[..n]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], bias: Option<&[f32]>) {
        if let Some(b) = bias {
            add_assign(x, b);
        }
        let half = cos.len().min(sin.len()).min(x.len() / 2);
        let body = half / 8 * 8;
        let (lo, hi) = x.split_at_mut(half);
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= half for lo, hi, cos and sin.
            unsafe {
                let a = _mm256_loadu_ps(lo.as_ptr().add(i));
                let b = _mm256_loadu_ps(hi.as_ptr().add(i));
                let c = _mm256_loadu_ps(cos.as_ptr().add(i));
                let s = _mm256_loadu_ps(sin.as_ptr().add(i));
                _mm256_storeu_ps(
                    lo.as_mut_ptr().add(i),
                    _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)),
                );
                _mm256_storeu_ps(
                    hi.as_mut_ptr().add(i),
                    _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)),
                );
            }
        }
        for i in body..half {
            let (a, b) = (lo[i], hi[i]);
            lo[i] = a * cos[i] - b * sin[i];
            hi[i] = a * sin[i] + b * cos[i];
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let body = n / 8 * 8;
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= n; f16 is a transparent u16.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        scalar::f16_to_f32(&src[body..n], &mut dst[body..n]);
    }

    /// Round to nearest even, as `f16::from_f32`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
        let n = src.len().min(dst.len());
        let body = n / 8 * 8;
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= n; f16 is a transparent u16.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(
                    src.as_ptr().add(i),
                ));
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            }
        }
        scalar::f32_to_f16(&src[body..n], &mut dst[body..n]);
    }
}

pub(crate) mod avx512 {
    use super::*;

    /// The mask of the first `min(left, 16)` lanes: all of a full vector, or a tail.
    #[inline]
    fn lanes_below(left: usize) -> __mmask16 {
        if left >= 16 {
            0xFFFF
        } else {
            (1u16 << left) - 1
        }
    }

    /// The shared exp approximation on 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp16(x: __m512) -> __m512 {
        let ok = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_set1_ps(EXP_LO));
        let x = _mm512_max_ps(
            _mm512_min_ps(x, _mm512_set1_ps(EXP_HI)),
            _mm512_set1_ps(EXP_LO),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
            _mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), _mm512_set1_ps(0.5)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(EXP_P[0]);
        for &c in &EXP_P[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let e = _mm512_add_ps(
            _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r),
            _mm512_set1_ps(1.0),
        );
        let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvttps_epi32(n),
            _mm512_set1_epi32(127),
        ));
        _mm512_maskz_mul_ps(ok, e, _mm512_castsi512_ps(bits))
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn sum_squares(x: &[f32]) -> f32 {
        let mut a = _mm512_setzero_ps();
        let mut chunks = x.chunks_exact(SS_LANES);
        for c in &mut chunks {
            // SAFETY: `c` has 16 values.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            // Product rounded, then added: the canonical order, no FMA.
            a = _mm512_add_ps(a, _mm512_mul_ps(v, v));
        }
        let mut acc = [0f32; SS_LANES];
        // SAFETY: `acc` has 16 values.
        unsafe { _mm512_storeu_ps(acc.as_mut_ptr(), a) };
        for (l, &v) in chunks.remainder().iter().enumerate() {
            acc[l] += v * v;
        }
        reduce_lanes(acc)
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn scale_mul(x: &[f32], r: f32, w: &[f32], out: &mut [f32]) {
        let n = x.len().min(w.len()).min(out.len());
        let rv = _mm512_set1_ps(r);
        for i in (0..n).step_by(16) {
            let m = lanes_below(n - i);
            // SAFETY: masked lanes stay below n in all three slices.
            unsafe {
                let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x.as_ptr().add(i)), rv);
                let v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w.as_ptr().add(i)));
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, v);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
        let n = gate.len().min(up.len()).min(out.len());
        let one = _mm512_set1_ps(1.0);
        // Four vectors per iteration: four independent exp chains in flight.
        for i in (0..n).step_by(64) {
            let m: [__mmask16; 4] =
                core::array::from_fn(|j| lanes_below(n.saturating_sub(i + 16 * j)));
            // SAFETY: masked lanes stay below n in all three slices.
            unsafe {
                let g: [__m512; 4] = core::array::from_fn(|j| {
                    _mm512_maskz_loadu_ps(m[j], gate.as_ptr().wrapping_add(i + 16 * j))
                });
                let e = g.map(|g| exp16(_mm512_sub_ps(_mm512_setzero_ps(), g)));
                for j in 0..4 {
                    let s = _mm512_div_ps(g[j], _mm512_add_ps(one, e[j]));
                    let u = _mm512_maskz_loadu_ps(m[j], up.as_ptr().wrapping_add(i + 16 * j));
                    let p = out.as_mut_ptr().wrapping_add(i + 16 * j);
                    _mm512_mask_storeu_ps(p, m[j], _mm512_mul_ps(s, u));
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn max(x: &[f32]) -> f32 {
        let n = x.len();
        let mut mv = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..n).step_by(16) {
            let m = lanes_below(n - i);
            // SAFETY: masked lanes stay below n. NaN lanes keep the running max.
            mv = _mm512_mask_max_ps(
                mv,
                m,
                unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)) },
                mv,
            );
        }
        _mm512_reduce_max_ps(mv)
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp_sub_sum(x: &mut [f32], mx: f32) -> f32 {
        let n = x.len();
        let mv = _mm512_set1_ps(mx);
        let mut s = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            let m = lanes_below(n - i);
            // SAFETY: masked lanes stay below n.
            unsafe {
                let p = x.as_mut_ptr().add(i);
                let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p), mv));
                _mm512_mask_storeu_ps(p, m, e);
                s = _mm512_mask_add_ps(s, m, s, e);
            }
        }
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp(x: &mut [f32]) {
        let n = x.len();
        for i in (0..n).step_by(16) {
            let m = lanes_below(n - i);
            // SAFETY: masked lanes stay below n.
            unsafe {
                let p = x.as_mut_ptr().add(i);
                _mm512_mask_storeu_ps(p, m, exp16(_mm512_maskz_loadu_ps(m, p)));
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let body = n / 16 * 16;
        for i in (0..body).step_by(16) {
            // SAFETY: i + 16 <= n; f16 is a transparent u16.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i) as *const __m256i);
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
        }
        scalar::f16_to_f32(&src[body..n], &mut dst[body..n]);
    }
}
