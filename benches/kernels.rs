//! Criterion benches of the kernels on every tier this CPU has (placeholder until the tiers land).
use criterion::{criterion_group, criterion_main, Criterion};

fn benches(_c: &mut Criterion) {}

criterion_group!(kernels, benches);
criterion_main!(kernels);
