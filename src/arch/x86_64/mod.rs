//! x86_64 tiers: `Avx2`, `AvxVnni`, `Avx512Vnni` (Rust intrinsics; all stable).
//!
//! Safety contract, enforced by `crate::dispatch`: a tier's `#[target_feature]` functions are only
//! reached through its table, which exists only for a tier that passed `Tier::check` (the CPU has every feature
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

pub(crate) mod attention;
pub(crate) mod attention_bf16;
pub(crate) mod attention_i8;
pub(crate) mod matmul_q8;
pub(crate) mod ops;

use crate::contract::gemm::{ActInput, ActKernel, GemmArgs, WeightKernel};
use crate::contract::Kernels;
use crate::quant::{
    ActBlock, ActBlockK, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};
use crate::Tier;

/// The table of an x86_64 tier (`Scalar` included): the only `match` on a tier in the crate.
pub(crate) fn table(tier: Tier) -> &'static Kernels {
    match tier {
        Tier::Avx2 => &AVX2,
        Tier::AvxVnni => &AVXVNNI,
        Tier::Avx512Vnni => &AVX512VNNI,
        _ => &crate::arch::scalar::TABLE,
    }
}

static AVX2: Kernels = Kernels {
    tier: Tier::Avx2,
    act: &ACT_KERNEL,
    act_k: &ACT_KERNEL_K,
    q4_0: &Q4_AVX2,
    q4_k: &Q4K_AVX2,
    q4_1: &Q41_AVX2,
    q5_1: &Q51_AVX2,
    q5_k: &Q5K_AVX2,
    q5_0: &Q5_AVX2,
    q6_k: &Q6K_AVX2,
    q8_0: &matmul_q8::Q8_AVX2,
    ops: &ops::AVX2,
    attn: attention::AVX2_SELECT,
};

static AVXVNNI: Kernels = Kernels {
    tier: Tier::AvxVnni,
    act: &ACT_KERNEL,
    act_k: &ACT_KERNEL_K,
    q4_0: &Q4_AVXVNNI,
    q5_0: &Q5_AVXVNNI,
    q4_k: &Q4K_AVXVNNI,
    q4_1: &Q41_AVXVNNI,
    q5_1: &Q51_AVXVNNI,
    q5_k: &Q5K_AVXVNNI,
    q6_k: &Q6K_AVXVNNI,
    q8_0: &Q8_AVXVNNI,
    ops: &ops::AVX2,
    attn: attention::AVX2_SELECT,
};

static AVX512VNNI: Kernels = Kernels {
    tier: Tier::Avx512Vnni,
    act: &ACT_KERNEL_512,
    act_k: &ACT_KERNEL_K_512,
    q4_0: &Q4_AVX512VNNI,
    q8_0: &Q8_AVX512VNNI,
    q5_0: &Q5_AVX512VNNI,
    q4_k: &Q4K_AVX512VNNI,
    q4_1: &Q41_AVX512VNNI,
    q5_1: &Q51_AVX512VNNI,
    q5_k: &Q5K_AVX512VNNI,
    q6_k: &Q6K_AVX512VNNI,
    ops: &ops::AVX512,
    attn: attention::AVX512_SELECT,
};

/// One activation layout for every x86_64 tier (see `layout`).
static ACT_KERNEL: ActKernel<ActBlock> = ActKernel {
    size: layout::act_size,
    quantize_row: quant::quantize_row,
    unpack: layout::unpack_acts,
    plain: false,
};

/// `Q8_32` activations of the `Avx512Vnni` tier: the layout of [`ACT_KERNEL`], quantized with
/// AVX-512.
static ACT_KERNEL_512: ActKernel<ActBlock> = ActKernel {
    quantize_row: quant::quantize_row_avx512,
    ..ACT_KERNEL
};

/// `Q8_256` activations for every x86_64 tier: the plain blocks, quantized with AVX2.
static ACT_KERNEL_K: ActKernel<ActBlockK> = ActKernel {
    size: crate::arch::scalar::matmul::plain_act_k_size,
    quantize_row: quant::quantize_row_k,
    unpack: crate::arch::scalar::matmul::unpack_plain_acts_k,
    plain: true,
};

/// `Q8_256` activations of the `Avx512Vnni` tier: the plain blocks, quantized with AVX-512.
static ACT_KERNEL_K_512: ActKernel<ActBlockK> = ActKernel {
    quantize_row: quant::quantize_row_k_avx512,
    ..ACT_KERNEL_K
};

/// The weight kernels: one line each (static, block type, name, column group width, packing,
/// unpacking, entry point, tier operations, the entry point's target features, tile rows `MR`,
/// column groups `NG`, GEMV column groups `NGV`, weight kind). Every kernel is the generic driver
/// of `gemm` over the tier's `isa` operations and the kind's layout in `layout`:
///
/// * Q4_0 (`pack_groups`), Q8_0 (`pack_q8`: bytes + 128 against a correction times 16; VNNI
///   only), Q5_0 (`pack_q5`: fifth bits ORed into the nibbles), Q4_1 / Q5_1 (`pack_q4_1`,
///   `pack_q5_1`: no offset correction, a min term per block);
/// * Q4_K / Q5_K (`pack_q4k`, `pack_q5k`; `gemm::tile_k`) and Q6_K (`pack_q6k`; `gemm::tile_k6`)
///   against `Q8_256` activations: one integer sum per super-block and column.
///
/// Without `vpdpbusd` (Avx2) the i16 sums of 5- and 6-bit values are flushed to i32 within a block.
/// The Avx2 tier's Q8_0 kernel is `matmul_q8::Q8_AVX2`.
macro_rules! weight_kernels {
    ($($stat:ident: $block:ty, $name:literal, $c:literal, $pack:path, $unpack:path, $gemm:ident,
       $isa:ty, $features:literal, $mr:literal x $ng:literal / $ngv:literal, $kind:path;)*) => {$(
        static $stat: WeightKernel<$block> = WeightKernel {
            name: $name,
            pack: |b, n, k| $pack($c, b, n, k),
            unpack_row: |buf, _n, k, row, out| $unpack($c, buf, k, row, out),
            acts: ActInput::Native,
            gemm: $gemm,
        };

        /// # Safety
        /// See [`WeightKernel::gemm`]; the CPU supports the kernel's tier.
        #[target_feature(enable = $features)]
        unsafe fn $gemm(args: &GemmArgs<'_>) {
            // SAFETY: the tier is supported and args is valid (this function's contract).
            unsafe { gemm::gemm::<$isa, $mr, $ng, $ngv, { $kind }>(args) }
        }
    )*};
}

weight_kernels! {
    Q4_AVX2: BlockQ4_0, "avx2-8x8", 8, layout::pack_groups, layout::unpack_row_groups,
        gemm_avx2, isa::Avx2, "avx2,fma,f16c", 8 x 1 / 2, layout::Q4;
    Q4_AVXVNNI: BlockQ4_0, "avxvnni-6x8", 8, layout::pack_groups, layout::unpack_row_groups,
        gemm_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6 x 1 / 2, layout::Q4;
    Q4_AVX512VNNI: BlockQ4_0, "avx512vnni-8x16", 16, layout::pack_groups,
        layout::unpack_row_groups, gemm_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8 x 1 / 2, layout::Q4;
    Q8_AVXVNNI: BlockQ8_0, "avxvnni-q8-6x8", 8, layout::pack_q8, layout::unpack_row_q8,
        gemm_q8_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6 x 1 / 2, layout::Q8;
    Q8_AVX512VNNI: BlockQ8_0, "avx512vnni-q8-8x16", 16, layout::pack_q8, layout::unpack_row_q8,
        gemm_q8_avx512vnni, isa::Avx512Vnni, "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni",
        8 x 1 / 2, layout::Q8;
    Q5_AVX2: BlockQ5_0, "avx2-q5_0-4x8", 8, layout::pack_q5, layout::unpack_row_q5,
        gemm_q5_avx2, isa::Avx2, "avx2,fma,f16c", 4 x 1 / 1, layout::Q5;
    Q5_AVXVNNI: BlockQ5_0, "avxvnni-q5_0-6x8", 8, layout::pack_q5, layout::unpack_row_q5,
        gemm_q5_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6 x 1 / 2, layout::Q5;
    Q5_AVX512VNNI: BlockQ5_0, "avx512vnni-q5_0-8x16", 16, layout::pack_q5, layout::unpack_row_q5,
        gemm_q5_avx512vnni, isa::Avx512Vnni, "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni",
        8 x 1 / 2, layout::Q5;
    Q41_AVX2: BlockQ4_1, "avx2-q4_1-4x8", 8, layout::pack_q4_1, layout::unpack_row_q4_1,
        gemm_q41_avx2, isa::Avx2, "avx2,fma,f16c", 4 x 1 / 1, layout::Q41;
    Q41_AVXVNNI: BlockQ4_1, "avxvnni-q4_1-6x8", 8, layout::pack_q4_1, layout::unpack_row_q4_1,
        gemm_q41_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6 x 1 / 2, layout::Q41;
    Q41_AVX512VNNI: BlockQ4_1, "avx512vnni-q4_1-8x16", 16, layout::pack_q4_1,
        layout::unpack_row_q4_1, gemm_q41_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8 x 1 / 2, layout::Q41;
    Q51_AVX2: BlockQ5_1, "avx2-q5_1-4x8", 8, layout::pack_q5_1, layout::unpack_row_q5_1,
        gemm_q51_avx2, isa::Avx2, "avx2,fma,f16c", 4 x 1 / 1, layout::Q51;
    Q51_AVXVNNI: BlockQ5_1, "avxvnni-q5_1-6x8", 8, layout::pack_q5_1, layout::unpack_row_q5_1,
        gemm_q51_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6 x 1 / 2, layout::Q51;
    Q51_AVX512VNNI: BlockQ5_1, "avx512vnni-q5_1-8x16", 16, layout::pack_q5_1,
        layout::unpack_row_q5_1, gemm_q51_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8 x 1 / 2, layout::Q51;
    Q4K_AVX2: BlockQ4K, "avx2-q4_k-4x8", 8, layout::pack_q4k, layout::unpack_row_q4k,
        gemm_q4k_avx2, isa::Avx2, "avx2,fma,f16c", 4 x 1 / 1, layout::Q4K;
    Q4K_AVXVNNI: BlockQ4K, "avxvnni-q4_k-4x8", 8, layout::pack_q4k, layout::unpack_row_q4k,
        gemm_q4k_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 4 x 1 / 1, layout::Q4K;
    Q4K_AVX512VNNI: BlockQ4K, "avx512vnni-q4_k-8x16", 16, layout::pack_q4k,
        layout::unpack_row_q4k, gemm_q4k_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8 x 1 / 2, layout::Q4K;
    Q5K_AVX2: BlockQ5K, "avx2-q5_k-4x8", 8, layout::pack_q5k, layout::unpack_row_q5k,
        gemm_q5k_avx2, isa::Avx2, "avx2,fma,f16c", 4 x 1 / 1, layout::Q5K;
    Q5K_AVXVNNI: BlockQ5K, "avxvnni-q5_k-4x8", 8, layout::pack_q5k, layout::unpack_row_q5k,
        gemm_q5k_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 4 x 1 / 1, layout::Q5K;
    Q5K_AVX512VNNI: BlockQ5K, "avx512vnni-q5_k-8x16", 16, layout::pack_q5k,
        layout::unpack_row_q5k, gemm_q5k_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8 x 1 / 2, layout::Q5K;
    Q6K_AVX2: BlockQ6K, "avx2-q6_k-4x8", 8, layout::pack_q6k, layout::unpack_row_q6k,
        gemm_q6k_avx2, isa::Avx2, "avx2,fma,f16c", 4 x 1 / 1, layout::Q6K;
    Q6K_AVXVNNI: BlockQ6K, "avxvnni-q6_k-4x8", 8, layout::pack_q6k, layout::unpack_row_q6k,
        gemm_q6k_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 4 x 1 / 1, layout::Q6K;
    Q6K_AVX512VNNI: BlockQ6K, "avx512vnni-q6_k-8x16", 16, layout::pack_q6k,
        layout::unpack_row_q6k, gemm_q6k_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8 x 1 / 2, layout::Q6K;
}
