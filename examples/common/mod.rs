//! Helpers shared by the examples (`mod common;` in each): the calling thread's CPU time, and the
//! deterministic attention inputs of the attention examples.
#![allow(dead_code)] // each example uses part of it

/// Seconds of CPU time the calling thread has used (insensitive to being descheduled on a
/// shared machine).
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Deterministic Q (`t x n_head x d`), K and V (`t x n_kv x d`) with |q|, |k| <= 2, |v| <= 1.
pub fn attention_data(
    t: usize,
    n_head: usize,
    n_kv: usize,
    d: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
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
    (q, k, v)
}
