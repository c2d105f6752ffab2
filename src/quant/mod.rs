//! Block quantization formats (GGUF byte layouts) and the activation quantizer.
//!
//! * [`BlockQ4_0`]: weights, 32 elements, `f16 d` + 16 bytes of nibbles; value = (q - 8) * d.
//! * [`BlockQ8_0`]: weights kept at 8 bits (token embedding, output head), `f16 d` + 32 `i8`.
//! * [`BlockQ4_1`], [`BlockQ5_0`], [`BlockQ5_1`] (blocks of 32) and the K-quants [`BlockQ4K`],
//!   [`BlockQ5K`], [`BlockQ6K`] (super-blocks of 256): read-only GGUF formats with their
//!   dequantizers and integer views.
//! * Activations are quantized on the fly per block of 32 ([`quantize_activation_block`]), or of
//!   256 for the K-quants ([`quantize_activation_block_k`]); [`ActFormat`] names the two.
//!
//! The tier-specific packed layouts the kernels read are private to each kernel; they are built from
//! these blocks and unpack back to exactly them.

mod act;
mod kquants;
mod legacy;
mod q4_0;
mod q8_0;

pub use act::{
    quantize_activation_block, quantize_activation_block_k, ActBlock, ActBlockK, ActFormat,
};
pub use kquants::{
    dequantize_q4_k, dequantize_q5_k, dequantize_q6_k, BlockQ4K, BlockQ5K, BlockQ6K, KParts, QK_K,
};
pub use legacy::{
    dequantize_q4_1, dequantize_q5_0, dequantize_q5_1, BlockQ4_1, BlockQ5_0, BlockQ5_1,
};
pub use q4_0::{dequantize_q4_0, quantize_q4_0, BlockQ4_0};
pub use q8_0::{dequantize_q8_0, quantize_q8_0, BlockQ8_0};

/// Elements per block of the 32-value formats (and of the `Q8_32` activations).
pub const QK: usize = 32;

/// Checks that `k` is a non-zero multiple of [`QK`] and returns the number of blocks.
pub(crate) fn blocks_in(k: usize, what: &'static str) -> crate::Result<usize> {
    blocks_of(k, QK, what)
}

/// Checks that `k` is a non-zero multiple of `block_len` and returns the number of blocks.
pub(crate) fn blocks_of(k: usize, block_len: usize, what: &'static str) -> crate::Result<usize> {
    if k == 0 || !k.is_multiple_of(block_len) {
        return Err(crate::Error::NotBlockAligned { what, value: k });
    }
    Ok(k / block_len)
}

/// Checks `x.len() == expected`.
pub(crate) fn check_len(what: &'static str, actual: usize, expected: usize) -> crate::Result<()> {
    if actual != expected {
        return Err(crate::Error::BadLength {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}
