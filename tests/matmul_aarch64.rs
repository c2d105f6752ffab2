//! What is specific to the aarch64 Q4_0 matmul kernels: packed layouts with tile tails, every M
//! from 1 to 17 (full 16-row tiles, 8/4/2-row tiles and the single-row GEMV), every N tail,
//! sub-ranges that start and end inside a row pair or a column tile, outputs with a row stride
//! larger than the written columns (the gaps must stay untouched), and exact integer sums.
//!
//! Tolerance as in `tests/matmul.rs`: twice `qkern_reference::matmul_error_scale`'s bound.
#![cfg(target_arch = "aarch64")]

mod common;

use common::{guard::Guarded, to_ref_act, to_ref_q4, Rng};
use qkern::kernels::matmul::kernel_name;
use qkern::quant::{BlockQ4_0, BlockQ6K};
use qkern::Tier;
use qkern::{matmul_range, PackedQ4_0, QuantizedActivations};
use qkern_reference as r;
use std::ops::Range;

const TIERS: [Tier; 3] = [Tier::Neon, Tier::NeonDot, Tier::NeonI8mm];

fn supported() -> impl Iterator<Item = Tier> {
    TIERS
        .into_iter()
        .filter(|&t| common::tier_runs(t) && t.is_supported())
}

/// Runs rows x cols of an m x n x k product with output stride `ldo` (>= cols.len()) and checks
/// every written element against the reference, and every gap element for the sentinel.
#[allow(clippy::too_many_arguments)]
fn check(
    tier: Tier,
    m: usize,
    n: usize,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ldo: usize,
    bias: bool,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let blocks = rng.q4_blocks(n * k / 32);
    let x = Guarded::from_slice(&rng.vec(m * k, 2.0));
    let bias = bias.then(|| Guarded::from_slice(&rng.vec(n, 1.0)));
    let w = PackedQ4_0::with_tier(&blocks, n, k, tier).unwrap();
    let mut a = QuantizedActivations::with_tier(tier).unwrap();
    a.quantize(&x, m, k).unwrap();
    let ra = r::quantize_activations(&x);
    assert_eq!(to_ref_act(&a.blocks()), ra);

    let len = (rows.len() - 1) * ldo + cols.len();
    let mut out = Guarded::filled(f32::from_bits(0x7FC0_1234), len);
    matmul_range(
        &w,
        &a,
        rows.clone(),
        cols.clone(),
        bias.as_deref(),
        &mut out,
        ldo,
    )
    .unwrap();

    let rw = to_ref_q4(&blocks);
    let want = r::matmul_q4_0(&rw, &ra, n, k, bias.as_deref());
    let scale = r::matmul_error_scale(&rw, &ra, n, k, bias.as_deref(), |w, a| {
        (w.d.to_f64(), r::block_dot_q4(w, a))
    });
    let tol_factor = 2.0 * (k / 32 + 3) as f64 * 2f64.powi(-24);
    for (idx, &got) in out.iter().enumerate() {
        let (ri, cj) = (idx / ldo, idx % ldo);
        if cj >= cols.len() {
            assert_eq!(
                got.to_bits(),
                0x7FC0_1234,
                "tier {tier}: gap element {idx} written"
            );
            continue;
        }
        let (i, j) = (rows.start + ri, cols.start + cj);
        let e = i * n + j;
        let tol = tol_factor * scale[e] + f64::MIN_POSITIVE;
        assert!(
            (got as f64 - want[e]).abs() <= tol,
            "tier {tier} m={m} n={n} k={k} rows {rows:?} cols {cols:?} at ({i},{j}): got {got}, want {}",
            want[e]
        );
    }
}

#[test]
fn kernel_names() {
    for t in supported() {
        let want = match t {
            Tier::Neon => "neon",
            Tier::NeonDot => "neondot-sdot-asm",
            _ => "neoni8mm-smmla-asm",
        };
        assert_eq!(kernel_name::<BlockQ4_0>(t).unwrap(), want);
    }
}

/// Q5_0: the asm kernels on `NeonDot` (SDOT, `asm/aarch64/q5_0_gemm_dotprod.S`) and `NeonI8mm`
/// (SMMLA, `asm/aarch64/q5_0_gemm_i8mm.S`).
#[test]
fn q5_0_kernel_name() {
    for t in supported() {
        let want = match t {
            Tier::Neon => "neon-q5_0-smlal",
            Tier::NeonDot => "neondot-q5_0-sdot-asm",
            _ => "neoni8mm-q5_0-smmla-asm",
        };
        assert_eq!(kernel_name::<qkern::quant::BlockQ5_0>(t).unwrap(), want);
    }
}

/// Q8_0 on `NeonI8mm` runs the SMMLA asm kernel (`asm/aarch64/q8_0_gemm_i8mm.S`).
#[test]
fn q8_0_kernel_name() {
    for t in supported().filter(|&t| t == Tier::NeonI8mm) {
        assert_eq!(
            kernel_name::<qkern::quant::BlockQ8_0>(t).unwrap(),
            "neoni8mm-q8_0-smmla-asm"
        );
    }
}

/// Q6_K: the asm kernels on `NeonDot` (SDOT, `src/arch/aarch64/q6k_dot.rs`) and `NeonI8mm`
/// (SMMLA, `src/arch/aarch64/q6k_mmla.rs`).
#[test]
fn q6_k_kernel_names() {
    for t in supported() {
        let want = match t {
            Tier::Neon => "neon-q6_k-smlal",
            Tier::NeonDot => "neondot-q6_k-sdot-asm",
            _ => "neoni8mm-q6_k-smmla-asm",
        };
        assert_eq!(kernel_name::<BlockQ6K>(t).unwrap(), want);
    }
}

/// Q5_K: the asm kernels on `NeonDot` (SDOT, `src/arch/aarch64/q5k_dot.rs`) and `NeonI8mm`
/// (USMMLA, `src/arch/aarch64/q5k_mmla.rs`).
#[test]
fn q5_k_kernel_names() {
    for t in supported() {
        let want = match t {
            Tier::Neon => "neon-q5_k-smlal",
            Tier::NeonDot => "neondot-q5_k-sdot-asm",
            _ => "neoni8mm-q5_k-usmmla-asm",
        };
        assert_eq!(kernel_name::<qkern::quant::BlockQ5K>(t).unwrap(), want);
    }
}

/// Q4_K: the SDOT asm on `NeonDot`, the SMMLA asm on `NeonI8mm`.
#[test]
fn q4_k_kernel_names() {
    for t in supported() {
        let want = match t {
            Tier::Neon => "neon-q4_k-smlal",
            Tier::NeonDot => "neondot-q4_k-sdot-asm",
            _ => "neoni8mm-q4_k-smmla-asm",
        };
        assert_eq!(kernel_name::<qkern::quant::BlockQ4K>(t).unwrap(), want);
    }
}

/// Packing is lossless for every N tail, including scales that are not finite (a NaN keeps its
/// f16 bits), zero, negative zero and subnormal.
#[test]
fn pack_unpack_round_trip() {
    let mut rng = Rng(7);
    let special = [
        0x7E01u16, 0x7C00, 0xFC00, 0x0000, 0x8000, 0x0001, 0x7D55, 0xFBFF,
    ];
    for t in supported() {
        for n in 1..=9 {
            for kb in [1, 3] {
                let mut blocks = rng.q4_blocks(n * kb);
                for (i, b) in blocks.iter_mut().enumerate().step_by(3) {
                    b.d = half::f16::from_bits(special[i % special.len()]);
                }
                let w = PackedQ4_0::with_tier(&blocks, n, kb * 32, t).unwrap();
                let back = w.unpack();
                assert_eq!(
                    bytemuck::cast_slice::<BlockQ4_0, u8>(&back),
                    bytemuck::cast_slice::<BlockQ4_0, u8>(&blocks),
                    "tier {t} n={n} kb={kb}"
                );
            }
        }
    }
}

/// Every M from 1 to 17 and every N tail (1..=13: 0-3 whole tiles plus 0-3 columns).
#[test]
fn every_m_and_n_tail() {
    for t in supported() {
        for m in 1..=17 {
            for n in 1..=13 {
                check(t, m, n, 64, 0..m, 0..n, n, n % 2 == 0, (m * 100 + n) as u64);
            }
        }
    }
}

/// Sub-ranges that start and end inside a row pair, a 16-row group and a column tile, with a
/// row stride larger than the columns written; 3 groups of rows (16 + 16 + 5).
#[test]
fn sub_ranges_mid_tile() {
    let (m, n, k) = (37, 45, 96);
    let cases = [
        (0..37, 0..45),
        (1..36, 1..44),
        (3..4, 5..6),
        (15..18, 2..43),
        (16..32, 4..40),
        (17..31, 3..41),
        (32..37, 0..45),
        (36..37, 7..45),
        (5..30, 13..14),
        (0..16, 0..4),
    ];
    for t in supported() {
        for (c, (rows, cols)) in cases.iter().enumerate() {
            for bias in [false, true] {
                let ldo = cols.len() + 3;
                check(
                    t,
                    m,
                    n,
                    k,
                    rows.clone(),
                    cols.clone(),
                    ldo,
                    bias,
                    c as u64 + 11,
                );
            }
        }
    }
}

/// More column tiles than one scratch pass holds (16), on rows the kernels cannot store directly.
#[test]
fn wide_scratch_rows() {
    for t in supported() {
        check(t, 19, 150, 32, 1..18, 1..149, 150, true, 5);
        check(t, 3, 77, 64, 2..3, 0..77, 77, false, 6);
    }
}

/// With unit scales and integer activations of absmax 127 (so d = 1 exactly), the outputs are the
/// integer dot products exactly: a wrong nibble, lane or block would show as an integer error.
#[test]
fn exact_integer_sums() {
    let (m, n, k) = (19, 9, 256);
    let mut rng = Rng(99);
    let mut blocks = rng.q4_blocks(n * k / 32);
    for b in &mut blocks {
        b.d = half::f16::ONE;
    }
    let mut x: Vec<f32> = (0..m * k)
        .map(|_| (rng.next_u64() % 255) as f32 - 127.0)
        .collect();
    for blk in x.chunks_mut(32) {
        blk[(blk[1].abs() as usize) % 32] = if blk[0] < 0.0 { -127.0 } else { 127.0 };
    }
    let rw = to_ref_q4(&blocks);
    for t in supported() {
        let w = PackedQ4_0::with_tier(&blocks, n, k, t).unwrap();
        let mut a = QuantizedActivations::with_tier(t).unwrap();
        a.quantize(&x, m, k).unwrap();
        let ra = r::quantize_activations(&x);
        assert!(ra.iter().all(|b| b.d == 1.0));
        let mut out = vec![0f32; m * n];
        qkern::kernels::matmul::matmul(&w, &a, None, &mut out).unwrap();
        for i in 0..m {
            for j in 0..n {
                let isum: i64 = (0..k / 32)
                    .map(|b| r::block_dot_q4(&rw[j * k / 32 + b], &ra[i * k / 32 + b]) as i64)
                    .sum();
                assert_eq!(out[i * n + j], isum as f32, "tier {t} at ({i},{j})");
            }
        }
    }
}
