//! x86_64 tiers: `Avx2`, `AvxVnni`, `Avx512Vnni` (Rust intrinsics; all stable).
//!
//! Safety contract, enforced in `crate::kernels`: a tier's `#[target_feature]` functions are only
//! reached through a packed operand whose tier passed `Tier::check` (the CPU has every feature
//! that `Tier::is_supported` lists for it).
//!
//! * `layout`: the packed weight and activation layouts (shared by the tiers, weights in column
//!   groups of 16 for zmm and 8 for ymm).
//! * `quant`: the AVX2 activation quantizer into that layout (bit-identical to the scalar rule).
//! * `gemm`: the GEMM/GEMV driver and micro-kernel, generic over the vector operations of a tier.
//! * `isa`: those operations for each tier.
//! * `emu` (tests only): the same driver over portable `vpdpbusd` emulations with the zmm and ymm
//!   tiles, so the VNNI tiers' tile, tail and sub-range logic is tested on CPUs without them.
//!
//! Kernels (tile = rows x columns; GEMV tiles for calls of at most 3 rows: rows x 2 groups):
//!
//! | tier | tile | per 32-deep block of a tile |
//! |---|---|---|
//! | Avx512Vnni | 8 x 16 | 4 loads, 12 unpack, 64 `vpdpbusd` (activations as `{1to16}` memory broadcasts), 8 x (cvt, mul, fma) |
//! | AvxVnni | 6 x 8 | 4 loads, 12 unpack, 48 `vpdpbusd` ymm, 6 x (cvt, mul, fma) |
//! | Avx2 | 8 x 8 | 4 loads, 12 unpack, 64 `vpmaddubsw` + 56 `vpaddw` (i16, exact), 8 x (`vpmaddwd`, add, cvt, mul, fma) |
//!
//! For Avx512Vnni that is 100 vector-ALU operations per 64 `vpdpbusd` (no spills; checked in the
//! disassembly), i.e. at most 64% of the `vpdpbusd` peak on a core with two 512-bit ports.

mod gemm;
mod isa;
mod layout;
mod quant;

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
    quantize_row: quant::quantize_row,
    unpack: layout::unpack_acts,
};

static AVX2: Q4Kernel = Q4Kernel {
    name: "avx2-8x8",
    pack: layout::pack::<8>,
    unpack: layout::unpack::<8>,
    gemm: gemm_avx2,
};

static AVXVNNI: Q4Kernel = Q4Kernel {
    name: "avxvnni-6x8",
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
    unsafe { gemm::gemm::<isa::Avx2, 8, 1, 2, false>(args) }
}

/// # Safety
/// See [`Q4Kernel::gemm`]; the CPU supports AVX2, FMA, F16C and AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 6, 1, 2, false>(args) }
}

/// # Safety
/// See [`Q4Kernel::gemm`]; the CPU supports AVX-512 F/BW/VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, false>(args) }
}

// Q8_0 weights x int8 activations on the Avx512Vnni tier (the model's output head), for
// `crate::kernels::matmul_q8`. Wire-up there, as a `Q8Kernel` arm for `Tier::Avx512Vnni`:
// `name: Q8_AVX512VNNI_NAME, pack: pack_q8_avx512vnni, unpack_row: unpack_row_q8_avx512vnni,
// acts: ActInput::Native (this module's activation layout), gemm: gemm_q8_avx512vnni`.

/// Name of the Avx512Vnni Q8_0 kernel.
#[allow(dead_code)] // first user: crate::kernels::matmul_q8 (model engineer)
pub(crate) const Q8_AVX512VNNI_NAME: &str = "avx512vnni-q8-8x16";

/// Packs `n` rows of `k / 32` Q8_0 blocks for [`gemm_q8_avx512vnni`] (layout: `layout::pack_q8`,
/// column groups of 16).
#[allow(dead_code)] // first user: crate::kernels::matmul_q8 (model engineer)
pub(crate) fn pack_q8_avx512vnni(
    blocks: &[crate::quant::BlockQ8_0],
    n: usize,
    k: usize,
) -> crate::aligned::AlignedBuf {
    layout::pack_q8(16, blocks, n, k)
}

/// Row `row < n` of weights packed by [`pack_q8_avx512vnni`], exactly as given, into `out`
/// (`k / 32` blocks).
#[allow(dead_code)] // first user: crate::kernels::matmul_q8 (model engineer)
pub(crate) fn unpack_row_q8_avx512vnni(
    buf: &crate::aligned::AlignedBuf,
    _n: usize,
    k: usize,
    row: usize,
    out: &mut [crate::quant::BlockQ8_0],
) {
    layout::unpack_row_q8(16, buf, k, row, out)
}

/// Q8_0 GEMM/GEMV: `args.w` from [`pack_q8_avx512vnni`], `args.a` in this module's activation
/// layout (`act_kernel`), otherwise the contract of `Q4Kernel::gemm`.
///
/// # Safety
/// See [`Q4Kernel::gemm`]; the CPU supports the Avx512Vnni tier.
#[allow(dead_code)] // first user: crate::kernels::matmul_q8 (model engineer)
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm_q8_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, true>(args) }
}
