//! [`Model`]: the weights packed once for one tier, and the thread pool that runs them.
//!
//! [`Model::new`] packs every weight once (linear weights as [`PackedQ4_0`], with q/k/v fused into
//! one matrix and gate/up into another, so each normalised row is quantized once and read by one
//! parallel matmul; the output head as [`PackedQ8_0`], a tied head doubling as the embedding
//! table) and drops the plain copies. The forward pass itself is in [`super::session`].

use crate::parallel::ThreadPool;
use crate::quant::{BlockQ4_0, BlockQ8_0};
use crate::{embedding_row, EmbeddingTable, Kernels, PackedQ4_0, PackedQ8_0};
use crate::{Error, Result, Tier};

use super::{Config, LayerWeights, ModelWeights, Session, SessionOptions};

/// One transformer block, packed.
pub(super) struct Layer {
    pub(super) attn_norm: Vec<f32>,
    /// Rows: `q_dim` of Wq, then `kv_dim` of Wk, then `kv_dim` of Wv.
    pub(super) wqkv: PackedQ4_0,
    /// `[bq | bk | bv]` (Qwen2), added in the matmul epilogue.
    pub(super) bqkv: Option<Vec<f32>>,
    pub(super) q_norm: Option<Vec<f32>>,
    pub(super) k_norm: Option<Vec<f32>>,
    pub(super) wo: PackedQ4_0,
    pub(super) ffn_norm: Vec<f32>,
    /// Rows: `ffn` of W_gate, then `ffn` of W_up.
    pub(super) wgu: PackedQ4_0,
    pub(super) wdown: PackedQ4_0,
}

/// Where token embeddings are read from.
enum Embedding {
    /// The tied output head (one copy for both uses).
    Head,
    /// An untied table, plain Q8_0 rows.
    Table(Vec<BlockQ8_0>),
}

/// A model ready to run: weights packed for one tier, and a thread pool.
pub struct Model {
    pub(super) config: Config,
    pub(super) kernels: &'static Kernels,
    pub(super) pool: ThreadPool,
    pub(super) layers: Vec<Layer>,
    pub(super) output_norm: Vec<f32>,
    pub(super) head: PackedQ8_0,
    embedding: Embedding,
}

fn concat(parts: &[&[BlockQ4_0]]) -> Vec<BlockQ4_0> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

impl Layer {
    fn pack(l: LayerWeights, c: &Config, kernels: &'static Kernels) -> Result<Layer> {
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        let wqkv =
            PackedQ4_0::with_kernels(kernels, &concat(&[&l.wq, &l.wk, &l.wv]), q + 2 * kv, h)?;
        let bqkv = match (l.bq, l.bk, l.bv) {
            (Some(bq), Some(bk), Some(bv)) => Some([bq, bk, bv].concat()),
            (None, None, None) => None,
            _ => return Err(Error::Format("some but not all q/k/v biases".into())),
        };
        let wo = PackedQ4_0::with_kernels(kernels, &l.wo, h, q)?;
        drop((l.wq, l.wk, l.wv, l.wo));
        let wgu = PackedQ4_0::with_kernels(kernels, &concat(&[&l.w_gate, &l.w_up]), 2 * f, h)?;
        drop((l.w_gate, l.w_up));
        let wdown = PackedQ4_0::with_kernels(kernels, &l.w_down, h, f)?;
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
                PackedQ8_0::with_kernels(kernels, &out, config.vocab, config.hidden)?,
                Embedding::Table(token_embd),
            ),
            None => (
                PackedQ8_0::with_kernels(kernels, &token_embd, config.vocab, config.hidden)?,
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
            Embedding::Table(t) => std::mem::size_of_val(t.as_slice()),
        };
        layers + f(&self.output_norm) + self.head.packed_bytes() + embd
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
            Embedding::Table(t) => embedding_row(
                self.kernels,
                EmbeddingTable::Q8_0(t),
                self.config.hidden,
                row,
                out,
            ),
        }
    }
}
