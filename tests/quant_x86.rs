//! The x86_64 activation quantizer (AVX2) against `quantize_activation_block`, bit for bit, on every
//! tier: random data over many scales, halfway ties, zeros, huge and tiny values (including those
//! whose `1 / d` overflows), mixed scales within a block, and inputs that end at a `PROT_NONE` page.
//! Integers and scales are compared exactly: the rule is exact, there is no tolerance.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{guard::Guarded, Rng};
use qkern::quant::quantize_activation_block;
use qkern::QuantizedActivations;
use qkern::Tier;

/// Quantizes `x` as `m` rows on `tier` and checks every block against the rule.
fn check(tier: Tier, x: &[f32], m: usize, what: &str) {
    let k = x.len() / m;
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(x, m, k).unwrap();
    let got = a.blocks();
    assert_eq!(got.len(), x.len() / 32);
    for (b, (g, xb)) in got.iter().zip(x.chunks_exact(32)).enumerate() {
        let want = quantize_activation_block(xb.try_into().unwrap());
        assert_eq!(
            (g.d.to_bits(), g.qs),
            (want.d.to_bits(), want.qs),
            "tier {tier} {what} m={m} block {b}: {xb:?}"
        );
    }
}

fn random_scales(tier: Tier) {
    let mut rng = Rng(0x5eed);
    let mut x = Vec::new();
    let mut e = -149i32;
    while e <= 127 {
        let scale = 2f32.powi(e) * (1.0 + rng.f32().abs());
        x.extend(rng.vec(32, 1.0).iter().map(|v| v * scale));
        e += 3;
    }
    for m in [1, 3] {
        let k = x.len() / m / 32 * 32;
        check(tier, &x[..m * k], m, "scales");
    }
    // Many random rows at ordinary scales, K up to a model's width.
    for k in [32, 96, 896, 4864] {
        let x = rng.vec(2 * k, 3.0);
        check(tier, &x, 2, "random");
    }
}

fn ties(tier: Tier) {
    let mut x = Vec::new();
    // amax 127 -> d = 1, id = 1: x * id = k + 0.5 exactly, both signs, every magnitude.
    for base in [0.0f32, 32.0, 64.0, 94.0] {
        x.extend((0..32).map(|i| match i {
            0 => 127.0,
            _ if i % 2 == 0 => base + i as f32 + 0.5,
            _ => -(base + i as f32 + 0.5),
        }));
    }
    // amax 63.5 -> d = 0.5, id = 2: x * id = j + 0.5 at quarter steps.
    x.extend((0..32).map(|i| {
        if i == 0 {
            -63.5
        } else {
            (i as f32 - 16.0) * 0.25 + 0.125
        }
    }));
    // Values just below and above a half (0.5 -/+ ulp) after scaling by 1.
    x.extend((0..32).map(|i| match i {
        0 => 127.0,
        _ if i % 2 == 0 => f32::from_bits(0.5f32.to_bits() - (i as u32 / 2)) + (i / 4) as f32,
        _ => f32::from_bits(0.5f32.to_bits() + (i as u32 / 2)) - (i / 4) as f32,
    }));
    check(tier, &x, 1, "ties");
}

fn edges(tier: Tier) {
    let mut rng = Rng(42);
    let mut x = vec![0f32; 32];
    x.extend([-0.0f32; 32]);
    for scale in [3e38f32, 3.4e38, 1e-30, 3.6e-37, 1e-38, 1e-40, 1e-45] {
        x.extend(rng.vec(32, 1.0).iter().map(|v| v * scale));
    }
    // One large value among tiny ones and vice versa; max finite; infinities.
    x.extend((0..32).map(|i| if i == 7 { 3e38 } else { 1e-40 * i as f32 }));
    x.extend((0..32).map(|i| if i == 31 { -1e-45 } else { 0.0 }));
    x.extend((0..32).map(|i| {
        if i % 3 == 0 {
            f32::MAX
        } else {
            -f32::MAX / i as f32
        }
    }));
    x.extend((0..32).map(|i| match i {
        5 => f32::INFINITY,
        9 => f32::NEG_INFINITY,
        _ => i as f32,
    }));
    // Mixed magnitudes within every block.
    for _ in 0..8 {
        x.extend((0..32).map(|i| rng.f32() * 10f32.powi(i % 9 - 4)));
    }
    check(tier, &x, 1, "edges");
    check(tier, &x, x.len() / 32, "edges");
}

fn guarded(tier: Tier) {
    let mut rng = Rng(7);
    for k in [32, 64, 160] {
        for m in [1, 2, 5] {
            let x = Guarded::from_slice(&rng.vec(m * k, 4.0));
            check(tier, &x, m, "guarded");
        }
    }
}

per_tier_test!(random_scales_exact, super::random_scales);
per_tier_test!(ties_exact, super::ties);
per_tier_test!(edge_values_exact, super::edges);
per_tier_test!(input_at_page_end, super::guarded);
