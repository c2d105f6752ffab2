//! int8 dot product: `asm/aarch64/dot_i8_neon.S` (smull + sadalp) and `dot_i8_dotprod.S` (sdot).

unsafe extern "C" {
    /// Sum of `a[i] * b[i]` over `16 * chunks` bytes.
    fn qkern_dot_i8_neon(a: *const i8, b: *const i8, chunks: usize) -> i32;
    /// Same as `qkern_dot_i8_neon`, with SDOT. Requires FEAT_DotProd.
    fn qkern_dot_i8_dotprod(a: *const i8, b: *const i8, chunks: usize) -> i32;
}

/// `sum a[i] * b[i]` over the first `16 * (len / 16)` elements, with the tier's asm routine.
/// `dotprod` selects the SDOT routine; the caller has checked that the CPU has FEAT_DotProd.
pub(crate) fn dot_i8_chunks(a: &[i8], b: &[i8], dotprod: bool) -> i32 {
    let chunks = a.len().min(b.len()) / 16;
    // The routines read exactly 16 * chunks bytes from each pointer; both slices hold that many.
    // The sum of |a*b| is at most 16384 * len, which fits i32 for len < 2^17; callers bound len.
    assert!(chunks < (1 << 13), "dot product too long for an i32 sum");
    if dotprod {
        // SAFETY: lengths checked above; FEAT_DotProd guaranteed by the caller (tier checked).
        unsafe { qkern_dot_i8_dotprod(a.as_ptr(), b.as_ptr(), chunks) }
    } else {
        // SAFETY: lengths checked above; plain ARMv8.0 NEON.
        unsafe { qkern_dot_i8_neon(a.as_ptr(), b.as_ptr(), chunks) }
    }
}
