//! aarch64 tiers: `Neon` (ARMv8.0, Rust intrinsics), `NeonDot` (SDOT) and `NeonI8mm` (SMMLA), whose
//! micro-kernels are the assembly routines in `asm/aarch64/` (assembled by `build.rs`, one
//! `-march` per tier so a file cannot use a later tier's instructions).
//!
//! Safety contract, enforced in `crate::kernels`: an asm routine of a tier is only called through
//! a safe wrapper here, reached through an operand whose tier passed `Tier::check`; the wrapper
//! checks every length and alignment the routine assumes.

use crate::kernels::matmul::{ActKernel, Q4Kernel};
use crate::Tier;

pub(crate) mod attention;
mod attention_fp16;
pub(crate) mod dot;
pub(crate) mod ops;

/// The activation quantizer (and so the activation layout) for an aarch64 tier.
pub(crate) fn act_kernel(_tier: Tier) -> &'static ActKernel {
    &crate::arch::scalar::ACT_KERNEL
}

/// The Q4_0 kernel for an aarch64 tier.
pub(crate) fn q4_kernel(_tier: Tier) -> &'static Q4Kernel {
    &crate::arch::scalar::Q4_KERNEL
}
