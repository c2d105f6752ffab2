//! Int4-weight x int8-activation matrix multiply: `y[m][n] = sum_k x[m][k] * w[n][k] (+ bias[n])`.
//!
//! Weights are Q4_0 blocks along K, packed once into the layout of one tier ([`PackedQ4_0`]).
//! Activations are f32, quantized per row and block of 32 into that tier's layout
//! ([`QuantizedActivations`], reusable across calls and across the matmuls that read the same rows).
//! The output is f32. Per block, the integer dot product is exact; the float combination
//! (`d_w * d_x * isum`, summed over blocks) may differ from the f64 reference by rounding only, see
//! `qkern_reference::matmul_error_scale` for the bound the tests use.
//!
//! A tier without a kernel of its own runs the kernel of the highest lower tier that has one
//! ([`kernel_name`] says which); every tier is tested.

use crate::aligned::AlignedBuf;
use crate::arch;
use crate::quant::{blocks_in, check_len, ActBlock, BlockQ4_0};
use crate::{Error, Result, Tier};
use std::ops::Range;

/// A tier's activation quantizer: its layout is what that tier's matmul kernels read.
/// Rows are quantized one at a time so that fused producers (RMSNorm + quantize) can hand over a
/// row while it is still in L1.
pub(crate) struct ActKernel {
    /// Bytes the layout needs for `m` rows of `k` values.
    pub size: fn(m: usize, k: usize) -> usize,
    /// Quantizes row `i` (`x.len() == k`) of an `m x k` matrix into `out` (`size(m, k)` bytes).
    pub quantize_row: fn(x: &[f32], i: usize, m: usize, k: usize, out: &mut [u8]),
    /// The plain blocks of the quantized activations, `m * k / 32` in row order (for tests).
    pub unpack: fn(buf: &[u8], m: usize, k: usize) -> Vec<ActBlock>,
}

/// The arguments of one GEMM call, validated by [`matmul_range`] before any kernel sees them.
pub(crate) struct GemmArgs<'a> {
    pub w: &'a AlignedBuf,
    pub n: usize,
    pub k: usize,
    pub a: &'a AlignedBuf,
    pub m: usize,
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub bias: Option<&'a [f32]>,
    /// Element `(rows.start, cols.start)`; element `(i, j)` is at `out + (i - rows.start) * ldo + (j - cols.start)`.
    pub out: *mut f32,
    pub ldo: usize,
}

/// A tier's Q4_0 weight kernel.
pub(crate) struct Q4Kernel {
    /// Name of the implementation (shown by benches and [`kernel_name`]).
    pub name: &'static str,
    /// Packs `n` rows of `k / 32` blocks.
    pub pack: fn(blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf,
    /// Inverse of `pack`.
    pub unpack: fn(buf: &AlignedBuf, n: usize, k: usize) -> Vec<BlockQ4_0>,
    /// # Safety
    /// The CPU supports the kernel's tier, `w` was made by `pack` for `n, k`, `a` by the matching
    /// [`ActKernel`] for `m, k`, the ranges lie within `m` and `n` and are non-empty, `bias` has `n`
    /// values, and `out` is valid for writes of every element of the ranges as described in [`GemmArgs`].
    pub gemm: unsafe fn(args: &GemmArgs<'_>),
}

pub(crate) fn act_kernel(tier: Tier) -> &'static ActKernel {
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::AvxVnni | Tier::Avx512Vnni => arch::x86_64::act_kernel(tier),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::NeonDot | Tier::NeonI8mm => arch::aarch64::act_kernel(tier),
        _ => &arch::scalar::ACT_KERNEL,
    }
}

fn q4_kernel(tier: Tier) -> &'static Q4Kernel {
    match tier {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::AvxVnni | Tier::Avx512Vnni => arch::x86_64::q4_kernel(tier),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon | Tier::NeonDot | Tier::NeonI8mm => arch::aarch64::q4_kernel(tier),
        _ => &arch::scalar::Q4_KERNEL,
    }
}

/// Name of the Q4_0 matmul implementation that runs for `tier` (e.g. `"scalar"`).
pub fn kernel_name(tier: Tier) -> &'static str {
    q4_kernel(tier).name
}

/// Q4_0 weights (`n` rows of `k` values) packed for one tier's kernels.
pub struct PackedQ4_0 {
    tier: Tier,
    n: usize,
    k: usize,
    buf: AlignedBuf,
}

impl PackedQ4_0 {
    /// Packs `blocks` (`n` rows of `k / 32` blocks, row-major) for the process-wide tier.
    pub fn new(blocks: &[BlockQ4_0], n: usize, k: usize) -> Result<Self> {
        Self::with_tier(blocks, n, k, Tier::active())
    }

    /// Packs `blocks` for an explicit tier; an error if the CPU lacks it.
    pub fn with_tier(blocks: &[BlockQ4_0], n: usize, k: usize, tier: Tier) -> Result<Self> {
        check_weight_shape(tier, blocks.len(), n, k)?;
        let buf = (q4_kernel(tier).pack)(blocks, n, k);
        Ok(PackedQ4_0 { tier, n, k, buf })
    }

    /// The plain blocks back, exactly as given to [`PackedQ4_0::new`].
    pub fn unpack(&self) -> Vec<BlockQ4_0> {
        (q4_kernel(self.tier).unpack)(&self.buf, self.n, self.k)
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

/// Checks what packing a weight matrix of any block format assumes: a supported tier, `n > 0`,
/// `k` a multiple of 32, `n_blocks == n * k / 32`, and a padded packed size far from overflow.
pub(crate) fn check_weight_shape(tier: Tier, n_blocks: usize, n: usize, k: usize) -> Result<()> {
    tier.check()?;
    let kb = blocks_in(k, "K")?;
    if n == 0 {
        return Err(Error::ShapeMismatch("N must be non-zero".into()));
    }
    check_len(
        "weight blocks",
        n_blocks,
        crate::error::mul(n, kb, "N * K / 32")?,
    )?;
    // Packed layouts pad N to a tile; keep the byte size well inside usize/isize.
    crate::error::mul(n.saturating_add(64), k, "packed weight size")?;
    Ok(())
}

/// A packed weight matrix of any format, as the shared validation and parallel driver see it.
#[derive(Clone, Copy)]
pub(crate) struct WeightView<'a> {
    pub tier: Tier,
    pub n: usize,
    pub k: usize,
    pub buf: &'a AlignedBuf,
}

/// `m` rows of `k` activations quantized to int8 blocks in one tier's layout. Reuse one value
/// across calls: [`QuantizedActivations::quantize`] keeps its allocation.
#[derive(Clone)]
pub struct QuantizedActivations {
    tier: Tier,
    m: usize,
    k: usize,
    buf: AlignedBuf,
}

impl QuantizedActivations {
    /// An empty buffer for the process-wide tier.
    pub fn new() -> Self {
        Self::with_tier(Tier::active()).expect("the active tier is supported")
    }

    /// An empty buffer for an explicit tier; an error if the CPU lacks it.
    pub fn with_tier(tier: Tier) -> Result<Self> {
        tier.check()?;
        Ok(QuantizedActivations {
            tier,
            m: 0,
            k: 0,
            buf: AlignedBuf::default(),
        })
    }

    /// Quantizes `m` rows of `k` values (`x.len() == m * k`) with the rule of
    /// [`crate::quant::quantize_activation_block`].
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize) -> Result<()> {
        check_len("activations", x.len(), self.prepare(m, k)?)?;
        let kernel = act_kernel(self.tier);
        for (i, row) in x.chunks_exact(k).enumerate() {
            (kernel.quantize_row)(row, i, m, k, self.buf.bytes_mut());
        }
        Ok(())
    }

    /// Quantizes `m` rows of `k` values that `produce(i, row)` writes into a scratch row, one row
    /// at a time (for fused producers such as RMSNorm). `scratch` is resized to `k`.
    #[allow(dead_code)] // first user: the fused RMSNorm + quantize op
    pub(crate) fn quantize_with(
        &mut self,
        m: usize,
        k: usize,
        scratch: &mut Vec<f32>,
        mut produce: impl FnMut(usize, &mut [f32]),
    ) -> Result<()> {
        self.prepare(m, k)?;
        scratch.resize(k, 0.0);
        let kernel = act_kernel(self.tier);
        for i in 0..m {
            produce(i, scratch);
            (kernel.quantize_row)(scratch, i, m, k, self.buf.bytes_mut());
        }
        Ok(())
    }

    /// Validates the shape, sizes the buffer for it and records it; returns `m * k`.
    fn prepare(&mut self, m: usize, k: usize) -> Result<usize> {
        blocks_in(k, "K")?;
        if m == 0 {
            return Err(Error::ShapeMismatch("M must be non-zero".into()));
        }
        let len = crate::error::mul(m, k, "M * K")?;
        crate::error::mul(m.saturating_add(64), k, "quantized activation size")?;
        self.buf.resize((act_kernel(self.tier).size)(m, k));
        self.m = m;
        self.k = k;
        Ok(len)
    }

    /// The plain blocks, `m * k / 32` in row order.
    pub fn blocks(&self) -> Vec<ActBlock> {
        if self.m == 0 {
            return Vec::new();
        }
        (act_kernel(self.tier).unpack)(self.buf.bytes(), self.m, self.k)
    }

    /// Tier the activations are laid out for.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Row length.
    pub fn k(&self) -> usize {
        self.k
    }
}

impl Default for QuantizedActivations {
    fn default() -> Self {
        Self::new()
    }
}

/// `out = a * w^T (+ bias)`, all `m x n` outputs, row-major with row stride `n`.
pub fn matmul(
    w: &PackedQ4_0,
    a: &QuantizedActivations,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    matmul_range(w, a, 0..a.m, 0..w.n, bias, out, w.n)
}

/// Computes the outputs `(i, j)` for `i` in `rows`, `j` in `cols` only, writing `(i, j)` to
/// `out[(i - rows.start) * ldo + (j - cols.start)]`. Other elements of `out` are left untouched.
/// Use it to split one matmul across threads of your own.
pub fn matmul_range(
    w: &PackedQ4_0,
    a: &QuantizedActivations,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
) -> Result<()> {
    let args = validate(w.view(), a, rows, cols, bias, out.len(), ldo)?;
    if let Some(args) = args {
        let _iv = crate::signpost::interval(crate::signpost::MATMUL, || {
            format!(
                "q4_0 M={} N={} K={}",
                args.rows.len(),
                args.cols.len(),
                args.k
            )
        });
        let args = GemmArgs {
            out: out.as_mut_ptr(),
            ..args
        };
        // SAFETY: `validate` checked the tiers (supported, matching), shapes, ranges, the bias
        // length and that `out` holds every element the ranges address with stride `ldo`.
        unsafe { (q4_kernel(w.tier).gemm)(&args) };
    }
    Ok(())
}

/// Checks everything [`Q4Kernel::gemm`] (or any weight format's kernel) assumes; `None` for an
/// empty range (nothing to do). The returned `out` pointer is null; the caller sets it.
pub(crate) fn validate<'a>(
    w: WeightView<'a>,
    a: &'a QuantizedActivations,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&'a [f32]>,
    out_len: usize,
    ldo: usize,
) -> Result<Option<GemmArgs<'a>>> {
    if w.tier != a.tier {
        return Err(Error::TierMismatch {
            weights: w.tier,
            activations: a.tier,
        });
    }
    if a.m == 0 {
        return Err(Error::ShapeMismatch("activations are empty".into()));
    }
    if a.k != w.k {
        return Err(Error::ShapeMismatch(format!(
            "activations have K = {}, weights K = {}",
            a.k, w.k
        )));
    }
    if rows.start > rows.end || rows.end > a.m || cols.start > cols.end || cols.end > w.n {
        return Err(Error::ShapeMismatch(format!(
            "ranges rows {rows:?} / cols {cols:?} outside M = {} / N = {}",
            a.m, w.n
        )));
    }
    if let Some(b) = bias {
        check_len("bias", b.len(), w.n)?;
    }
    if rows.is_empty() || cols.is_empty() {
        return Ok(None);
    }
    if ldo < cols.len() {
        return Err(Error::ShapeMismatch(format!(
            "ldo = {ldo} is less than the {} columns written",
            cols.len()
        )));
    }
    let needed = crate::error::mul(rows.len() - 1, ldo, "output size")?
        .checked_add(cols.len())
        .ok_or(Error::Overflow("output size"))?;
    if out_len < needed {
        return Err(Error::BadLength {
            what: "output",
            expected: needed,
            actual: out_len,
        });
    }
    Ok(Some(GemmArgs {
        w: w.buf,
        n: w.n,
        k: w.k,
        a: &a.buf,
        m: a.m,
        rows,
        cols,
        bias,
        out: std::ptr::null_mut(),
        ldo,
    }))
}

/// A pointer to the output that tasks of one parallel call share; each writes a disjoint region.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint elements (their row/column blocks) and `run` joins them all before
// the borrow of `out` ends.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// A method (not the field) so closures capture the whole `Sync` wrapper.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Columns per task of [`matmul_parallel`]: a multiple of every kernel's column tile.
const PAR_COLS: usize = 64;
/// Rows per task of [`matmul_parallel`].
const PAR_ROWS: usize = 64;

/// [`matmul`] on all threads of `pool`, split into blocks of rows and columns handed out on demand.
pub fn matmul_parallel(
    pool: &crate::parallel::ThreadPool,
    w: &PackedQ4_0,
    a: &QuantizedActivations,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let Some(args) = validate(w.view(), a, 0..a.m, 0..w.n, bias, out.len(), w.n)? else {
        return Ok(());
    };
    let _iv = crate::signpost::interval(crate::signpost::MATMUL, || {
        format!("q4_0 M={} N={} K={} parallel", args.m, args.n, args.k)
    });
    let args = GemmArgs {
        out: out.as_mut_ptr(),
        ..args
    };
    // SAFETY: `validate` checked the whole m x n call into `out`, and `gemm` is the kernel of the
    // tier both operands were prepared for.
    unsafe { gemm_parallel(pool, &args, q4_kernel(w.tier).gemm) };
    Ok(())
}

/// Runs `gemm` over the whole call `args` on all threads of `pool`, in blocks of rows and columns
/// handed out on demand, column blocks outer.
///
/// # Safety
/// `args` covers rows `0..m` and columns `0..n` with `ldo == n`, and satisfies the contract of
/// `gemm` (as after [`validate`], with `out` valid for the whole `m x n` output).
pub(crate) unsafe fn gemm_parallel(
    pool: &crate::parallel::ThreadPool,
    args: &GemmArgs<'_>,
    gemm: unsafe fn(&GemmArgs<'_>),
) {
    let out = SharedOut(args.out);
    let (m, n, k) = (args.m, args.n, args.k);
    let (w, a, bias) = (args.w, args.a, args.bias);
    debug_assert!(args.rows == (0..m) && args.cols == (0..n) && args.ldo == n);
    let row_blocks = m.div_ceil(PAR_ROWS);
    let col_blocks = n.div_ceil(PAR_COLS);
    pool.run(row_blocks * col_blocks, &|t| {
        // Column blocks outer: consecutive tasks share a block of weights (read from memory
        // once per call, then from cache), the activations stay in cache throughout.
        let (rb, cb) = (t % row_blocks, t / row_blocks);
        let rows = rb * PAR_ROWS..((rb + 1) * PAR_ROWS).min(m);
        let cols = cb * PAR_COLS..((cb + 1) * PAR_COLS).min(n);
        let sub = GemmArgs {
            w,
            n,
            k,
            a,
            m,
            // SAFETY (of the add): (rows.start, cols.start) is inside the m x n output.
            out: unsafe { out.ptr().add(rows.start * n + cols.start) },
            rows,
            cols,
            bias,
            ldo: n,
        };
        // SAFETY: the caller validated the whole m x n call; this block is a sub-range of it and no
        // other task writes its elements.
        unsafe { gemm(&sub) };
    });
}
