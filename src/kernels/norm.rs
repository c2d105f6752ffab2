//! RMSNorm, alone and fused with the int8 activation quantization that feeds the next matmul.
//!
//! `y = x * r * w` with `r = 1 / sqrt(sum(x^2) / n + eps)`. The normalized row is computed
//! **identically on every tier**: the sum of squares in a fixed 16-lane order (lane `l` takes
//! elements `i % 16 == l`, products rounded before the add, lanes reduced by halves), `r` in
//! scalar f32, and `y[i] = (x[i] * r) * w[i]` with two roundings. So [`rmsnorm`] gives the same
//! bits on every tier, and [`rmsnorm_quantize`] gives exactly the blocks that quantizing
//! [`rmsnorm`]'s output gives (tested bit for bit against `qkern_reference::quantize_activations`).

use crate::contract::ops::OpsKernel;
use crate::contract::Kernels;
use crate::kernels::matmul::QuantizedActivations;
use crate::quant::check_len;
use crate::{Error, Result};
use std::cell::RefCell;

/// Checks the shapes and returns the number of rows.
fn rows(x_len: usize, k: usize) -> Result<usize> {
    if k == 0 {
        return Err(Error::ShapeMismatch("RMSNorm weight is empty".into()));
    }
    if x_len == 0 || !x_len.is_multiple_of(k) {
        return Err(Error::ShapeMismatch(format!(
            "x has {x_len} values, not a non-zero multiple of the row length {k}"
        )));
    }
    Ok(x_len / k)
}

/// Normalizes one row (`x.len() == w.len() == out.len()`).
///
/// # Safety
/// The CPU supports the tier of `k`.
unsafe fn norm_row(k: &OpsKernel, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    // SAFETY: forwarded; the lengths are equal.
    let ss = unsafe { (k.sum_squares)(x) };
    let r = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    // SAFETY: as above.
    unsafe { (k.scale_mul)(x, r, w, out) };
}

/// RMSNorm of `m` rows: `x` and `out` hold `m * weight.len()` values.
pub fn rmsnorm(k: &Kernels, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let k = k.ops;
    rows(x.len(), weight.len())?;
    check_len("out", out.len(), x.len())?;
    for (xr, or) in x
        .chunks_exact(weight.len())
        .zip(out.chunks_exact_mut(weight.len()))
    {
        // SAFETY: `Kernels` exist only for supported tiers; the rows have the weight's length.
        unsafe { norm_row(k, xr, weight, eps, or) };
    }
    Ok(())
}

thread_local! {
    /// The scratch row of [`rmsnorm_quantize`], reused across calls on a thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// RMSNorm of `m = x.len() / weight.len()` rows, each quantized into `out` (for `out`'s tier)
/// right after it is normalized, while it is in L1. `weight.len()` must be a multiple of 32.
/// The blocks equal those of quantizing [`rmsnorm`]'s output with
/// [`crate::quant::quantize_activation_block`], bit for bit.
pub fn rmsnorm_quantize(
    x: &[f32],
    weight: &[f32],
    eps: f32,
    out: &mut QuantizedActivations,
) -> Result<()> {
    let k = out.kernels().ops;
    let n = weight.len();
    let m = rows(x.len(), n)?;
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        out.quantize_with(m, n, &mut scratch, |i, row| {
            // SAFETY: `Kernels` exist only for supported tiers; `row` has `n` values
            // (quantize_with resizes it).
            unsafe { norm_row(k, &x[i * n..(i + 1) * n], weight, eps, row) };
            Ok(())
        })
    })
}
