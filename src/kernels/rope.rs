//! Rotary position embedding, NEOX pairing: in each head vector of length `d`, the pair
//! `(x[i], x[i + d/2])` is rotated by the angle `pos * theta^(-2i/d)`.
//!
//! The cos/sin table holds, for every position and index, the f32 rounding of the angle's
//! cos/sin computed in f64 from `pos * theta^(-2i/d)` directly (no recurrence, so no drift at
//! large positions). Applying it is one f32 rotation per pair; the optional bias (the Q/K
//! projection bias of Qwen2) is added in the same pass.

use crate::contract::Kernels;
use crate::quant::check_len;
use crate::{Error, Result};

/// A NEOX RoPE table for one head size, base `theta` and positions `0..max_positions`.
#[derive(Clone, Debug)]
pub struct Rope {
    head_dim: usize,
    max_positions: usize,
    /// `max_positions x head_dim/2` cosines, then as many sines.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// Builds the table. `head_dim` must be even and non-zero, `theta` finite and positive,
    /// `max_positions` non-zero.
    pub fn new(head_dim: usize, theta: f64, max_positions: usize) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(Error::ShapeMismatch(format!(
                "RoPE head_dim {head_dim} must be even and non-zero"
            )));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::ShapeMismatch(format!(
                "RoPE theta {theta} must be finite and positive"
            )));
        }
        if max_positions == 0 {
            return Err(Error::ShapeMismatch("RoPE max_positions is 0".into()));
        }
        let half = head_dim / 2;
        let len = crate::error::mul(max_positions, half, "RoPE table size")?;
        crate::error::mul(len, 8, "RoPE table bytes")?;
        let freq: Vec<f64> = (0..half)
            .map(|i| theta.powf(-2.0 * i as f64 / head_dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(len);
        let mut sin = Vec::with_capacity(len);
        for pos in 0..max_positions {
            for &f in &freq {
                let (s, c) = (pos as f64 * f).sin_cos();
                cos.push(c as f32);
                sin.push(s as f32);
            }
        }
        Ok(Rope {
            head_dim,
            max_positions,
            cos,
            sin,
        })
    }

    /// Head vector length.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Positions the table covers (`0..max_positions`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Rotates `x` in place: `t` rows of `n_heads * head_dim` values, row `r` at position
    /// `pos0 + r` (all below `max_positions`). `bias`, if given (`n_heads * head_dim` values), is
    /// added to every row first.
    pub fn apply(
        &self,
        k: &Kernels,
        x: &mut [f32],
        n_heads: usize,
        pos0: usize,
        bias: Option<&[f32]>,
    ) -> Result<()> {
        let k = k.ops;
        let d = self.head_dim;
        let width = crate::error::mul(n_heads, d, "n_heads * head_dim")?;
        if width == 0 || x.is_empty() || !x.len().is_multiple_of(width) {
            return Err(Error::ShapeMismatch(format!(
                "x has {} values, not a non-zero multiple of n_heads * head_dim = {width}",
                x.len()
            )));
        }
        if let Some(b) = bias {
            check_len("RoPE bias", b.len(), width)?;
        }
        let t = x.len() / width;
        if pos0 >= self.max_positions || t > self.max_positions - pos0 {
            return Err(Error::ShapeMismatch(format!(
                "positions {pos0}..{} exceed the RoPE table ({} positions)",
                pos0.saturating_add(t),
                self.max_positions
            )));
        }
        let half = d / 2;
        for (r, row) in x.chunks_exact_mut(width).enumerate() {
            let p = pos0 + r;
            let (cos, sin) = (
                &self.cos[p * half..(p + 1) * half],
                &self.sin[p * half..(p + 1) * half],
            );
            for (h, head) in row.chunks_exact_mut(d).enumerate() {
                let b = bias.map(|b| &b[h * d..(h + 1) * d]);
                // SAFETY: `Kernels` exist only for supported tiers; `head` has 2 * cos.len() values, `b` as many.
                unsafe { (k.rope)(head, cos, sin, b) };
            }
        }
        Ok(())
    }
}
