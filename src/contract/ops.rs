//! The small layer ops of one tier: what `crate::kernels::{norm, elementwise, rope, embedding,
//! dot, kv_cache}` call after validating their arguments.

use half::f16;

/// A RoPE kernel: rotates one head vector `x` (length `2 * cos.len()`) after adding `bias`.
pub(crate) type RopeFn = unsafe fn(x: &mut [f32], cos: &[f32], sin: &[f32], bias: Option<&[f32]>);

/// One tier's small layer-op kernels. Each `unsafe fn` may only be called when the CPU supports
/// the tier the table belongs to; slice arguments that go together have equal lengths (checked by
/// the callers in `crate::kernels`).
pub(crate) struct OpsKernel {
    /// Implementation name (benches).
    pub name: &'static str,
    /// `sum x[i]^2` in the canonical lane order of `arch::scalar::ops::sum_squares`, bit for bit.
    pub sum_squares: unsafe fn(x: &[f32]) -> f32,
    /// `out[i] = (x[i] * r) * w[i]`, unfused, bit for bit.
    pub scale_mul: unsafe fn(x: &[f32], r: f32, w: &[f32], out: &mut [f32]),
    /// `out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]`.
    pub silu_mul: unsafe fn(gate: &[f32], up: &[f32], out: &mut [f32]),
    /// `x[i] += y[i]`.
    pub add_assign: unsafe fn(x: &mut [f32], y: &[f32]),
    /// Largest element, NaN ignored, `-inf` if empty.
    pub max: unsafe fn(x: &[f32]) -> f32,
    /// Largest `|x[i]|`, NaN ignored, 0 if empty.
    pub max_abs: unsafe fn(x: &[f32]) -> f32,
    /// `x[i] = exp(x[i] - m)`, returns the sum of the results.
    pub exp_sub_sum: unsafe fn(x: &mut [f32], m: f32) -> f32,
    /// `x[i] *= s`.
    pub scale: unsafe fn(x: &mut [f32], s: f32),
    /// `x[i] = exp(x[i])`.
    pub exp: unsafe fn(x: &mut [f32]),
    /// NEOX rotation of one head vector (length `2 * cos.len()`), after adding `bias` if given.
    pub rope: RopeFn,
    /// Widens f16 to f32 (`dst.len() == src.len()`).
    pub f16_to_f32: unsafe fn(src: &[f16], dst: &mut [f32]),
    /// Narrows f32 to f16, rounding to nearest even (`dst.len() == src.len()`).
    pub f32_to_f16: unsafe fn(src: &[f32], dst: &mut [f16]),
    /// `sum a[i] * b[i]` in i32 (`a.len() == b.len() <= DOT_I8_MAX_LEN`, so it cannot overflow).
    pub dot_i8: unsafe fn(a: &[i8], b: &[i8]) -> i32,
}

// The exp approximation shared (as a formula) by every tier. Range reduction
// `x = n ln2 + r`, |r| <= ln2/2, with ln2 split in a high part exact in f32 and a low part;
// e^r by Cephes' degree-6 polynomial (minimax for expf); 2^n built in the exponent bits.
// Inputs are clamped to [EXP_LO, EXP_HI] so 2^n stays a normal number; below EXP_LO (where
// e^x is below the smallest normal, 1.18e-38) the result is 0, above EXP_HI it is e^EXP_HI.
// Maximum relative error over [EXP_LO, EXP_HI]: see `tests/ops.rs` (`exp_max_relative_error`).
pub(crate) const EXP_LO: f32 = -87.336_54;
pub(crate) const EXP_HI: f32 = 88.376_26;
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
pub(crate) const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// Scalar evaluation of the shared exp approximation.
pub(crate) fn exp_f32(x: f32) -> f32 {
    if x < EXP_LO || x.is_nan() {
        return if x.is_nan() { x } else { 0.0 };
    }
    let x = x.min(EXP_HI);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = EXP_P[0];
    for &c in &EXP_P[1..] {
        p = p * r + c;
    }
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}
