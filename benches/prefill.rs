//! End-to-end prefill and decode on a model with the Qwen2.5-0.5B shapes and seeded random weights
//! (the same model `qkern bench` builds), at the detected tier on all available cores.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qkern::model::{Config, Model, ModelWeights, SessionOptions};
use qkern::Tier;

fn benches(c: &mut Criterion) {
    let config = Config::qwen25_0_5b();
    let weights = ModelWeights::random(&config, 0x5eed).expect("valid config");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = Model::new(weights, Tier::active(), threads).expect("packing");
    let mut g = c.benchmark_group("qwen25_0_5b");
    g.sample_size(10);
    for n in [128usize, 512] {
        let tokens: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % 151936).collect();
        let mut s = model
            .session(SessionOptions {
                capacity: Some(n + 1),
                ..SessionOptions::default()
            })
            .expect("session");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("prefill_{n}"), |b| {
            b.iter(|| {
                s.reset();
                s.prefill(&tokens).expect("prefill")
            })
        });
    }
    let mut s = model
        .session(SessionOptions {
            capacity: Some(4096),
            ..SessionOptions::default()
        })
        .expect("session");
    s.prefill(&[1, 2, 3, 4]).expect("prefill");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_after_4", |b| {
        b.iter(|| {
            if s.pos() + 1 >= s.capacity() {
                s.reset();
                s.prefill(&[1, 2, 3, 4]).expect("prefill");
            }
            s.decode(5).expect("decode")
        })
    });
    g.finish();
}

criterion_group!(prefill, benches);
criterion_main!(prefill);
