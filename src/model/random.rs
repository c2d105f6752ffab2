//! Seeded random weights with the shapes of any [`Config`], for benchmarks and tests that need no
//! file (`qkern bench` builds Qwen2.5-0.5B this way).
//!
//! Scales are chosen so that activations look like a trained model's and stay finite through any
//! depth: each linear weight has standard deviation `0.5 / sqrt(k)` (its output has about half the
//! RMS of its RMS-normalised input), the token embedding about 0.02, norms about 1, biases about 0.1.

use super::{Arch, Config, LayerWeights, ModelWeights, QuantTensor};
use crate::quant::{BlockQ4_0, BlockQ8_0, QK};
use half::f16;

/// SplitMix64: fast, seedable, good enough for filling weights.
struct Gen(u64);

impl Gen {
    fn new(seed: u64, stream: u64) -> Gen {
        let mut g = Gen(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        g.next();
        g
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` rows of `k` Q4_0 values with standard deviation about `std`: uniform nibbles (std of
    /// `q - 8` about 4.6), block scales spread by +-50% around `std / 4.6`.
    fn q4(&mut self, n: usize, k: usize, std: f32) -> QuantTensor {
        let d0 = std / 4.6;
        let blocks: Vec<BlockQ4_0> = (0..n * k / QK)
            .map(|_| {
                let mut qs = [0u8; 16];
                qs[..8].copy_from_slice(&self.next().to_le_bytes());
                qs[8..].copy_from_slice(&self.next().to_le_bytes());
                BlockQ4_0 {
                    d: f16::from_f32(d0 * (1.0 + 0.5 * self.unit())),
                    qs,
                }
            })
            .collect();
        blocks.into()
    }

    /// `n` rows of `k` Q8_0 values with standard deviation about `std` (uniform int8, std about 73).
    fn q8(&mut self, n: usize, k: usize, std: f32) -> QuantTensor {
        let d0 = std / 73.0;
        let blocks: Vec<BlockQ8_0> = (0..n * k / QK)
            .map(|_| {
                let mut qs = [0i8; 32];
                for c in qs.chunks_exact_mut(8) {
                    let bytes = self.next().to_le_bytes();
                    for (q, b) in c.iter_mut().zip(bytes) {
                        *q = (b as i8).max(-127);
                    }
                }
                BlockQ8_0 {
                    d: f16::from_f32(d0 * (1.0 + 0.5 * self.unit())),
                    qs,
                }
            })
            .collect();
        blocks.into()
    }

    /// `n` values `center + spread * uniform(-1, 1)`.
    fn f32s(&mut self, n: usize, center: f32, spread: f32) -> Vec<f32> {
        (0..n).map(|_| center + spread * self.unit()).collect()
    }
}

impl ModelWeights {
    /// Seeded random weights with the shapes of `config` (validated first); the same seed gives
    /// the same weights. Use [`Config::qwen25_0_5b`] for the exact Qwen2.5-0.5B shapes (about a
    /// second to build in a release build).
    pub fn random(config: &Config, seed: u64) -> crate::Result<ModelWeights> {
        config.validate()?;
        let c = config;
        let (h, q, kv, f) = (c.hidden, c.q_dim()?, c.kv_dim()?, c.ffn);
        let lin = |k: usize| 0.5 / (k as f32).sqrt();
        let layers = (0..c.n_layers)
            .map(|l| {
                let mut g = Gen::new(seed, 1 + l as u64);
                let qwen2 = c.arch == Arch::Qwen2;
                let qwen3 = c.arch == Arch::Qwen3;
                LayerWeights {
                    attn_norm: g.f32s(h, 1.0, 0.2),
                    wq: g.q4(q, h, lin(h)),
                    wk: g.q4(kv, h, lin(h)),
                    wv: g.q4(kv, h, lin(h)),
                    wo: g.q4(h, q, lin(q)),
                    bq: qwen2.then(|| g.f32s(q, 0.0, 0.1)),
                    bk: qwen2.then(|| g.f32s(kv, 0.0, 0.1)),
                    bv: qwen2.then(|| g.f32s(kv, 0.0, 0.1)),
                    q_norm: qwen3.then(|| g.f32s(c.head_dim, 1.0, 0.2)),
                    k_norm: qwen3.then(|| g.f32s(c.head_dim, 1.0, 0.2)),
                    ffn_norm: g.f32s(h, 1.0, 0.2),
                    w_gate: g.q4(f, h, lin(h)),
                    w_up: g.q4(f, h, lin(h)),
                    w_down: g.q4(h, f, lin(f)),
                }
            })
            .collect();
        let mut g = Gen::new(seed, 0);
        let weights = ModelWeights {
            config: c.clone(),
            token_embd: g.q8(c.vocab, h, 0.02),
            output: (!c.tied_embeddings).then(|| g.q8(c.vocab, h, 0.02)),
            output_norm: g.f32s(h, 1.0, 0.2),
            layers,
        };
        weights.validate()?;
        Ok(weights)
    }
}
