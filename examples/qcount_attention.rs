//! Runs one causal prefill attention shape on one tier, for instruction counting with
//! `../shared/tools/qcount` (see `scripts/qcount-attention.sh`).
//!
//! Builds random Q, K, V for `T` positions, then `REPEAT` times writes K and V into a one-layer
//! f16 [`KvCache`] at positions `0..T` and runs [`attention`] over all `T` query rows (one call,
//! the calling thread). The script counts the whole program for `REPEAT` = 1 and 2 and subtracts:
//! what is left is exactly one cache write plus one attention call, warm (scratch already grown).
//!
//! usage: qcount_attention TIER N_HEAD N_KV HEAD_DIM T REPEAT

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
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |scale: f32| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s % 2001) as f32 / 1000.0 - 1.0) * scale
    };
    let q: Vec<f32> = (0..t * n_head * d).map(|_| next(2.0)).collect();
    let k: Vec<f32> = (0..t * n_kv * d).map(|_| next(2.0)).collect();
    let v: Vec<f32> = (0..t * n_kv * d).map(|_| next(1.0)).collect();

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
