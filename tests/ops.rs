//! Layer ops (RMSNorm, fused RMSNorm + quantize, SiLU * up, exp, softmax, residual add, RoPE,
//! embedding rows) on every tier against `qkern-reference`.
//!
//! Tolerances (u = 2^-24, the f32 unit roundoff), each justified where it is used:
//! * RMSNorm: the sum of `k` squares carries at most `k u` relative error (any order), halved by
//!   the square root; `r`, the two products and the division add a few `u`: `(k + 8) u |y|`.
//!   Across tiers the output must be identical bit for bit (fixed summation order).
//! * Fused RMSNorm + quantize: exact, bit for bit, against quantizing the same tier's
//!   [`rmsnorm`] output with the reference rule; against quantizing the f64 reference rounded to
//!   f32 (a different f32 row), within one int8 step per value.
//! * exp: at most `EXP_MAX_REL_ERROR` (4 u) relative, measured over a dense sweep.
//! * SiLU * up: exp error (4 u) passes through `1 + e` and the division unchanged in relative
//!   terms; `1 + e`, the division and the product add 3 roundings: `8 u |y|`. Where `-g` exceeds
//!   the clamp (88.37) the true result is below `|g| e^-88 |up|`; an absolute `1e-35 |up|` covers it.
//! * softmax: each exp 4 u, the sum of `n` terms `n u`, the final scaling `u`: `(n + 8) u |y|`.
//! * residual add: one f32 addition, exact against `(a + b) as f32`.
//! * RoPE: table cos/sin are the f64 values rounded (u each), the rotation rounds two products
//!   and a sum, the bias add one sum: `8 u (|x| + |bias|)` summed over the pair.
//! * embedding: exact.

mod common;
use common::kern;

use common::{guard::Guarded, Rng};
use qkern::kernels::elementwise::EXP_MAX_REL_ERROR;
use qkern::quant::{quantize_q4_0, quantize_q8_0, BlockQ4_0, BlockQ8_0};
use qkern::{
    add_assign, embedding_row, exp, rmsnorm, rmsnorm_quantize, silu_mul, silu_mul_quantize,
    softmax, EmbeddingTable, QuantizedActivations, Rope,
};
use qkern::{Error, Tier};
use qkern_reference as r;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn assert_close(got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64, what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let t = tol(i);
        assert!(
            (g as f64 - w).abs() <= t,
            "{what}: element {i}: got {g}, want {w}, tol {t}"
        );
    }
}

fn rmsnorm_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0001);
    for &(m, k) in &[
        (1, 1),
        (2, 7),
        (3, 16),
        (1, 33),
        (2, 896),
        (1, 1000),
        (2, 1536),
    ] {
        let x = Guarded::from_slice(&rng.vec(m * k, 4.0));
        let w = Guarded::from_slice(&rng.vec(k, 2.0));
        let mut out = Guarded::filled(f32::NAN, m * k);
        rmsnorm(kern(tier), &x, &w, 1e-6, &mut out).unwrap();
        let mut scalar = vec![0f32; m * k];
        rmsnorm(kern(Tier::Scalar), &x, &w, 1e-6, &mut scalar).unwrap();
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            scalar.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "rmsnorm must be bit-identical across tiers (m={m} k={k})"
        );
        for i in 0..m {
            let want = r::rmsnorm(&x[i * k..(i + 1) * k], &w, 1e-6);
            assert_close(
                &out[i * k..(i + 1) * k],
                &want,
                |j| (k + 8) as f64 * U * want[j].abs() + 1e-30,
                &format!("rmsnorm {tier} m={m} k={k}"),
            );
        }
    }
    // Bad shapes.
    let mut out = vec![0f32; 10];
    assert!(rmsnorm(kern(tier), &[0.0; 10], &[1.0; 3], 1e-6, &mut out).is_err());
    assert!(rmsnorm(kern(tier), &[0.0; 9], &[1.0; 3], 1e-6, &mut out).is_err());
    assert!(rmsnorm(kern(tier), &[], &[1.0; 3], 1e-6, &mut []).is_err());
    assert!(rmsnorm(kern(tier), &[0.0; 3], &[], 1e-6, &mut out[..3]).is_err());
}
per_tier_test!(rmsnorm_matches_reference, crate::rmsnorm_case);

fn rmsnorm_quantize_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0002);
    for &(m, k) in &[(1, 32), (3, 64), (2, 896), (1, 4864)] {
        let mut xv = rng.vec(m * k, 3.0);
        xv[k / 2] = 40.0; // an outlier, as in Qwen activations
        let x = Guarded::from_slice(&xv);
        let w = Guarded::from_slice(&rng.vec(k, 1.5));
        let mut qa = QuantizedActivations::with_tier(tier).unwrap();
        rmsnorm_quantize(&x, &w, 1e-6, &mut qa).unwrap();
        assert_eq!((qa.m(), qa.k()), (m, k));
        let got = qa.blocks();
        let mut y = vec![0f32; m * k];
        rmsnorm(kern(tier), &x, &w, 1e-6, &mut y).unwrap();
        let exact = r::quantize_activations(&y);
        for (b, (g, e)) in got.iter().zip(&exact).enumerate() {
            assert_eq!(g.d.to_bits(), e.d.to_bits(), "block {b} scale, m={m} k={k}");
            assert_eq!(g.qs, e.qs, "block {b} values, m={m} k={k}");
        }
        // Against the f64 reference's own row: one int8 step at most.
        let refq = r::rmsnorm_quantize(&x, &w, 1e-6);
        for (g, e) in got.iter().zip(&refq) {
            assert!((g.d as f64 - e.d as f64).abs() <= (k + 8) as f64 * U * e.d as f64);
            for (&a, &b) in g.qs.iter().zip(&e.qs) {
                assert!((a as i32 - b as i32).abs() <= 1);
            }
        }
    }
    let mut qa = QuantizedActivations::with_tier(tier).unwrap();
    assert!(rmsnorm_quantize(&[0.0; 48], &[1.0; 48], 1e-6, &mut qa).is_err()); // K % 32
    assert!(rmsnorm_quantize(&[0.0; 40], &[1.0; 32], 1e-6, &mut qa).is_err());
}
per_tier_test!(rmsnorm_quantize_is_exact, crate::rmsnorm_quantize_case);

fn exp_case(tier: Tier) {
    // Dense sweep of the whole clamped range plus the integers' neighbourhoods.
    let n = 1 << 14;
    let (lo, hi) = (-87.33f64, 88.37f64);
    let mut x: Vec<f32> = (0..=n)
        .map(|i| (lo + (hi - lo) * i as f64 / n as f64) as f32)
        .collect();
    x.extend((-87..=88).flat_map(|i| [i as f32, f32::from_bits((i as f32).to_bits() + 1)]));
    x.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        0.5,
        -0.5,
        0.346_573_6,
        -0.346_573_6,
    ]);
    let mut y = Guarded::from_slice(&x);
    exp(kern(tier), &mut y).unwrap();
    let mut worst = 0f64;
    for (&xi, &yi) in x.iter().zip(y.iter()) {
        let want = (xi as f64).exp();
        let rel = (yi as f64 - want).abs() / want;
        worst = worst.max(rel);
        assert!(
            rel <= EXP_MAX_REL_ERROR,
            "exp({xi}) = {yi}, want {want}, rel {rel}"
        );
    }
    eprintln!(
        "exp {tier}: max relative error {worst:.3e} = {:.2} ulp",
        worst / U
    );
    let mut edge = [-100.0f32, -88.0, f32::NEG_INFINITY, 100.0];
    exp(kern(tier), &mut edge).unwrap();
    assert_eq!(&edge[..3], &[0.0, 0.0, 0.0]);
    assert!(edge[3].is_finite() && edge[3] > 1e38);
}
per_tier_test!(exp_max_relative_error, crate::exp_case);

fn silu_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0003);
    for &n in &[1usize, 3, 8, 15, 16, 17, 64, 100, 4864] {
        let mut g = rng.vec(n, 12.0);
        let specials = [
            0.0, -0.0, 88.0, -88.0, 100.0, -100.0, 1e-30, -1e-30, 20.0, -20.0,
        ];
        for (v, s) in g.iter_mut().zip(specials) {
            *v = s;
        }
        let up = rng.vec(n, 3.0);
        let (gg, ug) = (Guarded::from_slice(&g), Guarded::from_slice(&up));
        let mut out = Guarded::filled(f32::NAN, n);
        silu_mul(kern(tier), &gg, &ug, &mut out).unwrap();
        let want = r::silu_mul(&g, &up);
        assert_close(
            &out,
            &want,
            |i| 8.0 * U * want[i].abs() + 1e-35 * up[i].abs() as f64,
            &format!("silu_mul {tier} n={n}"),
        );
    }
    let mut out = [0f32; 3];
    assert!(silu_mul(kern(tier), &[0.0; 3], &[0.0; 2], &mut out).is_err());
    assert!(silu_mul(kern(tier), &[0.0; 3], &[0.0; 3], &mut out[..2]).is_err());
}
per_tier_test!(silu_mul_matches_reference, crate::silu_case);

/// The fused SwiGLU + quantize equals quantizing `silu_mul`'s output (checked against the
/// reference above) with the reference quantizer, bit for bit.
fn silu_mul_quantize_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0009);
    for &(m, f) in &[(1usize, 32usize), (3, 96), (2, 4864)] {
        let mut gu = rng.vec(m * 2 * f, 8.0);
        gu[f / 2] = 40.0; // an outlier gate
        let gg = Guarded::from_slice(&gu);
        let mut qa = QuantizedActivations::with_tier(tier).unwrap();
        silu_mul_quantize(&gg, f, &mut qa).unwrap();
        assert_eq!((qa.m(), qa.k()), (m, f));
        let mut y = vec![0f32; m * f];
        for (row, yr) in gu.chunks_exact(2 * f).zip(y.chunks_exact_mut(f)) {
            silu_mul(kern(tier), &row[..f], &row[f..], yr).unwrap();
        }
        let want = r::quantize_activations(&y);
        for (b, (g, e)) in qa.blocks().iter().zip(&want).enumerate() {
            assert_eq!(g.d.to_bits(), e.d.to_bits(), "block {b} scale, m={m} f={f}");
            assert_eq!(g.qs, e.qs, "block {b} values, m={m} f={f}");
        }
    }
    let mut qa = QuantizedActivations::with_tier(tier).unwrap();
    assert!(silu_mul_quantize(&[0.0; 96], 48, &mut qa).is_err()); // f not a multiple of 32
    assert!(silu_mul_quantize(&[0.0; 96], 32, &mut qa).is_err()); // not whole rows
    assert!(silu_mul_quantize(&[], 32, &mut qa).is_err());
    assert!(silu_mul_quantize(&[0.0; 64], 0, &mut qa).is_err());
    assert!(silu_mul_quantize(&[0.0; 64], usize::MAX, &mut qa).is_err()); // 2 f overflows
}
per_tier_test!(silu_mul_quantize_is_exact, crate::silu_mul_quantize_case);

fn softmax_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0004);
    for &n in &[1usize, 2, 5, 16, 31, 64, 300, 1000] {
        let mut x = rng.vec(n, 10.0);
        if n > 3 {
            x[2] = f32::NEG_INFINITY; // masked entries are allowed
        }
        let mut y = Guarded::from_slice(&x);
        softmax(kern(tier), &mut y).unwrap();
        let want = r::softmax(&x);
        assert_close(
            &y,
            &want,
            |i| (n + 8) as f64 * U * want[i] + 1e-38,
            &format!("softmax {tier} n={n}"),
        );
    }
    assert!(softmax(kern(tier), &mut []).is_err());
    assert!(softmax(kern(tier), &mut [1.0, f32::INFINITY]).is_err());
    assert!(softmax(kern(tier), &mut [f32::NEG_INFINITY; 4]).is_err());
}
per_tier_test!(softmax_matches_reference, crate::softmax_case);

fn add_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0005);
    for &n in &[1usize, 7, 16, 33, 896, 1001] {
        let a = rng.vec(n, 100.0);
        let b = rng.vec(n, 1.0);
        let mut x = Guarded::from_slice(&a);
        add_assign(kern(tier), &mut x, &Guarded::from_slice(&b)).unwrap();
        let want = r::add(&a, &b);
        for (g, w) in x.iter().zip(&want) {
            assert_eq!(*g, *w as f32);
        }
    }
    assert!(add_assign(kern(tier), &mut [0.0; 3], &[0.0; 4]).is_err());
}
per_tier_test!(add_assign_is_exact, crate::add_case);

fn rope_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0006);
    for &(d, n_heads, t, pos0, bias) in &[
        (64usize, 14usize, 3usize, 0usize, true),
        (128, 3, 2, 31_000, true),
        (16, 1, 5, 7, false),
        (128, 2, 1, 32_767, false),
        (80, 5, 4, 1000, true),
        (2, 1, 3, 5, false),
    ] {
        let theta = if d == 128 { 1_000_000.0 } else { 10_000.0 };
        let rope = Rope::new(d, theta, 32_768).unwrap();
        let x0 = rng.vec(t * n_heads * d, 3.0);
        let b = bias.then(|| rng.vec(n_heads * d, 2.0));
        let mut x = Guarded::from_slice(&x0);
        let bg = b.as_deref().map(Guarded::from_slice);
        rope.apply(kern(tier), &mut x, n_heads, pos0, bg.as_deref())
            .unwrap();
        let want = r::rope_neox_rows(&x0, n_heads, d, pos0, theta, b.as_deref());
        let w = n_heads * d;
        let mag = |i: usize| {
            let (row, col) = (i / w, i % w);
            let (h, j) = (col / d, col % d);
            let pair = [h * d + j % (d / 2), h * d + j % (d / 2) + d / 2];
            pair.iter()
                .map(|&c| {
                    x0[row * w + c].abs() as f64 + b.as_ref().map_or(0.0, |b| b[c].abs() as f64)
                })
                .sum::<f64>()
        };
        assert_close(
            &x,
            &want,
            |i| 8.0 * U * mag(i),
            &format!("rope {tier} d={d} pos0={pos0}"),
        );
    }
    let rope = Rope::new(64, 10_000.0, 100).unwrap();
    assert_eq!((rope.head_dim(), rope.max_positions()), (64, 100));
    let mut x = vec![0f32; 2 * 64];
    assert!(rope.apply(kern(tier), &mut x, 1, 99, None).is_err()); // position 100 is out of the table
    assert!(rope.apply(kern(tier), &mut x, 3, 0, None).is_err());
    assert!(rope
        .apply(kern(tier), &mut x, 1, 0, Some(&[0.0; 63]))
        .is_err());
    assert!(rope.apply(kern(tier), &mut x, 0, 0, None).is_err());
    assert!(Rope::new(63, 10_000.0, 10).is_err());
    assert!(Rope::new(64, -1.0, 10).is_err());
    assert!(Rope::new(64, 10_000.0, 0).is_err());
}
per_tier_test!(rope_matches_reference, crate::rope_case);

fn embedding_case(tier: Tier) {
    let mut rng = Rng(0x5eed_0007);
    let (rows, k) = (5usize, 96usize);
    let data = rng.vec(rows * k, 2.0);
    let f16s: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
    let bf16s: Vec<half::bf16> = data.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let mut q8 = vec![
        BlockQ8_0 {
            d: half::f16::ZERO,
            qs: [0; 32]
        };
        rows * k / 32
    ];
    quantize_q8_0(&data, &mut q8).unwrap();
    let mut q4 = vec![
        BlockQ4_0 {
            d: half::f16::ZERO,
            qs: [0; 16]
        };
        rows * k / 32
    ];
    quantize_q4_0(&data, &mut q4).unwrap();
    let (g32, g16, gb16) = (
        Guarded::from_slice(&data),
        Guarded::from_slice(&f16s),
        Guarded::from_slice(&bf16s),
    );
    let rq8: Vec<r::BlockQ8_0> = q8
        .iter()
        .map(|b| r::BlockQ8_0 { d: b.d, qs: b.qs })
        .collect();
    let rq4 = common::to_ref_q4(&q4);
    for row in [0, 2, rows - 1] {
        let cases: [(EmbeddingTable<'_>, Vec<f32>); 5] = [
            (
                EmbeddingTable::F32(&g32),
                data[row * k..(row + 1) * k].to_vec(),
            ),
            (EmbeddingTable::F16(&g16), r::embedding_f16(&f16s, k, row)),
            (
                EmbeddingTable::Bf16(&gb16),
                r::embedding_bf16(&bf16s, k, row),
            ),
            (EmbeddingTable::Q8_0(&q8), r::embedding_q8_0(&rq8, k, row)),
            (EmbeddingTable::Q4_0(&q4), r::embedding_q4_0(&rq4, k, row)),
        ];
        for (table, want) in cases {
            let mut out = Guarded::filled(f32::NAN, k);
            embedding_row(kern(tier), table, k, row, &mut out).unwrap();
            assert_eq!(&out[..], &want[..], "{table:?} row {row}");
        }
    }
    let mut out = vec![0f32; k];
    assert!(embedding_row(kern(tier), EmbeddingTable::F32(&data), k, rows, &mut out).is_err());
    assert!(embedding_row(kern(tier), EmbeddingTable::F32(&data), k, 0, &mut out[..5]).is_err());
    assert!(embedding_row(kern(tier), EmbeddingTable::F32(&data), 7, 0, &mut out[..7]).is_err());
    assert!(matches!(
        embedding_row(kern(tier), EmbeddingTable::Q4_0(&q4), 48, 0, &mut out[..48]),
        Err(Error::NotBlockAligned { .. })
    ));
    assert!(embedding_row(kern(tier), EmbeddingTable::F16(&f16s), 0, 0, &mut []).is_err());
}
per_tier_test!(embedding_rows_are_exact, crate::embedding_case);
