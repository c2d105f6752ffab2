//! Element-wise layer ops: `out = silu(gate) * up` (SwiGLU), residual add, softmax, and a
//! vectorized `exp`.
//!
//! All tiers evaluate `exp` with the same range reduction and degree-6 polynomial (see
//! `arch/scalar/ops.rs`); its relative error is at most [`EXP_MAX_REL_ERROR`] for inputs in
//! `[-87.33, 88.37]` (results are normal f32 numbers), tested on every tier. Below that range it
//! returns 0, above it saturates at `e^88.37`.
//!
//! This module also holds the per-tier table of the small layer-op kernels (`OpsKernel`) that
//! `norm`, `rope`, `embedding` and `attention` use.

use crate::arch;
use crate::quant::check_len;
use crate::{Error, Result, Tier};
use half::f16;

/// Largest relative error of [`exp`] (and so of the `exp` inside [`silu_mul`], [`softmax`] and
/// attention) over inputs in `[-87.33, 88.37]`, on every tier: 4 units in the last place of f32
/// (`4 * 2^-24`). Measured: about 2 ulp (see `tests/ops.rs`, `exp_max_relative_error`).
pub const EXP_MAX_REL_ERROR: f64 = 4.0 / (1u64 << 24) as f64;

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
}

/// The layer-op kernels of a tier (which the caller has checked the CPU supports).
pub(crate) fn ops_kernel(tier: Tier) -> &'static OpsKernel {
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::AvxVnni | Tier::Avx512Vnni => arch::x86_64::ops::ops_kernel(tier),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::NeonDot | Tier::NeonI8mm => arch::aarch64::ops::ops_kernel(tier),
        _ => &arch::scalar::ops::OPS_KERNEL,
    }
}

/// Name of the layer-op implementation that runs for `tier` (e.g. `"avx512"`).
pub fn ops_kernel_name(tier: Tier) -> &'static str {
    ops_kernel(tier).name
}

/// `out[i] = silu(gate[i]) * up[i]` with `silu(g) = g / (1 + exp(-g))`; all three of equal length.
pub fn silu_mul(tier: Tier, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    let k = ops_kernel(tier.check()?);
    check_len("up", up.len(), gate.len())?;
    check_len("out", out.len(), gate.len())?;
    // SAFETY: the tier passed `check`; the lengths are equal.
    unsafe { (k.silu_mul)(gate, up, out) };
    Ok(())
}

/// Residual add: `x[i] += y[i]`, equal lengths.
pub fn add_assign(tier: Tier, x: &mut [f32], y: &[f32]) -> Result<()> {
    let k = ops_kernel(tier.check()?);
    check_len("y", y.len(), x.len())?;
    // SAFETY: the tier passed `check`; the lengths are equal.
    unsafe { (k.add_assign)(x, y) };
    Ok(())
}

/// Softmax of one row, in place: `x[i] = exp(x[i] - max) / sum_j exp(x[j] - max)`.
/// An empty row is an error; a row whose maximum is not finite is an error too (no silent NaN).
pub fn softmax(tier: Tier, x: &mut [f32]) -> Result<()> {
    let k = ops_kernel(tier.check()?);
    if x.is_empty() {
        return Err(Error::ShapeMismatch("softmax of an empty row".into()));
    }
    // SAFETY (all three calls): the tier passed `check`.
    let m = unsafe { (k.max)(x) };
    if !m.is_finite() {
        return Err(Error::ShapeMismatch(format!(
            "softmax row maximum is {m}, not finite"
        )));
    }
    let s = unsafe { (k.exp_sub_sum)(x, m) };
    unsafe { (k.scale)(x, 1.0 / s) };
    Ok(())
}

/// `x[i] = exp(x[i])` in place, with the vectorized approximation every op here uses; relative
/// error at most [`EXP_MAX_REL_ERROR`] for `x` in `[-87.33, 88.37]`, 0 below, saturated above.
pub fn exp(tier: Tier, x: &mut [f32]) -> Result<()> {
    let k = ops_kernel(tier.check()?);
    // SAFETY: the tier passed `check`.
    unsafe { (k.exp)(x) };
    Ok(())
}
