//! API misuse: every public entry point given wrong lengths, K not a multiple of 32, zero sizes,
//! too-short outputs, out-of-range indices or sizes whose products overflow `usize` returns an
//! `Err`; none panics, reads or writes out of bounds (outputs are guard-page buffers), or
//! allocates what an overflowing size asks for.

mod common;
use common::kern;

use common::{guard::Guarded, Rng};
use qkern::model::{Arch, Config, Model, ModelWeights, SessionOptions};
use qkern::parallel::ThreadPool;
use qkern::quant::{BlockQ4_0, BlockQ8_0};
use qkern::Tier;
use qkern::{
    add_assign, attention, attention_parallel, dot_i8, embedding_row, exp, matmul, matmul_parallel,
    matmul_parallel_parts, matmul_range, rmsnorm, rmsnorm_quantize, silu_mul, softmax,
    EmbeddingTable, KvCache, KvDtype, PackedQ4_0, PackedQ8_0, QuantizedActivations, Rope,
};

const BIG: usize = usize::MAX / 2 + 1;

#[track_caller]
fn err<T>(r: qkern::Result<T>) {
    assert!(r.is_err(), "expected an error, got Ok");
}

fn q4(n: usize) -> Vec<BlockQ4_0> {
    Rng(7).q4_blocks(n)
}

fn q8(n: usize) -> Vec<BlockQ8_0> {
    q4(n)
        .iter()
        .map(|b| BlockQ8_0 {
            d: b.d,
            qs: std::array::from_fn(|i| b.qs[i % 16] as i8),
        })
        .collect()
}

/// A tier the CPU lacks, if any.
fn unsupported() -> Option<Tier> {
    Tier::chain().iter().copied().find(|t| !t.is_supported())
}

#[test]
fn activations() {
    for tier in Tier::available() {
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        err(a.quantize(&[0.0; 48], 1, 48)); // K not a multiple of 32
        err(a.quantize(&[0.0; 64], 1, 32)); // wrong length
        err(a.quantize(&[0.0; 32], 2, 32)); // too short
        err(a.quantize(&[], 0, 32)); // zero rows
        err(a.quantize(&[], 1, 0)); // zero K
        err(a.quantize(&[0.0; 64], BIG, 64)); // m * k overflows
        err(a.quantize(&[0.0; 64], usize::MAX, usize::MAX - 31));
        let mut qa = QuantizedActivations::with_tier(tier).unwrap();
        err(rmsnorm_quantize(&[0.0; 48], &[1.0; 48], 1e-6, &mut qa)); // K = 48
        err(rmsnorm_quantize(&[0.0; 40], &[1.0; 32], 1e-6, &mut qa)); // not whole rows
        err(rmsnorm_quantize(&[], &[1.0; 32], 1e-6, &mut qa));
        err(rmsnorm_quantize(&[0.0; 32], &[], 1e-6, &mut qa));
    }
    if let Some(t) = unsupported() {
        err(QuantizedActivations::with_tier(t));
    }
}

#[test]
fn q4_matmul() {
    let pool = ThreadPool::new(2);
    for tier in Tier::available() {
        let blocks = q4(4 * 2);
        err(PackedQ4_0::with_tier(&blocks, 4, 48, tier)); // K = 48
        err(PackedQ4_0::with_tier(&blocks, 4, 32, tier)); // too many blocks
        err(PackedQ4_0::with_tier(&blocks, 5, 64, tier)); // too few
        err(PackedQ4_0::with_tier(&[], 0, 64, tier)); // N = 0
        err(PackedQ4_0::with_tier(&[], 4, 0, tier)); // K = 0
        err(PackedQ4_0::with_tier(&blocks, BIG, 64, tier)); // n * k overflows
        err(PackedQ4_0::with_tier(&blocks, 2, usize::MAX - 31, tier));
        let w = PackedQ4_0::with_tier(&blocks, 4, 64, tier).unwrap();
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        // Not quantized yet: m = 0.
        let mut out = Guarded::filled(0.0f32, 3 * 4);
        let _ = matmul(&w, &a, None, &mut out); // an error or nothing to do, never a panic
        a.quantize(&[0.5; 3 * 64], 3, 64).unwrap();
        matmul(&w, &a, None, &mut out).unwrap();
        err(matmul(&w, &a, None, &mut out[..11])); // too short
        err(matmul(&w, &a, Some(&[0.0; 3]), &mut out)); // bias too short
        err(matmul(&w, &a, Some(&[0.0; 5]), &mut out)); // bias too long
        err(matmul_parallel(&pool, &w, &a, None, &mut out[..11]));
        err(matmul_parallel(&pool, &w, &a, Some(&[0.0; 3]), &mut out));
        // Several activation buffers: none, an output too short for all, a buffer of other K.
        err(matmul_parallel_parts(&pool, &w, &[], None, &mut out));
        let two = [a.clone(), a.clone()];
        err(matmul_parallel_parts(&pool, &w, &two, None, &mut out));
        let mut other_k = QuantizedActivations::with_tier(tier).unwrap();
        other_k.quantize(&[0.5; 32], 1, 32).unwrap();
        let mut out2 = Guarded::filled(0.0f32, 4 * 4);
        err(matmul_parallel_parts(
            &pool,
            &w,
            &[a.clone(), other_k],
            None,
            &mut out2,
        ));
        matmul_parallel_parts(&pool, &w, std::slice::from_ref(&a), None, &mut out).unwrap();
        // Ranges outside the shape, reversed, or an output stride too small or overflowing.
        err(matmul_range(&w, &a, 0..4, 0..4, None, &mut out, 4));
        err(matmul_range(&w, &a, 0..3, 0..5, None, &mut out, 5));
        #[allow(clippy::reversed_empty_ranges)]
        {
            let _ = matmul_range(&w, &a, 2..1, 0..4, None, &mut out, 4);
            let _ = matmul_range(&w, &a, 0..3, 3..1, None, &mut out, 4);
        }
        err(matmul_range(&w, &a, 0..3, 0..4, None, &mut out, 3));
        err(matmul_range(&w, &a, 0..3, 0..4, None, &mut out, usize::MAX));
        err(matmul_range(&w, &a, 0..3, 0..4, None, &mut out, BIG));
        err(matmul_range(
            &w,
            &a,
            usize::MAX..usize::MAX,
            0..4,
            None,
            &mut out,
            4,
        ));
        err(matmul_range(&w, &a, 0..3, 0..4, None, &mut out[..11], 4));
        // K of the weights differs from the activations'.
        let w2 = PackedQ4_0::with_tier(&q4(4), 4, 32, tier).unwrap();
        err(matmul(&w2, &a, None, &mut out));
        // Operands prepared for different tiers.
        for other in Tier::available().into_iter().filter(|&t| t != tier) {
            let wo = PackedQ4_0::with_tier(&blocks, 4, 64, other).unwrap();
            let _ = matmul(&wo, &a, None, &mut out); // converts or errs, never wrong layout
        }
    }
    if let Some(t) = unsupported() {
        err(PackedQ4_0::with_tier(&q4(2), 1, 64, t));
    }
}

#[test]
fn q8_matmul() {
    let pool = ThreadPool::new(2);
    for tier in Tier::available() {
        let blocks = q8(4 * 2);
        err(PackedQ8_0::with_tier(&blocks, 4, 48, tier));
        err(PackedQ8_0::with_tier(&blocks, 4, 32, tier));
        err(PackedQ8_0::with_tier(&blocks, 5, 64, tier));
        err(PackedQ8_0::with_tier(&[], 0, 64, tier));
        err(PackedQ8_0::with_tier(&[], 4, 0, tier));
        err(PackedQ8_0::with_tier(&blocks, BIG, 64, tier));
        let w = PackedQ8_0::with_tier(&blocks, 4, 64, tier).unwrap();
        let mut row = vec![0.0; 64];
        err(w.dequantize_row(4, &mut row));
        err(w.dequantize_row(usize::MAX, &mut row));
        err(w.dequantize_row(0, &mut row[..63]));
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.quantize(&[0.5; 3 * 64], 3, 64).unwrap();
        let mut out = Guarded::filled(0.0f32, 3 * 4);
        matmul(&w, &a, None, &mut out).unwrap();
        err(matmul(&w, &a, None, &mut out[..11]));
        err(matmul(&w, &a, Some(&[0.0; 3]), &mut out));
        err(matmul_parallel(&pool, &w, &a, None, &mut out[..11]));
        err(matmul_parallel(&pool, &w, &a, Some(&[0.0; 5]), &mut out));
        err(matmul_range(&w, &a, 0..4, 0..4, None, &mut out, 4));
        err(matmul_range(&w, &a, 0..3, 0..5, None, &mut out, 5));
        err(matmul_range(&w, &a, 0..3, 0..4, None, &mut out, 3));
        err(matmul_range(&w, &a, 0..3, 0..4, None, &mut out, usize::MAX));
        let w2 = PackedQ8_0::with_tier(&q8(4), 4, 32, tier).unwrap();
        err(matmul(&w2, &a, None, &mut out));
    }
}

#[test]
fn dot() {
    for tier in Tier::available() {
        err(dot_i8(kern(tier), &[1; 32], &[1; 31]));
        err(dot_i8(kern(tier), &[1; 0], &[1; 1]));
    }
}

#[test]
fn norm_and_elementwise() {
    for tier in Tier::available() {
        let mut out = Guarded::filled(0.0f32, 8);
        err(rmsnorm(kern(tier), &[0.0; 8], &[1.0; 3], 1e-6, &mut out));
        err(rmsnorm(
            kern(tier),
            &[0.0; 8],
            &[1.0; 4],
            1e-6,
            &mut out[..7],
        ));
        err(rmsnorm(kern(tier), &[], &[], 1e-6, &mut []));
        err(silu_mul(kern(tier), &[0.0; 8], &[0.0; 7], &mut out));
        err(silu_mul(kern(tier), &[0.0; 8], &[0.0; 8], &mut out[..7]));
        err(silu_mul(kern(tier), &[0.0; 7], &[0.0; 8], &mut out));
        err(add_assign(kern(tier), &mut out, &[0.0; 7]));
        err(add_assign(kern(tier), &mut out[..7], &[0.0; 8]));
        err(softmax(kern(tier), &mut []));
        let _ = softmax(kern(tier), &mut [f32::NAN, 1.0]); // NaN in, NaN out: visible, not silent
        err(softmax(kern(tier), &mut [f32::INFINITY, 1.0]));
        let _ = exp(kern(tier), &mut []);
    }
    // Ops without packed operands take a `Kernels` handle, which a tier the CPU lacks never gets.
    if let Some(t) = unsupported() {
        err(qkern::Kernels::for_tier(t));
        err(KvCache::with_tier(1, 1, 16, 8, KvDtype::F16, t));
    }
}

#[test]
fn rope() {
    err(Rope::new(0, 1e4, 8));
    err(Rope::new(15, 1e4, 8));
    err(Rope::new(16, 0.0, 8));
    err(Rope::new(16, -1.0, 8));
    err(Rope::new(16, f64::NAN, 8));
    err(Rope::new(16, f64::INFINITY, 8));
    err(Rope::new(16, 1e4, 0));
    err(Rope::new(16, 1e4, usize::MAX));
    err(Rope::new(usize::MAX - 1, 1e4, 4));
    let rope = Rope::new(16, 1e4, 8).unwrap();
    for tier in Tier::available() {
        let mut x = Guarded::filled(0.5f32, 2 * 32);
        rope.apply(kern(tier), &mut x, 2, 0, None).unwrap();
        err(rope.apply(kern(tier), &mut x[..63], 2, 0, None)); // not whole rows
        err(rope.apply(kern(tier), &mut [], 2, 0, None)); // empty
        err(rope.apply(kern(tier), &mut x, 0, 0, None)); // zero heads
        err(rope.apply(kern(tier), &mut x, BIG, 0, None)); // n_heads * head_dim overflows
        err(rope.apply(kern(tier), &mut x, 2, 7, None)); // rows at positions 7, 8: past the table
        err(rope.apply(kern(tier), &mut x, 2, 8, None));
        err(rope.apply(kern(tier), &mut x, 2, usize::MAX, None)); // pos0 + t overflows
        err(rope.apply(kern(tier), &mut x, 2, 0, Some(&[0.0; 31])));
        err(rope.apply(kern(tier), &mut x, 2, 0, Some(&[0.0; 33])));
    }
}

#[test]
fn kv_cache_and_attention() {
    use KvDtype::{F16, F32};
    for dt in [F16, F32] {
        err(KvCache::new(0, 2, 16, 8, dt));
        err(KvCache::new(1, 0, 16, 8, dt));
        err(KvCache::new(1, 2, 0, 8, dt));
        err(KvCache::new(1, 2, 15, 8, dt));
        err(KvCache::new(1, 2, 24, 8, dt));
        err(KvCache::new(1, 2, 16, 0, dt));
        err(KvCache::new(1, 2, 16, usize::MAX, dt));
        err(KvCache::new(BIG, BIG, 16, 8, dt));
        err(KvCache::new(1, 2, 16, BIG, dt));
        err(KvCache::new(1, 2, usize::MAX - 15, 8, dt));
    }
    let pool = ThreadPool::new(2);
    for tier in Tier::available() {
        for dt in [F16, F32] {
            let (nl, nkv, d, cap) = (2, 2, 16, 8);
            let row = nkv * d;
            let mut c = KvCache::with_tier(nl, nkv, d, cap, dt, tier).unwrap();
            err(c.write(2, 0, &[0.0; 32], &[0.0; 32])); // layer out of range
            err(c.write(0, 1, &[0.0; 32], &[0.0; 32])); // a gap: pos0 past the layer's length
            err(c.write(0, usize::MAX, &[0.0; 32], &[0.0; 32]));
            err(c.write(0, 0, &[0.0; 31], &[0.0; 31])); // not whole rows
            err(c.write(0, 0, &[0.0; 32], &[0.0; 64])); // k, v differ
            err(c.write(0, 0, &[0.0; 9 * 32], &[0.0; 9 * 32])); // past capacity
            let _ = c.write(0, 0, &[], &[]); // nothing to write: Ok or Err, no panic
            c.write(0, 0, &vec![0.25; 3 * row], &vec![0.5; 3 * row])
                .unwrap();
            err(c.write(0, 6, &vec![0.0; 3 * row], &vec![0.0; 3 * row]));
            err(c.read(0, 3, 0, false));
            err(c.read(0, 0, 2, false));
            err(c.read(2, 0, 0, true));
            err(c.read(0, usize::MAX, 0, true));

            let n_head = 4;
            let q = vec![0.1f32; n_head * d];
            let mut out = Guarded::filled(0.0f32, n_head * d);
            attention(&q, n_head, None, &c, 0, 2, &mut out).unwrap();
            attention_parallel(&pool, &q, n_head, None, &c, 0, 2, &mut out).unwrap();
            attention(&q, n_head, Some(0.5), &c, 0, 2, &mut out).unwrap();
            err(attention(&q, n_head, Some(f32::NAN), &c, 0, 2, &mut out));
            err(attention(
                &q,
                n_head,
                Some(f32::INFINITY),
                &c,
                0,
                2,
                &mut out,
            ));
            for (qq, nh, layer, pos0, olen) in [
                (&q[..], 3, 0, 2, n_head * d),          // n_head not a multiple of n_kv
                (&q[..], 0, 0, 2, n_head * d),          // zero heads
                (&q[..63], n_head, 0, 2, n_head * d),   // q not whole rows
                (&q[..], n_head, 0, 2, n_head * d - 1), // out too short
                (&q[..], n_head, 0, 3, n_head * d),     // position not cached
                (&q[..], n_head, 1, 0, n_head * d),     // empty layer
                (&q[..], n_head, 2, 0, n_head * d),     // layer out of range
                (&q[..], n_head, 0, usize::MAX, n_head * d), // pos0 + t overflows
                (&q[..], BIG, 0, 0, n_head * d),        // n_head * head_dim overflows
                (&[][..], n_head, 0, 2, 0),             // no query rows
            ] {
                err(attention(qq, nh, None, &c, layer, pos0, &mut out[..olen]));
                err(attention_parallel(
                    &pool,
                    qq,
                    nh,
                    None,
                    &c,
                    layer,
                    pos0,
                    &mut out[..olen],
                ));
            }
        }
    }
}

#[test]
fn embedding() {
    let f = vec![0.5f32; 4 * 64];
    let q = q4(4 * 2);
    let q8b = q8(4 * 2);
    for tier in Tier::available() {
        let mut out = Guarded::filled(0.0f32, 64);
        embedding_row(kern(tier), EmbeddingTable::F32(&f), 64, 3, &mut out).unwrap();
        err(embedding_row(
            kern(tier),
            EmbeddingTable::F32(&f),
            64,
            4,
            &mut out,
        ));
        err(embedding_row(
            kern(tier),
            EmbeddingTable::F32(&f),
            64,
            usize::MAX,
            &mut out,
        ));
        err(embedding_row(
            kern(tier),
            EmbeddingTable::F32(&f),
            0,
            0,
            &mut out[..0],
        ));
        err(embedding_row(
            kern(tier),
            EmbeddingTable::F32(&f),
            60,
            0,
            &mut out[..60],
        ));
        err(embedding_row(
            kern(tier),
            EmbeddingTable::F32(&f),
            64,
            0,
            &mut out[..63],
        ));
        for t in [EmbeddingTable::Q4_0(&q), EmbeddingTable::Q8_0(&q8b)] {
            let t2 = match t {
                EmbeddingTable::Q4_0(b) => EmbeddingTable::Q4_0(b),
                EmbeddingTable::Q8_0(b) => EmbeddingTable::Q8_0(b),
                _ => unreachable!(),
            };
            embedding_row(kern(tier), t2, 64, 3, &mut out).unwrap();
            for (k, row, olen) in [
                (48, 0, 48),
                (0, 0, 0),
                (64, 4, 64),
                (64, 0, 63),
                (96, 0, 64),
            ] {
                let t3 = match t {
                    EmbeddingTable::Q4_0(b) => EmbeddingTable::Q4_0(b),
                    EmbeddingTable::Q8_0(b) => EmbeddingTable::Q8_0(b),
                    _ => unreachable!(),
                };
                err(embedding_row(kern(tier), t3, k, row, &mut out[..olen]));
            }
        }
        err(embedding_row(
            kern(tier),
            EmbeddingTable::Q4_0(&q),
            usize::MAX - 31,
            0,
            &mut out,
        ));
    }
}

fn tiny() -> Config {
    Config {
        arch: Arch::Qwen2,
        n_layers: 1,
        hidden: 64,
        n_head: 4,
        n_kv_head: 2,
        head_dim: 16,
        ffn: 96,
        vocab: 50,
        rope_theta: 10000.0,
        rms_eps: 1e-6,
        max_positions: 16,
        tied_embeddings: true,
    }
}

#[test]
fn model_and_session() {
    // Inconsistent configs are refused when the weights are made.
    for bad in [
        Config {
            n_head: 3,
            ..tiny()
        },
        Config {
            n_kv_head: 0,
            ..tiny()
        },
        Config {
            head_dim: 15,
            ..tiny()
        },
        Config {
            hidden: 0,
            ..tiny()
        },
        Config { vocab: 0, ..tiny() },
        Config {
            n_layers: 0,
            ..tiny()
        },
        Config {
            hidden: BIG,
            ..tiny()
        },
        Config {
            vocab: BIG,
            ..tiny()
        },
        Config {
            n_head: BIG,
            n_kv_head: BIG,
            ..tiny()
        },
    ] {
        err(ModelWeights::random(&bad, 1));
    }
    let model = Model::new(ModelWeights::random(&tiny(), 1).unwrap(), Tier::Scalar, 1).unwrap();
    for o in [
        SessionOptions {
            capacity: Some(0),
            ..Default::default()
        },
        SessionOptions {
            chunk: 0,
            ..Default::default()
        },
        SessionOptions {
            capacity: Some(usize::MAX),
            ..Default::default()
        },
    ] {
        err(model.session(o));
    }
    let mut s = model
        .session(SessionOptions {
            capacity: Some(4),
            chunk: 2,
            ..Default::default()
        })
        .unwrap();
    err(s.prefill(&[]));
    err(s.prefill_all(&[]));
    err(s.prefill(&[1, 50])); // token out of range
    err(s.decode(u32::MAX));
    assert_eq!(s.pos(), 0, "a refused call leaves the session unchanged");
    err(s.prefill(&[1, 2, 3, 4, 5])); // past capacity
    s.prefill(&[1, 2, 3]).unwrap();
    s.decode(4).unwrap();
    err(s.decode(5)); // full
    assert_eq!(s.pos(), 4);
    if let Some(t) = unsupported() {
        err(Model::new(ModelWeights::random(&tiny(), 1).unwrap(), t, 1));
    }
}

/// A KV cache far larger than memory (but without arithmetic overflow) is an error, not an abort.
#[test]
fn unallocatable_kv_cache_is_an_error() {
    let r = KvCache::new(1, 1, 64, 1 << 42, KvDtype::F16);
    assert!(
        matches!(r, Err(qkern::Error::AllocationFailed(_))),
        "{:?}",
        r.err()
    );
}
