//! Runs one causal prefill attention shape on one tier, for instruction counting with
//! `../shared/tools/qcount` (see `scripts/qcount-attention.sh`).
//!
//! Builds random Q, K, V for `T` positions, then `REPEAT` times writes K and V into a one-layer
//! f16 [`KvCache`] at positions `0..T` and runs [`attention`] over all `T` query rows (one call,
//! the calling thread). The script counts the whole program for `REPEAT` = 1 and 2 and subtracts:
//! what is left is exactly one cache write plus one attention call, warm (scratch already grown).
//!
//! usage: qcount_attention TIER N_HEAD N_KV HEAD_DIM T REPEAT

mod common;

use common::attention_data;
use qkern::Tier;
use qkern::{attention, KvCache, KvDtype};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: {} TIER N_HEAD N_KV HEAD_DIM T REPEAT", args[0]);
        std::process::exit(2);
    }
    let tier: Tier = args[1].parse().expect("tier name");
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    let (n_head, n_kv, d, t, repeat) = (num(2), num(3), num(4), num(5), num(6));

    // Deterministic, varied data (the counts do not depend on values, except through the path
    // choice, which these magnitudes keep on the fp16 path where the CPU has it).
    let (q, k, v) = attention_data(t, n_head, n_kv, d);

    let mut cache = KvCache::new(1, n_kv, d, t, KvDtype::F16).expect("cache");
    let mut out = vec![0f32; q.len()];
    for _ in 0..repeat {
        cache.write(0, 0, &k, &v).expect("write");
        attention(&q, n_head, None, &cache, 0, 0, &mut out).expect("attention");
    }
    let sum: f64 = out.iter().map(|&v| v as f64).sum();
    println!(
        "{tier} ({}) heads {n_head}/{n_kv} d={d} t={t} x{repeat}: checksum {sum:.6}",
        qkern::Kernels::for_tier(tier).unwrap().attention_name()
    );
}
