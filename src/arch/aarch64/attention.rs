//! aarch64 attention paths: NEON f32 (every tier; f16 tiles widened once per block with
//! `fcvtl`), and, on CPUs with FEAT_FP16 at the `NeonDot` and `NeonI8mm` tiers, the fp16 path of
//! `attention_fp16.rs` (half-precision FMLA on 8 lanes, softmax statistics in f32).
//!
//! The `unsafe fn`s of [`AttnKernel`] require the CPU features of their path (NEON is part of
//! every aarch64 tier; FEAT_FP16 is detected at run time before the fp16 path is handed out) and
//! assert their shapes.

use super::attention_fp16::{fits_fp16, FP16_PATH};
use super::attention_i8::{DOT_I8_PATH, MMLA_I8_PATH};
use super::ops;
use crate::contract::attention::{
    f32_ops, int8_enabled, AttnPath, AttnSelect, Problem, Stored, KV_TILE,
};
use crate::drivers::attention::{path, F32};
use std::arch::aarch64::*;

/// The attention of the `Neon` tier: NEON f32.
pub(crate) const NEON_SELECT: AttnSelect = AttnSelect {
    name: || "neon-f32",
    select: |_| &NEON_PATH,
    bf16_kv: || None,
    i8_grouped: false,
};

/// The attention of the `NeonDot` and `NeonI8mm` tiers: the fp16 path when the CPU has FEAT_FP16
/// and the values are small enough for f16 partial sums ([`fits_fp16`]); NEON f32 otherwise.
pub(crate) const DOT_SELECT: AttnSelect = AttnSelect {
    name: || {
        if fp16_available() {
            "neon-fp16"
        } else {
            "neon-f32"
        }
    },
    select: select_dot,
    bf16_kv: || None,
    i8_grouped: true,
};

/// Whether the CPU has FEAT_FP16 (half-precision vector arithmetic).
pub(crate) fn fp16_available() -> bool {
    std::arch::is_aarch64_feature_detected!("fp16")
}

/// The attention of the `NeonI8mm` tier: [`DOT_SELECT`]'s, with SMMLA for an int8 cache.
pub(crate) const I8MM_SELECT: AttnSelect = AttnSelect {
    name: DOT_SELECT.name,
    select: select_i8mm,
    bf16_kv: || None,
    i8_grouped: true,
};

fn select_i8mm(p: &Problem<'_>) -> &'static AttnPath {
    if matches!(p.kv.store, Stored::I8 { grouped: true, .. }) && int8_enabled() {
        return &MMLA_I8_PATH;
    }
    select_dot(p)
}

fn select_dot(p: &Problem<'_>) -> &'static AttnPath {
    if matches!(p.kv.store, Stored::I8 { grouped: true, .. }) && int8_enabled() {
        return &DOT_I8_PATH;
    }
    if fp16_available() {
        // SAFETY: NEON is present on every aarch64 tier.
        let q_max = unsafe { ops::max_abs(p.q) };
        if fits_fp16(p.kv.amax, q_max, p.scale) {
            return &FP16_PATH;
        }
    }
    &NEON_PATH
}

static NEON_PATH: AttnPath = path::<F32<Neon>>();

pub(crate) struct Neon;

/// `R` rows x 16 keys per column step, 4 dimensions per Q load (lane-indexed FMLA).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn qk_rows<const R: usize>(q: *const f32, d: usize, kt: *const f32, nk: usize, s: *mut f32) {
    for c0 in (0..nk).step_by(16) {
        let mut acc = [[vdupq_n_f32(0.0); 4]; R];
        for i in (0..d).step_by(4) {
            // SAFETY (whole block): the caller checked q (R x d), kt (d x 64), s (R x 64), and
            // i + 4 <= d since d is a multiple of 16.
            let qv: [float32x4_t; R] =
                std::array::from_fn(|r| unsafe { vld1q_f32(q.add(r * d + i)) });
            macro_rules! step {
                ($lane:literal) => {{
                    let kp = unsafe { kt.add((i + $lane) * KV_TILE + c0) };
                    let k: [float32x4_t; 4] =
                        std::array::from_fn(|c| unsafe { vld1q_f32(kp.add(4 * c)) });
                    for r in 0..R {
                        for c in 0..4 {
                            acc[r][c] = vfmaq_laneq_f32::<$lane>(acc[r][c], k[c], qv[r]);
                        }
                    }
                }};
            }
            step!(0);
            step!(1);
            step!(2);
            step!(3);
        }
        for (r, a) in acc.iter().enumerate() {
            for (c, &v) in a.iter().enumerate() {
                unsafe { vst1q_f32(s.add(r * KV_TILE + c0 + 4 * c), v) };
            }
        }
    }
}

/// `R` rows x 16 dims per step: `o = o * corr + sum_j p v`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn pv_rows<const R: usize>(
    p: *const f32,
    nk: usize,
    v: *const f32,
    d: usize,
    corr: *const f32,
    o: *mut f32,
) {
    for c0 in (0..d).step_by(16) {
        let mut acc = [[vdupq_n_f32(0.0); 4]; R];
        for j in 0..nk {
            // SAFETY (whole block): the caller checked p (R x 64), v (nk x d), corr (R), o (R x d).
            let vp = unsafe { v.add(j * d + c0) };
            let vv: [float32x4_t; 4] = std::array::from_fn(|c| unsafe { vld1q_f32(vp.add(4 * c)) });
            for (r, a) in acc.iter_mut().enumerate() {
                let pj = unsafe { vld1q_dup_f32(p.add(r * KV_TILE + j)) };
                for c in 0..4 {
                    a[c] = vfmaq_f32(a[c], pj, vv[c]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            unsafe {
                let c = vld1q_dup_f32(corr.add(r));
                for (w, &x) in a.iter().enumerate() {
                    let op = o.add(r * d + c0 + 4 * w);
                    vst1q_f32(op, vfmaq_f32(x, vld1q_f32(op), c));
                }
            }
        }
    }
}

f32_ops!(Neon {
    widen: ops::f16_to_f32,
    max: ops::max,
    exp_sub_sum: ops::exp_sub_sum,
    qk_rows: qk_rows,
    pv_rows: pv_rows,
});
