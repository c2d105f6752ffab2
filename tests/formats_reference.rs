//! The reference crate's GGUF weight formats (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, and Q8_0) against
//! independent implementations, and its reference matmuls against plain f64 dot products.
//!
//! `tests/data/format_vectors.bin` holds blocks made by llama.cpp's own quantizer (llama-quantize) and
//! their dequantization by the `gguf` package's numpy dequantizers (`scripts/gen_format_vectors.py`
//! documents the layout and how the file was made). This file uses only `qkern_reference`, so the
//! oracle is checked on its own before any kernel is checked against it.

use proptest::prelude::*;
use qkern_reference as r;
use r::{ActBlock, ActBlockK};

mod common;
use common::format_vectors::*;

fn q8_blocks(raw: &[u8]) -> Vec<r::BlockQ8_0> {
    raw.chunks_exact(34)
        .map(|b| r::BlockQ8_0 {
            d: half::f16::from_le_bytes([b[0], b[1]]),
            qs: std::array::from_fn(|i| b[2 + i] as i8),
        })
        .collect()
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: value {i}: {g} vs {w}");
    }
}

/// Reference dequantization of one entry, through `dequantize_*`, and row by row through
/// `embedding_*`.
fn dequantize(e: &Entry) -> (Vec<f32>, Vec<f32>) {
    let k = e.cols;
    macro_rules! both {
        ($b:expr, $deq:path, $emb:path) => {{
            let b = $b;
            let rows: Vec<f32> = (0..e.rows).flat_map(|i| $emb(&b, k, i)).collect();
            ($deq(&b), rows)
        }};
    }
    match e.ty {
        Q4_1 => both!(
            blocks::<r::BlockQ4_1>(&e.raw),
            r::dequantize_q4_1,
            r::embedding_q4_1
        ),
        Q5_0 => both!(
            blocks::<r::BlockQ5_0>(&e.raw),
            r::dequantize_q5_0,
            r::embedding_q5_0
        ),
        Q5_1 => both!(
            blocks::<r::BlockQ5_1>(&e.raw),
            r::dequantize_q5_1,
            r::embedding_q5_1
        ),
        Q8_0 => both!(q8_blocks(&e.raw), r::dequantize_q8_0, r::embedding_q8_0),
        Q4_K => both!(
            blocks::<r::BlockQ4K>(&e.raw),
            r::dequantize_q4k,
            r::embedding_q4k
        ),
        Q5_K => both!(
            blocks::<r::BlockQ5K>(&e.raw),
            r::dequantize_q5k,
            r::embedding_q5k
        ),
        Q6_K => both!(
            blocks::<r::BlockQ6K>(&e.raw),
            r::dequantize_q6k,
            r::embedding_q6k
        ),
        _ => unreachable!(),
    }
}

#[test]
fn every_format_is_covered() {
    let v = vectors();
    for ty in [Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K] {
        let n: usize = v
            .iter()
            .filter(|e| e.ty == ty)
            .map(|e| e.rows * e.cols)
            .sum();
        assert!(n >= 512 * 6, "type {ty}: {n} values");
    }
    // The 32-block formats also come in rows that are not a multiple of 256.
    for ty in [Q4_1, Q5_0, Q5_1, Q8_0] {
        assert!(v.iter().any(|e| e.ty == ty && e.cols % 256 != 0));
    }
}

#[test]
fn block_layouts_are_gguf_sizes() {
    assert_eq!(size_of::<r::BlockQ4_1>(), 20);
    assert_eq!(size_of::<r::BlockQ5_0>(), 22);
    assert_eq!(size_of::<r::BlockQ5_1>(), 24);
    assert_eq!(size_of::<r::BlockQ4K>(), 144);
    assert_eq!(size_of::<r::BlockQ5K>(), 176);
    assert_eq!(size_of::<r::BlockQ6K>(), 210);
    assert_eq!(std::mem::offset_of!(r::BlockQ6K, d), 208);
    assert_eq!(std::mem::offset_of!(r::BlockQ5K, qs), 48);
}

#[test]
fn dequantize_is_bit_identical_to_gguf_py() {
    for e in vectors() {
        let (all, rows) = dequantize(&e);
        let what = format!("type {} {}", e.ty, e.name);
        assert_bits_eq(&all, &e.y, &what);
        assert_bits_eq(&rows, &e.y, &format!("{what} (embedding rows)"));
    }
}

/// The same value from the integer accessors, with the formula evaluated in f32 in gguf-py's order.
fn from_parts(e: &Entry) -> Vec<f32> {
    let mut y = Vec::with_capacity(e.rows * e.cols);
    match e.ty {
        Q4_1 => {
            for b in blocks::<r::BlockQ4_1>(&e.raw) {
                let q = r::q4_1_values(&b);
                assert!(q.iter().all(|&q| q <= 15));
                y.extend(q.map(|q| b.d.to_f32() * q as f32 + b.m.to_f32()));
            }
        }
        Q5_0 => {
            for b in blocks::<r::BlockQ5_0>(&e.raw) {
                let q = r::q5_0_values(&b);
                assert!(q.iter().all(|&q| (-16..=15).contains(&q)));
                y.extend(q.map(|q| b.d.to_f32() * q as f32));
            }
        }
        Q5_1 => {
            for b in blocks::<r::BlockQ5_1>(&e.raw) {
                let q = r::q5_1_values(&b);
                assert!(q.iter().all(|&q| q <= 31));
                y.extend(q.map(|q| b.d.to_f32() * q as f32 + b.m.to_f32()));
            }
        }
        Q8_0 => {
            for b in q8_blocks(&e.raw) {
                y.extend(b.qs.map(|q| q as f32 * b.d.to_f32()));
            }
        }
        Q4_K | Q5_K => {
            let parts: Vec<_> = if e.ty == Q4_K {
                blocks::<r::BlockQ4K>(&e.raw)
                    .iter()
                    .map(|b| (b.d, b.dmin, r::q4k_parts(b), 15))
                    .collect()
            } else {
                blocks::<r::BlockQ5K>(&e.raw)
                    .iter()
                    .map(|b| (b.d, b.dmin, r::q5k_parts(b), 31))
                    .collect()
            };
            for (d, dmin, (sc, m, q), qmax) in parts {
                assert!(sc.iter().chain(&m).all(|&s| s <= 63));
                assert!(q.iter().all(|&q| q <= qmax));
                for i in 0..256 {
                    let dl = d.to_f32() * sc[i / 32] as f32;
                    let ml = dmin.to_f32() * m[i / 32] as f32;
                    y.push(dl * q[i] as f32 - ml);
                }
            }
        }
        Q6_K => {
            for b in blocks::<r::BlockQ6K>(&e.raw) {
                let (sc, q) = r::q6k_parts(&b);
                assert!(q.iter().all(|&q| (-32..=31).contains(&q)));
                for i in 0..256 {
                    y.push(b.d.to_f32() * sc[i / 16] as f32 * q[i] as f32);
                }
            }
        }
        _ => unreachable!(),
    }
    y
}

#[test]
fn integer_accessors_reproduce_dequantize() {
    for e in vectors() {
        assert_bits_eq(&from_parts(&e), &e.y, &format!("type {} {}", e.ty, e.name));
    }
}

#[test]
fn known_values_survive_llama_quantize() {
    // The all-zero rows dequantize to zeros in every format (row 1 of both tensors).
    for e in vectors() {
        assert!(
            e.y[e.cols..2 * e.cols].iter().all(|&v| v == 0.0),
            "type {} {}",
            e.ty,
            e.name
        );
    }
}

// ---- activations of 256 ----

/// The rule, written out independently: `d = absmax / 127`, `id = 1/d` (0 if d = 0 or 1/d is not
/// finite), `q = round_half_away(x * id)`.
fn check_rule(x: &[f32], a: &ActBlockK) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    assert_eq!(a.d.to_bits(), d.to_bits());
    let id = if d == 0.0 || (1.0 / d).is_infinite() {
        0.0
    } else {
        1.0 / d
    };
    for (i, (&v, &q)) in x.iter().zip(&a.qs).enumerate() {
        assert_eq!(q, (v * id).round() as i8, "element {i} of {x:?}");
        assert!(q != i8::MIN);
    }
    for j in 0..16 {
        let s: i32 = a.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
        assert_eq!(a.bsums[j] as i32, s);
    }
}

fn activation_data() -> impl Strategy<Value = Vec<f32>> {
    (
        1usize..4,
        prop::sample::select(vec![1e-40f32, 1e-38, 1e-6, 1.0, 300.0, 3e38]),
    )
        .prop_flat_map(|(nb, scale)| {
            prop::collection::vec(
                prop_oneof![
                    4 => (-1f32..1f32).prop_map(move |v| v * scale),
                    1 => Just(0f32),
                    1 => (-127i32..=127).prop_map(|v| v as f32 + 0.5),
                ],
                nb * 256,
            )
        })
}

proptest! {
    #[test]
    fn activation_k_follows_the_rule(x in activation_data()) {
        let a = r::quantize_activations_k(&x);
        prop_assert_eq!(a.len(), x.len() / 256);
        for (b, xb) in a.iter().zip(x.chunks_exact(256)) {
            check_rule(xb, b);
        }
        let y = r::dequantize_activations_k(&a);
        for (i, v) in y.iter().enumerate() {
            let b = &a[i / 256];
            prop_assert_eq!(v.to_bits(), (b.d * b.qs[i % 256] as f32).to_bits());
        }
    }

    #[test]
    fn activation_k_equals_32_blocks_with_one_absmax(x in activation_data(), sign in any::<bool>()) {
        // Give every 32-block of a 256-block the same absmax; then the blocks of 32 and of 256
        // quantize identically.
        let mut x = x;
        for b in x.chunks_exact_mut(256) {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (s, sub) in b.chunks_exact_mut(32).enumerate() {
                sub[s % 32] = if sign ^ (s % 2 == 0) { amax } else { -amax };
            }
        }
        let k = r::quantize_activations_k(&x);
        let a = r::quantize_activations(&x);
        for (i, b) in a.iter().enumerate() {
            let kb = &k[i / 8];
            prop_assert_eq!(b.d.to_bits(), kb.d.to_bits());
            prop_assert_eq!(&b.qs[..], &kb.qs[32 * (i % 8)..32 * (i % 8) + 32]);
        }
    }
}

#[test]
fn activation_k_edge_cases() {
    let mut x = vec![0f32; 256 * 4];
    // Ties: absmax 127 gives d = 1 and x = k + 0.5 rounds away from zero.
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    // A block of f32 subnormals: 1/d overflows, every q is 0.
    x[256..512].fill(1e-44);
    // A block near f32::MAX.
    x[512] = 3e38;
    x[513] = -1.5e38;
    // A single outlier in an otherwise tiny block.
    x[800] = -1000.0;
    x[801] = 3.0;
    let a = r::quantize_activations_k(&x);
    for (b, xb) in a.iter().zip(x.chunks_exact(256)) {
        check_rule(xb, b);
    }
    assert_eq!(&a[0].qs[..3], &[127, 3, -3]);
    assert_eq!(a[1].qs, [0; 256]);
    assert_eq!(a[2].qs[..2], [127, -64]);
    assert_eq!(a[3].qs[32..34], [-127, 0]);
    assert_eq!(a[3].bsums[2], -127);
}

// ---- matmuls ----

fn act_f64(a: &[ActBlock]) -> Vec<f64> {
    a.iter()
        .flat_map(|b| b.qs.map(|q| b.d as f64 * q as f64))
        .collect()
}

fn act_k_f64(a: &[ActBlockK]) -> Vec<f64> {
    a.iter()
        .flat_map(|b| b.qs.map(|q| b.d as f64 * q as f64))
        .collect()
}

/// f64 values of weight blocks, from the integer accessors (exact in f64).
trait Weights: bytemuck::Pod {
    fn values(&self) -> Vec<f64>;
}

impl Weights for r::BlockQ4_1 {
    fn values(&self) -> Vec<f64> {
        let (d, m) = (self.d.to_f64(), self.m.to_f64());
        r::q4_1_values(self).map(|q| d * q as f64 + m).to_vec()
    }
}
impl Weights for r::BlockQ5_0 {
    fn values(&self) -> Vec<f64> {
        r::q5_0_values(self)
            .map(|q| self.d.to_f64() * q as f64)
            .to_vec()
    }
}
impl Weights for r::BlockQ5_1 {
    fn values(&self) -> Vec<f64> {
        let (d, m) = (self.d.to_f64(), self.m.to_f64());
        r::q5_1_values(self).map(|q| d * q as f64 + m).to_vec()
    }
}
fn kvalues(d: f64, dmin: f64, (sc, m, q): ([u8; 8], [u8; 8], [u8; 256])) -> Vec<f64> {
    (0..256)
        .map(|i| d * sc[i / 32] as f64 * q[i] as f64 - dmin * m[i / 32] as f64)
        .collect()
}
impl Weights for r::BlockQ4K {
    fn values(&self) -> Vec<f64> {
        kvalues(self.d.to_f64(), self.dmin.to_f64(), r::q4k_parts(self))
    }
}
impl Weights for r::BlockQ5K {
    fn values(&self) -> Vec<f64> {
        kvalues(self.d.to_f64(), self.dmin.to_f64(), r::q5k_parts(self))
    }
}
impl Weights for r::BlockQ6K {
    fn values(&self) -> Vec<f64> {
        let (sc, q) = r::q6k_parts(self);
        (0..256)
            .map(|i| self.d.to_f64() * sc[i / 16] as f64 * q[i] as f64)
            .collect()
    }
}

type Matmul<W, A> = fn(&[W], &[A], usize, usize, Option<&[f32]>) -> Vec<f64>;

/// `matmul` agrees with an f64 dot of dequantized weights and activations within 1e-9 of the error
/// scale, and the error scale bounds |y|.
#[allow(clippy::too_many_arguments)]
fn check_matmul<W: Weights, A>(
    w: &[W],
    act: &[A],
    act_values: &[f64],
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
    matmul: Matmul<W, A>,
    scale: Matmul<W, A>,
) {
    let wv: Vec<f64> = w.iter().flat_map(Weights::values).collect();
    let m = act_values.len() / k;
    let y = matmul(w, act, n, k, bias);
    let s = scale(w, act, n, k, bias);
    assert_eq!(y.len(), m * n);
    for i in 0..m {
        for j in 0..n {
            let mut dot: f64 = wv[j * k..(j + 1) * k]
                .iter()
                .zip(&act_values[i * k..(i + 1) * k])
                .map(|(a, b)| a * b)
                .sum();
            dot += bias.map_or(0.0, |b| b[j] as f64);
            let (yv, sv) = (y[i * n + j], s[i * n + j]);
            assert!(
                (yv - dot).abs() <= 1e-9 * sv,
                "y[{i}][{j}] = {yv}, f64 dot {dot}, scale {sv}"
            );
            assert!(
                yv.abs() <= sv * (1.0 + 1e-12),
                "scale {sv} below |y| = {yv}"
            );
        }
    }
}

fn activations(m: usize, k: usize, seed: u64) -> Vec<f32> {
    // A small deterministic generator: rows of different magnitudes, the last one all zero.
    let mut s = seed;
    (0..m * k)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            let row = i / k;
            if row == m - 1 {
                0.0
            } else {
                u * [1.0, 1e-3, 40.0][row % 3]
            }
        })
        .collect()
}

#[test]
fn matmuls_agree_with_f64_dots_on_llama_quantize_blocks() {
    let m = 4;
    for e in vectors() {
        let (n, k) = (e.rows, e.cols);
        let x = activations(m, k, e.ty as u64);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 0.5).collect();
        for bias in [None, Some(&bias[..])] {
            if e.ty == Q4_1 || e.ty == Q5_0 || e.ty == Q5_1 {
                let a = r::quantize_activations(&x);
                let av = act_f64(&a);
                match e.ty {
                    Q4_1 => check_matmul(
                        &blocks::<r::BlockQ4_1>(&e.raw),
                        &a,
                        &av,
                        n,
                        k,
                        bias,
                        r::matmul_q4_1,
                        r::matmul_error_scale_q4_1,
                    ),
                    Q5_0 => check_matmul(
                        &blocks::<r::BlockQ5_0>(&e.raw),
                        &a,
                        &av,
                        n,
                        k,
                        bias,
                        r::matmul_q5_0,
                        r::matmul_error_scale_q5_0,
                    ),
                    _ => check_matmul(
                        &blocks::<r::BlockQ5_1>(&e.raw),
                        &a,
                        &av,
                        n,
                        k,
                        bias,
                        r::matmul_q5_1,
                        r::matmul_error_scale_q5_1,
                    ),
                }
            } else if e.ty != Q8_0 {
                let a = r::quantize_activations_k(&x);
                let av = act_k_f64(&a);
                match e.ty {
                    Q4_K => check_matmul(
                        &blocks::<r::BlockQ4K>(&e.raw),
                        &a,
                        &av,
                        n,
                        k,
                        bias,
                        r::matmul_q4k,
                        r::matmul_error_scale_q4k,
                    ),
                    Q5_K => check_matmul(
                        &blocks::<r::BlockQ5K>(&e.raw),
                        &a,
                        &av,
                        n,
                        k,
                        bias,
                        r::matmul_q5k,
                        r::matmul_error_scale_q5k,
                    ),
                    _ => check_matmul(
                        &blocks::<r::BlockQ6K>(&e.raw),
                        &a,
                        &av,
                        n,
                        k,
                        bias,
                        r::matmul_q6k,
                        r::matmul_error_scale_q6k,
                    ),
                }
            }
        }
    }
}

/// Random weight blocks: every byte random, except the f16 scales, which are finite and chosen
/// from several magnitudes (subnormal included).
fn random_blocks<W: bytemuck::Pod + std::fmt::Debug>(
    n: usize,
    scale_offsets: &'static [usize],
) -> impl Strategy<Value = Vec<W>> {
    let size = size_of::<W>();
    (
        prop::collection::vec(any::<u8>(), n * size),
        prop::collection::vec(
            prop::sample::select(vec![0x0001u16, 0x03ff, 0x1400, 0x2e66, 0x3c00, 0x5640]),
            n * scale_offsets.len(),
        ),
        prop::collection::vec(any::<bool>(), n * scale_offsets.len()),
    )
        .prop_map(move |(mut bytes, scales, signs)| {
            for b in 0..n {
                for (s, &off) in scale_offsets.iter().enumerate() {
                    let i = b * scale_offsets.len() + s;
                    let v = scales[i] | if signs[i] { 0x8000 } else { 0 };
                    bytes[b * size + off..b * size + off + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            bytes
                .chunks_exact(size)
                .map(bytemuck::pod_read_unaligned)
                .collect()
        })
}

fn random_acts(m: usize, k: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![
            4 => -1f32..1f32,
            1 => (-1f32..1f32).prop_map(|v| v * 1e3),
            1 => Just(0f32),
        ],
        m * k,
    )
}

// Whole-block shapes: N = 3 rows, K = 2 super-blocks (or 16 blocks of 32), M = 2.
const N: usize = 3;
const KK: usize = 512;
const M: usize = 2;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn q4_1_matmul_random(w in random_blocks::<r::BlockQ4_1>(N * KK / 32, &[0, 2]), x in random_acts(M, KK)) {
        let a = r::quantize_activations(&x);
        check_matmul(&w, &a, &act_f64(&a), N, KK, None, r::matmul_q4_1, r::matmul_error_scale_q4_1);
    }

    #[test]
    fn q5_0_matmul_random(w in random_blocks::<r::BlockQ5_0>(N * KK / 32, &[0]), x in random_acts(M, KK)) {
        let a = r::quantize_activations(&x);
        check_matmul(&w, &a, &act_f64(&a), N, KK, None, r::matmul_q5_0, r::matmul_error_scale_q5_0);
    }

    #[test]
    fn q5_1_matmul_random(w in random_blocks::<r::BlockQ5_1>(N * KK / 32, &[0, 2]), x in random_acts(M, KK)) {
        let a = r::quantize_activations(&x);
        check_matmul(&w, &a, &act_f64(&a), N, KK, None, r::matmul_q5_1, r::matmul_error_scale_q5_1);
    }

    #[test]
    fn q4k_matmul_random(w in random_blocks::<r::BlockQ4K>(N * KK / 256, &[0, 2]), x in random_acts(M, KK)) {
        let a = r::quantize_activations_k(&x);
        check_matmul(&w, &a, &act_k_f64(&a), N, KK, None, r::matmul_q4k, r::matmul_error_scale_q4k);
    }

    #[test]
    fn q5k_matmul_random(w in random_blocks::<r::BlockQ5K>(N * KK / 256, &[0, 2]), x in random_acts(M, KK)) {
        let a = r::quantize_activations_k(&x);
        check_matmul(&w, &a, &act_k_f64(&a), N, KK, None, r::matmul_q5k, r::matmul_error_scale_q5k);
    }

    #[test]
    fn q6k_matmul_random(w in random_blocks::<r::BlockQ6K>(N * KK / 256, &[208]), x in random_acts(M, KK)) {
        let a = r::quantize_activations_k(&x);
        check_matmul(&w, &a, &act_k_f64(&a), N, KK, None, r::matmul_q6k, r::matmul_error_scale_q6k);
    }
}

#[test]
fn k_matmul_uses_bsums_for_the_min_term() {
    // One Q4_K block with q = 0 everywhere, sc = 0 and m = 1 for every sub-block, dmin = 1: the
    // result is -d_a * sum(bsums), whatever qs says.
    let mut scales = [0u8; 12];
    scales[4..8].fill(1); // m[0..4] = 1
    scales[8..12].fill(0x10); // m[4..8] = 1
    let w = r::BlockQ4K {
        d: half::f16::ONE,
        dmin: half::f16::ONE,
        scales,
        qs: [0; 128],
    };
    assert_eq!(r::q4k_parts(&w).1, [1; 8]);
    let a = ActBlockK {
        d: 0.5,
        qs: [0; 256],
        bsums: std::array::from_fn(|j| j as i16 - 3),
    };
    let want = -0.5 * (0..16).map(|j| j as f64 - 3.0).sum::<f64>();
    assert_eq!(r::matmul_q4k(&[w], &[a], 1, 256, None), vec![want]);
    assert_eq!(
        r::matmul_error_scale_q4k(&[w], &[a], 1, 256, Some(&[-2.0])),
        vec![want.abs() + 2.0]
    );
}

/// A plain f32 evaluation, as a kernel might do it: one f32 value per block from the exact integer
/// sums, accumulated in f32 in block order.
fn f32_eval<W, A>(
    w: &[W],
    a: &[A],
    n: usize,
    kb: usize,
    block: impl Fn(&W, &A) -> f32,
) -> Vec<f32> {
    let m = a.len() / kb;
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..kb).fold(0f32, |acc, b| acc + block(&w[j * kb + b], &a[i * kb + b]));
        }
    }
    y
}

fn check_tolerance(y32: &[f32], y: &[f64], scale: &[f64], k: usize, what: &str) {
    let tol = (k / 32 + 3) as f64 * 2f64.powi(-24);
    for (i, ((&g, &r), &s)) in y32.iter().zip(y).zip(scale).enumerate() {
        assert!(
            (g as f64 - r).abs() <= tol * s,
            "{what}: output {i}: f32 {g}, reference {r}, scale {s}"
        );
    }
}

#[test]
fn error_scales_bound_an_f32_evaluation() {
    for e in vectors() {
        let (n, k) = (e.rows, e.cols);
        let x = activations(4, k, 7 + e.ty as u64);
        let what = format!("type {} {}", e.ty, e.name);
        match e.ty {
            Q4_1 | Q5_0 | Q5_1 => {
                let a = r::quantize_activations(&x);
                let kb = k / 32;
                let (y32, y, s) = match e.ty {
                    Q4_1 => {
                        let w = blocks::<r::BlockQ4_1>(&e.raw);
                        let y32 = f32_eval(&w, &a, n, kb, |w, a| {
                            let (isum, asum) = r::block_dot_q4_1(w, a);
                            w.d.to_f32() * a.d * isum as f32 + w.m.to_f32() * a.d * asum as f32
                        });
                        let y = r::matmul_q4_1(&w, &a, n, k, None);
                        (y32, y, r::matmul_error_scale_q4_1(&w, &a, n, k, None))
                    }
                    Q5_0 => {
                        let w = blocks::<r::BlockQ5_0>(&e.raw);
                        let y32 = f32_eval(&w, &a, n, kb, |w, a| {
                            w.d.to_f32() * a.d * r::block_dot_q5_0(w, a) as f32
                        });
                        let y = r::matmul_q5_0(&w, &a, n, k, None);
                        (y32, y, r::matmul_error_scale_q5_0(&w, &a, n, k, None))
                    }
                    _ => {
                        let w = blocks::<r::BlockQ5_1>(&e.raw);
                        let y32 = f32_eval(&w, &a, n, kb, |w, a| {
                            let (isum, asum) = r::block_dot_q5_1(w, a);
                            w.d.to_f32() * a.d * isum as f32 + w.m.to_f32() * a.d * asum as f32
                        });
                        let y = r::matmul_q5_1(&w, &a, n, k, None);
                        (y32, y, r::matmul_error_scale_q5_1(&w, &a, n, k, None))
                    }
                };
                check_tolerance(&y32, &y, &s, k, &what);
            }
            Q4_K | Q5_K | Q6_K => {
                let a = r::quantize_activations_k(&x);
                let kb = k / 256;
                let (y32, y, s) = match e.ty {
                    Q4_K => {
                        let w = blocks::<r::BlockQ4K>(&e.raw);
                        let y32 = f32_eval(&w, &a, n, kb, |w, a| {
                            let (s, m) = r::block_dot_q4k(w, a);
                            a.d * w.d.to_f32() * s as f32 - a.d * w.dmin.to_f32() * m as f32
                        });
                        let y = r::matmul_q4k(&w, &a, n, k, None);
                        (y32, y, r::matmul_error_scale_q4k(&w, &a, n, k, None))
                    }
                    Q5_K => {
                        let w = blocks::<r::BlockQ5K>(&e.raw);
                        let y32 = f32_eval(&w, &a, n, kb, |w, a| {
                            let (s, m) = r::block_dot_q5k(w, a);
                            a.d * w.d.to_f32() * s as f32 - a.d * w.dmin.to_f32() * m as f32
                        });
                        let y = r::matmul_q5k(&w, &a, n, k, None);
                        (y32, y, r::matmul_error_scale_q5k(&w, &a, n, k, None))
                    }
                    _ => {
                        let w = blocks::<r::BlockQ6K>(&e.raw);
                        let y32 = f32_eval(&w, &a, n, kb, |w, a| {
                            a.d * w.d.to_f32() * r::block_dot_q6k(w, a) as f32
                        });
                        let y = r::matmul_q6k(&w, &a, n, k, None);
                        (y32, y, r::matmul_error_scale_q6k(&w, &a, n, k, None))
                    }
                };
                check_tolerance(&y32, &y, &s, k, &what);
            }
            _ => {}
        }
    }
}
