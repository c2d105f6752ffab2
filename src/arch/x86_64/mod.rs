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
pub(crate) mod matmul_q8;
pub(crate) mod ops;

use crate::contract::gemm::{ActInput, ActKernel, GemmArgs, WeightKernel};
use crate::contract::Kernels;
use crate::quant::{
    ActBlock, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0,
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
    ..crate::arch::scalar::PORTABLE
};

static AVXVNNI: Kernels = Kernels {
    tier: Tier::AvxVnni,
    act: &ACT_KERNEL,
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
    ..crate::arch::scalar::PORTABLE
};

static AVX512VNNI: Kernels = Kernels {
    tier: Tier::Avx512Vnni,
    act: &ACT_KERNEL,
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
    ..crate::arch::scalar::PORTABLE
};

/// One activation layout for every x86_64 tier (see `layout`).
static ACT_KERNEL: ActKernel<ActBlock> = ActKernel {
    size: layout::act_size,
    quantize_row: quant::quantize_row,
    unpack: layout::unpack_acts,
    plain: false,
};

static Q4_AVX2: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "avx2-8x8",
    pack: layout::pack::<8>,
    unpack_row: layout::unpack_row::<8>,
    acts: ActInput::Native,
    gemm: gemm_avx2,
};

static Q4_AVXVNNI: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "avxvnni-6x8",
    pack: layout::pack::<8>,
    unpack_row: layout::unpack_row::<8>,
    acts: ActInput::Native,
    gemm: gemm_avxvnni,
};

static Q4_AVX512VNNI: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "avx512vnni-8x16",
    pack: layout::pack::<16>,
    unpack_row: layout::unpack_row::<16>,
    acts: ActInput::Native,
    gemm: gemm_avx512vnni,
};

/// Q8_0 weights on the Avx512Vnni tier (the model's output head): `vpdpbusd` on the tier's
/// activation layout, weights in column groups of 16 (`layout::pack_q8`).
static Q8_AVX512VNNI: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "avx512vnni-q8-8x16",
    pack: pack_q8_avx512vnni,
    unpack_row: unpack_row_q8_avx512vnni,
    acts: ActInput::Native,
    gemm: gemm_q8_avx512vnni,
};

/// Tiles (rows x column groups): GEMM `MR x NG`, GEMV (at most 3 rows) `rows x NGV`.
/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_avx2(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx2, 8, 1, 2, { layout::Q4 }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports AVX2, FMA, F16C and AVX-VNNI.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 6, 1, 2, { layout::Q4 }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports AVX-512 F/BW/VL and AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, { layout::Q4 }>(args) }
}

fn pack_q8_avx512vnni(blocks: &[BlockQ8_0], n: usize, k: usize) -> crate::aligned::AlignedBuf {
    layout::pack_q8(16, blocks, n, k)
}

fn unpack_row_q8_avx512vnni(
    buf: &crate::aligned::AlignedBuf,
    _n: usize,
    k: usize,
    row: usize,
    out: &mut [BlockQ8_0],
) {
    layout::unpack_row_q8(16, buf, k, row, out)
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx512Vnni tier.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_q8_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, { layout::Q8 }>(args) }
}

/// Q5_0 weights on the VNNI tiers: the Q4_0 driver with the fifth bits ORed into the nibbles
/// (`layout::pack_q5`), column groups of 8 (ymm) or 16 (zmm).
static Q5_AVXVNNI: WeightKernel<BlockQ5_0> = WeightKernel {
    name: "avxvnni-q5_0-6x8",
    pack: |b, n, k| layout::pack_q5(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q5(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q5_avxvnni,
};

static Q5_AVX512VNNI: WeightKernel<BlockQ5_0> = WeightKernel {
    name: "avx512vnni-q5_0-8x16",
    pack: |b, n, k| layout::pack_q5(16, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q5(16, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q5_avx512vnni,
};

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the AvxVnni tier.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_q5_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 6, 1, 2, { layout::Q5 }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx512Vnni tier.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_q5_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, { layout::Q5 }>(args) }
}

/// Q4_K weights (`layout::pack_q4k`) against `Q8_256` activations, on every x86_64 tier: one
/// integer sum per super-block and column, one float step per super-block (`gemm::tile_k`).
/// Tiles: 4 x 8 on ymm (16 registers), 8 x 16 on zmm.
static Q4K_AVX2: WeightKernel<BlockQ4K> = WeightKernel {
    name: "avx2-q4_k-4x8",
    pack: |b, n, k| layout::pack_q4k(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q4k(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q4k_avx2,
};

static Q4K_AVXVNNI: WeightKernel<BlockQ4K> = WeightKernel {
    name: "avxvnni-q4_k-4x8",
    pack: |b, n, k| layout::pack_q4k(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q4k(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q4k_avxvnni,
};

static Q4K_AVX512VNNI: WeightKernel<BlockQ4K> = WeightKernel {
    name: "avx512vnni-q4_k-8x16",
    pack: |b, n, k| layout::pack_q4k(16, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q4k(16, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q4k_avx512vnni,
};

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx2 tier.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_q4k_avx2(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx2, 4, 1, 1, { layout::Q4K }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the AvxVnni tier.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_q4k_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 4, 1, 1, { layout::Q4K }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx512Vnni tier.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_q4k_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, { layout::Q4K }>(args) }
}

/// Q6_K weights (`layout::pack_q6k`, as many bytes as the file's) against `Q8_256` activations,
/// on the VNNI tiers (`gemm::tile_k6`; the 6-bit products overflow `vpmaddubsw`'s i16 pairs, so
/// the Avx2 tier keeps the portable kernel).
static Q6K_AVXVNNI: WeightKernel<BlockQ6K> = WeightKernel {
    name: "avxvnni-q6_k-4x8",
    pack: |b, n, k| layout::pack_q6k(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q6k(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q6k_avxvnni,
};

static Q6K_AVX512VNNI: WeightKernel<BlockQ6K> = WeightKernel {
    name: "avx512vnni-q6_k-8x16",
    pack: |b, n, k| layout::pack_q6k(16, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q6k(16, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q6k_avx512vnni,
};

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the AvxVnni tier.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_q6k_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 4, 1, 1, { layout::Q6K }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx512Vnni tier.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_q6k_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, { layout::Q6K }>(args) }
}

/// Q8_0 weights on the AvxVnni tier: the Avx512Vnni kernel's driver on ymm (column groups of 8).
static Q8_AVXVNNI: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "avxvnni-q8-6x8",
    pack: |b, n, k| layout::pack_q8(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q8(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q8_avxvnni,
};

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the AvxVnni tier.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_q8_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 6, 1, 2, { layout::Q8 }>(args) }
}

/// Q5_0 and Q6_K weights on the Avx2 tier: the VNNI tiers' layouts and tiles, with the
/// `vpmaddubsw` i16 sums flushed to i32 within each block (`gemm::tile`, `gemm::tile_k6`).
static Q5_AVX2: WeightKernel<BlockQ5_0> = WeightKernel {
    name: "avx2-q5_0-4x8",
    pack: |b, n, k| layout::pack_q5(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q5(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q5_avx2,
};

static Q6K_AVX2: WeightKernel<BlockQ6K> = WeightKernel {
    name: "avx2-q6_k-4x8",
    pack: |b, n, k| layout::pack_q6k(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q6k(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q6k_avx2,
};

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx2 tier.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_q5_avx2(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx2, 4, 1, 1, { layout::Q5 }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx2 tier.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_q6k_avx2(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx2, 4, 1, 1, { layout::Q6K }>(args) }
}

/// Q5_K weights (`layout::pack_q5k`) against `Q8_256` activations: the Q4_K tiles with the fifth
/// bits ORed in (flushed to i32 mid-sub-block on Avx2).
static Q5K_AVX2: WeightKernel<BlockQ5K> = WeightKernel {
    name: "avx2-q5_k-4x8",
    pack: |b, n, k| layout::pack_q5k(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q5k(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q5k_avx2,
};

static Q5K_AVXVNNI: WeightKernel<BlockQ5K> = WeightKernel {
    name: "avxvnni-q5_k-4x8",
    pack: |b, n, k| layout::pack_q5k(8, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q5k(8, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q5k_avxvnni,
};

static Q5K_AVX512VNNI: WeightKernel<BlockQ5K> = WeightKernel {
    name: "avx512vnni-q5_k-8x16",
    pack: |b, n, k| layout::pack_q5k(16, b, n, k),
    unpack_row: |buf, _n, k, row, out| layout::unpack_row_q5k(16, buf, k, row, out),
    acts: ActInput::Native,
    gemm: gemm_q5k_avx512vnni,
};

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx2 tier.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_q5k_avx2(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx2, 4, 1, 1, { layout::Q5K }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the AvxVnni tier.
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn gemm_q5k_avxvnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::AvxVnni, 4, 1, 1, { layout::Q5K }>(args) }
}

/// # Safety
/// See [`WeightKernel::gemm`]; the CPU supports the Avx512Vnni tier.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gemm_q5k_avx512vnni(args: &GemmArgs<'_>) {
    // SAFETY: the tier is supported and args is valid (this function's contract).
    unsafe { gemm::gemm::<isa::Avx512Vnni, 8, 1, 2, { layout::Q5K }>(args) }
}

/// Q4_1 and Q5_1 weights (`layout::pack_q4_1`, `pack_q5_1`): the Q4_0 / Q5_0 tiles without the
/// offset correction, plus the min term `y += sum(a) * (m_w d_a)` per block.
macro_rules! min_kernels {
    ($($stat:ident, $block:ty, $name:literal, $c:literal, $pack:path, $unpack:path, $gemm:ident,
       $isa:ty, $features:literal, $mr:literal, $ngv:literal, $kind:path;)*) => {$(
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
            unsafe { gemm::gemm::<$isa, $mr, 1, $ngv, { $kind }>(args) }
        }
    )*};
}

min_kernels! {
    Q41_AVX2, BlockQ4_1, "avx2-q4_1-4x8", 8, layout::pack_q4_1, layout::unpack_row_q4_1,
        gemm_q41_avx2, isa::Avx2, "avx2,fma,f16c", 4, 1, layout::Q41;
    Q51_AVX2, BlockQ5_1, "avx2-q5_1-4x8", 8, layout::pack_q5_1, layout::unpack_row_q5_1,
        gemm_q51_avx2, isa::Avx2, "avx2,fma,f16c", 4, 1, layout::Q51;
    Q41_AVXVNNI, BlockQ4_1, "avxvnni-q4_1-6x8", 8, layout::pack_q4_1, layout::unpack_row_q4_1,
        gemm_q41_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6, 2, layout::Q41;
    Q51_AVXVNNI, BlockQ5_1, "avxvnni-q5_1-6x8", 8, layout::pack_q5_1, layout::unpack_row_q5_1,
        gemm_q51_avxvnni, isa::AvxVnni, "avx2,fma,f16c,avxvnni", 6, 2, layout::Q51;
    Q41_AVX512VNNI, BlockQ4_1, "avx512vnni-q4_1-8x16", 16, layout::pack_q4_1,
        layout::unpack_row_q4_1, gemm_q41_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8, 2, layout::Q41;
    Q51_AVX512VNNI, BlockQ5_1, "avx512vnni-q5_1-8x16", 16, layout::pack_q5_1,
        layout::unpack_row_q5_1, gemm_q51_avx512vnni, isa::Avx512Vnni,
        "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni", 8, 2, layout::Q51;
}
