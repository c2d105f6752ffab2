//! Single-thread matmul speed per CPU-second of the calling thread, for tuning on a shared machine
//! (wall-clock benches are in `benches/matmul.rs`; this one is insensitive to being descheduled).
//!
//! `cargo run --release --example matmul_cputime -- [tier] [M] [N] [K] [format]` (defaults: the
//! detected tier, 512, 1536, 1536, q4_0; formats q4_0 q8_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k).
//! Prints GFLOPS by thread CPU time and by wall time.

mod common;

use common::thread_cpu_seconds;
use qkern::quant::*;
use qkern::Tier;
use qkern::{matmul, Packed, QuantizedActivations, WeightFormat};

fn main() -> qkern::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tier: Tier = match args.first() {
        Some(t) => t.parse()?,
        None => Tier::active(),
    };
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let (m, n, k) = (num(1, 512), num(2, 1536), num(3, 1536));
    match args.get(4).map_or("q4_0", |s| s.as_str()) {
        "q4_0" => run::<BlockQ4_0>(tier, m, n, k),
        "q8_0" => run::<BlockQ8_0>(tier, m, n, k),
        "q4_1" => run::<BlockQ4_1>(tier, m, n, k),
        "q5_0" => run::<BlockQ5_0>(tier, m, n, k),
        "q5_1" => run::<BlockQ5_1>(tier, m, n, k),
        "q4_k" => run::<BlockQ4K>(tier, m, n, k),
        "q5_k" => run::<BlockQ5K>(tier, m, n, k),
        "q6_k" => run::<BlockQ6K>(tier, m, n, k),
        f => panic!("unknown format {f}"),
    }
}

/// Random blocks of `F` (every byte random, then the f16 scales set small and finite by
/// clearing their top exponent bits: bytes 1 of each f16 field are at known offsets per format).
fn run<F: WeightFormat>(tier: Tier, m: usize, n: usize, k: usize) -> qkern::Result<()> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let blocks: Vec<F> = (0..n * k / F::BLOCK_LEN)
        .map(|_| {
            let mut b = F::zeroed();
            for byte in bytemuck::bytes_of_mut(&mut b) {
                *byte = next() as u8;
            }
            b
        })
        .collect();
    let w = Packed::<F>::with_tier(&blocks, n, k, tier)?;
    let x: Vec<f32> = (0..m * k)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let mut a = QuantizedActivations::with_tier(tier)?;
    a.require(F::ACT);
    a.quantize(&x, m, k)?;
    let mut out = vec![0f32; m * n];
    matmul(&w, &a, None, &mut out)?; // warm up
    let flop = 2.0 * (m * n * k) as f64;
    let reps = ((2e9 / flop) as usize).clamp(3, 10_000);
    let (c0, t0) = (thread_cpu_seconds(), std::time::Instant::now());
    for _ in 0..reps {
        matmul(&w, &a, None, &mut out)?;
    }
    let (cpu, wall) = (thread_cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    println!(
        "{tier} {} ({}) m={m} n={n} k={k}: {:.1} GFLOPS per CPU-second, {:.1} GFLOPS wall ({reps} reps)",
        F::NAME,
        w.kernel_name(),
        flop * reps as f64 / cpu / 1e9,
        flop * reps as f64 / wall / 1e9
    );
    Ok(())
}
