//! One layer's causal prefill attention timed by the calling thread's CPU time, for tuning on a
//! shared machine (insensitive to being descheduled; pin it with `taskset -c 0`).
//!
//! Writes random K and V for `T` positions into a one-layer f16 [`KvCache`] (bf16 where the
//! tier runs the x86 bf16 path) once, then runs [`attention`] over all `T` query rows `REPS`
//! times, in chunks of `CHUNK` query positions at growing `pos0` as the prefill runs them (`CHUNK`
//! = `T`: one call). Prints the minimum and the median milliseconds per pass over the `T` rows.
//!
//! `QKERN_KV=f16|f32|i8` picks the cache's type (default f16).
//!
//! usage: attn_cputime N_HEAD N_KV HEAD_DIM T REPS [CHUNK]

mod common;

use common::{attention_data, thread_cpu_seconds};
use qkern::{attention, KvCache, KvDtype};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 && args.len() != 7 {
        eprintln!("usage: {} N_HEAD N_KV HEAD_DIM T REPS [CHUNK]", args[0]);
        std::process::exit(2);
    }
    let num = |i: usize| -> usize { args[i].parse().expect("a number") };
    let (n_head, n_kv, d, t, reps) = (num(1), num(2), num(3), num(4), num(5));
    let chunk = if args.len() == 7 { num(6) } else { t };
    assert!(chunk > 0);

    let (q, k, v) = attention_data(t, n_head, n_kv, d);

    let kv: KvDtype =
        std::env::var("QKERN_KV").map_or(KvDtype::F16, |s| s.parse().expect("QKERN_KV"));
    let mut cache = KvCache::new(1, n_kv, d, t, kv).expect("cache");
    cache.write(0, 0, &k, &v).expect("write");
    let mut out = vec![0f32; q.len()];
    let w = n_head * d;
    let mut pass = || {
        let mut p0 = 0;
        while p0 < t {
            let n = chunk.min(t - p0);
            let qs = &q[p0 * w..(p0 + n) * w];
            let os = &mut out[p0 * w..(p0 + n) * w];
            attention(qs, n_head, None, &cache, 0, p0, os).expect("attention");
            p0 += n;
        }
    };
    pass();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = thread_cpu_seconds();
            pass();
            (thread_cpu_seconds() - t0) * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let sum: f64 = out.iter().map(|&v| v as f64).sum();
    println!(
        "heads {n_head}/{n_kv} d={d} t={t} chunk={chunk}: min {:.3} ms, median {:.3} ms over {reps} \
         (checksum {sum:.6})",
        ms[0],
        ms[reps / 2]
    );
}
