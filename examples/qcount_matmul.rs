//! Runs one Q4_0 matmul shape on one tier, for instruction counting with `../shared/tools/qcount`
//! (see `scripts/qcount-matmul.sh`). The micro-kernels are the unmangled asm symbols
//! `qkern_q4_{mmla,dot}_*`, so `qcount-run -p sym=qkern_q4_` counts them alone.
//!
//! usage: qcount_matmul TIER M N K [REPEAT]

use qkern::quant::BlockQ4_0;
use qkern::Tier;
use qkern::{matmul, PackedQ4_0, QuantizedActivations};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: {} TIER M N K [REPEAT]", args[0]);
        std::process::exit(2);
    }
    let tier: Tier = args[1].parse().expect("tier name");
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    let (m, n, k) = (num(2), num(3), num(4));
    let repeat = if args.len() > 5 { num(5) } else { 1 };

    // Deterministic, varied data (the counts do not depend on values).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let blocks: Vec<BlockQ4_0> = (0..n * k / 32)
        .map(|_| BlockQ4_0 {
            d: half::f16::from_f32((next() % 1000) as f32 / 1e4),
            qs: core::array::from_fn(|_| next() as u8),
        })
        .collect();
    let x: Vec<f32> = (0..m * k)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();

    let w = PackedQ4_0::with_tier(&blocks, n, k, tier).expect("pack");
    let mut a = QuantizedActivations::with_tier(tier).expect("tier");
    a.quantize(&x, m, k).expect("quantize");
    let mut out = vec![0f32; m * n];
    for _ in 0..repeat {
        matmul(&w, &a, None, &mut out).expect("matmul");
    }
    let sum: f64 = out.iter().map(|&v| v as f64).sum();
    println!(
        "{tier} ({}) m={m} n={n} k={k} x{repeat}: checksum {sum:.6}",
        qkern::kernels::matmul::kernel_name::<qkern::quant::BlockQ4_0>(tier).unwrap()
    );
}
