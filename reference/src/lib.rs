//! `qkern-reference`: plain scalar implementations that define what every `qkern` kernel computes.
//!
//! This crate is the test oracle. It has no `unsafe`, no SIMD and no dependency on `qkern`, and it
//! is written to be obviously correct rather than fast: integer parts are computed exactly, float
//! combinations in `f64`, angles per index. Block types are its own plain structs so that a bug in
//! `qkern`'s layout code cannot hide in a shared definition; the GGUF weight blocks added with the
//! other formats (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) are `#[repr(C)]` and `bytemuck::Pod`, so raw file
//! bytes cast to them directly.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use half::{bf16, f16};

mod kquants;
mod legacy;

pub use kquants::*;
pub use legacy::*;

/// Elements per quantization block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and [`ActBlock`]).
pub const QK: usize = 32;

/// One Q4_0 block in GGUF layout: element `j` is the low nibble of `qs[j]`, element `j + 16` the high
/// nibble; value = (q - 8) * d.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Packed nibbles.
    pub qs: [u8; 16],
}

/// One Q8_0 block in GGUF layout: value = q * d.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quantized values.
    pub qs: [i8; 32],
}

/// One block of quantized activations: value = q * d, with an `f32` scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActBlock {
    /// Scale, `absmax / 127`.
    pub d: f32,
    /// Quantized values in `-127..=127`.
    pub qs: [i8; 32],
}

/// Element of largest magnitude (first one on ties), with its sign; NaN elements are skipped, as in ggml.
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Quantizes `x` (length a multiple of 32) to Q4_0 exactly as ggml's `quantize_row_q4_0_ref`
/// does on x86_64: `d = max / -8`, `id = 1/d` (0 if d = 0), `q = min(15, trunc(x*id + 8.5))`,
/// where a non-finite `x*id + 8.5` gives 0 (what the C cast yields on x86_64 and numpy).
pub fn quantize_q4_0(x: &[f32]) -> Vec<BlockQ4_0> {
    assert_eq!(x.len() % QK, 0, "length must be a multiple of 32");
    x.chunks_exact(QK)
        .map(|b| {
            let max = signed_absmax(b);
            let d = max / -8.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            let nibble = |v: f32| -> u8 {
                let t = (v * id + 8.5).trunc();
                if t.is_finite() {
                    (t as u8).min(15)
                } else {
                    0
                }
            };
            let mut qs = [0u8; 16];
            for j in 0..16 {
                qs[j] = nibble(b[j]) | (nibble(b[j + 16]) << 4);
            }
            BlockQ4_0 {
                d: f16::from_f32(d),
                qs,
            }
        })
        .collect()
}

/// The 32 integer values `q - 8` of a Q4_0 block, in element order.
pub fn q4_0_values(b: &BlockQ4_0) -> [i8; 32] {
    let mut v = [0i8; 32];
    for j in 0..16 {
        v[j] = (b.qs[j] & 0x0F) as i8 - 8;
        v[j + 16] = (b.qs[j] >> 4) as i8 - 8;
    }
    v
}

/// Dequantizes Q4_0 blocks to f32.
pub fn dequantize_q4_0(blocks: &[BlockQ4_0]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let d = b.d.to_f32();
            q4_0_values(b).map(|q| q as f32 * d)
        })
        .collect()
}

/// Quantizes `x` (length a multiple of 32) to Q8_0 as ggml's `quantize_row_q8_0_ref`:
/// `d = absmax / 127`, `q = round_half_away(x / d)`, d stored as f16.
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    quantize_activations(x)
        .into_iter()
        .map(|a| BlockQ8_0 {
            d: f16::from_f32(a.d),
            qs: a.qs,
        })
        .collect()
}

/// Dequantizes Q8_0 blocks to f32.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let d = b.d.to_f32();
            b.qs.map(|q| q as f32 * d)
        })
        .collect()
}

/// Dynamic int8 activation quantization, per block of 32: `d = absmax / 127` (f32),
/// `id = 1/d` (0 if d = 0 or 1/d overflows), `q = round_half_away_from_zero(x * id)`.
pub fn quantize_activations(x: &[f32]) -> Vec<ActBlock> {
    assert_eq!(x.len() % QK, 0, "length must be a multiple of 32");
    x.chunks_exact(QK)
        .map(|b| {
            let mut qs = [0i8; 32];
            let d = quantize_block(b, &mut qs);
            ActBlock { d, qs }
        })
        .collect()
}

/// The rule of [`quantize_activations`] for one block of any length: writes `qs` and returns `d`.
pub(crate) fn quantize_block(b: &[f32], qs: &mut [i8]) -> f32 {
    let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 || !(1.0 / d).is_finite() {
        0.0
    } else {
        1.0 / d
    };
    for (q, &v) in qs.iter_mut().zip(b) {
        *q = (v * id).round() as i8;
    }
    d
}

/// Shared driver of the block matmuls: `y[i][j] = sum_b sum_t terms(w[j][b], x[i][b])[t] (+ bias[j])`,
/// or with `abs`, the sum of the absolute values of the same terms (an error scale). `w` holds N
/// rows of `k / block` blocks, `x` M rows of activation blocks of the same length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_terms<W, A, const T: usize>(
    w: &[W],
    x: &[A],
    n: usize,
    k: usize,
    block: usize,
    bias: Option<&[f32]>,
    abs: bool,
    terms: impl Fn(&W, &A) -> [f64; T],
) -> Vec<f64> {
    assert_eq!(k % block, 0, "k must be a multiple of the block length");
    let kb = k / block;
    assert_eq!(w.len(), n * kb, "w must hold n rows of k / block blocks");
    assert_eq!(x.len() % kb.max(1), 0, "x must hold whole rows");
    let m = x.len().checked_div(kb).unwrap_or(0);
    let f = |v: f64| if abs { v.abs() } else { v };
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| f(b[j] as f64));
            for b in 0..kb {
                for t in terms(&w[j * kb + b], &x[i * kb + b]) {
                    acc += f(t);
                }
            }
            y[i * n + j] = acc;
        }
    }
    y
}

/// Exact integer dot product of one Q4_0 block with one activation block.
pub fn block_dot_q4(w: &BlockQ4_0, a: &ActBlock) -> i32 {
    q4_0_values(w)
        .iter()
        .zip(a.qs.iter())
        .map(|(&p, &q)| p as i32 * q as i32)
        .sum()
}

/// Exact integer dot product of one Q8_0 block with one activation block.
pub fn block_dot_q8(w: &BlockQ8_0, a: &ActBlock) -> i32 {
    w.qs.iter()
        .zip(a.qs.iter())
        .map(|(&p, &q)| p as i32 * q as i32)
        .sum()
}

/// Q4_0 x int8 matmul: `y[m][n] = sum_b d_w[n][b] * d_x[m][b] * isum(n, m, b) (+ bias[n])`,
/// with every block's integer sum exact and the combination in f64.
/// `w` is N rows of K/32 blocks; `x` is M rows of K/32 activation blocks. Returns M x N, row-major.
pub fn matmul_q4_0(
    w: &[BlockQ4_0],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let kb = k / QK;
    assert_eq!(w.len(), n * kb);
    let m = x.len() / kb;
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for b in 0..kb {
                let isum = block_dot_q4(&w[j * kb + b], &x[i * kb + b]);
                acc += w[j * kb + b].d.to_f64() * x[i * kb + b].d as f64 * isum as f64;
            }
            y[i * n + j] = acc;
        }
    }
    y
}

/// Q8_0 x int8 matmul, same contract as [`matmul_q4_0`].
pub fn matmul_q8_0(
    w: &[BlockQ8_0],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let kb = k / QK;
    assert_eq!(w.len(), n * kb);
    let m = x.len() / kb;
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| b[j] as f64);
            for b in 0..kb {
                let isum = block_dot_q8(&w[j * kb + b], &x[i * kb + b]);
                acc += w[j * kb + b].d.to_f64() * x[i * kb + b].d as f64 * isum as f64;
            }
            y[i * n + j] = acc;
        }
    }
    y
}

/// Bound on the rounding error of an f32 evaluation of [`matmul_q4_0`] / [`matmul_q8_0`]:
/// `sum_b |d_w * d_x * isum_b|` (plus |bias|). Each block term is exact in f32 up to one rounding of
/// the scale product and one of the product with `isum` (|isum| < 2^24), and summing K/32 terms adds
/// at most K/32 roundings, so `|y_f32 - y_ref| <= (K/32 + 3) * 2^-24 * bound` for any summation order.
pub fn matmul_error_scale<W>(
    w: &[W],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
    block: impl Fn(&W, &ActBlock) -> (f64, i32),
) -> Vec<f64> {
    let kb = k / QK;
    let m = x.len() / kb;
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = bias.map_or(0.0, |b| (b[j] as f64).abs());
            for b in 0..kb {
                let (dw, isum) = block(&w[j * kb + b], &x[i * kb + b]);
                acc += (dw * x[i * kb + b].d as f64 * isum as f64).abs();
            }
            y[i * n + j] = acc;
        }
    }
    y
}

/// RMSNorm: `y = x / sqrt(mean(x^2) + eps) * weight`, computed in f64.
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f64> {
    let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ss + eps as f64).sqrt();
    x.iter()
        .zip(weight)
        .map(|(&v, &w)| v as f64 * r * w as f64)
        .collect()
}

/// SiLU(gate) * up, in f64.
pub fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f64> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| {
            let g = g as f64;
            g / (1.0 + (-g).exp()) * u as f64
        })
        .collect()
}

/// Softmax over `x`, in f64 (max subtracted first).
pub fn softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// NEOX rotary embedding of one head vector (length `d`, even) at position `pos`: pairs
/// `(i, i + d/2)` rotated by `pos * theta^(-2i/d)`, angle computed per index in f64.
pub fn rope_neox(x: &[f32], pos: usize, theta: f64) -> Vec<f64> {
    let d = x.len();
    let half = d / 2;
    let mut y = vec![0f64; d];
    for i in 0..half {
        let freq = theta.powf(-2.0 * i as f64 / d as f64);
        let angle = pos as f64 * freq;
        let (s, c) = angle.sin_cos();
        let a = x[i] as f64;
        let b = x[i + half] as f64;
        y[i] = a * c - b * s;
        y[i + half] = a * s + b * c;
    }
    y
}

/// RMSNorm followed by the int8 activation quantization, one row of `weight.len()` values at a
/// time: `quantize_activations(rmsnorm(row) rounded to f32)`. `x` holds whole rows.
pub fn rmsnorm_quantize(x: &[f32], weight: &[f32], eps: f32) -> Vec<ActBlock> {
    assert_eq!(x.len() % weight.len(), 0, "x must hold whole rows");
    x.chunks_exact(weight.len())
        .flat_map(|row| {
            let y: Vec<f32> = rmsnorm(row, weight, eps)
                .iter()
                .map(|&v| v as f32)
                .collect();
            quantize_activations(&y)
        })
        .collect()
}

/// Residual add `x + y`, in f64.
pub fn add(x: &[f32], y: &[f32]) -> Vec<f64> {
    x.iter()
        .zip(y)
        .map(|(&a, &b)| a as f64 + b as f64)
        .collect()
}

/// NEOX rotary embedding of `t` rows of `n_heads` head vectors (length `head_dim`), row `r` at
/// position `pos0 + r`, after adding `bias` (one row of `n_heads * head_dim`, added in f64) to
/// every row. Each head vector is rotated by [`rope_neox`].
pub fn rope_neox_rows(
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    pos0: usize,
    theta: f64,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let width = n_heads * head_dim;
    assert_eq!(x.len() % width, 0, "x must hold whole rows");
    let mut y = Vec::with_capacity(x.len());
    for (r, row) in x.chunks_exact(width).enumerate() {
        for h in 0..n_heads {
            let v = &row[h * head_dim..(h + 1) * head_dim];
            let b = bias.map(|b| &b[h * head_dim..(h + 1) * head_dim]);
            // Rotation is linear: rotate x and the bias separately, in f64, and add.
            let mut out = rope_neox(v, pos0 + r, theta);
            if let Some(b) = b {
                for (o, rb) in out.iter_mut().zip(rope_neox(b, pos0 + r, theta)) {
                    *o += rb;
                }
            }
            y.extend(out);
        }
    }
    y
}

/// Causal grouped-query attention for a chunk of queries, in f64.
///
/// `q`: `t_q x n_head x head_dim` (row-major); `k`, `v`: `t_kv x n_kv x head_dim`. Query row `i` sits at
/// position `t_kv - t_q + i` and sees keys `0..=that position`. Query head `h` reads KV head
/// `h / (n_head / n_kv)`. Scale `1 / sqrt(head_dim)`. Returns `t_q x n_head x head_dim`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
) -> Vec<f64> {
    let t_q = q.len() / (n_head * head_dim);
    let t_kv = k.len() / (n_kv * head_dim);
    assert!(t_kv >= t_q && n_head.is_multiple_of(n_kv));
    let group = n_head / n_kv;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut out = vec![0f64; q.len()];
    for i in 0..t_q {
        let pos = t_kv - t_q + i;
        for h in 0..n_head {
            let kh = h / group;
            let qrow = &q[(i * n_head + h) * head_dim..][..head_dim];
            let scores: Vec<f64> = (0..=pos)
                .map(|j| {
                    let krow = &k[(j * n_kv + kh) * head_dim..][..head_dim];
                    qrow.iter()
                        .zip(krow)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let o = &mut out[(i * n_head + h) * head_dim..][..head_dim];
            for (j, p) in e.iter().enumerate() {
                let vrow = &v[(j * n_kv + kh) * head_dim..][..head_dim];
                for (od, &vd) in o.iter_mut().zip(vrow) {
                    *od += p / sum * vd as f64;
                }
            }
        }
    }
    out
}

/// Row `row` of a Q4_0 matrix with `k` columns, dequantized.
pub fn embedding_q4_0(blocks: &[BlockQ4_0], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK;
    dequantize_q4_0(&blocks[row * kb..(row + 1) * kb])
}

/// Row `row` of a Q8_0 matrix with `k` columns, dequantized.
pub fn embedding_q8_0(blocks: &[BlockQ8_0], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK;
    dequantize_q8_0(&blocks[row * kb..(row + 1) * kb])
}

/// Row `row` of an f16 matrix with `k` columns, as f32.
pub fn embedding_f16(data: &[f16], k: usize, row: usize) -> Vec<f32> {
    data[row * k..(row + 1) * k]
        .iter()
        .map(|v| v.to_f32())
        .collect()
}

/// Row `row` of a bf16 matrix with `k` columns, as f32.
pub fn embedding_bf16(data: &[bf16], k: usize, row: usize) -> Vec<f32> {
    data[row * k..(row + 1) * k]
        .iter()
        .map(|v| v.to_f32())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_roundtrip_of_representable_values() {
        // Values (q - 8) * d with the extreme -8 * d present are reproduced exactly.
        let d = 0.25f32;
        let x: Vec<f32> = (0..32).map(|i| ((i % 16) as f32 - 8.0) * -d).collect();
        let b = quantize_q4_0(&x);
        let y = dequantize_q4_0(&b);
        assert_eq!(x, y);
    }

    #[test]
    fn activation_rounding_is_half_away_from_zero() {
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -2.5;
        let a = quantize_activations(&x);
        assert_eq!(a[0].d, 1.0);
        assert_eq!(&a[0].qs[..3], &[127, 3, -3]);
    }

    #[test]
    fn attention_single_key_returns_value() {
        let q = [1.0f32, 2.0];
        let k = [0.5f32, 0.5];
        let v = [3.0f32, -4.0];
        assert_eq!(attention(&q, &k, &v, 1, 1, 2), vec![3.0, -4.0]);
    }

    #[test]
    fn rope_position_zero_is_identity() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(rope_neox(&x, 0, 10000.0), vec![1.0, 2.0, 3.0, 4.0]);
    }
}
