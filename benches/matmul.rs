//! Q4_0 x int8 matmul on every tier this CPU has, through the public API.
//!
//! Throughput is `2 * M * N * K` elements per call, so criterion's "elements/s" reads as FLOP/s
//! (1 Gelem/s = 1 GFLOPS). Each shape runs single-threaded (`matmul`) and on 2 threads
//! (`matmul_parallel` with `ThreadPool::new(2)`). Activation quantization is outside the timing.
//!
//! Bench names are `matmul/<tier>/<threads>t/m<M>/n<N>_k<K>`; filter with e.g.
//! `cargo bench --bench matmul -- 'avx512vnni/2t/m512/'`. The scalar tier runs only for M <= 16
//! (its M = 512 shapes take minutes each).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use qkern::kernels::matmul::kernel_name;
use qkern::parallel::ThreadPool;
use qkern::quant::BlockQ4_0;
use qkern::Tier;
use qkern::{matmul, matmul_parallel, PackedQ4_0, QuantizedActivations};
use std::time::Duration;

const MS: [usize; 4] = [1, 16, 128, 512];
/// (N, K): Qwen2.5-0.5B (896 / 4864 / 128) and Qwen2.5-1.5B (1536 / 8960 / 256) projections.
const SHAPES: [(usize, usize); 8] = [
    (896, 896),
    (128, 896),
    (4864, 896),
    (896, 4864),
    (1536, 1536),
    (256, 1536),
    (8960, 1536),
    (1536, 8960),
];

/// xorshift64: deterministic inputs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn benches(c: &mut Criterion) {
    let pool = ThreadPool::new(2);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for tier in Tier::available() {
        let mut group = c.benchmark_group(format!("matmul/{tier}"));
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(800));
        eprintln!(
            "tier {tier}: kernel {}",
            kernel_name::<qkern::quant::BlockQ4_0>(tier).unwrap()
        );
        for (n, k) in SHAPES {
            let blocks: Vec<BlockQ4_0> = (0..n * k / 32)
                .map(|_| BlockQ4_0 {
                    d: half::f16::from_f32(rng.f32() * 0.01),
                    qs: std::array::from_fn(|_| rng.next() as u8),
                })
                .collect();
            let w = PackedQ4_0::with_tier(&blocks, n, k, tier).expect("available tier");
            drop(blocks);
            for m in MS {
                if tier == Tier::Scalar && m > 16 {
                    continue;
                }
                let x: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
                let mut a = QuantizedActivations::with_tier(tier).expect("available tier");
                a.quantize(&x, m, k).expect("valid shape");
                let mut out = vec![0f32; m * n];
                group.throughput(Throughput::Elements((2 * m * n * k) as u64));
                group.bench_function(format!("1t/m{m}/n{n}_k{k}"), |b| {
                    b.iter(|| matmul(&w, &a, None, &mut out).expect("valid call"))
                });
                group.bench_function(format!("2t/m{m}/n{n}_k{k}"), |b| {
                    b.iter(|| matmul_parallel(&pool, &w, &a, None, &mut out).expect("valid call"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(matmul_benches, benches);
criterion_main!(matmul_benches);
