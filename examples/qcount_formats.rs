//! Runs one matmul of a file weight format (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q8_0) on one
//! tier, for instruction counting with `../shared/tools/qcount` (see `scripts/qcount-formats.sh`).
//! The aarch64 kernels of these formats are Rust (`qkern::arch::aarch64::formats`), so
//! `qcount-run -p sym=formats` counts them alone (in a release build, where the intrinsics are
//! inlined).
//!
//! usage: qcount_formats FORMAT TIER M N K [REPEAT]

use qkern::quant::{BlockQ4K, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0};
use qkern::{matmul, Packed, QuantizedActivations, Tier, WeightFormat};

fn run<F: WeightFormat>(tier: Tier, m: usize, n: usize, k: usize, repeat: usize) {
    // Deterministic bytes (the counts do not depend on values); f16 fields may be anything.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut blocks = vec![F::zeroed(); n * k / F::BLOCK_LEN];
    for b in bytemuck::cast_slice_mut::<F, u8>(&mut blocks) {
        *b = next() as u8 & 0x3B; // keeps every f16 finite (exponent bits below 0x7C)
    }
    let x: Vec<f32> = (0..m * k)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let w = Packed::<F>::with_tier(&blocks, n, k, tier).expect("pack");
    let mut a = QuantizedActivations::with_tier(tier).expect("tier");
    a.require(F::ACT);
    a.quantize(&x, m, k).expect("quantize");
    let mut out = vec![0f32; m * n];
    for _ in 0..repeat {
        matmul(&w, &a, None, &mut out).expect("matmul");
    }
    let sum: f64 = out.iter().map(|&v| v as f64).sum();
    println!(
        "{} {tier} ({}) m={m} n={n} k={k} x{repeat}: checksum {sum:.6}",
        F::NAME,
        w.kernel_name()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: {} FORMAT TIER M N K [REPEAT]", args[0]);
        std::process::exit(2);
    }
    let tier: Tier = args[2].parse().expect("tier name");
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    let (m, n, k) = (num(3), num(4), num(5));
    let repeat = if args.len() > 6 { num(6) } else { 1 };
    match args[1].as_str() {
        "q4_1" => run::<BlockQ4_1>(tier, m, n, k, repeat),
        "q5_0" => run::<BlockQ5_0>(tier, m, n, k, repeat),
        "q5_1" => run::<BlockQ5_1>(tier, m, n, k, repeat),
        "q4_k" => run::<BlockQ4K>(tier, m, n, k, repeat),
        "q5_k" => run::<BlockQ5K>(tier, m, n, k, repeat),
        "q6_k" => run::<BlockQ6K>(tier, m, n, k, repeat),
        "q8_0" => run::<BlockQ8_0>(tier, m, n, k, repeat),
        f => panic!("unknown format {f}"),
    }
}
