//! GGUF's 32-value block formats with a 5th bit or a min: Q4_1, Q5_0 and Q5_1.
//!
//! Byte layouts are those of ggml-common.h. Element `j` of a block (`0..16`) is the low nibble of
//! `qs[j]`, element `j + 16` its high nibble; for Q5_x the 5th bit of element `j` is bit `j` of `qh`
//! read as a little-endian `u32`. Dequantization follows gguf-py's numpy dequantizers (which mirror
//! ggml's `dequantize_row_*`) operation for operation in f32, so its results are bit-identical.

use crate::{matmul_terms, ActBlock, QK};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q4_1 block (20 bytes): value = `d * q + m`, `q` in `0..=15`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Packed nibbles: low nibble of `qs[j]` is element `j`, high nibble element `j + 16`.
    pub qs: [u8; 16],
}

/// One Q5_0 block (22 bytes): value = `d * (q - 16)`, `q` in `0..=31`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// 5th bits: bit `j` of `u32::from_le_bytes(qh)` belongs to element `j`.
    pub qh: [u8; 4],
    /// Low 4 bits, packed as in Q4_0.
    pub qs: [u8; 16],
}

/// One Q5_1 block (24 bytes): value = `d * q + m`, `q` in `0..=31`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// 5th bits: bit `j` of `u32::from_le_bytes(qh)` belongs to element `j`.
    pub qh: [u8; 4],
    /// Low 4 bits, packed as in Q4_0.
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// The 32 nibbles of a Q4_0-style `qs`, in element order.
fn nibbles(qs: &[u8; 16]) -> [u8; 32] {
    let mut v = [0u8; 32];
    for j in 0..16 {
        v[j] = qs[j] & 0x0F;
        v[j + 16] = qs[j] >> 4;
    }
    v
}

/// The 32 five-bit values `0..=31` of a Q5_x block, in element order.
fn five_bit(qh: &[u8; 4], qs: &[u8; 16]) -> [u8; 32] {
    let h = u32::from_le_bytes(*qh);
    let mut v = nibbles(qs);
    for (j, q) in v.iter_mut().enumerate() {
        *q |= (((h >> j) & 1) as u8) << 4;
    }
    v
}

/// The 32 integer values `q` (`0..=15`) of a Q4_1 block, in element order.
pub fn q4_1_values(b: &BlockQ4_1) -> [u8; 32] {
    nibbles(&b.qs)
}

/// The 32 integer values `q - 16` (`-16..=15`) of a Q5_0 block, in element order.
pub fn q5_0_values(b: &BlockQ5_0) -> [i8; 32] {
    five_bit(&b.qh, &b.qs).map(|q| q as i8 - 16)
}

/// The 32 integer values `q` (`0..=31`) of a Q5_1 block, in element order.
pub fn q5_1_values(b: &BlockQ5_1) -> [u8; 32] {
    five_bit(&b.qh, &b.qs)
}

/// Dequantizes Q4_1 blocks: `d * q + m`, in f32 (one product, one sum; no fused multiply-add).
pub fn dequantize_q4_1(blocks: &[BlockQ4_1]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            q4_1_values(b).map(|q| d * q as f32 + m)
        })
        .collect()
}

/// Dequantizes Q5_0 blocks: `d * (q - 16)`, in f32.
pub fn dequantize_q5_0(blocks: &[BlockQ5_0]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let d = b.d.to_f32();
            q5_0_values(b).map(|q| d * q as f32)
        })
        .collect()
}

/// Dequantizes Q5_1 blocks: `d * q + m`, in f32 (one product, one sum; no fused multiply-add).
pub fn dequantize_q5_1(blocks: &[BlockQ5_1]) -> Vec<f32> {
    blocks
        .iter()
        .flat_map(|b| {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            q5_1_values(b).map(|q| d * q as f32 + m)
        })
        .collect()
}

/// Row `row` of a Q4_1 matrix with `k` columns, dequantized.
pub fn embedding_q4_1(blocks: &[BlockQ4_1], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK;
    dequantize_q4_1(&blocks[row * kb..(row + 1) * kb])
}

/// Row `row` of a Q5_0 matrix with `k` columns, dequantized.
pub fn embedding_q5_0(blocks: &[BlockQ5_0], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK;
    dequantize_q5_0(&blocks[row * kb..(row + 1) * kb])
}

/// Row `row` of a Q5_1 matrix with `k` columns, dequantized.
pub fn embedding_q5_1(blocks: &[BlockQ5_1], k: usize, row: usize) -> Vec<f32> {
    let kb = k / QK;
    dequantize_q5_1(&blocks[row * kb..(row + 1) * kb])
}

/// Exact integer sums of an unsigned-weight block with an activation block:
/// `(isum, asum) = (sum_j q_w[j] * q_a[j], sum_j q_a[j])`.
fn unsigned_dot(q: &[u8; 32], a: &ActBlock) -> (i32, i32) {
    let isum = q
        .iter()
        .zip(&a.qs)
        .map(|(&w, &x)| w as i32 * x as i32)
        .sum();
    let asum = a.qs.iter().map(|&x| x as i32).sum();
    (isum, asum)
}

/// Exact integer sums of one Q4_1 block with one activation block:
/// `(sum_j q[j] * q_a[j], sum_j q_a[j])`, `q` in `0..=15`.
pub fn block_dot_q4_1(w: &BlockQ4_1, a: &ActBlock) -> (i32, i32) {
    unsigned_dot(&q4_1_values(w), a)
}

/// Exact integer dot product of one Q5_0 block with one activation block: `sum_j (q[j] - 16) * q_a[j]`.
pub fn block_dot_q5_0(w: &BlockQ5_0, a: &ActBlock) -> i32 {
    q5_0_values(w)
        .iter()
        .zip(&a.qs)
        .map(|(&p, &q)| p as i32 * q as i32)
        .sum()
}

/// Exact integer sums of one Q5_1 block with one activation block:
/// `(sum_j q[j] * q_a[j], sum_j q_a[j])`, `q` in `0..=31`.
pub fn block_dot_q5_1(w: &BlockQ5_1, a: &ActBlock) -> (i32, i32) {
    unsigned_dot(&q5_1_values(w), a)
}

fn terms_q4_1(w: &BlockQ4_1, a: &ActBlock) -> [f64; 2] {
    let (isum, asum) = block_dot_q4_1(w, a);
    let da = a.d as f64;
    [
        w.d.to_f64() * da * isum as f64,
        w.m.to_f64() * da * asum as f64,
    ]
}

fn terms_q5_0(w: &BlockQ5_0, a: &ActBlock) -> [f64; 1] {
    [w.d.to_f64() * a.d as f64 * block_dot_q5_0(w, a) as f64]
}

fn terms_q5_1(w: &BlockQ5_1, a: &ActBlock) -> [f64; 2] {
    let (isum, asum) = block_dot_q5_1(w, a);
    let da = a.d as f64;
    [
        w.d.to_f64() * da * isum as f64,
        w.m.to_f64() * da * asum as f64,
    ]
}

/// Q4_1 x int8 matmul: `y[i][j] = sum_b (d_w * d_a * isum_b + m_w * d_a * asum_b) (+ bias[j])`, with
/// `isum_b = sum q_w * q_a` and `asum_b = sum q_a` exact per 32-block ([`block_dot_q4_1`]) and the
/// combination in f64. `w` is N rows of K/32 blocks, `x` M rows of K/32 activation blocks; returns
/// M x N, row-major.
pub fn matmul_q4_1(
    w: &[BlockQ4_1],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK, bias, false, terms_q4_1)
}

/// Error scale of [`matmul_q4_1`]: `sum_b (|d_w d_a isum_b| + |m_w d_a asum_b|) (+ |bias[j]|)`.
/// An f32 evaluation with two roundings per term and any summation order is within
/// `(K/32 + 3) * 2^-24 * scale` of the reference.
pub fn matmul_error_scale_q4_1(
    w: &[BlockQ4_1],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK, bias, true, terms_q4_1)
}

/// Q5_0 x int8 matmul: `y[i][j] = sum_b d_w * d_a * isum_b (+ bias[j])`, with
/// `isum_b = sum (q_w - 16) * q_a` exact per 32-block ([`block_dot_q5_0`]) and the combination in
/// f64. Shapes as [`matmul_q4_1`].
pub fn matmul_q5_0(
    w: &[BlockQ5_0],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK, bias, false, terms_q5_0)
}

/// Error scale of [`matmul_q5_0`]: `sum_b |d_w d_a isum_b| (+ |bias[j]|)`; tolerance as
/// [`matmul_error_scale_q4_1`].
pub fn matmul_error_scale_q5_0(
    w: &[BlockQ5_0],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK, bias, true, terms_q5_0)
}

/// Q5_1 x int8 matmul: `y[i][j] = sum_b (d_w * d_a * isum_b + m_w * d_a * asum_b) (+ bias[j])`, with
/// `isum_b = sum q_w * q_a` (`q_w` in `0..=31`) and `asum_b = sum q_a` exact per 32-block
/// ([`block_dot_q5_1`]) and the combination in f64. Shapes as [`matmul_q4_1`].
pub fn matmul_q5_1(
    w: &[BlockQ5_1],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK, bias, false, terms_q5_1)
}

/// Error scale of [`matmul_q5_1`]: `sum_b (|d_w d_a isum_b| + |m_w d_a asum_b|) (+ |bias[j]|)`;
/// tolerance as [`matmul_error_scale_q4_1`].
pub fn matmul_error_scale_q5_1(
    w: &[BlockQ5_1],
    x: &[ActBlock],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    matmul_terms(w, x, n, k, QK, bias, true, terms_q5_1)
}
