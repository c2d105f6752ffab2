//! One reference check for every weight format's matmul (Q4_0 in tests/matmul.rs, Q8_0 in
//! tests/matmul_q8.rs): the formats differ only in how blocks are made, packed and multiplied,
//! which `TestFormat` adds to the crate's `WeightFormat`
//! (a new format gets this whole matrix by implementing `TestFormat`); shapes, sub-ranges, tolerance and misuse cases are shared.
//!
//! Tolerance: the kernel's integer block sums must be exact, so the only difference from the f64
//! reference is f32 rounding of the block combination. `qkern_reference::matmul_error_scale` bounds
//! it: `|y - y_ref| <= (K/32 + 3) * 2^-24 * sum_b |d_w d_x isum_b|` (+ |bias|), for any summation
//! order. The tests allow 2x that bound. An integer error of one unit in one block is
//! `d_w * d_x`, far above the bound, so it cannot hide in the tolerance.

use super::{guard::Guarded, to_ref_act, to_ref_q4, Rng};
use proptest::prelude::*;
use qkern::parallel::ThreadPool;
use qkern::quant::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use qkern::{Error, Packed, QuantizedActivations, Tier, WeightFormat};
use qkern_reference as r;
use std::ops::Range;

/// What the test matrix needs of a weight format beyond the crate's [`WeightFormat`]: random and
/// uniform blocks, and the reference.
pub trait TestFormat: WeightFormat {
    /// Random blocks covering every quantized value, scales over several octaves.
    fn random_blocks(rng: &mut Rng, n: usize) -> Vec<Self>;
    /// A block with every quant the same (`byte` as the format stores it) and scale 1.
    fn uniform_block(byte: u8) -> Self;
    /// The f64 reference result of `x` (quantized by the reference in the format's activation
    /// format) times the blocks, and the per-element error scale (see the module comment).
    fn reference(
        blocks: &[Self],
        x: &[f32],
        n: usize,
        k: usize,
        bias: Option<&[f32]>,
    ) -> (Vec<f64>, Vec<f64>);
    /// Format-specific checks of a freshly packed matrix.
    fn check_packed(w: &Packed<Self>, blocks: &[Self], n: usize, k: usize) {
        assert_eq!((w.n(), w.k()), (n, k));
        // Row dequantization matches the format's reference dequantization of that row.
        let kb = k / Self::BLOCK_LEN;
        let mut row = Guarded::filled(f32::NAN, k);
        let mut want = vec![0f32; k];
        for j in [0, n / 2, n - 1] {
            w.dequantize_row(j, &mut row).unwrap();
            Self::dequantize(&blocks[j * kb..(j + 1) * kb], &mut want).unwrap();
            assert_eq!(&row[..], &want[..]);
        }
    }
}

/// The reference of a format from its block conversion, reference matmul and block dot product.
macro_rules! reference_via {
    ($to_ref:path, $ref_matmul:path, $block_dot:path) => {
        fn reference(
            blocks: &[Self],
            x: &[f32],
            n: usize,
            k: usize,
            bias: Option<&[f32]>,
        ) -> (Vec<f64>, Vec<f64>) {
            let act = &r::quantize_activations(x)[..];
            let rw = $to_ref(blocks);
            let want = $ref_matmul(&rw, act, n, k, bias);
            let scale = r::matmul_error_scale(&rw, act, n, k, bias, |w, a| {
                (w.d.to_f64(), $block_dot(w, a))
            });
            (want, scale)
        }
    };
}

/// Q4_0 weights.
pub type Q4 = BlockQ4_0;
/// Q8_0 weights.
pub type Q8 = BlockQ8_0;

impl TestFormat for BlockQ4_0 {
    fn random_blocks(rng: &mut Rng, n: usize) -> Vec<BlockQ4_0> {
        rng.q4_blocks(n)
    }
    fn uniform_block(byte: u8) -> BlockQ4_0 {
        BlockQ4_0 {
            d: half::f16::ONE,
            qs: [byte; 16],
        }
    }
    reference_via!(to_ref_q4, r::matmul_q4_0, r::block_dot_q4);
}

/// qkern Q8_0 blocks as the reference crate's own type.
pub fn to_ref_q8(b: &[BlockQ8_0]) -> Vec<r::BlockQ8_0> {
    b.iter()
        .map(|b| r::BlockQ8_0 { d: b.d, qs: b.qs })
        .collect()
}

impl TestFormat for BlockQ8_0 {
    /// Every int8 value including -128.
    fn random_blocks(rng: &mut Rng, n: usize) -> Vec<BlockQ8_0> {
        (0..n)
            .map(|_| {
                let mut qs = [0i8; 32];
                for q in &mut qs {
                    *q = rng.next_u64() as i8;
                }
                let e = (rng.next_u64() % 8) as i32 - 6;
                BlockQ8_0 {
                    d: half::f16::from_f32(rng.f32() * 2f32.powi(e)),
                    qs,
                }
            })
            .collect()
    }
    fn uniform_block(byte: u8) -> BlockQ8_0 {
        BlockQ8_0 {
            d: half::f16::ONE,
            qs: [byte as i8; 32],
        }
    }
    reference_via!(to_ref_q8, r::matmul_q8_0, r::block_dot_q8);
    fn check_packed(w: &Packed<BlockQ8_0>, blocks: &[BlockQ8_0], n: usize, k: usize) {
        assert_eq!((w.n(), w.k()), (n, k));
        let mut row = Guarded::filled(f32::NAN, k);
        for j in [0, n / 2, n - 1] {
            w.dequantize_row(j, &mut row).unwrap();
            assert_eq!(&row[..], r::embedding_q8_0(&to_ref_q8(blocks), k, j));
        }
    }
}

/// Random blocks of a GGUF format whose bytes are all quants and packed scales except for the f16
/// fields: every byte random, then each f16 field set by `fix` to a finite scale.
fn random_pod<B: bytemuck::Pod>(rng: &mut Rng, n: usize, fix: impl Fn(&mut B, &mut Rng)) -> Vec<B> {
    (0..n)
        .map(|_| {
            let mut b = B::zeroed();
            for byte in bytemuck::bytes_of_mut(&mut b) {
                *byte = rng.next_u64() as u8;
            }
            fix(&mut b, rng);
            b
        })
        .collect()
}

/// A scale over several octaves, either sign.
fn scale(rng: &mut Rng, unit: f32) -> half::f16 {
    let e = (rng.next_u64() % 8) as i32 - 6;
    half::f16::from_f32(rng.f32() * unit * 2f32.powi(e))
}

/// A block with every byte `byte` and scales 1 (mins 1).
fn uniform_pod<B: bytemuck::Pod>(byte: u8, fix: impl Fn(&mut B)) -> B {
    let mut b = B::zeroed();
    bytemuck::bytes_of_mut(&mut b).fill(byte);
    fix(&mut b);
    b
}

/// The formats that arrive quantized in model files: their `TestFormat` from the reference's
/// functions (blocks cast to the reference's identical layout).
macro_rules! file_format {
    ($block:ty, $ref_block:ty, $quant_acts:path, $ref_matmul:path, $ref_scale:path,
     |$b:ident, $rng:ident| $fix:block, |$u:ident| $ufix:block) => {
        impl TestFormat for $block {
            fn random_blocks(rng: &mut Rng, n: usize) -> Vec<Self> {
                random_pod(rng, n, |$b: &mut Self, $rng: &mut Rng| $fix)
            }
            fn uniform_block(byte: u8) -> Self {
                uniform_pod(byte, |$u: &mut Self| $ufix)
            }
            fn reference(
                blocks: &[Self],
                x: &[f32],
                n: usize,
                k: usize,
                bias: Option<&[f32]>,
            ) -> (Vec<f64>, Vec<f64>) {
                let rw: &[$ref_block] = bytemuck::cast_slice(blocks);
                let act = $quant_acts(x);
                (
                    $ref_matmul(rw, &act, n, k, bias),
                    $ref_scale(rw, &act, n, k, bias),
                )
            }
        }
    };
}

file_format!(
    BlockQ4_1,
    r::BlockQ4_1,
    r::quantize_activations,
    r::matmul_q4_1,
    r::matmul_error_scale_q4_1,
    |b, rng| {
        b.d = scale(rng, 0.1);
        b.m = scale(rng, 1.0);
    },
    |u| {
        u.d = half::f16::ONE;
        u.m = half::f16::ONE;
    }
);
file_format!(
    BlockQ5_0,
    r::BlockQ5_0,
    r::quantize_activations,
    r::matmul_q5_0,
    r::matmul_error_scale_q5_0,
    |b, rng| {
        b.d = scale(rng, 0.05);
    },
    |u| {
        u.d = half::f16::ONE;
    }
);
file_format!(
    BlockQ5_1,
    r::BlockQ5_1,
    r::quantize_activations,
    r::matmul_q5_1,
    r::matmul_error_scale_q5_1,
    |b, rng| {
        b.d = scale(rng, 0.05);
        b.m = scale(rng, 1.0);
    },
    |u| {
        u.d = half::f16::ONE;
        u.m = half::f16::ONE;
    }
);
file_format!(
    BlockQ4K,
    r::BlockQ4K,
    r::quantize_activations_k,
    r::matmul_q4k,
    r::matmul_error_scale_q4k,
    |b, rng| {
        b.d = scale(rng, 0.01);
        b.dmin = scale(rng, 0.01);
    },
    |u| {
        u.d = half::f16::ONE;
        u.dmin = half::f16::ONE;
    }
);
file_format!(
    BlockQ5K,
    r::BlockQ5K,
    r::quantize_activations_k,
    r::matmul_q5k,
    r::matmul_error_scale_q5k,
    |b, rng| {
        b.d = scale(rng, 0.01);
        b.dmin = scale(rng, 0.01);
    },
    |u| {
        u.d = half::f16::ONE;
        u.dmin = half::f16::ONE;
    }
);
file_format!(
    BlockQ6K,
    r::BlockQ6K,
    r::quantize_activations_k,
    r::matmul_q6k,
    r::matmul_error_scale_q6k,
    |b, rng| {
        b.d = scale(rng, 0.001);
    },
    |u| {
        u.d = half::f16::ONE;
    }
);

/// The outputs of one call: rows x cols written to `out` with row stride `ldo`.
pub struct Region<'a> {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub out: &'a [f32],
    pub ldo: usize,
}

impl<'a> Region<'a> {
    /// All of an m x n result.
    pub fn whole(m: usize, n: usize, out: &'a [f32]) -> Self {
        Region {
            rows: 0..m,
            cols: 0..n,
            out,
            ldo: n,
        }
    }
}

/// Asserts that `region` holds the reference result of `x` times the blocks, within the bound.
pub fn assert_matches_reference<F: TestFormat>(
    blocks: &[F],
    x: &[f32],
    bias: Option<&[f32]>,
    (m, n, k): (usize, usize, usize),
    region: Region<'_>,
    tier: Tier,
) {
    let (want, scale) = F::reference(blocks, x, n, k, bias);
    let tol_factor = 2.0 * (k / 32 + 3) as f64 * 2f64.powi(-24);
    for i in region.rows.clone() {
        for j in region.cols.clone() {
            let got =
                region.out[(i - region.rows.start) * region.ldo + (j - region.cols.start)] as f64;
            let idx = i * n + j;
            let tol = tol_factor * scale[idx] + f64::MIN_POSITIVE;
            assert!(
                (got - want[idx]).abs() <= tol,
                "tier {tier} m={m} n={n} k={k} at ({i},{j}): got {got}, want {}, tol {tol}",
                want[idx]
            );
        }
    }
}

/// One random matmul of an m x k by k x n product, computing only `rows` x `cols`.
pub struct Case {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub bias: bool,
    pub seed: u64,
}

/// Packs, quantizes and multiplies one case with guard-page inputs and outputs on `tier`, and
/// compares packing, activation quantization and the result with the reference.
pub fn check<F: TestFormat>(tier: Tier, c: &Case) {
    let mut rng = Rng(c.seed | 1);
    let blocks = F::random_blocks(&mut rng, c.n * c.k / F::BLOCK_LEN);
    let x = Guarded::from_slice(&rng.vec(c.m * c.k, 3.0));
    let bias = c.bias.then(|| Guarded::from_slice(&rng.vec(c.n, 1.0)));

    let w = Packed::<F>::with_tier(&blocks, c.n, c.k, tier).unwrap();
    assert_eq!(w.unpack(), blocks, "packing must be lossless");
    F::check_packed(&w, &blocks, c.n, c.k);
    let a = activations::<F>(tier, &x, c.m, c.k);

    let ldo = c.cols.len();
    let mut out = Guarded::filled(f32::NAN, c.rows.len() * ldo);
    qkern::matmul_range(
        &w,
        &a,
        c.rows.clone(),
        c.cols.clone(),
        bias.as_deref(),
        &mut out,
        ldo,
    )
    .unwrap();
    let region = Region {
        rows: c.rows.clone(),
        cols: c.cols.clone(),
        out: &out,
        ldo,
    };
    assert_matches_reference::<F>(&blocks, &x, bias.as_deref(), (c.m, c.n, c.k), region, tier);
}

/// Random shapes with tails in every dimension and random sub-ranges of rows and columns.
pub fn random_shapes<F: TestFormat>(tier: Tier) {
    let cases = if cfg!(target_arch = "aarch64") {
        24
    } else {
        64
    };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let strategy = (
        1usize..=17,
        1usize..=70,
        1usize..=10,
        any::<bool>(),
        any::<u64>(),
        any::<[u16; 4]>(),
    );
    runner
        .run(&strategy, |(m, n, kb, bias, seed, cut)| {
            let r0 = cut[0] as usize % m;
            let r1 = r0 + 1 + cut[1] as usize % (m - r0);
            let c0 = cut[2] as usize % n;
            let c1 = c0 + 1 + cut[3] as usize % (n - c0);
            let rows = r0..r1;
            let cols = c0..c1;
            // Fewer super-blocks for the 256-value formats, the same range of K.
            let k = (kb - 1) % (320 / F::BLOCK_LEN) * F::BLOCK_LEN + F::BLOCK_LEN;
            check::<F>(
                tier,
                &Case {
                    m,
                    n,
                    k,
                    rows,
                    cols,
                    bias,
                    seed,
                },
            );
            Ok(())
        })
        .unwrap();
}

/// Fixed shapes at the edges of the register tiles, whole outputs, with and without bias.
pub fn fixed_edges<F: TestFormat>(tier: Tier, shapes: &[(usize, usize, usize)]) {
    for &(m, n, k) in shapes {
        for bias in [false, true] {
            let seed = (m * 1000 + n + k) as u64;
            check::<F>(
                tier,
                &Case {
                    m,
                    n,
                    k,
                    rows: 0..m,
                    cols: 0..n,
                    bias,
                    seed,
                },
            );
        }
    }
}

/// Extreme activations: +-127 after rounding, tiny, zero rows and a row of only -absmax, against
/// weights made of the format's extreme blocks.
pub fn extreme_values<F: TestFormat>(tier: Tier, blocks: &[F], (m, n, k): (usize, usize, usize)) {
    let mut x: Vec<f32> = (0..m * k)
        .map(|i| match i % 7 {
            0 => 1e-3,
            1 => -1e-3,
            2 => 0.0,
            3 => 5.0,
            4 => -5.0,
            _ => (i as f32).sin(),
        })
        .collect();
    x[k..2 * k].fill(0.0);
    x[2 * k..3 * k].fill(-7.0);
    let w = Packed::<F>::with_tier(blocks, n, k, tier).unwrap();
    let a = activations::<F>(tier, &x, m, k);
    let mut out = Guarded::filled(f32::NAN, m * n);
    qkern::matmul(&w, &a, None, &mut out).unwrap();
    assert_matches_reference::<F>(blocks, &x, None, (m, n, k), Region::whole(m, n, &out), tier);
}

/// Misuse of packing and of the matmul entry points is an error, never a panic.
pub fn bad_input<F: TestFormat>(tier: Tier) {
    let l = F::BLOCK_LEN;
    let blocks = vec![F::uniform_block(0x11); 4];
    assert!(matches!(
        Packed::<F>::with_tier(&blocks, 2, l + l / 2, tier),
        Err(Error::NotBlockAligned { .. })
    ));
    assert!(matches!(
        Packed::<F>::with_tier(&blocks, 3, 2 * l, tier),
        Err(Error::BadLength { .. })
    ));
    assert!(Packed::<F>::with_tier(&blocks, 0, 2 * l, tier).is_err());
    assert!(matches!(
        Packed::<F>::with_tier(&blocks, usize::MAX / 2 + 1, 2 * l, tier),
        Err(Error::Overflow(_))
    ));
    let w = Packed::<F>::with_tier(&blocks, 2, 2 * l, tier).unwrap();
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.require(F::ACT);
    let mut out = vec![0f32; 8];
    assert!(
        qkern::matmul_range(&w, &a, 0..1, 0..2, None, &mut out, 2).is_err(),
        "empty activations"
    );
    assert!(
        a.quantize(&vec![0.0; 2 * l], 2, 2 * l).is_err(),
        "short input"
    );
    a.quantize(&vec![0.0; 2 * l], 2, l).unwrap();
    assert!(
        qkern::matmul_range(&w, &a, 0..2, 0..2, None, &mut out, 2).is_err(),
        "K mismatch"
    );
    a.quantize(&vec![0.5; 4 * l], 2, 2 * l).unwrap();
    type BadCall<'a> = (
        Range<usize>,
        Range<usize>,
        Option<&'a [f32]>,
        usize,
        usize,
        &'a str,
    );
    let bad: [BadCall<'_>; 6] = [
        (0..3, 0..2, None, 8, 2, "rows out of range"),
        (0..2, 1..3, None, 8, 2, "cols out of range"),
        (0..2, 0..2, Some(&[1.0]), 8, 2, "short bias"),
        (0..2, 0..2, None, 3, 2, "short out"),
        (0..2, 0..2, None, 8, 1, "ldo too small"),
        (0..2, 0..2, None, 8, usize::MAX, "ldo overflow"),
    ];
    for (rows, cols, bias, len, ldo, what) in bad {
        assert!(
            qkern::matmul_range(&w, &a, rows, cols, bias, &mut out[..len], ldo).is_err(),
            "{what}"
        );
    }
    assert!(
        qkern::matmul(&w, &a, None, &mut out[..3]).is_err(),
        "short out"
    );
    let pool = ThreadPool::new(2);
    assert!(qkern::matmul_parallel(&pool, &w, &a, None, &mut out[..3]).is_err());
    assert!(
        qkern::matmul_range(&w, &a, 1..1, 0..2, None, &mut [], 2).is_ok(),
        "empty range is a no-op"
    );
    if let Some(other) = Tier::available().into_iter().find(|&t| t != tier) {
        let mut b = QuantizedActivations::with_tier(other).unwrap();
        b.require(F::ACT);
        b.quantize(&vec![0.5; 4 * l], 2, 2 * l).unwrap();
        assert!(
            matches!(
                qkern::matmul_range(&w, &b, 0..1, 0..1, None, &mut out, 2),
                Err(Error::TierMismatch { .. })
            ),
            "activations of another tier"
        );
    }
    // Activations not quantized into the format the weights read.
    if F::ACT != qkern::quant::ActFormat::Q8_32 {
        let mut c = QuantizedActivations::with_tier(tier).unwrap();
        c.quantize(&vec![0.5; 4 * l], 2, 2 * l).unwrap();
        assert!(qkern::matmul_range(&w, &c, 0..2, 0..2, None, &mut out, 2).is_err());
    }
}

/// `x` (`m x k`) quantized on `tier` in the activation format `F` reads, checked bit for bit
/// against the reference quantizer of that format.
pub fn activations<F: TestFormat>(
    tier: Tier,
    x: &[f32],
    m: usize,
    k: usize,
) -> QuantizedActivations {
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.require(F::ACT);
    a.quantize(x, m, k).unwrap();
    assert_eq!(
        to_ref_act(&a.blocks()),
        r::quantize_activations(x),
        "activation quantization must be exact"
    );
    if F::ACT == qkern::quant::ActFormat::Q8_256 {
        let got = a.blocks_k();
        let want = r::quantize_activations_k(x);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.d.to_bits(), w.d.to_bits(), "Q8_256 scale");
            assert_eq!(g.qs, w.qs, "Q8_256 values");
            assert_eq!(g.bsums, w.bsums, "Q8_256 sums");
        }
    }
    a
}

/// The parallel driver computes each element with the same kernel as a single call: bit-identical.
pub fn parallel_matches_serial<F: TestFormat>(tier: Tier) {
    let pool = ThreadPool::new(3);
    let mut rng = Rng(77);
    for (m, n, kb) in [(1, 200, 2), (70, 130, 3), (130, 65, 1)] {
        let k = kb * F::BLOCK_LEN;
        let blocks = F::random_blocks(&mut rng, n * kb);
        let x = rng.vec(m * k, 2.0);
        let bias = rng.vec(n, 1.0);
        let w = Packed::<F>::with_tier(&blocks, n, k, tier).unwrap();
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.require(F::ACT);
        a.quantize(&x, m, k).unwrap();
        let mut serial = vec![0f32; m * n];
        qkern::matmul(&w, &a, Some(&bias), &mut serial).unwrap();
        let mut par = Guarded::filled(f32::NAN, m * n);
        qkern::matmul_parallel(&pool, &w, &a, Some(&bias), &mut par).unwrap();
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&serial), bits(&par));
        // The same rows quantized as consecutive parts (tails of every size), one call.
        let cuts = [0, m / 3, m / 3 + 1, m];
        let parts: Vec<QuantizedActivations> = cuts
            .windows(2)
            .filter(|c| c[1] > c[0])
            .map(|c| {
                let mut p = QuantizedActivations::with_tier(tier).unwrap();
                p.require(F::ACT);
                p.quantize(&x[c[0] * k..c[1] * k], c[1] - c[0], k).unwrap();
                p
            })
            .collect();
        let mut stacked = Guarded::filled(f32::NAN, m * n);
        qkern::matmul_parallel_parts(&pool, &w, &parts, Some(&bias), &mut stacked).unwrap();
        assert_eq!(
            bits(&serial),
            bits(&stacked),
            "m = {m}, {} parts",
            parts.len()
        );
        // An output one row short is an error.
        let short = &mut stacked[..(m - 1) * n];
        assert!(qkern::matmul_parallel_parts(&pool, &w, &parts, None, short).is_err());
    }
}
