//! Model hyper-parameters, as read from a GGUF file or a Hugging Face `config.json`.

use crate::error::mul;
use crate::{Error, Result};

/// The model family, which decides the attention details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Qwen2 / Qwen2.5: q/k/v projections with bias, no q/k norms.
    Qwen2,
    /// Qwen3 dense: per-head RMS norms on q and k before RoPE, no bias, `head_dim` from the file.
    Qwen3,
}

impl Arch {
    /// The architecture name used by GGUF (`general.architecture`) and by `config.json`
    /// (`model_type`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
}

/// Shapes and constants of a Qwen model.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Model family.
    pub arch: Arch,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Embedding width (`embedding_length` / `hidden_size`).
    pub hidden: usize,
    /// Number of query heads.
    pub n_head: usize,
    /// Number of key/value heads (grouped-query attention: divides `n_head`).
    pub n_kv_head: usize,
    /// Width of one head. Qwen2: `hidden / n_head`; Qwen3: `key_length` / `head_dim` from the file.
    pub head_dim: usize,
    /// Feed-forward (intermediate) size.
    pub ffn: usize,
    /// Vocabulary size (rows of the token embedding and of the output head).
    pub vocab: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Epsilon of every RMS norm.
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub max_positions: usize,
    /// The output head is the token embedding (no separate `output.weight` / `lm_head.weight`).
    pub tied_embeddings: bool,
}

impl Config {
    /// The exact shapes of Qwen2.5-0.5B (tied embeddings).
    pub fn qwen25_0_5b() -> Config {
        Config {
            arch: Arch::Qwen2,
            n_layers: 24,
            hidden: 896,
            n_head: 14,
            n_kv_head: 2,
            head_dim: 64,
            ffn: 4864,
            vocab: 151936,
            rope_theta: 1_000_000.0,
            rms_eps: 1e-6,
            max_positions: 32768,
            tied_embeddings: true,
        }
    }

    /// Width of all query heads together (`n_head * head_dim`), checked.
    pub fn q_dim(&self) -> Result<usize> {
        mul(self.n_head, self.head_dim, "n_head * head_dim")
    }

    /// Width of all key (or value) heads together (`n_kv_head * head_dim`), checked.
    pub fn kv_dim(&self) -> Result<usize> {
        mul(self.n_kv_head, self.head_dim, "n_kv_head * head_dim")
    }

    /// Checks that the shapes are usable: every count non-zero, `n_kv_head` divides `n_head`,
    /// `head_dim` even (NEOX RoPE rotates pairs), every quantized row length (`hidden`,
    /// `n_head * head_dim`, `ffn`) a multiple of 32, finite positive `rope_theta` and `rms_eps`,
    /// and no weight size overflowing `usize`.
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(Error::Format(format!("config: {s}")));
        for (name, v) in [
            ("n_layers", self.n_layers),
            ("hidden", self.hidden),
            ("n_head", self.n_head),
            ("n_kv_head", self.n_kv_head),
            ("head_dim", self.head_dim),
            ("ffn", self.ffn),
            ("vocab", self.vocab),
            ("max_positions", self.max_positions),
        ] {
            if v == 0 {
                return bad(format!("{name} is 0"));
            }
        }
        if !self.n_head.is_multiple_of(self.n_kv_head) {
            return bad(format!(
                "n_head = {} is not a multiple of n_kv_head = {}",
                self.n_head, self.n_kv_head
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!("head_dim = {} is odd", self.head_dim));
        }
        let q_dim = self.q_dim()?;
        let kv_dim = self.kv_dim()?;
        for (name, v) in [
            ("hidden", self.hidden),
            ("n_head * head_dim", q_dim),
            ("ffn", self.ffn),
        ] {
            if v % crate::quant::QK != 0 {
                return bad(format!("{name} = {v} is not a multiple of 32"));
            }
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad(format!(
                "rope_theta = {} is not a positive number",
                self.rope_theta
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return bad(format!(
                "rms_eps = {} is not a positive number",
                self.rms_eps
            ));
        }
        // Every element count the weights need, so later code can multiply freely.
        mul(self.vocab, self.hidden, "vocab * hidden")?;
        let per_layer = [
            mul(q_dim, self.hidden, "q weight size")?,
            mul(kv_dim, self.hidden, "k weight size")?,
            mul(kv_dim, self.hidden, "v weight size")?,
            mul(self.hidden, q_dim, "o weight size")?,
            mul(self.ffn, self.hidden, "ffn weight size")?,
            mul(self.ffn, self.hidden, "ffn weight size")?,
            mul(self.hidden, self.ffn, "ffn weight size")?,
        ];
        let layer = per_layer
            .iter()
            .try_fold(0usize, |a, &b| a.checked_add(b))
            .ok_or(Error::Overflow("layer weight size"))?;
        mul(layer, self.n_layers, "total weight size")?;
        mul(self.max_positions, kv_dim, "KV cache size")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen25_0_5b_is_valid() {
        Config::qwen25_0_5b().validate().unwrap();
    }

    #[test]
    fn validate_rejects_bad_shapes() {
        let ok = Config::qwen25_0_5b();
        type Edit = fn(&mut Config);
        let cases: [(&str, Edit); 6] = [
            ("n_kv_head", |c| c.n_kv_head = 3),
            ("odd", |c| c.head_dim = 63),
            ("hidden", |c| c.hidden = 900),
            ("ffn", |c| c.ffn = 4865),
            ("rope_theta", |c| c.rope_theta = f64::NAN),
            ("n_layers", |c| c.n_layers = 0),
        ];
        for (what, f) in cases {
            let mut c = ok.clone();
            f(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
        }
        let mut c = ok.clone();
        c.vocab = usize::MAX / 2;
        assert!(matches!(c.validate(), Err(Error::Overflow(_))));
    }
}
