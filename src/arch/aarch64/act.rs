//! Activation layout shared by the three aarch64 tiers, and its NEON quantizer.
//!
//! Rows go in pairs (rows `2p`, `2p + 1`), pairs in groups of up to [`GROUP_PAIRS`] (16 rows, the
//! GEMM tile height). Group `g` holds `pairs(g)` pairs: 8 for every group but the last. Within a
//! group, block `b` (32 values along K) is `pairs(g) * 80` bytes:
//!
//! ```text
//! [pair 0: 64 bytes][pair 1: 64] ... [pair 0 scales: 16][pair 1 scales: 16] ...
//! pair data  = chunk c = 0..4 of 8 values: [row 2p: k 8c..8c+7][row 2p+1: k 8c..8c+7]
//! pair scale = [d(2p), d(2p), d(2p+1), d(2p+1)] as f32
//! ```
//!
//! A pair register is at once an SMMLA operand (two rows of eight) and, by 4-byte lane, an SDOT
//! by-element operand (lanes 0, 1: row `2p`; lanes 2, 3: row `2p + 1`); the scale vector is the
//! 2x2 order that SMMLA results have. When `m` is odd the last pair repeats its one row in both
//! halves (so an M = 1 kernel can use plain vector SDOT on it); its second row is never stored.
//! The buffer ends with [`TAIL_PAD`] spare bytes so that a kernel may address a row-1 half
//! (pointer + 8) with full 16-byte loads.

use crate::quant::{
    quantize_activation_block, quantize_activation_block_k, ActBlock, ActBlockK, QK, QK_K,
};
use core::arch::aarch64::*;

/// Row pairs per group (16 rows).
pub(crate) const GROUP_PAIRS: usize = 8;
/// Bytes of one pair's values in one block.
pub(crate) const PAIR_DATA: usize = 64;
/// Bytes of one pair's scales in one block.
pub(crate) const PAIR_SCALES: usize = 16;
/// Spare bytes at the end of the buffer (read, never used, by row-1 addressing).
pub(crate) const TAIL_PAD: usize = 64;

/// Where one group lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Group {
    /// Byte offset of block 0.
    pub base: usize,
    /// Pairs in the group (1..=8).
    pub pairs: usize,
    /// Bytes from one block to the next.
    pub stride: usize,
}

/// Row pairs of an `m`-row matrix.
pub(crate) fn pair_count(m: usize) -> usize {
    m.div_ceil(2)
}

/// Group `g` of an `m x k` matrix.
pub(crate) fn group(g: usize, m: usize, k: usize) -> Group {
    let kb = k / QK;
    let pairs = (pair_count(m) - g * GROUP_PAIRS).min(GROUP_PAIRS);
    Group {
        base: g * GROUP_PAIRS * (PAIR_DATA + PAIR_SCALES) * kb,
        pairs,
        stride: pairs * (PAIR_DATA + PAIR_SCALES),
    }
}

impl Group {
    /// Byte offset of pair `q`'s (of this group) values in block 0.
    pub(crate) fn data(&self, q: usize) -> usize {
        self.base + q * PAIR_DATA
    }
    /// Byte offset of pair `q`'s scales in block 0.
    pub(crate) fn scales(&self, q: usize) -> usize {
        self.base + self.pairs * PAIR_DATA + q * PAIR_SCALES
    }
}

pub(crate) fn size(m: usize, k: usize) -> usize {
    pair_count(m) * (PAIR_DATA + PAIR_SCALES) * (k / QK) + TAIL_PAD
}

/// Quantizes row `i` of `m` into the layout. The last row of an odd `m` fills both halves.
pub(crate) fn quantize_row(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]) {
    let kb = k / QK;
    assert!(x.len() == k && i < m && out.len() >= size(m, k));
    let g = group(i / (2 * GROUP_PAIRS), m, k);
    let q = (i % (2 * GROUP_PAIRS)) / 2;
    let halves: &[usize] = if i % 2 == 1 {
        &[1]
    } else if i + 1 == m {
        &[0, 1]
    } else {
        &[0]
    };
    for (b, xb) in x.chunks_exact(QK).enumerate().take(kb) {
        let xb: &[f32; QK] = xb.try_into().expect("chunk of 32");
        let (d, qs) = quantize_block_neon(xb);
        let data = g.data(q) + b * g.stride;
        let sc = g.scales(q) + b * g.stride;
        for &h in halves {
            for c in 0..4 {
                let o = data + c * 16 + h * 8;
                out[o..o + 8].copy_from_slice(&qs[c * 8..c * 8 + 8]);
            }
            let o = sc + h * 8;
            out[o..o + 4].copy_from_slice(&d.to_ne_bytes());
            out[o + 4..o + 8].copy_from_slice(&d.to_ne_bytes());
        }
    }
}

/// The plain blocks, `m * k / 32` in row order.
pub(crate) fn unpack(buf: &[u8], m: usize, k: usize) -> Vec<ActBlock> {
    let kb = k / QK;
    let mut v = Vec::with_capacity(m * kb);
    for i in 0..m {
        let g = group(i / (2 * GROUP_PAIRS), m, k);
        let (q, h) = ((i % (2 * GROUP_PAIRS)) / 2, i % 2);
        for b in 0..kb {
            let data = g.data(q) + b * g.stride + h * 8;
            let sc = g.scales(q) + b * g.stride + h * 8;
            let mut qs = [0i8; 32];
            for c in 0..4 {
                for (t, &byte) in buf[data + c * 16..data + c * 16 + 8].iter().enumerate() {
                    qs[c * 8 + t] = byte as i8;
                }
            }
            let d = f32::from_ne_bytes(buf[sc..sc + 4].try_into().expect("4 bytes"));
            v.push(ActBlock { d, qs });
        }
    }
    v
}

/// [`quantize_activation_block`] in NEON: the same f32 operations, so the same bits.
fn quantize_block_neon(x: &[f32; QK]) -> (f32, [u8; QK]) {
    // SAFETY: NEON is part of the aarch64 baseline; every load and store stays inside `x` / `qs`
    // (8 x 4 floats in, 2 x 16 bytes out).
    unsafe {
        let p = x.as_ptr();
        let v: [float32x4_t; 8] = core::array::from_fn(|j| vld1q_f32(p.add(4 * j)));
        // maxnm ignores NaN like f32::max; starting from 0 matches the scalar fold.
        let mut m = vdupq_n_f32(0.0);
        for &vj in &v {
            m = vmaxnmq_f32(m, vabsq_f32(vj));
        }
        let amax = vmaxnmvq_f32(m);
        let d = amax / 127.0;
        // 0 when d is 0 or 1/d overflows (absmax below ~3.7e-37), as the scalar rule says.
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let id = if id.is_finite() { id } else { 0.0 };
        let mut qs = [0u8; QK];
        for half in 0..2 {
            let q: [int16x4_t; 4] = core::array::from_fn(|j| {
                // fcvtas: round half away from zero, NaN to 0, saturating like `as`.
                vqmovn_s32(vcvtaq_s32_f32(vmulq_n_f32(v[4 * half + j], id)))
            });
            let lo = vqmovn_s16(vcombine_s16(q[0], q[1]));
            let hi = vqmovn_s16(vcombine_s16(q[2], q[3]));
            vst1q_u8(
                qs.as_mut_ptr().add(16 * half),
                vreinterpretq_u8_s8(vcombine_s8(lo, hi)),
            );
        }
        debug_assert_eq!(
            {
                let r = quantize_activation_block(x);
                (r.d.to_bits(), bytemuck::cast::<[i8; 32], [u8; 32]>(r.qs))
            },
            (d.to_bits(), qs)
        );
        (d, qs)
    }
}

/// Quantizes row `i` of an `m x k` matrix into plain `ActBlockK`s (the `Q8_256` activations of
/// the three tiers; the layout is the scalar one).
pub(crate) fn quantize_row_k(x: &[f32], i: usize, _m: usize, k: usize, out: &mut [u8]) {
    let kb = k / QK_K;
    let bytes = &mut out[..(i + 1) * kb * size_of::<ActBlockK>()];
    let row = &mut bytemuck::cast_slice_mut::<u8, ActBlockK>(bytes)[i * kb..];
    for (o, xb) in row.iter_mut().zip(x.chunks_exact(QK_K)) {
        quantize_block_k_neon(xb.try_into().expect("chunk of 256"), o, |_, _, _| {});
    }
}

/// [`quantize_activation_block_k`] into `b` with NEON, bit-identical (the same operations as
/// [`quantize_block_neon`], over 256 values; the per-16 sums with pairwise adds). Hands each 16
/// quants `16 s ..` to `each16(s, first 8, last 8)` as they are made, so that a caller can store
/// them in a second layout without reading `b` back, and returns `b.bsums` as two vectors.
#[inline(always)]
pub(crate) fn quantize_block_k_neon(
    x: &[f32; QK_K],
    b: &mut ActBlockK,
    mut each16: impl FnMut(usize, int8x8_t, int8x8_t),
) -> [int16x8_t; 2] {
    // SAFETY: NEON is part of the aarch64 baseline; every load reads inside `x` (64 x 4 floats)
    // and every store writes inside `b.qs` (16 x 16 bytes) or `b.bsums` (2 x 8 i16).
    unsafe {
        let p = x.as_ptr();
        // Four running maxima (named, so that they stay in registers).
        let (mut m0, mut m1, mut m2, mut m3) = (
            vdupq_n_f32(0.0),
            vdupq_n_f32(0.0),
            vdupq_n_f32(0.0),
            vdupq_n_f32(0.0),
        );
        for j in (0..64).step_by(4) {
            m0 = vmaxnmq_f32(m0, vabsq_f32(vld1q_f32(p.add(4 * j))));
            m1 = vmaxnmq_f32(m1, vabsq_f32(vld1q_f32(p.add(4 * j + 4))));
            m2 = vmaxnmq_f32(m2, vabsq_f32(vld1q_f32(p.add(4 * j + 8))));
            m3 = vmaxnmq_f32(m3, vabsq_f32(vld1q_f32(p.add(4 * j + 12))));
        }
        let amax = vmaxnmvq_f32(vmaxnmq_f32(vmaxnmq_f32(m0, m1), vmaxnmq_f32(m2, m3)));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let id = if id.is_finite() { id } else { 0.0 };
        b.d = d;
        // sums[t]: the four sums of 16 values `64 t ..`, in order (two levels of pairwise adds).
        let sums: [int32x4_t; 4] = core::array::from_fn(|t| {
            let s4: [int32x4_t; 4] = core::array::from_fn(|u| {
                let s = 4 * t + u;
                // fcvtas: round half away from zero, NaN to 0, saturating like `as`.
                let q: [int32x4_t; 4] = core::array::from_fn(|j| {
                    vcvtaq_s32_f32(vmulq_n_f32(vld1q_f32(p.add(16 * s + 4 * j)), id))
                });
                let lo = vqmovn_s16(vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1])));
                let hi = vqmovn_s16(vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3])));
                vst1q_s8(b.qs.as_mut_ptr().add(16 * s), vcombine_s8(lo, hi));
                each16(s, lo, hi);
                vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]))
            });
            vpaddq_s32(vpaddq_s32(s4[0], s4[1]), vpaddq_s32(s4[2], s4[3]))
        });
        // |sum| <= 16 * 127: the narrowing is exact, as the scalar `as i16`.
        let bsums = [
            vcombine_s16(vmovn_s32(sums[0]), vmovn_s32(sums[1])),
            vcombine_s16(vmovn_s32(sums[2]), vmovn_s32(sums[3])),
        ];
        vst1q_s16(b.bsums.as_mut_ptr(), bsums[0]);
        vst1q_s16(b.bsums.as_mut_ptr().add(8), bsums[1]);
        debug_assert!({
            let r = quantize_activation_block_k(x);
            (r.d.to_bits(), r.qs, r.bsums) == (b.d.to_bits(), b.qs, b.bsums)
        });
        bsums
    }
}
