//! Quantized-weight x int8-activation matrix multiply:
//! `y[m][n] = sum_k x[m][k] * w[n][k] (+ bias[n])`, for every weight format.
//!
//! Weights are blocks of a [`WeightFormat`] along K, packed once into the layout of one tier
//! ([`Packed`]). Activations are f32, quantized per row and block of 32 into that tier's layout
//! ([`QuantizedActivations`], reusable across calls and across the matmuls of any format that
//! read the same rows). The output is f32. Per block, the integer dot product is exact; the float
//! combination (`d_w * d_x * isum`, summed over blocks) may differ from the f64 reference by
//! rounding only, see `qkern_reference::matmul_error_scale` for the bound the tests use.

use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::contract::{Kernels, WeightFormat};
use crate::drivers::gemm::gemm_parallel;
use crate::parallel::{SharedOut, ThreadPool};
use crate::quant::{blocks_of, check_len, ActBlock, ActBlockK, ActFormat};
use crate::{Error, Result, Tier};
use std::ops::Range;

/// Weights of format `F` (`n` rows of `k` values) packed for one tier's kernels.
///
/// ```
/// # fn main() -> qkern::Result<()> {
/// use qkern::quant::BlockQ8_0;
/// let blocks = vec![BlockQ8_0::default(); 4 * 2]; // 4 rows of 64 values
/// let w = qkern::Packed::<BlockQ8_0>::new(&blocks, 4, 64)?;
/// assert_eq!(w.unpack(), blocks);
/// # Ok(())
/// # }
/// ```
pub struct Packed<F: WeightFormat> {
    kernels: &'static Kernels,
    n: usize,
    k: usize,
    buf: AlignedBuf,
    _format: std::marker::PhantomData<F>,
}

/// Q4_0 weights packed for one tier.
pub type PackedQ4_0 = Packed<crate::quant::BlockQ4_0>;
/// Q8_0 weights packed for one tier.
pub type PackedQ8_0 = Packed<crate::quant::BlockQ8_0>;

impl<F: WeightFormat> Packed<F> {
    /// Packs `blocks` (`n` rows of `k / 32` blocks, row-major) for the process-wide tier.
    pub fn new(blocks: &[F], n: usize, k: usize) -> Result<Self> {
        Self::with_kernels(Kernels::active(), blocks, n, k)
    }

    /// Packs `blocks` for an explicit tier; an error if the CPU lacks it.
    pub fn with_tier(blocks: &[F], n: usize, k: usize, tier: Tier) -> Result<Self> {
        Self::with_kernels(Kernels::for_tier(tier)?, blocks, n, k)
    }

    /// Packs `blocks` for the tier of `kernels`.
    pub fn with_kernels(
        kernels: &'static Kernels,
        blocks: &[F],
        n: usize,
        k: usize,
    ) -> Result<Self> {
        check_weight_shape(blocks.len(), n, k, F::BLOCK_LEN)?;
        let buf = (F::kernel(kernels).pack)(blocks, n, k);
        Ok(Packed {
            kernels,
            n,
            k,
            buf,
            _format: std::marker::PhantomData,
        })
    }

    /// Weights packed already for the tier of `kernels` (`n` rows of `k` values): `buf` must hold
    /// exactly as many bytes as packing such a matrix gives ([`packed_len`]), else an error. The
    /// bytes themselves may be anything (every byte pattern is a valid packed matrix of some
    /// blocks); where they come from must make them the intended ones (a pre-packed model file
    /// checks its tier and layout version).
    #[cfg_attr(not(feature = "model"), allow(dead_code))]
    pub(crate) fn from_buf(
        kernels: &'static Kernels,
        buf: AlignedBuf,
        n: usize,
        k: usize,
    ) -> Result<Self> {
        let want = packed_len::<F>(kernels, n, k)?;
        if buf.bytes().len() != want {
            return Err(Error::ShapeMismatch(format!(
                "{} packed bytes for {n} x {k} {} weights of tier {}, expected {want}",
                buf.bytes().len(),
                F::NAME,
                kernels.tier.name()
            )));
        }
        Ok(Packed {
            kernels,
            n,
            k,
            buf,
            _format: std::marker::PhantomData,
        })
    }

    /// The packed bytes (for writing them to a file).
    #[cfg_attr(not(feature = "model"), allow(dead_code))]
    pub(crate) fn packed_data(&self) -> &[u8] {
        self.buf.bytes()
    }

    /// Whether the packed bytes are used in place from shared read-only bytes (a file mapping).
    #[cfg_attr(not(feature = "model"), allow(dead_code))]
    pub(crate) fn is_shared(&self) -> bool {
        self.buf.is_shared()
    }

    fn kernel(&self) -> &'static WeightKernel<F> {
        F::kernel(self.kernels)
    }

    /// The plain blocks back, exactly as given to [`Packed::new`].
    pub fn unpack(&self) -> Vec<F> {
        let kb = self.k / F::BLOCK_LEN;
        let mut blocks = vec![F::zeroed(); self.n * kb];
        for (r, row) in blocks.chunks_exact_mut(kb).enumerate() {
            (self.kernel().unpack_row)(&self.buf, self.n, self.k, r, row);
        }
        blocks
    }

    /// Row `row` dequantized into `out` (`k` values, with the format's reference
    /// dequantization): lets a tied output head serve as the token embedding without a second
    /// copy of the table.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.n {
            return Err(Error::ShapeMismatch(format!(
                "row {row} outside N = {}",
                self.n
            )));
        }
        check_len("dequantized row", out.len(), self.k)?;
        let mut blocks = vec![F::zeroed(); self.k / F::BLOCK_LEN];
        (self.kernel().unpack_row)(&self.buf, self.n, self.k, row, &mut blocks);
        F::dequantize(&blocks, out)
    }

    /// Tier the weights are packed for.
    pub fn tier(&self) -> Tier {
        self.kernels.tier
    }

    /// The activation format the matmuls of these weights read (see
    /// [`QuantizedActivations::require`]).
    pub fn act_format(&self) -> ActFormat {
        F::ACT
    }

    /// Name of the matmul implementation these weights run on (e.g. `"avx512vnni-8x16"`).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel().name
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
}

/// Name of the matmul implementation of format `F` at `tier` (e.g. `"scalar"`); an error if the
/// CPU lacks the tier.
pub fn kernel_name<F: WeightFormat>(tier: Tier) -> Result<&'static str> {
    Ok(F::kernel(Kernels::for_tier(tier)?).name)
}

/// Bytes of `n x k` weights of format `F` packed for the tier of `kernels` (an error for a shape
/// that cannot be packed). The layouts do not expose their size, so this packs zero blocks of that
/// shape once (a temporary of about two matrices) and remembers the answer per tier, format and
/// shape.
#[cfg_attr(not(feature = "model"), allow(dead_code))]
pub(crate) fn packed_len<F: WeightFormat>(
    kernels: &'static Kernels,
    n: usize,
    k: usize,
) -> Result<usize> {
    type Key = (Tier, &'static str, usize, usize);
    static SIZES: std::sync::Mutex<Vec<(Key, usize)>> = std::sync::Mutex::new(Vec::new());
    let key = (kernels.tier, F::NAME, n, k);
    let cached = |sizes: &Vec<(Key, usize)>| sizes.iter().find(|e| e.0 == key).map(|e| e.1);
    if let Some(len) = cached(&SIZES.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(len);
    }
    let kb = blocks_of(k, F::BLOCK_LEN, "K")?;
    check_weight_shape(n.saturating_mul(kb), n, k, F::BLOCK_LEN)?;
    let zeros = vec![F::zeroed(); n * kb];
    let len = (F::kernel(kernels).pack)(&zeros, n, k).bytes().len();
    let mut sizes = SIZES.lock().unwrap_or_else(|e| e.into_inner());
    if cached(&sizes).is_none() {
        sizes.push((key, len));
    }
    Ok(len)
}

/// Checks what packing a weight matrix of any block format assumes: `n > 0`, `k` a non-zero
/// multiple of the block length, `n_blocks == n * k / block_len`, and a padded packed size far
/// from overflow.
fn check_weight_shape(n_blocks: usize, n: usize, k: usize, block_len: usize) -> Result<()> {
    let kb = blocks_of(k, block_len, "K")?;
    if n == 0 {
        return Err(Error::ShapeMismatch("N must be non-zero".into()));
    }
    check_len(
        "weight blocks",
        n_blocks,
        crate::error::mul(n, kb, "N * K / block length")?,
    )?;
    // Packed layouts pad N to a tile; keep the byte size well inside usize/isize.
    crate::error::mul(n.saturating_add(64), k, "packed weight size")?;
    Ok(())
}

/// `m` rows of `k` activations quantized to int8 blocks in one tier's layouts, in each
/// [`ActFormat`] the weights that read them need: `Q8_32` by default, `Q8_256` too once
/// [`require`](Self::require)d (K-quant weights). Reuse one value across calls:
/// [`QuantizedActivations::quantize`] keeps its allocations.
#[derive(Clone)]
pub struct QuantizedActivations {
    kernels: &'static Kernels,
    m: usize,
    k: usize,
    /// Per format (index `ActFormat as usize`): whether it is quantized, and its layout.
    wanted: [bool; 2],
    bufs: [AlignedBuf; 2],
}

impl QuantizedActivations {
    /// An empty buffer for the process-wide tier.
    pub fn new() -> Self {
        Self::with_kernels(Kernels::active())
    }

    /// An empty buffer for an explicit tier; an error if the CPU lacks it.
    pub fn with_tier(tier: Tier) -> Result<Self> {
        Ok(Self::with_kernels(Kernels::for_tier(tier)?))
    }

    /// An empty buffer for the tier of `kernels`.
    pub fn with_kernels(kernels: &'static Kernels) -> Self {
        QuantizedActivations {
            kernels,
            m: 0,
            k: 0,
            wanted: [true, false],
            bufs: [AlignedBuf::default(), AlignedBuf::default()],
        }
    }

    /// Also quantize into `format` from the next [`quantize`](Self::quantize) on (for weights
    /// whose [`Packed::act_format`] is `format`). `Q8_256` needs row lengths that are multiples
    /// of 256.
    pub fn require(&mut self, format: ActFormat) {
        self.wanted[format as usize] = true;
    }

    /// Quantize into exactly `formats` from the next [`quantize`](Self::quantize) on (for
    /// activations that only K-quant weights read: `&[ActFormat::Q8_256]`, which skips the
    /// `Q8_32` layout). An empty list is an error.
    pub fn set_formats(&mut self, formats: &[ActFormat]) -> Result<()> {
        if formats.is_empty() {
            return Err(Error::ShapeMismatch(
                "activations need at least one format".into(),
            ));
        }
        self.wanted = ActFormat::ALL.map(|f| formats.contains(&f));
        self.m = 0; // the current rows may lack a format now wanted
        Ok(())
    }

    /// Whether the current rows are quantized in `format`.
    pub fn has(&self, format: ActFormat) -> bool {
        self.m > 0 && self.wanted[format as usize]
    }

    /// Quantizes `m` rows of `k` values (`x.len() == m * k`) with the rule of
    /// [`crate::quant::quantize_activation_block`] (per 32 values; per 256 for `Q8_256`).
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize) -> Result<()> {
        let len = self.prepare(m, k)?;
        if let Err(e) = check_len("activations", x.len(), len) {
            self.m = 0; // nothing valid in the buffers
            return Err(e);
        }
        for (i, row) in x.chunks_exact(k).enumerate() {
            self.quantize_row(row, i);
        }
        Ok(())
    }

    /// Quantizes `m` rows of `k` values that `produce(i, row)` writes into a scratch row, one row
    /// at a time (for fused producers such as RMSNorm). `scratch` is resized to `k`.
    pub(crate) fn quantize_with(
        &mut self,
        m: usize,
        k: usize,
        scratch: &mut Vec<f32>,
        mut produce: impl FnMut(usize, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        self.prepare(m, k)?;
        scratch.resize(k, 0.0);
        for i in 0..m {
            if let Err(e) = produce(i, scratch) {
                self.m = 0; // the rows are incomplete
                return Err(e);
            }
            self.quantize_row(scratch, i);
        }
        Ok(())
    }

    /// Quantizes row `i` (of the prepared shape) into every wanted format.
    fn quantize_row(&mut self, row: &[f32], i: usize) {
        let (m, k) = (self.m, self.k);
        if self.wanted[0] {
            (self.kernels.act.quantize_row)(row, i, m, k, self.bufs[0].bytes_mut());
        }
        if self.wanted[1] {
            (self.kernels.act_k.quantize_row)(row, i, m, k, self.bufs[1].bytes_mut());
        }
    }

    /// Validates the shape, sizes the buffers for it and records it; returns `m * k`.
    fn prepare(&mut self, m: usize, k: usize) -> Result<usize> {
        self.m = 0; // not quantized until the shape is valid
        for f in ActFormat::ALL {
            if self.wanted[f as usize] {
                blocks_of(k, f.block_len(), "K")?;
            }
        }
        if m == 0 {
            return Err(Error::ShapeMismatch("M must be non-zero".into()));
        }
        let len = crate::error::mul(m, k, "M * K")?;
        crate::error::mul(m.saturating_add(64), k, "quantized activation size")?;
        if self.wanted[0] {
            self.bufs[0].resize((self.kernels.act.size)(m, k));
        }
        if self.wanted[1] {
            self.bufs[1].resize((self.kernels.act_k.size)(m, k));
        }
        self.m = m;
        self.k = k;
        Ok(len)
    }

    /// The plain `Q8_32` blocks, `m * k / 32` in row order (empty if not quantized so).
    pub fn blocks(&self) -> Vec<ActBlock> {
        if !self.has(ActFormat::Q8_32) {
            return Vec::new();
        }
        (self.kernels.act.unpack)(self.bufs[0].bytes(), self.m, self.k)
    }

    /// The plain `Q8_256` blocks, `m * k / 256` in row order (empty if not quantized so).
    pub fn blocks_k(&self) -> Vec<ActBlockK> {
        if !self.has(ActFormat::Q8_256) {
            return Vec::new();
        }
        (self.kernels.act_k.unpack)(self.bufs[1].bytes(), self.m, self.k)
    }

    /// Tier the activations are laid out for.
    pub fn tier(&self) -> Tier {
        self.kernels.tier
    }

    /// The kernels of that tier.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
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
pub fn matmul<F: WeightFormat>(
    w: &Packed<F>,
    a: &QuantizedActivations,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    run(w, a, 0..a.m, 0..w.n, bias, out, w.n, None)
}

/// Computes the outputs `(i, j)` for `i` in `rows`, `j` in `cols` only, writing `(i, j)` to
/// `out[(i - rows.start) * ldo + (j - cols.start)]`. Other elements of `out` are left untouched.
/// Use it to split one matmul across threads of your own.
pub fn matmul_range<F: WeightFormat>(
    w: &Packed<F>,
    a: &QuantizedActivations,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
) -> Result<()> {
    run(w, a, rows, cols, bias, out, ldo, None)
}

/// [`matmul`] on all threads of `pool`, split into blocks of rows and columns handed out on demand.
pub fn matmul_parallel<F: WeightFormat>(
    pool: &ThreadPool,
    w: &Packed<F>,
    a: &QuantizedActivations,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    run(w, a, 0..a.m, 0..w.n, bias, out, w.n, Some(pool))
}

/// [`matmul_parallel`] over activations held in several buffers: `parts[0]`, `parts[1]`, ...
/// are consecutive row blocks of one input (quantized in parallel, one buffer per thread), and
/// `out` receives their outputs in the same order (`parts[p].m() x n` values each, row stride
/// `n`). One parallel call for all of them, so each block of weights is read from memory once
/// for all rows rather than once per buffer; the results are bit-identical to one
/// [`matmul_parallel`] per buffer.
pub fn matmul_parallel_parts<F: WeightFormat>(
    pool: &ThreadPool,
    w: &Packed<F>,
    parts: &[QuantizedActivations],
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::ShapeMismatch("no activation buffers".into()));
    }
    // Each part against what is left of `out` after the parts before it.
    let mut used = 0usize;
    for a in parts {
        let rest = out.len().saturating_sub(used);
        validate(w, a, &(0..a.m), &(0..w.n), bias, rest, w.n)?;
        used += a.m * w.n; // a.m * w.n <= rest (validated), so no overflow
    }
    let _iv = crate::signpost::interval(crate::signpost::MATMUL, || {
        format!(
            "{} M={} N={} K={} parallel, {} parts",
            F::NAME,
            used / w.n,
            w.n,
            w.k,
            parts.len()
        )
    });
    let kernel = w.kernel();
    // Plain copies only for kernels that read those (allocated then, as in `run`).
    let converted: Vec<AlignedBuf> = match converted_acts(w, &parts[0]) {
        Some(first) => std::iter::once(first)
            .chain(parts[1..].iter().map(plain_blocks))
            .collect(),
        None => Vec::new(),
    };
    let out = SharedOut(out.as_mut_ptr());
    let part = |i: usize| {
        let a = &parts[i];
        GemmArgs {
            w: &w.buf,
            n: w.n,
            k: w.k,
            a: converted.get(i).unwrap_or(&a.bufs[F::ACT as usize]),
            m: a.m,
            rows: 0..a.m,
            cols: 0..w.n,
            bias,
            // SAFETY (of the add): rows before part i = offset <= out.len() (validated above).
            out: unsafe {
                out.ptr()
                    .add(parts[..i].iter().map(|a| a.m).sum::<usize>() * w.n)
            },
            ldo: w.n,
        }
    };
    // SAFETY: `validate` checked each part as one call (tiers, shapes, the bias length, and that
    // its output, from its offset on, holds its m x n elements); the outputs are consecutive,
    // disjoint ranges of `out`; every part reads the same weights, in the layout its kernel reads
    // (all parts share the tier, so all or none are converted).
    unsafe { gemm_parallel(pool, parts.len(), &part, kernel.gemm) };
    Ok(())
}

/// The activations `a` as plain `ActBlock` rows where `w`'s kernel reads those
/// ([`ActInput::Plain`]) and the tier's layout differs; `None` where it reads `a` as it is.
fn converted_acts<F: WeightFormat>(w: &Packed<F>, a: &QuantizedActivations) -> Option<AlignedBuf> {
    match (F::ACT, w.kernel().acts) {
        (ActFormat::Q8_32, ActInput::Plain) if !a.kernels.act.plain => Some(plain_blocks(a)),
        _ => None,
    }
}

/// Validates one call and runs it: on the calling thread, or split across `pool`.
#[allow(clippy::too_many_arguments)]
fn run<F: WeightFormat>(
    w: &Packed<F>,
    a: &QuantizedActivations,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
    pool: Option<&ThreadPool>,
) -> Result<()> {
    validate(w, a, &rows, &cols, bias, out.len(), ldo)?;
    if rows.is_empty() || cols.is_empty() {
        return Ok(());
    }
    let _iv = crate::signpost::interval(crate::signpost::MATMUL, || {
        format!(
            "{} M={} N={} K={}{}",
            F::NAME,
            rows.len(),
            cols.len(),
            w.k,
            if pool.is_some() { " parallel" } else { "" }
        )
    });
    let kernel = w.kernel();
    let converted = converted_acts(w, a);
    let args = GemmArgs {
        w: &w.buf,
        n: w.n,
        k: w.k,
        a: converted.as_ref().unwrap_or(&a.bufs[F::ACT as usize]),
        m: a.m,
        rows,
        cols,
        bias,
        out: out.as_mut_ptr(),
        ldo,
    };
    // SAFETY: `validate` checked the tiers (supported: the operands hold their tier's kernels;
    // matching), shapes, ranges, the bias length and that `out` holds every element the ranges
    // address with stride `ldo`; `args.a` is in the layout the kernel reads, for the same `m, k`.
    unsafe {
        match pool {
            Some(pool) => {
                let out = SharedOut(args.out);
                let part = |_| GemmArgs {
                    out: out.ptr(),
                    rows: args.rows.clone(),
                    cols: args.cols.clone(),
                    ..args
                };
                gemm_parallel(pool, 1, &part, kernel.gemm)
            }
            None => (kernel.gemm)(&args),
        }
    }
    Ok(())
}

/// The activations as plain `ActBlock` rows, for kernels that read those (`ActInput::Plain`).
fn plain_blocks(a: &QuantizedActivations) -> AlignedBuf {
    let blocks = a.blocks();
    let bytes: &[u8] = bytemuck::cast_slice(&blocks);
    let mut buf = AlignedBuf::zeroed(bytes.len());
    buf.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
    buf
}

/// Checks everything [`WeightKernel::gemm`] assumes except non-empty ranges.
fn validate<F: WeightFormat>(
    w: &Packed<F>,
    a: &QuantizedActivations,
    rows: &Range<usize>,
    cols: &Range<usize>,
    bias: Option<&[f32]>,
    out_len: usize,
    ldo: usize,
) -> Result<()> {
    if w.tier() != a.tier() {
        return Err(Error::TierMismatch {
            weights: w.tier(),
            activations: a.tier(),
        });
    }
    if a.m == 0 {
        return Err(Error::ShapeMismatch("activations are empty".into()));
    }
    if !a.has(F::ACT) {
        return Err(Error::ShapeMismatch(format!(
            "{} weights read {:?} activations, which these were not quantized into \
             (QuantizedActivations::require before quantizing)",
            F::NAME,
            F::ACT
        )));
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
        return Ok(());
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
    Ok(())
}
