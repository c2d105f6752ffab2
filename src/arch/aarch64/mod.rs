//! aarch64 tiers: `Neon` (ARMv8.0, Rust intrinsics), `NeonDot` (SDOT) and `NeonI8mm` (SMMLA), whose
//! micro-kernels are the assembly routines in `asm/aarch64/` (assembled by `build.rs`, one
//! `-march` per tier so a file cannot use a later tier's instructions).
//!
//! Safety contract, enforced by `crate::dispatch`: an asm routine of a tier is only called through
//! a safe wrapper here, reached through the tier's table, which exists only for a tier that
//! passed `Tier::check`; the wrapper
//! checks every length and alignment the routine assumes.
//!
//! Q4_0 matmul: one activation layout for the three tiers ([`act`]), two weight layouts
//! ([`pack`]): SMMLA order for `Neon` and `NeonI8mm`, SDOT order for `NeonDot`. Q8_0 and Q5_0 on
//! `NeonI8mm` ([`q8_mmla`], [`q5_0_mmla`]): SMMLA asm on the same activations and driver
//! ([`matmul_asm`]); Q5_0 on `NeonDot` ([`q5_0_dot`]): SDOT asm, the same again.
//!
//! Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K ([`formats`]): 4-column group-vector tiles at GGUF's
//! density, SMLAL intrinsics on `Neon`, SDOT inline asm on `NeonDot` and `NeonI8mm`; except
//! Q4_K: SDOT asm on `NeonDot` ([`q4k_dot`]) and SMMLA asm on `NeonI8mm` ([`q4k_mmla`]), both on
//! row-paired `Q8_256` activations (the layout of [`q4k_mmla`], which starts with the plain rows
//! the other K-quant kernels read); Q6_K on `NeonI8mm`: SMMLA asm on the same row pairs
//! ([`q6k_mmla`]); Q6_K on `NeonDot`: SDOT asm on the plain rows ([`q6k_dot`]); Q5_K: SDOT asm
//! on `NeonDot` ([`q5k_dot`]) and USMMLA asm on `NeonI8mm` ([`q5k_mmla`]) on the row pairs; Q5_0:
//! asm on the Q4_0 activation layout, see above.

use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, ActKernel, GemmArgs, WeightKernel};
use crate::contract::Kernels;
use crate::quant::{ActBlock, ActBlockK, BlockQ4_0};
use crate::Tier;

/// Declares an asm micro-kernel family's routines, `qkern_<name>_p1_<tier>` ..
/// `qkern_<name>_p8_<tier>` (1..=8 row pairs) and `qkern_<name>_gemv_<tier>` (one row), each
/// taking `*const $args`, and builds its static: `$ty { pairs, gemv, $field: $value, .. }`
/// ([`matmul_asm::Family`], [`q4k_mmla::AsmKernels`]).
macro_rules! asm_family {
    (
        $(#[$attr:meta])*
        $vis:vis static $static:ident: $ty:ident = $name:literal, $tier:literal, $args:ty,
        { $($field:ident: $value:expr),* $(,)? }
    ) => {
        asm_family!(@routines [$(#[$attr])*] [$vis] $static, $ty, $name, $tier, $args,
            { $($field: $value),* }, [p1 "_p1_" p2 "_p2_" p3 "_p3_" p4 "_p4_" p5 "_p5_"
            p6 "_p6_" p7 "_p7_" p8 "_p8_"]);
    };
    (
        @routines [$(#[$attr:meta])*] [$vis:vis] $static:ident, $ty:ident, $name:literal,
        $tier:literal, $args:ty, { $($field:ident: $value:expr),* }, [$($p:ident $s:literal)*]
    ) => {
        $(#[$attr])*
        $vis static $static: $ty = {
            unsafe extern "C" {
                $(
                    #[link_name = concat!("qkern_", $name, $s, $tier)]
                    fn $p(args: *const $args);
                )*
                #[link_name = concat!("qkern_", $name, "_gemv_", $tier)]
                fn gemv(args: *const $args);
            }
            $ty {
                pairs: [$($p),*],
                gemv,
                $($field: $value),*
            }
        };
    };
}

pub(crate) mod act;
pub(crate) mod attention;
mod attention_fp16;
mod attention_i8;
pub(crate) mod dot;
mod formats;
pub(crate) mod matmul_asm;
mod matmul_neon;
pub(crate) mod matmul_q8;
pub(crate) mod ops;
pub(crate) mod pack;
mod q4k_dot;
mod q4k_mmla;
mod q5_0_dot;
mod q5_0_mmla;
mod q5k_dot;
mod q5k_mmla;
mod q6k_dot;
mod q6k_mmla;
mod q8_mmla;

use pack::Layout;

/// The table of an aarch64 tier (`Scalar` included): the only `match` on a tier in the crate.
pub(crate) fn table(tier: Tier) -> &'static Kernels {
    match tier {
        Tier::Neon => &NEON,
        Tier::NeonDot => &NEON_DOT,
        Tier::NeonI8mm => &NEON_I8MM,
        _ => &crate::arch::scalar::TABLE,
    }
}

static NEON: Kernels = Kernels {
    tier: Tier::Neon,
    act: &ACT_KERNEL,
    act_k: &ACT_KERNEL_K,
    q4_0: &NEON_Q4,
    q8_0: &matmul_q8::Q8_NEON,
    q4_1: &formats::Q4_1_NEON,
    q5_0: &formats::Q5_0_NEON,
    q5_1: &formats::Q5_1_NEON,
    q4_k: &formats::Q4_K_NEON,
    q5_k: &formats::Q5_K_NEON,
    q6_k: &formats::Q6_K_NEON,
    ops: &ops::NEON,
    attn: attention::NEON_SELECT,
};

/// The `NeonDot` table; `NeonI8mm` is the same with its SMMLA kernels.
const DOT: Kernels = Kernels {
    tier: Tier::NeonDot,
    act: &ACT_KERNEL,
    act_k: &q4k_mmla::ACT_KERNEL_K,
    q4_0: &DOT_Q4,
    q8_0: &matmul_q8::Q8_DOT,
    q4_1: &formats::Q4_1_DOT,
    q5_0: &q5_0_dot::Q5_0_DOT,
    q5_1: &formats::Q5_1_DOT,
    q4_k: &q4k_dot::Q4_K_DOT,
    q5_k: &q5k_dot::Q5_K_DOT,
    q6_k: &q6k_dot::Q6_K_DOT,
    ops: &ops::NEON_DOT,
    attn: attention::DOT_SELECT,
};

static NEON_DOT: Kernels = DOT;

static NEON_I8MM: Kernels = Kernels {
    tier: Tier::NeonI8mm,
    q4_0: &I8MM_Q4,
    q8_0: &q8_mmla::Q8_MMLA,
    q4_k: &q4k_mmla::Q4_K_I8MM,
    q5_0: &q5_0_mmla::Q5_0_I8MM,
    q5_k: &q5k_mmla::Q5_K_I8MM,
    q6_k: &q6k_mmla::Q6_K_I8MM,
    attn: attention::I8MM_SELECT,
    ..DOT
};

/// One activation layout for the three tiers.
static ACT_KERNEL: ActKernel<ActBlock> = ActKernel {
    size: act::size,
    quantize_row: act::quantize_row,
    unpack: act::unpack,
    plain: false,
};

/// `Q8_256` activations of `Neon`: the plain blocks, quantized with NEON.
static ACT_KERNEL_K: ActKernel<ActBlockK> = ActKernel {
    size: crate::arch::scalar::matmul::plain_act_k_size,
    quantize_row: act::quantize_row_k,
    unpack: crate::arch::scalar::matmul::unpack_plain_acts_k,
    plain: true,
};

fn pack_mmla(blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf {
    pack::pack(Layout::Mmla, blocks, n, k)
}
fn unpack_row_mmla(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ4_0]) {
    pack::unpack_row(Layout::Mmla, buf, k, row, out)
}
fn pack_dot(blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf {
    pack::pack(Layout::Dot, blocks, n, k)
}
fn unpack_row_dot(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [BlockQ4_0]) {
    pack::unpack_row(Layout::Dot, buf, k, row, out)
}

/// # Safety
/// See [`WeightKernel::gemm`].
unsafe fn gemm_neon(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; NEON is baseline.
    unsafe { matmul_neon::gemm(args) }
}
/// # Safety
/// See [`WeightKernel::gemm`] (the tier, and so FEAT_DotProd, was checked).
unsafe fn gemm_dot(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; weights packed by `pack_dot`.
    unsafe { matmul_asm::gemm(&matmul_asm::Q4_DOT, args) }
}
/// # Safety
/// See [`WeightKernel::gemm`] (the tier, and so FEAT_I8MM, was checked).
unsafe fn gemm_i8mm(args: &GemmArgs<'_>) {
    // SAFETY: forwarded contract; weights packed by `pack_mmla`.
    unsafe { matmul_asm::gemm(&matmul_asm::Q4_MMLA, args) }
}

static NEON_Q4: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "neon",
    pack: pack_mmla,
    unpack_row: unpack_row_mmla,
    acts: ActInput::Native,
    gemm: gemm_neon,
};
static DOT_Q4: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "neondot-sdot-asm",
    pack: pack_dot,
    unpack_row: unpack_row_dot,
    acts: ActInput::Native,
    gemm: gemm_dot,
};
static I8MM_Q4: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "neoni8mm-smmla-asm",
    pack: pack_mmla,
    unpack_row: unpack_row_mmla,
    acts: ActInput::Native,
    gemm: gemm_i8mm,
};
