use bytemuck::{Pod, Zeroable};

/// One block of 32 quantized activations: value = q * d.
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct ActBlock {
    /// Scale `absmax / 127`, kept in f32 (activations are quantized per call; there is no file
    /// format to match, and f32 keeps the outliers of Qwen activations accurate).
    pub d: f32,
    /// Values in `-127..=127`.
    pub qs: [i8; 32],
}

/// The activation quantization rule, which every tier reproduces bit for bit:
///
/// * `d = absmax / 127` in f32, where `absmax` is the largest |x| of the block (NaN ignored);
/// * `id = 1 / d` in f32, or 0 when `d == 0` or `1 / d` overflows (absmax below about 3.7e-37);
/// * `q = round(x * id)`, rounding halfway cases away from zero; |q| <= 127 always.
///
/// This is ggml's Q8_0 rule (`quantize_row_q8_0_ref`, including its x86_64 result 0 for the
/// overflowing case) with the scale left in f32. NaN inputs are outside the contract: the scale
/// ignores them, their own q is unspecified.
pub fn quantize_activation_block(x: &[f32; 32]) -> ActBlock {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let id = if id.is_finite() { id } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    ActBlock { d, qs }
}
