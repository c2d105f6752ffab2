//! GGUF's K-quants Q4_K, Q5_K and Q6_K (super-blocks of 256 values with integer sub-block scales)
//! and the activation blocks of 256 that their matmuls take.
//!
//! Byte layouts are those of ggml-common.h. Dequantization follows gguf-py's numpy dequantizers
//! (which mirror ggml's `dequantize_row_q4_K` / `_q5_K` / `_q6_K`) operation for operation in f32,
//! so its results are bit-identical: Q4_K/Q5_K `(d * sc) * q - (dmin * m)`, Q6_K `(d * sc) * q`.

use crate::{matmul_terms, quantize_block};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// Values per K-quant super-block (and per [`ActBlockK`]).
pub const QK_K: usize = 256;

/// One Q4_K super-block (144 bytes): 8 sub-blocks of 32 values, each with a 6-bit scale `sc` and a
/// 6-bit min `m` packed in `scales` (see [`q4k_parts`]); value = `d * sc * q - dmin * m`, `q` in
/// `0..=15`. Bytes `qs[32i..32i + 32]` hold sub-block `2i` in their low nibbles and `2i + 1` in their
/// high nibbles.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the sub-block scales.
    pub d: f16,
    /// Super-block scale of the sub-block mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each (ggml's `get_scale_min_k4` packing).
    pub scales: [u8; 12],
    /// Low 4 bits.
    pub qs: [u8; 128],
}

/// One Q5_K super-block (176 bytes): as [`BlockQ4K`] with a 5th bit per value, `q` in `0..=31`;
/// bit `j` of `qh[l]` is the 5th bit of element `l` of sub-block `j`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the sub-block scales.
    pub d: f16,
    /// Super-block scale of the sub-block mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each (ggml's `get_scale_min_k4` packing).
    pub scales: [u8; 12],
    /// 5th bits.
    pub qh: [u8; 32],
    /// Low 4 bits, laid out as in [`BlockQ4K`].
    pub qs: [u8; 128],
}

/// One Q6_K super-block (210 bytes): 16 sub-blocks of 16 values with an int8 scale each;
/// value = `d * sc * (q - 32)`, `q` in `0..=63`. Element `128h + 32t + l` (`h < 2, t < 4, l < 32`)
/// has its low 4 bits in `ql[64h + 32(t % 2) + l]` (low nibble for `t < 2`, high for `t >= 2`) and its
/// high 2 bits in bits `2t..2t + 2` of `qh[32h + l]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits.
    pub ql: [u8; 128],
    /// High 2 bits.
    pub qh: [u8; 64],
    /// Sub-block scales.
    pub scales: [i8; 16],
    /// Super-block scale.
    pub d: f16,
}

const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// One block of 256 quantized activations for the K-quant matmuls: value = `d * q`, and
/// `bsums[j] = sum(qs[16j..16j + 16])` (the integer sums the min terms need).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActBlockK {
    /// Scale, `absmax / 127`.
    pub d: f32,
    /// Quantized values in `-127..=127`.
    pub qs: [i8; 256],
    /// Sums of each 16 consecutive `qs`.
    pub bsums: [i16; 16],
}

/// Dynamic int8 activation quantization per block of 256, with exactly the rule of
/// [`crate::quantize_activations`]: `d = absmax / 127` (f32), `id = 1/d` (0 if d = 0 or 1/d is not
/// finite), `q = round_half_away_from_zero(x * id)`; plus `bsums`. `x.len()` must be a multiple of 256.
pub fn quantize_activations_k(x: &[f32]) -> Vec<ActBlockK> {
    assert_eq!(x.len() % QK_K, 0, "length must be a multiple of 256");
    x.chunks_exact(QK_K)
        .map(|b| {
            let mut qs = [0i8; QK_K];
            let d = quantize_block(b, &mut qs);
            let mut bsums = [0i16; 16];
            for (s, q) in bsums.iter_mut().zip(qs.chunks_exact(16)) {
                *s = q.iter().map(|&v| v as i16).sum();
            }
            ActBlockK { d, qs, bsums }
        })
        .collect()
}

/// Dequantizes activation blocks of 256: `d * q`, in f32.
pub fn dequantize_activations_k(blocks: &[ActBlockK]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| b.qs.map(|q| b.d * q as f32))
        .collect()
}

/// The 8 scales and 8 mins (`0..=63`) of a Q4_K/Q5_K `scales` field, as ggml's `get_scale_min_k4`.
pub fn k4_scale_min(scales: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let q = scales;
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
    (sc, m)
}

/// Low 4 bits of the 256 values of a Q4_K/Q5_K `qs` field, in element order.
fn k4_nibbles(qs: &[u8; 128]) -> [u8; 256] {
    let mut q = [0u8; 256];
    for i in 0..4 {
        for l in 0..32 {
            q[64 * i + l] = qs[32 * i + l] & 0x0F;
            q[64 * i + 32 + l] = qs[32 * i + l] >> 4;
        }
    }
    q
}

/// Scales, mins (`0..=63`, one per sub-block of 32) and the 256 values `q` (`0..=15`) of a Q4_K
/// block, in element order: value `i` = `d * sc[i / 32] * q[i] - dmin * m[i / 32]`.
pub fn q4k_parts(b: &BlockQ4K) -> ([u8; 8], [u8; 8], [u8; 256]) {
    let (sc, m) = k4_scale_min(&b.scales);
    (sc, m, k4_nibbles(&b.qs))
}

/// Scales, mins (`0..=63`, one per sub-block of 32) and the 256 values `q` (`0..=31`) of a Q5_K
/// block, in element order: value `i` = `d * sc[i / 32] * q[i] - dmin * m[i / 32]`.
pub fn q5k_parts(b: &BlockQ5K) -> ([u8; 8], [u8; 8], [u8; 256]) {
    let (sc, m) = k4_scale_min(&b.scales);
    let mut q = k4_nibbles(&b.qs);
    for j in 0..8 {
        for l in 0..32 {
            q[32 * j + l] |= ((b.qh[l] >> j) & 1) << 4;
        }
    }
    (sc, m, q)
}

/// Scales (one per sub-block of 16) and the 256 values `q - 32` (`-32..=31`) of a Q6_K block, in
/// element order: value `i` = `d * sc[i / 16] * q[i]`.
pub fn q6k_parts(b: &BlockQ6K) -> ([i8; 16], [i8; 256]) {
    let mut q = [0i8; 256];
    for h in 0..2 {
        for t in 0..4 {
            for l in 0..32 {
                let low = b.ql[64 * h + 32 * (t % 2) + l] >> (4 * (t / 2)) & 0x0F;
                let high = (b.qh[32 * h + l] >> (2 * t)) & 3;
                q[128 * h + 32 * t + l] = (low | (high << 4)) as i8 - 32;
            }
        }
    }
    (b.scales, q)
}

/// Dequantizes Q4_K blocks: `(d * sc) * q - (dmin * m)`, each operation in f32.
pub fn dequantize_q4k(blocks: &[BlockQ4K]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let (sc, m, q) = q4k_parts(b);
            dequantize_scale_min(b.d, b.dmin, &sc, &m, &q)
        })
        .collect()
}

/// Dequantizes Q5_K blocks: `(d * sc) * q - (dmin * m)`, each operation in f32.
pub fn dequantize_q5k(blocks: &[BlockQ5K]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let (sc, m, q) = q5k_parts(b);
            dequantize_scale_min(b.d, b.dmin, &sc, &m, &q)
        })
        .collect()
}

fn dequantize_scale_min(d: f16, dmin: f16, sc: &[u8; 8], m: &[u8; 8], q: &[u8; 256]) -> [f32; 256] {
    let (d, dmin) = (d.to_f32(), dmin.to_f32());
    let mut y = [0f32; 256];
    for (i, v) in y.iter_mut().enumerate() {
        let dl = d * sc[i / 32] as f32;
        let ml = dmin * m[i / 32] as f32;
        *v = dl * q[i] as f32 - ml;
    }
    y
}

/// Dequantizes Q6_K blocks: `(d * sc) * (q - 32)`, each operation in f32.
pub fn dequantize_q6k(blocks: &[BlockQ6K]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let d = b.d.to_f32();
            let (sc, q) = q6k_parts(b);
            let mut y = [0f32; 256];
            for (i, v) in y.iter_mut().enumerate() {
                *v = d * sc[i / 16] as f32 * q[i] as f32;
            }
            y
        })
        .collect()
}

/// Row `row` of a Q4_K matrix with `k` columns (a multiple of 256), dequantized.
pub fn embedding_q4k(blocks: &[BlockQ4K], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK_K;
    dequantize_q4k(&blocks[row * kb..(row + 1) * kb])
}

/// Row `row` of a Q5_K matrix with `k` columns (a multiple of 256), dequantized.
pub fn embedding_q5k(blocks: &[BlockQ5K], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK_K;
    dequantize_q5k(&blocks[row * kb..(row + 1) * kb])
}

/// Row `row` of a Q6_K matrix with `k` columns (a multiple of 256), dequantized.
pub fn embedding_q6k(blocks: &[BlockQ6K], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK_K;
    dequantize_q6k(&blocks[row * kb..(row + 1) * kb])
}

/// Exact integer sums of a Q4_K/Q5_K super-block with an activation block:
/// `(sum_j sc_j * isum_j, sum_j m_j * asum_j)`, where `isum_j = sum over sub-block j (32 values) of
/// q * q_a` and `asum_j = bsums[2j] + bsums[2j + 1]`. Both fit i32 with room to spare
/// (|first| <= 8 * 63 * 32 * 31 * 128 < 2^26).
fn scale_min_sums(sc: &[u8; 8], m: &[u8; 8], q: &[u8; 256], a: &ActBlockK) -> (i32, i32) {
    let mut s = 0i32;
    let mut mins = 0i32;
    for j in 0..8 {
        let isum: i32 = q[32 * j..32 * j + 32]
            .iter()
            .zip(&a.qs[32 * j..32 * j + 32])
            .map(|(&w, &x)| w as i32 * x as i32)
            .sum();
        let asum = a.bsums[2 * j] as i32 + a.bsums[2 * j + 1] as i32;
        s += sc[j] as i32 * isum;
        mins += m[j] as i32 * asum;
    }
    (s, mins)
}

/// Exact integer sums of one Q4_K super-block with one activation block:
/// `(sum_j sc_j * isum_j, sum_j m_j * asum_j)` (see [`matmul_q4k`]).
pub fn block_dot_q4k(w: &BlockQ4K, a: &ActBlockK) -> (i32, i32) {
    let (sc, m, q) = q4k_parts(w);
    scale_min_sums(&sc, &m, &q, a)
}

/// Exact integer sums of one Q5_K super-block with one activation block:
/// `(sum_j sc_j * isum_j, sum_j m_j * asum_j)` (see [`matmul_q5k`]).
pub fn block_dot_q5k(w: &BlockQ5K, a: &ActBlockK) -> (i32, i32) {
    let (sc, m, q) = q5k_parts(w);
    scale_min_sums(&sc, &m, &q, a)
}

/// Exact integer sum of one Q6_K super-block with one activation block: `sum_j sc_j * isum_j`
/// over the 16 sub-blocks of 16, `isum_j = sum (q - 32) * q_a` (|sum| < 2^28).
pub fn block_dot_q6k(w: &BlockQ6K, a: &ActBlockK) -> i32 {
    let (sc, q) = q6k_parts(w);
    (0..16)
        .map(|j| {
            let isum: i32 = q[16 * j..16 * j + 16]
                .iter()
                .zip(&a.qs[16 * j..16 * j + 16])
                .map(|(&w, &x)| w as i32 * x as i32)
                .sum();
            sc[j] as i32 * isum
        })
        .sum()
}

fn terms_q4k(w: &BlockQ4K, a: &ActBlockK) -> [f64; 2] {
    let (s, mins) = block_dot_q4k(w, a);
    let da = a.d as f64;
    [
        da * w.d.to_f64() * s as f64,
        -(da * w.dmin.to_f64() * mins as f64),
    ]
}

fn terms_q5k(w: &BlockQ5K, a: &ActBlockK) -> [f64; 2] {
    let (s, mins) = block_dot_q5k(w, a);
    let da = a.d as f64;
    [
        da * w.d.to_f64() * s as f64,
        -(da * w.dmin.to_f64() * mins as f64),
    ]
}

fn terms_q6k(w: &BlockQ6K, a: &ActBlockK) -> [f64; 1] {
    [w.d.to_f64() * a.d as f64 * block_dot_q6k(w, a) as f64]
}

/// Q4_K x int8 matmul: `y[i][j] = sum_B d_a * (d * sum_j sc_j * isum_j - dmin * sum_j m_j * asum_j)
/// (+ bias[j])` over super-blocks `B`, with the two integer sums exact per super-block
/// ([`block_dot_q4k`]: `isum_j` over sub-block `j` of 32 values, `asum_j` from `bsums`) and the
/// combination in f64. `w` is N rows of K/256 blocks, `x` M rows of K/256 activation blocks; returns
/// M x N, row-major.
pub fn matmul_q4k(
    w: &[BlockQ4K],
    x: &[ActBlockK],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK_K, bias, false, terms_q4k)
}

/// Error scale of [`matmul_q4k`]: `sum_B (|d_a d S_B| + |d_a dmin M_B|) (+ |bias[j]|)` with `S_B`,
/// `M_B` the two integer sums. An f32 evaluation that converts each integer sum to f32 once (one
/// rounding: |S_B| < 2^26) and uses two more roundings per term is within
/// `(K/32 + 3) * 2^-24 * scale` of the reference for any summation order.
pub fn matmul_error_scale_q4k(
    w: &[BlockQ4K],
    x: &[ActBlockK],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK_K, bias, true, terms_q4k)
}

/// Q5_K x int8 matmul: the formula of [`matmul_q4k`] with `q` in `0..=31` ([`block_dot_q5k`]).
pub fn matmul_q5k(
    w: &[BlockQ5K],
    x: &[ActBlockK],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK_K, bias, false, terms_q5k)
}

/// Error scale of [`matmul_q5k`]: `sum_B (|d_a d S_B| + |d_a dmin M_B|) (+ |bias[j]|)`; tolerance as
/// [`matmul_error_scale_q4k`].
pub fn matmul_error_scale_q5k(
    w: &[BlockQ5K],
    x: &[ActBlockK],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK_K, bias, true, terms_q5k)
}

/// Q6_K x int8 matmul: `y[i][j] = sum_B d * d_a * sum_j sc_j * isum_j (+ bias[j])`, sub-blocks of 16,
/// `isum_j = sum (q - 32) * q_a`, the integer sum exact per super-block ([`block_dot_q6k`]) and the
/// combination in f64. Shapes as [`matmul_q4k`].
pub fn matmul_q6k(
    w: &[BlockQ6K],
    x: &[ActBlockK],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK_K, bias, false, terms_q6k)
}

/// Error scale of [`matmul_q6k`]: `sum_B |d d_a S_B| (+ |bias[j]|)`; tolerance as
/// [`matmul_error_scale_q4k`] (|S_B| < 2^28, one rounding when converted to f32).
pub fn matmul_error_scale_q6k(
    w: &[BlockQ6K],
    x: &[ActBlockK],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK_K, bias, true, terms_q6k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_min_packing_round_trips() {
        // Pack 6-bit scales and mins as ggml's make_qkx/quantize_row_q4_K_ref does, then unpack.
        let sc: [u8; 8] = [0, 1, 17, 63, 32, 5, 63, 42];
        let m: [u8; 8] = [63, 0, 9, 31, 63, 1, 48, 7];
        let mut q = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                q[j] = sc[j];
                q[j + 4] = m[j];
            } else {
                q[j + 4] = (sc[j] & 0xF) | ((m[j] & 0xF) << 4);
                q[j - 4] |= (sc[j] >> 4) << 6;
                q[j] |= (m[j] >> 4) << 6;
            }
        }
        assert_eq!(k4_scale_min(&q), (sc, m));
    }

    #[test]
    fn activation_k_bsums_and_rule() {
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
            .collect();
        let a = quantize_activations_k(&x);
        assert_eq!(a.len(), 2);
        for b in &a {
            for j in 0..16 {
                let s: i16 = b.qs[16 * j..16 * j + 16].iter().map(|&v| v as i16).sum();
                assert_eq!(b.bsums[j], s);
            }
            assert!(b.qs.iter().any(|&q| q.abs() == 127));
        }
        assert_eq!(quantize_activations_k(&[0.0; 256])[0].qs, [0; 256]);
    }

    #[test]
    fn q6k_element_order() {
        // Element 128h + 32t + l: put q = 63 (value 31) at one element at a time.
        for &i in &[0usize, 31, 32, 63, 64, 100, 127, 128, 200, 255] {
            let mut b = BlockQ6K {
                ql: [0; 128],
                qh: [0; 64],
                scales: [1; 16],
                d: f16::ONE,
            };
            // All other elements are q = 32 (value 0): low 4 bits 0, high 2 bits 2.
            b.qh = [0b1010_1010; 64];
            let (h, t, l) = (i / 128, (i % 128) / 32, i % 32);
            let shift = 4 * (t / 2);
            b.ql[64 * h + 32 * (t % 2) + l] |= 0xF << shift;
            b.qh[32 * h + l] |= 3 << (2 * t);
            let y = dequantize_q6k(&[b]);
            for (e, &v) in y.iter().enumerate() {
                assert_eq!(v, if e == i { 31.0 } else { 0.0 }, "element {e} (set {i})");
            }
        }
    }
}
