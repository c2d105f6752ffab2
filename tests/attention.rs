//! Causal GQA attention over the KV cache on every tier against `qkern_reference::attention`.
//!
//! The reference gets the keys and values **as stored** (rounded to f16 for an f16 cache, to bf16
//! where the tier runs the x86 bf16 path, whose 16-bit cache stores bf16: the storage format is
//! part of the cache's definition), so the tolerance covers arithmetic only.
//!
//! Tolerance, per output row (query position `i`, head `h`), with `A = max_j scale * sum_d
//! |q_d k_jd|` over the keys it sees, `V = max |v_jd|` over those keys, `n` keys and
//! `tiles = ceil(n / 64)`:
//! * f32 paths (u = 2^-24): each score is off by at most `(d + 2) u A` (the scaled Q rounds once,
//!   then a `d`-term dot product in any order); a score error `e` scales its weight by about
//!   `1 + e`, the exp adds 4 u, each online-softmax rescale adds 4 u + u per tile, and the
//!   normalized sum of `n` weighted values adds `(n + 4) u`. The output error is then at most
//!   `V (2 (2 (d + 2) u A + 4 u + tiles 5 u) + (n + 4) u)`; the test allows twice that.
//! * the fp16 path (aarch64 with FEAT_FP16): Q times `log2 e / sqrt(d)` is rounded to f16 once
//!   (u16 = 2^-11; the reference gets the same rounded Q, as it gets the stored K and V), scores
//!   are accumulated in f16 over up to 64 head dimensions before being widened to f32, the
//!   weights `2^(s - m)` (an exp2 with relative error below 1.1e-4, 0.21 u16) are rounded to f16,
//!   and `P V` is accumulated in f16 over the up to 128 keys of a step; statistics and the output
//!   stay in f32, and the rescale factors (same exp2) scale the output and the sum alike. Each of
//!   the up to 64 f16 additions of a score rounds by at most u16 times a partial sum bounded by
//!   `A`; these errors behave as a random walk, so a score is off by about `u16 A` (the worst
//!   case, `64 u16 A`, would make the test blind). A score error enters the output twice (weight
//!   and normalization), so the test allows `4 u16 A V`, plus `8 u16 V` for the weights'
//!   rounding and approximation (under 0.71 u16 relative per weight) and the f16 accumulation of
//!   `P V`. Measured under qemu (`fp16_accuracy`, |q|, |k| up to 4, scores up to ~30): worst
//!   output error 0.85 `u16 A V` = 1.5e-2 max|v| at head_dim 64 (14/2 heads, 72 positions) and
//!   0.56 `u16 A V` = 1.5e-2 max|v| at head_dim 128 (12/2 heads, 40 positions); the f32 paths
//!   stay near 3e-6 max|v| there. So the fp16 tolerance has about 4x margin, and it cannot see an
//!   off-by-one mask on long rows (an error of `V / n`): `causal_mask_exact` checks the mask of
//!   every path tightly, with inputs on which every path is exact (zero Q, so every weight is 1,
//!   and small integer values, whose sums f16 holds exactly).
//! * the bf16 path (x86_64 `Avx512Vnni` with AVX512_BF16; `u = 2^-8`, bf16's unit roundoff):
//!   `q * scale * log2 e`, K and V (as stored) and the weights `2^(s - m)` are rounded to bf16;
//!   products of two bf16 are exact in f32 and `vdpbf16ps` accumulates in f32, so the f32 bound
//!   covers the rest. Worst case, against the reference of the stored K, V: each product `q_i k_i`
//!   is off by at most `(2u + u^2) |q_i k_i|`, so a score by `delta = (2u + u^2) A`. Scores off by
//!   at most `delta` scale each weight by a factor in `[e^-delta, e^delta]`; the normalized output
//!   `sum w_j v_j / sum w_j` then moves by at most `(e^delta - 1) e^delta max_j |v_j - o|
//!   <= 2 V (e^delta - 1) e^delta`. Rounding V moves the output by at most `u V`, rounding the
//!   weights (the running sum keeps the unrounded f32 weights) by at most `u V`, and the exp2
//!   approximation (relative error `EXP2_BF16` = 1.1e-4, in the weights and the sum alike) by
//!   `2 EXP2_BF16 V`. The test allows exactly that plus twice the f32 bound (a first-order bound
//!   `4 u A V` for small `A`; it is rigorous but loose, as it must hold for adversarial signs).
//!   So it is also checked tightly against the reference of the bf16-rounded Q, K and V (the
//!   path's documented input roundings, as the fp16 path's Q): there only the weights' rounding
//!   and approximation remain, `u V + 2 EXP2_BF16 V`; the test allows twice that plus twice the
//!   f32 bound. Measured (`bf16_accuracy`): 0.27 to 0.39 `u V` against the rounded inputs, and
//!   1.8e-2 to 2.0e-2 max|v| (about 0.1 `u A V`) against the stored inputs with |q|, |k| up to 4.
//!   The mask is checked exactly by `causal_mask_exact` (zero Q: every weight is exactly 1, and
//!   integers up to 8 are exact in bf16). Chunked and one-shot prefill round Q, K and V alike;
//!   only the weights (relative to a tiling-dependent row maximum) differ, by `u V` per run.
//! * the int8 path (aarch64 `NeonDot` / `NeonI8mm` over the int8 cache): Q is quantized per row
//!   to int8 (`max|q| / 127`; the reference gets the same rounded Q), the integer sums are
//!   exact, the weights use the fp16 path's exp2 (relative 1.1e-4: `2 EXP2_BF16 V`) and are
//!   rounded to 8 bits (`[0, 255]`) per row, 256-key step and value block, which moves the output by at most
//!   `E_P = sum_j min(pmax_t Vt / 510, p_j V_j) / sum_j p_j` (computed per row from the
//!   reference weights, see `check_rows`). With FEAT_FP16 the exp and the weight products run in
//!   f16 (unless `QKERN_ATTN_I8_F16=0`): the exp2 term is replaced per key by the f16 argument's
//!   rounding, `EXP2_F16` and the two f16 roundings of the weight product, in the weights and the
//!   sum, plus the weights the f16 exp truncates to 0 and the f16 sum (docs/KERNELS.md).
//!   Allowed: the f32 bound twice plus those two terms; a
//!   second check against the reference of the unrounded Q adds `2 V (e^delta - 1) e^delta` with
//!   `delta = scale max|q| max_j |k_j|_1 / 254` (each Q element moves by at most max|q| / 254).
//!   The mask: `int8_causal_mask_exact` (zero Q, an 8 in every value block: every weight exact).
mod common;
use common::kern;

use common::{guard::Guarded, Rng};
use qkern::kernels::attention::KV_CHUNK;
use qkern::parallel::ThreadPool;
use qkern::Tier;
use qkern::{attention, attention_parallel, KvCache, KvDtype};
use qkern_reference as r;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Reference outputs, per-row bounds (`A`, `V`), and for the bf16 path the reference outputs of
/// the bf16-rounded inputs.
type Expected = std::sync::Arc<(Vec<f64>, Vec<(f64, f64, f64, f64)>, Vec<f64>)>;
/// Reference outputs and per-row bounds, keyed by a hash of the inputs.
static REF_CACHE: Mutex<BTreeMap<u64, Expected>> = Mutex::new(BTreeMap::new());
const U16: f64 = 1.0 / (1u64 << 11) as f64;
/// Unit roundoff of bf16 (8 significant bits, round to nearest even).
const UB: f64 = 1.0 / (1u64 << 8) as f64;
/// Relative error bound of the bf16 path's weights `2^y` (a degree-3 polynomial, 1.02e-4, plus
/// its f32 evaluation).
const EXP2_BF16: f64 = 1.1e-4;
/// Relative error bound of the aarch64 int8 path's f16 weights `2^y` for an f16 `y` in `[-14.5,
/// 0]` (a degree-3 polynomial evaluated in f16, with its final rounding: 7.1e-4 over every such
/// `y`, docs/KERNELS.md).
const EXP2_F16: f64 = 7.2e-4;

/// Whether the aarch64 int8 path runs its softmax in f16: the CPU has FEAT_FP16 and
/// `QKERN_ATTN_I8_F16` is not `0` (as the path decides).
fn i8_softmax_f16() -> bool {
    #[cfg(target_arch = "aarch64")]
    let fp16 = std::arch::is_aarch64_feature_detected!("fp16");
    #[cfg(not(target_arch = "aarch64"))]
    let fp16 = false;
    fp16 && std::env::var("QKERN_ATTN_I8_F16").map_or(true, |v| v != "0")
}

/// The softmax arithmetic of the int8 path (`kind` I8), for the printed figures.
fn softmax_name(kind: Kind) -> &'static str {
    match kind {
        Kind::I8 if i8_softmax_f16() => "f16",
        Kind::I8 => "f32",
        _ => "-",
    }
}

/// Keys per step of the aarch64 int8 path (four cache tiles): its weights are quantized per row
/// and step.
const I8_STEP: usize = 256;

/// `x` as the bf16 path sees it at softmax scale `sc`: `bf16(x * sc * log2 e)` (the path
/// computes its weights as powers of 2), back in the units of `x`.
fn bf16_q(x: f32, sc: f32) -> f32 {
    let s2 = sc * std::f32::consts::LOG2_E;
    (bf16(x * s2) as f64 / s2 as f64) as f32
}

#[derive(Clone, Copy)]
struct Shape {
    n_head: usize,
    n_kv: usize,
    d: usize,
}

fn shape(n_head: usize, n_kv: usize, d: usize) -> Shape {
    Shape { n_head, n_kv, d }
}

/// Keys and values of `t` positions as stored by a cache of `dtype`.
fn stored(x: &[f32], dtype: KvDtype) -> Vec<f32> {
    match dtype {
        KvDtype::F32 => x.to_vec(),
        KvDtype::F16 => x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
        // Blocks of 32 of each position's head vector (head_dim is a multiple of 32).
        KvDtype::I8 => r::quantize_activations(x)
            .iter()
            .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d))
            .collect(),
    }
}

/// Whether the 16-bit (`KvDtype::F16`) cache of `tier` stores bf16: where the tier runs the x86
/// bf16 path (see `bf16_cache`).
fn stores_bf16(tier: Tier) -> bool {
    KvCache::with_tier(1, 1, 32, 1, KvDtype::F16, tier)
        .unwrap()
        .stores_bf16()
}

/// Keys and values as stored by a cache of `dtype` at `tier` (the 16-bit cache rounds to bf16
/// where the tier runs the bf16 path, to f16 elsewhere).
fn stored_at(x: &[f32], dtype: KvDtype, tier: Tier) -> Vec<f32> {
    if dtype == KvDtype::F16 && stores_bf16(tier) {
        x.iter().map(|&v| bf16(v)).collect()
    } else {
        stored(x, dtype)
    }
}

/// The arithmetic of a tier's attention path on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    F32,
    /// aarch64 FEAT_FP16.
    Fp16,
    /// x86_64 AVX512_BF16 (`Avx512Vnni`).
    Bf16,
    /// The aarch64 integer path over an int8 cache (`NeonDot`, `NeonI8mm`).
    I8,
    /// The x86 bf16 path with integer `Q K^T` over an int8 cache (`Avx512Vnni` with
    /// AVX512_BF16).
    I8Qk,
}

/// The arithmetic of the path for `tier`.
fn kind(tier: Tier) -> Kind {
    let name = kern(tier).attention_name();
    if name.contains("fp16") {
        Kind::Fp16
    } else if name.contains("bf16") {
        Kind::Bf16
    } else {
        Kind::F32
    }
}

/// The name of the path that runs on a cache of `dtype` at `tier` (by the dispatcher's choice
/// for a small call).
fn path_name(tier: Tier, dtype: KvDtype) -> &'static str {
    let mut c = KvCache::with_tier(1, 1, 32, 1, dtype, tier).unwrap();
    c.write(0, 0, &[0.5; 32], &[0.5; 32]).unwrap();
    qkern::attention_path_name(&[0.25; 32], 1, None, &c, 0, 0).unwrap()
}

/// The arithmetic of the path for `tier` over a cache of `dtype`.
fn kind_for(tier: Tier, dtype: KvDtype) -> Kind {
    let name = path_name(tier, dtype);
    if name.contains("-i8-") {
        Kind::I8
    } else if name.contains("-i8qk") {
        Kind::I8Qk
    } else {
        kind(tier)
    }
}

/// `q` as the int8 path quantizes it (per row of `d`, at the call's scale times `log2 e`, in
/// f32 exactly as the path computes it), back in the units of `q`.
fn i8_q(q: &[f32], d: usize) -> Vec<f32> {
    let sc = (1.0 / (d as f32).sqrt()) * std::f32::consts::LOG2_E;
    q.chunks_exact(d)
        .flat_map(|row| {
            let amax = row.iter().fold(0f32, |a, &x| a.max(x.abs())) * sc.abs();
            let step = amax / 127.0;
            let inv = if step > 0.0 { sc / step } else { 0.0 };
            row.iter().map(move |&x| {
                ((x * inv).round_ties_even() as f64 * step as f64 / sc as f64) as f32
            })
        })
        .collect()
}

/// `x` rounded to bf16 (to nearest even, as `vcvtne2ps2bf16`).
fn bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Checks `out` (query rows `q_rows` of the full sequence, at positions `pos0..`) against the
/// reference over keys/values `k`, `v` (as stored) of `pos0 + t` positions.
#[allow(clippy::too_many_arguments)]
fn check_rows(
    tier: Tier,
    kind: Kind,
    s: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pos0: usize,
    out: &[f32],
    what: &str,
) -> (f64, f64, f64) {
    let (d, n_head, n_kv) = (s.d, s.n_head, s.n_kv);
    let t = q.len() / (n_head * d);
    let kv_len = pos0 + t;
    let scale = 1.0 / (d as f64).sqrt();
    let group = n_head / n_kv;
    // The reference output and the per-row bounds depend only on the inputs: computed once per
    // input set and shared by the per-tier tests (which run the same cases on every tier).
    let mut h = DefaultHasher::new();
    let fp16 = kind == Kind::Fp16;
    (n_head, n_kv, d, pos0, kind).hash(&mut h);
    for x in [q, &k[..kv_len * n_kv * d], &v[..kv_len * n_kv * d]] {
        x.iter().for_each(|v| v.to_bits().hash(&mut h));
    }
    let key = h.finish();
    let cached = REF_CACHE.lock().unwrap().get(&key).cloned();
    let expected = cached.unwrap_or_else(|| {
        // The fp16 path rounds the scaled Q (times log2 e: it computes its weights as powers
        // of 2) to f16 once (a documented step of the path, like the cache's rounding of K and
        // V): the reference gets the same rounded Q.
        let int8_q = kind == Kind::I8 || kind == Kind::I8Qk;
        let q_ref: Vec<f32> = if int8_q {
            i8_q(q, d)
        } else if fp16 {
            let sc = std::f32::consts::LOG2_E / (d as f32).sqrt();
            let sc64 = std::f64::consts::LOG2_E * scale;
            q.iter()
                .map(|&x| (half::f16::from_f32(x * sc).to_f64() / sc64) as f32)
                .collect()
        } else {
            q.to_vec()
        };
        let want = r::attention(
            &q_ref,
            &k[..kv_len * n_kv * d],
            &v[..kv_len * n_kv * d],
            n_head,
            n_kv,
            d,
        );
        let mut bounds = Vec::with_capacity(t * n_head);
        for i in 0..t {
            for h in 0..n_head {
                let kh = h / group;
                let qr = &q[(i * n_head + h) * d..][..d];
                let (mut a, mut vmax) = (0f64, 0f64);
                for j in 0..=pos0 + i {
                    let kr = &k[(j * n_kv + kh) * d..][..d];
                    let mut dot = 0f64;
                    for c in 0..d {
                        dot += (qr[c] as f64 * kr[c] as f64).abs();
                    }
                    a = a.max(dot * scale);
                    for &x in &v[(j * n_kv + kh) * d..][..d] {
                        vmax = vmax.max(x.abs() as f64);
                    }
                }
                // The int8 path's rounding of its weights (module notes): key j (weight p_j,
                // relative to the row's maximum, from the reference scores of the quantized Q)
                // moves the unnormalized output by at most min(pmax_t Vt / 510, p_j V_j), with
                // pmax_t, Vt the largest weight and |v| of its step of I8_STEP positions (all
                // written positions: a block's step may hold keys the row does not see) and
                // V_j = max |v_j|.
                let (mut pq, mut delta_q) = (0f64, 0f64);
                if int8_q {
                    // Rounding Q moves each element by at most max|q| / 254, so a score by at
                    // most `scale max|q| |k_j|_1 / 254`.
                    let qmax = qr.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
                    for j in 0..=pos0 + i {
                        let k1: f64 = k[(j * n_kv + kh) * d..][..d]
                            .iter()
                            .map(|&x| x.abs() as f64)
                            .sum();
                        delta_q = delta_q.max(scale * qmax * k1 / 254.0);
                    }
                }
                if kind == Kind::I8 {
                    let qr = &q_ref[(i * n_head + h) * d..][..d];
                    let n = pos0 + i + 1;
                    let sj: Vec<f64> = (0..n)
                        .map(|j| {
                            let kr = &k[(j * n_kv + kh) * d..][..d];
                            scale * (0..d).map(|c| qr[c] as f64 * kr[c] as f64).sum::<f64>()
                        })
                        .collect();
                    let mx = sj.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let pj: Vec<f64> = sj.iter().map(|s| (s - mx).exp()).collect();
                    let vj = |j: usize| {
                        v[(j * n_kv + kh) * d..][..d]
                            .iter()
                            .fold(0f64, |a, &x| a.max(x.abs() as f64))
                    };
                    let l: f64 = pj.iter().sum();
                    let f16 = i8_softmax_f16();
                    for t0 in (0..n).step_by(I8_STEP) {
                        let te = (t0 + I8_STEP).min(n);
                        let pmax = pj[t0..te].iter().cloned().fold(0f64, f64::max);
                        let vt = (t0..(t0 + I8_STEP).min(kv_len))
                            .map(vj)
                            .fold(0f64, f64::max);
                        for (j, &p) in pj.iter().enumerate().take(te).skip(t0) {
                            pq += (pmax * vt / 510.0).min(p * vj(j));
                            if f16 && p > 0.0 {
                                // The f16 softmax: the argument `y = log2(p / pmax)` rounded
                                // to f16 (relative U16: the weight by `ln 2 |y| U16`), the exp
                                // (EXP2_F16), in the weight product (with the f16 factor and the
                                // product's rounding, 2 U16) and in the sum; weights below
                                // 2^-14.5 of the step maximum are 0, in the sum too.
                                let ey = (p / pmax).ln().abs() * U16 * 1.01 + EXP2_F16;
                                pq += p * vj(j) * (ey + 2.0 * U16) + vmax * p * ey;
                                if p < pmax * (-14.4f64).exp2() {
                                    pq += vmax * p;
                                }
                            }
                        }
                    }
                    pq /= l;
                    if f16 {
                        // The sum adds 4 weights per lane in f16 (two levels) before f32.
                        pq += vmax * 2.0 * U16;
                    }
                }
                bounds.push((a, vmax, pq, delta_q));
            }
        }
        // The bf16 path rounds `q * scale`, K, V (as stored) and the weights to bf16: the tight
        // check compares it with the reference on the same rounded Q, K and V.
        let want_b = if kind == Kind::Bf16 {
            let sc = 1.0 / (d as f32).sqrt();
            let qb: Vec<f32> = q.iter().map(|&x| bf16_q(x, sc)).collect();
            let kb: Vec<f32> = k[..kv_len * n_kv * d].iter().map(|&x| bf16(x)).collect();
            let vb: Vec<f32> = v[..kv_len * n_kv * d].iter().map(|&x| bf16(x)).collect();
            r::attention(&qb, &kb, &vb, n_head, n_kv, d)
        } else if int8_q {
            // The int8 paths are also checked against the reference of the unrounded Q.
            r::attention(
                q,
                &k[..kv_len * n_kv * d],
                &v[..kv_len * n_kv * d],
                n_head,
                n_kv,
                d,
            )
        } else {
            Vec::new()
        };
        let e = std::sync::Arc::new((want, bounds, want_b));
        REF_CACHE.lock().unwrap().insert(key, e.clone());
        e
    });
    let (want, bounds, want_b) = (&expected.0, &expected.1, &expected.2);
    let (mut worst, mut worst_a, mut worst_ua) = (0f64, 0f64, 0f64);
    for i in 0..t {
        let pos = pos0 + i;
        let n = pos + 1;
        for h in 0..n_head {
            let (a, vmax, pq, delta_q) = bounds[i * n_head + h];
            let tiles = n.div_ceil(64) as f64;
            let f32_bound = vmax
                * (2.0 * (2.0 * (d + 2) as f64 * U * a + 4.0 * U + tiles * 5.0 * U)
                    + (n + 4) as f64 * U);
            let mut tol = 2.0 * f32_bound;
            if fp16 {
                tol += vmax * (4.0 * U16 * a + 8.0 * U16);
            }
            // bf16: every score is off by at most `delta` (bf16 Q and K: each product by
            // `(2 UB + UB^2) |q k|`), which moves the output by at most
            // `2 V (e^delta - 1) e^delta`; bf16 V and weights add `UB V` each, the weights'
            // exp2 approximation `2 EXP2_BF16 V` (worst cases).
            let delta = (2.0 * UB + UB * UB) * a;
            let exp2 = 2.0 * EXP2_BF16 * vmax;
            if kind == Kind::Bf16 {
                tol += vmax * (2.0 * delta.exp_m1() * delta.exp() + 2.0 * UB) + exp2;
            }
            // int8: against the reference of the quantized Q, the weights' rounding to int8
            // (`pq`, worst case, with 1% for the f32 scores) and their exp2 approximation.
            if kind == Kind::I8 {
                // (The f16 softmax's exp error is in `pq`.)
                tol += 1.01 * pq + if i8_softmax_f16() { 0.0 } else { exp2 };
            }
            // int8 Q K^T with the bf16 softmax and P V: against the reference of the quantized
            // Q, the scores are exact but for f32 rounding (the integer sums are exact, then
            // one product per block and the sum: in the f32 bound); V (int8 times its scale)
            // and the weights round to bf16 (`UB V` each), and the exp2 approximation.
            if kind == Kind::I8Qk {
                tol += 2.0 * UB * vmax + exp2;
            }
            let tol = tol + 1e-30;
            // Tight bf16 check: against the reference on the rounded Q, K, V, only the weights'
            // rounding (`UB V`, the sum stays in f32), their exp2 approximation and the f32
            // arithmetic remain.
            let tol_b = 2.0 * (f32_bound + UB * vmax + exp2) + 1e-30;
            for c in 0..d {
                let idx = (i * n_head + h) * d + c;
                let err = (out[idx] as f64 - want[idx]).abs();
                if kind == Kind::Bf16 {
                    worst = worst.max(err / (vmax + 1e-30));
                    let eb = (out[idx] as f64 - want_b[idx]).abs();
                    // The rigorous bound's scale (second) and the tight check's (first).
                    worst_a = worst_a.max(eb / (UB * vmax + 1e-30));
                    worst_ua = worst_ua.max(err / (UB * a * vmax + 1e-30));
                    assert!(
                        eb <= tol_b,
                        "{what} (bf16 inputs): tier {tier} heads {n_head}/{n_kv} d={d} pos {pos} \
                         head {h} dim {c}: got {}, want {}, err {eb:e}, tol {tol_b:e}",
                        out[idx],
                        want_b[idx]
                    );
                } else if kind == Kind::I8 || kind == Kind::I8Qk {
                    worst = worst.max(err / (vmax + 1e-30));
                    // The share of the bound the error uses.
                    worst_a = worst_a.max(err / tol);
                    // Against the unrounded Q: scores off by at most `delta_q` more, which moves
                    // the output by at most `2 V (e^delta - 1) e^delta` (as for bf16).
                    let eu = (out[idx] as f64 - want_b[idx]).abs();
                    let tol_u = tol + 2.0 * vmax * delta_q.exp_m1() * delta_q.exp();
                    worst_ua = worst_ua.max(eu / (vmax + 1e-30));
                    assert!(
                        eu <= tol_u,
                        "{what} (unrounded Q): tier {tier} heads {n_head}/{n_kv} d={d} pos {pos} \
                         head {h} dim {c}: got {}, want {}, err {eu:e}, tol {tol_u:e}",
                        out[idx],
                        want_b[idx]
                    );
                } else {
                    worst = worst.max(err / (vmax + 1e-30));
                    worst_a = worst_a.max(err / (U16 * a * vmax + 1e-30));
                }
                assert!(
                    err <= tol,
                    "{what}: tier {tier} {kind:?} heads {n_head}/{n_kv} d={d} pos {pos} head {h} \
                     dim {c}: got {}, want {}, err {err:e}, tol {tol:e}",
                    out[idx],
                    want[idx]
                );
            }
        }
    }
    (worst, worst_a, worst_ua)
}

/// Fills a cache with `chunks` of a random sequence, attending after each chunk (chunked
/// prefill continuing the cache), and checks every row; returns the worst error / V.
fn chunked_prefill(tier: Tier, s: &Shape, dtype: KvDtype, chunks: &[usize], seed: u64) -> f64 {
    let total: usize = chunks.iter().sum();
    let mut rng = Rng(seed);
    let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
    let q = rng.vec(total * qw, 2.0);
    let k = rng.vec(total * kw, 2.0);
    let v = rng.vec(total * kw, 1.0);
    let (ks, vs) = (stored_at(&k, dtype, tier), stored_at(&v, dtype, tier));
    let kind = kind_for(tier, dtype);
    let mut cache = KvCache::with_tier(2, s.n_kv, s.d, total + 5, dtype, tier).unwrap();
    let mut pos0 = 0;
    let mut worst = 0f64;
    for &t in chunks {
        let layer = 1;
        cache
            .write(
                layer,
                pos0,
                &k[pos0 * kw..(pos0 + t) * kw],
                &v[pos0 * kw..(pos0 + t) * kw],
            )
            .unwrap();
        let qc = Guarded::from_slice(&q[pos0 * qw..(pos0 + t) * qw]);
        let mut out = Guarded::filled(f32::NAN, t * qw);
        attention(&qc, s.n_head, None, &cache, layer, pos0, &mut out).unwrap();
        worst = worst.max(check_rows(tier, kind, s, &qc, &ks, &vs, pos0, &out, "chunked").0);
        pos0 += t;
    }
    worst
}

fn gqa_ratios(tier: Tier) {
    // GQA ratios 1, 2, 7, 14 (and 6), odd head counts, head_dim 16..128, one-shot prefill.
    let shapes = [
        (
            Shape {
                n_head: 3,
                n_kv: 3,
                d: 64,
            },
            67,
        ),
        (
            Shape {
                n_head: 4,
                n_kv: 2,
                d: 128,
            },
            20,
        ),
        (
            Shape {
                n_head: 7,
                n_kv: 1,
                d: 16,
            },
            70,
        ),
        (
            Shape {
                n_head: 14,
                n_kv: 1,
                d: 48,
            },
            10,
        ),
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            13,
        ),
        (
            Shape {
                n_head: 12,
                n_kv: 2,
                d: 128,
            },
            6,
        ),
        (
            Shape {
                n_head: 5,
                n_kv: 5,
                d: 80,
            },
            3,
        ),
    ];
    for (i, (s, t)) in shapes.iter().enumerate() {
        for dtype in [KvDtype::F16, KvDtype::F32, KvDtype::I8] {
            if dtype == KvDtype::I8 && s.d % 32 != 0 {
                continue;
            }
            chunked_prefill(tier, s, dtype, &[*t], 0x1000 + i as u64);
        }
    }
}
per_tier_test!(gqa_ratios_vs_reference, crate::gqa_ratios);

/// The softmax scale is a parameter: `None` is `1 / sqrt(head_dim)`, and scaling by `2 / sqrt(d)`
/// gives exactly the output of doubled queries at the default scale (a factor of 2 is exact in
/// every path's arithmetic, so the two calls see the same scaled Q bit for bit).
fn softmax_scale(tier: Tier) {
    let (n_head, n_kv, d, t) = (4, 2, 64, 70);
    let mut rng = Rng(0x5ca1e);
    let q = rng.vec(t * n_head * d, 1.0);
    let q2: Vec<f32> = q.iter().map(|x| 2.0 * x).collect();
    let k = rng.vec(t * n_kv * d, 1.0);
    let v = rng.vec(t * n_kv * d, 1.0);
    for dtype in [KvDtype::F16, KvDtype::F32] {
        let mut cache = KvCache::with_tier(1, n_kv, d, t, dtype, tier).unwrap();
        cache.write(0, 0, &k, &v).unwrap();
        let run = |q: &[f32], scale: Option<f32>| {
            let mut out = vec![f32::NAN; q.len()];
            attention(q, n_head, scale, &cache, 0, 0, &mut out).unwrap();
            out
        };
        let r = 1.0 / (d as f32).sqrt();
        let default = run(&q, None);
        assert_eq!(
            run(&q, Some(r)),
            default,
            "{tier} {dtype:?}: explicit 1/sqrt(d)"
        );
        let scaled = run(&q, Some(2.0 * r));
        assert_eq!(scaled, run(&q2, None), "{tier} {dtype:?}: scale 2/sqrt(d)");
        assert_ne!(
            scaled, default,
            "{tier} {dtype:?}: the scale must change the output"
        );
        // A large scale: scores past f16's range if a path ignored the scale in its choice.
        let big = run(&q, Some(4000.0 * r));
        // The bf16 path rounds `q * scale`, K and V to bf16 (scores up to ~1000 are then off by
        // up to ~8, which can change the winner of a peaked softmax): the Scalar tier gets the
        // same rounded inputs.
        let sc = 4000.0 * r;
        let (qs, ks, vs): (Vec<f32>, Vec<f32>, Vec<f32>) = if kind(tier) == Kind::Bf16 {
            let st = stored_at(&k, dtype, tier);
            (
                q.iter().map(|&x| bf16_q(x, sc)).collect(),
                st.iter().map(|&x| bf16(x)).collect(),
                stored_at(&v, dtype, tier)
                    .iter()
                    .map(|&x| bf16(x))
                    .collect(),
            )
        } else {
            (q.clone(), k.clone(), v.clone())
        };
        let mut scalar = KvCache::with_tier(1, n_kv, d, t, dtype, Tier::Scalar).unwrap();
        scalar.write(0, 0, &ks, &vs).unwrap();
        let mut want = vec![0f32; q.len()];
        attention(&qs, n_head, Some(sc), &scalar, 0, 0, &mut want).unwrap();
        for (i, (g, w)) in big.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-2,
                "{tier} {dtype:?} scale 4000/sqrt(d) at {i}: {g} vs {w}"
            );
        }
    }
}
per_tier_test!(softmax_scale_is_a_parameter, crate::softmax_scale);

fn lengths_and_chunks(tier: Tier) {
    // One sequence of 300 checks every length 1..=300 (row i sees exactly i + 1 keys); the
    // chunks cross tile (64) and block boundaries, continuing the cache.
    let s = Shape {
        n_head: 2,
        n_kv: 1,
        d: 16,
    };
    chunked_prefill(tier, &s, KvDtype::F16, &[300], 7);
    chunked_prefill(tier, &s, KvDtype::F16, &[1, 63, 1, 64, 65, 2, 40, 64], 7);
    chunked_prefill(tier, &s, KvDtype::F32, &[33, 1, 1, 1, 64, 29], 8);
    let s = Shape {
        n_head: 14,
        n_kv: 2,
        d: 64,
    };
    chunked_prefill(tier, &s, KvDtype::F16, &[5, 1, 4], 9);
    // The int8 cache: lengths across tiles, chunks continuing the cache.
    let s = Shape {
        n_head: 4,
        n_kv: 2,
        d: 64,
    };
    chunked_prefill(tier, &s, KvDtype::I8, &[150], 11);
    chunked_prefill(tier, &s, KvDtype::I8, &[1, 63, 1, 64, 65, 2, 40], 12);
    for t in [2, 3, 63, 65] {
        let s = Shape {
            n_head: 3,
            n_kv: 1,
            d: 16,
        };
        chunked_prefill(tier, &s, KvDtype::F16, &[t], 10 + t as u64);
    }
}
per_tier_test!(lengths_1_to_300_and_chunks, crate::lengths_and_chunks);

fn chunked_equals_one_shot(tier: Tier) {
    // The same sequence prefilled at once and in chunks gives the same outputs (up to the
    // float reassociation of different block boundaries, bounded like the reference tolerance).
    let s = Shape {
        n_head: 6,
        n_kv: 2,
        d: 32,
    };
    let total = 100;
    let mut rng = Rng(77);
    let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
    let (q, k, v) = (
        rng.vec(total * qw, 2.0),
        rng.vec(total * kw, 2.0),
        rng.vec(total * kw, 1.0),
    );
    let mut c1 = KvCache::with_tier(1, s.n_kv, s.d, total, KvDtype::F16, tier).unwrap();
    c1.write(0, 0, &k, &v).unwrap();
    let mut one = vec![0f32; total * qw];
    attention(&q, s.n_head, None, &c1, 0, 0, &mut one).unwrap();
    let mut c2 = KvCache::with_tier(1, s.n_kv, s.d, total, KvDtype::F16, tier).unwrap();
    let mut chunked = vec![0f32; total * qw];
    let mut pos0 = 0;
    for t in [10, 30, 1, 40, 19] {
        c2.write(
            0,
            pos0,
            &k[pos0 * kw..(pos0 + t) * kw],
            &v[pos0 * kw..(pos0 + t) * kw],
        )
        .unwrap();
        attention(
            &q[pos0 * qw..(pos0 + t) * qw],
            s.n_head,
            None,
            &c2,
            0,
            pos0,
            &mut chunked[pos0 * qw..(pos0 + t) * qw],
        )
        .unwrap();
        pos0 += t;
    }
    // bf16: Q, K and V round the same way in both runs; the weights (relative to a row maximum
    // that depends on the tiling) round by at most UB each, i.e. UB max|v| per run (max|v| <= 1).
    let tol = match kind(tier) {
        Kind::Fp16 => 2e-2,
        Kind::Bf16 => 2.0 * UB as f32 + 1e-5,
        Kind::F32 | Kind::I8 | Kind::I8Qk => 1e-5,
    };
    for (i, (a, b)) in one.iter().zip(&chunked).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "row value {i}: one-shot {a}, chunked {b}"
        );
    }
}
per_tier_test!(
    chunked_prefill_equals_one_shot,
    crate::chunked_equals_one_shot
);

fn decode_parallel(tier: Tier) {
    // Long cache, t = 1 decode steps: the split-KV parallel path (chunks of KV_CHUNK merged) and
    // the sequential path both match the reference; prefill through the pool too.
    let pool = ThreadPool::new(3);
    for (s, dtype) in [
        (
            Shape {
                n_head: 7,
                n_kv: 1,
                d: 64,
            },
            KvDtype::F16,
        ),
        (
            Shape {
                n_head: 2,
                n_kv: 2,
                d: 128,
            },
            KvDtype::F32,
        ),
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            KvDtype::I8,
        ),
    ] {
        let total = KV_CHUNK + 45;
        let mut rng = Rng(0xdec0de);
        let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
        let (q, k, v) = (
            rng.vec(total * qw, 2.0),
            rng.vec(total * kw, 2.0),
            rng.vec(total * kw, 1.0),
        );
        let (ks, vs) = (stored_at(&k, dtype, tier), stored_at(&v, dtype, tier));
        let pk = kind_for(tier, dtype);
        let mut cache = KvCache::with_tier(1, s.n_kv, s.d, total, dtype, tier).unwrap();
        let pre = total - 3;
        cache.write(0, 0, &k[..pre * kw], &v[..pre * kw]).unwrap();
        // Parallel prefill of the last 12 prefilled rows (tasks over KV head x query block).
        let p0 = pre - 12;
        let mut out = vec![0f32; 12 * qw];
        attention_parallel(
            &pool,
            &q[p0 * qw..pre * qw],
            s.n_head,
            None,
            &cache,
            0,
            p0,
            &mut out,
        )
        .unwrap();
        for i in [0, 1, 11] {
            let qi = &q[(p0 + i) * qw..(p0 + i + 1) * qw];
            check_rows(
                tier,
                pk,
                &s,
                qi,
                &ks,
                &vs,
                p0 + i,
                &out[i * qw..(i + 1) * qw],
                "parallel prefill",
            );
        }
        for pos in pre..total {
            cache
                .write(
                    0,
                    pos,
                    &k[pos * kw..(pos + 1) * kw],
                    &v[pos * kw..(pos + 1) * kw],
                )
                .unwrap();
            let qr = Guarded::from_slice(&q[pos * qw..(pos + 1) * qw]);
            let mut par = Guarded::filled(f32::NAN, qw);
            attention_parallel(&pool, &qr, s.n_head, None, &cache, 0, pos, &mut par).unwrap();
            check_rows(tier, pk, &s, &qr, &ks, &vs, pos, &par, "parallel decode");
            let mut seq = vec![0f32; qw];
            attention(&qr, s.n_head, None, &cache, 0, pos, &mut seq).unwrap();
            check_rows(tier, pk, &s, &qr, &ks, &vs, pos, &seq, "decode");
        }
    }
}
per_tier_test!(decode_split_kv_vs_reference, crate::decode_parallel);

fn bad_inputs(tier: Tier) {
    assert!(KvCache::new(1, 2, 24, 10, KvDtype::F16).is_err()); // head_dim not a multiple of 16
    assert!(KvCache::new(1, 2, 0, 10, KvDtype::F16).is_err());
    assert!(KvCache::new(1, 2, 48, 10, KvDtype::I8).is_err()); // int8 blocks need 32 | head_dim
                                                               // The int8 cache stores each position's head vectors in blocks of 32 (read back dequantized),
                                                               // in 1.125 bytes per value.
    let mut c = KvCache::with_tier(2, 2, 64, 70, KvDtype::I8, tier).unwrap();
    assert_eq!(c.bytes(), 2 * 2 * 2 * 128 * 64 * 9 / 8);
    let mut rng = Rng(3);
    let (k, v) = (rng.vec(67 * 128, 3.0), rng.vec(67 * 128, 0.5));
    c.write(1, 0, &k, &v).unwrap();
    let (ks, vs) = (stored(&k, KvDtype::I8), stored(&v, KvDtype::I8));
    for pos in [0, 1, 63, 64, 66] {
        for g in 0..2 {
            let at = (pos * 2 + g) * 64;
            assert_eq!(c.read(1, pos, g, false).unwrap(), ks[at..at + 64]);
            assert_eq!(c.read(1, pos, g, true).unwrap(), vs[at..at + 64]);
        }
    }
    assert!(KvCache::new(0, 2, 64, 10, KvDtype::F16).is_err());
    assert!(KvCache::new(1, 2, 64, 0, KvDtype::F16).is_err());
    assert!(KvCache::new(1 << 20, 1 << 20, 64, 1 << 20, KvDtype::F16).is_err()); // overflow
    let mut c = KvCache::with_tier(2, 2, 16, 10, KvDtype::F16, tier).unwrap();
    assert_eq!(c.capacity(), 10);
    assert!(c.bytes() >= 2 * 2 * 2 * 10 * 16 * 2);
    let row = [0.5f32; 32];
    assert!(c.write(2, 0, &row, &row).is_err()); // layer
    assert!(c.write(0, 1, &row, &row).is_err()); // gap
    assert!(c.write(0, 0, &row[..31], &row[..31]).is_err()); // partial row
    assert!(c.write(0, 0, &row, &row[..16]).is_err()); // k/v mismatch
    assert!(c.write(0, 0, &[0.0; 32 * 11], &[0.0; 32 * 11]).is_err()); // capacity
    c.write(0, 0, &row, &row).unwrap();
    let q = [0.1f32; 4 * 16];
    let mut out = [0f32; 4 * 16];
    attention(&q, 4, None, &c, 0, 0, &mut out).unwrap();
    assert!(out.iter().all(|&o| (o - 0.5).abs() < 1e-6));
    assert!(attention(&q, 4, None, &c, 0, 1, &mut out).is_err()); // position 1 not written
    assert!(attention(&q, 4, None, &c, 1, 0, &mut out).is_err()); // layer 1 empty
    assert!(attention(&q, 4, None, &c, 2, 0, &mut out).is_err()); // no layer 2
    assert!(attention(&q[..48], 3, None, &c, 0, 0, &mut out[..48]).is_err()); // 3 % 2 heads
    assert!(attention(&q, 4, None, &c, 0, 0, &mut out[..63]).is_err());
    assert!(attention(&q[..60], 4, None, &c, 0, 0, &mut out[..60]).is_err());
    assert!(attention(&q[..32], 2, None, &c, 0, 0, &mut out[..32]).is_ok());
    assert!(attention(&q, 0, None, &c, 0, 0, &mut out).is_err());
    let pool = ThreadPool::new(2);
    assert!(attention_parallel(&pool, &q, 4, None, &c, 0, 1, &mut out).is_err());
    assert_eq!(c.read(0, 0, 1, true).unwrap(), vec![0.5; 16]);
    assert!(c.read(0, 1, 0, false).is_err());
}
per_tier_test!(bad_inputs_are_errors, crate::bad_inputs);

fn non_finite_query_shows(tier: Tier) {
    // NaN or infinity in a query row is visible in that row's output (non-finite), on every path
    // and cache type (the integer paths quantize Q: a non-finite value must not become a silent
    // 0); the other rows stay finite.
    let (n_head, n_kv, d, t) = (4, 2, 64, 70);
    let mut rng = Rng(0x4e4e);
    let (k, v) = (rng.vec(t * n_kv * d, 1.0), rng.vec(t * n_kv * d, 1.0));
    for dtype in [KvDtype::F16, KvDtype::F32, KvDtype::I8] {
        let mut c = KvCache::with_tier(1, n_kv, d, t, dtype, tier).unwrap();
        c.write(0, 0, &k, &v).unwrap();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut q = rng.vec(t * n_head * d, 1.0);
            // Position 40, head 1: row 40 * n_head + 1.
            let row = 40 * n_head + 1;
            q[row * d + 5] = bad;
            let mut out = vec![0f32; q.len()];
            attention(&q, n_head, None, &c, 0, 0, &mut out).unwrap();
            for (r, o) in out.chunks_exact(d).enumerate() {
                let finite = o.iter().all(|x| x.is_finite());
                assert_eq!(
                    finite,
                    r != row,
                    "{tier} {dtype:?} q = {bad}: row {r} of the output {}",
                    if finite { "finite" } else { "non-finite" }
                );
            }
        }
    }
}
per_tier_test!(
    non_finite_query_shows_in_its_row,
    crate::non_finite_query_shows
);

/// With Q = 0, row `i`'s output must be the mean of the stored values at positions `0..=pos`
/// (every visible weight is exactly 1) for each shape, prefilled in the given chunks: values from
/// `values(rng, len)` chosen so that every path's products and partial sums are exact, so only the
/// final division rounds (`tol = 1e-6 max|v|`). A key too many or too few moves the mean by about
/// `max|v| / n`.
fn check_causal_means(
    tier: Tier,
    dtype: KvDtype,
    cases: &[(Shape, &[usize])],
    seed: u64,
    values: impl Fn(&mut Rng, usize) -> Vec<f32>,
    tol: f64,
) {
    for &(s, chunks) in cases {
        let t: usize = chunks.iter().sum();
        let mut rng = Rng(seed);
        let kw = s.n_kv * s.d;
        let k = rng.vec(t * kw, 3.0);
        let v = values(&mut rng, t * kw);
        let vs = stored(&v, dtype);
        // cum[p * kw + col]: sum of the stored values of positions 0..p (exact in f64).
        let mut cum = vec![0f64; (t + 1) * kw];
        for p in 0..t {
            for col in 0..kw {
                cum[(p + 1) * kw + col] = cum[p * kw + col] + vs[p * kw + col] as f64;
            }
        }
        let mut cache = KvCache::with_tier(1, s.n_kv, s.d, t, dtype, tier).unwrap();
        let mut pos0 = 0;
        for &n in chunks {
            let q = vec![0f32; n * s.n_head * s.d];
            let mut out = vec![0f32; q.len()];
            let rows = pos0 * kw..(pos0 + n) * kw;
            cache.write(0, pos0, &k[rows.clone()], &v[rows]).unwrap();
            attention(&q, s.n_head, None, &cache, 0, pos0, &mut out).unwrap();
            let group = s.n_head / s.n_kv;
            for i in 0..n {
                let pos = pos0 + i;
                for h in 0..s.n_head {
                    for c in 0..s.d {
                        let col = (h / group) * s.d + c;
                        let want = cum[(pos + 1) * kw + col] / (pos + 1) as f64;
                        let got = out[(i * s.n_head + h) * s.d + c] as f64;
                        assert!(
                            (got - want).abs() <= tol,
                            "tier {tier} {dtype:?} heads {}/{} d={} pos {pos} head {h} dim {c}: \
                             got {got}, want {want}",
                            s.n_head,
                            s.n_kv,
                            s.d
                        );
                    }
                }
            }
            pos0 += n;
        }
    }
}

fn causal_mask_exact(tier: Tier) {
    // Integer values in -8..=8: every product and partial sum (up to 200 x 8) is exact in f16
    // and f32.
    let cases = [
        (shape(14, 2, 64), &[200][..]),
        (shape(12, 2, 128), &[5, 123, 1, 64][..]),
        (shape(3, 1, 16), &[129, 8, 63][..]),
    ];
    let values = |rng: &mut Rng, n| rng.vec(n, 8.49).iter().map(|x| x.round()).collect();
    check_causal_means(tier, KvDtype::F16, &cases, 0x3a5c, values, 1e-6 * 8.0);
}
per_tier_test!(causal_mask_exact, crate::causal_mask_exact);

fn fp16_accuracy(tier: Tier) {
    // Prints the measured worst error (relative to max |v|) of the path for the Qwen2.5 shapes,
    // with |q|, |k| up to 4 (scores up to ~30 at head_dim 128, a peaked softmax) and |v| up to 1.
    // The assertions are those of `check_rows`.
    let path = kern(tier).attention_name();
    if cfg!(target_arch = "aarch64") && tier >= Tier::NeonDot {
        let has_fp16 = cfg!(target_arch = "aarch64") && {
            #[cfg(target_arch = "aarch64")]
            let f = std::arch::is_aarch64_feature_detected!("fp16");
            #[cfg(not(target_arch = "aarch64"))]
            let f = false;
            f
        };
        assert_eq!(
            path == "neon-fp16",
            has_fp16,
            "the fp16 path runs exactly when the CPU has FEAT_FP16"
        );
    }
    for (s, t) in [
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            72,
        ),
        (
            Shape {
                n_head: 12,
                n_kv: 2,
                d: 128,
            },
            40,
        ),
    ] {
        let mut rng = Rng(0xacc);
        let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
        let (q, k, v) = (
            rng.vec(t * qw, 4.0),
            rng.vec(t * kw, 4.0),
            rng.vec(t * kw, 1.0),
        );
        let mut cache = KvCache::with_tier(1, s.n_kv, s.d, t, KvDtype::F16, tier).unwrap();
        cache.write(0, 0, &k, &v).unwrap();
        let mut out = vec![0f32; t * qw];
        attention(&q, s.n_head, None, &cache, 0, 0, &mut out).unwrap();
        let (ks, vs) = (
            stored_at(&k, KvDtype::F16, tier),
            stored_at(&v, KvDtype::F16, tier),
        );
        let (worst, worst_a, _) =
            check_rows(tier, kind(tier), &s, &q, &ks, &vs, 0, &out, "accuracy");
        // (For the bf16 path the second figure is in other units: see `bf16_accuracy`.)
        let unit = if kind(tier) == Kind::Bf16 {
            "bf16 inputs: max |error| / (u max |v|)"
        } else {
            "max |error| / (u16 A max |v|)"
        };
        eprintln!(
            "attention path {path} ({tier}), heads {}/{} d={} t={t}: max |error| / max |v| = {worst:.2e}, \
             {unit} = {worst_a:.2}",
            s.n_head, s.n_kv, s.d
        );
    }
}
per_tier_test!(fp16_accuracy, crate::fp16_accuracy);

fn bf16_accuracy(tier: Tier) {
    // The bf16 path runs at the `Avx512Vnni` tier exactly when the CPU has AVX512_BF16 (unless
    // QKERN_ATTN_BF16=0). Where it runs, prints its measured worst errors for the Qwen2.5 shapes
    // and head_dim 80, with |q|, |k| up to 4 (scores up to ~30, a peaked softmax) and up to 1;
    // the assertions (the rigorous bound against the f64 reference of the stored K, V and the
    // tight one against the reference of the bf16-rounded inputs) are those of `check_rows`.
    let path = kern(tier).attention_name();
    if cfg!(target_arch = "x86_64") && tier == Tier::Avx512Vnni {
        #[cfg(target_arch = "x86_64")]
        let has_bf16 = std::arch::is_x86_feature_detected!("avx512bf16");
        #[cfg(not(target_arch = "x86_64"))]
        let has_bf16 = false;
        let off = std::env::var("QKERN_ATTN_BF16").is_ok_and(|v| v.trim() == "0");
        assert_eq!(
            path == "avx512-bf16",
            has_bf16 && !off,
            "the bf16 path runs exactly when the CPU has AVX512_BF16 (QKERN_ATTN_BF16 unset)"
        );
    }
    if kind(tier) != Kind::Bf16 {
        eprintln!("bf16_accuracy: skipped, tier {tier} runs {path}");
        return;
    }
    for (s, t, amp) in [
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            72,
            4.0,
        ),
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            130,
            1.0,
        ),
        (
            Shape {
                n_head: 12,
                n_kv: 2,
                d: 128,
            },
            40,
            4.0,
        ),
        (
            Shape {
                n_head: 5,
                n_kv: 5,
                d: 80,
            },
            67,
            2.0,
        ),
    ] {
        let mut rng = Rng(0xbf16);
        let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
        let (q, k, v) = (
            rng.vec(t * qw, amp),
            rng.vec(t * kw, amp),
            rng.vec(t * kw, 1.0),
        );
        let mut cache = KvCache::with_tier(1, s.n_kv, s.d, t, KvDtype::F16, tier).unwrap();
        cache.write(0, 0, &k, &v).unwrap();
        let mut out = vec![0f32; t * qw];
        attention(&q, s.n_head, None, &cache, 0, 0, &mut out).unwrap();
        let (ks, vs) = (
            stored_at(&k, KvDtype::F16, tier),
            stored_at(&v, KvDtype::F16, tier),
        );
        let (worst, worst_b, worst_ua) =
            check_rows(tier, Kind::Bf16, &s, &q, &ks, &vs, 0, &out, "bf16 accuracy");
        eprintln!(
            "attention path {path} ({tier}), heads {}/{} d={} t={t} |q|,|k| <= {amp}: \
             max |error| / max |v| = {worst:.2e}, max |error| / (u A max |v|) = {worst_ua:.3}, \
             bf16 inputs: max |error| / (u max |v|) = {worst_b:.3} (u = 2^-8)",
            s.n_head, s.n_kv, s.d
        );
    }
}
per_tier_test!(bf16_accuracy, crate::bf16_accuracy);

fn bf16_cache(tier: Tier) {
    // The 16-bit cache stores bf16 (in the bf16 path's layouts) exactly where the tier runs the
    // bf16 path; it still reports `F16`, and `read` returns the stored bf16 values.
    let bf = kern(tier).attention_name() == "avx512-bf16";
    let mut c = KvCache::with_tier(2, 2, 64, 70, KvDtype::F16, tier).unwrap();
    assert_eq!(
        c.stores_bf16(),
        bf,
        "{tier}: {}",
        kern(tier).attention_name()
    );
    assert_eq!(c.dtype(), KvDtype::F16);
    assert_eq!(c.bytes(), 2 * 2 * 2 * 128 * 64 * 2);
    for dtype in [KvDtype::F32, KvDtype::I8] {
        let o = KvCache::with_tier(1, 1, 64, 1, dtype, tier).unwrap();
        assert!(!o.stores_bf16() && o.dtype() == dtype, "{tier} {dtype:?}");
    }
    let mut rng = Rng(0xb16);
    let (k, v) = (rng.vec(67 * 128, 3.0), rng.vec(67 * 128, 0.5));
    // Odd lengths: a position pair of the values half written, then completed.
    c.write(1, 0, &k[..33 * 128], &v[..33 * 128]).unwrap();
    c.write(1, 33, &k[33 * 128..], &v[33 * 128..]).unwrap();
    let round = |x: &[f32]| -> Vec<f32> {
        if bf {
            x.iter().map(|&y| bf16(y)).collect()
        } else {
            x.iter().map(|&y| half::f16::from_f32(y).to_f32()).collect()
        }
    };
    let (ks, vs) = (round(&k), round(&v));
    for pos in [0, 1, 32, 33, 34, 63, 64, 65, 66] {
        for g in 0..2 {
            let at = (pos * 2 + g) * 64;
            assert_eq!(
                c.read(1, pos, g, false).unwrap(),
                ks[at..at + 64],
                "{tier} k {pos}"
            );
            assert_eq!(
                c.read(1, pos, g, true).unwrap(),
                vs[at..at + 64],
                "{tier} v {pos}"
            );
        }
    }
    // A stale non-finite value at the unwritten partner of an odd last position (written, then
    // dropped by a rewrite) must not reach the output: the output of a fresh cache.
    let (n_head, d, t) = (4, 64, 3);
    let q = rng.vec(t * n_head * d, 1.0);
    let (k4, mut v4) = (rng.vec(4 * 2 * d, 2.0), rng.vec(4 * 2 * d, 1.0));
    let mut fresh = KvCache::with_tier(1, 2, d, 8, KvDtype::F16, tier).unwrap();
    fresh
        .write(0, 0, &k4[..3 * 2 * d], &v4[..3 * 2 * d])
        .unwrap();
    let mut want = vec![0f32; t * n_head * d];
    attention(&q, n_head, None, &fresh, 0, 0, &mut want).unwrap();
    v4[3 * 2 * d..].fill(f32::INFINITY);
    v4[3 * 2 * d + 5] = f32::NAN;
    let mut re = KvCache::with_tier(1, 2, d, 8, KvDtype::F16, tier).unwrap();
    re.write(0, 0, &k4, &v4).unwrap();
    let (a, b) = (2 * 2 * d, 3 * 2 * d);
    re.write(0, 2, &k4[a..b], &v4[a..b]).unwrap();
    assert_eq!(re.len(0), 3);
    // Bit-identical, except where the path depends on the largest value ever written to the
    // layer (the aarch64 fp16 path's overflow guard, which the dropped infinities trip: it then
    // computes in f32, within the fp16 path's rounding of the fresh cache's output).
    let same = |got: &[f32], want: &[f32], what: &str| {
        if kern(tier).attention_name().contains("fp16") {
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert!((g - w).abs() <= 1e-2, "{tier} {what} at {i}: {g} vs {w}");
            }
        } else {
            assert_eq!(got, want, "{tier}: {what}");
        }
    };
    let mut got = vec![0f32; t * n_head * d];
    attention(&q, n_head, None, &re, 0, 0, &mut got).unwrap();
    same(&got, &want, "stale partner position");
    // Decode (t = 1) at position 2 alike.
    let (mut g1, mut w1) = (vec![0f32; n_head * d], vec![0f32; n_head * d]);
    let q1 = &q[2 * n_head * d..];
    attention(q1, n_head, None, &re, 0, 2, &mut g1).unwrap();
    attention(q1, n_head, None, &fresh, 0, 2, &mut w1).unwrap();
    same(&g1, &w1, "stale partner position, decode");
}
per_tier_test!(bf16_cache_layout, crate::bf16_cache);

fn int8_dispatch(tier: Tier) {
    // With an int8 cache the dispatcher takes the integer path at `NeonDot` (SDOT) and
    // `NeonI8mm` (SMMLA), and integer `Q K^T` where `Avx512Vnni` runs the bf16 path, unless
    // QKERN_ATTN_I8=0; every other tier (and the f16 / f32 caches) runs its usual path on the
    // dequantized tiles.
    let off = std::env::var("QKERN_ATTN_I8").is_ok_and(|v| v == "0");
    let want = match tier {
        _ if off => None,
        Tier::NeonDot if cfg!(target_arch = "aarch64") => Some("neondot-i8-sdot"),
        Tier::NeonI8mm if cfg!(target_arch = "aarch64") => Some("neoni8mm-i8-smmla"),
        Tier::Avx512Vnni if kind(tier) == Kind::Bf16 => Some("avx512-i8qk"),
        _ => None,
    };
    let got = path_name(tier, KvDtype::I8);
    match want {
        Some(w) => assert_eq!(got, w, "{tier}: the int8 path"),
        None => assert!(!got.contains("-i8"), "{tier}: {got}"),
    }
    for dtype in [KvDtype::F16, KvDtype::F32] {
        assert_eq!(
            path_name(tier, dtype),
            kern(tier).attention_name(),
            "{tier} {dtype:?}"
        );
    }
}
per_tier_test!(int8_dispatch, crate::int8_dispatch);

fn int8_causal_mask_exact(tier: Tier) {
    // `causal_mask_exact` for the int8 cache: integer values in -127..=127 with a 127 in every
    // block of 32, so every block's scale is exactly 1 and the stored values are the integers
    // themselves (exact in f16 and bf16, so every path's sums are exact; the int8 path's
    // quantized weights are exactly 255).
    // The fp16 path (dequantized tiles, QKERN_ATTN_I8=0) sums these values in f16, which holds
    // integers only up to 2048: its mask is checked by `causal_mask_exact`.
    if kind_for(tier, KvDtype::I8) == Kind::Fp16 {
        eprintln!("int8_causal_mask_exact: skipped, {tier} runs the fp16 path on the int8 cache");
        return;
    }
    let cases = [
        (shape(14, 2, 64), &[200][..]),
        (shape(12, 2, 128), &[5, 123, 1, 64][..]),
        (shape(3, 1, 32), &[129, 8, 63, 1, 2][..]),
    ];
    let values = |rng: &mut Rng, n| {
        let mut v: Vec<f32> = rng.vec(n, 127.0).iter().map(|x| x.round()).collect();
        for (b, blk) in v.chunks_exact_mut(32).enumerate() {
            blk[b % 32] = 127.0;
        }
        v
    };
    check_causal_means(tier, KvDtype::I8, &cases, 0x3a5d, values, 1e-6 * 127.0);
}
per_tier_test!(int8_causal_mask_exact, crate::int8_causal_mask_exact);

fn int8_chunked_equals_one_shot(tier: Tier) {
    // One-shot and chunked prefill over the int8 cache: each within the bound of the reference
    // (`check_rows`), so within twice the bound of each other; prints how close they are.
    let s = Shape {
        n_head: 14,
        n_kv: 2,
        d: 64,
    };
    let total = 150;
    let mut rng = Rng(78);
    let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
    let (q, k, v) = (
        rng.vec(total * qw, 2.0),
        rng.vec(total * kw, 2.0),
        rng.vec(total * kw, 1.0),
    );
    let (ks, vs) = (stored(&k, KvDtype::I8), stored(&v, KvDtype::I8));
    let kind = kind_for(tier, KvDtype::I8);
    let mut c1 = KvCache::with_tier(1, s.n_kv, s.d, total, KvDtype::I8, tier).unwrap();
    c1.write(0, 0, &k, &v).unwrap();
    let mut one = vec![0f32; total * qw];
    attention(&q, s.n_head, None, &c1, 0, 0, &mut one).unwrap();
    check_rows(tier, kind, &s, &q, &ks, &vs, 0, &one, "int8 one-shot");
    let mut c2 = KvCache::with_tier(1, s.n_kv, s.d, total, KvDtype::I8, tier).unwrap();
    let mut chunked = vec![0f32; total * qw];
    let mut pos0 = 0;
    for t in [10, 30, 1, 40, 19, 50] {
        c2.write(
            0,
            pos0,
            &k[pos0 * kw..(pos0 + t) * kw],
            &v[pos0 * kw..(pos0 + t) * kw],
        )
        .unwrap();
        let (qc, oc) = (
            &q[pos0 * qw..(pos0 + t) * qw],
            &mut chunked[pos0 * qw..(pos0 + t) * qw],
        );
        attention(qc, s.n_head, None, &c2, 0, pos0, oc).unwrap();
        check_rows(tier, kind, &s, qc, &ks, &vs, pos0, oc, "int8 chunked");
        pos0 += t;
    }
    let diff = one
        .iter()
        .zip(&chunked)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("int8 cache ({tier}): max |one-shot - chunked| = {diff:.2e} (max |v| <= 1)");
}
per_tier_test!(
    int8_chunked_equals_one_shot,
    crate::int8_chunked_equals_one_shot
);

fn int8_accuracy(tier: Tier) {
    // Prints the measured worst error of the path over an int8 cache for the Qwen2.5 shapes
    // (relative to max |v|, and as a share of the bound of `check_rows`), with peaked (|q|, |k|
    // up to 4) and flat (up to 1) softmax rows and prompts longer than a tile and than two steps.
    let path = path_name(tier, KvDtype::I8);
    for (s, t, amp) in [
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            200,
            4.0,
        ),
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            200,
            1.0,
        ),
        (
            Shape {
                n_head: 12,
                n_kv: 2,
                d: 128,
            },
            130,
            4.0,
        ),
        // Longer than two steps of 256 keys.
        (
            Shape {
                n_head: 14,
                n_kv: 2,
                d: 64,
            },
            520,
            2.0,
        ),
    ] {
        let mut rng = Rng(0x18);
        let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
        let (q, k, v) = (
            rng.vec(t * qw, amp),
            rng.vec(t * kw, amp),
            rng.vec(t * kw, 1.0),
        );
        let mut cache = KvCache::with_tier(1, s.n_kv, s.d, t, KvDtype::I8, tier).unwrap();
        cache.write(0, 0, &k, &v).unwrap();
        let mut out = vec![0f32; t * qw];
        attention(&q, s.n_head, None, &cache, 0, 0, &mut out).unwrap();
        let (ks, vs) = (stored(&k, KvDtype::I8), stored(&v, KvDtype::I8));
        let kind = kind_for(tier, KvDtype::I8);
        let (worst, share, worst_u) = check_rows(tier, kind, &s, &q, &ks, &vs, 0, &out, "int8");
        eprintln!(
            "int8 cache, path {path} ({tier}, softmax {}), heads {}/{} d={} t={t} \
             |q|,|k| <= {amp}: \
             max |error| / max |v| = {worst:.2e}{}",
            softmax_name(kind),
            s.n_head,
            s.n_kv,
            s.d,
            if kind == Kind::I8 || kind == Kind::I8Qk {
                format!(
                    " (against the int8-rounded Q; largest share of its bound = {share:.3}), \
                     {worst_u:.2e} against the unrounded Q"
                )
            } else {
                String::new()
            }
        );
    }
}
per_tier_test!(int8_accuracy, crate::int8_accuracy);

/// `int8_accuracy` at 2048 positions (one KV head, 2 query heads; minutes under qemu):
/// `cargo test --release --test attention -- --ignored int8_accuracy_2048 --nocapture`.
#[test]
#[ignore]
fn int8_accuracy_2048() {
    let s = Shape {
        n_head: 2,
        n_kv: 1,
        d: 64,
    };
    let t = 2048;
    for tier in Tier::available() {
        for amp in [2.0, 4.0] {
            let mut rng = Rng(0x2048);
            let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
            let (q, k, v) = (
                rng.vec(t * qw, amp),
                rng.vec(t * kw, amp),
                rng.vec(t * kw, 1.0),
            );
            let mut cache = KvCache::with_tier(1, s.n_kv, s.d, t, KvDtype::I8, tier).unwrap();
            cache.write(0, 0, &k, &v).unwrap();
            let mut out = vec![0f32; t * qw];
            attention(&q, s.n_head, None, &cache, 0, 0, &mut out).unwrap();
            let (ks, vs) = (stored(&k, KvDtype::I8), stored(&v, KvDtype::I8));
            let kind = kind_for(tier, KvDtype::I8);
            let (worst, share, worst_u) =
                check_rows(tier, kind, &s, &q, &ks, &vs, 0, &out, "int8 2048");
            eprintln!(
                "int8 cache, {} ({tier}, softmax {}), t={t} |q|,|k| <= {amp}: max |error| / \
                 max |v| = {worst:.2e}, share of the bound {share:.3}, unrounded Q {worst_u:.2e}",
                path_name(tier, KvDtype::I8),
                softmax_name(kind)
            );
        }
    }
}

/// The int8 path at `NeonI8mm` (SMMLA / USMMLA; at d = 64 its `Q K^T` tile, `P V` loop and f16
/// softmax loop in asm) and at `NeonDot` (SDOT, the intrinsics) compute the same integer sums
/// and the same float operations in the same order: their outputs agree bit for bit, prefill
/// (several steps, tails) and a decode after it, at d = 64, 128 and 32.
#[test]
fn int8_tiers_bit_identical() {
    let tiers = Tier::available();
    if !(tiers.contains(&Tier::NeonDot) && tiers.contains(&Tier::NeonI8mm)) {
        eprintln!("int8_tiers_bit_identical: skipped (needs NeonDot and NeonI8mm)");
        return;
    }
    for (s, t) in [
        (shape(14, 2, 64), 600),
        (shape(12, 2, 128), 300),
        (shape(3, 1, 32), 70),
    ] {
        let mut rng = Rng(0xb17);
        let (qw, kw) = (s.n_head * s.d, s.n_kv * s.d);
        let (q, k, v) = (
            rng.vec((t + 1) * qw, 3.0),
            rng.vec((t + 1) * kw, 3.0),
            rng.vec((t + 1) * kw, 1.0),
        );
        let run = |tier: Tier| {
            let mut cache = KvCache::with_tier(1, s.n_kv, s.d, t + 1, KvDtype::I8, tier).unwrap();
            cache.write(0, 0, &k, &v).unwrap();
            let mut out = vec![0f32; (t + 1) * qw];
            attention(
                &q[..t * qw],
                s.n_head,
                None,
                &cache,
                0,
                0,
                &mut out[..t * qw],
            )
            .unwrap();
            let (qd, od) = (&q[t * qw..], &mut out[t * qw..]);
            attention(qd, s.n_head, None, &cache, 0, t, od).unwrap();
            out
        };
        let (a, b) = (run(Tier::NeonDot), run(Tier::NeonI8mm));
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "d = {}: NeonDot and NeonI8mm differ", s.d);
    }
}

/// One prefill of 512 tokens for the Qwen2.5-0.5B shape (14 heads, 2 KV heads, head_dim 64) at
/// the process tier, for instruction counting under qemu with `../shared/tools/qcount`:
/// `cargo test --release --target aarch64-unknown-linux-gnu --test attention --no-run`, then run
/// the binary with `--ignored --exact count_attention_512` under `qcount-run`.
#[test]
#[ignore]
fn count_attention_512() {
    let (n_head, n_kv, d, t) = (14, 2, 64, 512);
    let mut rng = Rng(5);
    let q = rng.vec(t * n_head * d, 2.0);
    let k = rng.vec(t * n_kv * d, 2.0);
    let v = rng.vec(t * n_kv * d, 1.0);
    let mut cache = KvCache::new(1, n_kv, d, t, KvDtype::F16).unwrap();
    cache.write(0, 0, &k, &v).unwrap();
    let mut out = vec![0f32; q.len()];
    attention(&q, n_head, None, &cache, 0, 0, &mut out).unwrap();
    eprintln!("path {}", kern(Tier::active()).attention_name());
}
