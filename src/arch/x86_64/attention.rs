//! x86_64 attention paths: AVX2 + FMA (tiers `Avx2`, `AvxVnni`) and AVX-512F (`Avx512Vnni`), f32
//! arithmetic; f16 tiles are widened once per block with F16C / AVX-512F. On CPUs with
//! AVX512_BF16 the `Avx512Vnni` tier runs the bf16 path of `attention_bf16` instead.
//!
//! `Q K^T` runs on 4 query rows x 16 (AVX2) or 64 (AVX-512) keys of accumulators, with the key
//! tile stored transposed in the cache; `P V` on 4 rows x 16 (AVX2) or 32 (AVX-512) head
//! dimensions. The `unsafe fn`s of [`AttnKernel`](crate::contract::attention::AttnKernel) require
//! the CPU features of their tier (guaranteed by `Tier::check` before `select` hands out a path)
//! and assert their shapes.

use super::ops::{avx2 as ops2, avx512 as ops512};
use super::{attention_bf16, attention_i8};
use crate::contract::attention::{f32_ops, int8_enabled, AttnPath, AttnSelect, Stored, KV_TILE};
use crate::drivers::attention::{path, F32};
use std::arch::x86_64::*;

/// The attention of the `Avx2` and `AvxVnni` tiers.
pub(crate) const AVX2_SELECT: AttnSelect = AttnSelect {
    name: || "avx2-f32",
    select: |_| &AVX2_PATH,
    bf16_kv: || None,
    i8_grouped: false,
};

/// The attention of the `Avx512Vnni` tier: bf16 (`vdpbf16ps`, [`attention_bf16`]) where the CPU
/// has AVX512_BF16 (unless `QKERN_ATTN_BF16=0`), with integer `Q K^T` ([`attention_i8`]) over an
/// int8 cache (unless `QKERN_ATTN_I8=0`); AVX-512F f32 otherwise. Decided once per process.
pub(crate) const AVX512_SELECT: AttnSelect = AttnSelect {
    name: || {
        if attention_bf16::enabled() {
            "avx512-bf16"
        } else {
            "avx512-f32"
        }
    },
    select: |p| {
        if !attention_bf16::enabled() {
            &AVX512_PATH
        } else if matches!(p.kv.store, Stored::I8 { .. }) && int8_enabled() {
            &attention_i8::I8QK_PATH
        } else {
            &attention_bf16::BF16_PATH
        }
    },
    // The 16-bit cache stores bf16 exactly where `select` hands out the bf16 path.
    bf16_kv: || attention_bf16::enabled().then_some(attention_bf16::to_bf16 as _),
    i8_grouped: false,
};

static AVX2_PATH: AttnPath = path::<F32<Avx2>>();
static AVX512_PATH: AttnPath = path::<F32<Avx512>>();

pub(crate) struct Avx2;
pub(crate) struct Avx512;

/// `R` rows x 16 keys starting at column `c0`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn qk_avx2<const R: usize>(q: *const f32, d: usize, kt: *const f32, nk: usize, s: *mut f32) {
    for c0 in (0..nk).step_by(16) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for i in 0..d {
            // SAFETY (whole block): the caller checked q (R x d), kt (d x 64), s (R x 64).
            let (k0, k1) = unsafe {
                let kp = kt.add(i * KV_TILE + c0);
                (_mm256_loadu_ps(kp), _mm256_loadu_ps(kp.add(8)))
            };
            for (r, a) in acc.iter_mut().enumerate() {
                let qv = _mm256_set1_ps(unsafe { *q.add(r * d + i) });
                a[0] = _mm256_fmadd_ps(qv, k0, a[0]);
                a[1] = _mm256_fmadd_ps(qv, k1, a[1]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            unsafe {
                _mm256_storeu_ps(s.add(r * KV_TILE + c0), a[0]);
                _mm256_storeu_ps(s.add(r * KV_TILE + c0 + 8), a[1]);
            }
        }
    }
}

/// `R` rows x 16 dims starting at `c0`: `o = o * corr + sum_j p v`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pv_avx2<const R: usize>(
    p: *const f32,
    nk: usize,
    v: *const f32,
    d: usize,
    corr: *const f32,
    o: *mut f32,
) {
    for c0 in (0..d).step_by(16) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for j in 0..nk {
            // SAFETY (whole block): the caller checked p (R x 64), v (nk x d), corr (R), o (R x d).
            let (v0, v1) = unsafe {
                let vp = v.add(j * d + c0);
                (_mm256_loadu_ps(vp), _mm256_loadu_ps(vp.add(8)))
            };
            for (r, a) in acc.iter_mut().enumerate() {
                let pv = _mm256_set1_ps(unsafe { *p.add(r * KV_TILE + j) });
                a[0] = _mm256_fmadd_ps(pv, v0, a[0]);
                a[1] = _mm256_fmadd_ps(pv, v1, a[1]);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            unsafe {
                let c = _mm256_set1_ps(*corr.add(r));
                let op = o.add(r * d + c0);
                _mm256_storeu_ps(op, _mm256_fmadd_ps(_mm256_loadu_ps(op), c, a[0]));
                _mm256_storeu_ps(
                    op.add(8),
                    _mm256_fmadd_ps(_mm256_loadu_ps(op.add(8)), c, a[1]),
                );
            }
        }
    }
}

f32_ops!(Avx2 {
    widen: ops2::f16_to_f32,
    max: ops2::max,
    exp_sub_sum: ops2::exp_sub_sum,
    qk_rows: qk_avx2,
    pv_rows: pv_avx2,
});

/// `R` rows x all 64 keys (`nk` is not needed).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn qk_avx512<const R: usize>(
    q: *const f32,
    d: usize,
    kt: *const f32,
    _nk: usize,
    s: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    for i in 0..d {
        // SAFETY (whole function): the caller checked q (R x d), kt (d x 64), s (R x 64).
        let k = unsafe {
            let kp = kt.add(i * KV_TILE);
            [
                _mm512_loadu_ps(kp),
                _mm512_loadu_ps(kp.add(16)),
                _mm512_loadu_ps(kp.add(32)),
                _mm512_loadu_ps(kp.add(48)),
            ]
        };
        for (r, a) in acc.iter_mut().enumerate() {
            let qv = _mm512_set1_ps(unsafe { *q.add(r * d + i) });
            for c in 0..4 {
                a[c] = _mm512_fmadd_ps(qv, k[c], a[c]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for (c, &v) in a.iter().enumerate() {
            unsafe { _mm512_storeu_ps(s.add(r * KV_TILE + c * 16), v) };
        }
    }
}

/// `R` rows x `W` vectors of 16 dims starting at `c0`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pv_avx512<const R: usize, const W: usize>(
    p: *const f32,
    nk: usize,
    v: *const f32,
    d: usize,
    c0: usize,
    corr: *const f32,
    o: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); W]; R];
    for j in 0..nk {
        // SAFETY (whole function): the caller checked p (R x 64), v (nk x d), corr, o (R x d),
        // and c0 + 16 W <= d.
        let vv: [__m512; W] =
            std::array::from_fn(|w| unsafe { _mm512_loadu_ps(v.add(j * d + c0 + 16 * w)) });
        for (r, a) in acc.iter_mut().enumerate() {
            let pv = _mm512_set1_ps(unsafe { *p.add(r * KV_TILE + j) });
            for w in 0..W {
                a[w] = _mm512_fmadd_ps(pv, vv[w], a[w]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        unsafe {
            let c = _mm512_set1_ps(*corr.add(r));
            for (w, &x) in a.iter().enumerate() {
                let op = o.add(r * d + c0 + 16 * w);
                _mm512_storeu_ps(op, _mm512_fmadd_ps(_mm512_loadu_ps(op), c, x));
            }
        }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn pv512_rows<const R: usize>(
    p: *const f32,
    nk: usize,
    v: *const f32,
    d: usize,
    corr: *const f32,
    o: *mut f32,
) {
    let mut c0 = 0;
    // SAFETY (both calls): c0 + 32 <= d, resp. c0 + 16 <= d (d is a multiple of 16).
    while c0 + 32 <= d {
        unsafe { pv_avx512::<R, 2>(p, nk, v, d, c0, corr, o) };
        c0 += 32;
    }
    if c0 < d {
        unsafe { pv_avx512::<R, 1>(p, nk, v, d, c0, corr, o) };
    }
}

f32_ops!(Avx512 {
    widen: ops512::f16_to_f32,
    max: ops512::max,
    exp_sub_sum: ops512::exp_sub_sum,
    qk_rows: qk_avx512,
    pv_rows: pv512_rows,
});
