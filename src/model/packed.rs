//! [`Model`]: the weights packed once for one tier, and the thread pool that runs them.
//!
//! [`Model::new`] packs every weight once, each in the format it was loaded in
//! ([`PackedTensor`], one variant per [`QuantType`]), and drops the plain copies. Q/k/v are fused
//! into one matrix and gate/up into another when their parts share a type, so each normalised row
//! is quantized once and read by one parallel matmul; parts of different types run one matmul
//! each and their outputs are assembled into the same row layout ([`Linear`]). A tied output head
//! doubles as the embedding table. The forward pass itself is in [`super::session`].

use crate::aligned::AlignedBuf;
use crate::parallel::ThreadPool;
use crate::quant::{
    ActFormat, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use crate::{matmul_parallel_parts, Kernels, Packed, QuantizedActivations};
use crate::{Error, Result, Tier};

use super::convert::Blocks;
use super::mapped::MappedRows;
use super::weights::{count_types, TensorFormat};
use super::{Config, ModelWeights, QuantTensor, QuantType, Session, SessionOptions};

/// A weight matrix packed for one tier, in one of the formats a [`QuantTensor`] holds.
pub(super) enum PackedTensor {
    Q4_0(Packed<BlockQ4_0>),
    Q8_0(Packed<BlockQ8_0>),
    Q4_1(Packed<BlockQ4_1>),
    Q5_0(Packed<BlockQ5_0>),
    Q5_1(Packed<BlockQ5_1>),
    Q4K(Packed<BlockQ4K>),
    Q5K(Packed<BlockQ5K>),
    Q6K(Packed<BlockQ6K>),
}

/// `match_packed!(w, p => expr)`: `expr` with `p` bound to the [`Packed`] matrix of whatever
/// format the [`PackedTensor`] `w` holds; `expr` is compiled once per format.
macro_rules! match_packed {
    ($w:expr, $p:ident => $e:expr) => {
        match $w {
            PackedTensor::Q4_0($p) => $e,
            PackedTensor::Q8_0($p) => $e,
            PackedTensor::Q4_1($p) => $e,
            PackedTensor::Q5_0($p) => $e,
            PackedTensor::Q5_1($p) => $e,
            PackedTensor::Q4K($p) => $e,
            PackedTensor::Q5K($p) => $e,
            PackedTensor::Q6K($p) => $e,
        }
    };
}

/// The blocks of one weight to pack: its type and bytes (a tensor's, or a file's own bytes, which
/// need not be aligned for the block type).
#[derive(Clone, Copy)]
pub(super) struct Src<'a> {
    pub(super) ty: QuantType,
    pub(super) bytes: &'a [u8],
}

impl<'a> Src<'a> {
    fn of(b: &'a Blocks<'_>) -> Self {
        Src {
            ty: b.quant_type(),
            bytes: b.bytes(),
        }
    }
}

/// A tensor's blocks, borrowed.
pub(super) fn borrow(t: &QuantTensor) -> Blocks<'_> {
    Blocks::Borrowed(t.quant_type(), t.bytes())
}

/// Packs `parts` (bytes of blocks of `F`, concatenated: `n` rows of `k` values in all) as one
/// matrix. A single part aligned for `F` is packed where it lies (a file mapping, say); otherwise
/// the parts are gathered into one temporary (an anonymous mapping) first.
fn pack_parts<F: TensorFormat>(
    kernels: &'static Kernels,
    parts: &[&[u8]],
    n: usize,
    k: usize,
) -> Result<Packed<F>> {
    let size = std::mem::size_of::<F>();
    if parts.iter().any(|p| p.len() % size != 0) {
        return Err(Error::Format(format!(
            "{} weight bytes are not a whole number of {size}-byte blocks",
            F::NAME
        )));
    }
    if let [one] = parts {
        if let Ok(blocks) = bytemuck::try_cast_slice::<u8, F>(one) {
            return Packed::with_kernels(kernels, blocks, n, k);
        }
    }
    // The temporary is an anonymous mapping of its own rather than a heap allocation: it goes
    // back to the system whole when dropped. (With glibc, freeing a large heap block raises the
    // allocator's mmap threshold, after which these temporaries and the packed buffers share the
    // heap, and the holes the temporaries leave stay resident: about 120 MiB for a 1.5B model.)
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total == 0 {
        return Packed::with_kernels(kernels, &[], n, k);
    }
    let mut tmp = memmap2::MmapMut::map_anon(total)
        .map_err(|e| Error::Io(format!("a temporary of {total} bytes for packing: {e}")))?;
    let mut at = 0;
    for p in parts {
        tmp[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    // A mapping starts on a page boundary, so it is aligned for any block type.
    let blocks = bytemuck::try_cast_slice::<u8, F>(&tmp[..total])
        .map_err(|e| Error::Io(format!("a temporary for packing is misaligned: {e}")))?;
    Packed::with_kernels(kernels, blocks, n, k)
}

impl PackedTensor {
    /// Packs `parts` (blocks of type `ty`, concatenated: `n` rows of `k` values) for the tier of
    /// `kernels`, keeping the type.
    fn pack(
        kernels: &'static Kernels,
        ty: QuantType,
        parts: &[&[u8]],
        n: usize,
        k: usize,
    ) -> Result<Self> {
        Ok(match ty {
            QuantType::Q4_0 => PackedTensor::Q4_0(pack_parts(kernels, parts, n, k)?),
            QuantType::Q8_0 => PackedTensor::Q8_0(pack_parts(kernels, parts, n, k)?),
            QuantType::Q4_1 => PackedTensor::Q4_1(pack_parts(kernels, parts, n, k)?),
            QuantType::Q5_0 => PackedTensor::Q5_0(pack_parts(kernels, parts, n, k)?),
            QuantType::Q5_1 => PackedTensor::Q5_1(pack_parts(kernels, parts, n, k)?),
            QuantType::Q4K => PackedTensor::Q4K(pack_parts(kernels, parts, n, k)?),
            QuantType::Q5K => PackedTensor::Q5K(pack_parts(kernels, parts, n, k)?),
            QuantType::Q6K => PackedTensor::Q6K(pack_parts(kernels, parts, n, k)?),
        })
    }

    /// A matrix packed already (`n` rows of `k` values of type `ty`), used in place: `buf` must
    /// have exactly the size packing gives ([`Packed::from_buf`]).
    pub(super) fn from_buf(
        kernels: &'static Kernels,
        ty: QuantType,
        buf: AlignedBuf,
        n: usize,
        k: usize,
    ) -> Result<Self> {
        Ok(match ty {
            QuantType::Q4_0 => PackedTensor::Q4_0(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q8_0 => PackedTensor::Q8_0(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q4_1 => PackedTensor::Q4_1(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q5_0 => PackedTensor::Q5_0(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q5_1 => PackedTensor::Q5_1(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q4K => PackedTensor::Q4K(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q5K => PackedTensor::Q5K(Packed::from_buf(kernels, buf, n, k)?),
            QuantType::Q6K => PackedTensor::Q6K(Packed::from_buf(kernels, buf, n, k)?),
        })
    }

    /// The packed bytes.
    pub(super) fn packed_data(&self) -> &[u8] {
        match_packed!(self, p => p.packed_data())
    }

    /// Whether the packed bytes are used in place from a file mapping.
    pub(super) fn is_shared(&self) -> bool {
        match_packed!(self, p => p.is_shared())
    }

    /// Rows and row length.
    pub(super) fn shape(&self) -> (usize, usize) {
        match_packed!(self, p => (p.n(), p.k()))
    }

    /// Name of the matmul implementation (identifies the packed layout, with its version).
    pub(super) fn kernel_name(&self) -> &'static str {
        match_packed!(self, p => p.kernel_name())
    }

    pub(super) fn quant_type(&self) -> QuantType {
        fn ty<F: TensorFormat>(_: &Packed<F>) -> QuantType {
            F::TYPE
        }
        match_packed!(self, p => ty(p))
    }

    fn packed_bytes(&self) -> usize {
        match_packed!(self, p => p.packed_bytes())
    }

    /// The activation format its matmul reads.
    fn act_format(&self) -> ActFormat {
        match_packed!(self, p => p.act_format())
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        match_packed!(self, p => p.dequantize_row(row, out))
    }

    /// `out = parts * w^T (+ bias)`, the parts' rows stacked, on all threads of `pool`
    /// ([`matmul_parallel_parts`]).
    pub(super) fn matmul_parallel(
        &self,
        pool: &ThreadPool,
        parts: &[QuantizedActivations],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        match_packed!(self, p => matmul_parallel_parts(pool, p, parts, bias, out))
    }
}

/// A linear layer whose output rows are the concatenation of the outputs of one or more weights
/// read from the same input (`[q | k | v]`, `[gate | up]`, or a single weight).
pub(super) struct Linear {
    /// Output columns of each part.
    cols: Vec<usize>,
    /// One matrix of every part's rows when the parts share a type; otherwise one per part.
    mats: Vec<PackedTensor>,
    /// Whether a part reads `Q8_256` activations (a K-quant): its input must be quantized so too.
    needs_k: bool,
}

/// Rows of the output head packed as one matrix: the head is packed (and, when streamed from a
/// file, its file pages released) this many rows at a time, so no more than one chunk of the
/// file is resident at once. A multiple of every tier's column tile.
pub(super) const HEAD_CHUNK_ROWS: usize = 8192;

impl Linear {
    /// Packs `parts` (part `i` has `cols[i]` rows of `k` values) as one matrix when they share a
    /// type, else one matrix per part.
    fn pack(
        kernels: &'static Kernels,
        parts: &[Src<'_>],
        cols: &[usize],
        k: usize,
    ) -> Result<Linear> {
        let n = cols.iter().sum();
        let Some(first) = parts.first() else {
            return Err(Error::ShapeMismatch(
                "a linear layer without weights".into(),
            ));
        };
        let mats = if parts.iter().all(|p| p.ty == first.ty) {
            let bytes: Vec<&[u8]> = parts.iter().map(|p| p.bytes).collect();
            vec![PackedTensor::pack(kernels, first.ty, &bytes, n, k)?]
        } else {
            parts
                .iter()
                .zip(cols)
                .map(|(p, &c)| PackedTensor::pack(kernels, p.ty, &[p.bytes], c, k))
                .collect::<Result<_>>()?
        };
        let needs_k = mats.iter().any(|m| m.act_format() == ActFormat::Q8_256);
        Ok(Linear {
            cols: cols.to_vec(),
            mats,
            needs_k,
        })
    }

    /// Packs one weight of `n` rows of `k` values as matrices of at most `chunk` rows each:
    /// `get(r0, rows)` gives the blocks of rows `r0 .. r0 + rows`, and `release` is called with
    /// their bytes once they are packed.
    pub(super) fn pack_rows<'a>(
        kernels: &'static Kernels,
        n: usize,
        k: usize,
        chunk: usize,
        get: &mut dyn FnMut(usize, usize) -> Result<Blocks<'a>>,
        release: &dyn Fn(&[u8]),
    ) -> Result<Linear> {
        if n == 0 || chunk == 0 {
            return Err(Error::ShapeMismatch(format!(
                "{n} rows packed {chunk} at a time"
            )));
        }
        let (mut cols, mut mats) = (Vec::new(), Vec::new());
        for r0 in (0..n).step_by(chunk) {
            let rows = chunk.min(n - r0);
            let b = get(r0, rows)?;
            mats.push(PackedTensor::pack(
                kernels,
                b.quant_type(),
                &[b.bytes()],
                rows,
                k,
            )?);
            cols.push(rows);
            release(b.bytes());
        }
        let needs_k = mats.iter().any(|m| m.act_format() == ActFormat::Q8_256);
        Ok(Linear {
            cols,
            mats,
            needs_k,
        })
    }

    /// A linear layer of matrices packed already: one of all `cols` rows, or one per part.
    pub(super) fn from_mats(cols: Vec<usize>, mats: Vec<PackedTensor>) -> Result<Linear> {
        let n: usize = cols.iter().sum();
        let ok = match &mats[..] {
            [one] => one.shape().0 == n,
            _ => mats.len() == cols.len() && mats.iter().zip(&cols).all(|(m, &c)| m.shape().0 == c),
        };
        if !ok || cols.is_empty() {
            return Err(Error::Format(format!(
                "a linear layer of parts {cols:?} stored as {} matrices of rows {:?}",
                mats.len(),
                mats.iter().map(|m| m.shape().0).collect::<Vec<_>>()
            )));
        }
        let needs_k = mats.iter().any(|m| m.act_format() == ActFormat::Q8_256);
        Ok(Linear {
            cols,
            mats,
            needs_k,
        })
    }

    /// Output columns of each part.
    pub(super) fn cols(&self) -> &[usize] {
        &self.cols
    }

    /// The packed matrices.
    pub(super) fn mats(&self) -> &[PackedTensor] {
        &self.mats
    }

    /// Row `row` of the weight dequantized into `out` (`k` values).
    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if let [one] = &self.mats[..] {
            return one.dequantize_row(row, out);
        }
        let mut start = 0;
        for (m, &c) in self.mats.iter().zip(&self.cols) {
            if row < start + c {
                return m.dequantize_row(row - start, out);
            }
            start += c;
        }
        Err(Error::ShapeMismatch(format!(
            "row {row} outside N = {start}"
        )))
    }

    /// Whether its input must be quantized in `Q8_256` too (a part is a K-quant; see
    /// [`QuantizedActivations::require`]).
    pub(super) fn needs_k(&self) -> bool {
        self.needs_k
    }

    /// Whether its input must (also) be quantized in `Q8_32` (a part is a 32-value format).
    pub(super) fn needs_32(&self) -> bool {
        self.mats.iter().any(|m| m.act_format() == ActFormat::Q8_32)
    }

    /// Output columns.
    pub(super) fn n(&self) -> usize {
        self.cols.iter().sum()
    }

    /// The type of each part, in order.
    fn part_types(&self) -> Vec<QuantType> {
        match &self.mats[..] {
            [one] => vec![one.quant_type(); self.cols.len()],
            mats => mats.iter().map(|m| m.quant_type()).collect(),
        }
    }

    fn packed_bytes(&self) -> usize {
        self.mats.iter().map(|m| m.packed_bytes()).sum()
    }

    /// `out = parts * w^T (+ bias)`: the rows of all `parts` stacked, [`Linear::n`] values each,
    /// on all threads of `pool`, one parallel call per matrix (the weights stream once for all
    /// parts). Split parts run one matmul each into `scratch` and are copied into their columns.
    pub(super) fn matmul_parallel(
        &self,
        pool: &ThreadPool,
        parts: &[QuantizedActivations],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        if let [one] = &self.mats[..] {
            return one.matmul_parallel(pool, parts, bias, out);
        }
        let n = self.n();
        let m: usize = parts.iter().map(|a| a.m()).sum();
        if out.len() != crate::error::mul(m, n, "output size")? {
            return Err(Error::ShapeMismatch(format!(
                "matmul output of {} values for {m} rows of {n}",
                out.len()
            )));
        }
        if bias.is_some_and(|b| b.len() != n) {
            return Err(Error::ShapeMismatch(format!("bias length is not {n}")));
        }
        let mut start = 0;
        for (mat, &cols) in self.mats.iter().zip(&self.cols) {
            let tmp = super::session::sized(scratch, m * cols);
            let part_bias = bias.map(|b| &b[start..start + cols]);
            mat.matmul_parallel(pool, parts, part_bias, tmp)?;
            for (o, t) in out.chunks_exact_mut(n).zip(tmp.chunks_exact(cols)) {
                o[start..start + cols].copy_from_slice(t);
            }
            start += cols;
        }
        Ok(())
    }
}

/// One transformer block, packed.
pub(super) struct Layer {
    pub(super) attn_norm: Vec<f32>,
    /// Output rows `[q (q_dim) | k (kv_dim) | v (kv_dim)]`.
    pub(super) wqkv: Linear,
    /// `[bq | bk | bv]` (Qwen2), added in the matmul epilogue.
    pub(super) bqkv: Option<Vec<f32>>,
    pub(super) q_norm: Option<Vec<f32>>,
    pub(super) k_norm: Option<Vec<f32>>,
    pub(super) wo: Linear,
    pub(super) ffn_norm: Vec<f32>,
    /// Output rows `[gate (ffn) | up (ffn)]`.
    pub(super) wgu: Linear,
    pub(super) wdown: Linear,
}

/// Where token embeddings are read from.
pub(super) enum Embedding {
    /// The tied output head (one copy for both uses).
    Head,
    /// An untied table, plain rows.
    Table(QuantTensor),
    /// An untied table left in a read-only file mapping, read a row at a time.
    Mapped(MappedRows),
}

/// A model ready to run: weights packed for one tier, and a thread pool.
pub struct Model {
    pub(super) config: Config,
    pub(super) kernels: &'static Kernels,
    pub(super) pool: ThreadPool,
    pub(super) layers: Vec<Layer>,
    pub(super) output_norm: Vec<f32>,
    /// `vocab` rows, packed [`HEAD_CHUNK_ROWS`] rows per matrix.
    pub(super) head: Linear,
    embedding: Embedding,
}

/// A layer's norms and biases (f32), kept as they are.
pub(super) struct LayerVectors {
    pub(super) attn_norm: Vec<f32>,
    pub(super) bq: Option<Vec<f32>>,
    pub(super) bk: Option<Vec<f32>>,
    pub(super) bv: Option<Vec<f32>>,
    pub(super) q_norm: Option<Vec<f32>>,
    pub(super) k_norm: Option<Vec<f32>>,
    pub(super) ffn_norm: Vec<f32>,
}

impl Layer {
    /// Packs the seven weights that `w(i)` gives (`i` = 0 to 6: wq, wk, wv, wo, w_gate, w_up,
    /// w_down; each asked for once, when its matrix is packed), calling `release` with each
    /// weight's bytes once they are packed.
    pub(super) fn pack<'a>(
        v: LayerVectors,
        w: &mut dyn FnMut(usize) -> Result<Blocks<'a>>,
        c: &Config,
        kernels: &'static Kernels,
        release: &dyn Fn(&[u8]),
    ) -> Result<Layer> {
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        let bqkv = match (v.bq, v.bk, v.bv) {
            (Some(bq), Some(bk), Some(bv)) => Some([bq, bk, bv].concat()),
            (None, None, None) => None,
            _ => return Err(Error::Format("some but not all q/k/v biases".into())),
        };
        let mut pack = |ids: &[usize], cols: &[usize], k: usize| {
            let blocks = ids.iter().map(|&i| w(i)).collect::<Result<Vec<_>>>()?;
            let parts: Vec<Src<'_>> = blocks.iter().map(Src::of).collect();
            let m = Linear::pack(kernels, &parts, cols, k)?;
            parts.iter().for_each(|p| release(p.bytes));
            Ok::<_, Error>(m)
        };
        let wqkv = pack(&[0, 1, 2], &[q, kv, kv], h)?;
        let wo = pack(&[3], &[h], q)?;
        let wgu = pack(&[4, 5], &[f, f], h)?;
        let wdown = pack(&[6], &[h], f)?;
        Ok(Layer {
            attn_norm: v.attn_norm,
            wqkv,
            bqkv,
            q_norm: v.q_norm,
            k_norm: v.k_norm,
            wo,
            ffn_norm: v.ffn_norm,
            wgu,
            wdown,
        })
    }
}

impl Model {
    /// Validates `weights`, packs every weight once for `tier` (an error if the CPU lacks it) and
    /// drops the plain copies; runs on `threads` threads (0 counts as 1).
    ///
    /// To load a file without holding its weights twice, use [`Model::load`], which packs
    /// straight from the file mapping.
    pub fn new(weights: ModelWeights, tier: Tier, threads: usize) -> Result<Model> {
        Self::new_chunked(weights, tier, threads, HEAD_CHUNK_ROWS)
    }

    /// [`Model::new`] with the head packed `head_chunk` rows per matrix.
    pub(super) fn new_chunked(
        weights: ModelWeights,
        tier: Tier,
        threads: usize,
        head_chunk: usize,
    ) -> Result<Model> {
        let kernels = Kernels::for_tier(tier)?;
        weights.validate()?;
        let ModelWeights {
            config,
            token_embd,
            output,
            output_norm,
            layers,
        } = weights;
        let mut packed = Vec::with_capacity(layers.len());
        // Pack layer by layer, freeing each plain layer as soon as it is packed.
        for l in layers {
            let v = LayerVectors {
                attn_norm: l.attn_norm,
                bq: l.bq,
                bk: l.bk,
                bv: l.bv,
                q_norm: l.q_norm,
                k_norm: l.k_norm,
                ffn_norm: l.ffn_norm,
            };
            let w = [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down];
            let mut get = |i: usize| Ok(borrow(w[i]));
            packed.push(Layer::pack(v, &mut get, &config, kernels, &|_| {})?);
        }
        let (vocab, hidden) = (config.vocab, config.hidden);
        let pack_head = |t: &QuantTensor| {
            // validate() checked the size: `vocab` rows of equal length.
            let row_bytes = t.bytes().len() / vocab;
            let mut get = |r0: usize, rows: usize| {
                let b = &t.bytes()[r0 * row_bytes..(r0 + rows) * row_bytes];
                Ok(Blocks::Borrowed(t.quant_type(), b))
            };
            Linear::pack_rows(kernels, vocab, hidden, head_chunk, &mut get, &|_| {})
        };
        let (head, embedding) = match output {
            Some(out) => (pack_head(&out)?, Embedding::Table(token_embd)),
            None => (pack_head(&token_embd)?, Embedding::Head),
        };
        Ok(Model::assemble(
            config,
            kernels,
            threads,
            packed,
            output_norm,
            head,
            embedding,
        ))
    }

    /// A model of parts packed already.
    pub(super) fn assemble(
        config: Config,
        kernels: &'static Kernels,
        threads: usize,
        layers: Vec<Layer>,
        output_norm: Vec<f32>,
        head: Linear,
        embedding: Embedding,
    ) -> Model {
        Model {
            config,
            kernels,
            pool: ThreadPool::new(threads),
            layers,
            output_norm,
            head,
            embedding,
        }
    }

    /// The model's shapes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Tier the weights are packed for.
    pub fn tier(&self) -> Tier {
        self.kernels.tier()
    }

    /// Threads the model runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Runs the model on `pool` from now on (its thread count and QoS class, e.g.
    /// [`crate::parallel::ThreadPool::with_qos`]); the previous pool's threads end.
    pub fn set_thread_pool(&mut self, pool: ThreadPool) {
        self.pool = pool;
    }

    /// Bytes held by the packed weights, norms, biases and embedding table (an embedding table
    /// left in a file mapping, [`Model::mapped_bytes`], is not counted).
    pub fn weight_bytes(&self) -> usize {
        let f = |v: &[f32]| v.len() * 4;
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                f(&l.attn_norm)
                    + f(&l.ffn_norm)
                    + l.bqkv.as_deref().map_or(0, f)
                    + l.q_norm.as_deref().map_or(0, f)
                    + l.k_norm.as_deref().map_or(0, f)
                    + l.wqkv.packed_bytes()
                    + l.wo.packed_bytes()
                    + l.wgu.packed_bytes()
                    + l.wdown.packed_bytes()
            })
            .sum();
        let embd = match &self.embedding {
            Embedding::Head | Embedding::Mapped(_) => 0,
            Embedding::Table(t) => t.bytes().len(),
        };
        layers + f(&self.output_norm) + self.head.packed_bytes() + embd
    }

    /// How many of the layers' linear weights (seven per layer: wq, wk, wv, wo, w_gate, w_up,
    /// w_down) run in each type, in [`QuantType`] order; types that do not occur are left out.
    pub fn linear_types(&self) -> Vec<(QuantType, usize)> {
        count_types(self.layers.iter().flat_map(|l| {
            [&l.wqkv, &l.wo, &l.wgu, &l.wdown]
                .into_iter()
                .flat_map(|w| w.part_types())
        }))
    }

    /// Bytes of the file mapping the model reads in place (an untied token embedding), 0 when
    /// none.
    pub fn mapped_bytes(&self) -> usize {
        match &self.embedding {
            Embedding::Mapped(m) => m.bytes(),
            _ => 0,
        }
    }

    /// Type the output head runs in.
    pub fn head_type(&self) -> QuantType {
        self.head.part_types()[0]
    }

    /// Type the token embedding is read from (the head's when tied).
    pub fn embedding_type(&self) -> QuantType {
        match &self.embedding {
            Embedding::Head => self.head_type(),
            Embedding::Table(t) => t.quant_type(),
            Embedding::Mapped(m) => m.quant_type(),
        }
    }

    /// Where token embeddings are read from.
    pub(super) fn embedding(&self) -> &Embedding {
        &self.embedding
    }

    /// A new sequence.
    pub fn session(&self, options: SessionOptions) -> Result<Session<'_>> {
        Session::new(self, options)
    }

    /// Writes the embedding of `token` into `out` (`hidden` values).
    pub(super) fn embed(&self, token: u32, out: &mut [f32]) -> Result<()> {
        let row = token as usize;
        if row >= self.config.vocab {
            return Err(Error::ShapeMismatch(format!(
                "token id {token} outside the vocabulary of {}",
                self.config.vocab
            )));
        }
        match &self.embedding {
            Embedding::Head => self.head.dequantize_row(row, out),
            Embedding::Table(t) => t.dequantize_row(self.config.hidden, row, out),
            Embedding::Mapped(m) => m.dequantize_row(row, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits of a short prompt and two decode steps.
    fn logits(m: &Model) -> Vec<f32> {
        let mut s = m.session(SessionOptions::default()).unwrap();
        let mut out = s.prefill(&[1, 7, 250, 3]).unwrap();
        out.extend(s.decode(299).unwrap());
        out.extend(s.decode(0).unwrap());
        out
    }

    #[test]
    fn head_packed_in_chunks_gives_the_same_logits() {
        for tied in [true, false] {
            let c = Config {
                n_layers: 1,
                hidden: 64,
                n_head: 4,
                n_kv_head: 2,
                head_dim: 16,
                ffn: 96,
                vocab: 300,
                tied_embeddings: tied,
                ..Config::qwen25_0_5b()
            };
            let w = ModelWeights::random(&c, 7).unwrap();
            for tier in Tier::ALL.iter().copied().filter(|t| t.is_supported()) {
                let one = Model::new_chunked(w.clone(), tier, 1, usize::MAX).unwrap();
                assert_eq!(one.head.mats.len(), 1);
                // Chunks of 40 rows: 8 matrices, the last one of 20 rows (a tail of every tile).
                let chunked = Model::new_chunked(w.clone(), tier, 2, 40).unwrap();
                assert_eq!(chunked.head.mats.len(), 8);
                assert_eq!(logits(&chunked), logits(&one), "{tier:?}, tied {tied}");
                let mut a = vec![0f32; 64];
                let mut b = vec![0f32; 64];
                for row in [0, 39, 40, 299] {
                    one.embed(row as u32, &mut a).unwrap();
                    chunked.embed(row as u32, &mut b).unwrap();
                    assert_eq!(a, b);
                }
            }
        }
    }
}
