//! x86_64 tiers: `Avx2`, `AvxVnni`, `Avx512Vnni` (Rust intrinsics; all stable).
//!
//! Safety contract, enforced in `crate::kernels`: a tier's `#[target_feature]` functions are only
//! reached through a packed operand whose tier passed `Tier::check` (the CPU has every feature
//! that `Tier::is_supported` lists for it).

use crate::kernels::matmul::{ActKernel, Q4Kernel};
use crate::Tier;

pub(crate) mod attention;
pub(crate) mod ops;

/// The activation quantizer (and so the activation layout) for an x86_64 tier.
pub(crate) fn act_kernel(_tier: Tier) -> &'static ActKernel {
    &crate::arch::scalar::ACT_KERNEL
}

/// The Q4_0 kernel for an x86_64 tier.
pub(crate) fn q4_kernel(_tier: Tier) -> &'static Q4Kernel {
    &crate::arch::scalar::Q4_KERNEL
}
