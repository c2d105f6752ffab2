//! Test-only portable [`Isa`]s with the semantics of `vpdpbusd` (as Intel's SDM defines it) on 16
//! and 8 lanes. Running the generic driver and micro-kernel with them and the tiles of the zmm and
//! ymm VNNI tiers checks every tile, tail and sub-range path of those tiers on any x86_64 CPU,
//! including one without AVX-512 or AVX-VNNI; only the one-to-one intrinsic mapping in `isa.rs`
//! is left to the hardware tests (`tests/matmul*.rs`, which run every tier the CPU has).

use super::gemm::{gemm, Isa};
use super::layout;
use crate::aligned::AlignedBuf;
use crate::contract::gemm::GemmArgs;
use crate::quant::{
    quantize_activation_block_k, ActBlock, ActBlockK, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0,
};
use std::ops::Range;

macro_rules! emu_isa {
    ($name:ident, $c:expr) => {
        struct $name;
        // SAFETY: plain Rust; pointer methods read/write exactly the bytes their contract allows.
        unsafe impl Isa for $name {
            const C: usize = $c;
            const U8_FULL_RANGE: bool = true;
            type V = [u8; 4 * $c];
            type Acc = [i32; $c];
            type F = [f32; $c];

            unsafe fn vzero() -> Self::V {
                [0; 4 * $c]
            }
            unsafe fn load(p: *const u8) -> Self::V {
                // SAFETY: p is valid for 4 * C bytes (trait contract); u8 has no alignment.
                unsafe { p.cast::<Self::V>().read_unaligned() }
            }
            unsafe fn nibbles(v: Self::V) -> (Self::V, Self::V) {
                (v.map(|b| b & 0x0F), v.map(|b| b >> 4))
            }
            unsafe fn fifth_bits(h: Self::V, shift: i32) -> Self::V {
                std::array::from_fn(|i| {
                    let lane = u32::from_ne_bytes(h[i / 4 * 4..i / 4 * 4 + 4].try_into().unwrap());
                    (((lane >> (shift as u32 + (i % 4) as u32)) & 1) << 4) as u8
                })
            }
            unsafe fn or(a: Self::V, b: Self::V) -> Self::V {
                std::array::from_fn(|i| a[i] | b[i])
            }
            unsafe fn bcast4(p: *const u8) -> Self::V {
                // SAFETY: p is valid for 4 bytes (trait contract).
                let q = unsafe { p.cast::<[u8; 4]>().read_unaligned() };
                std::array::from_fn(|i| q[i % 4])
            }
            unsafe fn acc_init(corr: i32) -> Self::Acc {
                [corr; $c]
            }
            /// VPDPBUSD: per dword lane, four u8(first) x s8(second) products, summed, added
            /// without saturation.
            unsafe fn dot(acc: Self::Acc, w: Self::V, a: Self::V) -> Self::Acc {
                std::array::from_fn(|j| {
                    (0..4).fold(acc[j], |s, t| {
                        s.wrapping_add(w[4 * j + t] as i32 * a[4 * j + t] as i8 as i32)
                    })
                })
            }
            unsafe fn finish(acc: Self::Acc, _corr: i32) -> Self::F {
                acc.map(|v| v as f32)
            }
            unsafe fn acc_i32(acc: Self::Acc) -> Self::V {
                bytemuck::cast(acc)
            }
            unsafe fn acc_sum(acc: Self::Acc, _corr: i32, part: Self::V) -> Self::V {
                let part: [i32; $c] = bytemuck::cast(part);
                bytemuck::cast::<[i32; $c], _>(std::array::from_fn(|j| {
                    acc[j].wrapping_add(part[j])
                }))
            }
            unsafe fn load_u8_i32(p: *const u8) -> Self::V {
                // SAFETY: p is valid for C bytes (trait contract).
                let b = unsafe { p.cast::<[u8; $c]>().read_unaligned() };
                bytemuck::cast(b.map(|v| v as i32))
            }
            unsafe fn load_u8_i16(p: *const u8) -> Self::V {
                // SAFETY: p is valid for 2 C bytes (trait contract).
                let b = unsafe { p.cast::<[u8; 2 * $c]>().read_unaligned() };
                bytemuck::cast(b.map(|v| v as i16))
            }
            unsafe fn load_i8_i32(p: *const u8) -> Self::V {
                // SAFETY: p is valid for C bytes (trait contract).
                let b = unsafe { p.cast::<[i8; $c]>().read_unaligned() };
                bytemuck::cast(b.map(|v| v as i32))
            }
            unsafe fn two_bits(v: Self::V, shift: i32) -> Self::V {
                v.map(|b| ((b >> shift) & 3) << 4)
            }
            unsafe fn one_bit(v: Self::V, shift: i32) -> Self::V {
                v.map(|b| ((b >> shift) & 1) << 4)
            }
            unsafe fn mullo_add(acc: Self::V, a: Self::V, b: Self::V) -> Self::V {
                let (acc, a, b): ([i32; $c], [i32; $c], [i32; $c]) =
                    (bytemuck::cast(acc), bytemuck::cast(a), bytemuck::cast(b));
                bytemuck::cast::<[i32; $c], _>(std::array::from_fn(|j| {
                    acc[j].wrapping_add(a[j].wrapping_mul(b[j]))
                }))
            }
            unsafe fn madd16_add(acc: Self::V, a: Self::V, b: Self::V) -> Self::V {
                let (acc, a, b): ([i32; $c], [i16; 2 * $c], [i16; 2 * $c]) =
                    (bytemuck::cast(acc), bytemuck::cast(a), bytemuck::cast(b));
                bytemuck::cast::<[i32; $c], _>(std::array::from_fn(|j| {
                    acc[j]
                        .wrapping_add(a[2 * j] as i32 * b[2 * j] as i32)
                        .wrapping_add(a[2 * j + 1] as i32 * b[2 * j + 1] as i32)
                }))
            }
            unsafe fn cvt(v: Self::V) -> Self::F {
                bytemuck::cast::<_, [i32; $c]>(v).map(|x| x as f32)
            }
            unsafe fn fnmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F {
                std::array::from_fn(|j| (-a[j]).mul_add(b[j], c[j]))
            }
            unsafe fn fzero() -> Self::F {
                [0.0; $c]
            }
            unsafe fn fload(p: *const f32) -> Self::F {
                // SAFETY: p is valid for C f32 (trait contract).
                unsafe { p.cast::<Self::F>().read_unaligned() }
            }
            unsafe fn fload_f16(p: *const u8) -> Self::F {
                // SAFETY: p is valid for 2 * C bytes (trait contract).
                let h = unsafe { p.cast::<[u16; $c]>().read_unaligned() };
                h.map(|b| half::f16::from_bits(b).to_f32())
            }
            unsafe fn fset1(x: f32) -> Self::F {
                [x; $c]
            }
            unsafe fn fmul(a: Self::F, b: Self::F) -> Self::F {
                std::array::from_fn(|j| a[j] * b[j])
            }
            unsafe fn fmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F {
                std::array::from_fn(|j| a[j].mul_add(b[j], c[j]))
            }
            unsafe fn fadd(a: Self::F, b: Self::F) -> Self::F {
                std::array::from_fn(|j| a[j] + b[j])
            }
            unsafe fn fstore(p: *mut f32, v: Self::F) {
                // SAFETY: p is valid for writes of C f32 (trait contract).
                unsafe { p.cast::<Self::F>().write_unaligned(v) }
            }
        }
    };
}

emu_isa!(Zmm, 16);
emu_isa!(Ymm, 8);

/// Small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 20001) as f32 / 10000.0 - 1.0
    }
}

/// One call through the emulated kernel (Q4_0, Q8_0 or Q5_0 weights, by `KIND`) vs an f64 sum of exact
/// block dot products of the plain blocks, within the bound of `tests/matmul.rs`: f32 rounding of
/// the block combination only (computed here in f64 from the same blocks).
fn check<I: Isa, const MR: usize, const NG: usize, const NGV: usize, const KIND: u8>(
    m: usize,
    n: usize,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    bias: bool,
    seed: u64,
) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let kb = k / 32;
    let x: Vec<f32> = (0..m * k).map(|_| rng.f32() * 4.0).collect();
    let bias: Option<Vec<f32>> = bias.then(|| (0..n).map(|_| rng.f32()).collect());
    // Weights as (f16 scale, 32 signed values) per block, packed in the format under test.
    // Q4_1 / Q5_1: the mins, added per block as `m * d_a * sum(a)` below.
    let mut mins: Vec<f64> = vec![0.0; n * kb];
    let (w, wblocks): (AlignedBuf, Vec<(half::f16, [i32; 32])>) =
        if KIND == layout::Q41 || KIND == layout::Q51 {
            let blocks: Vec<BlockQ5_1> = (0..n * kb)
                .map(|_| BlockQ5_1 {
                    d: half::f16::from_f32(rng.f32() * 0.05),
                    m: half::f16::from_f32(rng.f32()),
                    qh: if KIND == layout::Q51 {
                        (rng.next() as u32).to_le_bytes()
                    } else {
                        [0; 4]
                    },
                    qs: std::array::from_fn(|_| rng.next() as u8),
                })
                .collect();
            mins = blocks.iter().map(|b| b.m.to_f64()).collect();
            let w = if KIND == layout::Q51 {
                let w = layout::pack_q5_1(I::C, &blocks, n, k);
                let mut row = vec![BlockQ5_1::default(); kb];
                for (r, want) in blocks.chunks_exact(kb).enumerate() {
                    layout::unpack_row_q5_1(I::C, &w, k, r, &mut row);
                    assert_eq!(row, want);
                }
                w
            } else {
                let b41: Vec<BlockQ4_1> = blocks
                    .iter()
                    .map(|b| BlockQ4_1 {
                        d: b.d,
                        m: b.m,
                        qs: b.qs,
                    })
                    .collect();
                let w = layout::pack_q4_1(I::C, &b41, n, k);
                let mut row = vec![BlockQ4_1::default(); kb];
                for (r, want) in b41.chunks_exact(kb).enumerate() {
                    layout::unpack_row_q4_1(I::C, &w, k, r, &mut row);
                    assert_eq!(row, want);
                }
                w
            };
            let plain = blocks
                .iter()
                .map(|b| (b.d, b.values().map(|q| q as i32)))
                .collect();
            (w, plain)
        } else if KIND == layout::Q5 {
            let blocks: Vec<BlockQ5_0> = (0..n * kb)
                .map(|_| BlockQ5_0 {
                    d: half::f16::from_f32(rng.f32() * 0.05),
                    qh: (rng.next() as u32).to_le_bytes(),
                    qs: std::array::from_fn(|_| rng.next() as u8),
                })
                .collect();
            let w = layout::pack_q5(I::C, &blocks, n, k);
            let mut row = vec![BlockQ5_0::default(); kb];
            for (r, want) in blocks.chunks_exact(kb).enumerate() {
                layout::unpack_row_q5(I::C, &w, k, r, &mut row);
                assert_eq!(row, want);
            }
            let plain = blocks
                .iter()
                .map(|b| (b.d, b.values().map(|q| q as i32)))
                .collect();
            (w, plain)
        } else if KIND == layout::Q8 {
            let blocks: Vec<BlockQ8_0> = (0..n * kb)
                .map(|_| BlockQ8_0 {
                    d: half::f16::from_f32(rng.f32() * 0.01),
                    qs: std::array::from_fn(|_| rng.next() as i8),
                })
                .collect();
            let w = layout::pack_q8(I::C, &blocks, n, k);
            let mut row = vec![
                BlockQ8_0 {
                    d: half::f16::ZERO,
                    qs: [0; 32]
                };
                kb
            ];
            for (r, want) in blocks.chunks_exact(kb).enumerate() {
                layout::unpack_row_q8(I::C, &w, k, r, &mut row);
                assert_eq!(row, want);
            }
            let plain = blocks
                .iter()
                .map(|b| (b.d, b.qs.map(|q| q as i32)))
                .collect();
            (w, plain)
        } else {
            let blocks: Vec<BlockQ4_0> = (0..n * kb)
                .map(|_| BlockQ4_0 {
                    d: half::f16::from_f32(rng.f32() * 0.1),
                    qs: std::array::from_fn(|_| rng.next() as u8),
                })
                .collect();
            let w = layout::pack_groups(I::C, &blocks, n, k);
            let kb = k / 32;
            let mut row = vec![BlockQ4_0::default(); kb];
            for col in 0..n {
                layout::unpack_row_groups(I::C, &w, k, col, &mut row);
                assert_eq!(row, blocks[col * kb..(col + 1) * kb]);
            }
            let plain = blocks
                .iter()
                .map(|b| (b.d, b.values().map(|q| q as i32)))
                .collect();
            (w, plain)
        };
    let mut a = AlignedBuf::zeroed(layout::act_size(m, k));
    for (i, row) in x.chunks_exact(k).enumerate() {
        layout::quantize_row(row, i, m, k, a.bytes_mut());
    }
    let ab: Vec<ActBlock> = layout::unpack_acts(a.bytes(), m, k);

    // Output with a border of sentinels: ldo larger than the column count.
    let ldo = cols.len() + 3;
    let len = rows.len() * ldo;
    let mut out = vec![f32::NAN; len];
    let args = GemmArgs {
        w: &w,
        n,
        k,
        a: &a,
        m,
        rows: rows.clone(),
        cols: cols.clone(),
        bias: bias.as_deref(),
        out: out.as_mut_ptr(),
        ldo,
    };
    // SAFETY: the emulated Isa runs anywhere; buffers were made by the layout functions for
    // these shapes; ranges are non-empty and inside m x n; out holds rows x ldo elements.
    unsafe { gemm::<I, MR, NG, NGV, KIND>(&args) };

    for (ri, i) in rows.clone().enumerate() {
        for c in 0..ldo {
            let got = out[ri * ldo + c];
            let j = cols.start + c;
            if c >= cols.len() {
                assert!(got.is_nan(), "wrote outside the range at ({i}, {j})");
                continue;
            }
            let (mut want, mut scale) = (0f64, 0f64);
            for b in 0..kb {
                let ((dw, wq), xb) = (&wblocks[j * kb + b], &ab[i * kb + b]);
                let isum: i32 = wq.iter().zip(&xb.qs).map(|(&w, &a)| w * a as i32).sum();
                let t = dw.to_f64() * xb.d as f64 * isum as f64;
                let asum: i32 = xb.qs.iter().map(|&a| a as i32).sum();
                let tm = mins[j * kb + b] * xb.d as f64 * asum as f64;
                want += t + tm;
                scale += t.abs() + tm.abs();
            }
            if let Some(bv) = &bias {
                want += bv[j] as f64;
                scale += (bv[j] as f64).abs();
            }
            let tol = 2.0 * (kb + 3) as f64 * 2f64.powi(-24) * scale + f64::MIN_POSITIVE;
            assert!(
                (got as f64 - want).abs() <= tol,
                "C={} m={m} n={n} k={k} rows {rows:?} cols {cols:?} at ({i},{j}): {got} vs {want}",
                I::C
            );
        }
    }
}

fn sweep<I: Isa, const MR: usize, const NG: usize, const NGV: usize, const KIND: u8>() {
    let c = I::C;
    let mut seed = 1;
    for m in [1, 2, 3, 4, MR - 1, MR, MR + 1, 2 * MR + 3, 17] {
        for n in [1, c - 1, c, c + 1, 2 * c + 5, 5 * c - 3, 64 + 2 * c + 1] {
            for k in [32, 96] {
                seed += 1;
                check::<I, MR, NG, NGV, KIND>(m, n, k, 0..m, 0..n, seed % 2 == 0, seed);
                // A sub-range starting and ending inside a tile in both dimensions.
                let (r0, r1) = (m / 3, m - m / 4);
                let (c0, c1) = (n / 3, n - n / 5);
                if r0 < r1 && c0 < c1 {
                    check::<I, MR, NG, NGV, KIND>(m, n, k, r0..r1, c0..c1, true, seed);
                }
            }
        }
    }
}

#[test]
fn zmm_tiles_of_the_avx512vnni_tier() {
    sweep::<Zmm, 8, 1, 2, { layout::Q4 }>();
}

#[test]
fn ymm_tiles_of_the_avxvnni_tier() {
    sweep::<Ymm, 4, 1, 2, { layout::Q4 }>();
}

/// The Q8_0 kernel of the Avx512Vnni tier (`gemm_q8_avx512vnni`).
#[test]
fn zmm_tiles_of_the_avx512vnni_q8_kernel() {
    sweep::<Zmm, 8, 1, 2, { layout::Q8 }>();
}

/// One Q4_K (`KIND = Q4K`), Q5_K (`Q5K`) or Q6_K (`Q6K`) call through the emulated kernel vs an f64 sum of the
/// exact super-block terms (`d_a d S - d_a dmin M`, `d_a d S`), within the bound of
/// `tests/matmul_formats.rs`.
fn check_k<I: Isa, const MR: usize, const NG: usize, const NGV: usize, const KIND: u8>(
    m: usize,
    n: usize,
    kb: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    seed: u64,
) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let k = kb * 256;
    let x: Vec<f32> = (0..m * k).map(|_| rng.f32() * 4.0).collect();
    let mut random = || -> ((BlockQ4K, BlockQ5K), BlockQ6K) {
        let (mut b4, mut b5, mut b6) = (
            BlockQ4K::default(),
            BlockQ5K::default(),
            BlockQ6K::default(),
        );
        for byte in bytemuck::bytes_of_mut(&mut b4) {
            *byte = rng.next() as u8;
        }
        for byte in bytemuck::bytes_of_mut(&mut b5) {
            *byte = rng.next() as u8;
        }
        b5.d = half::f16::from_f32(rng.f32() * 0.01);
        b5.dmin = half::f16::from_f32(rng.f32() * 0.01);
        for byte in bytemuck::bytes_of_mut(&mut b6) {
            *byte = rng.next() as u8;
        }
        b4.d = half::f16::from_f32(rng.f32() * 0.01);
        b4.dmin = half::f16::from_f32(rng.f32() * 0.01);
        b6.d = half::f16::from_f32(rng.f32() * 0.001);
        ((b4, b5), b6)
    };
    let (blocks45, blocks6): (Vec<(BlockQ4K, BlockQ5K)>, Vec<BlockQ6K>) =
        (0..n * kb).map(|_| random()).unzip();
    let (blocks4, blocks5): (Vec<BlockQ4K>, Vec<BlockQ5K>) = blocks45.into_iter().unzip();
    let w = if KIND == layout::Q5K {
        let w = layout::pack_q5k(I::C, &blocks5, n, k);
        let mut row = vec![BlockQ5K::default(); kb];
        for (r, want) in blocks5.chunks_exact(kb).enumerate() {
            layout::unpack_row_q5k(I::C, &w, k, r, &mut row);
            assert_eq!(row, want);
        }
        w
    } else if KIND == layout::Q4K {
        let w = layout::pack_q4k(I::C, &blocks4, n, k);
        let mut row = vec![BlockQ4K::default(); kb];
        for (r, want) in blocks4.chunks_exact(kb).enumerate() {
            layout::unpack_row_q4k(I::C, &w, k, r, &mut row);
            assert_eq!(row, want);
        }
        w
    } else {
        let w = layout::pack_q6k(I::C, &blocks6, n, k);
        let mut row = vec![BlockQ6K::default(); kb];
        for (r, want) in blocks6.chunks_exact(kb).enumerate() {
            layout::unpack_row_q6k(I::C, &w, k, r, &mut row);
            assert_eq!(row, want);
        }
        w
    };
    let acts: Vec<ActBlockK> = x
        .chunks_exact(256)
        .map(|c| quantize_activation_block_k(c.try_into().unwrap()))
        .collect();
    let bytes: &[u8] = bytemuck::cast_slice(&acts);
    let mut a = AlignedBuf::zeroed(bytes.len());
    a.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
    let ldo = cols.len() + 3;
    let mut out = vec![f32::NAN; rows.len() * ldo];
    let args = GemmArgs {
        w: &w,
        n,
        k,
        a: &a,
        m,
        rows: rows.clone(),
        cols: cols.clone(),
        bias: None,
        out: out.as_mut_ptr(),
        ldo,
    };
    // SAFETY: the emulated Isa runs anywhere; buffers made for these shapes; ranges inside.
    unsafe { gemm::<I, MR, NG, NGV, KIND>(&args) };
    for (ri, i) in rows.clone().enumerate() {
        for c in 0..ldo {
            let got = out[ri * ldo + c];
            let j = cols.start + c;
            if c >= cols.len() {
                assert!(got.is_nan(), "wrote outside the range at ({i}, {j})");
                continue;
            }
            let (mut want, mut scale) = (0f64, 0f64);
            for b in 0..kb {
                let ab = &acts[i * kb + b];
                let dot = |q: &[i64], sb: usize, len: usize| -> i64 {
                    (0..len)
                        .map(|e| q[len * sb + e] * ab.qs[len * sb + e] as i64)
                        .sum()
                };
                let (t1, t2) = if KIND == layout::Q4K || KIND == layout::Q5K {
                    let (p, d, dmin) = if KIND == layout::Q4K {
                        let wb = &blocks4[j * kb + b];
                        (wb.parts(), wb.d, wb.dmin)
                    } else {
                        let wb = &blocks5[j * kb + b];
                        (wb.parts(), wb.d, wb.dmin)
                    };
                    let q = p.q.map(|v| v as i64);
                    let (mut s, mut mn) = (0i64, 0i64);
                    for sb in 0..8 {
                        let asum: i64 =
                            ab.qs[32 * sb..32 * sb + 32].iter().map(|&q| q as i64).sum();
                        s += p.sc[sb] as i64 * dot(&q, sb, 32);
                        mn += p.m[sb] as i64 * asum;
                    }
                    (
                        ab.d as f64 * d.to_f64() * s as f64,
                        ab.d as f64 * dmin.to_f64() * mn as f64,
                    )
                } else {
                    let wb = &blocks6[j * kb + b];
                    let (sc, q) = wb.parts();
                    let q = q.map(|v| v as i64);
                    let s: i64 = (0..16).map(|sb| sc[sb] as i64 * dot(&q, sb, 16)).sum();
                    (ab.d as f64 * wb.d.to_f64() * s as f64, 0.0)
                };
                want += t1 - t2;
                scale += t1.abs() + t2.abs();
            }
            let tol = 2.0 * (k / 32 + 3) as f64 * 2f64.powi(-24) * scale + f64::MIN_POSITIVE;
            assert!(
                (got as f64 - want).abs() <= tol,
                "C={} m={m} n={n} k={k} at ({i},{j}): {got} vs {want}",
                I::C
            );
        }
    }
}

/// The K-quant kernels of the VNNI tiers, with their tiles.
#[test]
#[cfg_attr(miri, ignore)] // minutes under Miri; the Q4_0 / Q8_0 sweeps cover the driver's paths
fn zmm_and_ymm_tiles_of_the_k_quant_kernels() {
    let mut seed = 1;
    for m in [1, 2, 3, 4, 5, 8, 9, 17] {
        for n in [1, 7, 8, 9, 16, 17, 40, 97] {
            for kb in [1, 2] {
                seed += 1;
                let (r0, r1, c0, c1) = (m / 3, m - m / 4, n / 3, n - n / 5);
                let sub = r0 < r1 && c0 < c1;
                check_k::<Zmm, 8, 1, 2, { layout::Q4K }>(m, n, kb, 0..m, 0..n, seed);
                check_k::<Ymm, 4, 1, 1, { layout::Q4K }>(m, n, kb, 0..m, 0..n, seed);
                check_k::<Zmm, 8, 1, 2, { layout::Q6K }>(m, n, kb, 0..m, 0..n, seed);
                check_k::<Ymm, 4, 1, 1, { layout::Q6K }>(m, n, kb, 0..m, 0..n, seed);
                check_k::<Zmm, 8, 1, 2, { layout::Q5K }>(m, n, kb, 0..m, 0..n, seed);
                check_k::<Ymm, 4, 1, 1, { layout::Q5K }>(m, n, kb, 0..m, 0..n, seed);
                if sub {
                    check_k::<Zmm, 8, 1, 2, { layout::Q4K }>(m, n, kb, r0..r1, c0..c1, seed);
                    check_k::<Ymm, 4, 1, 1, { layout::Q6K }>(m, n, kb, r0..r1, c0..c1, seed);
                }
            }
        }
    }
}

/// The Q5_0, Q4_1 and Q5_1 kernels of the VNNI tiers.
#[test]
#[cfg_attr(miri, ignore)] // minutes under Miri; the Q4_0 / Q8_0 sweeps cover the driver's paths
fn zmm_and_ymm_tiles_of_the_q5_0_q4_1_q5_1_kernels() {
    sweep::<Zmm, 8, 1, 2, { layout::Q5 }>();
    sweep::<Ymm, 6, 1, 2, { layout::Q5 }>();
    sweep::<Zmm, 8, 1, 2, { layout::Q41 }>();
    sweep::<Ymm, 6, 1, 2, { layout::Q51 }>();
}

/// Wider tiles than the tiers use today, so that a retune of `MR`/`NG` stays covered.
#[test]
#[cfg_attr(miri, ignore)] // 25+ minutes under Miri; the other sweeps cover the same code paths
fn wider_tiles() {
    sweep::<Zmm, 6, 2, 3, { layout::Q4 }>();
    sweep::<Zmm, 6, 2, 3, { layout::Q8 }>();
    sweep::<Ymm, 5, 2, 3, { layout::Q4 }>();
}
