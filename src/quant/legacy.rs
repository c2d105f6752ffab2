//! The 32-value block formats with a minimum or a fifth bit: Q4_1, Q5_0, Q5_1 (GGUF layouts,
//! ggml-common.h). Read-only here: weights arrive quantized in model files.

use super::{check_len, QK};
use crate::Result;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q4_1 block: value = `d * q + m`, `q` the nibble (0..=15); byte `j` holds element `j` in
/// its low nibble and element `j + 16` in its high nibble.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (added to every value).
    pub m: f16,
    /// Packed 4-bit values.
    pub qs: [u8; 16],
}

/// One Q5_0 block: value = `d * (q - 16)`, `q` = nibble | fifth bit; the fifth bit of element
/// `j` is bit `j` of `qh` read as a little-endian u32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits.
    pub qh: [u8; 4],
    /// Low 4 bits, packed as in Q4_0.
    pub qs: [u8; 16],
}

/// One Q5_1 block: value = `d * q + m`, `q` 5 bits as in [`BlockQ5_0`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum.
    pub m: f16,
    /// Fifth bits.
    pub qh: [u8; 4],
    /// Low 4 bits.
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// The 32 nibbles of `qs` in element order.
fn nibbles(qs: &[u8; 16]) -> [u8; 32] {
    let mut v = [0u8; 32];
    for j in 0..16 {
        v[j] = qs[j] & 0x0F;
        v[j + 16] = qs[j] >> 4;
    }
    v
}

/// The 32 five-bit values of `qs` and `qh` in element order.
fn five_bits(qs: &[u8; 16], qh: &[u8; 4]) -> [u8; 32] {
    let h = u32::from_le_bytes(*qh);
    let mut v = nibbles(qs);
    for (j, q) in v.iter_mut().enumerate() {
        *q |= (((h >> j) & 1) as u8) << 4;
    }
    v
}

impl BlockQ4_1 {
    /// The 32 unsigned quants `q` (0..=15), in element order.
    pub fn values(&self) -> [u8; 32] {
        nibbles(&self.qs)
    }
}

impl BlockQ5_0 {
    /// The 32 signed values `q - 16` (-16..=15), in element order.
    pub fn values(&self) -> [i8; 32] {
        five_bits(&self.qs, &self.qh).map(|q| q as i8 - 16)
    }
}

impl BlockQ5_1 {
    /// The 32 unsigned quants `q` (0..=31), in element order.
    pub fn values(&self) -> [u8; 32] {
        five_bits(&self.qs, &self.qh)
    }
}

/// Dequantizes Q4_1 blocks into `out` (`32 * blocks.len()` values): `d * q + m` in f32, as ggml.
pub fn dequantize_q4_1(blocks: &[BlockQ4_1], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (o, q) in o.iter_mut().zip(b.values()) {
            *o = q as f32 * d + m;
        }
    }
    Ok(())
}

/// Dequantizes Q5_0 blocks into `out`: `(q - 16) * d` in f32, as ggml.
pub fn dequantize_q5_0(blocks: &[BlockQ5_0], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, q) in o.iter_mut().zip(b.values()) {
            *o = q as f32 * d;
        }
    }
    Ok(())
}

/// Dequantizes Q5_1 blocks into `out`: `d * q + m` in f32, as ggml.
pub fn dequantize_q5_1(blocks: &[BlockQ5_1], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (b.d.to_f32(), b.m.to_f32());
        for (o, q) in o.iter_mut().zip(b.values()) {
            *o = q as f32 * d + m;
        }
    }
    Ok(())
}
