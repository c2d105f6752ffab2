//! Q8_0 x int8 matmul on every tier against `qkern-reference` (the checks and their tolerance are
//! shared with Q4_0: tests/common/matmul_check.rs).

mod common;

use common::matmul_check::{self as mc, Region, Q4, Q8};
use common::Rng;
use qkern::quant::BlockQ8_0;
use qkern::{matmul, PackedQ4_0, PackedQ8_0, QuantizedActivations};
use qkern::{Error, Tier};

fn random_shapes(tier: Tier) {
    mc::random_shapes::<Q8>(tier);
}

fn fixed_edges(tier: Tier) {
    let shapes = [
        (1, 1, 32),
        (2, 5, 32),
        (3, 17, 64),
        (1, 300, 896),
        (17, 33, 128),
        (8, 16, 32),
        (16, 4, 96),
    ];
    mc::fixed_edges::<Q8>(tier, &shapes);
}

/// Extreme values: weights -128 and 127, zero blocks, subnormal and maximal f16 scales.
fn extreme_values(tier: Tier) {
    let (m, n, k) = (5, 19, 96);
    let blocks: Vec<BlockQ8_0> = (0..n * k / 32)
        .map(|i| BlockQ8_0 {
            d: half::f16::from_f32([1.0f32, 6.0e-8, 0.0, -2.5, 65504.0][i % 5]),
            qs: [[-128i8; 32], [127; 32], [0; 32], [-1; 32]][i % 4],
        })
        .collect();
    mc::extreme_values::<Q8>(tier, &blocks, (m, n, k));
}

fn bad_input(tier: Tier) {
    mc::bad_input::<Q8>(tier);
    let blocks = vec![
        BlockQ8_0 {
            d: half::f16::ONE,
            qs: [3; 32]
        };
        4
    ];
    let w = PackedQ8_0::with_tier(&blocks, 2, 64, tier).unwrap();
    assert!(
        w.dequantize_row(2, &mut [0.0; 64]).is_err(),
        "row out of range"
    );
    assert!(w.dequantize_row(1, &mut [0.0; 63]).is_err(), "short row");
}

fn parallel_matches_serial(tier: Tier) {
    mc::parallel_matches_serial::<Q8>(tier);
}

/// One quantized activation buffer feeds a Q4_0 and a Q8_0 matmul (the model shares rows this way).
fn shared_activations(tier: Tier) {
    let mut rng = Rng(99);
    let (m, n, k) = (3, 40, 128);
    let q8 = <Q8 as mc::TestFormat>::random_blocks(&mut rng, n * k / 32);
    let q4 = <Q4 as mc::TestFormat>::random_blocks(&mut rng, n * k / 32);
    let x = rng.vec(m * k, 1.0);
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, m, k).unwrap();
    let w8 = PackedQ8_0::with_tier(&q8, n, k, tier).unwrap();
    let w4 = PackedQ4_0::with_tier(&q4, n, k, tier).unwrap();
    let mut y8 = vec![0f32; m * n];
    let mut y4 = vec![0f32; m * n];
    matmul(&w8, &a, None, &mut y8).unwrap();
    matmul(&w4, &a, None, &mut y4).unwrap();
    mc::assert_matches_reference::<Q8>(&q8, &x, None, (m, n, k), Region::whole(m, n, &y8), tier);
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
