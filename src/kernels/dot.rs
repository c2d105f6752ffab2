//! int8 dot product, `sum a[i] * b[i]` in exact i32 arithmetic.

use crate::contract::Kernels;
use crate::quant::check_len;
use crate::{Error, Result};

/// Longest input [`dot_i8`] accepts: 128 * 128 * len must fit an i32.
pub const DOT_I8_MAX_LEN: usize = (1 << 17) - 1;

/// `sum a[i] * b[i]`; an error if the lengths differ or exceed [`DOT_I8_MAX_LEN`].
pub fn dot_i8(k: &Kernels, a: &[i8], b: &[i8]) -> Result<i32> {
    check_len("b", b.len(), a.len())?;
    if a.len() > DOT_I8_MAX_LEN {
        return Err(Error::ShapeMismatch(format!(
            "dot_i8 length {} exceeds {DOT_I8_MAX_LEN}",
            a.len()
        )));
    }
    // SAFETY: `Kernels` exist only for supported tiers; equal lengths within the limit.
    Ok(unsafe { (k.ops.dot_i8)(a, b) })
}
