//! aarch64 layer ops on NEON (ARMv8.0 Advanced SIMD, every aarch64 tier). f16 widening uses
//! `fcvtl`/`fcvtl2` through inline assembly (base ARMv8; Rust's f16 vector types are unstable).
//!
//! Every function is reached only through the [`OpsKernel`] table after `Tier::check` (NEON is
//! part of every aarch64 tier). Tails shorter than a vector run the scalar code.

use crate::arch::scalar::ops::{
    self as scalar, reduce_lanes, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, SS_LANES,
};
use crate::contract::ops::OpsKernel;
use half::f16;
use std::arch::aarch64::*;

/// The layer ops of the `Neon` tier.
pub(crate) static NEON: OpsKernel = OpsKernel {
    name: "neon",
    sum_squares,
    scale_mul,
    silu_mul,
    add_assign,
    max,
    max_abs,
    exp_sub_sum,
    scale,
    exp,
    rope,
    f16_to_f32,
    f32_to_f16,
    dot_i8: dot_i8_neon,
};

/// The layer ops of the `NeonDot` and `NeonI8mm` tiers: `Neon`'s, with the SDOT dot product.
pub(crate) static NEON_DOT: OpsKernel = OpsKernel {
    dot_i8: dot_i8_sdot,
    ..NEON
};

/// `dst = f16(src)`, rounding to nearest even (as `f16::from_f32`).
fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    super::attention_fp16::to_f16(src, 1.0, dst)
}

/// `sum a[i] * b[i]`: whole 16-byte chunks by the NEON asm routine, the tail here.
fn dot_i8_neon(a: &[i8], b: &[i8]) -> i32 {
    let done = a.len() / 16 * 16;
    super::dot::dot_i8_chunks(a, b, false) + scalar::dot_i8(&a[done..], &b[done..])
}

/// As [`dot_i8_neon`] with the SDOT routine.
///
/// # Safety
/// The CPU has FEAT_DotProd (the `NeonDot` tier was checked).
unsafe fn dot_i8_sdot(a: &[i8], b: &[i8]) -> i32 {
    let done = a.len() / 16 * 16;
    super::dot::dot_i8_chunks(a, b, true) + scalar::dot_i8(&a[done..], &b[done..])
}

/// The shared exp approximation on 4 lanes (0 below `EXP_LO`, saturated above `EXP_HI`).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn exp4(x: float32x4_t) -> float32x4_t {
    let tiny = vcltq_f32(x, vdupq_n_f32(EXP_LO));
    let x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(EXP_HI)), vdupq_n_f32(EXP_LO));
    let n = vrndmq_f32(vfmaq_f32(vdupq_n_f32(0.5), x, vdupq_n_f32(LOG2E)));
    let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
    let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    let mut p = vdupq_n_f32(EXP_P[0]);
    for &c in &EXP_P[1..] {
        p = vfmaq_f32(vdupq_n_f32(c), p, r);
    }
    let e = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), vdupq_n_f32(1.0));
    let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
    let y = vmulq_f32(e, vreinterpretq_f32_s32(bits));
    vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), tiny))
}

#[target_feature(enable = "neon")]
fn sum_squares(x: &[f32]) -> f32 {
    let mut a = [vdupq_n_f32(0.0); 4];
    let mut chunks = x.chunks_exact(SS_LANES);
    for c in &mut chunks {
        for (l, acc) in a.iter_mut().enumerate() {
            // SAFETY: `c` has 16 values.
            let v = unsafe { vld1q_f32(c.as_ptr().add(4 * l)) };
            // Product rounded, then added: the canonical order, no FMA.
            *acc = vaddq_f32(*acc, vmulq_f32(v, v));
        }
    }
    let mut acc = [0f32; SS_LANES];
    for (l, v) in a.iter().enumerate() {
        // SAFETY: `acc` has 16 values.
        unsafe { vst1q_f32(acc.as_mut_ptr().add(4 * l), *v) };
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        acc[l] += v * v;
    }
    reduce_lanes(acc)
}

#[target_feature(enable = "neon")]
fn scale_mul(x: &[f32], r: f32, w: &[f32], out: &mut [f32]) {
    let n = x.len().min(w.len()).min(out.len());
    let body = n / 4 * 4;
    let rv = vdupq_n_f32(r);
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= n for all three slices.
        unsafe {
            let v = vmulq_f32(vld1q_f32(x.as_ptr().add(i)), rv);
            vst1q_f32(
                out.as_mut_ptr().add(i),
                vmulq_f32(v, vld1q_f32(w.as_ptr().add(i))),
            );
        }
    }
    scalar::scale_mul(&x[body..n], r, &w[body..n], &mut out[body..n]);
}

#[target_feature(enable = "neon")]
fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len().min(up.len()).min(out.len());
    let body = n / 4 * 4;
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= n for all three slices.
        unsafe {
            let g = vld1q_f32(gate.as_ptr().add(i));
            let e = exp4(vnegq_f32(g));
            let s = vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0), e));
            vst1q_f32(
                out.as_mut_ptr().add(i),
                vmulq_f32(s, vld1q_f32(up.as_ptr().add(i))),
            );
        }
    }
    scalar::silu_mul(&gate[body..n], &up[body..n], &mut out[body..n]);
}

#[target_feature(enable = "neon")]
fn add_assign(x: &mut [f32], y: &[f32]) {
    let n = x.len().min(y.len());
    let body = n / 4 * 4;
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= n for both slices.
        unsafe {
            let v = vaddq_f32(vld1q_f32(x.as_ptr().add(i)), vld1q_f32(y.as_ptr().add(i)));
            vst1q_f32(x.as_mut_ptr().add(i), v);
        }
    }
    scalar::add_assign(&mut x[body..n], &y[body..n]);
}

#[target_feature(enable = "neon")]
pub(crate) fn max(x: &[f32]) -> f32 {
    let body = x.len() / 4 * 4;
    let mut m = vdupq_n_f32(f32::NEG_INFINITY);
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= len. FMAXNM ignores a NaN operand.
        m = vmaxnmq_f32(m, unsafe { vld1q_f32(x.as_ptr().add(i)) });
    }
    vmaxnmvq_f32(m).max(scalar::max(&x[body..]))
}

/// Largest |x| (NaN ignored); 0 if empty.
#[target_feature(enable = "neon")]
pub(crate) fn max_abs(x: &[f32]) -> f32 {
    let body = x.len() / 4 * 4;
    let mut m = vdupq_n_f32(0.0);
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= len.
        m = vmaxnmq_f32(m, vabsq_f32(unsafe { vld1q_f32(x.as_ptr().add(i)) }));
    }
    x[body..]
        .iter()
        .fold(vmaxnmvq_f32(m), |a, v| a.max(v.abs()))
}

#[target_feature(enable = "neon")]
pub(crate) fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    let body = x.len() / 4 * 4;
    let mv = vdupq_n_f32(m);
    let mut s = vdupq_n_f32(0.0);
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= len.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let e = exp4(vsubq_f32(vld1q_f32(p), mv));
            vst1q_f32(p, e);
            s = vaddq_f32(s, e);
        }
    }
    let tail = &mut x[body..];
    let mut buf = [f32::NEG_INFINITY; 4];
    for (b, &v) in buf.iter_mut().zip(tail.iter()) {
        *b = v - m;
    }
    // SAFETY: `buf` has 4 values.
    let e = exp4(unsafe { vld1q_f32(buf.as_ptr()) });
    // SAFETY: as above.
    unsafe { vst1q_f32(buf.as_mut_ptr(), e) };
    for (v, &b) in tail.iter_mut().zip(&buf) {
        *v = b;
    }
    vaddvq_f32(vaddq_f32(s, e))
}

#[target_feature(enable = "neon")]
fn scale(x: &mut [f32], s: f32) {
    let body = x.len() / 4 * 4;
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= len.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            vst1q_f32(p, vmulq_n_f32(vld1q_f32(p), s));
        }
    }
    scalar::scale(&mut x[body..], s);
}

#[target_feature(enable = "neon")]
fn exp(x: &mut [f32]) {
    for c in x.chunks_mut(4) {
        let mut buf = [0f32; 4];
        buf[..c.len()].copy_from_slice(c);
        // SAFETY: `buf` has 4 values.
        unsafe { vst1q_f32(buf.as_mut_ptr(), exp4(vld1q_f32(buf.as_ptr()))) };
        let n = c.len();
        c.copy_from_slice(&buf[..n]);
    }
}

#[target_feature(enable = "neon")]
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        add_assign(x, b);
    }
    let half = cos.len().min(sin.len()).min(x.len() / 2);
    let body = half / 4 * 4;
    let (lo, hi) = x.split_at_mut(half);
    for i in (0..body).step_by(4) {
        // SAFETY: i + 4 <= half for lo, hi, cos and sin.
        unsafe {
            let a = vld1q_f32(lo.as_ptr().add(i));
            let b = vld1q_f32(hi.as_ptr().add(i));
            let c = vld1q_f32(cos.as_ptr().add(i));
            let s = vld1q_f32(sin.as_ptr().add(i));
            vst1q_f32(lo.as_mut_ptr().add(i), vfmsq_f32(vmulq_f32(a, c), b, s));
            vst1q_f32(hi.as_mut_ptr().add(i), vfmaq_f32(vmulq_f32(b, c), a, s));
        }
    }
    for i in body..half {
        let (a, b) = (lo[i], hi[i]);
        lo[i] = a * cos[i] - b * sin[i];
        hi[i] = a * sin[i] + b * cos[i];
    }
}

/// Widens 8 f16 values (as raw bits) to two f32 vectors.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn widen8(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: FCVTL/FCVTL2 (half to single) are base ARMv8.0 instructions; registers only.
    unsafe {
        std::arch::asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (lo, hi)
}

#[target_feature(enable = "neon")]
pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 <= n; f16 is a transparent u16.
        unsafe {
            let (lo, hi) = widen8(vld1q_u16(src.as_ptr().add(i) as *const u16));
            vst1q_f32(dst.as_mut_ptr().add(i), lo);
            vst1q_f32(dst.as_mut_ptr().add(i + 4), hi);
        }
    }
    scalar::f16_to_f32(&src[body..n], &mut dst[body..n]);
}
