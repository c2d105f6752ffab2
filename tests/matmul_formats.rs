//! The weight formats that arrive quantized in model files (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)
//! on every tier against `qkern-reference`: the whole matrix of tests/common/matmul_check.rs
//! (random shapes with tails and sub-ranges, tile edges, extreme blocks, misuse, parallel =
//! serial), with the tolerance stated there.

mod common;

use common::matmul_check::{self as mc, TestFormat};
use qkern::quant::{BlockQ4K, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K};
use qkern::Tier;

/// Shapes at the edges of every kernel's tiles (1..=17 rows, columns around 8 and 16), in blocks.
fn fixed_edges<F: TestFormat>(tier: Tier) {
    let l = F::BLOCK_LEN;
    let shapes = [
        (1, 1, l),
        (2, 5, l),
        (3, 17, 2 * l),
        (1, 33, 3 * l),
        (17, 33, l),
        (8, 16, l),
        (16, 4, 2 * l),
        (7, 48, l),
    ];
    mc::fixed_edges::<F>(tier, &shapes);
}

/// All-zero blocks, blocks of the extreme quants (every byte 0x00, 0xFF, 0x80), with the largest
/// and a subnormal f16 scale.
fn extreme_values<F: TestFormat>(tier: Tier) {
    let (m, n, k) = (5, 19, 3 * F::BLOCK_LEN);
    let blocks: Vec<F> = (0..n * k / F::BLOCK_LEN)
        .map(|i| {
            let mut b = F::uniform_block([0x00u8, 0xFF, 0x80, 0x11][i % 4]);
            // Every f16 field (scales, mins) to one value of the list.
            let v = [1.0f32, 6.0e-8, 0.0, -2.5, 65504.0][i % 5];
            scale_fields(&mut b, half::f16::from_f32(v));
            b
        })
        .collect();
    mc::extreme_values::<F>(tier, &blocks, (m, n, k));
}

/// Sets every f16 field of a block (they are the fields whose bytes are not all equal to the
/// uniform fill after `uniform_block`, i.e. the scales) to `v`.
fn scale_fields<F: TestFormat>(b: &mut F, v: half::f16) {
    let one = F::uniform_block(0);
    let ones = bytemuck::bytes_of(&one);
    let bytes = bytemuck::bytes_of_mut(b);
    // In `uniform_block(0)` only the f16 scale fields (set to 1.0 = 0x3C00) are non-zero.
    let mut i = 0;
    while i + 1 < ones.len() {
        if ones[i] == 0x00 && ones[i + 1] == 0x3C {
            bytes[i..i + 2].copy_from_slice(&v.to_le_bytes());
            i += 2;
        } else {
            i += 1;
        }
    }
}

macro_rules! format_tests {
    ($($module:ident: $block:ty;)*) => {$(
        mod $module {
            use super::*;
            fn random_shapes(tier: Tier) {
                mc::random_shapes::<$block>(tier);
            }
            fn fixed_edges(tier: Tier) {
                super::fixed_edges::<$block>(tier);
            }
            fn extreme_values(tier: Tier) {
                super::extreme_values::<$block>(tier);
            }
            fn bad_input(tier: Tier) {
                mc::bad_input::<$block>(tier);
            }
            fn parallel_matches_serial(tier: Tier) {
                mc::parallel_matches_serial::<$block>(tier);
            }
            per_tier_test!(random_shapes_vs_reference, super::random_shapes);
            per_tier_test!(tile_edges_vs_reference, super::fixed_edges);
            per_tier_test!(extreme_blocks_vs_reference, super::extreme_values);
            per_tier_test!(misuse_is_an_error, super::bad_input);
            per_tier_test!(parallel_equals_serial, super::parallel_matches_serial);
        }
    )*};
}

format_tests! {
    q4_1: BlockQ4_1;
    q5_0: BlockQ5_0;
    q5_1: BlockQ5_1;
    q4_k: BlockQ4K;
    q5_k: BlockQ5K;
    q6_k: BlockQ6K;
}

/// Activations quantized only in `Q8_256` serve K-quant weights and are refused by 32-value ones;
/// an empty format list is an error.
fn activation_formats(tier: Tier) {
    use qkern::quant::{ActFormat, BlockQ4_0};
    use qkern::{Packed, QuantizedActivations};
    let mut rng = common::Rng(31);
    let (m, n, k) = (3, 5, 512);
    let x = rng.vec(m * k, 1.0);
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    assert!(a.set_formats(&[]).is_err());
    a.set_formats(&[ActFormat::Q8_256]).unwrap();
    a.quantize(&x, m, k).unwrap();
    assert!(a.has(ActFormat::Q8_256) && !a.has(ActFormat::Q8_32));
    assert!(a.blocks().is_empty());
    let wk = Packed::<BlockQ4K>::with_tier(&BlockQ4K::random_blocks(&mut rng, n * 2), n, k, tier)
        .unwrap();
    let mut out = vec![0f32; m * n];
    qkern::matmul(&wk, &a, None, &mut out).unwrap();
    let w0 =
        Packed::<BlockQ4_0>::with_tier(&BlockQ4_0::random_blocks(&mut rng, n * 16), n, k, tier)
            .unwrap();
    assert!(qkern::matmul(&w0, &a, None, &mut out).is_err());
    // The same K-quant product with both formats quantized: identical bits.
    let mut b = QuantizedActivations::with_tier(tier).unwrap();
    b.require(ActFormat::Q8_256);
    b.quantize(&x, m, k).unwrap();
    let mut out2 = vec![0f32; m * n];
    qkern::matmul(&wk, &b, None, &mut out2).unwrap();
    assert_eq!(out, out2);
}
per_tier_test!(activation_formats_are_chosen, crate::activation_formats);
