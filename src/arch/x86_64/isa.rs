//! The [`Isa`] operations of the three x86_64 tiers.
//!
//! Each method is `#[inline(always)]` and is only reached from the tier's `#[target_feature]`
//! entry point (see `mod.rs`), so the intrinsics inline with the tier's features enabled.

use super::gemm::Isa;
use std::arch::x86_64::*;

/// AVX2: `vpmaddubsw` (u8 x i8 pairs to i16) summed in i16 over the 8 products of a block, then
/// one `vpmaddwd` against ones to i32. Each i16 lane sums 16 products of at most 15 * 127, so
/// 16 * 1905 = 30480 < 32767: no saturation anywhere, the sums are exact.
pub(super) struct Avx2;

/// AVX-VNNI: `vpdpbusd` on ymm (VEX encoding).
pub(super) struct AvxVnni;

/// AVX-512 VNNI: `vpdpbusd` on zmm.
pub(super) struct Avx512Vnni;

/// The f32 and load/store operations, identical for the two ymm tiers.
macro_rules! ymm_common {
    () => {
        const C: usize = 8;
        type V = __m256i;
        type F = __m256;

        #[inline(always)]
        unsafe fn vzero() -> __m256i {
            // SAFETY: the tier (AVX2 at least) is supported (trait contract).
            unsafe { _mm256_setzero_si256() }
        }
        #[inline(always)]
        unsafe fn load(p: *const u8) -> __m256i {
            // SAFETY: p is valid for 32 bytes (trait contract); loadu has no alignment need.
            unsafe { _mm256_loadu_si256(p.cast()) }
        }
        #[inline(always)]
        unsafe fn nibbles(v: __m256i) -> (__m256i, __m256i) {
            // SAFETY: the tier is supported (trait contract).
            unsafe {
                let m = _mm256_set1_epi8(0x0F);
                (
                    _mm256_and_si256(v, m),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(v), m),
                )
            }
        }
        #[inline(always)]
        unsafe fn fifth_bits(h: __m256i, shift: i32) -> __m256i {
            // SAFETY: the tier (AVX2) is supported (trait contract).
            unsafe {
                let t = _mm256_srl_epi32(h, _mm_cvtsi32_si128(shift));
                // Byte 0 of each lane into its 4 bytes, then one bit per byte.
                let rep = _mm256_shuffle_epi8(
                    t,
                    _mm256_setr_epi8(
                        0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0, 0, 0, 4, 4, 4, 4,
                        8, 8, 8, 8, 12, 12, 12, 12,
                    ),
                );
                let m = _mm256_set1_epi32(0x0804_0201);
                let set = _mm256_cmpeq_epi8(_mm256_and_si256(rep, m), m);
                _mm256_and_si256(set, _mm256_set1_epi8(0x10))
            }
        }
        #[inline(always)]
        unsafe fn or(a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_or_si256(a, b) }
        }
        #[inline(always)]
        unsafe fn bcast4(p: *const u8) -> __m256i {
            // SAFETY: p is valid for 4 bytes (trait contract).
            unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
        }
        #[inline(always)]
        unsafe fn load_u8_i32(p: *const u8) -> __m256i {
            // SAFETY: p is valid for 8 bytes (trait contract).
            unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())) }
        }
        #[inline(always)]
        unsafe fn load_u8_i16(p: *const u8) -> __m256i {
            // SAFETY: p is valid for 16 bytes (trait contract).
            unsafe { _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast())) }
        }
        #[inline(always)]
        unsafe fn load_i8_i32(p: *const u8) -> __m256i {
            // SAFETY: p is valid for 8 bytes (trait contract).
            unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast())) }
        }
        #[inline(always)]
        unsafe fn two_bits(v: __m256i, shift: i32) -> __m256i {
            // SAFETY: the tier is supported (trait contract). Values <= 3 shifted left by 4 stay
            // inside their byte of the 16-bit lane.
            unsafe {
                let t = _mm256_srl_epi16(v, _mm_cvtsi32_si128(shift));
                _mm256_slli_epi16::<4>(_mm256_and_si256(t, _mm256_set1_epi8(3)))
            }
        }
        #[inline(always)]
        unsafe fn one_bit(v: __m256i, shift: i32) -> __m256i {
            // SAFETY: the tier is supported (trait contract); see `two_bits`.
            unsafe {
                let t = _mm256_srl_epi16(v, _mm_cvtsi32_si128(shift));
                _mm256_slli_epi16::<4>(_mm256_and_si256(t, _mm256_set1_epi8(1)))
            }
        }
        #[inline(always)]
        unsafe fn mullo_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_add_epi32(acc, _mm256_mullo_epi32(a, b)) }
        }
        #[inline(always)]
        unsafe fn madd16_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
        }
        #[inline(always)]
        unsafe fn cvt(v: __m256i) -> __m256 {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_cvtepi32_ps(v) }
        }
        #[inline(always)]
        unsafe fn fnmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: the tier (which includes FMA) is supported (trait contract).
            unsafe { _mm256_fnmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn fzero() -> __m256 {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn fload(p: *const f32) -> __m256 {
            // SAFETY: p is valid for 8 f32 (trait contract).
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn fload_f16(p: *const u8) -> __m256 {
            // SAFETY: p is valid for 16 bytes (trait contract); the tier includes F16C.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
        #[inline(always)]
        unsafe fn fset1(x: f32) -> __m256 {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn fmul(a: __m256, b: __m256) -> __m256 {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: the tier (which includes FMA) is supported (trait contract).
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn fadd(a: __m256, b: __m256) -> __m256 {
            // SAFETY: the tier is supported (trait contract).
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn fstore(p: *mut f32, v: __m256) {
            // SAFETY: p is valid for writes of 8 f32 (trait contract).
            unsafe { _mm256_storeu_ps(p, v) }
        }
    };
}

// SAFETY: the methods only use AVX2, FMA and F16C, which the Avx2 tier includes.
unsafe impl Isa for Avx2 {
    ymm_common!();
    // vpmaddubsw saturates i16 pairs: exact for nibbles (see the type's note), not for any u8.
    const U8_FULL_RANGE: bool = false;
    type Acc = __m256i;

    #[inline(always)]
    unsafe fn acc_init(_corr: i32) -> __m256i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, a)) }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m256i, corr: i32) -> __m256 {
        // SAFETY: the tier is supported (trait contract).
        unsafe {
            let s = _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
            _mm256_cvtepi32_ps(_mm256_add_epi32(s, _mm256_set1_epi32(corr)))
        }
    }
    #[inline(always)]
    unsafe fn acc_i32(acc: __m256i) -> __m256i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm256_madd_epi16(acc, _mm256_set1_epi16(1)) }
    }
    #[inline(always)]
    unsafe fn acc_sum(acc: __m256i, corr: i32, part: __m256i) -> __m256i {
        // SAFETY: the tier is supported (trait contract).
        unsafe {
            let s = _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
            _mm256_add_epi32(_mm256_add_epi32(s, part), _mm256_set1_epi32(corr))
        }
    }
}

// SAFETY: the methods only use AVX2, FMA, F16C and AVX-VNNI, which the AvxVnni tier includes
// (`Tier::is_supported` requires the Avx2 tier, F16C included, for it).
unsafe impl Isa for AvxVnni {
    ymm_common!();
    const U8_FULL_RANGE: bool = true;
    type Acc = __m256i;

    #[inline(always)]
    unsafe fn acc_init(corr: i32) -> __m256i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm256_set1_epi32(corr) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: the tier (AVX-VNNI) is supported (trait contract).
        unsafe { _mm256_dpbusd_avx_epi32(acc, w, a) }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m256i, _corr: i32) -> __m256 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm256_cvtepi32_ps(acc) }
    }
    #[inline(always)]
    unsafe fn acc_i32(acc: __m256i) -> __m256i {
        acc
    }
    #[inline(always)]
    unsafe fn acc_sum(acc: __m256i, _corr: i32, part: __m256i) -> __m256i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm256_add_epi32(acc, part) }
    }
}

// SAFETY: the methods only use AVX-512 F/BW and AVX-512 VNNI, which the Avx512Vnni tier includes.
unsafe impl Isa for Avx512Vnni {
    const C: usize = 16;
    const U8_FULL_RANGE: bool = true;
    type V = __m512i;
    type Acc = __m512i;
    type F = __m512;

    #[inline(always)]
    unsafe fn vzero() -> __m512i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: p is valid for 64 bytes (trait contract); loadu has no alignment need.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn nibbles(v: __m512i) -> (__m512i, __m512i) {
        // SAFETY: the tier (AVX-512 BW for the 16-bit shift) is supported (trait contract).
        unsafe {
            let m = _mm512_set1_epi8(0x0F);
            (
                _mm512_and_si512(v, m),
                _mm512_and_si512(_mm512_srli_epi16::<4>(v), m),
            )
        }
    }
    #[inline(always)]
    unsafe fn fifth_bits(h: __m512i, shift: i32) -> __m512i {
        // SAFETY: the tier (AVX-512 F/BW) is supported (trait contract).
        unsafe {
            let t = _mm512_srl_epi32(h, _mm_cvtsi32_si128(shift));
            // Byte 0 of each lane into its 4 bytes, then one bit per byte.
            let pattern = _mm_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
            let rep = _mm512_shuffle_epi8(t, _mm512_broadcast_i32x4(pattern));
            let set = _mm512_test_epi8_mask(rep, _mm512_set1_epi32(0x0804_0201));
            _mm512_maskz_mov_epi8(set, _mm512_set1_epi8(0x10))
        }
    }
    #[inline(always)]
    unsafe fn or(a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_or_si512(a, b) }
    }
    #[inline(always)]
    unsafe fn bcast4(p: *const u8) -> __m512i {
        // SAFETY: p is valid for 4 bytes (trait contract).
        unsafe { _mm512_set1_epi32(p.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn acc_init(corr: i32) -> __m512i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_set1_epi32(corr) }
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512i, w: __m512i, a: __m512i) -> __m512i {
        // SAFETY: the tier (AVX-512 VNNI) is supported (trait contract).
        unsafe { _mm512_dpbusd_epi32(acc, w, a) }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m512i, _corr: i32) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_cvtepi32_ps(acc) }
    }
    #[inline(always)]
    unsafe fn acc_i32(acc: __m512i) -> __m512i {
        acc
    }
    #[inline(always)]
    unsafe fn acc_sum(acc: __m512i, _corr: i32, part: __m512i) -> __m512i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_add_epi32(acc, part) }
    }
    #[inline(always)]
    unsafe fn load_u8_i32(p: *const u8) -> __m512i {
        // SAFETY: p is valid for 16 bytes (trait contract).
        unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_u8_i16(p: *const u8) -> __m512i {
        // SAFETY: p is valid for 32 bytes (trait contract); vpmovzxbw zmm is AVX-512 BW.
        unsafe { _mm512_cvtepu8_epi16(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn load_i8_i32(p: *const u8) -> __m512i {
        // SAFETY: p is valid for 16 bytes (trait contract).
        unsafe { _mm512_cvtepi8_epi32(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn two_bits(v: __m512i, shift: i32) -> __m512i {
        // SAFETY: the tier (AVX-512 BW) is supported (trait contract).
        unsafe {
            let t = _mm512_srl_epi16(v, _mm_cvtsi32_si128(shift));
            _mm512_slli_epi16::<4>(_mm512_and_si512(t, _mm512_set1_epi8(3)))
        }
    }
    #[inline(always)]
    unsafe fn one_bit(v: __m512i, shift: i32) -> __m512i {
        // SAFETY: the tier (AVX-512 BW) is supported (trait contract).
        unsafe {
            let t = _mm512_srl_epi16(v, _mm_cvtsi32_si128(shift));
            _mm512_slli_epi16::<4>(_mm512_and_si512(t, _mm512_set1_epi8(1)))
        }
    }
    #[inline(always)]
    unsafe fn mullo_add(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_add_epi32(acc, _mm512_mullo_epi32(a, b)) }
    }
    #[inline(always)]
    unsafe fn madd16_add(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the tier (AVX-512 VNNI) is supported (trait contract).
        unsafe { _mm512_dpwssd_epi32(acc, a, b) }
    }
    #[inline(always)]
    unsafe fn cvt(v: __m512i) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_cvtepi32_ps(v) }
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fzero() -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn fload(p: *const f32) -> __m512 {
        // SAFETY: p is valid for 16 f32 (trait contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn fload_f16(p: *const u8) -> __m512 {
        // SAFETY: p is valid for 32 bytes (trait contract); vcvtph2ps zmm is AVX-512 F.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn fset1(x: f32) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn fmul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn fadd(a: __m512, b: __m512) -> __m512 {
        // SAFETY: the tier is supported (trait contract).
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fstore(p: *mut f32, v: __m512) {
        // SAFETY: p is valid for writes of 16 f32 (trait contract).
        unsafe { _mm512_storeu_ps(p, v) }
    }
}
