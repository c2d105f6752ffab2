//! Forward-pass properties on small random models (no files needed): chunked prefill equals
//! one-shot prefill, prefill + decode equals a longer prefill, all-position logits agree with
//! last-position logits, every tier agrees, bad input is an error.
//!
//! Chunking and decode change only how rows are grouped, never what is computed per row, but the
//! kernels may pick different code paths (tiles, the attention split of a decode step) for
//! different row counts, so the float summation order can differ. Comparisons therefore allow a
//! relative error of 1e-4 of the logits' largest magnitude (observed differences are at the 1e-6
//! level), and tiers (whose kernels may sum in different orders) 2e-3 (0.06 for the aarch64 fp16
//! attention path, as in tests/model_golden.rs), both small next to the
//! spread of the logits (order 1), which a real bug (a wrong row, position or head) disturbs fully.

use qkern::model::{Arch, Config, Model, ModelWeights, SessionOptions};
use qkern::{Error, Tier};

fn tiny(arch: Arch, tied: bool) -> Config {
    Config {
        arch,
        n_layers: 2,
        hidden: 64,
        n_head: 4,
        n_kv_head: 2,
        head_dim: if arch == Arch::Qwen3 { 32 } else { 16 },
        ffn: 96,
        vocab: 300,
        rope_theta: 10000.0,
        rms_eps: 1e-6,
        max_positions: 512,
        tied_embeddings: tied,
    }
}

fn configs() -> Vec<Config> {
    vec![
        tiny(Arch::Qwen2, true),
        tiny(Arch::Qwen2, false),
        tiny(Arch::Qwen3, false),
        tiny(Arch::Qwen3, true),
    ]
}

fn tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

#[track_caller]
fn assert_close(a: &[f32], b: &[f32], rel: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite logits");
    let scale = max_abs(a).max(max_abs(b));
    let err = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err <= rel * scale,
        "{what}: max difference {err} > {rel} x {scale}"
    );
}

fn model(c: &Config, tier: Tier, threads: usize) -> Model {
    Model::new(ModelWeights::random(c, 7).unwrap(), tier, threads).unwrap()
}

#[test]
fn chunked_prefill_equals_one_shot() {
    for c in configs() {
        let m = model(&c, Tier::active(), 2);
        let toks = tokens(140, c.vocab);
        let one = m
            .session(SessionOptions {
                chunk: 1000,
                ..Default::default()
            })
            .unwrap()
            .prefill(&toks)
            .unwrap();
        assert_eq!(one.len(), c.vocab);
        for chunk in [1, 7, 64, 149] {
            let mut s = m
                .session(SessionOptions {
                    chunk,
                    ..Default::default()
                })
                .unwrap();
            let got = s.prefill(&toks).unwrap();
            assert_eq!(s.pos(), toks.len());
            assert_close(&got, &one, 1e-4, &format!("{:?} chunk {chunk}", c.arch));
        }
    }
}

#[test]
fn decode_continues_prefill() {
    for c in configs() {
        let m = model(&c, Tier::active(), 2);
        // 140 tokens: more than one 128-row activation part.
        let toks = tokens(140, c.vocab);
        let full = m
            .session(Default::default())
            .unwrap()
            .prefill_all(&toks)
            .unwrap();
        assert_eq!(full.len(), toks.len() * c.vocab);
        // Split prefill then decode steps give the rows of the one-shot all-position logits.
        let mut s = m.session(Default::default()).unwrap();
        let first = s.prefill(&toks[..30]).unwrap();
        assert_close(&first, &full[29 * c.vocab..30 * c.vocab], 1e-4, "prefill");
        let more = s.prefill(&toks[30..135]).unwrap();
        assert_close(
            &more,
            &full[134 * c.vocab..135 * c.vocab],
            1e-4,
            "second prefill",
        );
        for (i, &t) in toks.iter().enumerate().skip(135) {
            let got = s.decode(t).unwrap();
            assert_close(
                &got,
                &full[i * c.vocab..(i + 1) * c.vocab],
                1e-4,
                &format!("decode at {i}"),
            );
        }
        // reset starts over.
        s.reset();
        assert_close(&s.prefill(&toks[..30]).unwrap(), &first, 0.0, "reset");
    }
}

#[test]
fn thread_counts_agree() {
    let c = tiny(Arch::Qwen2, true);
    let toks = tokens(50, c.vocab);
    let want = model(&c, Tier::active(), 1)
        .session(Default::default())
        .unwrap()
        .prefill(&toks)
        .unwrap();
    for threads in [2, 3] {
        let got = model(&c, Tier::active(), threads)
            .session(Default::default())
            .unwrap()
            .prefill(&toks)
            .unwrap();
        assert_close(&got, &want, 1e-4, &format!("{threads} threads"));
    }
}

#[test]
fn every_tier_agrees() {
    for c in configs() {
        let toks = tokens(33, c.vocab);
        let want = model(&c, Tier::Scalar, 2)
            .session(Default::default())
            .unwrap()
            .prefill_all(&toks)
            .unwrap();
        for tier in Tier::available() {
            let m = model(&c, tier, 2);
            let mut s = m.session(Default::default()).unwrap();
            let got = s.prefill_all(&toks).unwrap();
            // The aarch64 fp16 and x86 bf16 attention paths round Q, K, V and the weights to
            // 16 bits, which moves int8 activation roundings (see tests/model_golden.rs,
            // TOL_KV_F16).
            let name = qkern::Kernels::for_tier(tier).unwrap().attention_name();
            let fp16 = name.contains("fp16") || name.contains("bf16");
            let tol = if fp16 { 0.06 } else { 2e-3 };
            assert_close(&got, &want, tol, &format!("{:?} tier {tier}", c.arch));
            let d = s.decode(5).unwrap();
            assert!(d.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let c = tiny(Arch::Qwen2, true);
    let m = model(&c, Tier::active(), 2);
    let mut s = m
        .session(SessionOptions {
            capacity: Some(10),
            ..Default::default()
        })
        .unwrap();
    assert!(matches!(s.prefill(&[]), Err(Error::ShapeMismatch(_))));
    assert!(s.prefill(&[1, 300]).is_err(), "token id out of range");
    assert!(s.decode(u32::MAX).is_err(), "token id out of range");
    assert_eq!(s.pos(), 0, "a rejected call leaves the sequence as it was");
    assert!(s.prefill(&tokens(11, c.vocab)).is_err(), "over capacity");
    s.prefill(&tokens(10, c.vocab)).unwrap();
    assert!(s.decode(1).is_err(), "cache full");
    assert!(m
        .session(SessionOptions {
            chunk: 0,
            ..Default::default()
        })
        .is_err());
    // Weights that do not match their config are rejected, not packed.
    let mut w = ModelWeights::random(&c, 1).unwrap();
    w.layers[1].wq.pop();
    assert!(Model::new(w, Tier::active(), 1).is_err());
    let mut bad = c.clone();
    bad.hidden = 48;
    assert!(ModelWeights::random(&bad, 1).is_err());
}

#[test]
fn random_weights_are_seeded_and_finite_at_full_depth() {
    // Qwen2.5-0.5B's depth and head layout at a quarter of the width (a debug build packs the
    // full model too slowly for a test; the weight scales depend only on each row length).
    let small = Config {
        hidden: 224,
        head_dim: 16,
        ffn: 1216,
        vocab: 1024,
        ..Config::qwen25_0_5b()
    };
    let a = ModelWeights::random(&small, 3).unwrap();
    let b = ModelWeights::random(&small, 3).unwrap();
    assert_eq!(a.layers[5].wq, b.layers[5].wq);
    assert_ne!(
        a.layers[5].wq,
        ModelWeights::random(&small, 4).unwrap().layers[5].wq
    );
    let m = Model::new(a, Tier::active(), 2).unwrap();
    let logits = m
        .session(Default::default())
        .unwrap()
        .prefill(&tokens(20, small.vocab))
        .unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
    let spread = max_abs(&logits);
    assert!(spread > 0.1 && spread < 100.0, "logit spread {spread}");
}

/// `profile: true` records time and work per op and layer; the work follows from the shapes
/// (2 operations per multiply-add), so the achieved rates of `OpTimes::report` are meaningful.
#[test]
fn profile_records_time_and_work() {
    use qkern::model::Op;
    let c = tiny(Arch::Qwen2, true);
    let m = model(&c, Tier::active(), 2);
    let mut s = m
        .session(SessionOptions {
            profile: true,
            ..SessionOptions::default()
        })
        .unwrap();
    let t = 5;
    s.prefill(&tokens(t, c.vocab)).unwrap();
    let times = s.times();
    let qkv = c.n_head * c.head_dim + 2 * c.n_kv_head * c.head_dim;
    let want = 2.0 * (t * qkv * c.hidden * c.n_layers) as f64;
    assert_eq!(times.op_work(Op::MatmulQkv).flops, want);
    let head = 2.0 * (c.vocab * c.hidden) as f64; // last position only
    assert_eq!(times.op_work(Op::Head).flops, head);
    assert!(times.op(Op::MatmulGateUp) > std::time::Duration::ZERO);
    let report = times.report();
    for op in Op::ALL {
        assert!(report.contains(op.name()), "{report}");
    }
    assert!(
        report.contains("GFLOP/s") && report.contains("L0"),
        "{report}"
    );
    // Without profiling nothing is recorded.
    let mut quiet = m.session(SessionOptions::default()).unwrap();
    quiet.prefill(&tokens(t, c.vocab)).unwrap();
    assert_eq!(quiet.times().total(), std::time::Duration::ZERO);
}
