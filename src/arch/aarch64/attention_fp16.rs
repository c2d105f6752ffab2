//! The fp16 attention path for aarch64 CPUs with FEAT_FP16 (Apple A15 and later, Neoverse N1,
//! Cortex-A76 and later): `Q K^T` and `P V` with half-precision FMLA on 8 lanes, reading the f16
//! KV cache as stored (no conversion at all), with the softmax statistics (row max, sum,
//! rescale) and the output accumulator in f32.
//!
//! Rust's f16 vector arithmetic intrinsics are unstable, so both products run one inline-asm
//! micro-kernel shape (one template, [`core_8x16!`]): 8 query rows x 16 columns of f16
//! accumulators, reduced over groups of 8 (head dimensions for `Q K^T`, keys for `P V`), FMLA by
//! element (16 FMLA per 16-column load; the 8 rows' 8-value slices come in with 2 loads). It walks
//! every 16-column panel of the tile in one call. The left operands are packed for it: the Q
//! block as `[row group of 8][dim group of 8][row][8]` (written once per block by `load_q`) and P
//! as `[row group][key group][row][8]` (written by the softmax): the 8 rows' values of one group
//! are 128 contiguous bytes. The rows of a block are padded to a multiple of 8.
//!
//! Each driver step covers 128 keys (two cache tiles), so the f32 epilogues and the per-row
//! softmax bookkeeping run once per 128 keys.
//!
//! Softmax (per row, in registers per group of 8 keys; the causal tail of the diagonal tile is
//! masked in place) in log2 units (Q is scaled by `log2 e` as it is rounded to f16): row max
//! (fused into the `Q K^T` epilogue for unmasked rows), weights `2^(s - m)` with a cheaper exp
//! ([`exp2_biased`], relative error below 1.1e-4, since the weights are rounded to f16 right
//! after), the sum and the rescale factor in f32.
//!
//! Accuracy: Q (times `log2 e / sqrt(head_dim)`) is rounded to f16 once per block, and P to
//! f16; the f16 accumulators are widened into f32 after 64 products for a score (64 head
//! dimensions) and after up to 128 for an output (the keys of a step), so rounding error grows
//! over that many terms at most before reaching f32. The measured error against the f64
//! reference is printed by the `fp16_accuracy` test (`tests/attention.rs`).
//!
//! Overflow: an f16 partial sum must stay below 65504. The path is only chosen when the cache's
//! largest |k| and |v| (tracked on write) and the largest |q| of the call bound every partial sum
//! by 2^15 (see [`fits_fp16`]); otherwise the NEON f32 path runs.

use crate::contract::attention::{AttnKernel, AttnPath, Mask, Stats, Tile, KV_TILE};
use crate::drivers::attention::path;
use half::f16;
use std::arch::aarch64::*;

pub(crate) static FP16_PATH: AttnPath = path::<Fp16>();

/// Head dimensions of a score accumulated in f16 before widening to f32.
const CHUNK: usize = 64;
/// Keys per step (two cache tiles): the products of an output accumulated in f16 before
/// widening to f32.
const KEYS: usize = 2 * KV_TILE;

/// Whether no f16 partial sum can exceed 2^15: `CHUNK * max|q| * scale * log2 e * max|k|` for
/// scores (`scale` the call's softmax scale), `KEYS * 1 * max|v|` for outputs (softmax weights
/// are at most 1); and every input value fits f16 (below 65504 with margin).
pub(crate) fn fits_fp16(amax: [f32; 2], q_max: f32, scale: f32) -> bool {
    let scale = scale.abs() * std::f32::consts::LOG2_E;
    q_max * scale <= 60000.0
        && q_max * scale * amax[0] <= 32768.0 / CHUNK as f32
        && amax[1] <= 32768.0 / KEYS as f32
        && amax[0] <= 60000.0
}

/// `f16(a), f16(b)` in one vector, rounding to nearest even (FCVTN/FCVTN2, base ARMv8.0).
#[inline]
pub(crate) fn narrow8(a: float32x4_t, b: float32x4_t) -> uint16x8_t {
    let h: uint16x8_t;
    // SAFETY: FCVTN/FCVTN2 are base ARMv8.0 instructions on registers only.
    unsafe {
        std::arch::asm!(
            "fcvtn {h:v}.4h, {a:v}.4s",
            "fcvtn2 {h:v}.8h, {b:v}.4s",
            a = in(vreg) a,
            b = in(vreg) b,
            h = out(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    h
}

/// `dst = f16(src * scale)`, rounding to nearest even (8 values per FCVTN/FCVTN2 pair); the tail
/// through `half`, which rounds the same way. Base ARMv8.0 (every aarch64 CPU).
pub(crate) fn to_f16(src: &[f32], scale: f32, dst: &mut [f16]) {
    let n = src.len().min(dst.len());
    let body = n / 8 * 8;
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 <= n for both slices (f16 is a transparent u16).
        unsafe {
            let a = vmulq_n_f32(vld1q_f32(src.as_ptr().add(i)), scale);
            let b = vmulq_n_f32(vld1q_f32(src.as_ptr().add(i + 4)), scale);
            vst1q_u16(dst.as_mut_ptr().add(i) as *mut u16, narrow8(a, b));
        }
    }
    for (d, &s) in dst[body..n].iter_mut().zip(&src[body..n]) {
        *d = f16::from_f32(s * scale);
    }
}

pub(crate) struct Fp16;

/// The exponent bias of f32, added to the arguments of [`exp2_biased`].
pub(crate) const BIAS: f32 = 127.0;

/// `2^y` for `y <= 0` on 4 lanes, given `yb = y + 127`, for softmax weights that are rounded to
/// f16 next: `yb = max(yb, 1)` (`y >= -126`), `yb = n + r` (`n` nearest integer), `e = 2^(n - 127)`
/// straight from FCVTZS with 23 fraction bits (`n` lands in the exponent field), and
/// `2^y = e + e q(r)` with `q(r) ~ 2^r - 1` a degree-3 polynomial without constant term (fitted
/// for the least maximum relative error of `1 + q(r)` on |r| <= 1/2: 1.02e-4, a fifth of f16's
/// rounding step 2^-11; exactly 1 at `y = 0`, so a row's largest weight is exact). Below
/// `2^-126` the result is some value under 1.2e-38, which rounds to 0 in f16.
#[inline]
pub(crate) fn exp2_biased(yb: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of every aarch64 target; register-only.
    exp2_biased_unclamped(unsafe { vmaxq_f32(yb, vdupq_n_f32(1.0)) })
}

/// [`exp2_biased`] without its clamp, one instruction less: the same result for `yb >= 1`, a
/// value below 1.2e-38 for `1/2 <= yb < 1`, exactly 0 for a finite `yb < 1/2` (FCVTZU saturates
/// the exponent at 0), NaN for `yb = -inf` (callers mask such lanes).
#[inline]
pub(crate) fn exp2_biased_unclamped(yb: float32x4_t) -> float32x4_t {
    const C1: f32 = 0.693_282_9;
    const C2: f32 = 0.242_210_37;
    const C3: f32 = 0.055_008_58;
    // SAFETY: NEON is part of every aarch64 target; register-only intrinsics.
    unsafe {
        let n = vrndnq_f32(yb);
        let r = vsubq_f32(yb, n);
        let r2 = vmulq_f32(r, r);
        let b = vfmaq_f32(vdupq_n_f32(C2), r, vdupq_n_f32(C3));
        let q = vfmaq_f32(vmulq_n_f32(r, C1), r2, b);
        let e = vreinterpretq_f32_u32(vcvtq_n_u32_f32::<23>(n));
        vfmaq_f32(e, e, q)
    }
}

// The asm templates below are built from string pieces with `concat!`; `{name}` are operands
// of the `asm!` that expands them, `{{`/`}}` literal braces.

/// 16 FMLA (or FMUL, which starts the accumulators): row `r` (accumulators `v16 + 2r`,
/// `v17 + 2r`) += the column vectors `$b0`, `$b1` times element `$x` of `v<r>` (the rows'
/// 8-value slices).
#[rustfmt::skip]
macro_rules! fmla_8x16 {
    ($op:literal, $b0:literal, $b1:literal, $x:literal) => {
        concat!(
            $op, " v16.8h, ", $b0, ".8h, v0.", $x, "\n",
            $op, " v17.8h, ", $b1, ".8h, v0.", $x, "\n",
            $op, " v18.8h, ", $b0, ".8h, v1.", $x, "\n",
            $op, " v19.8h, ", $b1, ".8h, v1.", $x, "\n",
            $op, " v20.8h, ", $b0, ".8h, v2.", $x, "\n",
            $op, " v21.8h, ", $b1, ".8h, v2.", $x, "\n",
            $op, " v22.8h, ", $b0, ".8h, v3.", $x, "\n",
            $op, " v23.8h, ", $b1, ".8h, v3.", $x, "\n",
            $op, " v24.8h, ", $b0, ".8h, v4.", $x, "\n",
            $op, " v25.8h, ", $b1, ".8h, v4.", $x, "\n",
            $op, " v26.8h, ", $b0, ".8h, v5.", $x, "\n",
            $op, " v27.8h, ", $b1, ".8h, v5.", $x, "\n",
            $op, " v28.8h, ", $b0, ".8h, v6.", $x, "\n",
            $op, " v29.8h, ", $b1, ".8h, v6.", $x, "\n",
            $op, " v30.8h, ", $b0, ".8h, v7.", $x, "\n",
            $op, " v31.8h, ", $b1, ".8h, v7.", $x, "\n",
        )
    };
}

/// `$m!(acc0, acc1, corr lane)` for each of the 8 rows.
#[rustfmt::skip]
macro_rules! each_row {
    ($m:ident) => {
        concat!(
            $m!("v16", "v17", "v12.s[0]"), $m!("v18", "v19", "v12.s[1]"),
            $m!("v20", "v21", "v12.s[2]"), $m!("v22", "v23", "v12.s[3]"),
            $m!("v24", "v25", "v13.s[0]"), $m!("v26", "v27", "v13.s[1]"),
            $m!("v28", "v29", "v13.s[2]"), $m!("v30", "v31", "v13.s[3]"),
        )
    };
}

/// Two steps of a group: the next two 16-column rows of the right operand (`{b}`, advanced by
/// `{bs}` bytes each), each times elements `$l0` resp. `$l1` of the rows' slices (16 FMLA each;
/// `$op0` for the first: `fmla`, or `fmul` to start the accumulators).
#[rustfmt::skip]
macro_rules! steps_8x16 {
    ($op0:literal, $l0:literal, $l1:literal) => {
        concat!(
            "ld1 {{v8.8h, v9.8h}}, [{b}], {bs}\n",
            fmla_8x16!($op0, "v8", "v9", $l0),
            "ld1 {{v10.8h, v11.8h}}, [{b}], {bs}\n",
            fmla_8x16!("fmla", "v10", "v11", $l1),
        )
    };
}

/// One group of 8 of the reduction: loads the 8 rows' next 8 values (`{a}`, 128 contiguous
/// bytes) into `v0..v7`, then 8 steps ([`steps_8x16!`]).
#[rustfmt::skip]
macro_rules! group_8x16 {
    ($op0:literal) => {
        concat!(
            "ld1 {{v0.8h, v1.8h, v2.8h, v3.8h}}, [{a}], #64\n",
            "ld1 {{v4.8h, v5.8h, v6.8h, v7.8h}}, [{a}], #64\n",
            steps_8x16!($op0, "h[0]", "h[1]"),
            steps_8x16!("fmla", "h[2]", "h[3]"),
            steps_8x16!("fmla", "h[4]", "h[5]"),
            steps_8x16!("fmla", "h[6]", "h[7]"),
        )
    };
}

/// The micro-kernel shared by `Q K^T` and `P V`, one 16-column panel: the 8 x 16 f16
/// accumulators `v16..v31` = the sum over `{n}` groups of 8 ([`group_8x16!`]; the first one
/// starts them with FMUL). Uses `v0..v11`, `v16..v31`; `{n} >= 1`.
#[rustfmt::skip]
macro_rules! core_8x16 {
    () => {
        concat!(
            group_8x16!("fmul"),
            "subs {n}, {n}, #1\n",
            "b.eq 8f\n",
            "7:\n",
            group_8x16!("fmla"),
            "subs {n}, {n}, #1\n",
            "b.ne 7b\n",
            "8:\n",
        )
    };
}

/// The loop over the `{np}` 16-column panels of both micro-kernels: per panel, restarts `{a}` at
/// `{a0}`, `{b}` at `{b0}` and the output pointer `$out` at `$out0` with `{n} = {n8}`, runs
/// [`core_8x16!`] and the epilogue (the remaining arguments, each followed by a comma), then moves `{b0}` 16 columns (32
/// bytes) and `$out0` 16 outputs (64 bytes) on.
#[rustfmt::skip]
macro_rules! panels_8x16 {
    ($out:literal, $out0:literal, $($epilogue:tt)*) => {
        concat!(
            "2:\n",
            "mov {a}, {a0}\n",
            "mov {b}, {b0}\n",
            "mov {n}, {n8}\n",
            "mov ", $out, ", ", $out0, "\n",
            core_8x16!(),
            $($epilogue)*
            "add {b0}, {b0}, #32\n",
            "add ", $out0, ", ", $out0, ", #64\n",
            "subs {np}, {np}, #1\n",
            "b.ne 2b\n",
        )
    };
}

/// Widens one row's 16 f16 accumulators (`$a`, `$b`) into `$w0..$w3`.
#[rustfmt::skip]
macro_rules! widen_row {
    ($a:literal, $b:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal) => {
        concat!(
            "fcvtl ", $w0, ".4s, ", $a, ".4h\n", "fcvtl2 ", $w1, ".4s, ", $a, ".8h\n",
            "fcvtl ", $w2, ".4s, ", $b, ".4h\n", "fcvtl2 ", $w3, ".4s, ", $b, ".8h\n",
        )
    };
}

/// Stores one row's 16 scores `v12..v15` at `{s}` (advanced by `{ss}` bytes) and their 4-lane
/// maximum at `{mx}` (advanced by 16 bytes).
#[rustfmt::skip]
macro_rules! store_scores {
    () => {
        concat!(
            "st1 {{v12.4s, v13.4s, v14.4s, v15.4s}}, [{s}], {ss}\n",
            "fmax v0.4s, v12.4s, v13.4s\n",
            "fmax v1.4s, v14.4s, v15.4s\n",
            "fmax v0.4s, v0.4s, v1.4s\n",
            "str q0, [{mx}], #16\n",
        )
    };
}

/// One row's 16 scores of the first chunk of head dimensions.
#[rustfmt::skip]
macro_rules! qk_store_row {
    ($a:literal, $b:literal, $_c:literal) => {
        concat!(widen_row!($a, $b, "v12", "v13", "v14", "v15"), store_scores!())
    };
}

/// As [`qk_store_row!`], adding the scores of the earlier chunks (already at `{s}`).
#[rustfmt::skip]
macro_rules! qk_add_row {
    ($a:literal, $b:literal, $_c:literal) => {
        concat!(
            "ld1 {{v0.4s, v1.4s, v2.4s, v3.4s}}, [{s}]\n",
            widen_row!($a, $b, "v12", "v13", "v14", "v15"),
            "fadd v12.4s, v12.4s, v0.4s\n", "fadd v13.4s, v13.4s, v1.4s\n",
            "fadd v14.4s, v14.4s, v2.4s\n", "fadd v15.4s, v15.4s, v3.4s\n",
            store_scores!(),
        )
    };
}

/// One row's output panel: `o = o * corr + widen(acc)` at `{o}`, advanced by `{os}` bytes (the
/// rows' factors are in `v12`, `v13`).
#[rustfmt::skip]
macro_rules! pv_row {
    ($a:literal, $b:literal, $c:literal) => {
        concat!(
            "ld1 {{v0.4s, v1.4s, v2.4s, v3.4s}}, [{o}]\n",
            widen_row!($a, $b, "v4", "v5", "v6", "v7"),
            "fmla v4.4s, v0.4s, ", $c, "\n", "fmla v5.4s, v1.4s, ", $c, "\n",
            "fmla v6.4s, v2.4s, ", $c, "\n", "fmla v7.4s, v3.4s, ", $c, "\n",
            "st1 {{v4.4s, v5.4s, v6.4s, v7.4s}}, [{o}], {os}\n",
        )
    };
}

/// `s[r][16p..16p + 16] (+)= sum_{i < 8 n8} q[r][i] * kt[i][16p..16p + 16]` for the 8 rows of one
/// group and the panels `p < np`: stores (`add == false`) or adds to the scores there; and
/// `mx[(8 p + r) * 4..+4]` = the 4-lane maximum of the row's 16 resulting scores of panel `p`.
///
/// # Safety
/// The CPU has FEAT_FP16; `q` points to `n8` packed groups (`n8 * 64` halves), `kt` to `8 n8`
/// rows of 64 halves (16 read per panel), `s` to 8 rows of `ss` bytes with `16 np <= 64` floats
/// written in each, `mx` to `32 np` floats; `n8 >= 1`, `np >= 1`.
#[target_feature(enable = "neon,fp16")]
#[allow(clippy::too_many_arguments)]
unsafe fn qk_8rows(
    q: *const f16,
    kt: *const f16,
    n8: usize,
    s: *mut f32,
    ss: usize,
    mx: *mut f32,
    np: usize,
    add: bool,
) {
    // SAFETY: the caller guarantees the pointers and shapes above; the asm reads q[0..64 n8],
    // kt rows 0..8 n8 at columns 0..16 np, writes (reads) s rows 0..8 at columns 0..16 np and
    // mx[0..32 np], and clobbers only declared registers.
    unsafe {
        std::arch::asm!(
            panels_8x16!(
                "{s}", "{s0}",
                "cbnz {add}, 5f\n",
                each_row!(qk_store_row),
                "b 6f\n",
                "5:\n",
                each_row!(qk_add_row),
                "6:\n",
            ),
            a0 = in(reg) q,
            a = out(reg) _,
            b0 = inout(reg) kt => _,
            b = out(reg) _,
            bs = in(reg) 2 * KV_TILE,
            n8 = in(reg) n8,
            n = out(reg) _,
            s0 = inout(reg) s => _,
            s = out(reg) _,
            ss = in(reg) ss,
            mx = inout(reg) mx => _,
            np = inout(reg) np => _,
            add = in(reg) add as usize,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}

/// `o[r][16p..16p + 16] = o[r][..] * corr[r] + sum_{j < 8 n8} p[r][j] * v[j][16p..16p + 16]` for
/// the 8 rows of one group and the panels `p < np`.
///
/// # Safety
/// The CPU has FEAT_FP16; `p` points to `n8` packed groups (`n8 * 64` halves), `v` to `8 n8`
/// rows of `vs` bytes (16 halves read per panel, `32 np <= vs`), `corr` to 8 floats, `o` to 8
/// rows of `os` bytes (16 floats read and written per panel, `64 np <= os`); `n8, np >= 1`.
#[target_feature(enable = "neon,fp16")]
#[allow(clippy::too_many_arguments)]
unsafe fn pv_8rows(
    p: *const f16,
    v: *const f16,
    vs: usize,
    n8: usize,
    corr: *const f32,
    o: *mut f32,
    os: usize,
    np: usize,
) {
    // SAFETY: the caller guarantees the pointers and shapes above; the asm reads p[0..64 n8],
    // v rows 0..8 n8 at columns 0..16 np, corr[0..8], reads and writes o rows 0..8 at columns
    // 0..16 np, and clobbers only declared registers.
    unsafe {
        std::arch::asm!(
            "ldp q12, q13, [{corr}]\n",
            panels_8x16!("{o}", "{o0}", each_row!(pv_row),),
            a0 = in(reg) p,
            a = out(reg) _,
            b0 = inout(reg) v => _,
            b = out(reg) _,
            bs = in(reg) vs,
            n8 = in(reg) n8,
            n = out(reg) _,
            corr = in(reg) corr,
            o0 = inout(reg) o => _,
            o = out(reg) _,
            os = in(reg) os,
            np = inout(reg) np => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}

/// The online-softmax step ([`Fp16::softmax`]) of the fp16 path, in log2 units (Q carries `log2 e`): weights
/// `2^(s - m)` from [`exp2_biased`], written packed (`[row group][key group][row]
/// [8]`), 8 per FCVTN pair. A row that sees every key `qk` computed takes its maximum from
/// `qk`'s panel maxima (after the `rows x 64` scores); a masked row masks its tail in place.
/// The rescale factors `2^(m - m')` come from the same exp, 4 rows at a time (relative error
/// below 1.1e-4, applied alike to the output and the sum).
#[target_feature(enable = "neon")]
fn softmax_tile(
    s: &mut [f32],
    rows: usize,
    nk: usize,
    mask: Mask,
    st: &mut Stats<'_>,
    p: &mut [f16],
) {
    let ng = nk.div_ceil(8);
    let np = nk.div_ceil(16);
    let rp = rows.next_multiple_of(R);
    assert!(nk > 0 && nk <= KEYS && s.len() >= rp * (KEYS + MX_ROW));
    assert!(p.len() >= rp * KEYS && mask.group > 0);
    assert!(st.m.len() >= rows && st.l.len() >= rows && st.corr.len() >= rows);
    let (sp, mx) = s.split_at_mut(rp * KEYS);
    // Keys of the tile each row sees (`mask.valid`, counted up per position).
    let valid = || {
        let (mut seen, mut hh) = (mask.first, 0);
        (0..rows).map(move |_| {
            let v = seen.clamp(0, nk as isize) as usize;
            hh += 1;
            if hh == mask.group {
                hh = 0;
                seen += 1;
            }
            v
        })
    };
    // SAFETY (pointer arithmetic below): row r's scores are sp[KEYS r..KEYS (r + 1)], its panel
    // maxima mx[8 MX_ROW (r / 8) + 4 (r % 8) + 32 pn..+4] for pn < np <= KEYS / 16, its packed
    // weights p[packed(r, g, KEYS / 8)..+8] for g < KEYS / 8: all inside the asserted lengths.
    // 1. New row maxima; corr[r] = m - m' (0 for a row that sees no key).
    for (r, valid) in valid().enumerate() {
        if valid == 0 {
            st.corr[r] = 0.0;
            continue;
        }
        let m_tile = if valid == 16 * np {
            let mr = unsafe { mx.as_ptr().add(R * MX_ROW * (r / R) + 4 * (r % R)) };
            let mut m = unsafe { vld1q_f32(mr) };
            for pn in 1..np {
                m = vmaxq_f32(m, unsafe { vld1q_f32(mr.add(32 * pn)) });
            }
            vmaxvq_f32(m)
        } else {
            let sr = unsafe { sp.as_mut_ptr().add(r * KEYS) };
            for j in valid..valid.next_multiple_of(8) {
                unsafe { *sr.add(j) = f32::NEG_INFINITY };
            }
            let (mut m0, mut m1) = (
                vdupq_n_f32(f32::NEG_INFINITY),
                vdupq_n_f32(f32::NEG_INFINITY),
            );
            for g in 0..valid.div_ceil(8) {
                unsafe {
                    m0 = vmaxq_f32(m0, vld1q_f32(sr.add(8 * g)));
                    m1 = vmaxq_f32(m1, vld1q_f32(sr.add(8 * g + 4)));
                }
            }
            vmaxvq_f32(vmaxq_f32(m0, m1))
        };
        let m_new = st.m[r].max(m_tile);
        st.corr[r] = st.m[r] - m_new;
        st.m[r] = m_new;
    }
    // 2. corr = 2^(m - m'), 4 rows at a time.
    let c = st.corr.as_mut_ptr();
    let bias = vdupq_n_f32(BIAS);
    let mut i = 0;
    while i + 4 <= rows {
        // SAFETY: i + 4 <= rows <= st.corr.len().
        unsafe { vst1q_f32(c.add(i), exp2_biased(vaddq_f32(vld1q_f32(c.add(i)), bias))) };
        i += 4;
    }
    if i < rows {
        let mut x = [0f32; 4];
        for (j, x) in x.iter_mut().enumerate() {
            if i + j < rows {
                *x = st.corr[i + j];
            }
        }
        let e = exp2_biased(vaddq_f32(unsafe { vld1q_f32(x.as_ptr()) }, bias));
        unsafe { vst1q_f32(x.as_mut_ptr(), e) };
        for (j, &x) in x.iter().enumerate() {
            if i + j < rows {
                st.corr[i + j] = x;
            }
        }
    }
    // 3. Weights and sums.
    for (r, valid) in valid().enumerate() {
        let pr = unsafe { p.as_mut_ptr().add(packed(r, 0, KEYS / 8)) as *mut u16 };
        let vg = valid.div_ceil(8);
        let mut sum = vdupq_n_f32(0.0);
        if valid > 0 {
            let sr = unsafe { sp.as_ptr().add(r * KEYS) };
            let mv = vdupq_n_f32(st.m[r] - BIAS);
            for g in 0..vg {
                unsafe {
                    let a = exp2_biased(vsubq_f32(vld1q_f32(sr.add(8 * g)), mv));
                    let b = exp2_biased(vsubq_f32(vld1q_f32(sr.add(8 * g + 4)), mv));
                    sum = vaddq_f32(sum, vaddq_f32(a, b));
                    vst1q_u16(pr.add(g * R * 8), narrow8(a, b));
                }
            }
        } else {
            st.corr[r] = 1.0;
        }
        for g in vg..ng {
            unsafe { vst1q_u16(pr.add(g * R * 8), vdupq_n_u16(0)) };
        }
        st.l[r] = st.l[r] * st.corr[r] + vaddvq_f32(sum);
    }
}

/// Rows per micro-tile (and per packed group of Q and P).
const R: usize = 8;
/// Floats per row after the scores: `qk`'s 4-lane maxima of the row's 16-key panels.
const MX_ROW: usize = KEYS / 16 * 4;

/// Offset (in halves) of row `r`'s 8 values of group `g` in a packed `[row group][group][row][8]`
/// buffer with `groups` groups per row.
#[inline]
fn packed(r: usize, g: usize, groups: usize) -> usize {
    ((r / R * groups + g) * R + r % R) * 8
}

impl AttnKernel for Fp16 {
    type E = f16;
    const ROWS: usize = R;
    const KEYS: usize = KEYS;
    const S_EXTRA: usize = MX_ROW;
    const M_UNIT: f32 = std::f32::consts::LN_2;

    unsafe fn load_q(src: &[f32], scale: f32, r: usize, qb: &mut [f16]) {
        let scale = scale * std::f32::consts::LOG2_E;
        let d = src.len();
        let groups = d / 8;
        assert!(d.is_multiple_of(8) && qb.len() >= packed(r, groups - 1, groups) + 8);
        for g in 0..groups {
            // SAFETY: 8 g + 8 <= d; the destination's 8 halves lie inside `qb` (asserted for the
            // last group, earlier groups are at lower offsets).
            unsafe {
                let a = vmulq_n_f32(vld1q_f32(src.as_ptr().add(8 * g)), scale);
                let b = vmulq_n_f32(vld1q_f32(src.as_ptr().add(8 * g + 4)), scale);
                let dst = qb.as_mut_ptr().add(packed(r, g, groups)) as *mut u16;
                vst1q_u16(dst, narrow8(a, b));
            }
        }
    }

    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [f16],
        vbuf: &'a mut [f16],
    ) -> (&'a [f16], &'a [f16]) {
        // `pv` reads whole groups of 8 value rows: a tile whose `nk` is not a multiple of 8 gets
        // its value rows copied and padded with zero rows (the matching weights are zero, and
        // zero rows keep stale, possibly non-finite, cache contents out of the products).
        let n8 = nk.next_multiple_of(8);
        let pad = |v: &[f16], vbuf: &'a mut [f16]| -> &'a [f16] {
            vbuf[..nk * d].copy_from_slice(&v[..nk * d]);
            vbuf[nk * d..n8 * d].fill(f16::ZERO);
            &vbuf[..n8 * d]
        };
        match t {
            Tile::F16 { kt, v } if n8 == nk => (kt, &v[..nk * d]),
            Tile::F16 { kt, v } => (kt, pad(v, vbuf)),
            Tile::F32 { kt, v } => {
                to_f16(kt, 1.0, &mut kbuf[..kt.len()]);
                to_f16(&v[..nk * d], 1.0, &mut vbuf[..nk * d]);
                vbuf[nk * d..n8 * d].fill(f16::ZERO);
                (&kbuf[..kt.len()], &vbuf[..n8 * d])
            }
        }
    }

    unsafe fn qk_softmax(
        q: &[f16],
        rows: usize,
        real: usize,
        d: usize,
        kt: &[f16],
        nk: usize,
        mask: Mask,
        s: &mut [f32],
        st: &mut Stats<'_>,
        p: &mut [f16],
    ) {
        // SAFETY: FEAT_FP16 (the trait's contract); the functions check the shapes.
        unsafe {
            Self::qk(q, rows, d, kt, nk, s);
            Self::softmax(s, real, nk, mask, st, p);
        }
    }

    unsafe fn pv(
        p: &[f16],
        rows: usize,
        nk: usize,
        _mask: Mask,
        v: &[f16],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    ) {
        let n8 = nk.div_ceil(8);
        assert!(rows.is_multiple_of(R) && d.is_multiple_of(16) && d > 0);
        assert!(nk > 0 && nk <= KEYS && p.len() >= rows * KEYS && v.len() >= n8 * 8 * d);
        assert!(corr.len() >= rows && o.len() >= rows * d);
        for rg in 0..rows / R {
            // SAFETY: FEAT_FP16 (the trait's contract); group rg's packed P holds KEYS / 8
            // groups of 64 halves from rg * 8 KEYS (n8 <= KEYS / 8 read); v has 8 n8 rows of d halves (stride 2 d
            // bytes, 16 d / 16 = d columns read); corr rows 8 rg..+8; o rows 8 rg..+8 of d floats.
            unsafe {
                pv_8rows(
                    p.as_ptr().add(rg * R * KEYS),
                    v.as_ptr(),
                    2 * d,
                    n8,
                    corr.as_ptr().add(rg * R),
                    o.as_mut_ptr().add(rg * R * d),
                    4 * d,
                    d / 16,
                )
            };
        }
    }
}

/// Not fused: [`AttnKernel::qk_softmax`] is these two passes.
impl Fp16 {
    /// The scores of [`AttnKernel::qk_softmax`] in `s` (`rows x KEYS`), and after them each
    /// row's 4-lane maxima of its 16-key panels (`MX_ROW` floats per row) for [`Self::softmax`].
    ///
    /// # Safety
    /// FEAT_FP16.
    unsafe fn qk(q: &[f16], rows: usize, d: usize, kt: &[f16], nk: usize, s: &mut [f32]) {
        let tiles = nk.div_ceil(KV_TILE);
        assert!(rows.is_multiple_of(R) && d.is_multiple_of(16) && d > 0);
        assert!(q.len() >= rows * d && kt.len() >= tiles * KV_TILE * d);
        assert!(s.len() >= rows * (KEYS + MX_ROW) && nk > 0 && nk <= KEYS);
        let (sp, mx) = s.split_at_mut(rows * KEYS);
        for rg in 0..rows / R {
            for t in 0..tiles {
                let np = (nk - t * KV_TILE).min(KV_TILE).div_ceil(16);
                let mut i0 = 0;
                while i0 < d {
                    let n = CHUNK.min(d - i0);
                    // SAFETY: FEAT_FP16 (the trait's contract); group rg's packed Q holds d / 8
                    // groups of 64 halves from (rg d / 8) * 64, of which n / 8 are read from
                    // i0 / 8; tile t of kt has rows i0..i0 + n of 64 halves (16 np <= 64
                    // columns); sp rows 8 rg.. of KEYS floats at columns 64 t..64 t + 16 np;
                    // mx panels 4 t..4 t + np of row group rg (MX_ROW floats per row).
                    unsafe {
                        qk_8rows(
                            q.as_ptr().add((rg * d / 8 + i0 / 8) * 64),
                            kt.as_ptr().add((t * d + i0) * KV_TILE),
                            n / 8,
                            sp.as_mut_ptr().add(rg * R * KEYS + t * KV_TILE),
                            4 * KEYS,
                            mx.as_mut_ptr()
                                .add(rg * R * MX_ROW + t * (KV_TILE / 16) * R * 4),
                            np,
                            i0 > 0,
                        )
                    };
                    i0 += n;
                }
            }
        }
    }

    /// The online-softmax step of [`AttnKernel::qk_softmax`] on the scores and panel maxima
    /// that [`Self::qk`] left in `s`.
    ///
    /// # Safety
    /// FEAT_FP16.
    unsafe fn softmax(
        s: &mut [f32],
        rows: usize,
        nk: usize,
        mask: Mask,
        st: &mut Stats<'_>,
        p: &mut [f16],
    ) {
        // SAFETY: NEON is present on every aarch64 CPU.
        unsafe { softmax_tile(s, rows, nk, mask, st, p) }
    }
}
