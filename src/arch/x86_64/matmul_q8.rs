//! Q8_0 weight matmul for the x86_64 tiers: the AVX2 kernel below (also run by the AVX-VNNI tier)
//! (the Avx512Vnni tier's own kernel is in `super`).
//! Weights stay plain `BlockQ8_0` rows (the layout of the portable kernel, which packing and
//! unpacking reuse); activations are read as plain `ActBlock`s, converted once per call by
//! `crate::kernels::matmul`. Used for the output head, whose GEMV in a decode step streams
//! `vocab x hidden` bytes: four weight rows at a time one weight row at a time.

use crate::arch::scalar::matmul::{pack_plain, unpack_row_plain};
use crate::contract::gemm::GemmArgs;
use crate::contract::gemm::{ActInput, WeightKernel};
use crate::quant::{ActBlock, BlockQ8_0, QK};
use std::arch::x86_64::*;

pub(crate) static Q8_AVX2: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "avx2-q8-4col",
    pack: pack_plain,
    unpack_row: unpack_row_plain,
    acts: ActInput::Plain,
    gemm: gemm_avx2,
};

/// `sum(w * a)` of 32 int8 pairs as 8 i32 lanes, exact for all int8 values: `maddubs` multiplies
/// `|w|` (as unsigned, at most 128) by `a * sign(w)` (an i8, at least -128, at most 127), so each
/// pair sum lies in `-32768..=32512` and never saturates.
#[inline]
#[target_feature(enable = "avx2")]
fn dot32(w: __m256i, a: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(w, w); // |w| as unsigned (128 stays 0x80 = 128)
    let sy = _mm256_sign_epi8(a, w); // a * sign(w)
    let p16 = _mm256_maddubs_epi16(ax, sy);
    _mm256_madd_epi16(p16, _mm256_set1_epi16(1))
}

/// The 8 exact block sums of `v[0..8]` (8 i32 lanes each) as one vector, lane `b` = block `b`.
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(v: [__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(v[0], v[1]);
    let h23 = _mm256_hadd_epi32(v[2], v[3]);
    let h45 = _mm256_hadd_epi32(v[4], v[5]);
    let h67 = _mm256_hadd_epi32(v[6], v[7]);
    // Lanes: [b0 lo, b1 lo, b2 lo, b3 lo | b0 hi, b1 hi, b2 hi, b3 hi] (partial sums of halves).
    let h0123 = _mm256_hadd_epi32(h01, h23);
    let h4567 = _mm256_hadd_epi32(h45, h67);
    let s0123 = _mm_add_epi32(
        _mm256_castsi256_si128(h0123),
        _mm256_extracti128_si256(h0123, 1),
    );
    let s4567 = _mm_add_epi32(
        _mm256_castsi256_si128(h4567),
        _mm256_extracti128_si256(h4567, 1),
    );
    _mm256_set_m128i(s4567, s0123)
}

/// The exact sum of the 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
fn load32(q: &[i8; 32]) -> __m256i {
    // SAFETY: `q` is 32 readable bytes; unaligned load.
    unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
}

/// The f16 scales of 8 consecutive weight blocks as f32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn scales8(w: &[BlockQ8_0]) -> __m256 {
    let d = |b: usize| w[b].d.to_bits() as i16;
    let bits = _mm_set_epi16(d(7), d(6), d(5), d(4), d(3), d(2), d(1), d(0));
    _mm256_cvtph_ps(bits)
}

/// # Safety
/// See [`WeightKernel::gemm`]; `args.a` holds plain `ActBlock`s and the CPU supports AVX2, FMA and F16C.
///
/// Every block's integer sum is reduced exactly (eight blocks at a time) before it is scaled, so
/// the result differs from the f64 reference by float rounding only, as the contract requires.
/// One weight row at a time, against every activation row of the range: a single sequential
/// weight stream (measured on a Zen 3 guest: 7.5 GB/s, where interleaving 2 or 4 rows gave 3).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_avx2(args: &GemmArgs<'_>) {
    let kb = args.k / QK;
    let groups = kb / 8;
    let w: &[BlockQ8_0] =
        bytemuck::cast_slice(&args.w.bytes()[..args.n * kb * size_of::<BlockQ8_0>()]);
    let a: &[ActBlock] =
        bytemuck::cast_slice(&args.a.bytes()[..args.m * kb * size_of::<ActBlock>()]);
    for j in args.cols.clone() {
        let wrow = &w[j * kb..(j + 1) * kb];
        for i in args.rows.clone() {
            let arow = &a[i * kb..(i + 1) * kb];
            let mut acc = _mm256_setzero_ps();
            for g in 0..groups {
                let ab = &arow[g * 8..g * 8 + 8];
                let wb = &wrow[g * 8..g * 8 + 8];
                let da = _mm256_set_ps(
                    ab[7].d, ab[6].d, ab[5].d, ab[4].d, ab[3].d, ab[2].d, ab[1].d, ab[0].d,
                );
                let mut v = [_mm256_setzero_si256(); 8];
                for b in 0..8 {
                    v[b] = dot32(load32(&wb[b].qs), load32(&ab[b].qs));
                }
                let isum = _mm256_cvtepi32_ps(reduce8(v));
                acc = _mm256_fmadd_ps(isum, _mm256_mul_ps(scales8(wb), da), acc);
            }
            let mut y = hsum(acc);
            for b in groups * 8..kb {
                let isum = hsum_i32(dot32(load32(&wrow[b].qs), load32(&arow[b].qs)));
                y += isum as f32 * (wrow[b].d.to_f32() * arow[b].d);
            }
            if let Some(bias) = args.bias {
                y += bias[j];
            }
            // SAFETY: the caller guarantees `out` is valid for every (i, j) of the ranges at this
            // offset.
            unsafe {
                *args
                    .out
                    .add((i - args.rows.start) * args.ldo + (j - args.cols.start)) = y
            };
        }
    }
}
