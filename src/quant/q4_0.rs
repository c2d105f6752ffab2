use super::{blocks_in, check_len, QK};
use crate::Result;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q4_0 block, byte-identical to GGUF's `block_q4_0`: byte `j` of `qs` holds element `j` in its
/// low nibble and element `j + 16` in its high nibble; value = (q - 8) * d.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Packed 4-bit values.
    pub qs: [u8; 16],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);

impl BlockQ4_0 {
    /// The 32 signed values `q - 8`, in element order.
    pub fn values(&self) -> [i8; 32] {
        let mut v = [0i8; 32];
        for j in 0..16 {
            v[j] = (self.qs[j] & 0x0F) as i8 - 8;
            v[j + 16] = (self.qs[j] >> 4) as i8 - 8;
        }
        v
    }
}

/// Quantizes one block exactly as ggml's reference quantizer (`quantize_row_q4_0_ref`) on x86_64:
/// `m` = the first element of largest |x| (NaN skipped), `d = m / -8`, `id = 1/d` (0 if d = 0),
/// `q = min(15, trunc(x * id + 8.5))`, a non-finite `x * id + 8.5` giving 0; `d` stored as f16.
fn quantize_block(x: &[f32]) -> BlockQ4_0 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let nibble = |v: f32| {
        let t = (v * id + 8.5).trunc();
        if t.is_finite() {
            (t as u8).min(15)
        } else {
            0
        }
    };
    let mut qs = [0u8; 16];
    for j in 0..16 {
        qs[j] = nibble(x[j]) | (nibble(x[j + 16]) << 4);
    }
    BlockQ4_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// Quantizes `x` (length a multiple of 32) into `out` (`x.len() / 32` blocks), byte-identical to
/// ggml's reference Q4_0 quantizer.
pub fn quantize_q4_0(x: &[f32], out: &mut [BlockQ4_0]) -> Result<()> {
    let nb = blocks_in(x.len(), "input length")?;
    check_len("Q4_0 output blocks", out.len(), nb)?;
    for (b, o) in x.chunks_exact(QK).zip(out) {
        *o = quantize_block(b);
    }
    Ok(())
}

/// Dequantizes Q4_0 blocks into `out` (`32 * blocks.len()` values).
pub fn dequantize_q4_0(blocks: &[BlockQ4_0], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, q) in o.iter_mut().zip(b.values()) {
            *o = q as f32 * d;
        }
    }
    Ok(())
}
