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

/// One block of 256 quantized activations, the layout that the K-quant weight kernels read
/// (`ActFormat::Q8_256`): value = q * d, plus the sum of every 16 quants (the min terms of Q4_K
/// and Q5_K need the sums per 32, Q6_K none; per 16 serves both).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
pub struct ActBlockK {
    /// Scale `absmax / 127` over the 256 values, in f32.
    pub d: f32,
    /// Values in `-127..=127`.
    pub qs: [i8; 256],
    /// `bsums[j] = sum of qs[16 j .. 16 j + 16]`.
    pub bsums: [i16; 16],
}

impl Default for ActBlockK {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// [`quantize_activation_block`]'s rule over a block of 256 values (one scale for all 256), with
/// the per-16 sums.
pub fn quantize_activation_block_k(x: &[f32; 256]) -> ActBlockK {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let id = if id.is_finite() { id } else { 0.0 };
    let mut b = ActBlockK {
        d,
        ..ActBlockK::zeroed()
    };
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    for (s, q) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = q.iter().map(|&v| v as i16).sum();
    }
    b
}

/// The activation layouts weight kernels read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActFormat {
    /// int8 in blocks of 32 with an f32 scale ([`ActBlock`]): for Q4_0, Q8_0, Q4_1, Q5_0, Q5_1.
    Q8_32,
    /// int8 in blocks of 256 with an f32 scale and per-16 sums ([`ActBlockK`]): for the K-quants.
    Q8_256,
}

impl ActFormat {
    /// Both formats.
    pub const ALL: [ActFormat; 2] = [ActFormat::Q8_32, ActFormat::Q8_256];

    /// Values per block.
    pub const fn block_len(self) -> usize {
        match self {
            ActFormat::Q8_32 => 32,
            ActFormat::Q8_256 => 256,
        }
    }
}
