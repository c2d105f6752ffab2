//! The loaded weights, already in the formats the forward pass reads: every 2-D
//! linear weight in Q4_0, the token embedding and the output head in Q8_0, norms and biases in f32.

use super::config::{Arch, Config};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK};
use crate::{Error, Result};

/// The weights of one transformer block. A linear weight with `n` output features and `k` input
/// features is `n` rows of `k / 32` blocks, row-major.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMS norm before attention (`hidden`).
    pub attn_norm: Vec<f32>,
    /// Query projection (`n_head * head_dim` rows, `hidden` columns).
    pub wq: Vec<BlockQ4_0>,
    /// Key projection (`n_kv_head * head_dim` rows, `hidden` columns).
    pub wk: Vec<BlockQ4_0>,
    /// Value projection (`n_kv_head * head_dim` rows, `hidden` columns).
    pub wv: Vec<BlockQ4_0>,
    /// Attention output projection (`hidden` rows, `n_head * head_dim` columns).
    pub wo: Vec<BlockQ4_0>,
    /// Query bias (`n_head * head_dim`; Qwen2).
    pub bq: Option<Vec<f32>>,
    /// Key bias (`n_kv_head * head_dim`; Qwen2).
    pub bk: Option<Vec<f32>>,
    /// Value bias (`n_kv_head * head_dim`; Qwen2).
    pub bv: Option<Vec<f32>>,
    /// Per-head RMS norm of the queries (`head_dim`; Qwen3).
    pub q_norm: Option<Vec<f32>>,
    /// Per-head RMS norm of the keys (`head_dim`; Qwen3).
    pub k_norm: Option<Vec<f32>>,
    /// RMS norm before the feed-forward block (`hidden`).
    pub ffn_norm: Vec<f32>,
    /// Gate projection (`ffn` rows, `hidden` columns).
    pub w_gate: Vec<BlockQ4_0>,
    /// Up projection (`ffn` rows, `hidden` columns).
    pub w_up: Vec<BlockQ4_0>,
    /// Down projection (`hidden` rows, `ffn` columns).
    pub w_down: Vec<BlockQ4_0>,
}

/// A whole model: configuration plus converted weights.
#[derive(Clone, Debug)]
pub struct ModelWeights {
    /// Shapes and constants.
    pub config: Config,
    /// Token embedding: `vocab` rows of `hidden / 32` blocks.
    pub token_embd: Vec<BlockQ8_0>,
    /// Output head (`vocab` rows of `hidden / 32` blocks); `None` when tied (use `token_embd`).
    pub output: Option<Vec<BlockQ8_0>>,
    /// Final RMS norm (`hidden`).
    pub output_norm: Vec<f32>,
    /// The transformer blocks, `n_layers` of them.
    pub layers: Vec<LayerWeights>,
}

fn check(what: &str, actual: usize, expected: usize) -> Result<()> {
    if actual != expected {
        return Err(Error::Format(format!(
            "{what}: expected {expected} elements/blocks, got {actual}"
        )));
    }
    Ok(())
}

fn check_opt(what: &str, v: &Option<Vec<f32>>, expected: usize) -> Result<()> {
    match v {
        Some(v) => check(what, v.len(), expected),
        None => Ok(()),
    }
}

impl ModelWeights {
    /// Checks the configuration ([`Config::validate`]) and that every length matches it: the
    /// number of layers, every tensor's size, the output head present exactly when the embeddings
    /// are untied, q/k norms present exactly for Qwen3, and the q/k/v biases all present or all
    /// absent.
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        c.validate()?;
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        // Config::validate proved that these products do not overflow.
        check("token_embd", self.token_embd.len(), c.vocab * h / QK)?;
        match (&self.output, c.tied_embeddings) {
            (Some(o), false) => check("output", o.len(), c.vocab * h / QK)?,
            (None, true) => {}
            (Some(_), true) => {
                return Err(Error::Format(
                    "output head present but the config says tied embeddings".into(),
                ))
            }
            (None, false) => {
                return Err(Error::Format(
                    "output head missing but the config says untied embeddings".into(),
                ))
            }
        }
        check("output_norm", self.output_norm.len(), h)?;
        check("number of layers", self.layers.len(), c.n_layers)?;
        for (i, l) in self.layers.iter().enumerate() {
            let name = |t: &str| format!("layer {i} {t}");
            check(&name("attn_norm"), l.attn_norm.len(), h)?;
            check(&name("wq"), l.wq.len(), q * h / QK)?;
            check(&name("wk"), l.wk.len(), kv * h / QK)?;
            check(&name("wv"), l.wv.len(), kv * h / QK)?;
            check(&name("wo"), l.wo.len(), h * q / QK)?;
            let biases = [l.bq.is_some(), l.bk.is_some(), l.bv.is_some()];
            if biases.iter().any(|&b| b) && !biases.iter().all(|&b| b) {
                return Err(Error::Format(name(
                    "has some but not all of the q/k/v biases",
                )));
            }
            check_opt(&name("bq"), &l.bq, q)?;
            check_opt(&name("bk"), &l.bk, kv)?;
            check_opt(&name("bv"), &l.bv, kv)?;
            let norms = (l.q_norm.is_some(), l.k_norm.is_some());
            match (c.arch, norms) {
                (Arch::Qwen3, (true, true)) | (Arch::Qwen2, (false, false)) => {}
                (Arch::Qwen3, _) => {
                    return Err(Error::Format(name(
                        "lacks q_norm/k_norm, required by qwen3",
                    )))
                }
                (Arch::Qwen2, _) => {
                    return Err(Error::Format(name(
                        "has q_norm/k_norm, which qwen2 has not",
                    )))
                }
            }
            check_opt(&name("q_norm"), &l.q_norm, c.head_dim)?;
            check_opt(&name("k_norm"), &l.k_norm, c.head_dim)?;
            check(&name("ffn_norm"), l.ffn_norm.len(), h)?;
            check(&name("w_gate"), l.w_gate.len(), f * h / QK)?;
            check(&name("w_up"), l.w_up.len(), f * h / QK)?;
            check(&name("w_down"), l.w_down.len(), h * f / QK)?;
        }
        Ok(())
    }

    /// The output head: `output` when untied, else the token embedding.
    pub fn output_head(&self) -> &[BlockQ8_0] {
        self.output.as_deref().unwrap_or(&self.token_embd)
    }
}
