//! [`Model`]: the weights packed once for one tier, and the thread pool that runs them.
//!
//! [`Model::new`] packs every weight once, each in the format it was loaded in
//! ([`PackedTensor`], one variant per [`QuantType`]), and drops the plain copies. Q/k/v are fused
//! into one matrix and gate/up into another when their parts share a type, so each normalised row
//! is quantized once and read by one parallel matmul; parts of different types run one matmul
//! each and their outputs are assembled into the same row layout ([`Linear`]). A tied output head
//! doubles as the embedding table. The forward pass itself is in [`super::session`].

use crate::parallel::ThreadPool;
use crate::quant::{
    ActFormat, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use crate::{matmul_parallel, Kernels, Packed, QuantizedActivations};
use crate::{Error, Result, Tier};

use super::weights::{count_types, match_quant, TensorFormat};
use super::{Config, LayerWeights, ModelWeights, QuantTensor, QuantType, Session, SessionOptions};

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

impl PackedTensor {
    /// Packs `t` (`n` rows of `k` values) for the tier of `kernels`, keeping its format.
    fn pack(kernels: &'static Kernels, t: &QuantTensor, n: usize, k: usize) -> Result<Self> {
        Ok(match t {
            QuantTensor::Q4_0(b) => PackedTensor::Q4_0(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q8_0(b) => PackedTensor::Q8_0(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q4_1(b) => PackedTensor::Q4_1(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q5_0(b) => PackedTensor::Q5_0(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q5_1(b) => PackedTensor::Q5_1(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q4K(b) => PackedTensor::Q4K(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q5K(b) => PackedTensor::Q5K(Packed::with_kernels(kernels, b, n, k)?),
            QuantTensor::Q6K(b) => PackedTensor::Q6K(Packed::with_kernels(kernels, b, n, k)?),
        })
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

    /// Whether its input must be quantized in `Q8_256` (a K-quant).
    pub(super) fn needs_k(&self) -> bool {
        self.act_format() == ActFormat::Q8_256
    }

    fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        match_packed!(self, p => p.dequantize_row(row, out))
    }

    /// `out = a * w^T (+ bias)` on all threads of `pool` ([`matmul_parallel`]).
    pub(super) fn matmul_parallel(
        &self,
        pool: &ThreadPool,
        a: &QuantizedActivations,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        match_packed!(self, p => matmul_parallel(pool, p, a, bias, out))
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

/// The parts' blocks concatenated (rows of the first, then of the second, ...), if they all have
/// the type of the first.
fn concat_same(parts: &[&QuantTensor]) -> Option<QuantTensor> {
    fn cat<F: TensorFormat>(_first: &[F], parts: &[&QuantTensor]) -> Option<QuantTensor> {
        let mut v = Vec::with_capacity(parts.iter().map(|p| p.blocks_len()).sum());
        for p in parts {
            v.extend_from_slice(p.blocks::<F>()?);
        }
        Some(F::into_tensor(v))
    }
    match_quant!(parts.first()?, b => cat(b, parts))
}

impl Linear {
    /// Packs `parts` (part `i` has `cols[i]` rows of `k` values).
    fn pack(
        kernels: &'static Kernels,
        parts: &[&QuantTensor],
        cols: &[usize],
        k: usize,
    ) -> Result<Linear> {
        let n = cols.iter().sum();
        let mats = match parts {
            [one] => vec![PackedTensor::pack(kernels, one, n, k)?],
            _ => match concat_same(parts) {
                Some(all) => vec![PackedTensor::pack(kernels, &all, n, k)?],
                None => parts
                    .iter()
                    .zip(cols)
                    .map(|(p, &c)| PackedTensor::pack(kernels, p, c, k))
                    .collect::<Result<_>>()?,
            },
        };
        let needs_k = mats.iter().any(|m| m.act_format() == ActFormat::Q8_256);
        Ok(Linear {
            cols: cols.to_vec(),
            mats,
            needs_k,
        })
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

    /// `out = a * w^T (+ bias)`, `a.m()` rows of [`Linear::n`] values, on all threads of `pool`.
    /// Split parts run one matmul each into `scratch` and are copied into their columns.
    pub(super) fn matmul_parallel(
        &self,
        pool: &ThreadPool,
        a: &QuantizedActivations,
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        if let [one] = &self.mats[..] {
            return one.matmul_parallel(pool, a, bias, out);
        }
        let n = self.n();
        if out.len() != crate::error::mul(a.m(), n, "output size")? {
            return Err(Error::ShapeMismatch(format!(
                "matmul output of {} values for {} rows of {n}",
                out.len(),
                a.m()
            )));
        }
        if bias.is_some_and(|b| b.len() != n) {
            return Err(Error::ShapeMismatch(format!("bias length is not {n}")));
        }
        let mut start = 0;
        for (mat, &cols) in self.mats.iter().zip(&self.cols) {
            let tmp = super::session::sized(scratch, a.m() * cols);
            let part_bias = bias.map(|b| &b[start..start + cols]);
            mat.matmul_parallel(pool, a, part_bias, tmp)?;
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
enum Embedding {
    /// The tied output head (one copy for both uses).
    Head,
    /// An untied table, plain rows.
    Table(QuantTensor),
}

/// A model ready to run: weights packed for one tier, and a thread pool.
pub struct Model {
    pub(super) config: Config,
    pub(super) kernels: &'static Kernels,
    pub(super) pool: ThreadPool,
    pub(super) layers: Vec<Layer>,
    pub(super) output_norm: Vec<f32>,
    pub(super) head: PackedTensor,
    embedding: Embedding,
}

impl Layer {
    fn pack(l: LayerWeights, c: &Config, kernels: &'static Kernels) -> Result<Layer> {
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        let wqkv = Linear::pack(kernels, &[&l.wq, &l.wk, &l.wv], &[q, kv, kv], h)?;
        let bqkv = match (l.bq, l.bk, l.bv) {
            (Some(bq), Some(bk), Some(bv)) => Some([bq, bk, bv].concat()),
            (None, None, None) => None,
            _ => return Err(Error::Format("some but not all q/k/v biases".into())),
        };
        let wo = Linear::pack(kernels, &[&l.wo], &[h], q)?;
        drop((l.wq, l.wk, l.wv, l.wo));
        let wgu = Linear::pack(kernels, &[&l.w_gate, &l.w_up], &[f, f], h)?;
        drop((l.w_gate, l.w_up));
        let wdown = Linear::pack(kernels, &[&l.w_down], &[h], f)?;
        Ok(Layer {
            attn_norm: l.attn_norm,
            wqkv,
            bqkv,
            q_norm: l.q_norm,
            k_norm: l.k_norm,
            wo,
            ffn_norm: l.ffn_norm,
            wgu,
            wdown,
        })
    }
}

impl Model {
    /// Validates `weights`, packs every weight once for `tier` (an error if the CPU lacks it) and
    /// drops the plain copies; runs on `threads` threads (0 counts as 1).
    pub fn new(weights: ModelWeights, tier: Tier, threads: usize) -> Result<Model> {
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
            packed.push(Layer::pack(l, &config, kernels)?);
        }
        let (head, embedding) = match output {
            Some(out) => (
                PackedTensor::pack(kernels, &out, config.vocab, config.hidden)?,
                Embedding::Table(token_embd),
            ),
            None => (
                PackedTensor::pack(kernels, &token_embd, config.vocab, config.hidden)?,
                Embedding::Head,
            ),
        };
        Ok(Model {
            config,
            kernels,
            pool: ThreadPool::new(threads),
            layers: packed,
            output_norm,
            head,
            embedding,
        })
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

    /// Bytes held by the packed weights, norms, biases and embedding table.
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
            Embedding::Head => 0,
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

    /// Type the output head runs in.
    pub fn head_type(&self) -> QuantType {
        self.head.quant_type()
    }

    /// Type the token embedding is read from (the head's when tied).
    pub fn embedding_type(&self) -> QuantType {
        match &self.embedding {
            Embedding::Head => self.head.quant_type(),
            Embedding::Table(t) => t.quant_type(),
        }
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
        }
    }
}
