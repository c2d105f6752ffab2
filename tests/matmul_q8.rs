//! Q8_0 x int8 matmul on every tier against `qkern-reference`.
//!
//! Tolerance, as for Q4_0 (tests/matmul.rs): integer block sums are exact, so the only difference
//! from the f64 reference is f32 rounding of the block combination, bounded by
//! `(K/32 + 3) * 2^-24 * sum_b |d_w d_x isum_b|` (`qkern_reference::matmul_error_scale`) for any
//! summation order; the tests allow 2x that bound. One integer unit wrong in one block is
//! `d_w * d_x`, far above the bound, so it cannot hide in the tolerance.

mod common;

use common::{guard::Guarded, to_ref_act, Rng};
use proptest::prelude::*;
use qkern::kernels::matmul::{matmul, PackedQ4_0, QuantizedActivations};
use qkern::kernels::matmul_q8::{matmul_q8, matmul_q8_parallel, matmul_q8_range, PackedQ8_0};
use qkern::quant::BlockQ8_0;
use qkern::{Error, Tier};
use qkern_reference as r;
use std::ops::Range;

fn to_ref_q8(b: &[BlockQ8_0]) -> Vec<r::BlockQ8_0> {
    b.iter()
        .map(|b| r::BlockQ8_0 { d: b.d, qs: b.qs })
        .collect()
}

/// Random Q8_0 blocks: every int8 value including -128, scales spread over several octaves.
fn q8_blocks(rng: &mut Rng, n: usize) -> Vec<BlockQ8_0> {
    (0..n)
        .map(|_| {
            let mut qs = [0i8; 32];
            for q in &mut qs {
                *q = rng.next_u64() as i8;
            }
            let e = (rng.next_u64() % 8) as i32 - 6;
            BlockQ8_0 {
                d: half::f16::from_f32(rng.f32() * 2f32.powi(e)),
                qs,
            }
        })
        .collect()
}

/// The outputs of one call: rows x cols written to `out` with row stride `ldo`.
struct Region<'a> {
    rows: Range<usize>,
    cols: Range<usize>,
    out: &'a [f32],
    ldo: usize,
}

fn check_against_reference(
    blocks: &[BlockQ8_0],
    x: &[f32],
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    Region {
        rows,
        cols,
        out,
        ldo,
    }: Region<'_>,
    tier: Tier,
) {
    let rw = to_ref_q8(blocks);
    let ra = r::quantize_activations(x);
    let want = r::matmul_q8_0(&rw, &ra, n, k, bias);
    let scale = r::matmul_error_scale(&rw, &ra, n, k, bias, |w, a| {
        (w.d.to_f64(), r::block_dot_q8(w, a))
    });
    let tol_factor = 2.0 * (k / 32 + 3) as f64 * 2f64.powi(-24);
    for i in rows.clone() {
        for j in cols.clone() {
            let got = out[(i - rows.start) * ldo + (j - cols.start)] as f64;
            let idx = i * n + j;
            let tol = tol_factor * scale[idx] + f64::MIN_POSITIVE;
            assert!(
                (got - want[idx]).abs() <= tol,
                "tier {tier} m={m} n={n} k={k} at ({i},{j}): got {got}, want {}, tol {tol}",
                want[idx]
            );
        }
    }
}

fn whole(m: usize, n: usize, out: &[f32]) -> Region<'_> {
    Region {
        rows: 0..m,
        cols: 0..n,
        out,
        ldo: n,
    }
}

/// A bad `matmul_q8_range` call: rows, cols, bias, output length, ldo, what is wrong.
type BadCall<'a> = (
    Range<usize>,
    Range<usize>,
    Option<&'a [f32]>,
    usize,
    usize,
    &'a str,
);

struct Case {
    m: usize,
    n: usize,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: bool,
    seed: u64,
}

fn check(tier: Tier, c: &Case) {
    let mut rng = Rng(c.seed | 1);
    let blocks = q8_blocks(&mut rng, c.n * c.k / 32);
    let x = Guarded::from_slice(&rng.vec(c.m * c.k, 3.0));
    let bias = c.bias.then(|| Guarded::from_slice(&rng.vec(c.n, 1.0)));

    let w = PackedQ8_0::with_tier(&blocks, c.n, c.k, tier).unwrap();
    assert_eq!(w.unpack(), blocks, "packing must be lossless");
    assert_eq!((w.n(), w.k(), w.tier()), (c.n, c.k, tier));
    let mut row = Guarded::filled(f32::NAN, c.k);
    for j in [0, c.n / 2, c.n - 1] {
        w.dequantize_row(j, &mut row).unwrap();
        assert_eq!(&row[..], r::embedding_q8_0(&to_ref_q8(&blocks), c.k, j));
    }
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, c.m, c.k).unwrap();
    assert_eq!(to_ref_act(&a.blocks()), r::quantize_activations(&x));

    let ldo = c.cols.len();
    let mut out = Guarded::filled(f32::NAN, c.rows.len() * ldo);
    matmul_q8_range(
        &w,
        &a,
        c.rows.clone(),
        c.cols.clone(),
        bias.as_deref(),
        &mut out,
        ldo,
    )
    .unwrap();
    check_against_reference(
        &blocks,
        &x,
        bias.as_deref(),
        (c.m, c.n, c.k),
        Region {
            rows: c.rows.clone(),
            cols: c.cols.clone(),
            out: &out,
            ldo,
        },
        tier,
    );
}

fn random_shapes(tier: Tier) {
    let cases = if cfg!(target_arch = "aarch64") {
        24
    } else {
        64
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let strategy = (
        1usize..=17,
        1usize..=70,
        1usize..=10,
        any::<bool>(),
        any::<u64>(),
        any::<[u16; 4]>(),
    );
    runner
        .run(&strategy, |(m, n, kb, bias, seed, cut)| {
            let r0 = cut[0] as usize % m;
            let r1 = r0 + 1 + cut[1] as usize % (m - r0);
            let c0 = cut[2] as usize % n;
            let c1 = c0 + 1 + cut[3] as usize % (n - c0);
            check(
                tier,
                &Case {
                    m,
                    n,
                    k: kb * 32,
                    rows: r0..r1,
                    cols: c0..c1,
                    bias,
                    seed,
                },
            );
            Ok(())
        })
        .unwrap();
}

fn fixed_edges(tier: Tier) {
    for (m, n, k) in [
        (1, 1, 32),
        (2, 5, 32),
        (3, 17, 64),
        (1, 300, 896),
        (17, 33, 128),
        (8, 16, 32),
        (16, 4, 96),
    ] {
        for bias in [false, true] {
            check(
                tier,
                &Case {
                    m,
                    n,
                    k,
                    rows: 0..m,
                    cols: 0..n,
                    bias,
                    seed: (m * 1000 + n + k) as u64,
                },
            );
        }
    }
}

/// Extreme values: weights -128 and 127, activations hitting +-127, zero blocks, subnormal and
/// maximal f16 scales.
fn extreme_values(tier: Tier) {
    let (m, n, k) = (5, 19, 96);
    let blocks: Vec<BlockQ8_0> = (0..n * k / 32)
        .map(|i| BlockQ8_0 {
            d: half::f16::from_f32([1.0f32, 6.0e-8, 0.0, -2.5, 65504.0][i % 5]),
            qs: [[-128i8; 32], [127; 32], [0; 32], [-1; 32]][i % 4],
        })
        .collect();
    let mut x: Vec<f32> = (0..m * k)
        .map(|i| match i % 7 {
            0 => 1e-3,
            1 => -1e-3,
            2 => 0.0,
            3 => 5.0,
            4 => -5.0,
            _ => (i as f32).sin(),
        })
        .collect();
    x[k..2 * k].fill(0.0);
    x[2 * k..3 * k].fill(-7.0);
    let w = PackedQ8_0::with_tier(&blocks, n, k, tier).unwrap();
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, m, k).unwrap();
    let mut out = Guarded::filled(f32::NAN, m * n);
    matmul_q8(&w, &a, None, &mut out).unwrap();
    check_against_reference(&blocks, &x, None, (m, n, k), whole(m, n, &out), tier);
}

fn bad_input(tier: Tier) {
    let blocks = vec![
        BlockQ8_0 {
            d: half::f16::ONE,
            qs: [3; 32]
        };
        4
    ];
    assert!(matches!(
        PackedQ8_0::with_tier(&blocks, 2, 48, tier),
        Err(Error::NotBlockAligned { .. })
    ));
    assert!(matches!(
        PackedQ8_0::with_tier(&blocks, 3, 64, tier),
        Err(Error::BadLength { .. })
    ));
    assert!(PackedQ8_0::with_tier(&blocks, 0, 64, tier).is_err());
    assert!(matches!(
        PackedQ8_0::with_tier(&blocks, usize::MAX / 2 + 1, 64, tier),
        Err(Error::Overflow(_))
    ));
    let w = PackedQ8_0::with_tier(&blocks, 2, 64, tier).unwrap();
    assert!(
        w.dequantize_row(2, &mut [0.0; 64]).is_err(),
        "row out of range"
    );
    assert!(w.dequantize_row(1, &mut [0.0; 63]).is_err(), "short row");
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    let mut out = vec![0f32; 8];
    assert!(
        matmul_q8_range(&w, &a, 0..1, 0..2, None, &mut out, 2).is_err(),
        "empty activations"
    );
    a.quantize(&[0.0; 64], 2, 32).unwrap();
    assert!(
        matmul_q8_range(&w, &a, 0..2, 0..2, None, &mut out, 2).is_err(),
        "K mismatch"
    );
    a.quantize(&[0.5; 128], 2, 64).unwrap();
    let bad: [BadCall<'_>; 6] = [
        (0..3, 0..2, None, 8, 2, "rows out of range"),
        (0..2, 1..3, None, 8, 2, "cols out of range"),
        (0..2, 0..2, Some(&[1.0]), 8, 2, "short bias"),
        (0..2, 0..2, None, 3, 2, "short out"),
        (0..2, 0..2, None, 8, 1, "ldo too small"),
        (0..2, 0..2, None, 8, usize::MAX, "ldo overflow"),
    ];
    for (rows, cols, bias, len, ldo, what) in bad {
        assert!(
            matmul_q8_range(&w, &a, rows, cols, bias, &mut out[..len], ldo).is_err(),
            "{what}"
        );
    }
    assert!(matmul_q8(&w, &a, None, &mut out[..3]).is_err(), "short out");
    let pool = qkern::parallel::ThreadPool::new(2);
    assert!(matmul_q8_parallel(&pool, &w, &a, None, &mut out[..3]).is_err());
    assert!(
        matmul_q8_range(&w, &a, 1..1, 0..2, None, &mut [], 2).is_ok(),
        "empty range is a no-op"
    );
    if let Some(other) = Tier::available().into_iter().find(|&t| t != tier) {
        let b = QuantizedActivations::with_tier(other).unwrap();
        assert!(matmul_q8_range(&w, &b, 0..1, 0..1, None, &mut out, 2).is_err());
    }
}

/// The parallel driver computes each element with the same kernel as a single call: bit-identical.
fn parallel_matches_serial(tier: Tier) {
    let pool = qkern::parallel::ThreadPool::new(3);
    let mut rng = Rng(78);
    for (m, n, k) in [(1, 200, 64), (70, 130, 96), (130, 65, 32)] {
        let blocks = q8_blocks(&mut rng, n * k / 32);
        let x = rng.vec(m * k, 2.0);
        let bias = rng.vec(n, 1.0);
        let w = PackedQ8_0::with_tier(&blocks, n, k, tier).unwrap();
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.quantize(&x, m, k).unwrap();
        let mut serial = vec![0f32; m * n];
        matmul_q8(&w, &a, Some(&bias), &mut serial).unwrap();
        let mut par = Guarded::filled(f32::NAN, m * n);
        matmul_q8_parallel(&pool, &w, &a, Some(&bias), &mut par).unwrap();
        assert_eq!(
            serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            par.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

/// One quantized activation buffer feeds a Q4_0 and a Q8_0 matmul (the model shares rows this way).
fn shared_activations(tier: Tier) {
    let mut rng = Rng(99);
    let (m, n, k) = (3, 40, 128);
    let q8 = q8_blocks(&mut rng, n * k / 32);
    let q4 = rng.q4_blocks(n * k / 32);
    let x = rng.vec(m * k, 1.0);
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, m, k).unwrap();
    let w8 = PackedQ8_0::with_tier(&q8, n, k, tier).unwrap();
    let w4 = PackedQ4_0::with_tier(&q4, n, k, tier).unwrap();
    let mut y8 = vec![0f32; m * n];
    let mut y4 = vec![0f32; m * n];
    matmul_q8(&w8, &a, None, &mut y8).unwrap();
    matmul(&w4, &a, None, &mut y4).unwrap();
    check_against_reference(&q8, &x, None, (m, n, k), whole(m, n, &y8), tier);
    let mut fresh = QuantizedActivations::with_tier(tier).unwrap();
    fresh.quantize(&x, m, k).unwrap();
    let mut y4_fresh = vec![0f32; m * n];
    matmul(&w4, &fresh, None, &mut y4_fresh).unwrap();
    assert_eq!(
        y4, y4_fresh,
        "the Q8_0 call must leave the shared activations intact"
    );
}

per_tier_test!(random_shapes_vs_reference, super::random_shapes);
per_tier_test!(fixed_edge_shapes, super::fixed_edges);
per_tier_test!(extreme_values_vs_reference, super::extreme_values);
per_tier_test!(bad_input_is_an_error, super::bad_input);
per_tier_test!(
    parallel_driver_matches_serial,
    super::parallel_matches_serial
);
per_tier_test!(shares_activations_with_q4, super::shared_activations);

#[test]
fn unavailable_tier_is_an_error() {
    for t in Tier::ALL {
        if !t.is_supported() {
            assert!(matches!(
                PackedQ8_0::with_tier(&[], 1, 32, t),
                Err(Error::TierUnavailable(_))
            ));
        }
    }
}
