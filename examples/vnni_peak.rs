//! Peak int8 multiply-accumulate rate of this x86_64 CPU, the yardstick for the matmul benches.
//!
//! A tight loop of 12 independent accumulators per thread, on 1 and 2 threads:
//! * `zmm vpdpbusd` (AVX-512 VNNI): 64 MAC per instruction;
//! * `ymm vpdpbusd` (AVX-VNNI): 32 MAC;
//! * `ymm vpmaddubsw` (AVX2): 32 multiplies with pairwise adds, each chained on its own result
//!   (the AVX2 kernel also needs a `vpaddw` per `vpmaddubsw`, so this is an upper bound it
//!   cannot reach).
//!
//! Run: `cargo run --release --example vnni_peak`. Prints GMAC/s and GOPS (= 2 x GMAC/s, the unit
//! of the benches' GFLOPS).

mod common;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    const ACCS: usize = 12;

    macro_rules! peak_loop {
        ($name:ident, $feat:literal, $vec:ty, $set:expr, $op:expr) => {
            /// # Safety
            /// The CPU has the named target features.
            #[target_feature(enable = $feat)]
            unsafe fn $name(iters: u64) -> $vec {
                let a: $vec = black_box($set(1));
                let b: $vec = black_box($set(2));
                // Distinct opaque starting values, so that the compiler cannot merge the chains.
                let mut acc: [$vec; ACCS] = std::array::from_fn(|i| black_box($set(i as i8)));
                for _ in 0..iters {
                    for x in acc.iter_mut() {
                        *x = $op(*x, a, b);
                    }
                }
                black_box(acc)[0]
            }
        };
    }

    peak_loop!(
        zmm_dpbusd,
        "avx512f,avx512vnni",
        __m512i,
        _mm512_set1_epi8,
        _mm512_dpbusd_epi32
    );
    peak_loop!(
        ymm_dpbusd,
        "avx2,avxvnni",
        __m256i,
        _mm256_set1_epi8,
        _mm256_dpbusd_avx_epi32
    );
    peak_loop!(
        ymm_maddubs,
        "avx2",
        __m256i,
        _mm256_set1_epi8,
        |acc, _a, b| _mm256_maddubs_epi16(acc, b)
    );

    use crate::common::thread_cpu_seconds;

    /// Runs `f(iters)` on `threads` threads at once. Returns instructions per second in all, by
    /// wall time and by each thread's own CPU time (summed over threads: what the cores deliver
    /// while they run this, even on a machine shared with other work).
    fn rate(threads: usize, iters: u64, f: fn(u64)) -> (f64, f64) {
        f(iters / 10); // warm up (clock ramp)
        let start = std::time::Instant::now();
        let per_cpu: f64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let c0 = thread_cpu_seconds();
                        f(iters);
                        (iters * ACCS as u64) as f64 / (thread_cpu_seconds() - c0)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("no panic")).sum()
        });
        let wall = (threads as u64 * iters * ACCS as u64) as f64 / start.elapsed().as_secs_f64();
        (wall, per_cpu)
    }

    pub fn main() {
        let iters = 200_000_000 / ACCS as u64;
        // (name, supported, MAC per instruction, loop)
        type Case = (&'static str, bool, u64, fn(u64));
        let cases: [Case; 3] = [
            (
                "zmm vpdpbusd (avx512vnni)",
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512f"),
                64,
                |n| {
                    // SAFETY: only run when the features were detected (the flag above).
                    black_box(unsafe { zmm_dpbusd(n) });
                },
            ),
            (
                "ymm vpdpbusd (avxvnni)",
                is_x86_feature_detected!("avxvnni"),
                32,
                |n| {
                    // SAFETY: only run when the features were detected (the flag above).
                    black_box(unsafe { ymm_dpbusd(n) });
                },
            ),
            (
                "ymm vpmaddubsw (avx2)",
                is_x86_feature_detected!("avx2"),
                32,
                |n| {
                    // SAFETY: only run when the features were detected (the flag above).
                    black_box(unsafe { ymm_maddubs(n) });
                },
            ),
        ];
        for (name, ok, macs, f) in cases {
            if !ok {
                println!("{name}: not supported by this CPU");
                continue;
            }
            for threads in [1, 2] {
                let (wall, cpu) = rate(threads, iters, f);
                let g = |r: f64| r * macs as f64 / 1e9;
                println!(
                    "{name}, {threads} thread(s): wall {:.2} G instr/s = {:.0} GMAC/s = {:.0} GOPS; \
                     per CPU-second {:.2} G instr/s = {:.0} GMAC/s = {:.0} GOPS",
                    wall / 1e9,
                    g(wall),
                    2.0 * g(wall),
                    cpu / 1e9,
                    g(cpu),
                    2.0 * g(cpu)
                );
            }
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    x86::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("vnni_peak measures x86_64 instructions; nothing to do on this target");
}
