//! Q4_0 x int8 matmul on every tier against `qkern-reference`.
//!
//! Tolerance: the kernel's integer block sums must be exact, so the only difference from the f64
//! reference is f32 rounding of the block combination. `qkern_reference::matmul_error_scale` bounds
//! it: `|y - y_ref| <= (K/32 + 3) * 2^-24 * sum_b |d_w d_x isum_b|` (+ |bias|), for any summation
//! order. The tests allow 2x that bound. An integer error of one unit in one block is
//! `d_w * d_x >> ` the bound, so it cannot hide in the tolerance.

mod common;

use common::{guard::Guarded, to_ref_act, to_ref_q4, Rng};
use proptest::prelude::*;
use qkern::kernels::matmul::{matmul_range, PackedQ4_0, QuantizedActivations};
use qkern::quant::BlockQ4_0;
use qkern::{Error, Tier};
use qkern_reference as r;
use std::ops::Range;

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
    let blocks = rng.q4_blocks(c.n * c.k / 32);
    let x = Guarded::from_slice(&rng.vec(c.m * c.k, 3.0));
    let bias = c.bias.then(|| Guarded::from_slice(&rng.vec(c.n, 1.0)));

    let w = PackedQ4_0::with_tier(&blocks, c.n, c.k, tier).unwrap();
    assert_eq!(w.unpack(), blocks, "packing must be lossless");
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, c.m, c.k).unwrap();
    let ablocks = a.blocks();
    let ref_a = r::quantize_activations(&x);
    assert_eq!(
        to_ref_act(&ablocks),
        ref_a,
        "activation quantization must be exact"
    );

    let ldo = c.cols.len();
    let mut out = Guarded::filled(f32::NAN, c.rows.len() * ldo);
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
    for i in c.rows.clone() {
        for j in c.cols.clone() {
            let got = out[(i - c.rows.start) * ldo + (j - c.cols.start)] as f64;
            let idx = i * c.n + j;
            let tol = tol_factor * scale[idx] + f64::MIN_POSITIVE;
            assert!(
                (got - want[idx]).abs() <= tol,
                "tier {tier} m={} n={} k={} at ({i},{j}): got {got}, want {}, tol {tol}",
                c.m,
                c.n,
                c.k,
                want[idx]
            );
        }
    }
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
        (1, 64, 896),
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

/// Extreme values: activations hitting +-127, all nibbles 0 or 15, zero blocks, subnormal f16 scales.
fn extreme_values(tier: Tier) {
    let (m, n, k) = (5, 19, 96);
    let mut blocks = Vec::new();
    for i in 0..n * k / 32 {
        let q = [0x00u8, 0xFF, 0x0F, 0x88][i % 4];
        let d = [1.0f32, 6.0e-8, 0.0, -2.5, 65504.0][i % 5];
        blocks.push(BlockQ4_0 {
            d: half::f16::from_f32(d),
            qs: [q; 16],
        });
    }
    let mut x = vec![0f32; m * k];
    for (i, v) in x.iter_mut().enumerate() {
        *v = match i % 7 {
            0 => 1e-3,
            1 => -1e-3,
            2 => 0.0,
            3 => 5.0,
            4 => -5.0,
            _ => (i as f32).sin(),
        };
    }
    // Rows of only zeros and a row where every element is -absmax.
    x[k..2 * k].fill(0.0);
    x[2 * k..3 * k].fill(-7.0);
    let w = PackedQ4_0::with_tier(&blocks, n, k, tier).unwrap();
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, m, k).unwrap();
    assert_eq!(to_ref_act(&a.blocks()), r::quantize_activations(&x));
    let mut out = vec![0f32; m * n];
    qkern::kernels::matmul::matmul(&w, &a, None, &mut out).unwrap();
    let rw = to_ref_q4(&blocks);
    let ra = r::quantize_activations(&x);
    let want = r::matmul_q4_0(&rw, &ra, n, k, None);
    let scale = r::matmul_error_scale(&rw, &ra, n, k, None, |w, a| {
        (w.d.to_f64(), r::block_dot_q4(w, a))
    });
    for (idx, (&g, &wv)) in out.iter().zip(&want).enumerate() {
        let tol = 2.0 * (k / 32 + 3) as f64 * 2f64.powi(-24) * scale[idx] + f64::MIN_POSITIVE;
        assert!(
            (g as f64 - wv).abs() <= tol,
            "tier {tier} at {idx}: {g} vs {wv}"
        );
    }
}

fn bad_input(tier: Tier) {
    let blocks = vec![
        BlockQ4_0 {
            d: half::f16::ONE,
            qs: [0x11; 16]
        };
        4
    ];
    assert!(matches!(
        PackedQ4_0::with_tier(&blocks, 2, 48, tier),
        Err(Error::NotBlockAligned { .. })
    ));
    assert!(matches!(
        PackedQ4_0::with_tier(&blocks, 3, 64, tier),
        Err(Error::BadLength { .. })
    ));
    assert!(PackedQ4_0::with_tier(&blocks, 0, 64, tier).is_err());
    assert!(matches!(
        PackedQ4_0::with_tier(&blocks, usize::MAX / 2 + 1, 64, tier),
        Err(Error::Overflow(_))
    ));
    let w = PackedQ4_0::with_tier(&blocks, 2, 64, tier).unwrap();
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    let mut out = vec![0f32; 8];
    assert!(
        matmul_range(&w, &a, 0..1, 0..2, None, &mut out, 2).is_err(),
        "empty activations"
    );
    assert!(a.quantize(&[0.0; 64], 2, 64).is_err(), "short input");
    assert!(a.quantize(&[0.0; 64], 2, 32).is_ok());
    assert!(
        matmul_range(&w, &a, 0..2, 0..2, None, &mut out, 2).is_err(),
        "K mismatch"
    );
    a.quantize(&[0.5; 128], 2, 64).unwrap();
    assert!(
        matmul_range(&w, &a, 0..3, 0..2, None, &mut out, 2).is_err(),
        "rows out of range"
    );
    assert!(
        matmul_range(&w, &a, 0..2, 1..3, None, &mut out, 2).is_err(),
        "cols out of range"
    );
    assert!(
        matmul_range(&w, &a, 0..2, 0..2, Some(&[1.0]), &mut out, 2).is_err(),
        "short bias"
    );
    assert!(
        matmul_range(&w, &a, 0..2, 0..2, None, &mut out[..3], 2).is_err(),
        "short out"
    );
    assert!(
        matmul_range(&w, &a, 0..2, 0..2, None, &mut out, 1).is_err(),
        "ldo too small"
    );
    assert!(
        matmul_range(&w, &a, 0..2, 0..2, None, &mut out, usize::MAX).is_err(),
        "ldo overflow"
    );
    assert!(
        matmul_range(&w, &a, 1..1, 0..2, None, &mut [], 2).is_ok(),
        "empty range is a no-op"
    );
    if let Some(other) = Tier::available().into_iter().find(|&t| t != tier) {
        let b = QuantizedActivations::with_tier(other).unwrap();
        assert!(matmul_range(&w, &b, 0..1, 0..1, None, &mut out, 2).is_err());
    }
}

per_tier_test!(random_shapes_vs_reference, super::random_shapes);
per_tier_test!(fixed_edge_shapes, super::fixed_edges);
per_tier_test!(extreme_values_vs_reference, super::extreme_values);
per_tier_test!(bad_input_is_an_error, super::bad_input);

#[test]
fn unavailable_tier_is_an_error() {
    for t in Tier::ALL {
        if !t.is_supported() {
            assert_eq!(
                QuantizedActivations::with_tier(t).err(),
                Some(Error::TierUnavailable(t))
            );
        }
    }
}

/// The parallel driver computes each element with the same kernel as a single call: bit-identical.
fn parallel_matches_serial(tier: Tier) {
    let pool = qkern::parallel::ThreadPool::new(3);
    let mut rng = Rng(77);
    for (m, n, k) in [(1, 200, 64), (70, 130, 96), (130, 65, 32)] {
        let blocks = rng.q4_blocks(n * k / 32);
        let x = rng.vec(m * k, 2.0);
        let bias = rng.vec(n, 1.0);
        let w = PackedQ4_0::with_tier(&blocks, n, k, tier).unwrap();
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.quantize(&x, m, k).unwrap();
        let mut serial = vec![0f32; m * n];
        qkern::kernels::matmul::matmul(&w, &a, Some(&bias), &mut serial).unwrap();
        let mut par = Guarded::filled(f32::NAN, m * n);
        qkern::kernels::matmul::matmul_parallel(&pool, &w, &a, Some(&bias), &mut par).unwrap();
        assert_eq!(
            serial.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            par.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}

per_tier_test!(
    parallel_driver_matches_serial,
    super::parallel_matches_serial
);

/// Activation blocks at the edges of the rule: zeros, halfway ties, huge values, and absmax so
/// small that 1/d overflows (q must be 0 there), on every tier's quantizer.
fn activation_edge_blocks(tier: Tier) {
    let mut x = Vec::new();
    let mut rng = Rng(99);
    x.extend([0f32; 32]);
    x.extend((0..32).map(|i| if i == 0 { 127.0 } else { i as f32 - 15.5 }));
    x.extend((0..32).map(|i| if i == 0 { -127.0 } else { 15.5 - i as f32 }));
    for scale in [3e38f32, 1e-30, 3.6e-37, 1e-38, 1e-40, 1e-45] {
        x.extend(rng.vec(32, 1.0).iter().map(|v| v * scale));
    }
    for m in [1usize, 2, 3] {
        let k = x.len() / m / 32 * 32;
        let rows = &x[..m * k];
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.quantize(rows, m, k).unwrap();
        assert_eq!(
            to_ref_act(&a.blocks()),
            r::quantize_activations(rows),
            "tier {tier} m={m}"
        );
    }
}

per_tier_test!(activation_edge_blocks_exact, super::activation_edge_blocks);
