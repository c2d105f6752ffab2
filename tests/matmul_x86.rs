//! What is specific to the x86_64 matmul kernels (tiles of 4 or 8 rows x 8 or 16 columns, GEMV
//! tiles for at most 3 rows, column panels of 64), against `qkern-reference`, on every tier:
//! every M from 1 to 17, N around every tile and panel edge, sub-ranges that start and end inside
//! a tile, K up to 8960, outputs and inputs that end at a `PROT_NONE` page, pack/unpack round
//! trips with odd scales.
//!
//! Tolerance, as in `tests/matmul.rs`: block integer sums are exact, so the difference from the
//! f64 reference is f32 rounding of the block combination, bounded by
//! `(K/32 + 3) * 2^-24 * sum_b |d_w d_x isum_b|` (+ |bias|) for any order of the sum (each term
//! is rounded at most twice: `d_w * d_x`, then the fused multiply-add; the sum adds one rounding
//! per block; the bias one more); the tests allow 2x that bound. One unit of integer error in one
//! block is `d_w * d_x`, far above the bound for these scales.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{guard::Guarded, to_ref_act, to_ref_q4, Rng};
use qkern::quant::BlockQ4_0;
use qkern::Tier;
use qkern::{matmul_range, PackedQ4_0, QuantizedActivations};
use qkern_reference as r;
use std::ops::Range;

struct Case {
    m: usize,
    n: usize,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: bool,
}

/// Packs, quantizes and multiplies `c` on `tier` (inputs and output in guarded buffers, the output
/// with row stride `ldo = cols + pad` so that the gaps must stay untouched) and compares with the
/// reference.
fn check(tier: Tier, c: &Case, rng: &mut Rng) {
    let blocks = rng.q4_blocks(c.n * c.k / 32);
    let x = Guarded::from_slice(&rng.vec(c.m * c.k, 2.0));
    let bias = c.bias.then(|| Guarded::from_slice(&rng.vec(c.n, 1.0)));
    let w = PackedQ4_0::with_tier(&blocks, c.n, c.k, tier).unwrap();
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, c.m, c.k).unwrap();
    let ref_a = r::quantize_activations(&x);
    assert_eq!(to_ref_act(&a.blocks()), ref_a);

    let pad = 2;
    let ldo = c.cols.len() + pad;
    // Exactly the elements the call may touch: the last row ends at the guard page.
    let len = (c.rows.len() - 1) * ldo + c.cols.len();
    let mut out = Guarded::filled(f32::NAN, len);
    matmul_range(
        &w,
        &a,
        c.rows.clone(),
        c.cols.clone(),
        bias.as_deref(),
        &mut out,
        ldo,
    )
    .unwrap();

    let rw = to_ref_q4(&blocks);
    let want = r::matmul_q4_0(&rw, &ref_a, c.n, c.k, bias.as_deref());
    let scale = r::matmul_error_scale(&rw, &ref_a, c.n, c.k, bias.as_deref(), |w, a| {
        (w.d.to_f64(), r::block_dot_q4(w, a))
    });
    let tol_factor = 2.0 * (c.k / 32 + 3) as f64 * 2f64.powi(-24);
    for (ri, i) in c.rows.clone().enumerate() {
        for cj in 0..ldo {
            let at = ri * ldo + cj;
            if at >= len {
                break;
            }
            let got = out[at];
            if cj >= c.cols.len() {
                assert!(
                    got.is_nan(),
                    "tier {tier}: wrote the gap at row {i}, offset {cj}"
                );
                continue;
            }
            let idx = i * c.n + c.cols.start + cj;
            let tol = tol_factor * scale[idx] + f64::MIN_POSITIVE;
            assert!(
                (got as f64 - want[idx]).abs() <= tol,
                "tier {tier} m={} n={} k={} rows {:?} cols {:?} at ({i},{}): got {got}, want {}",
                c.m,
                c.n,
                c.k,
                c.rows,
                c.cols,
                c.cols.start + cj,
                want[idx]
            );
        }
    }
}

/// Every M in 1..=17 (GEMV tiles, full tiles of 4 and 8 rows and every row tail) against N
/// around the 8/16-column groups and the 64-column panels.
fn every_m_and_tile_tail(tier: Tier) {
    let mut rng = Rng(11);
    for m in 1..=17 {
        for n in [1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 80, 129] {
            let k = if (m + n) % 2 == 0 { 32 } else { 96 };
            let c = Case {
                m,
                n,
                k,
                rows: 0..m,
                cols: 0..n,
                bias: n % 3 == 0,
            };
            check(tier, &c, &mut rng);
        }
    }
}

/// Sub-ranges whose ends fall inside a row tile, a column group and a panel.
fn sub_ranges_inside_tiles(tier: Tier) {
    let mut rng = Rng(12);
    let (m, n, k) = (21, 150, 64);
    let row_cuts = [0..21, 0..1, 1..4, 3..12, 5..6, 7..20, 9..21, 2..13];
    let col_cuts = [
        0..150,
        1..2,
        3..9,
        5..21,
        15..17,
        17..63,
        60..70,
        63..129,
        100..150,
        149..150,
    ];
    for rows in row_cuts {
        for cols in col_cuts.clone() {
            let c = Case {
                m,
                n,
                k,
                rows: rows.clone(),
                cols,
                bias: true,
            };
            check(tier, &c, &mut rng);
        }
    }
}

/// K = 8960 (Qwen2.5-1.5B's FFN down projection): 280 blocks per output.
fn large_k(tier: Tier) {
    let mut rng = Rng(13);
    for (m, n, rows, cols) in [
        (1, 40, 0..1, 0..40),
        (3, 19, 1..3, 2..19),
        (13, 33, 0..13, 0..33),
        (17, 24, 5..17, 7..23),
    ] {
        let c = Case {
            m,
            n,
            k: 8960,
            rows,
            cols,
            bias: m % 2 == 1,
        };
        check(tier, &c, &mut rng);
    }
}

/// Unpacking gives back the exact blocks, including NaN/inf/subnormal/negative-zero scales, for
/// N on both sides of every group width.
fn pack_round_trip(tier: Tier) {
    let mut rng = Rng(14);
    for n in [1, 7, 8, 9, 15, 16, 17, 33] {
        for kb in [1, 3] {
            let mut blocks = rng.q4_blocks(n * kb);
            let odd = [0x7E01u16, 0xFC00, 0x7C00, 0x0001, 0x8000, 0x7BFF, 0xFE00];
            for (b, bits) in blocks.iter_mut().zip(odd.iter().cycle()) {
                if rng.next_u64().is_multiple_of(3) {
                    b.d = half::f16::from_bits(*bits);
                }
            }
            let w = PackedQ4_0::with_tier(&blocks, n, kb * 32, tier).unwrap();
            let back: Vec<BlockQ4_0> = w.unpack();
            assert_eq!(back.len(), blocks.len());
            for (x, y) in back.iter().zip(&blocks) {
                assert_eq!(x.d.to_bits(), y.d.to_bits());
                assert_eq!(x.qs, y.qs);
            }
        }
    }
}

per_tier_test!(every_m_with_tile_tails, super::every_m_and_tile_tail);
per_tier_test!(
    sub_ranges_starting_inside_tiles,
    super::sub_ranges_inside_tiles
);
per_tier_test!(large_k_8960, super::large_k);
per_tier_test!(pack_unpack_round_trip, super::pack_round_trip);
