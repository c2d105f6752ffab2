//! Portable kernels of the formats that have no SIMD kernel yet (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
//! Q6_K): every tier's table names these until it gets its own. Weights in the plain layout
//! (the blocks as given), activations as plain blocks (`ActBlock` rows, converted once per call
//! from the tier's layout; `ActBlockK` rows, plain on every tier).
//!
//! Per block the integer sums are exact; the float combination follows the formats' formulas:
//! `d_w d_a isum (+ m_w d_a asum)` for the 32-value formats, and for the K-quants one conversion
//! per super-block, `d_a (d sum_j sc_j isum_j - dmin sum_j m_j asum_j)`, the sums in i32.

use super::matmul::{pack_plain, unpack_row_plain};
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::contract::WeightFormat;
use crate::quant::*;

/// A weight block's contribution to one output: its dot product with an activation block.
pub(crate) trait BlockDot: WeightFormat {
    /// The plain activation block this format reads.
    type Act: bytemuck::Pod;
    /// `sum_e w[e] * a[e]` from the exact integer sums.
    fn dot(&self, a: &Self::Act) -> f32;
}

fn isum_u(q: &[u8], a: &[i8]) -> i32 {
    q.iter().zip(a).map(|(&q, &a)| q as i32 * a as i32).sum()
}

fn asum(a: &[i8]) -> i32 {
    a.iter().map(|&a| a as i32).sum()
}

impl BlockDot for BlockQ4_1 {
    type Act = ActBlock;
    fn dot(&self, a: &ActBlock) -> f32 {
        let (d, m) = (self.d.to_f32() * a.d, self.m.to_f32() * a.d);
        d * isum_u(&self.values(), &a.qs) as f32 + m * asum(&a.qs) as f32
    }
}

impl BlockDot for BlockQ5_0 {
    type Act = ActBlock;
    fn dot(&self, a: &ActBlock) -> f32 {
        let isum: i32 = self
            .values()
            .iter()
            .zip(&a.qs)
            .map(|(&q, &a)| q as i32 * a as i32)
            .sum();
        self.d.to_f32() * a.d * isum as f32
    }
}

impl BlockDot for BlockQ5_1 {
    type Act = ActBlock;
    fn dot(&self, a: &ActBlock) -> f32 {
        let (d, m) = (self.d.to_f32() * a.d, self.m.to_f32() * a.d);
        d * isum_u(&self.values(), &a.qs) as f32 + m * asum(&a.qs) as f32
    }
}

/// `(sum_j sc_j isum_j, sum_j m_j asum_j)` of a Q4_K / Q5_K super-block (at most
/// 8 * 63 * 32 * 31 * 127 < 2^31).
fn k_sums(p: &KParts, a: &ActBlockK) -> (i32, i32) {
    let (mut s, mut m) = (0i32, 0i32);
    for j in 0..8 {
        s += p.sc[j] as i32 * isum_u(&p.q[32 * j..32 * j + 32], &a.qs[32 * j..32 * j + 32]);
        m += p.m[j] as i32 * (a.bsums[2 * j] as i32 + a.bsums[2 * j + 1] as i32);
    }
    (s, m)
}

impl BlockDot for BlockQ4K {
    type Act = ActBlockK;
    fn dot(&self, a: &ActBlockK) -> f32 {
        let (s, m) = k_sums(&self.parts(), a);
        a.d * (self.d.to_f32() * s as f32 - self.dmin.to_f32() * m as f32)
    }
}

impl BlockDot for BlockQ5K {
    type Act = ActBlockK;
    fn dot(&self, a: &ActBlockK) -> f32 {
        let (s, m) = k_sums(&self.parts(), a);
        a.d * (self.d.to_f32() * s as f32 - self.dmin.to_f32() * m as f32)
    }
}

impl BlockDot for BlockQ6K {
    type Act = ActBlockK;
    fn dot(&self, a: &ActBlockK) -> f32 {
        let (sc, q) = self.parts();
        let mut s = 0i32;
        for j in 0..16 {
            let isum: i32 = q[16 * j..16 * j + 16]
                .iter()
                .zip(&a.qs[16 * j..16 * j + 16])
                .map(|(&q, &a)| q as i32 * a as i32)
                .sum();
            s += sc[j] as i32 * isum;
        }
        a.d * self.d.to_f32() * s as f32
    }
}

/// The portable GEMM of any [`BlockDot`] format: weights plain, activations plain `B::Act` rows.
///
/// # Safety
/// See [`WeightKernel::gemm`]; `args.a` holds plain `B::Act` rows.
unsafe fn gemm_plain<B: BlockDot>(args: &GemmArgs<'_>) {
    let kb = args.k / B::BLOCK_LEN;
    let w: &[B] = bytemuck::cast_slice(&args.w.bytes()[..args.n * kb * size_of::<B>()]);
    let a: &[B::Act] = bytemuck::cast_slice(&args.a.bytes()[..args.m * kb * size_of::<B::Act>()]);
    // One weight row at a time (it stays in L1 across the activation rows).
    for j in args.cols.clone() {
        let wrow = &w[j * kb..(j + 1) * kb];
        for i in args.rows.clone() {
            let arow = &a[i * kb..(i + 1) * kb];
            let mut acc = 0f32;
            for (wb, ab) in wrow.iter().zip(arow) {
                acc += wb.dot(ab);
            }
            if let Some(b) = args.bias {
                acc += b[j];
            }
            // SAFETY: the caller guarantees `out` is valid for every (i, j) of the ranges at
            // this offset.
            unsafe {
                *args
                    .out
                    .add((i - args.rows.start) * args.ldo + (j - args.cols.start)) = acc
            };
        }
    }
}

/// The portable kernel of a [`BlockDot`] format.
const fn plain_kernel<B: BlockDot>() -> WeightKernel<B> {
    WeightKernel {
        name: "scalar",
        pack: pack_plain::<B>,
        unpack_row: unpack_row_plain::<B>,
        acts: ActInput::Plain,
        gemm: gemm_plain::<B>,
    }
}

pub(crate) static Q4_1: WeightKernel<BlockQ4_1> = plain_kernel();
pub(crate) static Q5_0: WeightKernel<BlockQ5_0> = plain_kernel();
pub(crate) static Q5_1: WeightKernel<BlockQ5_1> = plain_kernel();
pub(crate) static Q4_K: WeightKernel<BlockQ4K> = plain_kernel();
pub(crate) static Q5_K: WeightKernel<BlockQ5K> = plain_kernel();
pub(crate) static Q6_K: WeightKernel<BlockQ6K> = plain_kernel();
