//! [`Session`]: one sequence's forward pass, prefill in chunks and decode with a KV cache.
//!
//! A [`Session`] holds one sequence: its [`KvCache`], position and scratch buffers.
//! [`Session::prefill`] runs the prompt in chunks of [`SessionOptions::chunk`] tokens, which
//! bounds activation memory, and returns the logits of the last position
//! ([`Session::prefill_all`]: every position); [`Session::decode`] appends one token.
//!
//! Per layer (Qwen2 / Qwen3), on the weights [`Model`] packed:
//! ```text
//! x += Wo · attn(rope(q), rope(k), v)   where q|k|v = Wqkv · q8(rmsnorm(x)) (+ bias; Qwen3: per-head rmsnorm of q, k)
//! x += Wdown · q8(silu(gate) * up)      where gate|up = Wgu · q8(rmsnorm(x))
//! ```
//! then `logits = Whead · q8(rmsnorm(x))`. Each op runs through a [`Profiler`].
//!
//! `q8` is per block of 32 (`Q8_32`); an input that feeds a K-quant weight is quantized per block
//! of 256 (`Q8_256`) as well, into a second set of buffers that [`QuantizedActivations::require`]s
//! it. Which of the five inputs of each layer (attention input -> Wqkv, attention output -> Wo,
//! feed-forward input -> Wgu, silu output -> Wdown) and the final norm (-> head) need it is fixed
//! when the model is packed ([`super::packed::Linear::needs_k`]).

use crate::quant::ActFormat;
use crate::{
    add_assign, attention_parallel, rmsnorm, rmsnorm_quantize, silu_mul_quantize, KvCache, KvDtype,
    QuantizedActivations, Rope,
};
use crate::{Error, Result};

use super::parts::{matmul_parts, quantize_parts, PART_ROWS};
use super::profile::Profiler;
use super::{Model, Op, OpTimes, Work};

/// Options of a [`Session`].
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Positions the KV cache holds (prompt plus generated tokens); `None`: the model's context
    /// length, capped at 4096.
    pub capacity: Option<usize>,
    /// Storage type of the KV cache (default f16).
    pub kv_dtype: KvDtype,
    /// Tokens per prefill chunk (bounds activation memory, about 70 KB per token for
    /// Qwen2.5-0.5B; default 256).
    pub chunk: usize,
    /// Record per-op times ([`Session::times`]); off by default.
    pub profile: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            capacity: None,
            kv_dtype: KvDtype::F16,
            chunk: 256,
            profile: false,
        }
    }
}

/// Scratch buffers of a forward pass, sized for one chunk and reused.
#[derive(Default)]
struct Scratch {
    /// Residual stream, `t x hidden`.
    x: Vec<f32>,
    /// Fused q/k/v projection output, `t x (q_dim + 2 kv_dim)`.
    qkv: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Qwen3 q/k norm output.
    normed: Vec<f32>,
    /// Attention output, `t x q_dim`.
    attn: Vec<f32>,
    /// Projection output before the residual add, `t x hidden`.
    proj: Vec<f32>,
    /// Fused gate/up output, `t x 2 ffn`.
    gu: Vec<f32>,
    /// Final-norm rows handed to the head.
    logits: Vec<f32>,
    /// One part's output of a linear layer whose parts have different types.
    split: Vec<f32>,
}

pub(super) fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    &mut v[..len]
}

/// One sequence being processed: its KV cache, position and buffers.
pub struct Session<'m> {
    model: &'m Model,
    cache: KvCache,
    rope: Rope,
    pos: usize,
    chunk: usize,
    profile: bool,
    times: OpTimes,
    /// Quantized activations of the current chunk, [`PART_ROWS`] rows per part, in `Q8_32`.
    parts: Vec<QuantizedActivations>,
    /// The same in `Q8_32` and `Q8_256`, for inputs of K-quant weights; empty unless the model has
    /// some.
    parts_k: Vec<QuantizedActivations>,
    /// Whether any weight of the model is a K-quant.
    needs_k: bool,
    /// Whether a linear layer mixes K-quant and 32-value parts: then the `parts_k` rows are
    /// quantized in `Q8_32` too, else only in `Q8_256`.
    mixed_k: bool,
    s: Scratch,
}

/// Which positions of a chunk need logits.
#[derive(Clone, Copy, PartialEq)]
enum Want {
    None,
    Last,
    All,
}

impl<'m> Session<'m> {
    pub(super) fn new(model: &'m Model, o: SessionOptions) -> Result<Session<'m>> {
        let c = &model.config;
        let capacity = o.capacity.unwrap_or(c.max_positions.min(4096));
        if capacity == 0 || o.chunk == 0 {
            return Err(Error::ShapeMismatch(
                "session capacity and chunk must be non-zero".into(),
            ));
        }
        Ok(Session {
            model,
            cache: KvCache::with_kernels(
                model.kernels,
                c.n_layers,
                c.n_kv_head,
                c.head_dim,
                capacity,
                o.kv_dtype,
            )?,
            rope: Rope::new(c.head_dim, c.rope_theta, capacity)?,
            pos: 0,
            chunk: o.chunk,
            profile: o.profile,
            times: OpTimes::new(c.n_layers),
            parts: vec![QuantizedActivations::with_kernels(model.kernels)],
            parts_k: Vec::new(),
            needs_k: model.head.needs_k()
                || model.layers.iter().any(|l| {
                    [&l.wqkv, &l.wo, &l.wgu, &l.wdown]
                        .iter()
                        .any(|w| w.needs_k())
                }),
            mixed_k: model.layers.iter().any(|l| {
                [&l.wqkv, &l.wo, &l.wgu, &l.wdown]
                    .iter()
                    .any(|w| w.needs_k() && w.needs_32())
            }),
            s: Scratch::default(),
        })
    }

    /// Tokens processed so far (the next token's position).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Positions the KV cache holds.
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Starts a new sequence in the same buffers.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Per-op times recorded so far (all zero unless [`SessionOptions::profile`] is on).
    pub fn times(&self) -> &OpTimes {
        &self.times
    }

    /// Sets the recorded times to zero.
    pub fn clear_times(&mut self) {
        self.times.clear();
    }

    /// Runs `tokens` (appended to the sequence) and returns the logits of the last position
    /// (`vocab` values).
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.run(tokens, false)
    }

    /// Runs `tokens` and returns the logits of every position (`tokens.len() x vocab`, row-major).
    pub fn prefill_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.run(tokens, true)
    }

    /// Appends one token and returns its logits.
    pub fn decode(&mut self, token: u32) -> Result<Vec<f32>> {
        self.run(&[token], false)
    }

    fn run(&mut self, tokens: &[u32], all: bool) -> Result<Vec<f32>> {
        let c = &self.model.config;
        if tokens.is_empty() {
            return Err(Error::ShapeMismatch("no tokens to run".into()));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(Error::ShapeMismatch(format!(
                "token id {t} outside the vocabulary of {}",
                c.vocab
            )));
        }
        let end = self.pos.checked_add(tokens.len());
        if end.is_none_or(|e| e > self.cache.capacity()) {
            return Err(Error::ShapeMismatch(format!(
                "{} tokens at position {} exceed the KV cache capacity {}",
                tokens.len(),
                self.pos,
                self.cache.capacity()
            )));
        }
        let n_out = if all { tokens.len() } else { 1 };
        let mut logits = Vec::with_capacity(crate::error::mul(n_out, c.vocab, "logits size")?);
        let n_chunks = tokens.len().div_ceil(self.chunk);
        for (i, chunk) in tokens.chunks(self.chunk).enumerate() {
            let want = match (all, i + 1 == n_chunks) {
                (true, _) => Want::All,
                (false, true) => Want::Last,
                (false, false) => Want::None,
            };
            self.chunk_forward(chunk, want, &mut logits)?;
        }
        Ok(logits)
    }

    /// Runs one chunk at positions `pos..pos + t`, appending the wanted logits.
    fn chunk_forward(&mut self, tokens: &[u32], want: Want, logits: &mut Vec<f32>) -> Result<()> {
        let m = self.model;
        let c = &m.config;
        let kern = m.kernels;
        let pool = &m.pool;
        let (t, h, f) = (tokens.len(), c.hidden, c.ffn);
        let (qd, kvd) = (c.q_dim()?, c.kv_dim()?);
        let qkvd = qd + 2 * kvd;
        let (pos, eps) = (self.pos, c.rms_eps);
        let outside = c.n_layers;
        // Q K^T and P V over the causal window: 2 * 2 * head_dim operations per (head, row, key).
        let keys = (t * pos + t * (t + 1) / 2) as f64;
        let attn_work = Work {
            flops: 4.0 * (c.n_head * c.head_dim) as f64 * keys,
            bytes: 0.0,
        };
        let mut prof = Profiler::new(&mut self.times, self.profile, t);
        let n_parts = t.div_ceil(PART_ROWS);
        while self.parts.len() < n_parts {
            self.parts.push(QuantizedActivations::with_kernels(kern));
        }
        while self.needs_k && self.parts_k.len() < n_parts {
            let mut a = QuantizedActivations::with_kernels(kern);
            a.set_formats(if self.mixed_k {
                &[ActFormat::Q8_32, ActFormat::Q8_256]
            } else {
                &[ActFormat::Q8_256]
            })?;
            self.parts_k.push(a);
        }
        let n_k = if self.needs_k { n_parts } else { 0 };
        // The two sets of buffers, indexed by whether the weight that reads them is a K-quant.
        let sets = [&mut self.parts[..n_parts], &mut self.parts_k[..n_k]];
        let s = &mut self.s;
        let split = &mut s.split;

        let x = sized(&mut s.x, t * h);
        prof.op(outside, Op::Embed, Work::bytes(t * h * 4), || {
            tokens
                .iter()
                .zip(x.chunks_exact_mut(h))
                .try_for_each(|(&tok, row)| m.embed(tok, row))
        })?;

        for (li, l) in m.layers.iter().enumerate() {
            // Attention block.
            let parts = &mut *sets[usize::from(l.wqkv.needs_k())];
            prof.op(li, Op::NormQuant, Work::bytes(t * h * 5), || {
                quantize_parts(pool, parts, x, h, &|x, a| {
                    rmsnorm_quantize(x, &l.attn_norm, eps, a)
                })
            })?;
            let qkv = sized(&mut s.qkv, t * qkvd);
            prof.op(li, Op::MatmulQkv, Work::matmul(t, qkvd, h), || {
                matmul_parts(pool, &l.wqkv, parts, l.bqkv.as_deref(), qkv, split)
            })?;
            let q = sized(&mut s.q, t * qd);
            let k = sized(&mut s.k, t * kvd);
            let v = sized(&mut s.v, t * kvd);
            let normed = &mut s.normed;
            let rope = &self.rope;
            prof.op(
                li,
                Op::QkPrep,
                Work::bytes(t * qkvd * 8),
                || -> Result<()> {
                    for (r, row) in qkv.chunks_exact(qkvd).enumerate() {
                        q[r * qd..(r + 1) * qd].copy_from_slice(&row[..qd]);
                        k[r * kvd..(r + 1) * kvd].copy_from_slice(&row[qd..qd + kvd]);
                        v[r * kvd..(r + 1) * kvd].copy_from_slice(&row[qd + kvd..]);
                    }
                    if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
                        let nq = sized(normed, t * qd);
                        rmsnorm(kern, q, qn, eps, nq)?;
                        q.copy_from_slice(nq);
                        let nk = &mut nq[..t * kvd];
                        rmsnorm(kern, k, kn, eps, nk)?;
                        k.copy_from_slice(nk);
                    }
                    rope.apply(kern, q, c.n_head, pos, None)?;
                    rope.apply(kern, k, c.n_kv_head, pos, None)
                },
            )?;
            let cache = &mut self.cache;
            prof.op(li, Op::KvWrite, Work::bytes(t * kvd * 12), || {
                cache.write(li, pos, k, v)
            })?;
            let attn = sized(&mut s.attn, t * qd);
            prof.op(li, Op::Attention, attn_work, || {
                attention_parallel(pool, q, c.n_head, None, cache, li, pos, attn)
            })?;
            let parts = &mut *sets[usize::from(l.wo.needs_k())];
            prof.op(li, Op::Quantize, Work::bytes(t * qd * 5), || {
                quantize_parts(pool, parts, attn, qd, &|x, a| {
                    a.quantize(x, x.len() / qd, qd)
                })
            })?;
            let proj = sized(&mut s.proj, t * h);
            prof.op(li, Op::MatmulO, Work::matmul(t, h, qd), || {
                matmul_parts(pool, &l.wo, parts, None, proj, split)
            })?;
            prof.op(li, Op::Residual, Work::bytes(t * h * 12), || {
                add_assign(kern, x, proj)
            })?;

            // Feed-forward block.
            let parts = &mut *sets[usize::from(l.wgu.needs_k())];
            prof.op(li, Op::NormQuant, Work::bytes(t * h * 5), || {
                quantize_parts(pool, parts, x, h, &|x, a| {
                    rmsnorm_quantize(x, &l.ffn_norm, eps, a)
                })
            })?;
            let gu = sized(&mut s.gu, t * 2 * f);
            prof.op(li, Op::MatmulGateUp, Work::matmul(t, 2 * f, h), || {
                matmul_parts(pool, &l.wgu, parts, None, gu, split)
            })?;
            let gu: &[f32] = gu;
            let parts = &mut *sets[usize::from(l.wdown.needs_k())];
            prof.op(li, Op::SiluMul, Work::bytes(t * f * 9), || {
                quantize_parts(pool, parts, gu, 2 * f, &|g, a| silu_mul_quantize(g, f, a))
            })?;
            prof.op(li, Op::MatmulDown, Work::matmul(t, h, f), || {
                matmul_parts(pool, &l.wdown, parts, None, proj, split)
            })?;
            prof.op(li, Op::Residual, Work::bytes(t * h * 12), || {
                add_assign(kern, x, proj)
            })?;
        }
        self.pos += t;

        let rows = match want {
            Want::None => return Ok(()),
            Want::Last => &x[(t - 1) * h..],
            Want::All => &x[..],
        };
        let n_rows = rows.len() / h;
        prof.set_rows(n_rows);
        let parts = &mut *sets[usize::from(m.head.needs_k())];
        prof.op(outside, Op::NormQuant, Work::bytes(n_rows * h * 5), || {
            quantize_parts(pool, parts, rows, h, &|x, a| {
                rmsnorm_quantize(x, &m.output_norm, eps, a)
            })
        })?;
        let parts = &parts[..n_rows.div_ceil(PART_ROWS)];
        let out = sized(&mut s.logits, n_rows * c.vocab);
        prof.op(outside, Op::Head, Work::matmul(n_rows, c.vocab, h), || {
            m.head.matmul_parallel(pool, parts, None, out, &mut s.split)
        })?;
        logits.extend_from_slice(out);
        Ok(())
    }
}
