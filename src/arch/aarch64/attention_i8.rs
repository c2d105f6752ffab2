//! Integer attention over the int8 KV cache (`KvDtype::I8`) at the `NeonDot` (SDOT) and
//! `NeonI8mm` (SMMLA) tiers: `Q K^T` and `P V` as int8 products with int32 sums, read from the
//! cache as stored (no conversion pass), the softmax statistics and the output in f32.
//!
//! * **One product shape** for both: `C (2 rows x 2 columns, int32) += A (2 rows x 8) B (2
//!   columns x 8)^T`, SMMLA's shape. On `NeonDot` it is two SDOTs (vector form) of the 16 bytes of
//!   `B` with each row's 8 bytes of `A` duplicated, and one ADDP at the end ([`Mm`]): the same
//!   MACs per instruction as SDOT by element, half of SMMLA's. Micro-tiles: `Q K^T` 2 row pairs
//!   x 4 key pairs, `P V` 4 (SMMLA) or 2 (SDOT) row pairs x 4 dimension pairs. The grouped int8
//!   cache of these tiers serves both (`Stored::I8`): keys `[d / 8][64][8]` per tile (two keys x
//!   8 dimensions per 16 bytes), values `[d][8]` per group of 8 positions (two dimensions x 8
//!   positions per 16 bytes). A driver step covers 256 keys (4 cache tiles).
//! * **Q** (times `scale * log2 e`: the weights are powers of 2) is quantized per row to int8
//!   (`qs = max|q| / 127`, round to nearest), packed as `[row pair][d / 8][2][8]`. A score is
//!   `qs_r * sum_b ks_jb * sum_{i in block b} q_ri k_ji` (`ks_jb` the key's scale of block `b`):
//!   the int32 sums run on over the blocks (`I_b`: the sum up to block `b`), and one SCVTF and
//!   one FMUL / FMLA per block and 4 scores by the scale differences `ks_jb - ks_j(b+1)` (laid out
//!   per step, [`key_scales`]) sum to the same (telescoping); `qs_r` is applied by the softmax
//!   (in the FMA that forms the exp2 argument). The scores are stored as computed, `(r0 k, r0 k',
//!   r1 k, r1 k')` per row pair and key pair (no unzipping).
//! * **Softmax** per row pair (on the scores' layout), in log2 units: step maximum `mt`, running
//!   maximum `m' = max(m, mt)`, weights `pt_j = 2^(s_j - mt)` relative to the step maximum (so the
//!   largest is exactly 1) with the fp16 path's cheap `exp2` without its clamp (relative error
//!   below 1.1e-4 down to 2^-126; smaller weights are 0 or below 1.2e-38, all of which quantize
//!   to 0), `l = l 2^(m - m') + 2^(mt - m') sum_j pt_j`. The groups of 8 keys both rows see run
//!   without the mask (two groups per iteration).
//! * **P V in int8**: the weight of key `j` for value block `b` is `pt_j vs_jb`; it is quantized
//!   per row and step to the full 8 bits, `x_jb = round(pt_j w_jb)` in `[0, 255]` with `w_jb =
//!   255 vs_jb / max_j vs_jb` (shared by the rows of the block, in the scores' layout, so the
//!   per-row work is one FMUL, one FCVTNS and narrowing per 4 keys and value block: per row pair
//!   and 8 keys 4 FMUL, 4 FCVTNS, 2 UZP1, one TBL that puts each row's keys together, one EOR
//!   0x80, one 16-byte store). `NeonI8mm` stores the bytes `x_jb` and multiplies them as unsigned
//!   (USMMLA); `NeonDot` stores the int8 `P'_jb = x_jb - 128` (EOR 0x80); `sum_j x_jb v_ji =
//!   sum_j P'_jb v_ji + 128 sum_j v_ji`, the column sums of the step's values computed once per
//!   step and block of rows (one product per 16 value bytes with a `A` of ones). Keys a row does not
//!   see get `x = 0`. The output gets `o = o 2^(m - m') + 2^(mt - m') (max_j vs_jb / 255) sum_j
//!   x_jb v_ji`. `P'` is packed as `[block][row pair][key group of 8][2][8]`.
//! * **f16 softmax** (CPUs with FEAT_FP16, [`groups_f16`]; the f32 softmax above is the fallback,
//!   and runs with `QKERN_ATTN_I8_F16=0`): the weights end as 8-bit integers, so from the
//!   argument on the group's arithmetic runs on 8 f16 lanes. Per row pair and 8 keys: `y = s q -
//!   mt` in f32 (4 FMLA), narrowed (FCVTN / FCVTN2: 2 vectors of 8), `2^y` in f16 ([`exp2_h`]:
//!   11 instructions per 8 lanes; FMAXNM at -16 first, so the -inf / NaN of masked keys give
//!   exactly 0 without a mask, and weights below 2^-14.5 are 0), UZP1 / UZP2 to put each row's 8
//!   keys together, then per value block one FMUL by the f16 factors `w_jb` (`[group][block][8]`,
//!   built per step with FCVTN and UZP), FCVTNU, one UZP1 of both rows' low bytes, (EOR 0x80,)
//!   the store. The sum adds each lane's 4 weights of two groups in f16, then widens (FCVTL /
//!   FCVTL2) into the f32 sum.
//!
//! * **asm at d = 64** (`NeonI8mm`): the `Q K^T` tile loop ([`qk_tiles_i8mm_d64`]), `P V`'s key-group
//!   loop ([`pv_groups_i8mm_d64`]) and the f16 softmax's four-group loop ([`groups_f16`]) are
//!   inline asm with every register named (LD1 of 4 registers, loads post-indexed by a register:
//!   what the compiler does not emit), running the same instructions on the same values as the
//!   intrinsics that `NeonDot` and the other head sizes run: the same bits
//!   (`tests/attention.rs`: `int8_tiers_bit_identical`). The step maxima are an asm loop at both
//!   tiers.
//!
//! Accuracy: see `docs/KERNELS.md` ("Integer attention (aarch64)") and `tests/attention.rs`.

use super::attention_fp16::{exp2_biased, exp2_biased_unclamped, narrow8, BIAS};
use crate::contract::attention::{AttnPath, Mask, Problem, Stored, KV_TILE};
use crate::drivers::attention::{block_path, grow, Block, Scratch};
use std::arch::aarch64::*;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Range;

/// The path of the `NeonDot` tier over an int8 cache.
pub(crate) static DOT_I8_PATH: AttnPath = block_path::<I8Attn<Dot>>(Some("neondot-i8-sdot"));
/// The path of the `NeonI8mm` tier over an int8 cache.
pub(crate) static MMLA_I8_PATH: AttnPath = block_path::<I8Attn<Mmla>>(Some("neoni8mm-i8-smmla"));

/// A block's rows are padded to a multiple of 8 (4 row pairs: the `P V` micro-tile of SMMLA).
const R: usize = 8;
/// Keys per step: four cache tiles (the f32 epilogues and the per-row softmax bookkeeping run
/// once per 256 keys; the int32 sums of `P V` stay below 2^23 (`255 * 127 * 256` with the unsigned
/// weights of USMMLA), exact in f32).
const KEYS: usize = 4 * KV_TILE;
// The split decode starts its chunks at multiples of KV_CHUNK: each must start a step.
const _: () = assert!(crate::drivers::attention::KV_CHUNK.is_multiple_of(KEYS));

/// An asm `P V` loop over 4 key groups per iteration ([`Mm::PV_GROUPS4`]).
///
/// # Safety
/// As [`pv_groups_i8mm_d64`].
type PvGroups4<Acc> = unsafe fn(&mut [[Acc; 4]; 4], *const i8, *const i8, *const i8, usize);

/// The `2 x 2` int8 product of one ISA: `acc += A B^T`, `A` two rows of 8 bytes (16 contiguous
/// bytes: row 0's then row 1's), `B` two columns of 8 bytes (one vector). The result lanes are
/// `(r0 c0, r0 c1, r1 c0, r1 c1)`. The functions use the ISA's instruction: they must be inlined
/// into a function compiled with its feature (FEAT_DotProd resp. FEAT_I8MM), which is only run
/// on a CPU that has it.
trait Mm {
    type A: Copy;
    type Acc: Copy;
    fn zero() -> Self::Acc;
    /// # Safety
    /// `p` points to 16 readable bytes.
    unsafe fn load_a(p: *const i8) -> Self::A;
    /// # Safety
    /// The CPU has the ISA's feature and the caller is compiled with it.
    unsafe fn mm(acc: Self::Acc, a: Self::A, b: int8x16_t) -> Self::Acc;
    /// Whether the weights of `P V` are stored as the int8 `x - 128` (and `P V` adds `128 sum_j
    /// v_j`); else as the bytes `x` (unsigned), for [`Mm::mm_pv`].
    const P_SIGNED: bool;
    /// Whether the ISA is SMMLA's (FEAT_I8MM): at `d = 64` `Q K^T` then runs
    /// [`qk_tiles_i8mm_d64`] and the f16 softmax its asm loop.
    const SMMLA: bool;
    /// The product of `P V`: [`Mm::mm`], or with `A` unsigned when not [`Mm::P_SIGNED`].
    ///
    /// # Safety
    /// As [`Mm::mm`].
    unsafe fn mm_pv(acc: Self::Acc, a: Self::A, b: int8x16_t) -> Self::Acc;
    fn finish(acc: Self::Acc) -> int32x4_t;
    /// The ISA's asm `P V` loop at `d = 64`, where it has one ([`pv_groups_i8mm_d64`] for SMMLA):
    /// `acc` (4 row pairs x 4 dimension pairs) += the first `4 n` key groups.
    const PV_GROUPS4: Option<PvGroups4<Self::Acc>>;
    /// [`qk_step`] compiled with the ISA's feature.
    ///
    /// # Safety
    /// The CPU has the ISA's feature.
    #[allow(clippy::too_many_arguments)]
    unsafe fn qk(qa: &[i8], rows: usize, d: usize, kt: &[i8], kd: &[f32], nk: usize, s: &mut [f32]);
    /// [`pv_step`] compiled with the ISA's feature.
    ///
    /// # Safety
    /// The CPU has the ISA's feature.
    #[allow(clippy::too_many_arguments)]
    unsafe fn pv(
        pa: &[i8],
        ps: &[f32],
        rows: usize,
        v: &[i8],
        ng: usize,
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    );
}

/// The per-ISA entry points of [`Mm::qk`] and [`Mm::pv`]: `$qk`, `$pv` compiled with `$feat`,
/// `P V` with `$pairs` row pairs per micro-tile.
macro_rules! entry_points {
    ($isa:ty, $feat:literal, $qk:ident, $pv:ident, $pairs:literal) => {
        /// # Safety
        /// The CPU has the feature; shapes are asserted by [`qk_step`].
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $qk(
            qa: &[i8],
            rows: usize,
            d: usize,
            kt: &[i8],
            kd: &[f32],
            nk: usize,
            s: &mut [f32],
        ) {
            // SAFETY: compiled with the feature and (caller) run on a CPU that has it.
            // The common head sizes (64, 128) with the block count known: the blocks unrolled.
            unsafe {
                match d / 32 {
                    2 => qk_step::<$isa, 2>(qa, rows, d, kt, kd, nk, s),
                    4 => qk_step::<$isa, 4>(qa, rows, d, kt, kd, nk, s),
                    _ => qk_step::<$isa, 0>(qa, rows, d, kt, kd, nk, s),
                }
            }
        }

        /// # Safety
        /// The CPU has the feature; shapes are asserted by [`pv_step`].
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $pv(
            pa: &[i8],
            ps: &[f32],
            rows: usize,
            v: &[i8],
            ng: usize,
            d: usize,
            corr: &[f32],
            o: &mut [f32],
        ) {
            // SAFETY: as above.
            // As for Q K^T: the head sizes 64 and 128 with the dimension known (constant
            // offsets between the value groups).
            unsafe {
                match d {
                    64 => pv_step::<$isa, $pairs, 64>(pa, ps, rows, v, ng, d, corr, o),
                    128 => pv_step::<$isa, $pairs, 128>(pa, ps, rows, v, ng, d, corr, o),
                    _ => pv_step::<$isa, $pairs, 0>(pa, ps, rows, v, ng, d, corr, o),
                }
            }
        }
    };
}

entry_points!(Dot, "neon,dotprod", qk_dot, pv_dot, 2);
entry_points!(Mmla, "neon,i8mm", qk_mmla, pv_mmla, 4);

/// Implements [`Mm::qk`] and [`Mm::pv`] by forwarding to the entry points.
macro_rules! forward {
    ($qk:ident, $pv:ident) => {
        unsafe fn qk(
            qa: &[i8],
            rows: usize,
            d: usize,
            kt: &[i8],
            kd: &[f32],
            nk: usize,
            s: &mut [f32],
        ) {
            // SAFETY: the CPU has the feature (the trait's contract).
            unsafe { $qk(qa, rows, d, kt, kd, nk, s) }
        }

        unsafe fn pv(
            pa: &[i8],
            ps: &[f32],
            rows: usize,
            v: &[i8],
            ng: usize,
            d: usize,
            corr: &[f32],
            o: &mut [f32],
        ) {
            // SAFETY: as above.
            unsafe { $pv(pa, ps, rows, v, ng, d, corr, o) }
        }
    };
}

/// SDOT (FEAT_DotProd): per row `acc_r += B . dup(A_r)` gives `(c0 lo, c0 hi, c1 lo, c1 hi)`
/// (the dot products of 4 bytes each); ADDP of the two rows adds the halves.
pub(crate) struct Dot;
/// SMMLA (FEAT_I8MM).
pub(crate) struct Mmla;

impl Mm for Dot {
    type A = (int8x16_t, int8x16_t);
    type Acc = (int32x4_t, int32x4_t);

    #[inline(always)]
    fn zero() -> Self::Acc {
        // SAFETY: NEON is part of every aarch64 target; register-only.
        unsafe { (vdupq_n_s32(0), vdupq_n_s32(0)) }
    }

    #[inline(always)]
    unsafe fn load_a(p: *const i8) -> Self::A {
        // SAFETY: 16 readable bytes (caller); LD1R of 8 bytes has no alignment requirement.
        unsafe {
            (
                vreinterpretq_s8_u64(vld1q_dup_u64(p as *const u64)),
                vreinterpretq_s8_u64(vld1q_dup_u64(p.add(8) as *const u64)),
            )
        }
    }

    #[inline(always)]
    unsafe fn mm(acc: Self::Acc, a: Self::A, b: int8x16_t) -> Self::Acc {
        let (mut c0, mut c1) = acc;
        // SAFETY: SDOT on registers only; FEAT_DotProd is enabled in the calling function and
        // present on the CPU (the caller's contract).
        unsafe {
            std::arch::asm!(
                "sdot {c0:v}.4s, {b:v}.16b, {a0:v}.16b",
                "sdot {c1:v}.4s, {b:v}.16b, {a1:v}.16b",
                c0 = inout(vreg) c0,
                c1 = inout(vreg) c1,
                b = in(vreg) b,
                a0 = in(vreg) a.0,
                a1 = in(vreg) a.1,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        (c0, c1)
    }

    const P_SIGNED: bool = true;
    const SMMLA: bool = false;

    #[inline(always)]
    unsafe fn mm_pv(acc: Self::Acc, a: Self::A, b: int8x16_t) -> Self::Acc {
        // SAFETY: the caller's contract.
        unsafe { Self::mm(acc, a, b) }
    }

    #[inline(always)]
    fn finish(acc: Self::Acc) -> int32x4_t {
        // SAFETY: NEON, register-only.
        unsafe { vpaddq_s32(acc.0, acc.1) }
    }

    const PV_GROUPS4: Option<PvGroups4<Self::Acc>> = None;

    forward!(qk_dot, pv_dot);
}

impl Mm for Mmla {
    type A = int8x16_t;
    type Acc = int32x4_t;

    #[inline(always)]
    fn zero() -> Self::Acc {
        // SAFETY: NEON, register-only.
        unsafe { vdupq_n_s32(0) }
    }

    #[inline(always)]
    unsafe fn load_a(p: *const i8) -> Self::A {
        // SAFETY: 16 readable bytes (caller).
        unsafe { vld1q_s8(p) }
    }

    #[inline(always)]
    unsafe fn mm(mut acc: Self::Acc, a: Self::A, b: int8x16_t) -> Self::Acc {
        // SAFETY: SMMLA on registers only; FEAT_I8MM is enabled in the calling function and
        // present on the CPU (the caller's contract).
        unsafe {
            std::arch::asm!(
                "smmla {c:v}.4s, {a:v}.16b, {b:v}.16b",
                c = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }

    // USMMLA takes the weights' bytes `x` as they are (no EOR, no column sums).
    const P_SIGNED: bool = false;
    const SMMLA: bool = true;

    #[inline(always)]
    unsafe fn mm_pv(mut acc: Self::Acc, a: Self::A, b: int8x16_t) -> Self::Acc {
        // SAFETY: USMMLA (`a` unsigned, `b` signed) on registers only; FEAT_I8MM as for `mm`.
        unsafe {
            std::arch::asm!(
                "usmmla {c:v}.4s, {a:v}.16b, {b:v}.16b",
                c = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }

    #[inline(always)]
    fn finish(acc: Self::Acc) -> int32x4_t {
        acc
    }

    const PV_GROUPS4: Option<PvGroups4<Self::Acc>> = Some(pv_groups_i8mm_d64);

    forward!(qk_mmla, pv_mmla);
}

/// Lane `i < 4` of `v` (a constant after unrolling: a by-element product).
#[inline(always)]
fn lane(v: float32x4_t, i: usize) -> f32 {
    // SAFETY: NEON, register-only.
    unsafe {
        match i {
            0 => vgetq_lane_f32::<0>(v),
            1 => vgetq_lane_f32::<1>(v),
            2 => vgetq_lane_f32::<2>(v),
            _ => vgetq_lane_f32::<3>(v),
        }
    }
}

/// Rows `(r0 c0, r0 c1, r1 c0, r1 c1)` of two column pairs `x`, `y` as row 0's 4 columns and row
/// 1's.
#[inline(always)]
fn unzip_rows(x: float32x4_t, y: float32x4_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi);
    // SAFETY: NEON, register-only. (ZIP1 / ZIP2 written out: the compiler makes ZIP1 a MOV
    // and an INS that overwrites its input, plus a copy of that input for ZIP2.)
    unsafe {
        std::arch::asm!(
            "zip1 {lo:v}.2d, {x:v}.2d, {y:v}.2d",
            "zip2 {hi:v}.2d, {x:v}.2d, {y:v}.2d",
            x = in(vreg) x,
            y = in(vreg) y,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (lo, hi)
}

/// Scores of one step in units of the row's Q scale (the softmax applies it):
/// `s_rj = sum_b ks[b][j] sum_{i in block b} q[r][i] k[j][i]` for rows `r < rows` (a multiple of
/// [`R`]) and keys `j < nk` rounded up to 8, over the `nk.div_ceil(64)` cache tiles of `kt` (`[d /
/// 8][64][8]` each), written as the products leave them: `s[r / 2][j / 2][4]` with `(r0 k, r0 k',
/// r1 k, r1 k')` per row pair and key pair (`2 KEYS` floats per row pair). The key scales come
/// as the differences `kd` of [`key_scales`]: the int32 sums run on over the blocks (no reset),
/// and `s = sum_b kd_b I_b` with `I_b` the sum over the blocks up to `b` (telescoping: `kd_b =
/// ks_b - ks_(b+1)`), one SCVTF and one FMUL / FMLA per block and 4 scores. `NB` is `d / 32`
/// when known at compile time (the block loop unrolled), or 0.
///
/// # Safety
/// The CPU has `M`'s feature and the caller is compiled with it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn qk_step<M: Mm, const NB: usize>(
    qa: &[i8],
    rows: usize,
    d: usize,
    kt: &[i8],
    kd: &[f32],
    nk: usize,
    s: &mut [f32],
) {
    let nb = d / 32;
    assert!(NB == 0 || NB == nb);
    let nb = if NB > 0 { NB } else { nb };
    let tiles = nk.div_ceil(KV_TILE);
    assert!(rows.is_multiple_of(R) && d.is_multiple_of(32) && nk > 0 && nk <= KEYS);
    assert!(qa.len() >= rows * d && kt.len() >= tiles * KV_TILE * d);
    assert!(kd.len() >= tiles * nb * 2 * KV_TILE && s.len() >= rows * KEYS);
    let (qa, sp) = (qa.as_ptr(), s.as_mut_ptr());
    for t in 0..tiles {
        let ng = (nk - t * KV_TILE).min(KV_TILE).div_ceil(8);
        // SAFETY: tile t < tiles of both (asserted lengths).
        let (kt, kd) = unsafe {
            (
                kt.as_ptr().add(t * KV_TILE * d),
                kd.as_ptr().add(t * nb * 2 * KV_TILE),
            )
        };
        for rq in (0..rows).step_by(4) {
            // SAFETY (the whole loop body): row pairs rq / 2, rq / 2 + 1 of the packed Q are
            // `2 d` bytes each, read at dimension groups < d / 8; key group c8 < ng <= 8 of
            // dimension group dg < d / 8 of the tile is 64 bytes at (dg 64 + c8 8) 8; the scale
            // vectors of key group c8 and block b < nb are 16 floats at (c8 nb + b) 16 of the
            // tile's; row pairs rq / 2 + x (x < 2) of s hold 2 KEYS floats, written at 2 (t 64
            // + c8 8) + 16 <= 2 KEYS; the products need M's feature (caller).
            if M::SMMLA && NB == 2 {
                // SAFETY: d = 64 (NB = 2); the reads and writes of the loop below for every
                // c8 < ng (as above): both row pairs' 128 bytes of Q at q, the 8 dimension
                // groups' 64 bytes at kt + 64 c8 + 512 i, the 32 scale differences at kd + 32
                // c8, 16 floats at s0 + 16 c8 and at s1 + 16 c8; FEAT_I8MM (caller, the `SMMLA`
                // ISA).
                unsafe {
                    let s0 = sp.add((rq / 2) * 2 * KEYS + 2 * t * KV_TILE);
                    let s1 = s0.add(2 * KEYS);
                    qk_tiles_i8mm_d64(qa.add(rq * d), kt, kd, s0, s1, ng);
                }
                continue;
            }
            for c8 in 0..ng {
                // SAFETY: as above (qk_block's contract).
                // (No closure around qk_block: a closure does not get the entry point's target
                // feature, and in a debug build it is not inlined.)
                let (q, k) = unsafe { (qa.add(rq * d), kt.add(c8 * 64)) };
                // As computed: row pair rq / 2 + x, key pairs of keys t 64 + c8 8 + 2 kp.
                // The second row pair's 2048 bytes on (beyond STP's reach): its own base.
                // SAFETY: row pair rq / 2 of s, at 2 (t 64 + c8 8) < 2 KEYS (as above).
                let s0 = unsafe { sp.add((rq / 2) * 2 * KEYS + 2 * (t * KV_TILE + c8 * 8)) };
                let s1 = launder(s0.wrapping_add(2 * KEYS)) as *mut f32;
                let mut iacc = [[M::zero(); 4]; 2];
                let (c, ksv) =
                    unsafe { qk_block::<M>(&mut iacc, q, d, k, kd.add(c8 * nb * 16), 0) };
                let mut facc: [[float32x4_t; 4]; 2] = std::array::from_fn(|x| {
                    std::array::from_fn(|kp| unsafe { vmulq_f32(c[x][kp], ksv[kp]) })
                });
                for b in 1..nb {
                    let kdb = unsafe { kd.add((c8 * nb + b) * 16) };
                    let (c, ksv) = unsafe { qk_block::<M>(&mut iacc, q, d, k, kdb, b) };
                    for x in 0..2 {
                        for kp in 0..4 {
                            facc[x][kp] = unsafe { vfmaq_f32(facc[x][kp], c[x][kp], ksv[kp]) };
                        }
                    }
                }
                for (x, f) in facc.iter().enumerate() {
                    unsafe {
                        let d = if x == 0 { s0 } else { s1 };
                        for (kp, &v) in f.iter().enumerate() {
                            vst1q_f32(d.add(4 * kp), v);
                        }
                    }
                }
            }
        }
    }
}

/// One step of the `Q K^T` asm tile: the 4 key registers from `$k0` on loaded (then `{k}`
/// moves on by `{stride}`), 8 SMMLA into v0-v3 (row pair `$qa`) and v4-v7 (row pair `$qb`).
macro_rules! qk_step_i8mm {
    ($k0:literal, $k1:literal, $k2:literal, $k3:literal, $qa:literal, $qb:literal) => {
        concat!(
            "ld1 {{",
            $k0,
            ".16b, ",
            $k1,
            ".16b, ",
            $k2,
            ".16b, ",
            $k3,
            ".16b}}, [{k}], {stride}\n",
            "smmla v0.4s, ",
            $qa,
            ".16b, ",
            $k0,
            ".16b\n",
            "smmla v1.4s, ",
            $qa,
            ".16b, ",
            $k1,
            ".16b\n",
            "smmla v2.4s, ",
            $qa,
            ".16b, ",
            $k2,
            ".16b\n",
            "smmla v3.4s, ",
            $qa,
            ".16b, ",
            $k3,
            ".16b\n",
            "smmla v4.4s, ",
            $qb,
            ".16b, ",
            $k0,
            ".16b\n",
            "smmla v5.4s, ",
            $qb,
            ".16b, ",
            $k1,
            ".16b\n",
            "smmla v6.4s, ",
            $qb,
            ".16b, ",
            $k2,
            ".16b\n",
            "smmla v7.4s, ",
            $qb,
            ".16b, ",
            $k3,
            ".16b\n",
        )
    };
}

/// One block (32 dimensions) of the `Q K^T` asm tile: the row pairs' dimension groups in
/// v8-v11 / v12-v15 against the key group's 4 dimension groups, keys alternating between
/// v16-v19 and v20-v23.
macro_rules! qk_block_i8mm {
    () => {
        concat!(
            qk_step_i8mm!("v16", "v17", "v18", "v19", "v8", "v12"),
            qk_step_i8mm!("v20", "v21", "v22", "v23", "v9", "v13"),
            qk_step_i8mm!("v16", "v17", "v18", "v19", "v10", "v14"),
            qk_step_i8mm!("v20", "v21", "v22", "v23", "v11", "v15"),
        )
    };
}

/// [`qk_step`]'s micro-tiles at `d = 64` with SMMLA as one asm loop over the `n` key groups of
/// a cache tile (the compiler's code kept the two row pairs' Q in registers and on the stack,
/// and loaded each operand with LDP): 2 row pairs x 4 key pairs per group, 8 MOVI, per block of
/// 32 dimensions 2 LD1 (4 registers) of Q, 4 of K (post-indexed by the 512 bytes between
/// dimension groups), 32 SMMLA, one LD1 of the 4 scale-difference vectors, 8 SCVTF and 8 FMUL /
/// FMLA, then 2 ST1 of the 8 score vectors and 5 of loop and pointers: 125 instructions per 8
/// keys and 4 rows. The same operations in the same order as the intrinsics path (running int32
/// sums, `facc = c_0 kd_0`, then `facc += c_1 kd_1`): the same scores.
///
/// # Safety
/// FEAT_I8MM; `n > 0`; `q` points to two packed row pairs of Q at `d = 64` (256 bytes), `k` to
/// a cache tile's keys (64 bytes at `k + 64 g + 512 i`, `g < n`, `i < 8`), `kd` to the tile's
/// scale differences (32 floats per key group, [`key_scales`]), `s0` and `s1` to `16 n`
/// writable floats each (the two row pairs' scores of the groups).
#[target_feature(enable = "neon,i8mm")]
#[inline]
unsafe fn qk_tiles_i8mm_d64(
    q: *const i8,
    k: *const i8,
    kd: *const f32,
    s0: *mut f32,
    s1: *mut f32,
    n: usize,
) {
    assert!(n > 0);
    // SAFETY: the reads and writes of the caller's contract; FEAT_I8MM (caller); every vector
    // register is declared clobbered (the compiler saves v8-v15).
    unsafe {
        std::arch::asm!(
            "2:",
            "mov {q0}, {q}",
            "add {q1}, {q}, #128",
            "movi v0.16b, #0",
            "movi v1.16b, #0",
            "movi v2.16b, #0",
            "movi v3.16b, #0",
            "movi v4.16b, #0",
            "movi v5.16b, #0",
            "movi v6.16b, #0",
            "movi v7.16b, #0",
            "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{q0}], #64",
            "ld1 {{v12.16b, v13.16b, v14.16b, v15.16b}}, [{q1}], #64",
            qk_block_i8mm!(),
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{kd}], #64",
            "scvtf v20.4s, v0.4s",
            "fmul v24.4s, v20.4s, v16.4s",
            "scvtf v21.4s, v1.4s",
            "fmul v25.4s, v21.4s, v17.4s",
            "scvtf v22.4s, v2.4s",
            "fmul v26.4s, v22.4s, v18.4s",
            "scvtf v23.4s, v3.4s",
            "fmul v27.4s, v23.4s, v19.4s",
            "scvtf v20.4s, v4.4s",
            "fmul v28.4s, v20.4s, v16.4s",
            "scvtf v21.4s, v5.4s",
            "fmul v29.4s, v21.4s, v17.4s",
            "scvtf v22.4s, v6.4s",
            "fmul v30.4s, v22.4s, v18.4s",
            "scvtf v23.4s, v7.4s",
            "fmul v31.4s, v23.4s, v19.4s",
            "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{q0}], #64",
            "ld1 {{v12.16b, v13.16b, v14.16b, v15.16b}}, [{q1}], #64",
            qk_block_i8mm!(),
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{kd}], #64",
            "scvtf v0.4s, v0.4s",
            "fmla v24.4s, v0.4s, v16.4s",
            "scvtf v1.4s, v1.4s",
            "fmla v25.4s, v1.4s, v17.4s",
            "scvtf v2.4s, v2.4s",
            "fmla v26.4s, v2.4s, v18.4s",
            "scvtf v3.4s, v3.4s",
            "fmla v27.4s, v3.4s, v19.4s",
            "scvtf v4.4s, v4.4s",
            "fmla v28.4s, v4.4s, v16.4s",
            "scvtf v5.4s, v5.4s",
            "fmla v29.4s, v5.4s, v17.4s",
            "scvtf v6.4s, v6.4s",
            "fmla v30.4s, v6.4s, v18.4s",
            "scvtf v7.4s, v7.4s",
            "fmla v31.4s, v7.4s, v19.4s",
            // The next key group: 64 bytes on from this one's first dimension group.
            "sub {k}, {k}, #4032",
            "st1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{s0}], #64",
            "st1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{s1}], #64",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            q = in(reg) q,
            q0 = out(reg) _,
            q1 = out(reg) _,
            n = inout(reg) n => _,
            k = inout(reg) k => _,
            stride = in(reg) 512usize,
            kd = inout(reg) kd => _,
            s0 = inout(reg) s0 => _,
            s1 = inout(reg) s1 => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack)
        );
    }
}

/// `p` unchanged, through an empty `asm!`: the compiler no longer knows how it relates to other
/// pointers, so it keeps it in its own register (an LDP base for operands beyond the reach of
/// another's offsets).
#[inline(always)]
// The asm touches no memory: the pointer only passes through a register.
#[allow(clippy::pointers_in_nomem_asm_block)]
fn launder<T>(mut p: *const T) -> *const T {
    // SAFETY: an empty asm on a register value.
    unsafe {
        std::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags))
    };
    p
}

/// One block of [`qk_step`]'s micro-tile: block `b`'s products (dimension groups `4 b..4 b + 4`)
/// added to the running sums `iacc` of two row pairs (`q`: the first's packed row, `2 d` bytes
/// each) and 4 key pairs (`kt`: the key group's 8 bytes of dimension group 0 of the tile), then
/// the sums as floats (SCVTF) and the block's 4 scale-difference vectors (`kd`).
///
/// # Safety
/// The reads of [`qk_step`]'s loop body; the CPU has `M`'s feature and the caller is compiled
/// with it.
#[inline(always)]
unsafe fn qk_block<M: Mm>(
    iacc: &mut [[M::Acc; 4]; 2],
    q: *const i8,
    d: usize,
    kt: *const i8,
    kd: *const f32,
    b: usize,
) -> ([[float32x4_t; 4]; 2], [float32x4_t; 4]) {
    // SAFETY: the caller's contract.
    unsafe {
        // Dimension groups 4 b + 2 and 4 b + 3 from a second base (laundered, so the compiler
        // keeps it): their keys lie 1024 bytes on, beyond LDP's reach from the first.
        // (Both laundered: block b's keys lie 2048 b bytes on, also beyond LDP's reach.)
        let k0 = launder(kt.wrapping_add(4 * b * KV_TILE * 8));
        let k2 = launder(kt.add((4 * b + 2) * KV_TILE * 8));
        for i in 0..4 {
            let dg = 4 * b + i;
            let a: [M::A; 2] = std::array::from_fn(|x| M::load_a(q.add(x * 2 * d + dg * 16)));
            let kg = if i < 2 {
                k0.add(i * KV_TILE * 8)
            } else {
                k2.add((i - 2) * KV_TILE * 8)
            };
            let kb: [int8x16_t; 4] = std::array::from_fn(|kp| vld1q_s8(kg.add(2 * kp * 8)));
            for x in 0..2 {
                for kp in 0..4 {
                    iacc[x][kp] = M::mm(iacc[x][kp], a[x], kb[kp]);
                }
            }
        }
        // Scale differences (k, k', k, k') per key pair.
        let ksv: [float32x4_t; 4] = std::array::from_fn(|kp| vld1q_f32(kd.add(4 * kp)));
        let c = std::array::from_fn(|x| {
            std::array::from_fn(|kp| vcvtq_f32_s32(M::finish(iacc[x][kp])))
        });
        (c, ksv)
    }
}

/// The key scales of a step as [`qk_step`] reads them: for tile `t < tiles`, key group `c8 < 8`
/// and block `b < nb`, 4 vectors `(kd_k, kd_k', kd_k, kd_k')` per key pair at `kd + ((t 8 + c8)
/// nb + b) 16` with `kd_b = ks_b - ks_(b+1)` (`ks_nb = 0`); `ks` is the tiles' `[d / 32][64]`.
fn key_scales(ks: &[f32], tiles: usize, nb: usize, kd: &mut [f32]) {
    assert!(ks.len() >= tiles * nb * KV_TILE && kd.len() >= tiles * nb * 2 * KV_TILE);
    let (ks, kd) = (ks.as_ptr(), kd.as_mut_ptr());
    for t in 0..tiles {
        for c8 in 0..8 {
            for b in 0..nb {
                // SAFETY: NEON (every aarch64 target); block b (and b + 1 < nb) of tile t holds
                // 64 scales, read at c8 8..c8 8 + 8; 16 floats written at ((t 8 + c8) nb + b) 16
                // (asserted lengths).
                unsafe {
                    let at =
                        |b: usize, i: usize| vld1q_f32(ks.add((t * nb + b) * KV_TILE + c8 * 8 + i));
                    let (mut k03, mut k47) = (at(b, 0), at(b, 4));
                    if b + 1 < nb {
                        (k03, k47) = (vsubq_f32(k03, at(b + 1, 0)), vsubq_f32(k47, at(b + 1, 4)));
                    }
                    let (k03, k47) = (vreinterpretq_f64_f32(k03), vreinterpretq_f64_f32(k47));
                    let o = kd.add(((t * 8 + c8) * nb + b) * 16);
                    for (i, v) in [
                        vzip1q_f64(k03, k03),
                        vzip2q_f64(k03, k03),
                        vzip1q_f64(k47, k47),
                        vzip2q_f64(k47, k47),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        vst1q_f32(o.add(4 * i), vreinterpretq_f32_f64(v));
                    }
                }
            }
        }
    }
}

/// `o[r][i] = o[r][i] corr[r] + ps[b][r] sum_{j < 8 ng} (P'[b][r][j] + 128) v[j][i]` (`b = i / 32`) for
/// rows `r < rows` (a multiple of [`R`]); `pa` is `[nb][rows / 2][KEYS / 8][2][8]`, `v` the
/// step's groups of 8 positions `[d][8]`, `ps` `[nb][rows]`. `P` row pairs (`M::PV_PAIRS`) x 8
/// dimensions per micro-tile. `D` is `d` when known at compile time, or 0.
///
/// # Safety
/// The CPU has `M`'s feature and the caller is compiled with it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_step<M: Mm, const P: usize, const D: usize>(
    pa: &[i8],
    ps: &[f32],
    rows: usize,
    v: &[i8],
    ng: usize,
    d: usize,
    corr: &[f32],
    o: &mut [f32],
) {
    assert!(D == 0 || D == d);
    let d = if D > 0 { D } else { d };
    let nb = d / 32;
    assert!(rows.is_multiple_of(R) && R.is_multiple_of(2 * P) && d.is_multiple_of(32));
    assert!(ng <= KEYS / 8 && v.len() >= ng * 8 * d);
    assert!(pa.len() >= nb * rows * KEYS && ps.len() >= rows * nb);
    assert!(corr.len() >= rows && o.len() >= rows * d);
    let (pa, ps, vp, c, op) = (
        pa.as_ptr(),
        ps.as_ptr(),
        v.as_ptr(),
        corr.as_ptr(),
        o.as_mut_ptr(),
    );
    // SAFETY (both loops): block b < nb, row pair rq / 2 + x (x < P) of P' is 2 KEYS bytes at
    // (b rows / 2 + rq / 2 + x) 2 KEYS, group jg < ng <= KEYS / 8 at 16 jg; value group jg < ng
    // is 8 d bytes, dimension pair 2 dp of dimension group c8 < d / 8 at (8 c8 + 2 dp) 8; rows
    // rows rq..rq + 2 P of ps (block b: b rows + rq..), corr, o (d floats); M's feature (caller).
    // `A` of ones: the column sums of the values, `(sum v_i, sum v_i+1)` for both rows.
    let ones = unsafe { M::load_a([1i8; 16].as_ptr()) };
    for c8 in 0..d / 8 {
        let b = c8 / 4;
        let mut cacc = [M::zero(); 4];
        for jg in 0..if M::P_SIGNED { ng } else { 0 } {
            for (dp, c) in cacc.iter_mut().enumerate() {
                let vb = unsafe { vld1q_s8(vp.add(jg * 8 * d + (c8 * 8 + 2 * dp) * 8)) };
                *c = unsafe { M::mm(*c, ones, vb) };
            }
        }
        // 128 sum_j v_ji: the weights are stored as x - 128.
        let cs: [int32x4_t; 4] =
            std::array::from_fn(|dp| unsafe { vshlq_n_s32::<7>(M::finish(cacc[dp])) });
        for rq in (0..rows).step_by(2 * P) {
            let pb = unsafe { pa.add((b * rows / 2 + rq / 2) * 2 * KEYS) };
            let mut iacc = [[M::zero(); 4]; P];
            let v8 = unsafe { vp.add(c8 * 64) };
            // Row pairs 2 and 3 from a second base (laundered, so the compiler keeps it: they
            // lie 1024 bytes on, beyond LDP's reach).
            let pb2 = launder(pb.wrapping_add(2 * 2 * KEYS));
            // Four groups per iteration (a row pair's P' of two: 32 contiguous bytes; the
            // loop's counter and pointers once per 32 keys), then the last up to 3.
            // (Written out: a loop of 4 stays a loop.) The values of groups 2 and 3 from a
            // second base (16 d bytes on: beyond LDP's reach at d = 64).
            let groups4 = M::PV_GROUPS4.filter(|_| P == 4 && D == 64 && ng >= 4);
            let asm4 = groups4.is_some();
            if let Some(groups4) = groups4 {
                // SAFETY: d = 64, P = 4 (the cast is the identity); the groups < 4 (ng / 4) <= ng
                // of the four row pairs' P' (at pb, pb + 2 KEYS, pb2, pb2 + 2 KEYS) and of the
                // values (as above); the ISA's feature (caller).
                unsafe {
                    let acc = &mut *(iacc.as_mut_ptr() as *mut [[M::Acc; 4]; 4]);
                    groups4(acc, pb, pb2, v8, ng / 4);
                }
            }
            for jg in (0..if asm4 { 0 } else { ng / 4 }).map(|i| 4 * i) {
                let v2 = launder(v8.wrapping_add(jg * 8 * d + 2 * 8 * d));
                unsafe { pv_group::<M, P>(&mut iacc, [pb, pb2], v8, jg, d) };
                unsafe { pv_group::<M, P>(&mut iacc, [pb, pb2], v8, jg + 1, d) };
                // SAFETY: as above; v2 + 8 d (i - 2) is group jg + i's first pair (i = 2, 3).
                unsafe { pv_group_at::<M, P>(&mut iacc, [pb, pb2], v2, jg + 2, 0, d) };
                // SAFETY: as the previous.
                unsafe { pv_group_at::<M, P>(&mut iacc, [pb, pb2], v2, jg + 3, 1, d) };
            }
            for jg in ng / 4 * 4..ng {
                // SAFETY: as above (group jg < ng).
                unsafe { pv_group::<M, P>(&mut iacc, [pb, pb2], v8, jg, d) };
            }
            // The micro-tile's rows' corr and scales: 2 P floats each (vector loads, then
            // by-element products).
            let ld4 = |p: *const f32, i: usize| {
                if 4 * i < 2 * P {
                    // SAFETY: rows rq + 4 i..rq + 4 i + 4 <= rq + 2 P of the block's row
                    // values at p (corr, or ps + b rows: as above).
                    unsafe { vld1q_f32(p.add(rq + 4 * i)) }
                } else {
                    // SAFETY: NEON, register-only.
                    unsafe { vdupq_n_f32(0.0) }
                }
            };
            let cv = [ld4(c, 0), ld4(c, 1)];
            // SAFETY: block b < nb of ps (rows floats each) (as above).
            let sv = unsafe { [ld4(ps.add(b * rows), 0), ld4(ps.add(b * rows), 1)] };
            for (x, acc) in iacc.iter().enumerate() {
                let r0 = rq + 2 * x;
                let f: [float32x4_t; 4] = std::array::from_fn(|dp| unsafe {
                    let c = M::finish(acc[dp]);
                    vcvtq_f32_s32(if M::P_SIGNED { vaddq_s32(c, cs[dp]) } else { c })
                });
                let (a0, a1) = unzip_rows(f[0], f[1]);
                let (b0, b1) = unzip_rows(f[2], f[3]);
                for (h, lo, hi) in [(0, a0, b0), (1, a1, b1)] {
                    let i = 2 * x + h;
                    let (cr, sr) = (lane(cv[i / 4], i % 4), lane(sv[i / 4], i % 4));
                    unsafe {
                        // Rows 4 to 7 from their own base (beyond LDP's reach at d = 64).
                        let ob = if x < 2 {
                            op
                        } else {
                            launder(op.add(4 * d)) as *mut f32
                        };
                        let o0 = ob.add((r0 - 4 * (x / 2) + h) * d + c8 * 8);
                        vst1q_f32(o0, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(o0), cr), lo, sr));
                        let o1 = o0.add(4);
                        vst1q_f32(o1, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(o1), cr), hi, sr));
                    }
                }
            }
        }
    }
}

/// The `P V` asm loop's weights of one key group: row pairs 0 / 1 (v16-v19, from `{a0}`) and
/// 2 / 3 (v20-v23, from `{a2}`), each pointer moving on by 32 bytes.
macro_rules! pv_loads_i8mm {
    () => {
        concat!(
            "ldp q18, q19, [{a0}, #512]\n",
            "ldp q16, q17, [{a0}], #32\n",
            "ldp q22, q23, [{a2}, #512]\n",
            "ldp q20, q21, [{a2}], #32\n",
        )
    };
}

/// 16 USMMLA of the `P V` asm loop: the 4 row pairs' weights `$p0`..`$p3` against the 4 value
/// registers from `$v0` on (loaded first, `{v}` moving on by `{stride}`), into v0-v15.
macro_rules! pv_mm_i8mm {
    ($p0:literal, $p1:literal, $p2:literal, $p3:literal, $v0:literal, $v1:literal, $v2:literal, $v3:literal) => {
        concat!(
            "ld1 {{",
            $v0,
            ".16b, ",
            $v1,
            ".16b, ",
            $v2,
            ".16b, ",
            $v3,
            ".16b}}, [{v}], {stride}\n",
            pv_mm4_i8mm!("v0", "v1", "v2", "v3", $p0, $v0, $v1, $v2, $v3),
            pv_mm4_i8mm!("v4", "v5", "v6", "v7", $p1, $v0, $v1, $v2, $v3),
            pv_mm4_i8mm!("v8", "v9", "v10", "v11", $p2, $v0, $v1, $v2, $v3),
            pv_mm4_i8mm!("v12", "v13", "v14", "v15", $p3, $v0, $v1, $v2, $v3),
        )
    };
}

/// 4 USMMLA: accumulators `$c0`..`$c3` += weights `$p` x values `$v0`..`$v3`.
macro_rules! pv_mm4_i8mm {
    ($c0:literal, $c1:literal, $c2:literal, $c3:literal, $p:literal, $v0:literal, $v1:literal, $v2:literal, $v3:literal) => {
        concat!(
            "usmmla ", $c0, ".4s, ", $p, ".16b, ", $v0, ".16b\n", "usmmla ", $c1, ".4s, ", $p,
            ".16b, ", $v1, ".16b\n", "usmmla ", $c2, ".4s, ", $p, ".16b, ", $v2, ".16b\n",
            "usmmla ", $c3, ".4s, ", $p, ".16b, ", $v3, ".16b\n",
        )
    };
}

/// One key group of the `P V` asm loop (the weights loaded by `pv_loads_i8mm`): both halves of
/// the group's 8 keys against their values.
macro_rules! pv_keys_i8mm {
    () => {
        concat!(
            pv_mm_i8mm!("v16", "v18", "v20", "v22", "v24", "v25", "v26", "v27"),
            pv_mm_i8mm!("v17", "v19", "v21", "v23", "v28", "v29", "v30", "v31"),
        )
    };
}

/// [`pv_step`]'s inner loop at `d = 64` with USMMLA as one asm block (the compiler's code
/// loaded every operand with LDP and computed the value groups' addresses): `acc` (4 row pairs
/// x 4 dimension pairs, `acc[x][dp]` in v(4 x + dp)) += the key groups `0..4 n`, four per
/// iteration: per two groups 4 LDP of the row pairs' `P'` (two groups each), 2 LD1 (4
/// registers) of the values (post-indexed by the 512 bytes between groups), 32 USMMLA; 78
/// instructions per 4 groups. The same products as [`pv_group`] (int32 sums: exact in any order).
///
/// # Safety
/// FEAT_I8MM; `n > 0`; `pb` and `pb + 512` (row pairs 0 and 1), `pb2` and `pb2 + 512` (2 and 3)
/// point to `64 n` readable bytes of `P'` each, `v + 512 g` to the 64 value bytes of the
/// dimension group in key group `g < 4 n`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
unsafe fn pv_groups_i8mm_d64(
    acc: &mut [[int32x4_t; 4]; 4],
    pb: *const i8,
    pb2: *const i8,
    v: *const i8,
    n: usize,
) {
    assert!(n > 0);
    // SAFETY: the reads of the caller's contract; FEAT_I8MM (caller); the accumulators in
    // v0-v15, v16-v31 declared clobbered.
    unsafe {
        std::arch::asm!(
            "2:",
            pv_loads_i8mm!(),
            pv_keys_i8mm!(),
            pv_loads_i8mm!(),
            "subs {n}, {n}, #1",
            pv_keys_i8mm!(),
            "b.ne 2b",
            a0 = inout(reg) pb => _,
            a2 = inout(reg) pb2 => _,
            v = inout(reg) v => _,
            n = inout(reg) n => _,
            stride = in(reg) 512usize,
            inout("v0") acc[0][0],
            inout("v1") acc[0][1],
            inout("v2") acc[0][2],
            inout("v3") acc[0][3],
            inout("v4") acc[1][0],
            inout("v5") acc[1][1],
            inout("v6") acc[1][2],
            inout("v7") acc[1][3],
            inout("v8") acc[2][0],
            inout("v9") acc[2][1],
            inout("v10") acc[2][2],
            inout("v11") acc[2][3],
            inout("v12") acc[3][0],
            inout("v13") acc[3][1],
            inout("v14") acc[3][2],
            inout("v15") acc[3][3],
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack, readonly)
        );
    }
}

/// One group of 8 keys (`jg`) of [`pv_step`]'s micro-tile: `P` row pairs of `P'` (`pb[0]`: the
/// first's, `2 KEYS` bytes each; `pb[1]` the third's) times 4 dimension pairs of the values (`v8`: the dimension
/// group's first pair in group 0) added to `iacc`.
///
/// # Safety
/// The reads of [`pv_step`]'s loop; the CPU has `M`'s feature and the caller is compiled with it.
#[inline(always)]
unsafe fn pv_group<M: Mm, const P: usize>(
    iacc: &mut [[M::Acc; 4]; P],
    pb: [*const i8; 2],
    v8: *const i8,
    jg: usize,
    d: usize,
) {
    // SAFETY: the caller's contract.
    unsafe { pv_group_at::<M, P>(iacc, pb, v8, jg, jg, d) }
}

/// [`pv_group`] with the values of group `jg` read at `v + 8 d vg` (`vg`: the group's index
/// relative to `v`'s, so that `v` may be a second base).
///
/// # Safety
/// As [`pv_group`], with `v + 8 d vg` the dimension group's first pair in group `jg`.
#[inline(always)]
unsafe fn pv_group_at<M: Mm, const P: usize>(
    iacc: &mut [[M::Acc; 4]; P],
    pb: [*const i8; 2],
    v: *const i8,
    jg: usize,
    vg: usize,
    d: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let a: [M::A; P] =
            std::array::from_fn(|x| M::load_a(pb[x / 2].add((x % 2) * 2 * KEYS + jg * 16)));
        let vb: [int8x16_t; 4] = std::array::from_fn(|dp| vld1q_s8(v.add(vg * 8 * d + 2 * dp * 8)));
        for x in 0..P {
            for dp in 0..4 {
                iacc[x][dp] = M::mm_pv(iacc[x][dp], a[x], vb[dp]);
            }
        }
    }
}

/// The int8 buffers of a block (per thread, grown on first use).
#[derive(Default)]
struct Bufs {
    /// Packed Q `[rows / 2][d / 8][2][8]` and its per-row scales.
    qa: Vec<i8>,
    qs: Vec<f32>,
    /// The step's key scale differences as `Q K^T` reads them ([`key_scales`]).
    kd: Vec<f32>,
    /// Scores `[rows / 2][KEYS / 2][4]` (`Q K^T`'s 2 x 2 products as computed).
    s: Vec<f32>,
    /// Packed P' `[nb][rows / 2][8][2][8]` and its scales `[nb][rows]` (rows padded to [`R`]).
    pa: Vec<i8>,
    ps: Vec<f32>,
    /// `w_jb = 255 vs_jb / max_j vs_jb` of the step (`[KEYS / 8][nb][4][4]`: each key pair twice,
    /// the layout of the scores), and `max_j vs_jb / 255`.
    w: Vec<f32>,
    /// The f16 softmax's factors `[KEYS / 8][nb][8]` (f16 bits; per group of 8 keys and block,
    /// the 8 keys' `w_jb`), and its scratch: `255 / max_j vs_jb` per block, then a zero-padded
    /// last group `[8][nb]`.
    wh: Vec<u16>,
    w32: Vec<f32>,
    vmax: Vec<f32>,
    corr: Vec<f32>,
}

thread_local! {
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Writes row `r` of Q (`src * scale`) into the packed `qa` as int8 with one scale per row.
fn load_q(src: &[f32], scale: f32, r: usize, qa: &mut [i8], qs: &mut [f32]) {
    let d = src.len();
    assert!(d.is_multiple_of(16) && qa.len() >= (r / 2 + 1) * 2 * d && qs.len() > r);
    let sp = src.as_ptr();
    // max |q|, 16 values per iteration with four accumulators. FMAX (not FMAXNM): a NaN in the row
    // makes the scale NaN (an infinity makes it infinite), so the row's scores and output are
    // NaN, as on the float paths, instead of the NaN quantizing to a silent 0.
    // SAFETY: NEON (every aarch64 target); reads src[i..i + 16] for i + 16 <= d.
    let amax = unsafe {
        let mut m = [vdupq_n_f32(0.0); 4];
        for i in (0..d).step_by(16) {
            for (k, m) in m.iter_mut().enumerate() {
                *m = vmaxq_f32(*m, vabsq_f32(vld1q_f32(sp.add(i + 4 * k))));
            }
        }
        vmaxvq_f32(vmaxq_f32(vmaxq_f32(m[0], m[1]), vmaxq_f32(m[2], m[3])))
    } * scale.abs();
    let step = amax / 127.0;
    qs[r] = step;
    let inv = if step > 0.0 { scale / step } else { 0.0 };
    let row = &mut qa[(r / 2) * 2 * d + (r % 2) * 8..];
    let rp = row.as_mut_ptr();
    // Group g (8 values) to its 8 bytes at 16 g of the row pair.
    // SAFETY (callers): 8 g + 8 <= d; the 8 destination bytes lie at 16 g < 2 d of the row pair.
    let group = |g: usize| unsafe {
        let a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(sp.add(8 * g)), inv));
        let b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(sp.add(8 * g + 4)), inv));
        let h = vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)));
        vst1_s8(rp.add(16 * g), h);
    };
    for g in (0..d / 8).step_by(2) {
        group(g);
        group(g + 1);
    }
}

/// The quantized weights `round(e w)` (minus 128 when [`Mm::P_SIGNED`]) of a row pair's 8 keys (`e` the 4 key-pair vectors
/// `(r0 k, r0 k', r1 k, r1 k')`) for the `nb` value blocks: block `b`'s factors (same layout) at
/// `w + 16 b`, its 16 bytes (row 0's 8 keys, then row 1's: the `A` operand of `P V`) written
/// at `dst + b stride`. The products lie in `[0, 255]` (`e <= 1`, `w <= 255`), so the narrowing
/// keeps the low bytes (UZP1, then TBL puts each row's keys together) without saturation, and
/// EOR 0x80 subtracts 128 (signed only).
///
/// # Safety
/// `w` holds `16 nb` readable floats and `dst + b stride` 16 writable bytes for every
/// `b < nb`.
#[inline(always)]
unsafe fn put_pair_weights<M: Mm>(
    e: &[float32x4_t; 4],
    w: *const f32,
    dst: *mut i8,
    nb: usize,
    stride: usize,
) {
    // Low bytes of the 16-bit lanes `(r0 k0, r0 k1, r1 k0, r1 k1, r0 k2, ..)` of two vectors.
    const ROWS: [u8; 16] = [0, 2, 8, 10, 16, 18, 24, 26, 4, 6, 12, 14, 20, 22, 28, 30];
    // SAFETY: NEON; the caller's contract for the pointers.
    unsafe {
        let idx = vld1q_u8(ROWS.as_ptr());
        for b in 0..nb {
            let wb = w.add(16 * b);
            let x: [int16x8_t; 4] = std::array::from_fn(|i| {
                vreinterpretq_s16_s32(vcvtnq_s32_f32(vmulq_f32(e[i], vld1q_f32(wb.add(4 * i)))))
            });
            let h0 = vreinterpretq_u8_s16(vuzp1q_s16(x[0], x[1]));
            let h1 = vreinterpretq_u8_s16(vuzp1q_s16(x[2], x[3]));
            let y = vqtbl2q_u8(uint8x16x2_t(h0, h1), idx);
            vst1q_u8(
                dst.add(b * stride) as *mut u8,
                if M::P_SIGNED {
                    veorq_u8(y, vdupq_n_u8(0x80))
                } else {
                    y
                },
            );
        }
    }
}

/// The cubic of [`exp2_h`] as f16 bits: `C1, C2, C3` (lanes 0 to 2), the fp16 rounding of
/// [`exp2_biased`]'s, moved by a few units in their last place for the least maximum relative
/// error of the whole f16 evaluation (7.1e-4 over every f16 input in `[-14.5, 0]`, with its
/// final rounding; docs/KERNELS.md).
const EXP2_H: [u16; 8] = [0x398c, 0x33c1, 0x2b0b, 0, 0, 0, 0, 0];
/// 15.0 and -16.0 in f16.
const H15: u16 = 0x4b80;
const HM16: u16 = 0xcc00;

/// `2^y` on 8 f16 lanes (FEAT_FP16), for `y <= 0` (any value: NaN and `y < -14.5` give 0): `y =
/// max(y, -16)` (FMAXNM: NaN gives -16), `n` the nearest integer, `r = y - n` (exact), `e =
/// 2^n` from FCVTZU with 10 fraction bits of `n + 15` (0 for `n <= -15`: no subnormals), `2^y = e +
/// e q(r)` with [`EXP2_H`]'s cubic `q(r) = C1 r + r^2 (C2 + C3 r)`, exactly 1 at `y = 0`.
/// `k = (C1, C2, C3, ..)`, `c2`, `h15`, `lo` the broadcast C2, 15 and -16.
///
/// # Safety
/// The CPU has FEAT_FP16 and the caller is compiled with it.
#[inline(always)]
unsafe fn exp2_h(
    y: uint16x8_t,
    k: uint16x8_t,
    c2: uint16x8_t,
    h15: uint16x8_t,
    lo: uint16x8_t,
) -> uint16x8_t {
    let e: uint16x8_t;
    // SAFETY: FEAT_FP16 arithmetic on registers only (the caller's contract).
    unsafe {
        std::arch::asm!(
            "fmaxnm {y:v}.8h, {y:v}.8h, {lo:v}.8h",
            "frintn {e:v}.8h, {y:v}.8h",
            "fsub {y:v}.8h, {y:v}.8h, {e:v}.8h",
            "fadd {e:v}.8h, {e:v}.8h, {h15:v}.8h",
            "fcvtzu {e:v}.8h, {e:v}.8h, #10",
            "fmul {r2:v}.8h, {y:v}.8h, {y:v}.8h",
            "mov {t:v}.16b, {c2:v}.16b",
            "fmla {t:v}.8h, {y:v}.8h, {k:v}.h[2]",
            "fmul {y:v}.8h, {y:v}.8h, {k:v}.h[0]",
            "fmla {y:v}.8h, {r2:v}.8h, {t:v}.8h",
            "fmla {e:v}.8h, {e:v}.8h, {y:v}.8h",
            y = inout(vreg) y => _,
            e = out(vreg) e,
            r2 = out(vreg) _,
            t = out(vreg) _,
            k = in(vreg_low16) k,
            c2 = in(vreg) c2,
            h15 = in(vreg) h15,
            lo = in(vreg) lo,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    e
}

/// One group of 8 keys of the f16 softmax's asm loop: the row pair's 16 scores (`{s}`) scaled
/// and shifted in f32 (`{qv}`, `{mv}`), to f16, `exp2` of both halves into `$e0`, `$e1`
/// (constants in v0-v3, as `exp2_h`), the weights times the 2 value blocks' factors (`{w}`)
/// rounded to u8 and stored to both blocks of P' (`{d0}`, `{d1}`).
macro_rules! f16_group_i8mm {
    ($e0:literal, $e1:literal) => {
        concat!(
            "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{s}], #64\n",
            "mov v20.16b, {mv:v}.16b\n",
            "mov v21.16b, {mv:v}.16b\n",
            "mov v22.16b, {mv:v}.16b\n",
            "mov v23.16b, {mv:v}.16b\n",
            "fmla v20.4s, v16.4s, {qv:v}.4s\n",
            "fmla v21.4s, v17.4s, {qv:v}.4s\n",
            "fmla v22.4s, v18.4s, {qv:v}.4s\n",
            "fmla v23.4s, v19.4s, {qv:v}.4s\n",
            "fcvtn v24.4h, v20.4s\n",
            "fcvtn2 v24.8h, v21.4s\n",
            "fcvtn v25.4h, v22.4s\n",
            "fcvtn2 v25.8h, v23.4s\n",
            f16_exp2_i8mm!("v24", $e0),
            f16_exp2_i8mm!("v25", $e1),
            "uzp1 v30.4s, ",
            $e0,
            ".4s, ",
            $e1,
            ".4s\n",
            "uzp2 v31.4s, ",
            $e0,
            ".4s, ",
            $e1,
            ".4s\n",
            "ldp q16, q17, [{w}], #32\n",
            f16_weights_i8mm!("v16", "{d0}"),
            f16_weights_i8mm!("v17", "{d1}"),
        )
    };
}

/// `$e = exp2($y)` on 8 f16 lanes, the instructions of `exp2_h` (`$y` clobbered; v27, v28).
macro_rules! f16_exp2_i8mm {
    ($y:literal, $e:literal) => {
        concat!(
            "fmaxnm ",
            $y,
            ".8h, ",
            $y,
            ".8h, v3.8h\n",
            "frintn ",
            $e,
            ".8h, ",
            $y,
            ".8h\n",
            "fsub ",
            $y,
            ".8h, ",
            $y,
            ".8h, ",
            $e,
            ".8h\n",
            "fadd ",
            $e,
            ".8h, ",
            $e,
            ".8h, v2.8h\n",
            "fcvtzu ",
            $e,
            ".8h, ",
            $e,
            ".8h, #10\n",
            "fmul v27.8h, ",
            $y,
            ".8h, ",
            $y,
            ".8h\n",
            "mov v28.16b, v1.16b\n",
            "fmla v28.8h, ",
            $y,
            ".8h, v0.h[2]\n",
            "fmul ",
            $y,
            ".8h, ",
            $y,
            ".8h, v0.h[0]\n",
            "fmla ",
            $y,
            ".8h, v27.8h, v28.8h\n",
            "fmla ",
            $e,
            ".8h, ",
            $e,
            ".8h, ",
            $y,
            ".8h\n",
        )
    };
}

/// The group's weights (v30, v31) times one value block's factors `$f`, rounded to u8 and
/// stored to that block's P' at `$d` (which moves on by 16 bytes).
macro_rules! f16_weights_i8mm {
    ($f:literal, $d:literal) => {
        concat!(
            "fmul v18.8h, v30.8h, ",
            $f,
            ".8h\n",
            "fmul v19.8h, v31.8h, ",
            $f,
            ".8h\n",
            "fcvtnu v18.8h, v18.8h\n",
            "fcvtnu v19.8h, v19.8h\n",
            "uzp1 v20.16b, v18.16b, v19.16b\n",
            "str q20, [",
            $d,
            "], #16\n",
        )
    };
}

/// The f16 sums of two groups' weights (v26 + v29, v11 + v12) added to `{sum}` in f32.
macro_rules! f16_pair_sum {
    () => {
        concat!(
            "fadd v26.8h, v26.8h, v29.8h\n",
            "fadd v11.8h, v11.8h, v12.8h\n",
            "fadd v26.8h, v26.8h, v11.8h\n",
            "fcvtl v13.4s, v26.4h\n",
            "fcvtl2 v14.4s, v26.8h\n",
            "fadd v13.4s, v13.4s, v14.4s\n",
            "fadd {sum:v}.4s, {sum:v}.4s, v13.4s\n",
        )
    };
}

/// The softmax groups of a row pair with f16 weights (FEAT_FP16; module notes): for each group
/// `g < ng` of 8 keys, the scores `s + 16 g` (`(r0 k, r0 k', r1 k, r1 k')` per key pair) become
/// `y = s q - mt` in f32 (`qv`, `mv` per lane: `(q0, q0, q1, q1)`, `(-mt0, -mt0, -mt1, -mt1)`),
/// narrowed to f16, `e = 2^y` ([`exp2_h`]; masked keys hold -inf scores, or NaN with a zero Q
/// scale: both give 0), the rows' 8 keys put together (UZP1 / UZP2 of 32-bit lanes), and per
/// value block `b` the 16 bytes `round(e w) - 128` (`w + 8 (g nb + b)`: the block's f16 factors
/// of the group's 8 keys; FMUL, FCVTNU, UZP1 of the low bytes, EOR 0x80) written at `dst + b
/// stride + 16 g` (`NB` as in [`softmax_step`]). Returns the sums of the weights (lanes `(r0,
/// r0, r1, r1)`): per lane the 4 weights of two groups added in f16 (two levels), then in f32.
///
/// # Safety
/// FEAT_FP16; `s` holds `16 ng` readable floats, `w` `8 nb ng` readable u16, and `dst + b
/// stride + 16 g` 16 writable bytes for `b < nb`, `g < ng`.
#[target_feature(enable = "neon,fp16")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn groups_f16<M: Mm, const NB: usize>(
    s: *const f32,
    ng: usize,
    qv: float32x4_t,
    mv: float32x4_t,
    w: *const u16,
    dst: *mut i8,
    nb: usize,
    stride: usize,
) -> float32x4_t {
    let nb = if NB > 0 { NB } else { nb };
    // SAFETY: FEAT_FP16 (caller) for the asm; the pointers as the caller's contract says.
    unsafe {
        let k = vld1q_u16(EXP2_H.as_ptr());
        let c2 = vdupq_n_u16(EXP2_H[1]);
        let (h15, lo) = (vdupq_n_u16(H15), vdupq_n_u16(HM16));
        let x80 = vdupq_n_u8(0x80);
        // One group: its weights written, its two f16 weight vectors returned.
        let group = |s8: *const f32, w8: *const u16, d8: *mut i8| -> (uint16x8_t, uint16x8_t) {
            let y: [float32x4_t; 4] =
                std::array::from_fn(|i| vfmaq_f32(mv, vld1q_f32(s8.add(4 * i)), qv));
            let e0 = exp2_h(narrow8(y[0], y[1]), k, c2, h15, lo);
            let e1 = exp2_h(narrow8(y[2], y[3]), k, c2, h15, lo);
            // Row 0's 8 keys, row 1's 8 keys.
            let (a, b) = (vreinterpretq_u32_u16(e0), vreinterpretq_u32_u16(e1));
            let r0 = vreinterpretq_u16_u32(vuzp1q_u32(a, b));
            let r1 = vreinterpretq_u16_u32(vuzp2q_u32(a, b));
            // The factors of up to 4 blocks loaded before the stores (which might alias them
            // for all the compiler knows): adjacent, so they load in pairs (LDP).
            let mut wv = [vdupq_n_u16(0); 4];
            for (b, v) in wv.iter_mut().enumerate().take(nb) {
                *v = vld1q_u16(w8.add(8 * b));
            }
            for b in 0..nb {
                let wb = match wv.get(b) {
                    Some(&v) => v,
                    None => vld1q_u16(w8.add(8 * b)),
                };
                let x: uint8x16_t;
                // The products lie in [0, 255] (e <= 1, w <= 255, both exact at the top):
                // FCVTNU, then the low bytes.
                std::arch::asm!(
                    "fmul {p:v}.8h, {r0:v}.8h, {w:v}.8h",
                    "fmul {q:v}.8h, {r1:v}.8h, {w:v}.8h",
                    "fcvtnu {p:v}.8h, {p:v}.8h",
                    "fcvtnu {q:v}.8h, {q:v}.8h",
                    "uzp1 {x:v}.16b, {p:v}.16b, {q:v}.16b",
                    r0 = in(vreg) r0,
                    r1 = in(vreg) r1,
                    w = in(vreg) wb,
                    p = out(vreg) _,
                    q = out(vreg) _,
                    x = out(vreg) x,
                    options(pure, nomem, nostack, preserves_flags)
                );
                let x = if M::P_SIGNED { veorq_u8(x, x80) } else { x };
                vst1q_u8(d8.add(b * stride) as *mut u8, x);
            }
            (e0, e1)
        };
        // f32 sum += the f16 sum of `a`, `b`, `c`, `d` (lanes (r0, r0, r1, r1) in both halves).
        let add = |sum: float32x4_t, a: uint16x8_t, b: uint16x8_t, c: uint16x8_t, d: uint16x8_t| {
            let (sl, sh): (float32x4_t, float32x4_t);
            std::arch::asm!(
                "fadd {a:v}.8h, {a:v}.8h, {b:v}.8h",
                "fadd {c:v}.8h, {c:v}.8h, {d:v}.8h",
                "fadd {a:v}.8h, {a:v}.8h, {c:v}.8h",
                "fcvtl {l:v}.4s, {a:v}.4h",
                "fcvtl2 {h:v}.4s, {a:v}.8h",
                a = inout(vreg) a => _,
                b = in(vreg) b,
                c = inout(vreg) c => _,
                d = in(vreg) d,
                l = out(vreg) sl,
                h = out(vreg) sh,
                options(pure, nomem, nostack, preserves_flags)
            );
            vaddq_f32(sum, vaddq_f32(sl, sh))
        };
        let mut sum = vdupq_n_f32(0.0);
        let (mut s8, mut w8, mut d8) = (s, w, dst);
        // Four groups per iteration (the loop's counters and pointers once per 32 keys), then
        // two. With SMMLA's unsigned weights and 2 value blocks (d = 64) as one asm loop: the
        // same instructions on the same values as `group` and `add` below (bit for bit), the
        // scores with LD1 (4 registers), every pointer post-indexed: 54 instructions per group.
        let asm4 = !M::P_SIGNED && NB == 2 && ng >= 4;
        if asm4 {
            let n = ng / 4;
            let d1 = d8.wrapping_add(stride);
            // SAFETY: FEAT_FP16 (caller); reads groups < 4 n <= ng of the scores (64 bytes
            // each) and of `w` (32 bytes each: nb = 2), writes their 16 bytes of P' in both
            // blocks (at dst + 16 g and dst + stride + 16 g) (the caller's contract).
            std::arch::asm!(
                    "2:",
                    f16_group_i8mm!("v26", "v29"),
                    f16_group_i8mm!("v11", "v12"),
                    f16_pair_sum!(),
                    f16_group_i8mm!("v26", "v29"),
                    "subs {n}, {n}, #1",
                    f16_group_i8mm!("v11", "v12"),
                    f16_pair_sum!(),
                    "b.ne 2b",
                    s = inout(reg) s8,
                    w = inout(reg) w8,
                    d0 = inout(reg) d8,
                    d1 = inout(reg) d1 => _,
                    n = inout(reg) n => _,
                    sum = inout(vreg) sum,
                    qv = in(vreg) qv,
                    mv = in(vreg) mv,
                    in("v0") k,
                    in("v1") c2,
                    in("v2") h15,
                    in("v3") lo,
                    out("v11") _, out("v12") _, out("v13") _, out("v14") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                    options(nostack)
            );
        }
        for _ in 0..if asm4 { 0 } else { ng / 4 } {
            let (a, b) = group(s8, w8, d8);
            let (c, d) = group(s8.add(16), w8.add(8 * nb), d8.add(16));
            sum = add(sum, a, b, c, d);
            let (a, b) = group(s8.add(32), w8.add(16 * nb), d8.add(32));
            let (c, d) = group(s8.add(48), w8.add(24 * nb), d8.add(48));
            sum = add(sum, a, b, c, d);
            (s8, w8, d8) = (s8.add(64), w8.add(32 * nb), d8.add(64));
        }
        if ng % 4 >= 2 {
            let (a, b) = group(s8, w8, d8);
            let (c, d) = group(s8.add(16), w8.add(8 * nb), d8.add(16));
            sum = add(sum, a, b, c, d);
            (s8, w8, d8) = (s8.add(32), w8.add(16 * nb), d8.add(32));
        }
        if ng % 2 == 1 {
            let (a, b) = group(s8, w8, d8);
            let z = vdupq_n_u16(0);
            sum = add(sum, a, b, z, z);
        }
        sum
    }
}

/// The online-softmax step of one driver step (module notes), a row pair at a time: row maxima,
/// rescale factors, sums, the quantized weights `P'` and their scales. `s` holds the scores
/// (log2 units, in units of the row's Q scale) as `Q K^T` leaves them, `[row pair][KEYS / 2][4]`
/// with `(r0 k, r0 k', r1 k, r1 k')` per key pair; `w` the factors of the value blocks in the
/// same key-pair layout, the blocks of a group of 8 keys adjacent; `wh` (with `F16`) the f16
/// factors `[KEYS / 8][nb][8]`. `NB` is the number of value blocks `d / 32` when it is 1, 2 or
/// 4 (unrolled), or 0 (`nb` read at run time). `F16`: the exp and the weights in f16
/// ([`groups_f16`]), else in f32.
///
/// # Safety
/// With `F16` the CPU has FEAT_FP16.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
#[inline]
unsafe fn softmax_step<M: Mm, const NB: usize, const F16: bool>(
    s: &mut [f32],
    rows: usize,
    nk: usize,
    nb: usize,
    mask: Mask,
    (m, l, corr): (&mut [f32], &mut [f32], &mut [f32]),
    (qs, w, wh, vmax): (&[f32], &[f32], &[u16], &[f32]),
    (pa, ps): (&mut [i8], &mut [f32]),
) {
    let nb = if NB > 0 { NB } else { nb };
    let ng = nk.div_ceil(8);
    let rp = rows.next_multiple_of(R);
    assert!(nk > 0 && nk <= KEYS && s.len() >= rp * KEYS && mask.group > 0);
    assert!(m.len() >= rows && l.len() >= rows && corr.len() >= rows);
    assert!(qs.len() >= rows && vmax.len() >= nb);
    if F16 {
        assert!(wh.len() >= nb * KEYS);
    } else {
        assert!(w.len() >= nb * 2 * KEYS);
    }
    assert!(pa.len() >= nb * rp * KEYS && ps.len() >= rp * nb);
    let exp2 = |x: f32| vgetq_lane_f32::<0>(exp2_biased(vdupq_n_f32(x + BIAS)));
    let pair = |a: f32, b: f32| vcombine_f32(vdup_n_f32(a), vdup_n_f32(b));
    // The key of each lane within its key pair.
    let kl = [0.0f32, 1.0, 0.0, 1.0];
    // SAFETY: 4 floats.
    let kl = unsafe { vld1q_f32(kl.as_ptr()) };
    // P' block stride.
    let stride = rp * KEYS;
    let (wp, pp) = (w.as_ptr(), pa.as_mut_ptr());
    for p in 0..rows.div_ceil(2) {
        let r0 = 2 * p;
        // Row r0 + 1 may be a padding row: no keys, no state.
        let real1 = r0 + 1 < rows;
        let va = [
            mask.valid(r0, nk),
            if real1 { mask.valid(r0 + 1, nk) } else { 0 },
        ];
        let vg = va[0].max(va[1]).div_ceil(8);
        // Row pair p's 16 bytes of key group 0 of block 0 in the packed P'.
        let pr = p * 2 * KEYS;
        // SAFETY: group jg < ng <= KEYS / 8 of block b < nb of row pair p lies at pr + b stride
        // + 16 jg, inside the asserted `pa`.
        // Weight 0: x = 0, stored as -128 when signed.
        let zero = if M::P_SIGNED { i8::MIN } else { 0 };
        for jg in vg..ng {
            for b in 0..nb {
                unsafe { vst1q_s8(pp.add(pr + b * stride + 16 * jg), vdupq_n_s8(zero)) };
            }
        }
        if vg == 0 {
            corr[r0] = 1.0;
            if real1 {
                corr[r0 + 1] = 1.0;
            }
            continue;
        }
        let sr = &mut s[p * 2 * KEYS..(p + 1) * 2 * KEYS];
        // Keys a row does not see in the groups < vg: -inf, for the maximum.
        for (h, &v) in va.iter().enumerate() {
            for j in v..8 * vg {
                sr[4 * (j / 2) + 2 * h + j % 2] = f32::NEG_INFINITY;
            }
        }
        let sp = sr.as_ptr();
        let mut mx = [vdupq_n_f32(f32::NEG_INFINITY); 4];
        // A group's 16 scores with one LD1 (4 registers): four groups per iteration (the loop's
        // counter once per 32 keys; asm: the compiler splits LD1 into LDPs), then two, then the
        // last one. (FMAX is exact: the same maxima in any order.)
        // SAFETY (callers): group g < vg <= KEYS / 8 is 16 floats at 16 g of the row pair's.
        let group = |g: usize| unsafe { vld1q_f32_x4(sp.add(16 * g)) };
        let mut g = 0;
        if vg >= 4 {
            let (mut p, mut n) = (sp, vg / 4);
            // SAFETY: reads the 64 floats of groups 4 i..4 i + 4 < vg of the row pair's scores
            // (as above) for i < vg / 4; registers and flags only otherwise.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "ld1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{p}], #64",
                    "ld1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{p}], #64",
                    "ld1 {{v24.4s, v25.4s, v26.4s, v27.4s}}, [{p}], #64",
                    "ld1 {{v28.4s, v29.4s, v30.4s, v31.4s}}, [{p}], #64",
                    "subs {n}, {n}, #1",
                    "fmax v16.4s, v16.4s, v20.4s",
                    "fmax v17.4s, v17.4s, v21.4s",
                    "fmax v18.4s, v18.4s, v22.4s",
                    "fmax v19.4s, v19.4s, v23.4s",
                    "fmax v24.4s, v24.4s, v28.4s",
                    "fmax v25.4s, v25.4s, v29.4s",
                    "fmax v26.4s, v26.4s, v30.4s",
                    "fmax v27.4s, v27.4s, v31.4s",
                    "fmax v16.4s, v16.4s, v24.4s",
                    "fmax v17.4s, v17.4s, v25.4s",
                    "fmax v18.4s, v18.4s, v26.4s",
                    "fmax v19.4s, v19.4s, v27.4s",
                    "fmax {m0:v}.4s, {m0:v}.4s, v16.4s",
                    "fmax {m1:v}.4s, {m1:v}.4s, v17.4s",
                    "fmax {m2:v}.4s, {m2:v}.4s, v18.4s",
                    "fmax {m3:v}.4s, {m3:v}.4s, v19.4s",
                    "b.ne 2b",
                    p = inout(reg) p,
                    n = inout(reg) n,
                    m0 = inout(vreg_low16) mx[0],
                    m1 = inout(vreg_low16) mx[1],
                    m2 = inout(vreg_low16) mx[2],
                    m3 = inout(vreg_low16) mx[3],
                    out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                    out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                    out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                    out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                    options(nostack, readonly)
                );
            }
            let _ = (p, n);
            g = vg / 4 * 4;
        }
        if vg % 4 >= 2 {
            let (a, b) = (group(g), group(g + 1));
            mx = [
                vmaxq_f32(mx[0], vmaxq_f32(a.0, b.0)),
                vmaxq_f32(mx[1], vmaxq_f32(a.1, b.1)),
                vmaxq_f32(mx[2], vmaxq_f32(a.2, b.2)),
                vmaxq_f32(mx[3], vmaxq_f32(a.3, b.3)),
            ];
            g += 2;
        }
        if vg % 2 == 1 {
            let a = group(g);
            mx = [
                vmaxq_f32(mx[0], a.0),
                vmaxq_f32(mx[1], a.1),
                vmaxq_f32(mx[2], a.2),
                vmaxq_f32(mx[3], a.3),
            ];
        }
        // Lane h: row r0 + h's largest score.
        let mx = vmaxq_f32(vmaxq_f32(mx[0], mx[1]), vmaxq_f32(mx[2], mx[3]));
        let mx = vpmaxq_f32(mx, mx);
        // Both rows with keys (all row pairs but the diagonal's first and a padding row's):
        // their state as 2-lane vectors; else a row at a time. The same operations per row.
        let both = va[0] > 0 && va[1] > 0;
        let (qv, mbv, pmax) = if both {
            // SAFETY: rows r0 + 1 < rows of m, corr, qs (asserted lengths).
            unsafe { pair_state::<F16>(r0, vget_low_f32(mx), m, corr, qs) }
        } else {
            let (mut qa, mut mba, mut pmax) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
            for h in 0..2 {
                let r = r0 + h;
                if va[h] == 0 {
                    if r < rows {
                        corr[r] = 1.0;
                    }
                    continue;
                }
                // The scores are in units of the row's Q scale (qs >= 0 keeps the maximum).
                let q = qs[r];
                let mt = if h == 0 {
                    vgetq_lane_f32::<0>(mx)
                } else {
                    vgetq_lane_f32::<1>(mx)
                } * q;
                let m_new = m[r].max(mt);
                corr[r] = if m[r] == f32::NEG_INFINITY {
                    0.0
                } else {
                    exp2(m[r] - m_new)
                };
                pmax[h] = exp2(mt - m_new);
                m[r] = m_new;
                // The f16 exp takes `y` unbiased (its precision is relative).
                (qa[h], mba[h]) = (q, if F16 { -mt } else { BIAS - mt });
            }
            // A row without keys has q = 0 and its lanes all masked below.
            // SAFETY: 2 floats.
            let pmax = unsafe { vld1_f32(pmax.as_ptr()) };
            (pair(qa[0], qa[1]), pair(mba[0], mba[1]), pmax)
        };
        let lim = pair(va[0] as f32, va[1] as f32);
        let mut sum = vdupq_n_f32(0.0);
        if F16 {
            // SAFETY: FEAT_FP16 (the caller's contract); the vg <= KEYS / 8 groups of the row
            // pair's scores, of `wh` (8 nb u16 each, asserted) and of the row pair's P' in each
            // block (16 bytes at pr + b stride + 16 g).
            let sum = unsafe {
                let sum = groups_f16::<M, NB>(sp, vg, qv, mbv, wh.as_ptr(), pp.add(pr), nb, stride);
                vpaddq_f32(sum, sum)
            };
            finish_pair(r0, rows, va, pmax, sum, nb, vmax, (l, corr, ps));
            continue;
        }
        // The groups both rows see fully (no mask: the loop is only the exp, the sum and the
        // weights), then the groups with masked keys. The scores of visible keys are finite and
        // at most the row's maximum, so `exp2_biased_unclamped` applies (its NaN for the -inf of
        // masked keys is cleared by the mask).
        let full = va[0].min(va[1]) / 8;
        let exps = |s8: *const f32| -> [float32x4_t; 4] {
            // SAFETY: the 16 floats of a group (callers).
            std::array::from_fn(|i| unsafe {
                exp2_biased_unclamped(vfmaq_f32(mbv, vld1q_f32(s8.add(4 * i)), qv))
            })
        };
        let add4 = |e: &[float32x4_t; 4]| vaddq_f32(vaddq_f32(e[0], e[1]), vaddq_f32(e[2], e[3]));
        // SAFETY: group g < vg of the row pair's scores (at 16 g floats), of w (16 nb floats at
        // 16 nb g) and of the row pair's P' (16 bytes at 16 g of each block).
        unsafe {
            let (mut s8, mut w8, mut d8) = (sp, wp, pp.add(pr));
            // One group: its weights written, the sum of its 4 vectors returned.
            let group = |s8: *const f32, w8: *const f32, d8: *mut i8| {
                let e = exps(s8);
                put_pair_weights::<M>(&e, w8, d8, nb, stride);
                add4(&e)
            };
            // Two groups per iteration (the loop's counters and pointers once per 16 keys).
            for _ in 0..full / 2 {
                let e = vaddq_f32(
                    group(s8, w8, d8),
                    group(s8.add(16), w8.add(16 * nb), d8.add(16)),
                );
                sum = vaddq_f32(sum, e);
                (s8, w8, d8) = (s8.add(32), w8.add(32 * nb), d8.add(32));
            }
            if full % 2 == 1 {
                sum = vaddq_f32(sum, group(s8, w8, d8));
                (s8, w8, d8) = (s8.add(16), w8.add(16 * nb), d8.add(16));
            }
            for g in full..vg {
                let mut e = exps(s8);
                for (i, e) in e.iter_mut().enumerate() {
                    // Keys 8 g + 2 i + (0, 1, 0, 1): weight 0 exactly from the row's `valid` on.
                    let keep = vcltq_f32(vaddq_f32(kl, vdupq_n_f32((8 * g + 2 * i) as f32)), lim);
                    *e = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(*e), keep));
                }
                sum = vaddq_f32(sum, add4(&e));
                put_pair_weights::<M>(&e, w8, d8, nb, stride);
                (s8, w8, d8) = (s8.add(16), w8.add(16 * nb), d8.add(16));
            }
        }
        // Lane h: row r0 + h's sum.
        let sum = vpaddq_f32(sum, sum);
        finish_pair(r0, rows, va, pmax, sum, nb, vmax, (l, corr, ps));
    }
}

/// [`softmax_step`] with the f16 softmax, compiled with FEAT_FP16 so that [`groups_f16`] is
/// inlined into its row-pair loop.
///
/// # Safety
/// The CPU has FEAT_FP16.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,fp16")]
unsafe fn softmax_step_f16<M: Mm, const NB: usize>(
    s: &mut [f32],
    rows: usize,
    nk: usize,
    nb: usize,
    mask: Mask,
    stats: (&mut [f32], &mut [f32], &mut [f32]),
    wv: (&[f32], &[f32], &[u16], &[f32]),
    pq: (&mut [i8], &mut [f32]),
) {
    // SAFETY: FEAT_FP16 (the caller's contract).
    unsafe { softmax_step::<M, NB, true>(s, rows, nk, nb, mask, stats, wv, pq) }
}

/// The state update of rows `r0`, `r0 + 1` (both with keys) in lanes 0 and 1, as
/// [`softmax_step`]'s per-row loop does it: `mt = mx q`, `m' = max(m, mt)`, `corr = 2^(m - m')`
/// (0 for the first keys), `pmax = 2^(mt - m')` (one [`exp2_biased`] for the four); writes `m`
/// and `corr`, returns the exp argument's factors `(q0, q0, q1, q1)`, offsets (`-mt`, or `BIAS -
/// mt` without `F16`) in the same layout, and `pmax`.
///
/// # Safety
/// `r0 + 1` is a row of `m`, `corr` and `qs`.
#[inline(always)]
unsafe fn pair_state<const F16: bool>(
    r0: usize,
    mx: float32x2_t,
    m: &mut [f32],
    corr: &mut [f32],
    qs: &[f32],
) -> (float32x4_t, float32x4_t, float32x2_t) {
    // SAFETY: rows r0, r0 + 1 (the caller's contract); NEON, every aarch64 target.
    unsafe {
        let (mp, cp) = (m.as_mut_ptr().add(r0), corr.as_mut_ptr().add(r0));
        let q = vld1_f32(qs.as_ptr().add(r0));
        let mt = vmul_f32(mx, q);
        let mo = vld1_f32(mp);
        let mn = vmaxnm_f32(mo, mt);
        let a = vcombine_f32(vsub_f32(mo, mn), vsub_f32(mt, mn));
        let e = exp2_biased(vaddq_f32(a, vdupq_n_f32(BIAS)));
        let first = vceq_f32(mo, vdup_n_f32(f32::NEG_INFINITY));
        vst1_f32(cp, vbsl_f32(first, vdup_n_f32(0.0), vget_low_f32(e)));
        vst1_f32(mp, mn);
        let mb = if F16 {
            vneg_f32(mt)
        } else {
            vsub_f32(vdup_n_f32(BIAS), mt)
        };
        let dup = |x: float32x2_t| {
            let x = vcombine_f32(x, x);
            vzip1q_f32(x, x)
        };
        (dup(q), dup(mb), vget_high_f32(e))
    }
}

/// The output scales and the sums of the rows `r0`, `r0 + 1` with keys (`va`): `ps = pmax
/// vmax_b`, `l = l corr + pmax sum` (lane h of `sum`: row `r0 + h`'s).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn finish_pair(
    r0: usize,
    rows: usize,
    va: [usize; 2],
    pmax: float32x2_t,
    sum: float32x4_t,
    nb: usize,
    vmax: &[f32],
    (l, corr, ps): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let rp = rows.next_multiple_of(R);
    if va[0] > 0 && va[1] > 0 {
        // Both rows (r0 + 1 < rows): the same products as below, 2 lanes at a time.
        assert!(r0 + 2 <= rows && l.len() >= rows && corr.len() >= rows);
        assert!(vmax.len() >= nb && ps.len() >= (nb - 1) * rp + rows);
        // SAFETY: NEON (every aarch64 target); rows r0, r0 + 1 of l, corr and of block b < nb
        // of ps (asserted).
        unsafe {
            for (b, &v) in vmax[..nb].iter().enumerate() {
                vst1_f32(ps.as_mut_ptr().add(b * rp + r0), vmul_n_f32(pmax, v));
            }
            let (lp, c) = (l.as_mut_ptr().add(r0), vld1_f32(corr.as_ptr().add(r0)));
            let t = vmul_f32(pmax, vget_low_f32(sum));
            vst1_f32(lp, vadd_f32(vmul_f32(vld1_f32(lp), c), t));
        }
        return;
    }
    // SAFETY: NEON, register-only.
    let pmax: [f32; 2] = unsafe { [vget_lane_f32::<0>(pmax), vget_lane_f32::<1>(pmax)] };
    for h in 0..2 {
        let r = r0 + h;
        if va[h] == 0 || r >= rows {
            continue;
        }
        for b in 0..nb {
            ps[b * rp + r] = pmax[h] * vmax[b];
        }
        // SAFETY: NEON (every aarch64 target), register-only.
        let sh = unsafe {
            if h == 0 {
                vgetq_lane_f32::<0>(sum)
            } else {
                vgetq_lane_f32::<1>(sum)
            }
        };
        l[r] = l[r] * corr[r] + pmax[h] * sh;
    }
}

/// `dst[b][j] = f16(vs[j][b] f[b])` for the 8 keys `j` of a group and the `nb` value blocks (`vs`
/// `[8][nb]` as the cache stores a group's value scales, `dst` `[nb][8]`: the layout of
/// [`groups_f16`]'s factors), rounding to nearest even: 8 values per FCVTN / FCVTN2, the blocks
/// split by UZP for `nb` 1, 2 and 4, one at a time (`half`, the same rounding) otherwise.
fn put_w16(vs: &[f32], f: &[f32], dst: &mut [u16]) {
    let nb = f.len();
    assert!(vs.len() == 8 * nb && dst.len() == 8 * nb);
    // SAFETY: NEON (every aarch64 target); `vs` and `dst` hold 8 nb elements (asserted), `f`
    // nb.
    unsafe {
        let (v, o) = (vs.as_ptr(), dst.as_mut_ptr());
        // The products of 8 keys x nb blocks, narrowed: 8 values per vector, in `vs`'s order.
        let h = |fv: float32x4_t, i: usize| {
            narrow8(
                vmulq_f32(vld1q_f32(v.add(8 * i)), fv),
                vmulq_f32(vld1q_f32(v.add(8 * i + 4)), fv),
            )
        };
        match nb {
            1 => vst1q_u16(o, h(vdupq_n_f32(f[0]), 0)),
            2 => {
                let fv = vcombine_f32(vld1_f32(f.as_ptr()), vld1_f32(f.as_ptr()));
                let (a, b) = (h(fv, 0), h(fv, 1));
                vst1q_u16(o, vuzp1q_u16(a, b));
                vst1q_u16(o.add(8), vuzp2q_u16(a, b));
            }
            4 => {
                let fv = vld1q_f32(f.as_ptr());
                let a: [uint16x8_t; 4] = std::array::from_fn(|i| h(fv, i));
                // Even lanes: blocks 0 and 2, odd: 1 and 3; then each split again.
                let (e0, e1) = (vuzp1q_u16(a[0], a[1]), vuzp1q_u16(a[2], a[3]));
                let (d0, d1) = (vuzp2q_u16(a[0], a[1]), vuzp2q_u16(a[2], a[3]));
                vst1q_u16(o, vuzp1q_u16(e0, e1));
                vst1q_u16(o.add(8), vuzp1q_u16(d0, d1));
                vst1q_u16(o.add(16), vuzp2q_u16(e0, e1));
                vst1q_u16(o.add(24), vuzp2q_u16(d0, d1));
            }
            _ => {
                for (b, &fb) in f.iter().enumerate() {
                    for j in 0..8 {
                        *o.add(8 * b + j) = half::f16::from_f32(*v.add(j * nb + b) * fb).to_bits();
                    }
                }
            }
        }
    }
}

/// `out[b] = max(0, max_j vs[j][b])` for `vs` `[n][nb]` (`nb = out.len()`): for `nb` 1, 2 and 4
/// four scales per FMAXNM (lane `i` holds block `i % nb`), 16 per iteration; else one at a time.
/// (The same maxima as a scalar loop: FMAXNM is exact.)
fn column_max(vs: &[f32], out: &mut [f32]) {
    let nb = out.len();
    assert!(nb > 0 && vs.len().is_multiple_of(nb));
    out.fill(0.0);
    if !matches!(nb, 1 | 2 | 4) {
        for row in vs.chunks_exact(nb) {
            for (m, &x) in out.iter_mut().zip(row) {
                *m = m.max(x);
            }
        }
        return;
    }
    let body = vs.len() / 16 * 16;
    // SAFETY: NEON (every aarch64 target); 16 floats read at i + 16 <= body <= vs.len().
    let m = unsafe {
        let p = vs.as_ptr();
        let mut m = [vdupq_n_f32(0.0); 4];
        for i in (0..body).step_by(16) {
            for (k, m) in m.iter_mut().enumerate() {
                *m = vmaxnmq_f32(*m, vld1q_f32(p.add(i + 4 * k)));
            }
        }
        vmaxnmq_f32(vmaxnmq_f32(m[0], m[1]), vmaxnmq_f32(m[2], m[3]))
    };
    let mut lanes = [0.0f32; 4];
    // SAFETY: 4 floats.
    unsafe { vst1q_f32(lanes.as_mut_ptr(), m) };
    for (i, &x) in lanes.iter().chain(&vs[body..]).enumerate() {
        out[i % nb] = out[i % nb].max(x);
    }
}

/// Whether the softmax runs in f16 ([`groups_f16`]): the CPU has FEAT_FP16 and
/// `QKERN_ATTN_I8_F16` is not `0` (the f32 softmax, for comparison and its tests), read once per
/// process.
fn softmax_f16() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        super::attention::fp16_available() && crate::Tier::switch_on("QKERN_ATTN_I8_F16")
    })
}

/// The int8 path as a [`Block`] of the attention driver.
pub(crate) struct I8Attn<M>(PhantomData<M>);

/// The block loop of the int8 path over `M`'s products ([`Block::block`]).
///
/// # Safety
/// The CPU has `M`'s feature.
unsafe fn block_i8<M: Mm>(
    p: &Problem<'_>,
    g: usize,
    qi0: usize,
    nq: usize,
    kv: Range<usize>,
    sc: &mut Scratch,
) {
    let Stored::I8 {
        kt,
        v,
        ks,
        vs,
        grouped: true,
    } = p.kv.store
    else {
        panic!("the int8 attention path needs an int8 KV cache in the grouped layout");
    };
    assert!(p.d.is_multiple_of(32) && p.d > 0);
    let cache = (kt, v, ks, vs);
    // SAFETY: M's feature (the caller's contract).
    BUFS.with(|b| unsafe { block_steps::<M>(p, cache, g, qi0, nq, kv, sc, &mut b.borrow_mut()) });
}

/// The body of [`block_i8`] on the thread's buffers and the cache's keys, values and their
/// scales (its own function rather than a closure inlined into `LocalKey::with`, so that
/// profiles and qcount attribute it to this module).
///
/// # Safety
/// The CPU has `M`'s feature.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn block_steps<M: Mm>(
    p: &Problem<'_>,
    (kt, v, ks, vs): (&[i8], &[i8], &[f32], &[f32]),
    g: usize,
    qi0: usize,
    nq: usize,
    kv: Range<usize>,
    sc: &mut Scratch,
    bf: &mut Bufs,
) {
    let (d, group) = (p.d, p.group);
    let nb = d / 32;
    let rows = nq * group;
    let rp = rows.next_multiple_of(R);
    grow(&mut sc.o, rp * d);
    grow(&mut sc.m, rp);
    grow(&mut sc.l, rp);
    {
        grow(&mut bf.qa, rp * d);
        grow(&mut bf.qs, rp);
        grow(&mut bf.s, rp * KEYS);
        grow(&mut bf.pa, nb * rp * KEYS);
        grow(&mut bf.ps, rp * nb);
        let f16 = softmax_f16();
        if f16 {
            grow(&mut bf.wh, nb * KEYS);
            grow(&mut bf.w32, 9 * nb);
        } else {
            grow(&mut bf.w, nb * 2 * KEYS);
        }
        grow(&mut bf.vmax, nb);
        grow(&mut bf.kd, nb * 2 * KEYS);
        grow(&mut bf.corr, rp);
        // Padding rows: zero Q and P' (the softmax writes real rows only), corr 1.
        bf.qa[(rows / 2) * 2 * d..rp * d].fill(0);
        bf.qs[rows..rp].fill(0.0);
        bf.pa[..nb * rp * KEYS].fill(0);
        for b in 0..nb {
            bf.ps[b * rp + rows..(b + 1) * rp].fill(0.0);
        }
        bf.corr[rows..rp].fill(1.0);
        let scale = p.scale * std::f32::consts::LOG2_E;
        for qi in 0..nq {
            for hh in 0..group {
                let src = &p.q[((qi0 + qi) * p.n_head + g * group + hh) * d..][..d];
                load_q(src, scale, qi * group + hh, &mut bf.qa, &mut bf.qs);
            }
        }
        sc.o[..rp * d].fill(0.0);
        sc.m[..rows].fill(f32::NEG_INFINITY);
        sc.l[..rows].fill(0.0);
        let kv_end = kv.end.min(p.pos0 + qi0 + nq);
        let base = p.kv.head_base(g);
        let mut ts = kv.start;
        assert!(ts.is_multiple_of(KEYS));
        while ts < kv_end {
            let nk = KEYS.min(kv_end - ts);
            let ng = nk.div_ceil(8);
            let tiles = nk.div_ceil(KV_TILE);
            let off = base + ts * d;
            let ktile = &kt[off..off + tiles * KV_TILE * d];
            let kst = &ks[off / 32..off / 32 + tiles * nb * KV_TILE];
            let vtile = &v[off..off + ng * 8 * d];
            let vst = &vs[off / 32..off / 32 + nk * nb];
            // Value scales of the step: per block, the largest and w = 255 vs / largest.
            let vmax = &mut bf.vmax[..nb];
            column_max(vst, vmax);
            for (b, m) in vmax.iter_mut().enumerate() {
                let f = if *m > 0.0 { 255.0 / *m } else { 0.0 };
                if f16 {
                    // The factors, for `put_w16` below.
                    bf.w32[b] = f;
                    *m /= 255.0;
                    continue;
                }
                // `[KEYS / 8][nb][4][4]`: per group of 8 keys and block, `(w_k0, w_k1, w_k0,
                // w_k1)` per key pair (the scores' layout; the blocks of a group adjacent).
                let x = |j: usize| if j < nk { vst[j * nb + b] * f } else { 0.0 };
                for kp in 0..KEYS / 2 {
                    let (x0, x1) = if 2 * kp + 2 <= nk {
                        (vst[2 * kp * nb + b] * f, vst[(2 * kp + 1) * nb + b] * f)
                    } else {
                        (x(2 * kp), x(2 * kp + 1))
                    };
                    let i = (kp / 4) * 16 * nb + b * 16 + 4 * (kp % 4);
                    bf.w[i..i + 4].copy_from_slice(&[x0, x1, x0, x1]);
                }
                *m /= 255.0;
            }
            if f16 {
                // `[KEYS / 8][nb][8]` in f16; the last group padded with zero weights.
                let (fs, tail) = bf.w32.split_at_mut(nb);
                let full = nk / 8;
                for g in 0..full {
                    put_w16(
                        &vst[8 * g * nb..][..8 * nb],
                        fs,
                        &mut bf.wh[8 * g * nb..][..8 * nb],
                    );
                }
                if !nk.is_multiple_of(8) {
                    let tail = &mut tail[..8 * nb];
                    tail.fill(0.0);
                    tail[..(nk % 8) * nb].copy_from_slice(&vst[8 * full * nb..]);
                    put_w16(tail, fs, &mut bf.wh[8 * full * nb..][..8 * nb]);
                }
            }
            let mask = Mask {
                first: (p.pos0 + qi0 + 1) as isize - ts as isize,
                group,
            };
            // The step's key-scale differences for the running sums of `Q K^T`.
            key_scales(kst, tiles, nb, &mut bf.kd);
            // SAFETY: M's feature (the caller's contract); the shapes are asserted inside.
            unsafe { M::qk(&bf.qa, rp, d, ktile, &bf.kd, nk, &mut bf.s) };
            let stats = (&mut sc.m[..], &mut sc.l[..], &mut bf.corr[..]);
            let wv = (&bf.qs[..], &bf.w[..], &bf.wh[..], &bf.vmax[..]);
            let pq = (&mut bf.pa[..], &mut bf.ps[..]);
            let s = &mut bf.s;
            // SAFETY: NEON is part of every aarch64 target; f16 only with FEAT_FP16.
            unsafe {
                match (nb, f16) {
                    (1, false) => softmax_step::<M, 1, false>(s, rows, nk, nb, mask, stats, wv, pq),
                    (2, false) => softmax_step::<M, 2, false>(s, rows, nk, nb, mask, stats, wv, pq),
                    (4, false) => softmax_step::<M, 4, false>(s, rows, nk, nb, mask, stats, wv, pq),
                    (_, false) => softmax_step::<M, 0, false>(s, rows, nk, nb, mask, stats, wv, pq),
                    (1, true) => softmax_step_f16::<M, 1>(s, rows, nk, nb, mask, stats, wv, pq),
                    (2, true) => softmax_step_f16::<M, 2>(s, rows, nk, nb, mask, stats, wv, pq),
                    (4, true) => softmax_step_f16::<M, 4>(s, rows, nk, nb, mask, stats, wv, pq),
                    (_, true) => softmax_step_f16::<M, 0>(s, rows, nk, nb, mask, stats, wv, pq),
                }
            }
            // SAFETY: as above.
            unsafe { M::pv(&bf.pa, &bf.ps, rp, vtile, ng, d, &bf.corr, &mut sc.o) };
            ts += KEYS;
        }
    }
}

impl Block for I8Attn<Dot> {
    const ROWS: usize = R;
    const BLOCK_ROWS: usize = 128;
    const M_UNIT: f32 = std::f32::consts::LN_2;

    unsafe fn block(
        p: &Problem<'_>,
        g: usize,
        qi0: usize,
        nq: usize,
        kv: Range<usize>,
        sc: &mut Scratch,
    ) {
        // SAFETY: the path is handed out only on CPUs with FEAT_DotProd (the `NeonDot` and
        // `NeonI8mm` tiers require it).
        unsafe { block_i8::<Dot>(p, g, qi0, nq, kv, sc) }
    }
}

impl Block for I8Attn<Mmla> {
    const ROWS: usize = R;
    const BLOCK_ROWS: usize = 128;
    const M_UNIT: f32 = std::f32::consts::LN_2;

    unsafe fn block(
        p: &Problem<'_>,
        g: usize,
        qi0: usize,
        nq: usize,
        kv: Range<usize>,
        sc: &mut Scratch,
    ) {
        // SAFETY: the path is handed out only on CPUs with FEAT_I8MM (the `NeonI8mm` tier).
        unsafe { block_i8::<Mmla>(p, g, qi0, nq, kv, sc) }
    }
}
