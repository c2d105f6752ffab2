//! GGUF's Q6_K format (read only): super-blocks of 256 values, converted at load to f32 and then
//! to Q8_0, for every tensor (linear weights, token embedding, output head), never to Q4_0, which
//! would lose accuracy silently. Temporary, until the kernels run Q6_K natively (see `stand_in` in
//! `convert.rs`).
//!
//! Error of the Q6_K -> Q8_0 conversion: a Q6_K value is `d * sc * q` with `q` in `-32..=31` and
//! one int8 scale `sc` per 16 values. Decoding to f32 is exact up to one f32 rounding (relative
//! 2^-24). Re-quantizing to Q8_0 (per 32 values, `d8 = absmax / 127`, stored as f16) adds at most
//! `d8 / 2` from rounding to an integer plus `|x| * 2^-11` from the f16 scale, i.e. per element at
//! most `absmax * (1/254 + 1/2048)` ≈ 0.44 % of the largest |value| of its block of 32. This is
//! below Q6_K's own step (`absmax / 31` ≈ 3.2 % of a 16-value group's range).

use half::f16;

/// Values per super-block.
pub(crate) const QK_K: usize = 256;
/// Bytes per super-block: `ql[128]`, `qh[64]`, `scales[16]` (int8), `d` (f16).
pub(crate) const BLOCK_BYTES: usize = 210;

/// Dequantizes whole Q6_K super-blocks (`src.len() == out.len() / 256 * 210`) as ggml's
/// `dequantize_row_q6_K`. The caller guarantees the lengths.
pub(crate) fn dequantize(src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(src.len() / BLOCK_BYTES * QK_K, out.len());
    for (b, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (ql, rest) = b.split_at(128);
        let (qh, rest) = rest.split_at(64);
        let (sc, d) = rest.split_at(16);
        let d = f16::from_le_bytes([d[0], d[1]]).to_f32();
        // Two halves of 128 values, each with 64 bytes of ql, 32 of qh and 8 scales.
        for half in 0..2 {
            let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
            let y = &mut y[128 * half..];
            for l in 0..32 {
                let is = l / 16;
                let q = [
                    (ql[l] & 0xF) | ((qh[l] & 3) << 4),
                    (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                ];
                for (j, &q) in q.iter().enumerate() {
                    let s = sc[is + 2 * j] as i8 as f32;
                    y[l + 32 * j] = d * s * (q as i32 - 32) as f32;
                }
            }
        }
    }
}
