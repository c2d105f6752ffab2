//! x86_64 tiers: `Avx2`, `AvxVnni`, `Avx512Vnni` (Rust intrinsics; all stable).
//!
//! Safety contract, enforced in `crate::kernels`: a tier's `#[target_feature]` functions are only
//! reached through a packed operand whose tier passed `Tier::check` (the CPU has every feature
//! that `Tier::is_supported` lists for it).
//!
//! * `layout`: the packed weight and activation layouts (shared by the tiers, weights in column
//!   groups of 16 for zmm and 8 for ymm).
//! * `gemm`: the GEMM/GEMV driver and micro-kernel, generic over the vector operations of a tier.
//! * `isa`: those operations for each tier.

mod gemm;
mod isa;
mod layout;

#[cfg(test)]
mod emu;

use crate::kernels::matmul::{ActKernel, GemmArgs, Q4Kernel};
use crate::Tier;

pub(crate) mod attention;
pub(crate) mod matmul_q8;
pub(crate) mod ops;

/// One activation layout for every x86_64 tier (see `layout`).
static ACT_KERNEL: ActKernel = ActKernel {
    size: layout::act_size,
    quantize_row: layout::quantize_row,
    unpack: layout::unpack_acts,
};

static AVX2: Q4Kernel = Q4Kernel {
    name: "avx2-4x8",
    pack: layout::pack::<8>,
    unpack: layout::unpack::<8>,
    gemm: gemm_avx2,
};

static AVXVNNI: Q4Kernel = Q4Kernel {
    name: "avxvnni-4x8",
    pack: layout::pack::<8>,
    unpack: layout::unpack::<8>,
    gemm: gemm_avxvnni,
};

static AVX512VNNI: Q4Kernel = Q4Kernel {
    name: "avx512vnni-8x16",
    pack: layout::pack::<16>,
    unpack: layout::unpack::<16>,
    gemm: gemm_avx512vnni,
};

/// The activation quantizer (and so the activation layout) for an x86_64 tier.
pub(crate) fn act_kernel(_tier: Tier) -> &'static ActKernel {
    &ACT_KERNEL
}

/// The Q4_0 kernel for an x86_64 tier.
pub(crate) fn q4_kernel(tier: Tier) -> &'static Q4Kernel {
    match tier {
        Tier::Avx512Vnni => &AVX512VNNI,
        Tier::AvxVnni => &AVXVNNI,
        _ => &AVX2,
    }
}

/// Tiles (rows x column groups): GEMM `MR x NG`, GEMV (at most 3 rows) `rows x NGV`.
/// # Safety
/// See [`Q4Kernel::gemm`]; the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_avx2(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx2, 4, 1, 2>(args) }
}

/// # Safety
/// See [`Q4Kernel::gemm`]; the CPU supports AVX2, FMA and AVX-VNNI.
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn gemm_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 4, 1, 2>(args) }
}

/// # Safety
/// See [`Q4Kernel::gemm`]; the CPU supports AVX-512 F/BW/VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2>(args) }
}
