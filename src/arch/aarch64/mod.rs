//! aarch64 tiers: `Neon` (ARMv8.0, Rust intrinsics), `NeonDot` (SDOT) and `NeonI8mm` (SMMLA), whose
//! micro-kernels are the assembly routines in `asm/aarch64/` (assembled by `build.rs`, one
//! `-march` per tier so a file cannot use a later tier's instructions).
//!
//! Safety contract, enforced in `crate::kernels`: an asm routine of a tier is only called through
//! a safe wrapper here, reached through an operand whose tier passed `Tier::check`; the wrapper
//! checks every length and alignment the routine assumes.
//!
//! Q4_0 matmul: one activation layout for the three tiers ([`act`]), two weight layouts
//! ([`pack`]): SMMLA order for `Neon` and `NeonI8mm`, SDOT order for `NeonDot`.

use crate::aligned::AlignedBuf;
use crate::kernels::matmul::{ActKernel, GemmArgs, Q4Kernel};
use crate::quant::BlockQ4_0;
use crate::Tier;

pub(crate) mod act;
pub(crate) mod attention;
mod attention_fp16;
pub(crate) mod dot;
pub(crate) mod matmul_asm;
mod matmul_neon;
pub(crate) mod matmul_q8;
pub(crate) mod ops;
pub(crate) mod pack;

use matmul_asm::Isa;
use pack::Layout;

static ACT_KERNEL: ActKernel = ActKernel {
    size: act::size,
    quantize_row: act::quantize_row,
    unpack: act::unpack,
};

fn pack_mmla(blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf {
    pack::pack(Layout::Mmla, blocks, n, k)
}
fn unpack_mmla(buf: &AlignedBuf, n: usize, k: usize) -> Vec<BlockQ4_0> {
    pack::unpack(Layout::Mmla, buf, n, k)
}
fn pack_dot(blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf {
    pack::pack(Layout::Dot, blocks, n, k)
}
fn unpack_dot(buf: &AlignedBuf, n: usize, k: usize) -> Vec<BlockQ4_0> {
    pack::unpack(Layout::Dot, buf, n, k)
}

/// # Safety
/// See [`Q4Kernel::gemm`].
unsafe fn gemm_neon(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; NEON is baseline.
    unsafe { matmul_neon::gemm(args) }
}
/// # Safety
/// See [`Q4Kernel::gemm`] (the tier, and so FEAT_DotProd, was checked).
unsafe fn gemm_dot(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; weights packed by `pack_dot`.
    unsafe { matmul_asm::gemm(Isa::Dot, args) }
}
/// # Safety
/// See [`Q4Kernel::gemm`] (the tier, and so FEAT_I8MM, was checked).
unsafe fn gemm_i8mm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; weights packed by `pack_mmla`.
    unsafe { matmul_asm::gemm(Isa::I8mm, args) }
}

static NEON_Q4: Q4Kernel = Q4Kernel {
    name: "neon",
    pack: pack_mmla,
    unpack: unpack_mmla,
    gemm: gemm_neon,
};
static DOT_Q4: Q4Kernel = Q4Kernel {
    name: "neondot-sdot-asm",
    pack: pack_dot,
    unpack: unpack_dot,
    gemm: gemm_dot,
};
static I8MM_Q4: Q4Kernel = Q4Kernel {
    name: "neoni8mm-smmla-asm",
    pack: pack_mmla,
    unpack: unpack_mmla,
    gemm: gemm_i8mm,
};

/// The activation quantizer (and so the activation layout) for an aarch64 tier.
pub(crate) fn act_kernel(_tier: Tier) -> &'static ActKernel {
    &ACT_KERNEL
}

/// The Q4_0 kernel for an aarch64 tier.
pub(crate) fn q4_kernel(tier: Tier) -> &'static Q4Kernel {
    match tier {
        Tier::NeonI8mm => &I8MM_Q4,
        Tier::NeonDot => &DOT_Q4,
        _ => &NEON_Q4,
    }
}
