//! The crate's own GGUF formats (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): dequantization bit-identical
//! to gguf-py on blocks that llama.cpp's quantizer made, and the packed weights of every tier
//! unpack and dequantize to exactly that.

mod common;

use common::format_vectors::*;
use qkern::quant::*;
use qkern::{Packed, Tier, WeightFormat};

/// Every entry of type `ty`: the crate's dequantizer equals gguf-py bit for bit, and so does
/// `Packed::dequantize_row` of the weights packed for `tier`.
fn check<F: WeightFormat>(tier: Tier, ty: u32) {
    let entries: Vec<Entry> = vectors().into_iter().filter(|e| e.ty == ty).collect();
    assert!(!entries.is_empty(), "no vectors of type {ty}");
    for e in entries {
        let b: Vec<F> = blocks(&e.raw);
        let mut y = vec![f32::NAN; e.rows * e.cols];
        F::dequantize(&b, &mut y).unwrap();
        for (i, (g, w)) in y.iter().zip(&e.y).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{} {}: value {i}: {g} vs {w}",
                F::NAME,
                e.name
            );
        }
        let w = Packed::<F>::with_tier(&b, e.rows, e.cols, tier).unwrap();
        assert_eq!(w.unpack(), b, "{} {}: packing is lossless", F::NAME, e.name);
        let mut row = vec![f32::NAN; e.cols];
        for r in 0..e.rows {
            w.dequantize_row(r, &mut row).unwrap();
            assert_eq!(
                row.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                e.y[r * e.cols..(r + 1) * e.cols]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                "{} {} row {r}",
                F::NAME,
                e.name
            );
        }
    }
}

fn all_formats(tier: Tier) {
    check::<BlockQ4_1>(tier, Q4_1);
    check::<BlockQ5_0>(tier, Q5_0);
    check::<BlockQ5_1>(tier, Q5_1);
    check::<BlockQ8_0>(tier, Q8_0);
    check::<BlockQ4K>(tier, Q4_K);
    check::<BlockQ5K>(tier, Q5_K);
    check::<BlockQ6K>(tier, Q6_K);
}
per_tier_test!(dequantization_matches_gguf_py, crate::all_formats);

/// The integer views agree with the reference crate's (an independent implementation) on random
/// blocks, scales and mins included.
#[test]
fn integer_views_match_the_reference() {
    use qkern_reference as r;
    let mut rng = common::Rng(0xf0f0);
    let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    for _ in 0..200 {
        let b: BlockQ4_1 = bytemuck::pod_read_unaligned(&bytes(20));
        assert_eq!(b.values(), r::q4_1_values(bytemuck::cast_ref(&b)));
        let b: BlockQ5_0 = bytemuck::pod_read_unaligned(&bytes(22));
        assert_eq!(b.values(), r::q5_0_values(bytemuck::cast_ref(&b)));
        let b: BlockQ5_1 = bytemuck::pod_read_unaligned(&bytes(24));
        assert_eq!(b.values(), r::q5_1_values(bytemuck::cast_ref(&b)));
        let b: BlockQ4K = bytemuck::pod_read_unaligned(&bytes(144));
        let p = b.parts();
        assert_eq!((p.sc, p.m, p.q), r::q4k_parts(bytemuck::cast_ref(&b)));
        let b: BlockQ5K = bytemuck::pod_read_unaligned(&bytes(176));
        let p = b.parts();
        assert_eq!((p.sc, p.m, p.q), r::q5k_parts(bytemuck::cast_ref(&b)));
        let b: BlockQ6K = bytemuck::pod_read_unaligned(&bytes(210));
        assert_eq!(b.parts(), r::q6k_parts(bytemuck::cast_ref(&b)));
    }
}
