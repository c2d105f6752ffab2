//! Element-wise layer ops: `out = silu(gate) * up` (SwiGLU), residual add, softmax, and a
//! vectorized `exp`.
//!
//! All tiers evaluate `exp` with the same range reduction and degree-6 polynomial (see
//! `arch/scalar/ops.rs`); its relative error is at most [`EXP_MAX_REL_ERROR`] for inputs in
//! `[-87.33, 88.37]` (results are normal f32 numbers), tested on every tier. Below that range it
//! returns 0, above it saturates at `e^88.37`.
//!
//! Also the fused SiLU-multiply-quantize that feeds the FFN's down projection.

use crate::contract::Kernels;
use crate::kernels::matmul::QuantizedActivations;
use crate::quant::check_len;
use crate::{Error, Result};
use std::cell::RefCell;

/// Largest relative error of [`exp`] (and so of the `exp` inside [`silu_mul`], [`softmax`] and
/// attention) over inputs in `[-87.33, 88.37]`, on every tier: 4 units in the last place of f32
/// (`4 * 2^-24`). Measured: about 2 ulp (see `tests/ops.rs`, `exp_max_relative_error`).
pub const EXP_MAX_REL_ERROR: f64 = 4.0 / (1u64 << 24) as f64;

/// `out[i] = silu(gate[i]) * up[i]` with `silu(g) = g / (1 + exp(-g))`; all three of equal length.
pub fn silu_mul(k: &Kernels, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    let k = k.ops;
    check_len("up", up.len(), gate.len())?;
    check_len("out", out.len(), gate.len())?;
    // SAFETY: `Kernels` exist only for supported tiers; the lengths are equal.
    unsafe { (k.silu_mul)(gate, up, out) };
    Ok(())
}

/// Residual add: `x[i] += y[i]`, equal lengths.
pub fn add_assign(k: &Kernels, x: &mut [f32], y: &[f32]) -> Result<()> {
    let k = k.ops;
    check_len("y", y.len(), x.len())?;
    // SAFETY: `Kernels` exist only for supported tiers; the lengths are equal.
    unsafe { (k.add_assign)(x, y) };
    Ok(())
}

/// Softmax of one row, in place: `x[i] = exp(x[i] - max) / sum_j exp(x[j] - max)`.
/// An empty row is an error; a row whose maximum is not finite is an error too (no silent NaN).
pub fn softmax(k: &Kernels, x: &mut [f32]) -> Result<()> {
    let k = k.ops;
    if x.is_empty() {
        return Err(Error::ShapeMismatch("softmax of an empty row".into()));
    }
    // SAFETY (all three calls): `Kernels` exist only for supported tiers.
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
pub fn exp(k: &Kernels, x: &mut [f32]) -> Result<()> {
    let k = k.ops;
    // SAFETY: `Kernels` exist only for supported tiers.
    unsafe { (k.exp)(x) };
    Ok(())
}

thread_local! {
    /// Scratch row of [`silu_mul_quantize`], reused across calls on a thread.
    static SILU_ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The SwiGLU product quantized for the next matmul: for every row `r` of `gate_up` (rows of
/// `2 f` values, the gate's `f` then the up projection's `f`, as one fused gate+up matmul writes
/// them), `silu(gate) * up` is quantized into row `r` of `out` (for `out`'s tier), one row at a
/// time through a scratch row, so the product is never written out whole. `f` must be a multiple
/// of 32. The blocks equal those of quantizing [`silu_mul`]'s output, bit for bit.
pub fn silu_mul_quantize(gate_up: &[f32], f: usize, out: &mut QuantizedActivations) -> Result<()> {
    let width = crate::error::mul(f, 2, "2 * f")?;
    if width == 0 || gate_up.is_empty() || !gate_up.len().is_multiple_of(width) {
        return Err(Error::ShapeMismatch(format!(
            "gate_up has {} values, not a non-zero multiple of 2 * f = {width}",
            gate_up.len()
        )));
    }
    let m = gate_up.len() / width;
    let k = out.kernels();
    SILU_ROW.with(|s| {
        let mut scratch = s.borrow_mut();
        out.quantize_with(m, f, &mut scratch, |i, row| {
            let g = &gate_up[i * width..(i + 1) * width];
            silu_mul(k, &g[..f], &g[f..], row)
        })
    })
}
