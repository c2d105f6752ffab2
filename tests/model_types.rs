//! Models whose weights mix block formats: a layer with parts of different types (q/k/v or
//! gate/up split instead of fused), linear weights all Q8_0, a Q4_0 head and embedding.
//!
//! Every variant is the same model: a Q4_0 block converts to Q8_0 exactly (same scale, `q - 8`
//! stored), so each variant computes the same products and only the kernels' float summation
//! order may differ. At the `Scalar` tier, whose Q4_0 and Q8_0 kernels sum in the same order,
//! logits must agree within 1e-4 of their largest magnitude (as in tests/model.rs), far below
//! what a wrong column offset, part order or bias slice would cause (the mixing logic is the same
//! at every tier). At the process tier, whose Q4_0 and Q8_0 kernels may be different routines
//! (aarch64), a last-bit difference can flip int8 activation roundings, which move logits by up
//! to about 1% in these tiny models (measured 0.9% under qemu): 2% is allowed there.

use qkern::model::{Arch, Config, Model, ModelWeights, QuantTensor, QuantType, SessionOptions};
use qkern::quant::{quantize_q4_0, BlockQ4_0, BlockQ8_0};
use qkern::Tier;

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

#[track_caller]
fn assert_close(a: &[f32], b: &[f32], rel: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite logits");
    let max_abs = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
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

/// The exact Q8_0 form of a Q4_0 tensor.
fn to_q8(t: &QuantTensor) -> QuantTensor {
    let b = t.blocks::<BlockQ4_0>().expect("a Q4_0 tensor");
    b.iter()
        .map(|b| BlockQ8_0 {
            d: b.d,
            qs: b.values(),
        })
        .collect::<Vec<_>>()
        .into()
}

/// `t` dequantized and quantized to Q4_0.
fn requant(t: &QuantTensor) -> QuantTensor {
    let x = t.dequantize().unwrap();
    let mut b = vec![BlockQ4_0::default(); x.len() / 32];
    quantize_q4_0(&x, &mut b).unwrap();
    QuantTensor::from(b)
}

/// `assert_close` of two variants' logits at the `Scalar` tier (1e-4) and at the process tier (2%).
#[track_caller]
fn assert_same(a: &ModelWeights, b: &ModelWeights, what: &str) {
    assert_close(
        &run_at(a.clone(), Tier::Scalar),
        &run_at(b.clone(), Tier::Scalar),
        1e-4,
        what,
    );
    let t = Tier::active();
    assert_close(
        &run_at(a.clone(), t),
        &run_at(b.clone(), t),
        0.02,
        &format!("{what} ({t})"),
    );
}

/// Logits of every position of a 140-token prompt (two activation parts of 128 rows), plus two
/// decode steps.
fn run_at(w: ModelWeights, tier: Tier) -> Vec<f32> {
    let c = w.config.clone();
    let m = Model::new(w, tier, 2).unwrap();
    let mut s = m.session(SessionOptions::default()).unwrap();
    let mut out = s.prefill_all(&tokens(140, c.vocab)).unwrap();
    out.extend(s.decode(5).unwrap());
    out.extend(s.decode(17).unwrap());
    out
}

#[test]
fn mixed_types_within_a_layer_give_the_same_logits() {
    for c in configs() {
        let base = ModelWeights::random(&c, 7).unwrap();

        // Layer 0: q and up in Q8_0 (q/k/v and gate/up split), down Q8_0; layer 1: v and gate.
        let mut mixed = base.clone();
        let l = &mut mixed.layers[0];
        l.wq = to_q8(&l.wq);
        l.w_up = to_q8(&l.w_up);
        l.w_down = to_q8(&l.w_down);
        let l = &mut mixed.layers[1];
        l.wv = to_q8(&l.wv);
        l.w_gate = to_q8(&l.w_gate);
        assert_eq!(
            mixed.linear_types(),
            [(QuantType::Q4_0, 9), (QuantType::Q8_0, 5)]
        );
        let m = Model::new(mixed.clone(), Tier::active(), 1).unwrap();
        assert_eq!(m.linear_types(), mixed.linear_types());
        assert_same(&mixed, &base, &format!("{c:?}: mixed"));

        // Every linear weight Q8_0 (fused again, in the other format).
        let mut all8 = base.clone();
        for l in &mut all8.layers {
            for t in [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ] {
                *t = to_q8(t);
            }
        }
        assert_eq!(all8.linear_types(), [(QuantType::Q8_0, 14)]);
        assert_same(&all8, &base, &format!("{c:?}: all Q8_0"));
    }
}

#[test]
fn q4_0_head_and_embedding_match_their_q8_0_form() {
    for c in configs() {
        // The random Q8_0 embedding (and head) re-quantized to Q4_0, against its exact Q8_0 form.
        let mut q4 = ModelWeights::random(&c, 9).unwrap();
        q4.token_embd = requant(&q4.token_embd);
        q4.output = q4.output.as_ref().map(requant);
        let mut q8 = q4.clone();
        q8.token_embd = to_q8(&q8.token_embd);
        q8.output = q8.output.as_ref().map(to_q8);
        let m = Model::new(q4.clone(), Tier::active(), 1).unwrap();
        assert_eq!(m.head_type(), QuantType::Q4_0);
        assert_eq!(m.embedding_type(), QuantType::Q4_0);
        assert_same(&q4, &q8, &format!("{c:?}: Q4_0 head"));
    }
}

#[test]
fn wrong_sizes_are_rejected_in_any_type() {
    let c = tiny(Arch::Qwen2, false);
    let mut w = ModelWeights::random(&c, 1).unwrap();
    w.layers[0].wk = to_q8(&w.layers[0].wk);
    Model::new(w.clone(), Tier::active(), 1).unwrap();
    w.layers[0].wk.pop();
    assert!(Model::new(w.clone(), Tier::active(), 1).is_err());
    let mut w = ModelWeights::random(&c, 1).unwrap();
    w.output = Some(QuantTensor::Q4_0(vec![BlockQ4_0::default(); 3]));
    assert!(w.validate().is_err());
}
