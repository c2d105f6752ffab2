//! Q4_0 x int8 matmul on every tier against `qkern-reference` (the checks and their tolerance are
//! shared with Q8_0: tests/common/matmul_check.rs).

mod common;

use common::matmul_check::{self as mc, Q4};
use common::{to_ref_act, Rng};
use qkern::quant::BlockQ4_0;
use qkern::QuantizedActivations;
use qkern::{Error, Tier};
use qkern_reference as r;

fn random_shapes(tier: Tier) {
    mc::random_shapes::<Q4>(tier);
}

fn fixed_edges(tier: Tier) {
    let shapes = [
        (1, 1, 32),
        (2, 5, 32),
        (3, 17, 64),
        (1, 64, 896),
        (17, 33, 128),
        (8, 16, 32),
        (16, 4, 96),
    ];
    mc::fixed_edges::<Q4>(tier, &shapes);
}

fn bad_input(tier: Tier) {
    mc::bad_input::<Q4>(tier);
}

fn parallel_matches_serial(tier: Tier) {
    mc::parallel_matches_serial::<Q4>(tier);
}

/// Extreme values: all nibbles 0 or 15, zero blocks, subnormal and maximal f16 scales.
fn extreme_values(tier: Tier) {
    let (m, n, k) = (5, 19, 96);
    let blocks: Vec<BlockQ4_0> = (0..n * k / 32)
        .map(|i| BlockQ4_0 {
            d: half::f16::from_f32([1.0f32, 6.0e-8, 0.0, -2.5, 65504.0][i % 5]),
            qs: [[0x00u8; 16], [0xFF; 16], [0x0F; 16], [0x88; 16]][i % 4],
        })
        .collect();
    mc::extreme_values::<Q4>(tier, &blocks, (m, n, k));
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

/// The same for the `Q8_256` quantizer (blocks of 256 with per-16 sums): zeros, halfway ties
/// (amax 127, so `d` = 1), huge and tiny scales, infinities and NaN.
fn activation_edge_blocks_k(tier: Tier) {
    use qkern::quant::ActFormat;
    let mut x = vec![0f32; 256];
    x.extend((0..256).map(|i| match i {
        0 => 127.0,
        _ if i % 2 == 0 => (i % 126) as f32 + 0.5,
        _ => -((i % 126) as f32 + 0.5),
    }));
    let mut rng = Rng(7);
    for scale in [3.4e38f32, 1e-30, 3.6e-37, 1e-38, 1e-40, 1e-45, 1.0] {
        x.extend(rng.vec(256, 1.0).iter().map(|v| v * scale));
    }
    x.extend((0..256).map(|i| match i % 50 {
        5 => f32::INFINITY,
        9 => f32::NEG_INFINITY,
        11 => f32::NAN,
        _ => i as f32,
    }));
    x.extend((0..256).map(|i| if i == 200 { f32::NAN } else { i as f32 - 99.5 }));
    for m in [1usize, 2, 3] {
        let k = x.len() / m / 256 * 256;
        let rows = &x[..m * k];
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.set_formats(&[ActFormat::Q8_256]).unwrap();
        a.quantize(rows, m, k).unwrap();
        let (got, want) = (a.blocks_k(), r::quantize_activations_k(rows));
        assert_eq!(got.len(), want.len());
        for (b, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                (g.d.to_bits(), g.qs, g.bsums),
                (w.d.to_bits(), w.qs, w.bsums),
                "tier {tier} m={m} block {b}"
            );
        }
    }
}

per_tier_test!(
    activation_edge_blocks_k_exact,
    super::activation_edge_blocks_k
);

/// Both activation quantizers on rows that end exactly at a `PROT_NONE` page (and start right
/// after one), every row count and a K of one block and of several: a vector load past the last
/// value (or before the first) faults; the blocks equal the reference.
fn activations_at_page_end(tier: Tier) {
    use common::guard::Guarded;
    use qkern::quant::ActFormat;
    let mut rng = Rng(41);
    for k in [256usize, 768] {
        for m in [1usize, 2, 3, 5] {
            let x = Guarded::from_slice(&rng.vec(m * k, 3.0));
            let mut a = QuantizedActivations::with_tier(tier).unwrap();
            a.set_formats(&[ActFormat::Q8_32, ActFormat::Q8_256])
                .unwrap();
            a.quantize(&x, m, k).unwrap();
            assert_eq!(
                to_ref_act(&a.blocks()),
                r::quantize_activations(&x),
                "tier {tier} m={m} k={k}: Q8_32"
            );
            let (got, want) = (a.blocks_k(), r::quantize_activations_k(&x));
            assert_eq!(got.len(), want.len());
            for (b, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    (g.d.to_bits(), g.qs, g.bsums),
                    (w.d.to_bits(), w.qs, w.bsums),
                    "tier {tier} m={m} k={k} block {b}: Q8_256"
                );
            }
        }
    }
}

per_tier_test!(activations_end_at_a_page, super::activations_at_page_end);
