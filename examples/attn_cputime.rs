//! One layer's causal prefill attention timed by the calling thread's CPU time, for tuning on a
//! shared machine (insensitive to being descheduled; pin it with `taskset -c 0`).
//!
//! Writes random K and V for `T` positions into a one-layer f16 [`KvCache`] (bf16 where the
//! tier runs the x86 bf16 path) once, then runs [`attention`] over all `T` query rows `REPS`
//! times, in chunks of `CHUNK` query positions at growing `pos0` as the prefill runs them (`CHUNK`
//! = `T`: one call). Prints the minimum and the median milliseconds per pass over the `T` rows.
//!
//! usage: attn_cputime N_HEAD N_KV HEAD_DIM T REPS [CHUNK]

use qkern::{attention, KvCache, KvDtype};

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

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

    // Deterministic data, |q|, |k| <= 2, |v| <= 1.
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
