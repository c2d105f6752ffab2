//! Portable layer ops (the `Scalar` tier, and the definition the SIMD tiers follow): RMSNorm
//! pieces, SiLU * up, residual add, softmax pieces, RoPE rotation, f16 widening.

use crate::contract::ops::OpsKernel;
pub(crate) use crate::contract::ops::{exp_f32, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E};
use half::f16;

pub(crate) static OPS_KERNEL: OpsKernel = OpsKernel {
    name: "scalar",
    sum_squares,
    scale_mul,
    silu_mul,
    add_assign,
    max,
    exp_sub_sum,
    scale,
    exp,
    rope,
    f16_to_f32,
    f32_to_f16,
    max_abs,
    dot_i8,
};

/// Lanes of the canonical sum-of-squares order (see [`sum_squares`]).
pub(crate) const SS_LANES: usize = 16;

/// `sum x[i]^2` in the canonical order every tier reproduces bit for bit: lane `l` accumulates
/// `x[i] * x[i]` (product rounded, then added; no fused multiply-add) for `i % 16 == l` in
/// increasing `i`, then [`reduce_lanes`] adds the 16 lanes.
pub(crate) fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0f32; SS_LANES];
    for (i, &v) in x.iter().enumerate() {
        acc[i % SS_LANES] += v * v;
    }
    reduce_lanes(acc)
}

/// The fixed reduction tree of the canonical order: halves added lane-wise (8, 4, 2, 1).
pub(crate) fn reduce_lanes(mut acc: [f32; SS_LANES]) -> f32 {
    let mut w = SS_LANES / 2;
    while w > 0 {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
        w /= 2;
    }
    acc[0]
}

/// `out[i] = (x[i] * r) * w[i]`, two roundings, no fused multiply-add (bit-identical on all tiers).
pub(crate) fn scale_mul(x: &[f32], r: f32, w: &[f32], out: &mut [f32]) {
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        *o = (v * r) * w;
    }
}

pub(crate) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp_f32(-g)) * u;
    }
}

pub(crate) fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Largest element (NaN ignored); `-inf` for an empty slice.
pub(crate) fn max(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `x[i] = exp(x[i] - m)`; returns the sum of the new values.
pub(crate) fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    let mut s = 0.0;
    for v in x.iter_mut() {
        *v = exp_f32(*v - m);
        s += *v;
    }
    s
}

pub(crate) fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

pub(crate) fn exp(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = exp_f32(*v);
    }
}

/// NEOX rotation of one head vector: pairs `(i, i + d/2)`, `cos`/`sin` of length `d/2`, after
/// adding `bias` (length `d`) if given.
pub(crate) fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        add_assign(x, b);
    }
    let (lo, hi) = x.split_at_mut(cos.len());
    for (((a, b), &c), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
        let (x0, x1) = (*a, *b);
        *a = x0 * c - x1 * s;
        *b = x0 * s + x1 * c;
    }
}

pub(crate) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

pub(crate) fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(*s);
    }
}

/// Largest |x| (NaN ignored); 0 for an empty slice.
pub(crate) fn max_abs(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}
