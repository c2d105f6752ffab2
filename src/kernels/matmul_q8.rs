//! Q8_0-weight x int8-activation matrix multiply: `y[m][n] = sum_k x[m][k] * w[n][k] (+ bias[n])`
//! for weights kept at 8 bits (the token embedding used as a tied output head, an untied output
//! head, Q8_0 tensors of GGUF files).
//!
//! Same contract as the Q4_0 API in [`crate::kernels::matmul`], and the same activations
//! ([`QuantizedActivations`]): quantize a row once and feed it to Q4_0 and Q8_0 matmuls alike.
//! Weights are packed once per tier ([`PackedQ8_0`]). Per block the integer dot product is exact;
//! the float combination may differ from the f64 reference by rounding only
//! (`qkern_reference::matmul_error_scale`).
//!
//! A tier without a Q8_0 kernel of its own runs the portable kernel: the activations are read back
//! as plain [`crate::quant::ActBlock`]s through the tier's activation kernel, once per call
//! ([`kernel_name`] says which kernel runs).

use crate::aligned::AlignedBuf;
use crate::arch;
use crate::kernels::matmul::{
    act_kernel, check_weight_shape, gemm_parallel, validate, GemmArgs, QuantizedActivations,
    WeightView,
};
use crate::parallel::ThreadPool;
use crate::quant::{check_len, BlockQ8_0, QK};
use crate::{Error, Result, Tier};
use bytemuck::Zeroable;
use std::ops::Range;

/// How a Q8_0 kernel reads its activations.
#[derive(Clone, Copy)]
pub(crate) enum ActInput {
    /// The layout of the weights' tier ([`crate::kernels::matmul::ActKernel`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Native,
    /// Plain `ActBlock` rows (`m * k / 32` blocks in row order); the op converts the tier's
    /// layout once per call when it differs.
    Plain,
}

/// A tier's Q8_0 weight kernel.
pub(crate) struct Q8Kernel {
    /// Name of the implementation (shown by benches and [`kernel_name`]).
    pub name: &'static str,
    /// Packs `n` rows of `k / 32` blocks.
    pub pack: fn(blocks: &[BlockQ8_0], n: usize, k: usize) -> AlignedBuf,
    /// Inverse of `pack` for one row: writes the `k / 32` blocks of row `row < n` into `out`.
    pub unpack_row: fn(buf: &AlignedBuf, n: usize, k: usize, row: usize, out: &mut [BlockQ8_0]),
    /// Activation layout `gemm` reads.
    pub acts: ActInput,
    /// # Safety
    /// As [`crate::kernels::matmul::Q4Kernel::gemm`], with `w` made by this kernel's `pack` and
    /// `a` in the layout `acts` names.
    pub gemm: unsafe fn(args: &GemmArgs<'_>),
}

/// The Q8_0 kernel of `tier`: per-ISA kernels drop in here as arms, like those of
/// `matmul::q4_kernel`; a tier without one runs the portable kernel on plain activation blocks.
fn q8_kernel(tier: Tier) -> &'static Q8Kernel {
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512Vnni => &arch::x86_64::matmul_q8::Q8_AVX512VNNI,
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::AvxVnni => &arch::x86_64::matmul_q8::Q8_AVX2,
        #[cfg(target_arch = "aarch64")]
        Tier::NeonDot | Tier::NeonI8mm => &arch::aarch64::matmul_q8::Q8_DOT,
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => &arch::aarch64::matmul_q8::Q8_NEON,
        _ => &arch::scalar::Q8_KERNEL,
    }
}

/// Name of the Q8_0 matmul implementation that runs for `tier` (e.g. `"scalar"`).
pub fn kernel_name(tier: Tier) -> &'static str {
    q8_kernel(tier).name
}

/// Q8_0 weights (`n` rows of `k` values) packed for one tier's kernels.
pub struct PackedQ8_0 {
    tier: Tier,
    n: usize,
    k: usize,
    buf: AlignedBuf,
}

impl PackedQ8_0 {
    /// Packs `blocks` (`n` rows of `k / 32` blocks, row-major) for the process-wide tier.
    pub fn new(blocks: &[BlockQ8_0], n: usize, k: usize) -> Result<Self> {
        Self::with_tier(blocks, n, k, Tier::active())
    }

    /// Packs `blocks` for an explicit tier; an error if the CPU lacks it.
    pub fn with_tier(blocks: &[BlockQ8_0], n: usize, k: usize, tier: Tier) -> Result<Self> {
        check_weight_shape(tier, blocks.len(), n, k)?;
        let buf = (q8_kernel(tier).pack)(blocks, n, k);
        Ok(PackedQ8_0 { tier, n, k, buf })
    }

    /// The plain blocks back, exactly as given to [`PackedQ8_0::new`].
    pub fn unpack(&self) -> Vec<BlockQ8_0> {
        let kb = self.k / QK;
        let mut blocks = vec![BlockQ8_0::zeroed(); self.n * kb];
        for (r, row) in blocks.chunks_exact_mut(kb).enumerate() {
            (q8_kernel(self.tier).unpack_row)(&self.buf, self.n, self.k, r, row);
        }
        blocks
    }

    /// Row `row` dequantized into `out` (`k` values, `q * d` each): lets a tied output head serve
    /// as the token embedding without a second copy of the table.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.n {
            return Err(Error::ShapeMismatch(format!(
                "row {row} outside N = {}",
                self.n
            )));
        }
        check_len("dequantized row", out.len(), self.k)?;
        let mut blocks = vec![BlockQ8_0::zeroed(); self.k / QK];
        (q8_kernel(self.tier).unpack_row)(&self.buf, self.n, self.k, row, &mut blocks);
        for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
            let d = b.d.to_f32();
            for (o, &q) in o.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
        Ok(())
    }

    /// Tier the weights are packed for.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Output columns (weight rows).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Bytes held by the packed layout.
    pub fn packed_bytes(&self) -> usize {
        self.buf.bytes().len()
    }

    fn view(&self) -> WeightView<'_> {
        WeightView {
            tier: self.tier,
            n: self.n,
            k: self.k,
            buf: &self.buf,
        }
    }
}

/// The activation buffer `kernel` reads: the tier's own, or plain blocks converted once.
enum Acts<'a> {
    Borrowed(&'a AlignedBuf),
    Converted(AlignedBuf),
}

impl Acts<'_> {
    fn buf(&self) -> &AlignedBuf {
        match self {
            Acts::Borrowed(b) => b,
            Acts::Converted(b) => b,
        }
    }
}

fn acts_for<'a>(kernel: &Q8Kernel, a: &'a QuantizedActivations, args: &GemmArgs<'a>) -> Acts<'a> {
    match kernel.acts {
        ActInput::Native => Acts::Borrowed(args.a),
        // The portable layout is already plain: nothing to convert.
        ActInput::Plain if std::ptr::eq(act_kernel(a.tier()), &arch::scalar::ACT_KERNEL) => {
            Acts::Borrowed(args.a)
        }
        ActInput::Plain => {
            let blocks = a.blocks();
            let bytes: &[u8] = bytemuck::cast_slice(&blocks);
            let mut buf = AlignedBuf::zeroed(bytes.len());
            buf.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
            Acts::Converted(buf)
        }
    }
}

/// `out = a * w^T (+ bias)`, all `m x n` outputs, row-major with row stride `n`.
pub fn matmul_q8(
    w: &PackedQ8_0,
    a: &QuantizedActivations,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    matmul_q8_range(w, a, 0..a.m(), 0..w.n, bias, out, w.n)
}

/// Computes the outputs `(i, j)` for `i` in `rows`, `j` in `cols` only, writing `(i, j)` to
/// `out[(i - rows.start) * ldo + (j - cols.start)]`. Other elements of `out` are left untouched.
pub fn matmul_q8_range(
    w: &PackedQ8_0,
    a: &QuantizedActivations,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
) -> Result<()> {
    run(w, a, rows, cols, bias, out, ldo, None)
}

/// [`matmul_q8`] on all threads of `pool`, split into blocks of rows and columns handed out on
/// demand.
pub fn matmul_q8_parallel(
    pool: &ThreadPool,
    w: &PackedQ8_0,
    a: &QuantizedActivations,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    run(w, a, 0..a.m(), 0..w.n, bias, out, w.n, Some(pool))
}

/// Validates one call and runs it: on the calling thread, or split across `pool`.
#[allow(clippy::too_many_arguments)]
fn run(
    w: &PackedQ8_0,
    a: &QuantizedActivations,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
    pool: Option<&ThreadPool>,
) -> Result<()> {
    let Some(args) = validate(w.view(), a, rows, cols, bias, out.len(), ldo)? else {
        return Ok(());
    };
    let _iv = crate::signpost::interval(crate::signpost::MATMUL, || {
        format!(
            "q8_0 M={} N={} K={}",
            args.rows.len(),
            args.cols.len(),
            args.k
        )
    });
    let kernel = q8_kernel(w.tier);
    let acts = acts_for(kernel, a, &args);
    let args = GemmArgs {
        a: acts.buf(),
        out: out.as_mut_ptr(),
        ..args
    };
    // SAFETY: `validate` checked the tiers (supported, matching), shapes, ranges, the bias length
    // and that `out` holds every element the ranges address with stride `ldo`; `acts_for` gives
    // the activation layout the kernel reads, for the same `m, k`.
    unsafe {
        match pool {
            Some(pool) => gemm_parallel(pool, &args, kernel.gemm),
            None => (kernel.gemm)(&args),
        }
    }
    Ok(())
}
