//! Integer `Q K^T` over the int8 KV cache (`KvDtype::I8`) for the bf16 attention path of the
//! `Avx512Vnni` tier (CPUs with AVX512_BF16): the scores as `vpdpbusd` products of the stored int8
//! keys with an int8 Q (64 MACs per instruction, twice `vdpbf16ps`'s 32), read from the cache's
//! keys with one re-layout per tile and block; the softmax, `P V` (bf16 weights and values) and
//! the output are the bf16 path's ([`super::attention_bf16`]), unchanged.
//!
//! * **Q** (`load_q`): times `scale * log2 e` (the weights are powers of 2), quantized per row to
//!   int8 (`qs = max|q| / 127`, round to nearest even), stored as the bytes `q + 128` (the unsigned
//!   operand of `vpdpbusd`) with `qs` after them, in the driver's Q buffer of `d` u16 per row:
//!   bytes `[0, d)` the row, `[d, d + 4)` its scale.
//! * **K** (`tile_i8`): the cache's key tile `[d][64]` (transposed) with its scales `[d / 32][64]`
//!   is re-laid out as `[d / 4][64][4]` (4 consecutive dimensions of a key per 32-bit lane:
//!   `vpdpbusd`'s signed operand) by a 4 x 64 byte transposition per 4 dimensions (8 unpacks, 8
//!   lane shuffles), and per block of 32 dimensions and key the correction `-128 sum_i k_i` (the
//!   bias of the unsigned Q) is summed by `vpdpbusd` with a vector of 128s; the scales are copied
//!   after them. Per tile and block of rows that is about 1/20 of the tile's `vpdpbusd` at 128
//!   rows.
//! * **Scores** ([`Fused::scores`] for the shared fused pass): per block `b` of 32 dimensions the
//!   int32 accumulators start at the correction and add 8 `vpdpbusd` per row and 16 keys, then
//!   the f32 score gets `cvt(sum) * ks_b` (one conversion and one FMA per 16 keys and block); at
//!   the end times `qs`. The integer sums are exact (`|sum| <= 32 * 255 * 127`).
//! * **V** is converted to bf16 per tile and block as before (`conv_v_i8`).
//!
//! Accuracy: against the f64 attention of the quantized Q and the stored K and V, only the bf16
//! path's roundings after the scores remain (V and the weights rounded to bf16, `u V` each; the
//! exp2 approximation), plus f32 arithmetic; against the unrounded Q, each score moves by at most
//! `scale max|q| |k|_1 / 254` (derivation and tests in `tests/attention.rs`).

use super::attention_bf16::{conv_v_i8, Fused, FusedPath, R};
use crate::contract::attention::{AttnPath, I8Tile, ReadI8, Tile, KV_TILE};
use crate::drivers::attention::{block_path, Flash};
use std::arch::x86_64::*;

/// The path: `avx512-i8qk`.
pub(crate) static I8QK_PATH: AttnPath = block_path::<Flash<FusedPath<I8Qk>>>(Some("avx512-i8qk"));

/// The integer `Q K^T`'s layouts and readers ([`Fused`]; its `AttnKernel` is `FusedPath<I8Qk>`,
/// with `E` = u16: bf16 weights and values, Q and the key tile holding bytes in the layouts
/// above).
pub(crate) struct I8Qk;

/// Byte offsets, per head dimension, in the key tile: the keys `[d / 4][64][4]` at 0, the
/// corrections `[d / 32][64]` (i32) at `KC_AT d`, the key scales `[d / 32][64]` (f32) at
/// `KS_AT d`; `TILE_BYTES d` bytes in all.
const KC_AT: usize = KV_TILE;
const KS_AT: usize = KC_AT + 8;
const TILE_BYTES: usize = KS_AT + 8;

/// [`Fused::load_q`]: row `r` of `src * scale` quantized to int8, as the bytes `q + 128`
/// then the f32 scale, in the row's `d` u16 of `qb`.
///
/// # Safety
/// AVX-512F/BW (shapes are asserted).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [u16]) {
    let d = src.len();
    assert!(d.is_multiple_of(32) && qb.len() >= (r + 1) * d);
    let sp = src.as_ptr();
    // max |q|, and `x * 0` summed: NaN if the row holds a NaN or an infinity.
    let (mut m, mut nf) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for c in (0..d).step_by(16) {
        // SAFETY: c + 16 <= d.
        let x = unsafe { _mm512_loadu_ps(sp.add(c)) };
        m = _mm512_max_ps(m, _mm512_abs_ps(x));
        nf = _mm512_add_ps(nf, _mm512_mul_ps(x, _mm512_setzero_ps()));
    }
    let amax = _mm512_reduce_max_ps(m) * scale.abs();
    // A non-finite row gets a NaN scale (its Q bytes 128, i.e. 0): NaN scores, a NaN output row,
    // as on the float paths, not a silent 0.
    let step = if _mm512_reduce_add_ps(nf) == 0.0 {
        amax / 127.0
    } else {
        f32::NAN
    };
    let inv = _mm512_set1_ps(if step > 0.0 { scale / step } else { 0.0 });
    let bias = _mm512_set1_epi32(128);
    let row = qb[r * d..(r + 1) * d].as_mut_ptr() as *mut u8;
    for c in (0..d).step_by(16) {
        // SAFETY: c + 16 <= d values of `src`, bytes c..c + 16 < d of the row (2 d bytes). The
        // product rounds to nearest even (MXCSR's default) and lies in [-127, 127]: plus 128 a
        // byte.
        unsafe {
            let x = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(sp.add(c)), inv));
            let b = _mm512_cvtepi32_epi8(_mm512_add_epi32(x, bias));
            _mm_storeu_si128(row.add(c) as *mut __m128i, b);
        }
    }
    // SAFETY: bytes d..d + 4 of the row's 2 d (d >= 32).
    unsafe { (row.add(d) as *mut f32).write_unaligned(step) };
}

/// [`Fused::TILE_I8`]: the key tile re-laid out with its corrections and scales (the layout
/// of [`Fused::scores`]) into `kbuf`, the values converted to the bf16 path's pairs.
///
/// # Safety
/// AVX-512F/BW, AVX512_BF16 and AVX512_VNNI (shapes are asserted).
unsafe fn tile_i8<'a>(
    t: I8Tile<'a>,
    nk: usize,
    d: usize,
    kbuf: &'a mut [u16],
    vbuf: &'a mut [u16],
) -> (&'a [u16], &'a [u16]) {
    assert!(nk <= KV_TILE && d.is_multiple_of(32));
    let kt_len = <I8Qk as Fused>::kt_len(d);
    // SAFETY: the CPU features (the caller's contract); the functions assert the shapes.
    unsafe {
        relayout_keys(t.kt, t.ks, d, bytemuck::cast_slice_mut(&mut kbuf[..kt_len]));
        conv_v_i8(t.v, t.vs, nk, d, vbuf);
    }
    (&kbuf[..kt_len], &vbuf[..nk.next_multiple_of(2) * d])
}

/// The key tile `kt` (`[d][64]` int8) and its scales `ks` (`[d / 32][64]`) into `dst`: keys
/// `[d / 4][64][4]`, then the corrections `-128 sum_{i in block b} k_ji` as i32 `[d / 32][64]`,
/// then the scales (f32, same layout).
///
/// # Safety
/// AVX-512F/BW and AVX512_VNNI (shapes are asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn relayout_keys(kt: &[i8], ks: &[f32], d: usize, dst: &mut [u8]) {
    let nb = d / 32;
    assert!(kt.len() >= d * KV_TILE && ks.len() >= nb * KV_TILE);
    assert!(dst.len() >= d * TILE_BYTES);
    let (src, out) = (kt.as_ptr(), dst.as_mut_ptr());
    let ones = _mm512_set1_epi8(-128); // the bytes 0x80: 128 as vpdpbusd's unsigned operand
    for b in 0..nb {
        let mut sum = [_mm512_setzero_si512(); 4];
        for qd in 8 * b..8 * b + 8 {
            // SAFETY: rows 4 qd..4 qd + 4 < d of the tile (64 bytes each); the 256 bytes of
            // dimension quad qd end inside the keys' d * 64 bytes of `dst`.
            unsafe {
                let r: [__m512i; 4] = std::array::from_fn(|i| {
                    _mm512_loadu_si512(src.add((4 * qd + i) * KV_TILE) as *const _)
                });
                // Per 128-bit lane L (keys 16 L..16 L + 16): bytes of rows (0, 1) and (2, 3)
                // interleaved, then 16-bit pairs: u[k] holds keys 16 L + 4 k..16 L + 4 k + 4,
                // 4 dimensions each.
                let t0 = _mm512_unpacklo_epi8(r[0], r[1]);
                let t1 = _mm512_unpackhi_epi8(r[0], r[1]);
                let t2 = _mm512_unpacklo_epi8(r[2], r[3]);
                let t3 = _mm512_unpackhi_epi8(r[2], r[3]);
                let u = [
                    _mm512_unpacklo_epi16(t0, t2),
                    _mm512_unpackhi_epi16(t0, t2),
                    _mm512_unpacklo_epi16(t1, t3),
                    _mm512_unpackhi_epi16(t1, t3),
                ];
                // The 4 x 4 transposition of 128-bit lanes: vector w = lane w of u[0..4].
                let a = _mm512_shuffle_i64x2::<0b01_00_01_00>(u[0], u[1]);
                let bb = _mm512_shuffle_i64x2::<0b11_10_11_10>(u[0], u[1]);
                let c = _mm512_shuffle_i64x2::<0b01_00_01_00>(u[2], u[3]);
                let e = _mm512_shuffle_i64x2::<0b11_10_11_10>(u[2], u[3]);
                let w = [
                    _mm512_shuffle_i64x2::<0b10_00_10_00>(a, c),
                    _mm512_shuffle_i64x2::<0b11_01_11_01>(a, c),
                    _mm512_shuffle_i64x2::<0b10_00_10_00>(bb, e),
                    _mm512_shuffle_i64x2::<0b11_01_11_01>(bb, e),
                ];
                for (k, &x) in w.iter().enumerate() {
                    _mm512_storeu_si512(out.add(qd * 4 * KV_TILE + 64 * k) as *mut _, x);
                    sum[k] = _mm512_dpbusd_epi32(sum[k], ones, x);
                }
            }
        }
        // SAFETY: block b's 64 corrections and 64 scales end inside `dst` (nb * 256 bytes each
        // after the keys); 64 scales of `ks`.
        unsafe {
            let corr = out.add(KC_AT * d + b * 4 * KV_TILE);
            let scales = out.add(KS_AT * d + b * 4 * KV_TILE);
            for (k, &s) in sum.iter().enumerate() {
                let neg = _mm512_sub_epi32(_mm512_setzero_si512(), s);
                _mm512_storeu_si512(corr.add(64 * k) as *mut _, neg);
                let x = _mm512_loadu_ps(ks.as_ptr().add(b * KV_TILE + 16 * k));
                _mm512_storeu_ps(scales.add(64 * k) as *mut f32, x);
            }
        }
    }
}

impl Fused for I8Qk {
    const TILE_I8: Option<ReadI8<u16>> = Some(tile_i8);

    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [u16]) {
        // SAFETY: the CPU features (the trait's contract).
        unsafe { load_q(src, scale, r, qb) }
    }

    /// Only int8 tiles: `select` hands this path out for an int8 cache only (as the aarch64
    /// integer paths).
    unsafe fn tile<'a>(
        _t: Tile<'a>,
        _nk: usize,
        _d: usize,
        _kbuf: &'a mut [u16],
        _vbuf: &'a mut [u16],
    ) -> (&'a [u16], &'a [u16]) {
        panic!("the int8 Q K^T path reads an int8 KV cache only");
    }

    fn kt_len(d: usize) -> usize {
        d * TILE_BYTES / 2
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx512vnni")]
    unsafe fn scores<const W: usize>(
        q: &[u16],
        r0: usize,
        d: usize,
        kt: &[u16],
    ) -> [[__m512; W]; R] {
        let nb = d / 32;
        // SAFETY (whole function): rows r0..r0 + R of the Q buffer (2 d bytes each: the row's
        // bytes, then its scale), the key tile of `kt_len(d)` u16 in the layout of
        // `relayout_keys` (the caller's contract); W <= 4 vectors of 16 keys.
        let qp = unsafe { (q.as_ptr() as *const u8).add(2 * r0 * d) };
        let kp = kt.as_ptr() as *const u8;
        let (kc, ks) = unsafe {
            (
                kp.add(KC_AT * d) as *const i32,
                kp.add(KS_AT * d) as *const f32,
            )
        };
        let mut f = [[_mm512_setzero_ps(); W]; R];
        for b in 0..nb {
            let c: [__m512i; W] = std::array::from_fn(|w| unsafe {
                _mm512_loadu_si512(kc.add(b * KV_TILE + 16 * w) as *const _)
            });
            let mut acc = [c; R];
            for qd in 8 * b..8 * b + 8 {
                let k: [__m512i; W] = std::array::from_fn(|w| unsafe {
                    _mm512_loadu_si512(kp.add(qd * 4 * KV_TILE + 64 * w) as *const _)
                });
                for (r, a) in acc.iter_mut().enumerate() {
                    let x = unsafe { (qp.add(2 * r * d + 4 * qd) as *const i32).read_unaligned() };
                    let x = _mm512_set1_epi32(x);
                    for w in 0..W {
                        a[w] = _mm512_dpbusd_epi32(a[w], x, k[w]);
                    }
                }
            }
            let s: [__m512; W] =
                std::array::from_fn(|w| unsafe { _mm512_loadu_ps(ks.add(b * KV_TILE + 16 * w)) });
            for (fr, a) in f.iter_mut().zip(&acc) {
                for w in 0..W {
                    fr[w] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[w]), s[w], fr[w]);
                }
            }
        }
        for (r, fr) in f.iter_mut().enumerate() {
            let qs = unsafe { (qp.add(2 * r * d + d) as *const f32).read_unaligned() };
            let qs = _mm512_set1_ps(qs);
            for x in fr.iter_mut() {
                *x = _mm512_mul_ps(*x, qs);
            }
        }
        f
    }
}
