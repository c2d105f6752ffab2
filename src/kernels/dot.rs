//! int8 dot product, `sum a[i] * b[i]` in exact i32 arithmetic.

use crate::quant::check_len;
use crate::{Error, Result, Tier};

/// Longest input [`dot_i8`] accepts: 128 * 128 * len must fit an i32.
pub const DOT_I8_MAX_LEN: usize = (1 << 17) - 1;

/// `sum a[i] * b[i]` for the process-wide tier.
pub fn dot_i8(a: &[i8], b: &[i8]) -> Result<i32> {
    dot_i8_with_tier(a, b, Tier::active())
}

/// `sum a[i] * b[i]` at an explicit tier; an error if the CPU lacks it, if the lengths differ or
/// exceed [`DOT_I8_MAX_LEN`].
pub fn dot_i8_with_tier(a: &[i8], b: &[i8], tier: Tier) -> Result<i32> {
    tier.check()?;
    check_len("b", b.len(), a.len())?;
    if a.len() > DOT_I8_MAX_LEN {
        return Err(Error::ShapeMismatch(format!(
            "dot_i8 length {} exceeds {DOT_I8_MAX_LEN}",
            a.len()
        )));
    }
    // The SIMD routine covers whole 16-byte chunks; the tail is done here.
    let (body, done) = match tier {
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::NeonDot | Tier::NeonI8mm => (
            crate::arch::aarch64::dot::dot_i8_chunks(a, b, tier >= Tier::NeonDot),
            a.len() / 16 * 16,
        ),
        _ => (0, 0),
    };
    let tail: i32 = a[done..]
        .iter()
        .zip(&b[done..])
        .map(|(&x, &y)| x as i32 * y as i32)
        .sum();
    Ok(body + tail)
}
