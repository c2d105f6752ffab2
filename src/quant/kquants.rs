//! The K-quant formats Q4_K, Q5_K and Q6_K (GGUF layouts, ggml-common.h): super-blocks of 256
//! values with integer sub-block scales. Read-only here: weights arrive quantized in model files.
//!
//! The integer view each format exposes (`parts`) is what the kernels multiply: a value is
//! `d * sc[j] * q - dmin * m[j]` (Q4_K, Q5_K; sub-blocks of 32) or `d * sc[j] * q` (Q6_K;
//! sub-blocks of 16, `q` signed), so a dot product with int8 activations is
//! `d * sum_j sc[j] * isum_j - dmin * sum_j m[j] * asum_j`, both sums exact integers.

use super::check_len;
use crate::Result;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// Values per super-block.
pub const QK_K: usize = 256;

/// One Q4_K super-block: 8 sub-blocks of 32 with 6-bit scales and mins packed in `scales`;
/// value = `d * sc * q - dmin * m`, `q` a nibble. Bytes `32 c .. 32 c + 32` of `qs` hold
/// sub-block `2 c` in their low nibbles and `2 c + 1` in their high nibbles.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale of the sub-block scales.
    pub d: f16,
    /// Super-block scale of the sub-block mins.
    pub dmin: f16,
    /// Sub-block scales and mins, 6 bits each (ggml's `get_scale_min_k4` packing).
    pub scales: [u8; 12],
    /// 4-bit quants.
    pub qs: [u8; 128],
}

/// One Q5_K super-block: Q4_K with a fifth bit per value; bit `c` (low nibbles) and bit `c + 1`
/// (high nibbles) of `qh[l]` belong to byte `l` of the `c / 2`-th 32-byte group of `qs`.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5K {
    /// Super-block scale of the sub-block scales.
    pub d: f16,
    /// Super-block scale of the sub-block mins.
    pub dmin: f16,
    /// Sub-block scales and mins, as in [`BlockQ4K`].
    pub scales: [u8; 12],
    /// Fifth bits.
    pub qh: [u8; 32],
    /// Low 4 bits.
    pub qs: [u8; 128],
}

/// One Q6_K super-block: 16 sub-blocks of 16 with int8 scales; value = `d * sc * (q - 32)`,
/// `q` 6 bits (low 4 in `ql`, high 2 in `qh`).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
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

impl Default for BlockQ4K {
    fn default() -> Self {
        Self::zeroed()
    }
}
impl Default for BlockQ5K {
    fn default() -> Self {
        Self::zeroed()
    }
}
impl Default for BlockQ6K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// Scale and min of sub-block `j` (0..8) from the 12 packed bytes (ggml's `get_scale_min_k4`).
fn scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Integer view of a Q4_K or Q5_K super-block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KParts {
    /// Sub-block scales (0..=63), one per 32 values.
    pub sc: [u8; 8],
    /// Sub-block mins (0..=63).
    pub m: [u8; 8],
    /// Quants in element order (0..=15 for Q4_K, 0..=31 for Q5_K).
    pub q: [u8; 256],
}

impl BlockQ4K {
    /// The integer view: value `e` = `d * sc[e / 32] * q[e] - dmin * m[e / 32]`.
    pub fn parts(&self) -> KParts {
        let mut p = KParts {
            sc: [0; 8],
            m: [0; 8],
            q: [0; 256],
        };
        for j in 0..8 {
            (p.sc[j], p.m[j]) = scale_min(j, &self.scales);
        }
        for c in 0..4 {
            for l in 0..32 {
                let b = self.qs[32 * c + l];
                p.q[64 * c + l] = b & 0x0F;
                p.q[64 * c + 32 + l] = b >> 4;
            }
        }
        p
    }
}

impl BlockQ5K {
    /// The integer view: value `e` = `d * sc[e / 32] * q[e] - dmin * m[e / 32]`.
    pub fn parts(&self) -> KParts {
        let mut p = KParts {
            sc: [0; 8],
            m: [0; 8],
            q: [0; 256],
        };
        for j in 0..8 {
            (p.sc[j], p.m[j]) = scale_min(j, &self.scales);
        }
        for c in 0..4 {
            for l in 0..32 {
                let b = self.qs[32 * c + l];
                let h = self.qh[l];
                p.q[64 * c + l] = (b & 0x0F) | (((h >> (2 * c)) & 1) << 4);
                p.q[64 * c + 32 + l] = (b >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
            }
        }
        p
    }
}

impl BlockQ6K {
    /// The integer view: `(sc, q)` with value `e` = `d * sc[e / 16] * q[e]`, `q` in -32..=31.
    pub fn parts(&self) -> ([i8; 16], [i8; 256]) {
        let mut sc = [0i8; 16];
        let mut q = [0i8; 256];
        for half in 0..2 {
            let (ql, qh) = (&self.ql[64 * half..], &self.qh[32 * half..]);
            for l in 0..32 {
                let e = 128 * half + l;
                q[e] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8 - 32;
                q[e + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                q[e + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                q[e + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        // Sub-block s (values 16 s ..): half s / 8, quarter (s % 8) / 2, scale 8 half + s % 2 + 2 quarter.
        for (s, v) in sc.iter_mut().enumerate() {
            *v = self.scales[8 * (s / 8) + s % 2 + 2 * ((s % 8) / 2)];
        }
        (sc, q)
    }
}

/// Dequantizes Q4_K super-blocks into `out` (`256 * blocks.len()` values) as ggml's
/// `dequantize_row_q4_K`: `(d * sc) * q - (dmin * m)` in f32.
pub fn dequantize_q4_k(blocks: &[BlockQ4K], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK_K)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        k_dequant(b.d, b.dmin, &b.parts(), o);
    }
    Ok(())
}

/// Dequantizes Q5_K super-blocks as ggml's `dequantize_row_q5_K`.
pub fn dequantize_q5_k(blocks: &[BlockQ5K], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK_K)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        k_dequant(b.d, b.dmin, &b.parts(), o);
    }
    Ok(())
}

fn k_dequant(d: f16, dmin: f16, p: &KParts, out: &mut [f32]) {
    let (d, dmin) = (d.to_f32(), dmin.to_f32());
    for (j, o) in out.chunks_exact_mut(32).enumerate() {
        let (ds, dm) = (d * p.sc[j] as f32, dmin * p.m[j] as f32);
        for (o, &q) in o.iter_mut().zip(&p.q[32 * j..32 * j + 32]) {
            *o = ds * q as f32 - dm;
        }
    }
}

/// Dequantizes Q6_K super-blocks as ggml's `dequantize_row_q6_K`: `(d * sc) * q` in f32.
pub fn dequantize_q6_k(blocks: &[BlockQ6K], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK_K)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let (sc, q) = b.parts();
        for (s, o) in o.chunks_exact_mut(16).enumerate() {
            let ds = d * sc[s] as f32;
            for (o, &q) in o.iter_mut().zip(&q[16 * s..16 * s + 16]) {
                *o = ds * q as f32;
            }
        }
    }
    Ok(())
}
