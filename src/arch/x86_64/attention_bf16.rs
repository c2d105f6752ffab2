//! The bf16 attention path of the `Avx512Vnni` tier, for CPUs that also have AVX512_BF16 (AMD Zen 4
//! and later, Intel Cooper Lake and Sapphire Rapids and later): `Q K^T` and `P V` with
//! `vdpbf16ps` (`_mm512_dpbf16_ps`: 16 lanes, each the sum of a pair of bf16 products added to an
//! f32 accumulator), softmax statistics, weights before rounding, and the output accumulator in
//! f32. The 16-bit KV cache of this tier stores bf16 in the K and V layouts below
//! (`Stored::Bf16`, chosen when the cache is made, see `kernels::kv_cache`), which `tile_bf16`
//! hands on as stored ([`AttnKernel::TILE_BF16`]); f32 and int8 tiles are converted once per
//! block (`tile`, `tile_i8`).
//!
//! Both products are one shape: `R` rows x up to 64 f32 columns (4 vectors), reduced over pairs:
//! per pair, the row's two bf16 values are one 32-bit broadcast and the right operand holds the
//! pair of each column side by side (`[pair][column][2]`).
//! * **Q** (`load_q`): `bf16(q * scale)` (round to nearest even), row-major `rows x d` in the
//!   block buffer: head dimensions `2i, 2i + 1` are adjacent already.
//! * **K**: `[d/2][64][2]` per tile (dimensions `2i, 2i + 1` of a key side by side), as the bf16
//!   cache stores it; an f32 or f16 tile `d x 64` (transposed) is converted by `tile`: per 16 keys,
//!   two rows widened to f32, one `vcvtne2ps2bf16` and one `vpermw` to interleave (only the 16-key
//!   groups below `nk`).
//! * **V**: `[ceil(nk/2)][d][2]` (keys `2m, 2m + 1` side by side), as the bf16 cache stores it, or
//!   converted by `tile` from `nk x d` (an odd last key paired with zeros). `pv` ignores the second
//!   value of an odd last pair (a masked load): in the cache it is an unwritten position that may
//!   hold stale data.
//! * **P** (`qk_softmax`): the f32 weights of a row, `bf16`-rounded, row-major `rows x 64` (keys
//!   `2m, 2m + 1` adjacent), zero from the row's visible keys up to `nk` rounded up to even.
//!
//! `Q K^T` and the softmax are one pass (`qk_softmax`, the driver's `AttnKernel::qk_softmax`): per
//! micro-tile of `R` rows the 16 score accumulators go to the weights without leaving the
//! registers. The running maximum is lazy: it moves only when a visible score exceeds it by more
//! than [`LAZY_MAX`] (log2 units), so most tiles need no row-maximum reduction before their
//! exponentials and rescale nothing (`corr = 1`); the weights then lie in `(0, 2^LAZY_MAX]`
//! instead of `(0, 1]`, which changes no relative rounding (bf16 and f32 have the range). On the
//! causal diagonal a micro-tile computes only the 16-key groups its rows see.
//!
//! The tile conversion (f32, f16 or int8 tiles only) costs, per block and 64 keys, `2 d`
//! widenings, `d` conversions and `d` permutes (K and V together): about 1/8 of the `vdpbf16ps`
//! count of a block of 56 rows at `d = 64`.
//!
//! Accuracy (derivation in `tests/attention.rs`): with `u = 2^-8` (bf16, round to nearest even),
//! `bf16(q * scale)`, the bf16 K and V and the bf16 weights are the only roundings beyond f32
//! (K and V: none against the values a bf16 cache stores, one rounding `bf16(x)` of the f32
//! inputs, where the f16 cache used to add `f16(x)` first; the bound below is kept as it was and
//! is conservative for the bf16 cache):
//! the products of two bf16 are exact in f32 and `vdpbf16ps` accumulates in f32 (denormal inputs
//! and results flushed to zero). Against the f64 attention of the stored K and V, a score
//! is off by at most `(2u + u^2) A` (`A = scale * sum_i |q_i k_i|`), which moves the output by at
//! most `2 V (e^delta - 1) e^delta` (`delta` that score bound, `V = max |v|`); rounding V and the
//! weights adds `u V` each.

use crate::contract::attention::{
    AttnKernel, AttnPath, Bf16Tile, I8Tile, Mask, ReadBf16, ReadI8, Stats, Tile, KV_TILE,
};
use crate::drivers::attention::path;
use half::f16;
use std::arch::x86_64::*;
use std::marker::PhantomData;
use std::sync::OnceLock;

/// Environment variable that turns the bf16 attention path off (`QKERN_ATTN_BF16=0`: the f32
/// path runs even where the CPU has AVX512_BF16). Read once per process.
pub const ATTN_BF16_ENV: &str = "QKERN_ATTN_BF16";

/// Whether the `Avx512Vnni` tier runs the bf16 path: the CPU has AVX512_BF16 (and AVX-512F/BW,
/// which the tier guarantees) and [`ATTN_BF16_ENV`] is not `0`. Detected once.
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512bf16") && crate::Tier::switch_on(ATTN_BF16_ENV)
    })
}

pub(crate) static BF16_PATH: AttnPath = path::<FusedPath<Bf16>>();

/// `dst[i] = bf16(src[i])`, round to nearest even (`vcvtneps2bf16`, as the path rounds Q and the
/// weights; f32 denormals become zero, as `vdpbf16ps` would read them): the writes of the bf16
/// KV cache, which exists only where [`enabled`]. `src.len()` is a multiple of 16 (a head).
pub(crate) fn to_bf16(src: &[f32], dst: &mut [u16]) {
    assert!(
        enabled() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    );
    assert!(src.len() == dst.len() && src.len().is_multiple_of(16));
    // SAFETY: the CPU features were just checked (`enabled` includes AVX512_BF16).
    unsafe { to_bf16_avx512(src, dst) }
}

/// [`to_bf16`].
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; equal lengths, a multiple of 16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn to_bf16_avx512(src: &[f32], dst: &mut [u16]) {
    for (s, d) in src.chunks_exact(16).zip(dst.chunks_exact_mut(16)) {
        // SAFETY: 16 values each; `__m256bh` and `__m256i` are both 32 bytes of plain SIMD data.
        unsafe {
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(s.as_ptr()));
            let h = std::mem::transmute::<__m256bh, __m256i>(h);
            _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, h);
        }
    }
}

/// The bf16 path's layouts and readers ([`Fused`]; its [`AttnKernel`] is `FusedPath<Bf16>`).
pub(crate) struct Bf16;

/// Rows per micro-tile (the driver pads a block to a multiple of it with zero Q and P rows).
pub(super) const R: usize = 4;

/// `vpermw` indices that interleave the two halves of a vector of 32 u16: `[a0, b0, a1, b1, ..]`
/// from `[a0..a15, b0..b15]`.
const INTERLEAVE: [u16; 32] = {
    let mut t = [0u16; 32];
    let mut j = 0;
    while j < 16 {
        t[2 * j] = j as u16;
        t[2 * j + 1] = 16 + j as u16;
        j += 1;
    }
    t
};

/// Sixteen stored values widened to f32.
trait Load16: Copy {
    /// # Safety
    /// 16 values readable at `p`; AVX-512F.
    unsafe fn load16(p: *const Self) -> __m512;
}

impl Load16 for f16 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const f16) -> __m512 {
        // SAFETY: 16 f16 (32 bytes) readable at `p` (the caller's contract).
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p as *const __m256i) })
    }
}

impl Load16 for f32 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load16(p: *const f32) -> __m512 {
        // SAFETY: 16 f32 readable at `p` (the caller's contract).
        unsafe { _mm512_loadu_ps(p) }
    }
}

/// `[bf16(a0), bf16(b0), bf16(a1), bf16(b1), ..]` (round to nearest even) as 32 u16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn interleave_bf16(a: __m512, b: __m512, idx: __m512i) -> __m512i {
    // `vcvtne2ps2bf16`: the second operand fills the low half.
    let x = _mm512_cvtne2ps_pbh(b, a);
    // SAFETY: `__m512bh` and `__m512i` are both 64 bytes of plain SIMD data.
    let x: __m512i = unsafe { std::mem::transmute::<__m512bh, __m512i>(x) };
    _mm512_permutexvar_epi16(idx, x)
}

/// K tile `d x 64` (transposed, as stored) into `kb` as `[d/2][64][2]` bf16, for the 16-key
/// groups below `nk`.
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; `kt` holds `d * 64` values, `kb` `d * 64`, `d` even.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn conv_k<T: Load16>(kt: &[T], d: usize, nk: usize, kb: &mut [u16]) {
    assert!(kt.len() >= d * KV_TILE && kb.len() >= d * KV_TILE && d.is_multiple_of(2));
    // SAFETY: 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _) };
    let groups = nk.div_ceil(16).min(KV_TILE / 16);
    let (src, dst) = (kt.as_ptr(), kb.as_mut_ptr());
    for i in 0..d / 2 {
        for c in 0..groups {
            // SAFETY: rows 2i, 2i + 1 < d of the tile, columns 16c..16c + 16 <= 64; the pairs
            // of keys 16c.. of dimension pair i end inside `kb` (d / 2 x 64 pairs).
            unsafe {
                let a = T::load16(src.add(2 * i * KV_TILE + 16 * c));
                let b = T::load16(src.add((2 * i + 1) * KV_TILE + 16 * c));
                let x = interleave_bf16(a, b, idx);
                _mm512_storeu_si512(dst.add((i * KV_TILE + 16 * c) * 2) as *mut _, x);
            }
        }
    }
}

/// The first `nk` value rows (`nk x d`) into `vb` as `[ceil(nk/2)][d][2]` bf16 (an odd last key
/// paired with zeros).
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; `v` holds `nk * d` values, `vb` `nk.next_multiple_of(2) * d`,
/// `d` a multiple of 16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn conv_v<T: Load16>(v: &[T], nk: usize, d: usize, vb: &mut [u16]) {
    assert!(v.len() >= nk * d && vb.len() >= nk.next_multiple_of(2) * d);
    assert!(d.is_multiple_of(16));
    // SAFETY: 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _) };
    let (src, dst) = (v.as_ptr(), vb.as_mut_ptr());
    for m in 0..nk.div_ceil(2) {
        let second = 2 * m + 1 < nk;
        for c in (0..d).step_by(16) {
            // SAFETY: rows 2m (and 2m + 1 when below nk) of `v`, columns c..c + 16 <= d; pair
            // m's 2 d values end inside `vb`.
            unsafe {
                let a = T::load16(src.add(2 * m * d + c));
                let b = if second {
                    T::load16(src.add((2 * m + 1) * d + c))
                } else {
                    _mm512_setzero_ps()
                };
                let x = interleave_bf16(a, b, idx);
                _mm512_storeu_si512(dst.add((m * d + c) * 2) as *mut _, x);
            }
        }
    }
}

/// Sixteen int8 values at `p` times `scale` (exact widening, one f32 rounding of the product, as
/// the driver's dequantization computes it).
///
/// # Safety
/// 16 bytes readable at `p`; AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load16_i8(p: *const i8, scale: __m512) -> __m512 {
    // SAFETY: 16 bytes at `p` (the caller's contract).
    let q = unsafe { _mm_loadu_si128(p as *const __m128i) };
    _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), scale)
}

/// [`conv_k`] for an int8 key tile `d x 64` with its scales `[d / 32][64]`.
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; `kt` holds `d * 64` values, `ks` `d * 2`, `kb` `d * 64`, `d` a
/// multiple of 32.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn conv_k_i8(kt: &[i8], ks: &[f32], d: usize, nk: usize, kb: &mut [u16]) {
    assert!(kt.len() >= d * KV_TILE && kb.len() >= d * KV_TILE && d.is_multiple_of(32));
    assert!(ks.len() >= d / 32 * KV_TILE);
    // SAFETY: 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _) };
    let groups = nk.div_ceil(16).min(KV_TILE / 16);
    let (src, dst) = (kt.as_ptr(), kb.as_mut_ptr());
    for i in 0..d / 2 {
        // Dimensions 2i and 2i + 1 are in the same block of 32: one row of scales.
        let sc = &ks[(2 * i / 32) * KV_TILE..][..KV_TILE];
        for c in 0..groups {
            // SAFETY: rows 2i, 2i + 1 < d of the tile and columns 16c..16c + 16 <= 64 (of `kt`
            // and of the scale row); the pairs of keys 16c.. of dimension pair i end inside `kb`.
            unsafe {
                let s = _mm512_loadu_ps(sc.as_ptr().add(16 * c));
                let a = load16_i8(src.add(2 * i * KV_TILE + 16 * c), s);
                let b = load16_i8(src.add((2 * i + 1) * KV_TILE + 16 * c), s);
                let x = interleave_bf16(a, b, idx);
                _mm512_storeu_si512(dst.add((i * KV_TILE + 16 * c) * 2) as *mut _, x);
            }
        }
    }
}

/// [`conv_v`] for `nk` int8 value rows with their scales `[row][d / 32]`.
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; `v` holds `nk * d` values, `vs` `nk * d / 32`, `vb`
/// `nk.next_multiple_of(2) * d`, `d` a multiple of 32.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn conv_v_i8(v: &[i8], vs: &[f32], nk: usize, d: usize, vb: &mut [u16]) {
    assert!(v.len() >= nk * d && vb.len() >= nk.next_multiple_of(2) * d);
    assert!(d.is_multiple_of(32) && vs.len() >= nk * d / 32);
    // SAFETY: 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const _) };
    let (src, dst) = (v.as_ptr(), vb.as_mut_ptr());
    let bs = d / 32;
    for m in 0..nk.div_ceil(2) {
        let second = 2 * m + 1 < nk;
        for c in (0..d).step_by(16) {
            // SAFETY: rows 2m (and 2m + 1 when below nk) of `v` and `vs`, columns c..c + 16 <= d;
            // pair m's 2 d values end inside `vb`.
            unsafe {
                let a = load16_i8(
                    src.add(2 * m * d + c),
                    _mm512_set1_ps(vs[2 * m * bs + c / 32]),
                );
                let b = if second {
                    let s = _mm512_set1_ps(vs[(2 * m + 1) * bs + c / 32]);
                    load16_i8(src.add((2 * m + 1) * d + c), s)
                } else {
                    _mm512_setzero_ps()
                };
                let x = interleave_bf16(a, b, idx);
                _mm512_storeu_si512(dst.add((m * d + c) * 2) as *mut _, x);
            }
        }
    }
}

/// The shared micro-kernel: for `R` rows and `W` vectors of 16 columns, `acc[r][w] = sum over
/// pairs i < n of a[r][2i..2i + 2] . b[i][16w..16w + 16][2]`, `a` rows `a_stride` u16 apart,
/// `b` pairs `b_stride` u16 apart. With `half_last`, the second value of every column of the last
/// pair counts as zero (the unwritten partner of an odd last position in the bf16 cache may
/// hold anything, even a non-finite stale value, whose product with a zero weight is not zero).
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; `a` has `R` rows of `2 n` values, `b` `n` pairs of `16 W` columns.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn dot_pairs<const W: usize>(
    a: *const u16,
    a_stride: usize,
    b: *const u16,
    b_stride: usize,
    n: usize,
    half_last: bool,
) -> [[__m512; W]; R] {
    let mut acc = [[_mm512_setzero_ps(); W]; R];
    for i in 0..n {
        // The even u16 lanes (first value of each pair) only, for the last pair if `half_last`.
        let keep: __mmask32 = if half_last && i + 1 == n {
            0x5555_5555
        } else {
            u32::MAX
        };
        // SAFETY (whole loop): the caller's shapes; `__m512i` and `__m512bh` are both 64 bytes
        // of plain SIMD data.
        let bv: [__m512bh; W] = std::array::from_fn(|w| unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_maskz_loadu_epi16(
                keep,
                b.add(i * b_stride + 32 * w) as *const _,
            ))
        });
        for (r, ar) in acc.iter_mut().enumerate() {
            let x = unsafe { (a.add(r * a_stride + 2 * i) as *const i32).read_unaligned() };
            let av = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(x)) };
            for w in 0..W {
                ar[w] = _mm512_dpbf16_ps(ar[w], av, bv[w]);
            }
        }
    }
    acc
}

/// `o[r][c0..c0 + 16 W] = o * corr[r] + P V` for `R` rows over the first `n` pairs of keys
/// (the rows' weights are zero past them).
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16; `p` `R x 64`, `vb` `ceil(nk/2) x d x 2`, `o` `R x d`, `corr`
/// `R`, `c0 + 16 W <= d`, `n <= ceil(nk/2)`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pv_cols<const W: usize>(
    p: *const u16,
    n: usize,
    nk: usize,
    vb: *const u16,
    d: usize,
    c0: usize,
    corr: *const f32,
    o: *mut f32,
) {
    // SAFETY: the caller's shapes. The last pair's second key is unwritten where it is key nk.
    let acc = unsafe { dot_pairs::<W>(p, KV_TILE, vb.add(2 * c0), 2 * d, n, 2 * n > nk) };
    // SAFETY: R values of `corr`.
    let same = unsafe { (0..R).all(|r| *corr.add(r) == 1.0) };
    for (r, a) in acc.iter().enumerate() {
        // SAFETY: row r < R of `o` and `corr`, columns below c0 + 16 W <= d.
        unsafe {
            let c = _mm512_set1_ps(*corr.add(r));
            for (w, &x) in a.iter().enumerate() {
                let op = o.add(r * d + c0 + 16 * w);
                // With the lazy maximum most tiles rescale nothing: an add, off the FMA pipes
                // that the products keep busy.
                let y = if same {
                    _mm512_add_ps(_mm512_loadu_ps(op), x)
                } else {
                    _mm512_fmadd_ps(_mm512_loadu_ps(op), c, x)
                };
                _mm512_storeu_ps(op, y);
            }
        }
    }
}

/// The mask of the first `min(left, 16)` lanes (0 for `left <= 0`).
#[inline]
fn lanes_below(left: isize) -> __mmask16 {
    if left >= 16 {
        0xFFFF
    } else if left <= 0 {
        0
    } else {
        (1u16 << left) - 1
    }
}

/// A path of this module's design (the fused `Q K^T` + softmax of [`qk_softmax`], bf16 weights and
/// values for [`pv`]) with the Q and key layouts and tile readers of `S` ([`Fused`]), as an
/// [`AttnKernel`]: the bf16 path ([`Bf16`]) and the integer `Q K^T` of `attention_i8`.
pub(crate) struct FusedPath<S>(PhantomData<S>);

impl<S: Fused> AttnKernel for FusedPath<S> {
    type E = u16;
    const ROWS: usize = R;
    /// Scores in log2 units: Q is scaled by `log2 e`, the weights are powers of 2.
    const M_UNIT: f32 = std::f32::consts::LN_2;
    /// Twice the default: halves the per-block tile conversions.
    const BLOCK_ROWS: usize = 128;
    const TILE_I8: Option<ReadI8<u16>> = S::TILE_I8;
    const TILE_BF16: Option<ReadBf16<u16>> = S::TILE_BF16;

    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [u16]) {
        // SAFETY: the CPU features (the trait's contract).
        unsafe { S::load_q(src, scale * std::f32::consts::LOG2_E, r, qb) }
    }

    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [u16],
        vbuf: &'a mut [u16],
    ) -> (&'a [u16], &'a [u16]) {
        // SAFETY: as above.
        unsafe { S::tile(t, nk, d, kbuf, vbuf) }
    }

    /// Fused: the scores of a micro-tile go from the accumulators to the weights without
    /// leaving the registers.
    unsafe fn qk_softmax(
        q: &[u16],
        rows: usize,
        real: usize,
        d: usize,
        kt: &[u16],
        nk: usize,
        mask: Mask,
        _s: &mut [f32],
        st: &mut Stats<'_>,
        p: &mut [u16],
    ) {
        // SAFETY: as above; the shapes are asserted.
        unsafe { qk_softmax::<S>(q, rows, real, d, kt, nk, mask, st, p) }
    }

    unsafe fn pv(
        p: &[u16],
        rows: usize,
        nk: usize,
        mask: Mask,
        v: &[u16],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    ) {
        // SAFETY: as above.
        unsafe { pv(p, rows, nk, mask, v, d, corr, o) }
    }
}

/// [`AttnKernel::TILE_I8`]: an int8 tile converted to the bf16 layouts in one pass.
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16 (shapes are asserted).
unsafe fn tile_i8<'a>(
    t: I8Tile<'a>,
    nk: usize,
    d: usize,
    kbuf: &'a mut [u16],
    vbuf: &'a mut [u16],
) -> (&'a [u16], &'a [u16]) {
    assert!(nk <= KV_TILE);
    // SAFETY: the CPU features (the caller's contract); the functions assert the shapes.
    unsafe {
        conv_k_i8(t.kt, t.ks, d, nk, kbuf);
        conv_v_i8(t.v, t.vs, nk, d, vbuf);
    }
    bf16_tile(nk, d, kbuf, vbuf)
}

/// [`AttnKernel::TILE_BF16`]: a tile of the bf16 cache, stored as `qk_softmax` and `pv` read it
/// (no conversion).
fn tile_bf16(t: Bf16Tile<'_>, nk: usize, d: usize) -> (&[u16], &[u16]) {
    assert!(nk <= KV_TILE);
    bf16_tile(nk, d, t.kt, t.v)
}

/// The key tile (`[d / 2][64][2]`) and the value pairs of `nk` keys (`[nk.div_ceil(2)][d][2]`)
/// at the start of `kt` and `v`.
fn bf16_tile<'a>(nk: usize, d: usize, kt: &'a [u16], v: &'a [u16]) -> (&'a [u16], &'a [u16]) {
    (&kt[..KV_TILE * d], &v[..nk.next_multiple_of(2) * d])
}

/// [`AttnKernel::load_q`]: row `r` of the block, `bf16(src * scale)`.
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16 (shapes are asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [u16]) {
    let d = src.len();
    assert!(d.is_multiple_of(16) && qb.len() >= (r + 1) * d);
    let s = _mm512_set1_ps(scale);
    for c in (0..d).step_by(16) {
        // SAFETY: c + 16 <= d in `src` and in row r of `qb`; the CPU features (the trait's
        // contract); `__m256bh` and `__m256i` are both 32 bytes of plain SIMD data.
        unsafe {
            let x = _mm512_mul_ps(_mm512_loadu_ps(src.as_ptr().add(c)), s);
            let h = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(x));
            _mm256_storeu_si256(qb.as_mut_ptr().add(r * d + c) as *mut __m256i, h);
        }
    }
}

/// How far (log2 units) a visible score may exceed a row's running maximum before the maximum
/// moves (see [`qk_softmax_tile`]): weights up to about `2^8`, far inside bf16's and f32's range
/// (a row's sum stays below `2^8` times its keys).
const LAZY_MAX: f32 = 8.0;

/// Coefficients of `2^r - 1 ~ r (C1 + r (C2 + r C3))` on `|r| <= 1/2`, fitted for the least
/// maximum relative error of `2^r` (1.02e-4, 1/38 of bf16's rounding step 2^-8; exactly 1 at
/// `r = 0`), as in the aarch64 fp16 path.
const C1: f32 = 0.693_282_9;
const C2: f32 = 0.242_210_37;
const C3: f32 = 0.055_008_58;

/// `2^y` on the lanes of `k` (0 on the others) for finite `y <= 0`: `y = n + r` (`n` nearest
/// integer), `2^n (1 + q(r))` with `vscalefps` (which underflows gracefully to 0).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp2_lanes(k: __mmask16, y: __m512) -> __m512 {
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
    let r = _mm512_sub_ps(y, n);
    let q = _mm512_fmadd_ps(r, _mm512_set1_ps(C3), _mm512_set1_ps(C2));
    let q = _mm512_fmadd_ps(r, q, _mm512_set1_ps(C1));
    let e = _mm512_fmadd_ps(r, q, _mm512_set1_ps(1.0));
    _mm512_maskz_scalef_ps(k, e, n)
}

/// Lanes `i < 4` (and the same in every 128-bit lane) = `op` over the 16 lanes of `v[i]` (a
/// transposing reduction: 8 shuffles and 5 ops for 4 vectors).
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce4(v: &[__m512; R], op: impl Fn(__m512, __m512) -> __m512) -> __m512 {
    // Per 128-bit lane: [a0 op a2, b0 op b2, a1 op a3, b1 op b3], the same for c, d.
    let t0 = op(
        _mm512_unpacklo_ps(v[0], v[1]),
        _mm512_unpackhi_ps(v[0], v[1]),
    );
    let t1 = op(
        _mm512_unpacklo_ps(v[2], v[3]),
        _mm512_unpackhi_ps(v[2], v[3]),
    );
    let (c, d) = (_mm512_castps_pd(t0), _mm512_castps_pd(t1));
    // Per 128-bit lane: [a, b, c, d] over that lane's 4 values; then across the lanes.
    let u = op(
        _mm512_castpd_ps(_mm512_unpacklo_pd(c, d)),
        _mm512_castpd_ps(_mm512_unpackhi_pd(c, d)),
    );
    let u = op(u, _mm512_shuffle_f32x4::<0b01_00_11_10>(u, u));
    op(u, _mm512_shuffle_f32x4::<0b10_11_00_01>(u, u))
}

/// What a path of [`FusedPath`] brings: its Q and key layouts (this module's bf16 ones, or the
/// int8 ones of `attention_i8`), the readers of stored tiles into them, and the scores of a
/// micro-tile for the fused `Q K^T` and softmax ([`qk_softmax`]), in f32 and log2 units. The
/// `unsafe fn`s require AVX-512F/BW, AVX512_BF16 and AVX512_VNNI (the `Avx512Vnni` tier on a CPU
/// with AVX512_BF16, where the tier's selection hands these paths out).
pub(super) trait Fused {
    /// [`AttnKernel::TILE_I8`].
    const TILE_I8: Option<ReadI8<u16>>;
    /// [`AttnKernel::TILE_BF16`].
    const TILE_BF16: Option<ReadBf16<u16>> = None;
    /// [`AttnKernel::load_q`], `scale` already times `log2 e`.
    ///
    /// # Safety
    /// The CPU features above.
    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [u16]);
    /// [`AttnKernel::tile`].
    ///
    /// # Safety
    /// The CPU features above.
    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [u16],
        vbuf: &'a mut [u16],
    ) -> (&'a [u16], &'a [u16]);
    /// Length (in u16) of the key tile the path hands `qk_softmax` for head dimension `d`.
    fn kt_len(d: usize) -> usize;
    /// The scores of rows `r0..r0 + R` of the Q buffer `q` (`d` u16 per row, in the path's
    /// layout) against the first `16 W` keys of the key tile `kt`.
    ///
    /// # Safety
    /// The CPU features above; `q` holds `(r0 + R) d` u16, `kt` `kt_len(d)`, `W <= 4`.
    unsafe fn scores<const W: usize>(
        q: &[u16],
        r0: usize,
        d: usize,
        kt: &[u16],
    ) -> [[__m512; W]; R];
}

impl Fused for Bf16 {
    /// Int8 tiles go to bf16 in one pass (`q * scale` in f32, then rounded to bf16: the same
    /// values as the driver's f32 dequantization followed by the f32 conversion).
    const TILE_I8: Option<ReadI8<u16>> = Some(tile_i8);
    /// The bf16 cache of this path's tier is stored in the layouts `qk_softmax` and `pv` read.
    const TILE_BF16: Option<ReadBf16<u16>> = Some(tile_bf16);

    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [u16]) {
        // SAFETY: the CPU features (the trait's contract).
        unsafe { load_q(src, scale, r, qb) }
    }

    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [u16],
        vbuf: &'a mut [u16],
    ) -> (&'a [u16], &'a [u16]) {
        assert!(nk <= KV_TILE);
        // SAFETY: the CPU features (the trait's contract); the functions assert the shapes.
        unsafe {
            match t {
                Tile::F16 { kt, v } => {
                    conv_k(kt, d, nk, kbuf);
                    conv_v(v, nk, d, vbuf);
                }
                Tile::F32 { kt, v } => {
                    conv_k(kt, d, nk, kbuf);
                    conv_v(v, nk, d, vbuf);
                }
            }
        }
        bf16_tile(nk, d, kbuf, vbuf)
    }

    fn kt_len(d: usize) -> usize {
        d * KV_TILE
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx512vnni")]
    unsafe fn scores<const W: usize>(
        q: &[u16],
        r0: usize,
        d: usize,
        kt: &[u16],
    ) -> [[__m512; W]; R] {
        // SAFETY: rows r0..r0 + R of q (d values each); kt is d/2 pairs of 64 columns, W <= 4
        // (the caller's contract).
        unsafe {
            dot_pairs::<W>(
                q.as_ptr().add(r0 * d),
                d,
                kt.as_ptr(),
                2 * KV_TILE,
                d / 2,
                false,
            )
        }
    }
}

/// [`AttnKernel::qk_softmax`]: per micro-tile of `R` rows, `Q K^T` into 16 accumulators, then
/// the online-softmax step on them in registers (masked row maxima and sums by [`reduce4`],
/// weights `2^(s - m')` rounded to bf16 into `p`). On the causal diagonal a micro-tile computes
/// only the 16-key groups its rows see (the rest of their weights is written as zeros).
///
/// # Safety
/// AVX-512F/BW, AVX512_BF16 and AVX512_VNNI (shapes are asserted).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx512vnni")]
pub(super) unsafe fn qk_softmax<S: Fused>(
    q: &[u16],
    rows: usize,
    real: usize,
    d: usize,
    kt: &[u16],
    nk: usize,
    mask: Mask,
    st: &mut Stats<'_>,
    p: &mut [u16],
) {
    assert!(nk <= KV_TILE && d.is_multiple_of(16) && rows.is_multiple_of(R));
    assert!(real <= rows && rows < real + R);
    assert!(q.len() >= rows * d && kt.len() >= S::kt_len(d) && p.len() >= rows * KV_TILE);
    assert!(st.m.len() >= real && st.l.len() >= real && st.corr.len() >= real);
    // Row r is query position r / group, kept without divisions.
    let (mut pos, mut head) = (0usize, 0usize);
    for r0 in (0..real).step_by(R) {
        let n = (real - r0).min(R);
        // The keys each row sees (none for padding rows).
        let vis: [usize; R] = std::array::from_fn(|i| {
            // Position pos + (head + i) / group: one step at most for group >= R.
            let at = if mask.group >= R {
                pos + usize::from(head + i >= mask.group)
            } else {
                pos + (head + i) / mask.group
            };
            let v = (mask.first + at as isize).clamp(0, nk as isize) as usize;
            if i < n {
                v
            } else {
                0
            }
        });
        head += R;
        while head >= mask.group {
            head -= mask.group;
            pos += 1;
        }
        // Visible keys grow with the row: the micro-tile's last row sees the most.
        let w = vis[n - 1].div_ceil(16);
        // SAFETY: rows r0..r0 + R < rows of q and p, r0 + n <= real of the statistics; the
        // CPU features (the caller's contract).
        unsafe {
            match w {
                4 if n == R && vis[0] == KV_TILE => {
                    qk_softmax_tile::<S, 4, true>(q, r0, n, d, kt, &vis, st, p)
                }
                4 => qk_softmax_tile::<S, 4, false>(q, r0, n, d, kt, &vis, st, p),
                3 => qk_softmax_tile::<S, 3, false>(q, r0, n, d, kt, &vis, st, p),
                2 => qk_softmax_tile::<S, 2, false>(q, r0, n, d, kt, &vis, st, p),
                1 => qk_softmax_tile::<S, 1, false>(q, r0, n, d, kt, &vis, st, p),
                _ => qk_softmax_tile::<S, 0, false>(q, r0, n, d, kt, &vis, st, p),
            }
        }
    }
}

/// [`qk_softmax`] for the micro-tile of rows `r0..r0 + n` (`n <= R` real rows, `R` rows of Q),
/// the first `16 W` keys of the tile (the rows see none past them), row `i` seeing `vis[i]` keys
/// (`FULL`: all `R` rows see all 64).
///
/// # Safety
/// AVX-512F/BW, AVX512_BF16 and AVX512_VNNI; the shapes checked by [`qk_softmax`].
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx512vnni")]
unsafe fn qk_softmax_tile<S: Fused, const W: usize, const FULL: bool>(
    q: &[u16],
    r0: usize,
    n: usize,
    d: usize,
    kt: &[u16],
    vis: &[usize; R],
    st: &mut Stats<'_>,
    p: &mut [u16],
) {
    let neg = _mm512_set1_ps(f32::NEG_INFINITY);
    // SAFETY: rows r0..r0 + R of q, the key tile (checked by `qk_softmax`), W <= 4.
    let acc = unsafe { S::scores::<W>(q, r0, d, kt) };
    // The lane masks of each row's visible keys (none for padding rows).
    let km: [[__mmask16; W]; R] = std::array::from_fn(|i| {
        let b = match vis[i] {
            _ if FULL => u64::MAX,
            64.. => u64::MAX,
            v => (1u64 << v) - 1,
        };
        std::array::from_fn(|c| (b >> (16 * c)) as u16)
    });
    let k = lanes_below(n as isize);
    // SAFETY: lanes below n of rows r0.. of the statistics (r0 + n <= real).
    let mo = unsafe { _mm512_mask_loadu_ps(neg, k, st.m.as_ptr().add(r0)) };
    // The scores relative to the row's running maximum.
    let rel = |m: __m512| -> [[__m512; W]; R] {
        std::array::from_fn(|i| {
            let mv = _mm512_permutexvar_ps(_mm512_set1_epi32(i as i32), m);
            std::array::from_fn(|c| _mm512_sub_ps(acc[i][c], mv))
        })
    };
    let mut y = rel(mo);
    // Lazy maximum: the running maximum moves only when a visible score exceeds it by more than
    // `LAZY_MAX` (the weights stay below about 2^LAZY_MAX), so that the weights of most tiles
    // need no reduction first (and their `corr` is 1). A row's first visible score always moves
    // it (from -inf).
    let mut top = neg;
    for (yi, ki) in y.iter().zip(&km) {
        for (&x, &kc) in yi.iter().zip(ki) {
            top = _mm512_mask_max_ps(top, kc, top, x);
        }
    }
    let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(top, _mm512_set1_ps(LAZY_MAX)) != 0;
    let mn = if over {
        let part: [__m512; R] = std::array::from_fn(|i| {
            let mut m = neg;
            for c in 0..W {
                m = _mm512_mask_max_ps(m, km[i][c], m, acc[i][c]);
            }
            m
        });
        let mn = _mm512_max_ps(mo, reduce4(&part, |a, b| _mm512_max_ps(a, b)));
        y = rel(mn);
        mn
    } else {
        mo
    };
    let pp = p.as_mut_ptr();
    let mut sums = [_mm512_setzero_ps(); R];
    for (i, sum) in sums.iter_mut().enumerate().take(n) {
        // Exactly 0 for the masked keys (and every key of a row that sees none).
        let e: [__m512; W] = std::array::from_fn(|c| exp2_lanes(km[i][c], y[i][c]));
        for &x in &e {
            *sum = _mm512_add_ps(*sum, x);
        }
        // The weights of row r0 + i, then zeros up to 64 (the keys past 16 W, unseen).
        // SAFETY: 64 u16 of row r0 + i < rows of `p`; `__m512bh`/`__m512i` as above.
        unsafe {
            let row = pp.add((r0 + i) * KV_TILE);
            for c in (0..W).step_by(2) {
                let hi = if c + 1 < W {
                    e[c + 1]
                } else {
                    _mm512_setzero_ps()
                };
                let x = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, e[c]));
                _mm512_storeu_si512(row.add(16 * c) as *mut _, x);
            }
            for c in (W.next_multiple_of(2)..4).step_by(2) {
                _mm512_storeu_si512(row.add(16 * c) as *mut _, _mm512_setzero_si512());
            }
        }
    }
    let sums = reduce4(&sums, |a, b| _mm512_add_ps(a, b));
    // corr = 2^(m - m'), exactly 1 where the maximum stays (also -inf = -inf), 0 from -inf.
    let same = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(mo, mn);
    let from = _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(mo, neg);
    let corr = _mm512_mask_blend_ps(
        same,
        exp2_lanes(from, _mm512_sub_ps(mo, mn)),
        _mm512_set1_ps(1.0),
    );
    // SAFETY: as for `mo`.
    unsafe {
        let l = _mm512_maskz_loadu_ps(k, st.l.as_ptr().add(r0));
        let l = _mm512_fmadd_ps(l, corr, sums);
        _mm512_mask_storeu_ps(st.l.as_mut_ptr().add(r0), k, l);
        _mm512_mask_storeu_ps(st.m.as_mut_ptr().add(r0), k, mn);
        _mm512_mask_storeu_ps(st.corr.as_mut_ptr().add(r0), k, corr);
    }
}

/// [`AttnKernel::pv`] on the bf16 layouts.
///
/// # Safety
/// AVX-512F/BW and AVX512_BF16 (shapes are asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn pv(
    p: &[u16],
    rows: usize,
    nk: usize,
    mask: Mask,
    v: &[u16],
    d: usize,
    corr: &[f32],
    o: &mut [f32],
) {
    assert!(nk <= KV_TILE && d.is_multiple_of(16) && rows.is_multiple_of(R));
    assert!(p.len() >= rows * KV_TILE && v.len() >= nk.next_multiple_of(2) * d);
    assert!(corr.len() >= rows && o.len() >= rows * d);
    for r0 in (0..rows).step_by(R) {
        // The pairs of keys the micro-tile's rows see (the last row sees the most; padding rows,
        // whose weights are zero, at least as many as the real ones).
        let n = mask.valid(r0 + R - 1, nk).div_ceil(2);
        if n == 0 {
            // Zero weights and corr = 1 (rows that see none of the tile): nothing changes.
            continue;
        }
        let (pr, c, or) = (
            p[r0 * KV_TILE..].as_ptr(),
            corr[r0..].as_ptr(),
            o[r0 * d..].as_mut_ptr(),
        );
        let mut c0 = 0;
        // SAFETY (all calls): rows r0..r0 + R, columns c0..c0 + 16 W <= d; the CPU features.
        while c0 + 64 <= d {
            unsafe { pv_cols::<4>(pr, n, nk, v.as_ptr(), d, c0, c, or) };
            c0 += 64;
        }
        match (d - c0) / 16 {
            3 => unsafe { pv_cols::<3>(pr, n, nk, v.as_ptr(), d, c0, c, or) },
            2 => unsafe { pv_cols::<2>(pr, n, nk, v.as_ptr(), d, c0, c, or) },
            1 => unsafe { pv_cols::<1>(pr, n, nk, v.as_ptr(), d, c0, c, or) },
            _ => {}
        }
    }
}
