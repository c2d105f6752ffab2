//! Block formats against independent implementations.
//!
//! `tests/data/quant_vectors.bin` holds inputs and the Q4_0 / Q8_0 bytes produced by the numpy
//! quantizers of the `gguf` package (`scripts/gen_quant_vectors.py`), which are bit-exact with
//! ggml's reference quantizers on x86_64: ties, zeros, huge, f16-subnormal and f32-subnormal values.

mod common;

use qkern::quant::{
    dequantize_q4_0, dequantize_q8_0, quantize_activation_block, quantize_q4_0, quantize_q8_0,
    BlockQ4_0, BlockQ8_0,
};
use qkern::Error;
use qkern_reference as r;

struct Vectors {
    x: Vec<f32>,
    q4: Vec<u8>,
    q8: Vec<u8>,
}

fn vectors() -> Vectors {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/quant_vectors.bin"
    ))
    .unwrap();
    assert_eq!(&data[..4], b"QKQV");
    let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap()) as usize;
    assert_eq!(u32_at(4), 1);
    let n = u32_at(8);
    let x_end = 12 + n * 128;
    let q4_end = x_end + n * 18;
    assert_eq!(data.len(), q4_end + n * 34);
    Vectors {
        x: data[12..x_end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        q4: data[x_end..q4_end].to_vec(),
        q8: data[q4_end..].to_vec(),
    }
}

#[test]
fn q4_0_is_byte_identical_to_ggml() {
    let v = vectors();
    let mut blocks = vec![BlockQ4_0::default(); v.x.len() / 32];
    quantize_q4_0(&v.x, &mut blocks).unwrap();
    let bytes: &[u8] = bytemuck::cast_slice(&blocks);
    for (i, (got, want)) in bytes.chunks(18).zip(v.q4.chunks(18)).enumerate() {
        assert_eq!(
            got,
            want,
            "block {i}: input {:?}",
            &v.x[i * 32..i * 32 + 32]
        );
    }
    // The reference crate agrees too.
    let rb = r::quantize_q4_0(&v.x);
    assert!(rb
        .iter()
        .zip(&blocks)
        .all(|(a, b)| a.d.to_bits() == b.d.to_bits() && a.qs == b.qs));
}

#[test]
fn q8_0_is_byte_identical_to_ggml() {
    let v = vectors();
    let mut blocks = vec![BlockQ8_0::default(); v.x.len() / 32];
    quantize_q8_0(&v.x, &mut blocks).unwrap();
    let bytes: &[u8] = bytemuck::cast_slice(&blocks);
    for (i, (got, want)) in bytes.chunks(34).zip(v.q8.chunks(34)).enumerate() {
        assert_eq!(
            got,
            want,
            "block {i}: input {:?}",
            &v.x[i * 32..i * 32 + 32]
        );
    }
}

#[test]
fn activation_rule_matches_reference_and_q8_values() {
    let v = vectors();
    let reference = r::quantize_activations(&v.x);
    for (i, xb) in v.x.chunks_exact(32).enumerate() {
        let a = quantize_activation_block(xb.try_into().unwrap());
        assert_eq!(a.d.to_bits(), reference[i].d.to_bits(), "block {i}");
        assert_eq!(a.qs, reference[i].qs, "block {i}");
        assert!(a.qs.iter().all(|&q| q != i8::MIN), "symmetric range");
        // Same integers as ggml's Q8_0 (which only rounds d to f16 afterwards).
        assert_eq!(
            bytemuck::cast_slice::<i8, u8>(&a.qs),
            &v.q8[i * 34 + 2..i * 34 + 34],
            "block {i}"
        );
    }
}

#[test]
fn dequantize_matches_reference() {
    let v = vectors();
    let mut q4 = vec![BlockQ4_0::default(); v.x.len() / 32];
    quantize_q4_0(&v.x, &mut q4).unwrap();
    let mut y = vec![0f32; v.x.len()];
    dequantize_q4_0(&q4, &mut y).unwrap();
    let want = r::dequantize_q4_0(&common::to_ref_q4(&q4));
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let mut q8 = vec![BlockQ8_0::default(); v.x.len() / 32];
    quantize_q8_0(&v.x, &mut q8).unwrap();
    dequantize_q8_0(&q8, &mut y).unwrap();
    let rq8: Vec<r::BlockQ8_0> = q8
        .iter()
        .map(|b| r::BlockQ8_0 { d: b.d, qs: b.qs })
        .collect();
    let want = r::dequantize_q8_0(&rq8);
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn bad_lengths_are_errors() {
    let mut q4 = vec![BlockQ4_0::default(); 2];
    assert!(matches!(
        quantize_q4_0(&[0.0; 48], &mut q4),
        Err(Error::NotBlockAligned { .. })
    ));
    assert!(matches!(
        quantize_q4_0(&[0.0; 32], &mut q4),
        Err(Error::BadLength { .. })
    ));
    assert!(matches!(
        dequantize_q4_0(&q4, &mut [0.0; 63]),
        Err(Error::BadLength { .. })
    ));
    let mut q8 = vec![BlockQ8_0::default(); 1];
    assert!(quantize_q8_0(&[0.0; 64], &mut q8).is_err());
    assert!(quantize_q8_0(&[], &mut []).is_err());
}

#[test]
fn block_layouts_are_gguf_sizes() {
    assert_eq!(size_of::<BlockQ4_0>(), 18);
    assert_eq!(size_of::<BlockQ8_0>(), 34);
    assert_eq!(align_of::<BlockQ4_0>(), 2);
}
