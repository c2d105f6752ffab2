//! Per-ISA code. `scalar` is portable Rust for every target and the fallback of every op;
//! `aarch64` and `x86_64` hold the SIMD tiers. Everything here is reached through the op modules in
//! `crate::kernels`, which validate arguments first.

pub(crate) mod scalar;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
