//! The differential kernel check of the `kernels_diff` fuzz target (also replayed by
//! `tests/fuzz_regressions.rs`): from the input bytes, a small random shape and data; every host
//! tier's kernel against `qkern_reference`.
//!
//! * Q4_0 and Q8_0 matmul (`matmul_range` / `matmul_q8_range` on a sub-range, optional bias):
//!   integer block sums exact, so the only difference from the f64 reference is f32 rounding of
//!   the block combination, bounded by `qkern_reference::matmul_error_scale`:
//!   `|y - y_ref| <= (K/32 + 3) * 2^-24 * sum_b |d_w d_x isum_b|` (+ |bias|); we allow 2x, as
//!   `tests/matmul.rs` does. Activation quantization must match the reference bit for bit.
//! * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K matmul (`check_file_formats`): the same bound with each
//!   format's error scale; blocks of arbitrary bytes with finite scales.
//! * RMSNorm: bit-identical across tiers, and within `(k + 8) u |y|` of the f64 reference (sum of
//!   `k` squares, then a few roundings; see `tests/ops.rs`).
//! * residual add: exact against `(a + b) as f32`.
//! * SiLU * up: within `8 u |y| + 1e-35 |up|` (see `tests/ops.rs`).

use half::f16;
use qkern::quant::{
    ActBlock, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use qkern::Tier;
use qkern::{
    add_assign, matmul_range, rmsnorm, silu_mul, Packed, PackedQ4_0, PackedQ8_0,
    QuantizedActivations, WeightFormat,
};
use qkern_reference as r;

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// Reads the fuzz input as a stream; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.u16() as usize % (hi - lo + 1)
    }
    /// A finite f32 of magnitude below 2^4, with an input-chosen exponent down to 2^-20 and
    /// exact zeros, so outliers and tiny values both occur.
    fn f32(&mut self) -> f32 {
        let m = self.u16() as i16 as f32 / 32768.0;
        let e = (self.u8() % 25) as i32 - 20;
        m * 2f32.powi(e + 4)
    }
    /// Any finite f16 bit pattern (subnormals included).
    fn f16(&mut self) -> f16 {
        let d = f16::from_bits(self.u16());
        if d.is_finite() {
            d
        } else {
            f16::from_bits(d.to_bits() & 0x83ff)
        }
    }
}

fn to_ref_act(b: &[ActBlock]) -> Vec<r::ActBlock> {
    b.iter().map(|b| r::ActBlock { d: b.d, qs: b.qs }).collect()
}

fn check_close(got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64, what: &str) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let t = tol(i);
        assert!(
            (g as f64 - w).abs() <= t,
            "{what}: element {i}: got {g}, want {w}, tol {t}"
        );
    }
}

/// Runs the whole differential check on one input; panics on any difference.
pub fn check(data: &[u8]) {
    let mut b = Bytes(data);
    let m = b.range(1, 9);
    let n = b.range(1, 40);
    let k = 32 * b.range(1, 6);
    let kb = k / 32;
    let r0 = b.range(0, m - 1);
    let r1 = b.range(r0 + 1, m);
    let c0 = b.range(0, n - 1);
    let c1 = b.range(c0 + 1, n);
    let use_bias = b.u8() & 1 == 1;

    let q4: Vec<BlockQ4_0> = (0..n * kb)
        .map(|_| {
            let d = b.f16();
            let mut qs = [0u8; 16];
            qs.iter_mut().for_each(|q| *q = b.u8());
            BlockQ4_0 { d, qs }
        })
        .collect();
    let q8: Vec<BlockQ8_0> = (0..n * kb)
        .map(|_| {
            let d = b.f16();
            let mut qs = [0i8; 32];
            qs.iter_mut().for_each(|q| *q = b.u8() as i8);
            BlockQ8_0 { d, qs }
        })
        .collect();
    let x: Vec<f32> = (0..m * k).map(|_| b.f32()).collect();
    let bias: Option<Vec<f32>> = use_bias.then(|| (0..n).map(|_| b.f32()).collect());
    let y: Vec<f32> = (0..m * k).map(|_| b.f32()).collect();
    let wn: Vec<f32> = (0..k).map(|_| b.f32()).collect();

    let ref_a = r::quantize_activations(&x);
    let rq4: Vec<r::BlockQ4_0> = q4
        .iter()
        .map(|b| r::BlockQ4_0 { d: b.d, qs: b.qs })
        .collect();
    let rq8: Vec<r::BlockQ8_0> = q8
        .iter()
        .map(|b| r::BlockQ8_0 { d: b.d, qs: b.qs })
        .collect();
    let want4 = r::matmul_q4_0(&rq4, &ref_a, n, k, bias.as_deref());
    let scale4 = r::matmul_error_scale(&rq4, &ref_a, n, k, bias.as_deref(), |w, a| {
        (w.d.to_f64(), r::block_dot_q4(w, a))
    });
    let want8 = r::matmul_q8_0(&rq8, &ref_a, n, k, bias.as_deref());
    let scale8 = r::matmul_error_scale(&rq8, &ref_a, n, k, bias.as_deref(), |w, a| {
        (w.d.to_f64(), r::block_dot_q8(w, a))
    });
    let tol_factor = 2.0 * (kb + 3) as f64 * U;
    let ldo = c1 - c0;

    let mut norm_scalar = vec![0f32; m * k];
    rmsnorm(kern(Tier::Scalar), &x, &wn, 1e-6, &mut norm_scalar).unwrap();
    let mut sum_want = x.clone();
    sum_want.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
    let silu_want = r::silu_mul(&x, &y);

    for tier in Tier::available() {
        let mut a = QuantizedActivations::with_tier(tier).unwrap();
        a.quantize(&x, m, k).unwrap();
        assert_eq!(
            to_ref_act(&a.blocks()),
            ref_a,
            "{tier}: activation quantization"
        );

        let w4 = PackedQ4_0::with_tier(&q4, n, k, tier).unwrap();
        let w8 = PackedQ8_0::with_tier(&q8, n, k, tier).unwrap();
        for (name, want, scale) in [("q4_0", &want4, &scale4), ("q8_0", &want8, &scale8)] {
            let mut out = vec![f32::NAN; (r1 - r0) * ldo];
            if name == "q4_0" {
                matmul_range(&w4, &a, r0..r1, c0..c1, bias.as_deref(), &mut out, ldo).unwrap();
            } else {
                matmul_range(&w8, &a, r0..r1, c0..c1, bias.as_deref(), &mut out, ldo).unwrap();
            }
            for i in r0..r1 {
                for j in c0..c1 {
                    let got = out[(i - r0) * ldo + (j - c0)] as f64;
                    let idx = i * n + j;
                    let tol = tol_factor * scale[idx] + f64::MIN_POSITIVE;
                    assert!(
                        (got - want[idx]).abs() <= tol,
                        "{name} tier {tier} m={m} n={n} k={k} at ({i},{j}): got {got}, want {}, tol {tol}",
                        want[idx]
                    );
                }
            }
        }

        let mut norm = vec![f32::NAN; m * k];
        rmsnorm(kern(tier), &x, &wn, 1e-6, &mut norm).unwrap();
        assert_eq!(
            norm.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            norm_scalar.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "rmsnorm {tier}: bit-identical to scalar"
        );
        for i in 0..m {
            let want = r::rmsnorm(&x[i * k..(i + 1) * k], &wn, 1e-6);
            check_close(
                &norm[i * k..(i + 1) * k],
                &want,
                |j| (k + 8) as f64 * U * want[j].abs() + 1e-30,
                &format!("rmsnorm {tier}"),
            );
        }

        let mut sum = x.clone();
        add_assign(kern(tier), &mut sum, &y).unwrap();
        assert_eq!(
            sum.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            sum_want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "add_assign {tier}"
        );

        let mut silu = vec![f32::NAN; m * k];
        silu_mul(kern(tier), &x, &y, &mut silu).unwrap();
        check_close(
            &silu,
            &silu_want,
            |i| 8.0 * U * silu_want[i].abs() + 1e-35 * (y[i] as f64).abs(),
            &format!("silu_mul {tier}"),
        );
    }
    check_file_formats(&mut b);
}

/// The weight formats that arrive quantized in files, each on every host tier against the
/// reference on a sub-range with an optional bias: blocks of input bytes (every bit pattern of
/// the quants and packed scales) with finite f16 scales, activations in the format's layout.
fn check_file_formats(b: &mut Bytes<'_>) {
    let m = b.range(1, 6);
    let n = b.range(1, 24);
    let kb = b.range(1, 2);
    let r0 = b.range(0, m - 1);
    let r1 = b.range(r0 + 1, m);
    let c0 = b.range(0, n - 1);
    let c1 = b.range(c0 + 1, n);
    let bias: Option<Vec<f32>> = (b.u8() & 1 == 1).then(|| (0..n).map(|_| b.f32()).collect());
    macro_rules! formats {
        ($($block:ty, $ref:ty, $len:expr, $acts:path, $mm:path, $scale:path, |$w:ident| $fix:block;)*) => {$(
            let k = kb * $len;
            let blocks: Vec<$block> = (0..n * k / <$block as WeightFormat>::BLOCK_LEN)
                .map(|_| {
                    let mut $w = <$block>::default();
                    for byte in bytemuck::bytes_of_mut(&mut $w) {
                        *byte = b.u8();
                    }
                    $fix
                    $w
                })
                .collect();
            let x: Vec<f32> = (0..m * k).map(|_| b.f32()).collect();
            let rw: &[$ref] = bytemuck::cast_slice(&blocks);
            let act = $acts(&x);
            let want = $mm(rw, &act, n, k, bias.as_deref());
            let scale = $scale(rw, &act, n, k, bias.as_deref());
            let tol_factor = 2.0 * (k / 32 + 3) as f64 * U;
            for tier in Tier::available() {
                let w = Packed::<$block>::with_tier(&blocks, n, k, tier).unwrap();
                assert_eq!(w.unpack(), blocks, "{} {tier}: packing", <$block as WeightFormat>::NAME);
                let mut a = QuantizedActivations::with_tier(tier).unwrap();
                a.require(w.act_format());
                a.quantize(&x, m, k).unwrap();
                let ldo = c1 - c0;
                let mut out = vec![f32::NAN; (r1 - r0) * ldo];
                matmul_range(&w, &a, r0..r1, c0..c1, bias.as_deref(), &mut out, ldo).unwrap();
                for i in r0..r1 {
                    for j in c0..c1 {
                        let got = out[(i - r0) * ldo + (j - c0)] as f64;
                        let idx = i * n + j;
                        let tol = tol_factor * scale[idx] + f64::MIN_POSITIVE;
                        assert!(
                            (got - want[idx]).abs() <= tol,
                            "{} tier {tier} m={m} n={n} k={k} at ({i},{j}): got {got}, want {}, tol {tol}",
                            <$block as WeightFormat>::NAME,
                            want[idx]
                        );
                    }
                }
            }
        )*};
    }
    formats! {
        BlockQ4_1, r::BlockQ4_1, 32, r::quantize_activations, r::matmul_q4_1,
            r::matmul_error_scale_q4_1, |w| { w.d = b.f16(); w.m = b.f16(); };
        BlockQ5_0, r::BlockQ5_0, 32, r::quantize_activations, r::matmul_q5_0,
            r::matmul_error_scale_q5_0, |w| { w.d = b.f16(); };
        BlockQ5_1, r::BlockQ5_1, 32, r::quantize_activations, r::matmul_q5_1,
            r::matmul_error_scale_q5_1, |w| { w.d = b.f16(); w.m = b.f16(); };
        BlockQ4K, r::BlockQ4K, 256, r::quantize_activations_k, r::matmul_q4k,
            r::matmul_error_scale_q4k, |w| { w.d = b.f16(); w.dmin = b.f16(); };
        BlockQ5K, r::BlockQ5K, 256, r::quantize_activations_k, r::matmul_q5k,
            r::matmul_error_scale_q5k, |w| { w.d = b.f16(); w.dmin = b.f16(); };
        BlockQ6K, r::BlockQ6K, 256, r::quantize_activations_k, r::matmul_q6k,
            r::matmul_error_scale_q6k, |w| { w.d = b.f16(); };
    }
}

/// The kernels of a tier the CPU has (from `Tier::available`).
fn kern(t: Tier) -> &'static qkern::Kernels {
    qkern::Kernels::for_tier(t).expect("an available tier")
}
