use super::{act::quantize_activation_block, blocks_in, check_len, QK};
use crate::Result;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q8_0 block, byte-identical to GGUF's `block_q8_0`; value = q * d.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quantized values.
    pub qs: [i8; 32],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// Quantizes `x` (length a multiple of 32) into Q8_0 blocks as ggml's `quantize_row_q8_0_ref`:
/// the activation rule of [`quantize_activation_block`] with `d` then stored as f16.
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) -> Result<()> {
    let nb = blocks_in(x.len(), "input length")?;
    check_len("Q8_0 output blocks", out.len(), nb)?;
    for (b, o) in x.chunks_exact(QK).zip(out) {
        let a = quantize_activation_block(b.try_into().expect("chunk of 32"));
        *o = BlockQ8_0 {
            d: f16::from_f32(a.d),
            qs: a.qs,
        };
    }
    Ok(())
}

/// Dequantizes Q8_0 blocks into `out` (`32 * blocks.len()` values).
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) -> Result<()> {
    check_len("dequantized output", out.len(), blocks.len() * QK)?;
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        let d = b.d.to_f32();
        for (o, &q) in o.iter_mut().zip(&b.qs) {
            *o = q as f32 * d;
        }
    }
    Ok(())
}
