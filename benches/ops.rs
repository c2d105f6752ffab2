//! Criterion benches of the attention and layer ops on every tier this CPU has (quick settings).
//!
//! `cargo bench --bench ops` (add a filter, e.g. `-- attention`). Attention reports GFLOP/s as
//! `Gelem/s` (4 flops per query-key-dimension triple: `Q K^T` and `P V`, causal pairs only);
//! the other ops report GB/s of their inputs and outputs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qkern::Tier;
use qkern::{
    add_assign, attention, embedding_row, rmsnorm, rmsnorm_quantize, silu_mul, softmax,
    EmbeddingTable, KvCache, KvDtype, QuantizedActivations, Rope,
};
use std::hint::black_box;
use std::time::Duration;

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                * 2.0
                - 1.0
        })
        .collect()
}

fn kern(t: Tier) -> &'static qkern::Kernels {
    qkern::Kernels::for_tier(t).expect("an available tier")
}

/// One tier per distinct implementation (e.g. `avxvnni` runs the `avx2` ops).
fn tiers(name: impl Fn(Tier) -> String) -> Vec<(Tier, String)> {
    let mut seen: Vec<(Tier, String)> = Vec::new();
    for t in Tier::available() {
        let n = name(t);
        if !seen.iter().any(|(_, s)| *s == n) {
            seen.push((t, n));
        }
    }
    seen
}

fn bench_attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    for (n_head, n_kv, d) in [(14usize, 2usize, 64usize), (12, 2, 128)] {
        for t in [128usize, 512, 2048] {
            let q = data(t * n_head * d, 1);
            let k = data(t * n_kv * d, 2);
            let v = data(t * n_kv * d, 3);
            let mut out = vec![0f32; q.len()];
            let flops = 4 * n_head * d * t * (t + 1) / 2;
            g.throughput(Throughput::Elements(flops as u64));
            for (tier, path) in tiers(|t| kern(t).attention_name().to_string()) {
                if tier == Tier::Scalar && t > 512 {
                    continue; // minutes per sample
                }
                let mut cache = KvCache::with_tier(1, n_kv, d, t, KvDtype::F16, tier).unwrap();
                cache.write(0, 0, &k, &v).unwrap();
                let id = BenchmarkId::new(format!("{path}/h{n_head}kv{n_kv}d{d}"), t);
                g.bench_function(id, |b| {
                    b.iter(|| {
                        attention(black_box(&q), n_head, None, &cache, 0, 0, &mut out).unwrap()
                    })
                });
            }
        }
    }
    g.finish();
}

fn bench_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("ops");
    let (k, ff) = (896usize, 4864usize);
    let x = data(k, 4);
    let w = data(k, 5);
    let gate = data(ff, 6);
    let up = data(ff, 7);
    let mut out = vec![0f32; ff];
    let rope = Rope::new(64, 1_000_000.0, 4096).unwrap();
    let table16: Vec<half::f16> = data(16 * k, 8)
        .iter()
        .map(|&v| half::f16::from_f32(v))
        .collect();
    for (tier, name) in tiers(|t| kern(t).ops_name().to_string()) {
        g.throughput(Throughput::Bytes((3 * k * 4) as u64));
        g.bench_function(BenchmarkId::new("rmsnorm", &name), |b| {
            b.iter(|| rmsnorm(kern(tier), black_box(&x), &w, 1e-6, &mut out[..k]).unwrap())
        });
        let mut qa = QuantizedActivations::with_tier(tier).unwrap();
        g.throughput(Throughput::Bytes((2 * k * 4 + k + k / 8) as u64));
        g.bench_function(BenchmarkId::new("rmsnorm_quantize", &name), |b| {
            b.iter(|| rmsnorm_quantize(black_box(&x), &w, 1e-6, &mut qa).unwrap())
        });
        g.throughput(Throughput::Bytes((3 * ff * 4) as u64));
        g.bench_function(BenchmarkId::new("silu_mul", &name), |b| {
            b.iter(|| silu_mul(kern(tier), black_box(&gate), &up, &mut out).unwrap())
        });
        let mut acc = data(k, 9);
        g.throughput(Throughput::Bytes((3 * k * 4) as u64));
        g.bench_function(BenchmarkId::new("add_assign", &name), |b| {
            b.iter(|| add_assign(kern(tier), black_box(&mut acc), &x).unwrap())
        });
        let row = data(2048, 10);
        let mut sm = row.clone();
        g.throughput(Throughput::Bytes((2 * 2048 * 4) as u64));
        g.bench_function(BenchmarkId::new("softmax2048", &name), |b| {
            b.iter(|| {
                sm.copy_from_slice(&row);
                softmax(kern(tier), black_box(&mut sm)).unwrap()
            })
        });
        let mut qk = data(16 * 14 * 64, 11);
        let bias = data(14 * 64, 12);
        g.throughput(Throughput::Bytes((2 * qk.len() * 4) as u64));
        g.bench_function(BenchmarkId::new("rope_16x14x64_bias", &name), |b| {
            b.iter(|| {
                rope.apply(kern(tier), black_box(&mut qk), 14, 100, Some(&bias))
                    .unwrap()
            })
        });
        g.throughput(Throughput::Bytes((k * 2 + k * 4) as u64));
        g.bench_function(BenchmarkId::new("embedding_f16", &name), |b| {
            b.iter(|| {
                embedding_row(
                    kern(tier),
                    EmbeddingTable::F16(&table16),
                    k,
                    black_box(5),
                    &mut out[..k],
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(800))
        .sample_size(10)
}

criterion_group!(name = benches; config = quick(); targets = bench_attention, bench_ops);
criterion_main!(benches);
