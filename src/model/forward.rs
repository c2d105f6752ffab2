//! The forward pass: prefill in chunks and decode with a KV cache, on packed weights.
//!
//! [`Model::new`] packs every weight once for one tier (linear weights as [`PackedQ4_0`], with
//! q/k/v fused into one matrix and gate/up into another, so each normalised row is quantized once
//! and read by one parallel matmul; the output head as [`PackedQ8_0`], a tied head doubling as the
//! embedding table) and drops the plain copies. A [`Session`] holds one sequence: its [`KvCache`],
//! position and scratch buffers. [`Session::prefill`] runs the prompt in chunks of
//! [`SessionOptions::chunk`] tokens, which bounds activation memory, and returns the logits of the
//! last position ([`Session::prefill_all`]: every position); [`Session::decode`] appends one token.
//!
//! Per layer (Qwen2 / Qwen3):
//! ```text
//! x += Wo · attn(rope(q), rope(k), v)   where q|k|v = Wqkv · q8(rmsnorm(x)) (+ bias; Qwen3: per-head rmsnorm of q, k)
//! x += Wdown · q8(silu(gate) * up)      where gate|up = Wgu · q8(rmsnorm(x))
//! ```
//! then `logits = Whead · q8(rmsnorm(x))`.

use crate::parallel::ThreadPool;
use crate::quant::{BlockQ4_0, BlockQ8_0};
use crate::{
    add_assign, attention_parallel, embedding_row, matmul_parallel, rmsnorm, rmsnorm_quantize,
    silu_mul_quantize, EmbeddingTable, Kernels, KvCache, KvDtype, PackedQ4_0, PackedQ8_0,
    QuantizedActivations, Rope,
};
use crate::{Error, Result, Tier};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Config, LayerWeights, ModelWeights};

/// One transformer block, packed.
struct Layer {
    attn_norm: Vec<f32>,
    /// Rows: `q_dim` of Wq, then `kv_dim` of Wk, then `kv_dim` of Wv.
    wqkv: PackedQ4_0,
    /// `[bq | bk | bv]` (Qwen2), added in the matmul epilogue.
    bqkv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: PackedQ4_0,
    ffn_norm: Vec<f32>,
    /// Rows: `ffn` of W_gate, then `ffn` of W_up.
    wgu: PackedQ4_0,
    wdown: PackedQ4_0,
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
    config: Config,
    kernels: &'static Kernels,
    pool: ThreadPool,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    head: PackedQ8_0,
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

    fn embed(&self, token: u32, out: &mut [f32]) -> Result<()> {
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

/// The kinds of work a forward pass does, for [`OpTimes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Token embedding lookup.
    Embed,
    /// RMSNorm fused with activation quantization (attention and FFN inputs, final norm).
    NormQuant,
    /// The fused q/k/v projection.
    MatmulQkv,
    /// Splitting q/k/v, Qwen3 q/k norms, RoPE.
    QkPrep,
    /// Writing k and v into the cache.
    KvWrite,
    /// Attention over the cache.
    Attention,
    /// Quantizing the attention output (the one activation no fused producer quantizes).
    Quantize,
    /// The attention output projection.
    MatmulO,
    /// Residual adds.
    Residual,
    /// The fused gate/up projection.
    MatmulGateUp,
    /// SiLU(gate) * up, fused with its quantization for the down projection.
    SiluMul,
    /// The down projection.
    MatmulDown,
    /// The output head (Q8_0).
    Head,
}

impl Op {
    /// Every op, in the order of a forward pass.
    pub const ALL: [Op; 13] = [
        Op::Embed,
        Op::NormQuant,
        Op::MatmulQkv,
        Op::QkPrep,
        Op::KvWrite,
        Op::Attention,
        Op::Quantize,
        Op::MatmulO,
        Op::Residual,
        Op::MatmulGateUp,
        Op::SiluMul,
        Op::MatmulDown,
        Op::Head,
    ];

    /// Name of the op's signpost interval (the op kind; the message carries layer and shape).
    fn signpost_name(self) -> crate::signpost::Name {
        use crate::signpost::{ATTENTION, ELEMENTWISE, MATMUL, QUANTIZE};
        match self {
            Op::MatmulQkv | Op::MatmulO | Op::MatmulGateUp | Op::MatmulDown | Op::Head => MATMUL,
            Op::Attention => ATTENTION,
            Op::NormQuant | Op::Quantize => QUANTIZE,
            _ => ELEMENTWISE,
        }
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Embed => "embed",
            Op::NormQuant => "rmsnorm+quantize",
            Op::MatmulQkv => "matmul qkv",
            Op::QkPrep => "q/k norm+rope",
            Op::KvWrite => "kv write",
            Op::Attention => "attention",
            Op::Quantize => "quantize",
            Op::MatmulO => "matmul o",
            Op::Residual => "residual add",
            Op::MatmulGateUp => "matmul gate+up",
            Op::SiluMul => "silu*up+quantize",
            Op::MatmulDown => "matmul down",
            Op::Head => "output head",
        }
    }
}

/// The work one op call does: floating-point / integer multiply-adds counted as 2 operations
/// each (matmul, attention), or bytes read and written (memory-bound ops). With its time it gives
/// the achieved GFLOP/s or GB/s of [`OpTimes::report`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Operations (2 per multiply-add).
    pub flops: f64,
    /// Bytes read plus written.
    pub bytes: f64,
}

impl Work {
    fn matmul(m: usize, n: usize, k: usize) -> Work {
        Work {
            flops: 2.0 * m as f64 * n as f64 * k as f64,
            bytes: 0.0,
        }
    }

    fn bytes(b: usize) -> Work {
        Work {
            flops: 0.0,
            bytes: b as f64,
        }
    }
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, o: Work) {
        self.flops += o.flops;
        self.bytes += o.bytes;
    }
}

/// Wall time and work per op kind and per layer, recorded when [`SessionOptions::profile`] is on
/// (when off, the only cost is one branch per op). [`OpTimes::report`] prints it as a table.
#[derive(Clone, Debug, Default)]
pub struct OpTimes {
    /// `times[layer][op]`; the last entry collects work outside the layers (embedding, head).
    times: Vec<[Duration; Op::ALL.len()]>,
    /// The work behind each entry of `times`.
    work: Vec<[Work; Op::ALL.len()]>,
}

impl OpTimes {
    fn new(n_layers: usize) -> OpTimes {
        OpTimes {
            times: vec![[Duration::ZERO; Op::ALL.len()]; n_layers + 1],
            work: vec![[Work::default(); Op::ALL.len()]; n_layers + 1],
        }
    }

    fn add(&mut self, layer: usize, op: Op, d: Duration, w: Work) {
        self.times[layer][op as usize] += d;
        self.work[layer][op as usize] += w;
    }

    /// Total work of `op` over all layers.
    pub fn op_work(&self, op: Op) -> Work {
        let mut w = Work::default();
        for l in &self.work {
            w += l[op as usize];
        }
        w
    }

    /// Total work of `layer` (`layer == n_layers`: outside the layers).
    pub fn layer_work(&self, layer: usize) -> Work {
        let mut w = Work::default();
        for &x in self.work.get(layer).into_iter().flatten() {
            w += x;
        }
        w
    }

    /// A table of time, share and achieved rate per op kind, then per layer: GFLOP/s for ops that
    /// multiply (matmuls, attention), GB/s for memory-bound ones.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let total = self.total().as_secs_f64().max(1e-12);
        let rate = |t: f64, w: Work| {
            if t <= 0.0 {
                String::new()
            } else if w.flops > 0.0 {
                format!("{:>8.1} GFLOP/s", w.flops / t * 1e-9)
            } else if w.bytes > 0.0 {
                format!("{:>8.1} GB/s", w.bytes / t * 1e-9)
            } else {
                String::new()
            }
        };
        let mut out = String::new();
        let _ = writeln!(out, "  {:<18} {:>10} {:>7}  rate", "op", "time", "share");
        for op in Op::ALL {
            let t = self.op(op).as_secs_f64();
            if t > 0.0 {
                let _ = writeln!(
                    out,
                    "  {:<18} {:>7.2} ms {:>6.1}%  {}",
                    op.name(),
                    t * 1e3,
                    100.0 * t / total,
                    rate(t, self.op_work(op))
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<18} {:>10} {:>7}  rate (matmul + attention)",
            "layer", "time", "share"
        );
        for layer in 0..=self.n_layers() {
            let t = self.layer(layer).as_secs_f64();
            if t > 0.0 {
                let name = if layer == self.n_layers() {
                    "outside layers".to_string()
                } else {
                    format!("L{layer}")
                };
                let _ = writeln!(
                    out,
                    "  {:<18} {:>7.2} ms {:>6.1}%  {}",
                    name,
                    t * 1e3,
                    100.0 * t / total,
                    rate(t, self.layer_work(layer))
                );
            }
        }
        out
    }

    /// Total time of `op` over all layers.
    pub fn op(&self, op: Op) -> Duration {
        self.times.iter().map(|t| t[op as usize]).sum()
    }

    /// Time of `op` in `layer` (`layer == n_layers`: outside the layers).
    pub fn layer_op(&self, layer: usize, op: Op) -> Duration {
        self.times
            .get(layer)
            .map_or(Duration::ZERO, |t| t[op as usize])
    }

    /// Total time of `layer` (`layer == n_layers`: outside the layers).
    pub fn layer(&self, layer: usize) -> Duration {
        self.times
            .get(layer)
            .map_or(Duration::ZERO, |t| t.iter().sum())
    }

    /// Number of layers recorded (not counting the outside entry).
    pub fn n_layers(&self) -> usize {
        self.times.len().saturating_sub(1)
    }

    /// Total recorded time.
    pub fn total(&self) -> Duration {
        self.times.iter().flat_map(|t| t.iter()).sum()
    }

    /// Sets every time and work count to zero.
    pub fn clear(&mut self) {
        for t in &mut self.times {
            *t = [Duration::ZERO; Op::ALL.len()];
        }
        for w in &mut self.work {
            *w = [Work::default(); Op::ALL.len()];
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
}

fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
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
    /// Quantized activations of the current chunk, [`PART_ROWS`] rows per part.
    parts: Vec<QuantizedActivations>,
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
    fn new(model: &'m Model, o: SessionOptions) -> Result<Session<'m>> {
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

    /// Runs `f` as `op` of `layer` over `rows` positions: inside a signpost interval (feature
    /// `signposts`, Apple) named by op, layer and shape, and timed with its `work` when profiling.
    #[inline]
    fn timed<R>(
        times: &mut OpTimes,
        on: bool,
        (layer, rows): (usize, usize),
        (op, work): (Op, Work),
        f: impl FnOnce() -> R,
    ) -> R {
        let n_layers = times.n_layers();
        let _iv = crate::signpost::interval(op.signpost_name(), || {
            let at = if layer < n_layers {
                format!("L{layer}")
            } else {
                "out".into()
            };
            format!("{} {at} M={rows}", op.name())
        });
        if on {
            let t0 = Instant::now();
            let r = f();
            times.add(layer, op, t0.elapsed(), work);
            r
        } else {
            f()
        }
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
        let (pos, on, eps) = (self.pos, self.profile, c.rms_eps);
        let outside = c.n_layers;
        // Q K^T and P V over the causal window: 2 * 2 * head_dim operations per (head, row, key).
        let keys = (t * pos + t * (t + 1) / 2) as f64;
        let attn_work = Work {
            flops: 4.0 * (c.n_head * c.head_dim) as f64 * keys,
            bytes: 0.0,
        };
        let times = &mut self.times;
        while self.parts.len() < t.div_ceil(PART_ROWS) {
            self.parts.push(QuantizedActivations::with_kernels(kern));
        }
        let parts = &mut self.parts[..t.div_ceil(PART_ROWS)];
        let s = &mut self.s;

        let x = sized(&mut s.x, t * h);
        Self::timed(
            times,
            on,
            (outside, t),
            (Op::Embed, Work::bytes(t * h * 4)),
            || {
                tokens
                    .iter()
                    .zip(x.chunks_exact_mut(h))
                    .try_for_each(|(&tok, row)| m.embed(tok, row))
            },
        )?;

        for (li, l) in m.layers.iter().enumerate() {
            // Attention block.
            Self::timed(
                times,
                on,
                (li, t),
                (Op::NormQuant, Work::bytes(t * h * 5)),
                || {
                    quantize_parts(pool, parts, x, h, &|x, a| {
                        rmsnorm_quantize(x, &l.attn_norm, eps, a)
                    })
                },
            )?;
            let qkv = sized(&mut s.qkv, t * qkvd);
            Self::timed(
                times,
                on,
                (li, t),
                (Op::MatmulQkv, Work::matmul(t, qkvd, h)),
                || matmul_parts(pool, &l.wqkv, parts, l.bqkv.as_deref(), qkv),
            )?;
            let q = sized(&mut s.q, t * qd);
            let k = sized(&mut s.k, t * kvd);
            let v = sized(&mut s.v, t * kvd);
            let normed = &mut s.normed;
            let rope = &self.rope;
            Self::timed(
                times,
                on,
                (li, t),
                (Op::QkPrep, Work::bytes(t * qkvd * 8)),
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
            Self::timed(
                times,
                on,
                (li, t),
                (Op::KvWrite, Work::bytes(t * kvd * 12)),
                || cache.write(li, pos, k, v),
            )?;
            let attn = sized(&mut s.attn, t * qd);
            Self::timed(times, on, (li, t), (Op::Attention, attn_work), || {
                attention_parallel(pool, q, c.n_head, None, cache, li, pos, attn)
            })?;
            Self::timed(
                times,
                on,
                (li, t),
                (Op::Quantize, Work::bytes(t * qd * 5)),
                || {
                    quantize_parts(pool, parts, attn, qd, &|x, a| {
                        a.quantize(x, x.len() / qd, qd)
                    })
                },
            )?;
            let proj = sized(&mut s.proj, t * h);
            Self::timed(
                times,
                on,
                (li, t),
                (Op::MatmulO, Work::matmul(t, h, qd)),
                || matmul_parts(pool, &l.wo, parts, None, proj),
            )?;
            Self::timed(
                times,
                on,
                (li, t),
                (Op::Residual, Work::bytes(t * h * 12)),
                || add_assign(kern, x, proj),
            )?;

            // Feed-forward block.
            Self::timed(
                times,
                on,
                (li, t),
                (Op::NormQuant, Work::bytes(t * h * 5)),
                || {
                    quantize_parts(pool, parts, x, h, &|x, a| {
                        rmsnorm_quantize(x, &l.ffn_norm, eps, a)
                    })
                },
            )?;
            let gu = sized(&mut s.gu, t * 2 * f);
            Self::timed(
                times,
                on,
                (li, t),
                (Op::MatmulGateUp, Work::matmul(t, 2 * f, h)),
                || matmul_parts(pool, &l.wgu, parts, None, gu),
            )?;
            let gu: &[f32] = gu;
            Self::timed(
                times,
                on,
                (li, t),
                (Op::SiluMul, Work::bytes(t * f * 9)),
                || quantize_parts(pool, parts, gu, 2 * f, &|g, a| silu_mul_quantize(g, f, a)),
            )?;
            Self::timed(
                times,
                on,
                (li, t),
                (Op::MatmulDown, Work::matmul(t, h, f)),
                || matmul_parts(pool, &l.wdown, parts, None, proj),
            )?;
            Self::timed(
                times,
                on,
                (li, t),
                (Op::Residual, Work::bytes(t * h * 12)),
                || add_assign(kern, x, proj),
            )?;
        }
        self.pos += t;

        let rows = match want {
            Want::None => return Ok(()),
            Want::Last => &x[(t - 1) * h..],
            Want::All => &x[..],
        };
        let n_rows = rows.len() / h;
        Self::timed(
            times,
            on,
            (outside, n_rows),
            (Op::NormQuant, Work::bytes(n_rows * h * 5)),
            || {
                quantize_parts(pool, parts, rows, h, &|x, a| {
                    rmsnorm_quantize(x, &m.output_norm, eps, a)
                })
            },
        )?;
        let parts = &parts[..n_rows.div_ceil(PART_ROWS)];
        let out = sized(&mut s.logits, n_rows * c.vocab);
        Self::timed(
            times,
            on,
            (outside, n_rows),
            (Op::Head, Work::matmul(n_rows, c.vocab, h)),
            || {
                let mut rest = &mut out[..];
                for a in parts {
                    let (head, tail) = rest.split_at_mut(a.m() * c.vocab);
                    matmul_parallel(pool, &m.head, a, None, head)?;
                    rest = tail;
                }
                Ok::<(), Error>(())
            },
        )?;
        logits.extend_from_slice(out);
        Ok(())
    }
}

/// Rows per part of a chunk's quantized activations. Parts are quantized in parallel (the
/// quantizers are serial per call), then each feeds its own parallel matmul call, which streams
/// the weights once; 128 is a multiple of every kernel's row tile, so the split changes no result.
const PART_ROWS: usize = 128;

/// Quantizes the rows of `x` (`k` values each) into `parts` (the first `rows.div_ceil(PART_ROWS)`
/// of them are used; there must be that many) with `quantize(rows, part)`, parts in parallel.
fn quantize_parts(
    pool: &ThreadPool,
    parts: &mut [QuantizedActivations],
    x: &[f32],
    k: usize,
    quantize: &(dyn Fn(&[f32], &mut QuantizedActivations) -> Result<()> + Sync),
) -> Result<()> {
    let chunks: Vec<&[f32]> = x.chunks(PART_ROWS * k).collect();
    if chunks.len() > parts.len() {
        return Err(Error::ShapeMismatch("too few activation parts".into()));
    }
    if chunks.len() == 1 {
        return quantize(chunks[0], &mut parts[0]);
    }
    let slots: Vec<Mutex<&mut QuantizedActivations>> = parts.iter_mut().map(Mutex::new).collect();
    let err: Mutex<Option<Error>> = Mutex::new(None);
    pool.run(chunks.len(), &|i| {
        let mut part = slots[i].lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = quantize(chunks[i], &mut part) {
            *err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
    });
    match err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `out = parts * w^T (+ bias)`: one parallel matmul per part, into consecutive rows of `out`.
fn matmul_parts(
    pool: &ThreadPool,
    w: &PackedQ4_0,
    parts: &[QuantizedActivations],
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    let mut rest = out;
    for a in parts {
        let len = crate::error::mul(a.m(), w.n(), "output size")?;
        if len > rest.len() {
            return Err(Error::ShapeMismatch("matmul output too short".into()));
        }
        let (head, tail) = rest.split_at_mut(len);
        matmul_parallel(pool, w, a, bias, head)?;
        rest = tail;
    }
    Ok(())
}
