//! The fp16 attention path for aarch64 CPUs with FEAT_FP16 (Apple A15 and later, Neoverse N1,
//! Cortex-A76 and later): `Q K^T` and `P V` with half-precision FMLA on 8 lanes, reading the f16
//! KV cache as stored (no conversion at all), with the softmax statistics (row max, sum,
//! rescale) and the output accumulator in f32.
//!
//! Rust's f16 vector arithmetic intrinsics are unstable, so the two micro-kernels are inline
//! assembly (generated, see the comments at each macro): `Q K^T` on 4 query rows x 16 keys,
//! `P V` on 4 rows x 16 head dimensions, both FMLA by element (8 FMLA per 2 vector loads).
//!
//! Softmax weights use a cheaper exp ([`exp_nonpos`], relative error below 5e-5) because they are
//! rounded to f16 right after; the row maximum, the sums and the rescaling stay in f32.
//!
//! Accuracy: Q is rounded to f16 once per block, and P to f16; the f16 accumulators are
//! widened into f32 every 32 products (32 head dimensions of a score, or 32 keys of an output),
//! so rounding error grows with 32 terms at most before reaching f32. The measured error against
//! the f64 reference is printed by the `fp16_accuracy` test (`tests/attention.rs`).
//!
//! Overflow: an f16 partial sum of 32 terms must stay below 65504. The path is only chosen when
//! the cache's largest |k| and |v| (tracked on write) and the largest |q| of the call bound every
//! partial sum by 2^15 (see [`fits_fp16`]); otherwise the NEON f32 path runs.

use crate::kernels::attention::{path, AttnKernel, AttnPath, Tile, KV_TILE};
use half::f16;

pub(crate) static FP16_PATH: AttnPath = path::<Fp16>();

/// Products accumulated in f16 before widening to f32 (head dimensions, or keys).
const CHUNK: usize = 32;

/// Whether no f16 partial sum can exceed 2^15: `CHUNK * max|q| * scale * max|k|` for scores,
/// `CHUNK * 1 * max|v|` for outputs (softmax weights are at most 1); and every input value
/// fits f16 (below 65504 with margin).
pub(crate) fn fits_fp16(amax: [f32; 2], q_max: f32, head_dim: usize) -> bool {
    let scale = 1.0 / (head_dim as f32).sqrt();
    let limit = 32768.0 / CHUNK as f32;
    q_max * scale <= 60000.0
        && q_max * scale * amax[0] <= limit
        && amax[1] <= limit
        && amax[0] <= 60000.0
}

/// `dst = f16(src * scale)`, rounding to nearest even (FCVTN/FCVTN2, base ARMv8.0: 8 values
/// per pair of instructions); the tail through `half`, which rounds the same way.
fn to_f16(src: &[f32], scale: f32, dst: &mut [f16]) {
    use std::arch::aarch64::*;
    let n = src.len().min(dst.len());
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 <= n for both slices (f16 is a transparent u16); FCVTN/FCVTN2 are base
        // ARMv8.0 instructions on registers only.
        unsafe {
            let a = vmulq_n_f32(vld1q_f32(src.as_ptr().add(i)), scale);
            let b = vmulq_n_f32(vld1q_f32(src.as_ptr().add(i + 4)), scale);
            let h: uint16x8_t;
            std::arch::asm!(
                "fcvtn {h:v}.4h, {a:v}.4s",
                "fcvtn2 {h:v}.8h, {b:v}.4s",
                a = in(vreg) a,
                b = in(vreg) b,
                h = out(vreg) h,
                options(pure, nomem, nostack, preserves_flags)
            );
            vst1q_u16(dst.as_mut_ptr().add(i) as *mut u16, h);
        }
    }
    for (d, &s) in dst[body..n].iter_mut().zip(&src[body..n]) {
        *d = f16::from_f32(s * scale);
    }
}

pub(crate) struct Fp16;

/// `e^x` for `x <= 0` on 4 lanes, for softmax weights that are rounded to f16 next: `2^t` with
/// `t = max(x log2 e, -126)`, `t = n + f` (`n` nearest integer), `2^f` by its degree-4 Taylor
/// polynomial (relative error below 5e-5 for |f| <= 1/2, a tenth of f16's rounding), and `n`
/// added to the exponent bits. Below `2^-126` the result is some value under 1.2e-38, which
/// rounds to 0 in f16.
#[inline]
fn exp_nonpos(x: std::arch::aarch64::float32x4_t) -> std::arch::aarch64::float32x4_t {
    use std::arch::aarch64::*;
    const C: [f32; 5] = [
        1.0,
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
    ];
    // SAFETY: NEON is part of every aarch64 target; register-only intrinsics.
    unsafe {
        let t = vmaxq_f32(
            vmulq_n_f32(x, std::f32::consts::LOG2_E),
            vdupq_n_f32(-126.0),
        );
        let n = vrndnq_f32(t);
        let f = vsubq_f32(t, n);
        let mut p = vdupq_n_f32(C[4]);
        for &c in C[..4].iter().rev() {
            p = vfmaq_f32(vdupq_n_f32(c), p, f);
        }
        let bits = vaddq_s32(
            vreinterpretq_s32_f32(p),
            vshlq_n_s32::<23>(vcvtq_s32_f32(n)),
        );
        vreinterpretq_f32_s32(bits)
    }
}

/// `p[i] = f16(e^(s[i] - m))` with [`exp_nonpos`] (`m` is at least every `s[i]`), 8 weights per
/// step rounded with FCVTN/FCVTN2; returns the sum of the f32 weights.
fn exp_to_f16(s: &[f32], m: f32, p: &mut [f16]) -> f32 {
    use std::arch::aarch64::*;
    let n = s.len().min(p.len());
    let body = n / 8 * 8;
    // SAFETY: i + 8 <= n for both slices (f16 is a transparent u16); FCVTN/FCVTN2 are base
    // ARMv8.0 instructions on registers only.
    unsafe {
        let mv = vdupq_n_f32(m);
        let mut acc = vdupq_n_f32(0.0);
        for i in (0..body).step_by(8) {
            let a = exp_nonpos(vsubq_f32(vld1q_f32(s.as_ptr().add(i)), mv));
            let b = exp_nonpos(vsubq_f32(vld1q_f32(s.as_ptr().add(i + 4)), mv));
            acc = vaddq_f32(acc, vaddq_f32(a, b));
            let h: uint16x8_t;
            std::arch::asm!(
                "fcvtn {h:v}.4h, {a:v}.4s",
                "fcvtn2 {h:v}.8h, {b:v}.4s",
                a = in(vreg) a,
                b = in(vreg) b,
                h = out(vreg) h,
                options(pure, nomem, nostack, preserves_flags)
            );
            vst1q_u16(p.as_mut_ptr().add(i) as *mut u16, h);
        }
        let mut sum = vaddvq_f32(acc);
        for (d, &v) in p[body..n].iter_mut().zip(&s[body..n]) {
            let e = vgetq_lane_f32::<0>(exp_nonpos(vdupq_n_f32(v - m)));
            *d = f16::from_f32(e);
            sum += e;
        }
        sum
    }
}

macro_rules! qk_asm {
    () => {
        concat!(
            "movi v16.16b, #0\n",
            "movi v17.16b, #0\n",
            "movi v18.16b, #0\n",
            "movi v19.16b, #0\n",
            "movi v20.16b, #0\n",
            "movi v21.16b, #0\n",
            "movi v22.16b, #0\n",
            "movi v23.16b, #0\n",
            "movi v24.16b, #0\n",
            "movi v25.16b, #0\n",
            "movi v26.16b, #0\n",
            "movi v27.16b, #0\n",
            "movi v28.16b, #0\n",
            "movi v29.16b, #0\n",
            "movi v30.16b, #0\n",
            "movi v31.16b, #0\n",
            "2:\n",
            "movi v8.16b, #0\n",
            "movi v9.16b, #0\n",
            "movi v10.16b, #0\n",
            "movi v11.16b, #0\n",
            "movi v12.16b, #0\n",
            "movi v13.16b, #0\n",
            "movi v14.16b, #0\n",
            "movi v15.16b, #0\n",
            "mov {g}, {groups}\n",
            "3:\n",
            "ldr q0, [{q0}], #16\n",
            "ldr q1, [{q1}], #16\n",
            "ldr q2, [{q2}], #16\n",
            "ldr q3, [{q3}], #16\n",
            "ldp q4, q5, [{kt}, #0]\n",
            "fmla v8.8h, v4.8h, v0.h[0]\n",
            "fmla v9.8h, v5.8h, v0.h[0]\n",
            "fmla v10.8h, v4.8h, v1.h[0]\n",
            "fmla v11.8h, v5.8h, v1.h[0]\n",
            "fmla v12.8h, v4.8h, v2.h[0]\n",
            "fmla v13.8h, v5.8h, v2.h[0]\n",
            "fmla v14.8h, v4.8h, v3.h[0]\n",
            "fmla v15.8h, v5.8h, v3.h[0]\n",
            "ldp q6, q7, [{kt}, #128]\n",
            "fmla v8.8h, v6.8h, v0.h[1]\n",
            "fmla v9.8h, v7.8h, v0.h[1]\n",
            "fmla v10.8h, v6.8h, v1.h[1]\n",
            "fmla v11.8h, v7.8h, v1.h[1]\n",
            "fmla v12.8h, v6.8h, v2.h[1]\n",
            "fmla v13.8h, v7.8h, v2.h[1]\n",
            "fmla v14.8h, v6.8h, v3.h[1]\n",
            "fmla v15.8h, v7.8h, v3.h[1]\n",
            "ldp q4, q5, [{kt}, #256]\n",
            "fmla v8.8h, v4.8h, v0.h[2]\n",
            "fmla v9.8h, v5.8h, v0.h[2]\n",
            "fmla v10.8h, v4.8h, v1.h[2]\n",
            "fmla v11.8h, v5.8h, v1.h[2]\n",
            "fmla v12.8h, v4.8h, v2.h[2]\n",
            "fmla v13.8h, v5.8h, v2.h[2]\n",
            "fmla v14.8h, v4.8h, v3.h[2]\n",
            "fmla v15.8h, v5.8h, v3.h[2]\n",
            "ldp q6, q7, [{kt}, #384]\n",
            "fmla v8.8h, v6.8h, v0.h[3]\n",
            "fmla v9.8h, v7.8h, v0.h[3]\n",
            "fmla v10.8h, v6.8h, v1.h[3]\n",
            "fmla v11.8h, v7.8h, v1.h[3]\n",
            "fmla v12.8h, v6.8h, v2.h[3]\n",
            "fmla v13.8h, v7.8h, v2.h[3]\n",
            "fmla v14.8h, v6.8h, v3.h[3]\n",
            "fmla v15.8h, v7.8h, v3.h[3]\n",
            "ldp q4, q5, [{kt}, #512]\n",
            "fmla v8.8h, v4.8h, v0.h[4]\n",
            "fmla v9.8h, v5.8h, v0.h[4]\n",
            "fmla v10.8h, v4.8h, v1.h[4]\n",
            "fmla v11.8h, v5.8h, v1.h[4]\n",
            "fmla v12.8h, v4.8h, v2.h[4]\n",
            "fmla v13.8h, v5.8h, v2.h[4]\n",
            "fmla v14.8h, v4.8h, v3.h[4]\n",
            "fmla v15.8h, v5.8h, v3.h[4]\n",
            "ldp q6, q7, [{kt}, #640]\n",
            "fmla v8.8h, v6.8h, v0.h[5]\n",
            "fmla v9.8h, v7.8h, v0.h[5]\n",
            "fmla v10.8h, v6.8h, v1.h[5]\n",
            "fmla v11.8h, v7.8h, v1.h[5]\n",
            "fmla v12.8h, v6.8h, v2.h[5]\n",
            "fmla v13.8h, v7.8h, v2.h[5]\n",
            "fmla v14.8h, v6.8h, v3.h[5]\n",
            "fmla v15.8h, v7.8h, v3.h[5]\n",
            "ldp q4, q5, [{kt}, #768]\n",
            "fmla v8.8h, v4.8h, v0.h[6]\n",
            "fmla v9.8h, v5.8h, v0.h[6]\n",
            "fmla v10.8h, v4.8h, v1.h[6]\n",
            "fmla v11.8h, v5.8h, v1.h[6]\n",
            "fmla v12.8h, v4.8h, v2.h[6]\n",
            "fmla v13.8h, v5.8h, v2.h[6]\n",
            "fmla v14.8h, v4.8h, v3.h[6]\n",
            "fmla v15.8h, v5.8h, v3.h[6]\n",
            "ldp q6, q7, [{kt}, #896]\n",
            "fmla v8.8h, v6.8h, v0.h[7]\n",
            "fmla v9.8h, v7.8h, v0.h[7]\n",
            "fmla v10.8h, v6.8h, v1.h[7]\n",
            "fmla v11.8h, v7.8h, v1.h[7]\n",
            "fmla v12.8h, v6.8h, v2.h[7]\n",
            "fmla v13.8h, v7.8h, v2.h[7]\n",
            "fmla v14.8h, v6.8h, v3.h[7]\n",
            "fmla v15.8h, v7.8h, v3.h[7]\n",
            "add {kt}, {kt}, #1024\n",
            "subs {g}, {g}, #1\n",
            "b.ne 3b\n",
            "fcvtl v4.4s, v8.4h\n",
            "fcvtl2 v5.4s, v8.8h\n",
            "fadd v16.4s, v16.4s, v4.4s\n",
            "fadd v17.4s, v17.4s, v5.4s\n",
            "fcvtl v4.4s, v9.4h\n",
            "fcvtl2 v5.4s, v9.8h\n",
            "fadd v18.4s, v18.4s, v4.4s\n",
            "fadd v19.4s, v19.4s, v5.4s\n",
            "fcvtl v4.4s, v10.4h\n",
            "fcvtl2 v5.4s, v10.8h\n",
            "fadd v20.4s, v20.4s, v4.4s\n",
            "fadd v21.4s, v21.4s, v5.4s\n",
            "fcvtl v4.4s, v11.4h\n",
            "fcvtl2 v5.4s, v11.8h\n",
            "fadd v22.4s, v22.4s, v4.4s\n",
            "fadd v23.4s, v23.4s, v5.4s\n",
            "fcvtl v4.4s, v12.4h\n",
            "fcvtl2 v5.4s, v12.8h\n",
            "fadd v24.4s, v24.4s, v4.4s\n",
            "fadd v25.4s, v25.4s, v5.4s\n",
            "fcvtl v4.4s, v13.4h\n",
            "fcvtl2 v5.4s, v13.8h\n",
            "fadd v26.4s, v26.4s, v4.4s\n",
            "fadd v27.4s, v27.4s, v5.4s\n",
            "fcvtl v4.4s, v14.4h\n",
            "fcvtl2 v5.4s, v14.8h\n",
            "fadd v28.4s, v28.4s, v4.4s\n",
            "fadd v29.4s, v29.4s, v5.4s\n",
            "fcvtl v4.4s, v15.4h\n",
            "fcvtl2 v5.4s, v15.8h\n",
            "fadd v30.4s, v30.4s, v4.4s\n",
            "fadd v31.4s, v31.4s, v5.4s\n",
            "subs {chunks}, {chunks}, #1\n",
            "b.ne 2b\n",
            "st1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{s0}]\n",
            "st1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{s1}]\n",
            "st1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{s2}]\n",
            "st1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{s3}]\n",
        )
    };
}
macro_rules! pv_asm {
    () => {
        concat!(
            "ldr q0, [{corr}]\n",
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{o0}]\n",
            "fmul v16.4s, v16.4s, v0.s[0]\n",
            "fmul v17.4s, v17.4s, v0.s[0]\n",
            "fmul v18.4s, v18.4s, v0.s[0]\n",
            "fmul v19.4s, v19.4s, v0.s[0]\n",
            "ld1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{o1}]\n",
            "fmul v20.4s, v20.4s, v0.s[1]\n",
            "fmul v21.4s, v21.4s, v0.s[1]\n",
            "fmul v22.4s, v22.4s, v0.s[1]\n",
            "fmul v23.4s, v23.4s, v0.s[1]\n",
            "ld1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{o2}]\n",
            "fmul v24.4s, v24.4s, v0.s[2]\n",
            "fmul v25.4s, v25.4s, v0.s[2]\n",
            "fmul v26.4s, v26.4s, v0.s[2]\n",
            "fmul v27.4s, v27.4s, v0.s[2]\n",
            "ld1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{o3}]\n",
            "fmul v28.4s, v28.4s, v0.s[3]\n",
            "fmul v29.4s, v29.4s, v0.s[3]\n",
            "fmul v30.4s, v30.4s, v0.s[3]\n",
            "fmul v31.4s, v31.4s, v0.s[3]\n",
            "cbz {full}, 20f\n",
            "10:\n",
            "movi v8.16b, #0\n",
            "movi v9.16b, #0\n",
            "movi v10.16b, #0\n",
            "movi v11.16b, #0\n",
            "movi v12.16b, #0\n",
            "movi v13.16b, #0\n",
            "movi v14.16b, #0\n",
            "movi v15.16b, #0\n",
            "mov {g}, #4\n",
            "11:\n",
            "ldr q0, [{p0}], #16\n",
            "ldr q1, [{p1}], #16\n",
            "ldr q2, [{p2}], #16\n",
            "ldr q3, [{p3}], #16\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[0]\n",
            "fmla v9.8h, v5.8h, v0.h[0]\n",
            "fmla v10.8h, v4.8h, v1.h[0]\n",
            "fmla v11.8h, v5.8h, v1.h[0]\n",
            "fmla v12.8h, v4.8h, v2.h[0]\n",
            "fmla v13.8h, v5.8h, v2.h[0]\n",
            "fmla v14.8h, v4.8h, v3.h[0]\n",
            "fmla v15.8h, v5.8h, v3.h[0]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[1]\n",
            "fmla v9.8h, v7.8h, v0.h[1]\n",
            "fmla v10.8h, v6.8h, v1.h[1]\n",
            "fmla v11.8h, v7.8h, v1.h[1]\n",
            "fmla v12.8h, v6.8h, v2.h[1]\n",
            "fmla v13.8h, v7.8h, v2.h[1]\n",
            "fmla v14.8h, v6.8h, v3.h[1]\n",
            "fmla v15.8h, v7.8h, v3.h[1]\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[2]\n",
            "fmla v9.8h, v5.8h, v0.h[2]\n",
            "fmla v10.8h, v4.8h, v1.h[2]\n",
            "fmla v11.8h, v5.8h, v1.h[2]\n",
            "fmla v12.8h, v4.8h, v2.h[2]\n",
            "fmla v13.8h, v5.8h, v2.h[2]\n",
            "fmla v14.8h, v4.8h, v3.h[2]\n",
            "fmla v15.8h, v5.8h, v3.h[2]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[3]\n",
            "fmla v9.8h, v7.8h, v0.h[3]\n",
            "fmla v10.8h, v6.8h, v1.h[3]\n",
            "fmla v11.8h, v7.8h, v1.h[3]\n",
            "fmla v12.8h, v6.8h, v2.h[3]\n",
            "fmla v13.8h, v7.8h, v2.h[3]\n",
            "fmla v14.8h, v6.8h, v3.h[3]\n",
            "fmla v15.8h, v7.8h, v3.h[3]\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[4]\n",
            "fmla v9.8h, v5.8h, v0.h[4]\n",
            "fmla v10.8h, v4.8h, v1.h[4]\n",
            "fmla v11.8h, v5.8h, v1.h[4]\n",
            "fmla v12.8h, v4.8h, v2.h[4]\n",
            "fmla v13.8h, v5.8h, v2.h[4]\n",
            "fmla v14.8h, v4.8h, v3.h[4]\n",
            "fmla v15.8h, v5.8h, v3.h[4]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[5]\n",
            "fmla v9.8h, v7.8h, v0.h[5]\n",
            "fmla v10.8h, v6.8h, v1.h[5]\n",
            "fmla v11.8h, v7.8h, v1.h[5]\n",
            "fmla v12.8h, v6.8h, v2.h[5]\n",
            "fmla v13.8h, v7.8h, v2.h[5]\n",
            "fmla v14.8h, v6.8h, v3.h[5]\n",
            "fmla v15.8h, v7.8h, v3.h[5]\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[6]\n",
            "fmla v9.8h, v5.8h, v0.h[6]\n",
            "fmla v10.8h, v4.8h, v1.h[6]\n",
            "fmla v11.8h, v5.8h, v1.h[6]\n",
            "fmla v12.8h, v4.8h, v2.h[6]\n",
            "fmla v13.8h, v5.8h, v2.h[6]\n",
            "fmla v14.8h, v4.8h, v3.h[6]\n",
            "fmla v15.8h, v5.8h, v3.h[6]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[7]\n",
            "fmla v9.8h, v7.8h, v0.h[7]\n",
            "fmla v10.8h, v6.8h, v1.h[7]\n",
            "fmla v11.8h, v7.8h, v1.h[7]\n",
            "fmla v12.8h, v6.8h, v2.h[7]\n",
            "fmla v13.8h, v7.8h, v2.h[7]\n",
            "fmla v14.8h, v6.8h, v3.h[7]\n",
            "fmla v15.8h, v7.8h, v3.h[7]\n",
            "subs {g}, {g}, #1\n",
            "b.ne 11b\n",
            "fcvtl v4.4s, v8.4h\n",
            "fcvtl2 v5.4s, v8.8h\n",
            "fadd v16.4s, v16.4s, v4.4s\n",
            "fadd v17.4s, v17.4s, v5.4s\n",
            "fcvtl v4.4s, v9.4h\n",
            "fcvtl2 v5.4s, v9.8h\n",
            "fadd v18.4s, v18.4s, v4.4s\n",
            "fadd v19.4s, v19.4s, v5.4s\n",
            "fcvtl v4.4s, v10.4h\n",
            "fcvtl2 v5.4s, v10.8h\n",
            "fadd v20.4s, v20.4s, v4.4s\n",
            "fadd v21.4s, v21.4s, v5.4s\n",
            "fcvtl v4.4s, v11.4h\n",
            "fcvtl2 v5.4s, v11.8h\n",
            "fadd v22.4s, v22.4s, v4.4s\n",
            "fadd v23.4s, v23.4s, v5.4s\n",
            "fcvtl v4.4s, v12.4h\n",
            "fcvtl2 v5.4s, v12.8h\n",
            "fadd v24.4s, v24.4s, v4.4s\n",
            "fadd v25.4s, v25.4s, v5.4s\n",
            "fcvtl v4.4s, v13.4h\n",
            "fcvtl2 v5.4s, v13.8h\n",
            "fadd v26.4s, v26.4s, v4.4s\n",
            "fadd v27.4s, v27.4s, v5.4s\n",
            "fcvtl v4.4s, v14.4h\n",
            "fcvtl2 v5.4s, v14.8h\n",
            "fadd v28.4s, v28.4s, v4.4s\n",
            "fadd v29.4s, v29.4s, v5.4s\n",
            "fcvtl v4.4s, v15.4h\n",
            "fcvtl2 v5.4s, v15.8h\n",
            "fadd v30.4s, v30.4s, v4.4s\n",
            "fadd v31.4s, v31.4s, v5.4s\n",
            "subs {full}, {full}, #1\n",
            "b.ne 10b\n",
            "20:\n",
            "movi v8.16b, #0\n",
            "movi v9.16b, #0\n",
            "movi v10.16b, #0\n",
            "movi v11.16b, #0\n",
            "movi v12.16b, #0\n",
            "movi v13.16b, #0\n",
            "movi v14.16b, #0\n",
            "movi v15.16b, #0\n",
            "cbz {rg}, 30f\n",
            "21:\n",
            "ldr q0, [{p0}], #16\n",
            "ldr q1, [{p1}], #16\n",
            "ldr q2, [{p2}], #16\n",
            "ldr q3, [{p3}], #16\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[0]\n",
            "fmla v9.8h, v5.8h, v0.h[0]\n",
            "fmla v10.8h, v4.8h, v1.h[0]\n",
            "fmla v11.8h, v5.8h, v1.h[0]\n",
            "fmla v12.8h, v4.8h, v2.h[0]\n",
            "fmla v13.8h, v5.8h, v2.h[0]\n",
            "fmla v14.8h, v4.8h, v3.h[0]\n",
            "fmla v15.8h, v5.8h, v3.h[0]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[1]\n",
            "fmla v9.8h, v7.8h, v0.h[1]\n",
            "fmla v10.8h, v6.8h, v1.h[1]\n",
            "fmla v11.8h, v7.8h, v1.h[1]\n",
            "fmla v12.8h, v6.8h, v2.h[1]\n",
            "fmla v13.8h, v7.8h, v2.h[1]\n",
            "fmla v14.8h, v6.8h, v3.h[1]\n",
            "fmla v15.8h, v7.8h, v3.h[1]\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[2]\n",
            "fmla v9.8h, v5.8h, v0.h[2]\n",
            "fmla v10.8h, v4.8h, v1.h[2]\n",
            "fmla v11.8h, v5.8h, v1.h[2]\n",
            "fmla v12.8h, v4.8h, v2.h[2]\n",
            "fmla v13.8h, v5.8h, v2.h[2]\n",
            "fmla v14.8h, v4.8h, v3.h[2]\n",
            "fmla v15.8h, v5.8h, v3.h[2]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[3]\n",
            "fmla v9.8h, v7.8h, v0.h[3]\n",
            "fmla v10.8h, v6.8h, v1.h[3]\n",
            "fmla v11.8h, v7.8h, v1.h[3]\n",
            "fmla v12.8h, v6.8h, v2.h[3]\n",
            "fmla v13.8h, v7.8h, v2.h[3]\n",
            "fmla v14.8h, v6.8h, v3.h[3]\n",
            "fmla v15.8h, v7.8h, v3.h[3]\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[4]\n",
            "fmla v9.8h, v5.8h, v0.h[4]\n",
            "fmla v10.8h, v4.8h, v1.h[4]\n",
            "fmla v11.8h, v5.8h, v1.h[4]\n",
            "fmla v12.8h, v4.8h, v2.h[4]\n",
            "fmla v13.8h, v5.8h, v2.h[4]\n",
            "fmla v14.8h, v4.8h, v3.h[4]\n",
            "fmla v15.8h, v5.8h, v3.h[4]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[5]\n",
            "fmla v9.8h, v7.8h, v0.h[5]\n",
            "fmla v10.8h, v6.8h, v1.h[5]\n",
            "fmla v11.8h, v7.8h, v1.h[5]\n",
            "fmla v12.8h, v6.8h, v2.h[5]\n",
            "fmla v13.8h, v7.8h, v2.h[5]\n",
            "fmla v14.8h, v6.8h, v3.h[5]\n",
            "fmla v15.8h, v7.8h, v3.h[5]\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.h[6]\n",
            "fmla v9.8h, v5.8h, v0.h[6]\n",
            "fmla v10.8h, v4.8h, v1.h[6]\n",
            "fmla v11.8h, v5.8h, v1.h[6]\n",
            "fmla v12.8h, v4.8h, v2.h[6]\n",
            "fmla v13.8h, v5.8h, v2.h[6]\n",
            "fmla v14.8h, v4.8h, v3.h[6]\n",
            "fmla v15.8h, v5.8h, v3.h[6]\n",
            "ld1 {{v6.8h, v7.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v6.8h, v0.h[7]\n",
            "fmla v9.8h, v7.8h, v0.h[7]\n",
            "fmla v10.8h, v6.8h, v1.h[7]\n",
            "fmla v11.8h, v7.8h, v1.h[7]\n",
            "fmla v12.8h, v6.8h, v2.h[7]\n",
            "fmla v13.8h, v7.8h, v2.h[7]\n",
            "fmla v14.8h, v6.8h, v3.h[7]\n",
            "fmla v15.8h, v7.8h, v3.h[7]\n",
            "subs {rg}, {rg}, #1\n",
            "b.ne 21b\n",
            "30:\n",
            "cbz {tk}, 40f\n",
            "31:\n",
            "ld1r {{v0.8h}}, [{p0}], #2\n",
            "ld1r {{v1.8h}}, [{p1}], #2\n",
            "ld1r {{v2.8h}}, [{p2}], #2\n",
            "ld1r {{v3.8h}}, [{p3}], #2\n",
            "ld1 {{v4.8h, v5.8h}}, [{v}], {vstride}\n",
            "fmla v8.8h, v4.8h, v0.8h\n",
            "fmla v9.8h, v5.8h, v0.8h\n",
            "fmla v10.8h, v4.8h, v1.8h\n",
            "fmla v11.8h, v5.8h, v1.8h\n",
            "fmla v12.8h, v4.8h, v2.8h\n",
            "fmla v13.8h, v5.8h, v2.8h\n",
            "fmla v14.8h, v4.8h, v3.8h\n",
            "fmla v15.8h, v5.8h, v3.8h\n",
            "subs {tk}, {tk}, #1\n",
            "b.ne 31b\n",
            "40:\n",
            "fcvtl v4.4s, v8.4h\n",
            "fcvtl2 v5.4s, v8.8h\n",
            "fadd v16.4s, v16.4s, v4.4s\n",
            "fadd v17.4s, v17.4s, v5.4s\n",
            "fcvtl v4.4s, v9.4h\n",
            "fcvtl2 v5.4s, v9.8h\n",
            "fadd v18.4s, v18.4s, v4.4s\n",
            "fadd v19.4s, v19.4s, v5.4s\n",
            "fcvtl v4.4s, v10.4h\n",
            "fcvtl2 v5.4s, v10.8h\n",
            "fadd v20.4s, v20.4s, v4.4s\n",
            "fadd v21.4s, v21.4s, v5.4s\n",
            "fcvtl v4.4s, v11.4h\n",
            "fcvtl2 v5.4s, v11.8h\n",
            "fadd v22.4s, v22.4s, v4.4s\n",
            "fadd v23.4s, v23.4s, v5.4s\n",
            "fcvtl v4.4s, v12.4h\n",
            "fcvtl2 v5.4s, v12.8h\n",
            "fadd v24.4s, v24.4s, v4.4s\n",
            "fadd v25.4s, v25.4s, v5.4s\n",
            "fcvtl v4.4s, v13.4h\n",
            "fcvtl2 v5.4s, v13.8h\n",
            "fadd v26.4s, v26.4s, v4.4s\n",
            "fadd v27.4s, v27.4s, v5.4s\n",
            "fcvtl v4.4s, v14.4h\n",
            "fcvtl2 v5.4s, v14.8h\n",
            "fadd v28.4s, v28.4s, v4.4s\n",
            "fadd v29.4s, v29.4s, v5.4s\n",
            "fcvtl v4.4s, v15.4h\n",
            "fcvtl2 v5.4s, v15.8h\n",
            "fadd v30.4s, v30.4s, v4.4s\n",
            "fadd v31.4s, v31.4s, v5.4s\n",
            "st1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{o0}]\n",
            "st1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{o1}]\n",
            "st1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{o2}]\n",
            "st1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{o3}]\n",
        )
    };
}

/// `s[r][c0..c0 + 16] = sum_i q[r][i] * kt[i][c0..c0 + 16]` for 4 rows.
///
/// # Safety
/// The CPU has FEAT_FP16; `q[r]` points to `d` halves, `kt` to a `d x 64` tile at column `c0`
/// (so `d` rows of 64 halves stride, 16 read from each), `s[r]` to 16 writable floats;
/// `d.is_multiple_of(chunk)`, `chunk` 16 or 32.
#[target_feature(enable = "neon,fp16")]
unsafe fn qk_4x16(q: [*const f16; 4], kt: *const f16, d: usize, s: [*mut f32; 4]) {
    let chunk = if d.is_multiple_of(CHUNK) { CHUNK } else { 16 };
    // SAFETY: the caller guarantees the pointers and shapes above; the asm reads q[r][0..d],
    // kt rows 0..d at 16 halves each, writes s[r][0..16], and clobbers only declared registers.
    unsafe {
        std::arch::asm!(
            qk_asm!(),
            q0 = inout(reg) q[0] => _,
            q1 = inout(reg) q[1] => _,
            q2 = inout(reg) q[2] => _,
            q3 = inout(reg) q[3] => _,
            kt = inout(reg) kt => _,
            chunks = inout(reg) d / chunk => _,
            groups = in(reg) chunk / 8,
            g = out(reg) _,
            s0 = in(reg) s[0],
            s1 = in(reg) s[1],
            s2 = in(reg) s[2],
            s3 = in(reg) s[3],
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}

/// `o[r][0..16] = o[r][0..16] * corr[r] + sum_{j < nk} p[r][j] * v[j][0..16]` for 4 rows.
///
/// # Safety
/// The CPU has FEAT_FP16; `p[r]` points to `nk` halves, `v` to `nk` rows of `vstride` bytes with
/// 16 halves read from each, `o[r]` to 16 floats (read and written).
#[target_feature(enable = "neon,fp16")]
unsafe fn pv_4x16(
    p: [*const f16; 4],
    nk: usize,
    v: *const f16,
    vstride: usize,
    corr: &[f32; 4],
    o: [*mut f32; 4],
) {
    // SAFETY: the caller guarantees the pointers and shapes above; the asm reads p[r][0..nk],
    // v rows 0..nk (16 halves each), corr[0..4], reads and writes o[r][0..16], and clobbers only
    // declared registers.
    unsafe {
        std::arch::asm!(
            pv_asm!(),
            p0 = inout(reg) p[0] => _,
            p1 = inout(reg) p[1] => _,
            p2 = inout(reg) p[2] => _,
            p3 = inout(reg) p[3] => _,
            v = inout(reg) v => _,
            vstride = in(reg) vstride,
            corr = in(reg) corr.as_ptr(),
            full = inout(reg) nk / CHUNK => _,
            rg = inout(reg) (nk % CHUNK) / 8 => _,
            tk = inout(reg) nk % 8 => _,
            g = out(reg) _,
            o0 = in(reg) o[0],
            o1 = in(reg) o[1],
            o2 = in(reg) o[2],
            o3 = in(reg) o[3],
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}

impl AttnKernel for Fp16 {
    type E = f16;

    unsafe fn load_q(src: &[f32], scale: f32, dst: &mut [f16]) {
        to_f16(src, scale, dst);
    }

    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [f16],
        vbuf: &'a mut [f16],
    ) -> (&'a [f16], &'a [f16]) {
        match t {
            Tile::F16 { kt, v } => (&kt[..KV_TILE * d], &v[..nk * d]),
            Tile::F32 { kt, v } => {
                to_f16(&kt[..KV_TILE * d], 1.0, &mut kbuf[..KV_TILE * d]);
                to_f16(&v[..nk * d], 1.0, &mut vbuf[..nk * d]);
                (&kbuf[..KV_TILE * d], &vbuf[..nk * d])
            }
        }
    }

    unsafe fn qk(q: &[f16], rows: usize, d: usize, kt: &[f16], nk: usize, s: &mut [f32]) {
        assert!(q.len() >= rows * d && kt.len() >= d * KV_TILE && s.len() >= rows * KV_TILE);
        assert!(nk <= KV_TILE);
        assert!(d.is_multiple_of(16) && d > 0);
        let mut dummy = [0f32; 16];
        for r0 in (0..rows).step_by(4) {
            let qp: [*const f16; 4] =
                std::array::from_fn(|i| q[(r0 + i).min(rows - 1) * d..].as_ptr());
            for c0 in (0..nk).step_by(16) {
                let sp: [*mut f32; 4] = std::array::from_fn(|i| {
                    if r0 + i < rows {
                        // SAFETY: (r0 + i) * 64 + c0 + 16 <= rows * 64 <= s.len().
                        unsafe { s.as_mut_ptr().add((r0 + i) * KV_TILE + c0) }
                    } else {
                        dummy.as_mut_ptr()
                    }
                });
                // SAFETY: FEAT_FP16 (the trait's contract); each q row has d halves, kt is d x 64
                // (column c0 + 16 <= 64), each s pointer has 16 floats; d.is_multiple_of(16).
                unsafe { qk_4x16(qp, kt[c0..].as_ptr(), d, sp) };
            }
        }
    }

    unsafe fn max(x: &[f32]) -> f32 {
        // SAFETY: NEON is present on every aarch64 CPU this path runs on.
        unsafe { super::ops::max(x) }
    }

    unsafe fn exp_to_p(s: &mut [f32], m: f32, p: &mut [f16]) -> f32 {
        exp_to_f16(s, m, p)
    }

    unsafe fn pv(
        p: &[f16],
        rows: usize,
        nk: usize,
        v: &[f16],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    ) {
        assert!(nk <= KV_TILE && p.len() >= rows * KV_TILE && v.len() >= nk * d);
        assert!(corr.len() >= rows && o.len() >= rows * d && d.is_multiple_of(16));
        let mut dummy = [0f32; 16];
        for r0 in (0..rows).step_by(4) {
            let pp: [*const f16; 4] =
                std::array::from_fn(|i| p[(r0 + i).min(rows - 1) * KV_TILE..].as_ptr());
            let c: [f32; 4] = std::array::from_fn(|i| corr[(r0 + i).min(rows - 1)]);
            for c0 in (0..d).step_by(16) {
                let op: [*mut f32; 4] = std::array::from_fn(|i| {
                    if r0 + i < rows {
                        // SAFETY: (r0 + i) * d + c0 + 16 <= rows * d <= o.len().
                        unsafe { o.as_mut_ptr().add((r0 + i) * d + c0) }
                    } else {
                        dummy.as_mut_ptr()
                    }
                });
                // SAFETY: FEAT_FP16 (the trait's contract); each p row has >= nk halves, v has
                // nk rows of d halves (16 read from column c0), each o pointer has 16 floats.
                unsafe { pv_4x16(pp, nk, v[c0..].as_ptr(), d * 2, &c, op) };
            }
        }
    }
}
