//! Single-thread speed of the activation quantizers and the SwiGLU op per CPU-second of the
//! calling thread (pin it with `taskset -c 0`; insensitive to being descheduled on a shared
//! machine).
//!
//! `cargo run --release --example ops_cputime -- [tier] [M] [K]` (defaults: the detected tier,
//! 128, 8960): quantizing `M x K` values into `Q8_32` and into `Q8_256`, `silu_mul` over `M` rows
//! of `K`, and `silu_mul_quantize` of `M` gate+up rows of `2 K` into `Q8_32`. Prints the least
//! milliseconds per call over the repetitions.

mod common;

use common::thread_cpu_seconds;
use qkern::quant::ActFormat;
use qkern::{silu_mul, silu_mul_quantize, Kernels, QuantizedActivations, Tier};

fn main() -> qkern::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tier: Tier = match args.first() {
        Some(t) => t.parse()?,
        None => Tier::active(),
    };
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let (m, k) = (num(1, 128), num(2, 8960));
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let gu: Vec<f32> = (0..m * 2 * k)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 250.0 - 4.0
        })
        .collect();
    let x = &gu[..m * k];
    let kern = Kernels::for_tier(tier)?;
    let mut a = QuantizedActivations::with_tier(tier)?;
    let mut row = vec![0f32; k];

    let least_ms = |f: &mut dyn FnMut() -> qkern::Result<()>| -> qkern::Result<f64> {
        f()?; // warm up
        let mut best = f64::MAX;
        for _ in 0..30 {
            let c0 = thread_cpu_seconds();
            f()?;
            best = best.min(thread_cpu_seconds() - c0);
        }
        Ok(best * 1e3)
    };
    a.set_formats(&[ActFormat::Q8_32])?;
    let q32 = least_ms(&mut || a.quantize(x, m, k))?;
    a.set_formats(&[ActFormat::Q8_256])?;
    let q256 = least_ms(&mut || a.quantize(x, m, k))?;
    let silu = least_ms(&mut || {
        for r in gu.chunks_exact(2 * k) {
            silu_mul(kern, &r[..k], &r[k..], &mut row)?;
        }
        Ok(())
    })?;
    a.set_formats(&[ActFormat::Q8_32])?;
    let fused = least_ms(&mut || silu_mul_quantize(&gu, k, &mut a))?;
    println!(
        "{tier} {m} x {k}: quantize Q8_32 {q32:.3} ms, Q8_256 {q256:.3} ms; silu_mul {silu:.3} ms; \
         silu_mul_quantize {fused:.3} ms (least CPU time of 30)"
    );
    Ok(())
}
