//! Per-op profiling of the forward pass: the op kinds ([`Op`]), the work an op call does
//! ([`Work`]), the recorded times and their report ([`OpTimes`]), and the [`Profiler`] through
//! which the forward pass runs each op (a signpost interval always, timing when profiling is on).

use std::time::{Duration, Instant};

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
    /// The output head.
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
    /// A `m x k` by `k x n` matmul: `2 m n k` operations.
    pub(super) fn matmul(m: usize, n: usize, k: usize) -> Work {
        Work {
            flops: 2.0 * m as f64 * n as f64 * k as f64,
            bytes: 0.0,
        }
    }

    /// A memory-bound op moving `b` bytes.
    pub(super) fn bytes(b: usize) -> Work {
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

/// Wall time and work per op kind and per layer, recorded when
/// [`SessionOptions::profile`](super::SessionOptions::profile) is on
/// (when off, the only cost is one branch per op). [`OpTimes::report`] prints it as a table.
#[derive(Clone, Debug, Default)]
pub struct OpTimes {
    /// `times[layer][op]`; the last entry collects work outside the layers (embedding, head).
    times: Vec<[Duration; Op::ALL.len()]>,
    /// The work behind each entry of `times`.
    work: Vec<[Work; Op::ALL.len()]>,
}

impl OpTimes {
    /// Zero times for `n_layers` layers plus the outside entry.
    pub(super) fn new(n_layers: usize) -> OpTimes {
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

/// Runs the ops of one chunk: each inside a signpost interval (feature `signposts`, Apple) named
/// by op, layer and shape, and timed into an [`OpTimes`] with its [`Work`] when profiling is on
/// (when off, timing costs one branch).
pub(super) struct Profiler<'a> {
    times: &'a mut OpTimes,
    on: bool,
    /// Positions the ops run over (`M=` of the signpost message).
    rows: usize,
}

impl<'a> Profiler<'a> {
    /// Records into `times` when `on`; ops run over `rows` positions until [`Profiler::set_rows`].
    pub(super) fn new(times: &'a mut OpTimes, on: bool, rows: usize) -> Profiler<'a> {
        Profiler { times, on, rows }
    }

    /// Sets the positions the following ops run over.
    pub(super) fn set_rows(&mut self, rows: usize) {
        self.rows = rows;
    }

    /// Runs `f` as `op` of `layer` (`layer == outside()`: outside the layers) doing `work`.
    #[inline]
    pub(super) fn op<R>(&mut self, layer: usize, op: Op, work: Work, f: impl FnOnce() -> R) -> R {
        let (n_layers, rows) = (self.times.n_layers(), self.rows);
        let _iv = crate::signpost::interval(op.signpost_name(), || {
            let at = if layer < n_layers {
                format!("L{layer}")
            } else {
                "out".into()
            };
            format!("{} {at} M={rows}", op.name())
        });
        if self.on {
            let t0 = Instant::now();
            let r = f();
            self.times.add(layer, op, t0.elapsed(), work);
            r
        } else {
            f()
        }
    }
}
