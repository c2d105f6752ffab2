//! aarch64 kernels of the formats that arrive quantized in model files: Q4_1, Q5_0, Q5_1 (blocks
//! of 32, plain `ActBlock` rows) and Q4_K, Q5_K, Q6_K (super-blocks of 256, plain `ActBlockK`
//! rows), for `Neon` (SMULL/SMLAL + SADALP intrinsics) and `NeonDot` / `NeonI8mm` (SDOT by
//! element, inline asm). The tables take Q4_K, Q5_0 and Q6_K on `NeonDot` and `NeonI8mm` from the
//! asm kernels instead ([`super::q4k_dot`], [`super::q4k_mmla`], [`super::q5_0_dot`],
//! [`super::q5_0_mmla`], [`super::q6k_dot`], [`super::q6k_mmla`]); Q5_0 has only its `Neon`
//! kernel here, and the SDOT Q4_K and Q6_K kernels here stay as their asm kernels' baselines.
//!
//! # Layouts
//!
//! Columns go in tiles of [`NR`] = 4 (the last padded with zero blocks), each tile's blocks
//! contiguous, `BYTES` per tile and block. The quants are in *group vectors*: 16 bytes holding
//! K values `4g .. 4g + 4` of columns 0, 1, 2, 3 (`[c0 k0..k3][c1 k0..k3][c2 ..][c3 ..]`), so
//! one SDOT by element (`sdot v.4s, w.16b, a.4b[lane]`, four activation bytes of one row) adds
//! one int32 lane per column and no reduction is needed. Scales are per column in column order
//! (`[c0 c1 c2 c3]`), f16 as stored in the file (widened with FCVTL, base ARMv8.0), so that
//! unpacking gives the blocks back bit for bit.
//!
//! | format | per tile and block |
//! |---|---|
//! | Q4_1 | 4 nibble vectors (low nibbles: group vectors 0..4, high: 4..8), `d[4]`, `m[4]` f16: 80 bytes |
//! | Q5_0 | 4 nibble vectors as Q4_1, a plane of inverted fifth bits (bit `g` of byte `i` for group vector `g`), `d[4]`: 88 bytes (22 per column, as GGUF) |
//! | Q5_1 | as Q5_0 with the fifth bits as they are, `d[4]`, `m[4]`: 96 bytes (24 per column) |
//! | Q4_K | per sub-block pair `p` 8 nibble vectors (low: sub-block `2p`, high: `2p + 1`); scales u8 `[8][4]`, mins u8 `[8][4]`; `d[4]`, `dmin[4]`: 592 bytes |
//! | Q5_K | per sub-block pair 8 nibble vectors as Q4_K and 2 planes of fifth bits; scales, mins, `d`, `dmin` as Q4_K: 720 bytes (180 per column) |
//! | Q6_K | per 32 values: 4 nibble vectors of the low 4 bits, 2 planes of the high 2 bits (XOR 2, 2 bits per group vector); scales i8 `[16][4]`; `d[4]`: 840 bytes (210 per column, as GGUF) |
//!
//! # Arithmetic
//!
//! Per row and tile, each (sub-)block's exact int32 dot product per column comes from the group
//! vectors (SDOT; or SMLAL of at most 8 products per i16 lane, `|q a| <= 32 * 127`, so at most
//! 32512, then pairwise widening). The 32-value formats then take one float step per block
//! (`d_w d_a isum (+ m_w d_a asum)`); the K-quants multiply each sub-block sum by its integer
//! scale in int32 (`mla`), the mins by the activations' sub-block sums (`smlal` by lane), and
//! take one float step per super-block: `d_a (d tot - dmin mins)`, as the portable kernels
//! define.
//!
//! Each call computes whole tiles of up to [`MR`] rows into a scratch tile and copies the
//! requested columns (plus bias) out, so nothing outside the ranges is written.

use super::pack::{pack_tiles, tiles, unpack_tiles, NR};
use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::{
    ActBlock, ActBlockK, BlockQ4K, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, QK,
};
use core::arch::aarch64::*;
use half::f16;
use std::marker::PhantomData;

/// Rows per weight pass.
const MR: usize = 4;
/// Bytes of a plain `ActBlock` (f32 scale, 32 quants).
const ACT32: usize = size_of::<ActBlock>();
/// Bytes of a plain `ActBlockK` (f32 scale, 256 quants at 4, 16 i16 sums at 260).
const ACTK: usize = size_of::<ActBlockK>();
const ACTK_BSUMS: usize = 4 + 256;
const _: () = assert!(ACT32 == 36 && ACTK == 292);

// ---------------------------------------------------------------------------------------------
// Packing.

/// A format's tiled layout: how one tile block (the blocks of 4 columns at one K position) is
/// written and read back.
trait Tiled: bytemuck::Pod {
    /// Values per block.
    const LEN: usize;
    /// Bytes per tile and block.
    const BYTES: usize;
    /// Writes the tile block of the 4 columns' blocks into `dst` (`BYTES` zeroed bytes).
    fn put(b: &[Self; NR], dst: &mut [u8]);
    /// Block of column `c` from a tile block.
    fn get(src: &[u8], c: usize) -> Self;
}

/// `dst[16 g + 4 c + i] = v[c][4 g + i]`: the group vectors of the 4 columns' values.
fn interleave(v: [&[u8]; NR], dst: &mut [u8]) {
    for (c, vc) in v.iter().enumerate() {
        for (e, &x) in vc.iter().enumerate() {
            dst[16 * (e / 4) + 4 * c + e % 4] = x;
        }
    }
}

/// Inverse of [`interleave`] for column `c`: `out.len()` values.
fn deinterleave(src: &[u8], c: usize, out: &mut [u8]) {
    for (e, x) in out.iter_mut().enumerate() {
        *x = src[16 * (e / 4) + 4 * c + e % 4];
    }
}

/// Group vectors of `lo` in the low nibbles and of `hi` in the high nibbles (values 0..=15).
fn interleave_nibbles(lo: [&[u8]; NR], hi: [&[u8]; NR], dst: &mut [u8]) {
    let len = 4 * lo[0].len();
    let (mut l, mut h) = (vec![0u8; len], vec![0u8; len]);
    interleave(lo, &mut l);
    interleave(hi, &mut h);
    for (d, (l, h)) in dst[..len].iter_mut().zip(l.iter().zip(&h)) {
        *d = l | (h << 4);
    }
}

/// Inverse of [`interleave_nibbles`] for column `c`.
fn deinterleave_nibbles(src: &[u8], c: usize, lo: &mut [u8], hi: &mut [u8]) {
    deinterleave(src, c, lo);
    deinterleave(src, c, hi);
    for x in lo.iter_mut() {
        *x &= 0x0F;
    }
    for x in hi.iter_mut() {
        *x >>= 4;
    }
}

/// The 4 columns' f16 values at `dst[0..8]`.
pub(super) fn put_f16(v: [f16; NR], dst: &mut [u8]) {
    for (c, x) in v.iter().enumerate() {
        dst[2 * c..2 * c + 2].copy_from_slice(&x.to_bits().to_ne_bytes());
    }
}

/// Column `c`'s f16 value of [`put_f16`]'s 8 bytes at `src`.
pub(super) fn get_f16(src: &[u8], c: usize) -> f16 {
    f16::from_bits(u16::from_ne_bytes([src[2 * c], src[2 * c + 1]]))
}

/// `nibbles | fifth bits` of 32 five-bit values into GGUF's `qs`, `qh`.
pub(super) fn five_bit_fields(v: &[u8; 32]) -> ([u8; 16], [u8; 4]) {
    let mut qs = [0u8; 16];
    let mut qh = 0u32;
    for j in 0..16 {
        qs[j] = (v[j] & 0x0F) | ((v[j + 16] & 0x0F) << 4);
    }
    for (j, &x) in v.iter().enumerate() {
        qh |= ((x >> 4) as u32 & 1) << j;
    }
    (qs, qh.to_le_bytes())
}

/// The Q4_K block of quants `q` (0..=15, element order), sub-block scales `sc` and mins `m`
/// (6 bits), `d` and `dmin`: GGUF's bit positions (the inverse of `BlockQ4K::parts`).
pub(super) fn q4k_block(q: &[u8; 256], sc: &[u8; 8], m: &[u8; 8], d: f16, dmin: f16) -> BlockQ4K {
    let mut qs = [0u8; 128];
    for pair in 0..4 {
        for l in 0..32 {
            qs[32 * pair + l] = q[64 * pair + l] | (q[64 * pair + 32 + l] << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales: encode_scales(sc, m),
        qs,
    }
}

/// The Q5_K block of quants `q` (0..=31, element order), sub-block scales `sc` and mins `m`
/// (6 bits), `d` and `dmin`: GGUF's bit positions (the inverse of `BlockQ5K::parts`).
pub(super) fn q5k_block(q: &[u8; 256], sc: &[u8; 8], m: &[u8; 8], d: f16, dmin: f16) -> BlockQ5K {
    let (mut qs, mut qh) = ([0u8; 128], [0u8; 32]);
    for c4 in 0..4 {
        for l in 0..32 {
            let (lo, hi) = (q[64 * c4 + l], q[64 * c4 + 32 + l]);
            qs[32 * c4 + l] = (lo & 0x0F) | ((hi & 0x0F) << 4);
            qh[l] |= ((lo >> 4) << (2 * c4)) | ((hi >> 4) << (2 * c4 + 1));
        }
    }
    BlockQ5K {
        d,
        dmin,
        scales: encode_scales(sc, m),
        qh,
        qs,
    }
}

/// GGUF's 12 packed scale bytes of a Q4_K / Q5_K super-block (inverse of `get_scale_min_k4`).
fn encode_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..4 {
        q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    q
}

impl Tiled for BlockQ4_1 {
    const LEN: usize = QK;
    const BYTES: usize = 80;
    fn put(b: &[Self; NR], dst: &mut [u8]) {
        let v = b.map(|b| b.values());
        interleave_nibbles(
            v.each_ref().map(|v| &v[..16]),
            v.each_ref().map(|v| &v[16..]),
            dst,
        );
        put_f16(b.map(|b| b.d), &mut dst[64..]);
        put_f16(b.map(|b| b.m), &mut dst[72..]);
    }
    fn get(src: &[u8], c: usize) -> Self {
        let mut v = [0u8; 32];
        let (lo, hi) = v.split_at_mut(16);
        deinterleave_nibbles(src, c, lo, hi);
        let mut qs = [0u8; 16];
        for j in 0..16 {
            qs[j] = v[j] | (v[j + 16] << 4);
        }
        BlockQ4_1 {
            d: get_f16(&src[64..], c),
            m: get_f16(&src[72..], c),
            qs,
        }
    }
}

/// 8 group vectors of five-bit values `t` (128 bytes) as 4 nibble vectors (low nibbles:
/// vectors 0..4, high: 4..8) and a plane of fifth bits XOR `inv` (bit `g` of byte `i` for
/// vector `g`): 80 bytes at `dst`.
fn put_five(t: &[u8; 128], inv: u8, dst: &mut [u8]) {
    for i in 0..64 {
        dst[i] = (t[i] & 0x0F) | ((t[i + 64] & 0x0F) << 4);
    }
    for i in 0..16 {
        dst[64 + i] = (0..8).map(|g| ((t[16 * g + i] >> 4) ^ inv) << g).sum();
    }
}

/// Inverse of [`put_five`].
fn get_five(src: &[u8], inv: u8) -> [u8; 128] {
    let mut t = [0u8; 128];
    for i in 0..64 {
        t[i] = src[i] & 0x0F;
        t[i + 64] = src[i] >> 4;
    }
    for (e, x) in t.iter_mut().enumerate() {
        *x |= (((src[64 + e % 16] >> (e / 16)) & 1) ^ inv) << 4;
    }
    t
}

impl Tiled for BlockQ5_0 {
    const LEN: usize = QK;
    const BYTES: usize = 88;
    /// [`put_five`] of `q` with inverted fifth bits (bit set: `q - 16` negative), then `d[4]`.
    fn put(b: &[Self; NR], dst: &mut [u8]) {
        let v = b.map(|b| b.values().map(|q| (q + 16) as u8));
        let mut t = [0u8; 128];
        interleave(v.each_ref().map(|v| &v[..]), &mut t);
        put_five(&t, 1, dst);
        put_f16(b.map(|b| b.d), &mut dst[80..]);
    }
    fn get(src: &[u8], c: usize) -> Self {
        let mut v = [0u8; 32];
        deinterleave(&get_five(src, 1), c, &mut v);
        let (qs, qh) = five_bit_fields(&v);
        BlockQ5_0 {
            d: get_f16(&src[80..], c),
            qh,
            qs,
        }
    }
}

impl Tiled for BlockQ5_1 {
    const LEN: usize = QK;
    const BYTES: usize = 96;
    /// [`put_five`] of `q`, then `d[4]`, `m[4]`.
    fn put(b: &[Self; NR], dst: &mut [u8]) {
        let v = b.map(|b| b.values());
        let mut t = [0u8; 128];
        interleave(v.each_ref().map(|v| &v[..]), &mut t);
        put_five(&t, 0, dst);
        put_f16(b.map(|b| b.d), &mut dst[80..]);
        put_f16(b.map(|b| b.m), &mut dst[88..]);
    }
    fn get(src: &[u8], c: usize) -> Self {
        let mut v = [0u8; 32];
        deinterleave(&get_five(src, 0), c, &mut v);
        let (qs, qh) = five_bit_fields(&v);
        BlockQ5_1 {
            d: get_f16(&src[80..], c),
            m: get_f16(&src[88..], c),
            qh,
            qs,
        }
    }
}

impl Tiled for BlockQ4K {
    const LEN: usize = 256;
    const BYTES: usize = 512 + 32 + 32 + 16;
    fn put(b: &[Self; NR], dst: &mut [u8]) {
        let p = b.map(|b| b.parts());
        for pair in 0..4 {
            interleave_nibbles(
                p.each_ref().map(|p| &p.q[64 * pair..64 * pair + 32]),
                p.each_ref().map(|p| &p.q[64 * pair + 32..64 * pair + 64]),
                &mut dst[128 * pair..],
            );
        }
        put_sc_mins(
            &p,
            b.map(|b| b.d),
            b.map(|b| b.dmin),
            mins_by_sub,
            &mut dst[512..],
        );
    }
    fn get(src: &[u8], c: usize) -> Self {
        let mut q = [0u8; 256];
        for pair in 0..4 {
            let (lo, hi) = q[64 * pair..64 * pair + 64].split_at_mut(32);
            deinterleave_nibbles(&src[128 * pair..], c, lo, hi);
        }
        let (sc, m, d, dmin) = get_sc_mins(&src[512..], c, mins_by_sub);
        q4k_block(&q, &sc, &m, d, dmin)
    }
}

impl Tiled for BlockQ5K {
    const LEN: usize = 256;
    const BYTES: usize = 640 + 32 + 32 + 16;
    /// Per sub-block pair `p`, 160 bytes: 8 nibble vectors (low: sub-block `2p`, high: `2p + 1`)
    /// and the planes of fifth bits of the two sub-blocks (bit `g` of byte `i`: vector `g`).
    fn put(b: &[Self; NR], dst: &mut [u8]) {
        let p = b.map(|b| b.parts());
        for pair in 0..4 {
            let mut t = [[0u8; 128]; 2];
            for (h, t) in t.iter_mut().enumerate() {
                let j = 2 * pair + h;
                interleave(p.each_ref().map(|p| &p.q[32 * j..32 * j + 32]), t);
            }
            let dst = &mut dst[160 * pair..160 * pair + 160];
            for i in 0..128 {
                dst[i] = (t[0][i] & 0x0F) | ((t[1][i] & 0x0F) << 4);
            }
            for (h, t) in t.iter().enumerate() {
                for i in 0..16 {
                    dst[128 + 16 * h + i] = (0..8).map(|g| (t[16 * g + i] >> 4) << g).sum();
                }
            }
        }
        put_sc_mins(
            &p,
            b.map(|b| b.d),
            b.map(|b| b.dmin),
            mins_by_sub,
            &mut dst[640..],
        );
    }
    fn get(src: &[u8], c: usize) -> Self {
        let mut q = [0u8; 256];
        for pair in 0..4 {
            let g = &src[160 * pair..160 * pair + 160];
            for h in 0..2 {
                let mut t = [0u8; 128];
                for (e, x) in t.iter_mut().enumerate() {
                    let nib = if h == 0 { g[e] & 0x0F } else { g[e] >> 4 };
                    *x = nib | (((g[128 + 16 * h + e % 16] >> (e / 16)) & 1) << 4);
                }
                let j = 2 * pair + h;
                deinterleave(&t, c, &mut q[32 * j..32 * j + 32]);
            }
        }
        let (sc, m, d, dmin) = get_sc_mins(&src[640..], c, mins_by_sub);
        q5k_block(&q, &sc, &m, d, dmin)
    }
}

/// Where a Q4_K / Q5_K layout keeps min `j` (0..8) of column `c` (0..4) in its 32 bytes of mins.
pub(super) type MinsAt = fn(usize, usize) -> usize;

/// Mins `[8][4]`, as the scales (this file's layouts).
fn mins_by_sub(j: usize, c: usize) -> usize {
    4 * j + c
}

/// Mins `[col c: m_0..m_7]` (the SMMLA asm layouts, [`super::q4k_mmla`], [`super::q5k_mmla`]).
pub(super) fn mins_by_col(j: usize, c: usize) -> usize {
    8 * c + j
}

/// Mins `[col c: m_0..m_3] x 4`, then `[col c: m_4..m_7] x 4`: SDOT operands (the SDOT asm
/// layouts, [`super::q4k_dot`], [`super::q5k_dot`]).
pub(super) fn mins_sdot(j: usize, c: usize) -> usize {
    16 * (j / 4) + 4 * c + j % 4
}

/// Scales u8 `[8][4]`, mins u8 (32 bytes, `mins_at`), `d[4]`, `dmin[4]` at `dst[0..80]`.
pub(super) fn put_sc_mins(
    p: &[crate::quant::KParts; NR],
    d: [f16; NR],
    dmin: [f16; NR],
    mins_at: MinsAt,
    dst: &mut [u8],
) {
    for (c, p) in p.iter().enumerate() {
        for j in 0..8 {
            dst[4 * j + c] = p.sc[j];
            dst[32 + mins_at(j, c)] = p.m[j];
        }
    }
    put_f16(d, &mut dst[64..]);
    put_f16(dmin, &mut dst[72..]);
}

/// Inverse of [`put_sc_mins`] for column `c`: scales, mins, `d`, `dmin`.
pub(super) fn get_sc_mins(src: &[u8], c: usize, mins_at: MinsAt) -> ([u8; 8], [u8; 8], f16, f16) {
    let sc: [u8; 8] = std::array::from_fn(|j| src[4 * j + c]);
    let m: [u8; 8] = std::array::from_fn(|j| src[32 + mins_at(j, c)]);
    (sc, m, get_f16(&src[64..], c), get_f16(&src[72..], c))
}

impl Tiled for BlockQ6K {
    const LEN: usize = 256;
    const BYTES: usize = 768 + 64 + 8;
    /// Per group `G` of 32 values (sub-blocks `2G`, `2G + 1`), 96 bytes: 4 nibble vectors of the
    /// low 4 bits (low nibbles: group vectors 0..4, high: 4..8), then two planes of the high 2
    /// bits XOR 2 (`q / 16 - 2` in two's complement), bits `2k, 2k + 1` of byte `i` for group
    /// vector `k` (plane 0) or `4 + k` (plane 1). Then scales i8 `[16][4]`, `d[4]`.
    fn put(b: &[Self; NR], dst: &mut [u8]) {
        let p = b.map(|b| b.parts());
        let u = p.each_ref().map(|(_, q)| q.map(|x| (x as i32 + 32) as u8));
        for grp in 0..8 {
            let mut t = [0u8; 128];
            interleave(u.each_ref().map(|u| &u[32 * grp..32 * grp + 32]), &mut t);
            let dst = &mut dst[96 * grp..96 * grp + 96];
            for i in 0..64 {
                dst[i] = (t[i] & 0x0F) | ((t[i + 64] & 0x0F) << 4);
            }
            for plane in 0..2 {
                for i in 0..16 {
                    dst[64 + 16 * plane + i] = (0..4)
                        .map(|k| ((t[16 * (4 * plane + k) + i] >> 4) ^ 2) << (2 * k))
                        .sum();
                }
            }
        }
        for (c, (sc, _)) in p.iter().enumerate() {
            for s in 0..16 {
                dst[768 + 4 * s + c] = sc[s] as u8;
            }
        }
        put_f16(b.map(|b| b.d), &mut dst[832..]);
    }
    fn get(src: &[u8], c: usize) -> Self {
        let mut u = [0u8; 256];
        for grp in 0..8 {
            let g = &src[96 * grp..96 * grp + 96];
            let mut t = [0u8; 128];
            for i in 0..64 {
                t[i] = g[i] & 0x0F;
                t[i + 64] = g[i] >> 4;
            }
            for (e, x) in t.iter_mut().enumerate() {
                let (v, i) = (e / 16, e % 16);
                let h = ((g[64 + 16 * (v / 4) + i] >> (2 * (v % 4))) & 3) ^ 2;
                *x |= h << 4;
            }
            deinterleave(&t, c, &mut u[32 * grp..32 * grp + 32]);
        }
        let scales: [i8; 16] = std::array::from_fn(|s| src[768 + 4 * s + c] as i8);
        q6k_block(&u, scales, get_f16(&src[832..], c))
    }
}

/// The Q6_K block of quants `u` (`q + 32`, 0..=63, element order), sub-block scales `sc` and
/// scale `d`: GGUF's bit positions (the inverse of `BlockQ6K::parts`).
pub(super) fn q6k_block(u: &[u8; 256], sc: [i8; 16], d: f16) -> BlockQ6K {
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for half in 0..2 {
        for l in 0..32 {
            let e = 128 * half + l;
            ql[64 * half + l] = (u[e] & 0x0F) | ((u[e + 64] & 0x0F) << 4);
            ql[64 * half + l + 32] = (u[e + 32] & 0x0F) | ((u[e + 96] & 0x0F) << 4);
            qh[32 * half + l] = (u[e] >> 4)
                | ((u[e + 32] >> 4) << 2)
                | ((u[e + 64] >> 4) << 4)
                | ((u[e + 96] >> 4) << 6);
        }
    }
    // `parts` reads sub-block s's scale at index s.
    BlockQ6K {
        ql,
        qh,
        scales: sc,
        d,
    }
}

fn pack<F: Tiled>(blocks: &[F], n: usize, k: usize) -> AlignedBuf {
    pack_tiles(blocks, n, k, F::LEN, F::BYTES, F::zeroed(), F::put)
}

fn unpack_row<F: Tiled>(buf: &AlignedBuf, _n: usize, k: usize, row: usize, out: &mut [F]) {
    unpack_tiles(buf, k, F::LEN, F::BYTES, row, out, F::get)
}

// ---------------------------------------------------------------------------------------------
// Integer dot products of group vectors.

/// How a tier multiplies group vectors by activation rows.
trait Isa {
    /// Per row `r < R`, the exact int32 sums, one lane per column, of the first `NV` (a multiple
    /// of 4, at most 8) group vectors of `w` with the row's `4 NV` activation bytes at `a[r]`.
    ///
    /// # Safety
    /// Each `a[r]` is valid for reads of `4 NV` bytes; the tier's CPU features are present (and
    /// enabled in the calling function for [`Dot`]). |w| <= 32 (so that the SMLAL sums fit i16).
    unsafe fn dots<const R: usize, const NV: usize>(
        w: &[int8x16_t; 8],
        a: &[*const i8; R],
    ) -> [int32x4_t; R];
}

/// ARMv8.0: SMLAL of int8 products into int16 lanes (at most 8 per lane: `8 * 32 * 127` fits),
/// then pairwise widening.
struct Neon;
/// FEAT_DotProd: SDOT by element.
struct Dot;

impl Isa for Neon {
    #[inline(always)]
    unsafe fn dots<const R: usize, const NV: usize>(
        w: &[int8x16_t; 8],
        a: &[*const i8; R],
    ) -> [int32x4_t; R] {
        const { assert!(NV.is_multiple_of(4) && NV <= 8) };
        // SAFETY: NEON is baseline; the loads read `4 NV` bytes from each `a[r]` (caller).
        unsafe {
            let mut lo = [vdupq_n_s16(0); R];
            let mut hi = [vdupq_n_s16(0); R];
            for h in 0..NV / 4 {
                for r in 0..R {
                    let av = vreinterpretq_s32_s8(vld1q_s8(a[r].add(16 * h)));
                    let b = [
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<0>(av)),
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<1>(av)),
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<2>(av)),
                        vreinterpretq_s8_s32(vdupq_laneq_s32::<3>(av)),
                    ];
                    for (l, b) in b.into_iter().enumerate() {
                        let wv = w[4 * h + l];
                        // Columns 0, 1 in `lo`, 2, 3 in `hi`: products of 4 K per pair of lanes.
                        lo[r] = vmlal_s8(lo[r], vget_low_s8(wv), vget_low_s8(b));
                        hi[r] = vmlal_high_s8(hi[r], wv, b);
                    }
                }
            }
            // [c0 c0 c1 c1] and [c2 c2 c3 c3] in int32, then one lane per column.
            std::array::from_fn(|r| vpaddq_s32(vpaddlq_s16(lo[r]), vpaddlq_s16(hi[r])))
        }
    }
}

/// `acc += ` the dot products of the 4-byte groups of `w` with bytes `4 L .. 4 L + 4` of `a`.
macro_rules! sdot_lane {
    ($acc:expr, $w:expr, $a:expr, $lane:literal) => {
        // (Expanded inside an `unsafe` block whose SAFETY comment covers it.)
        core::arch::asm!(
            concat!("sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[", $lane, "]"),
            acc = inout(vreg) $acc,
            w = in(vreg) $w,
            a = in(vreg) $a,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
}

impl Isa for Dot {
    #[inline(always)]
    unsafe fn dots<const R: usize, const NV: usize>(
        w: &[int8x16_t; 8],
        a: &[*const i8; R],
    ) -> [int32x4_t; R] {
        const { assert!(NV.is_multiple_of(4) && NV <= 8) };
        // SAFETY: the loads read `4 NV` bytes from each `a[r]` (caller). SDOT (by element, inline
        // asm on registers only): the calling function is compiled with FEAT_DotProd enabled and
        // only reached on a CPU that has it (the tier's table, re-checked by the wrapper).
        unsafe {
            let mut acc = [vdupq_n_s32(0); R];
            for h in 0..NV / 4 {
                let av: [int8x16_t; R] = std::array::from_fn(|r| vld1q_s8(a[r].add(16 * h)));
                for r in 0..R {
                    sdot_lane!(acc[r], w[4 * h], av[r], "0");
                }
                for r in 0..R {
                    sdot_lane!(acc[r], w[4 * h + 1], av[r], "1");
                }
                for r in 0..R {
                    sdot_lane!(acc[r], w[4 * h + 2], av[r], "2");
                }
                for r in 0..R {
                    sdot_lane!(acc[r], w[4 * h + 3], av[r], "3");
                }
            }
            acc
        }
    }
}

/// The 4 f16 values at `p`, widened to f32 (FCVTL, base ARMv8.0).
///
/// # Safety
/// `p` is valid for reads of 8 bytes.
#[inline(always)]
unsafe fn f16x4(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees 8 readable bytes.
    let h = unsafe { vld1_u16(p.cast()) };
    let f: float32x4_t;
    // SAFETY: FCVTL (half to single) is a base ARMv8.0 instruction on registers only.
    unsafe {
        core::arch::asm!(
            "fcvtl {f:v}.4s, {h:v}.4h",
            f = out(vreg) f,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    f
}

// ---------------------------------------------------------------------------------------------
// Group vectors of each layout.

/// Where a format's group vectors are and how its blocks combine.
trait Vecs: Tiled {
    /// Group vectors per sub-block (8: 32 values; 4: 16 values).
    const NV: usize;
    /// The group vectors of sub-block `j` (0 for the 32-value formats) of the tile block at `p`
    /// (the first `NV` meaningful).
    ///
    /// # Safety
    /// `p` addresses a whole tile block (`BYTES` readable bytes).
    unsafe fn vecs(p: *const u8, j: usize) -> [int8x16_t; 8];
    /// The group vectors of sub-blocks `2 pair` and `2 pair + 1` (K-quants).
    ///
    /// # Safety
    /// As [`Vecs::vecs`].
    #[inline(always)]
    unsafe fn vecs2(p: *const u8, pair: usize) -> [[int8x16_t; 8]; 2] {
        // SAFETY: forwarded contract.
        unsafe { [Self::vecs(p, 2 * pair), Self::vecs(p, 2 * pair + 1)] }
    }
}

/// 8 nibble vectors at `p`: their low (`HIGH` false) or high nibbles.
///
/// # Safety
/// 128 readable bytes at `p`.
#[inline(always)]
unsafe fn nibble_vecs<const HIGH: bool>(p: *const u8) -> [int8x16_t; 8] {
    std::array::from_fn(|g| {
        // SAFETY: NEON is baseline; a load of 16 bytes within the caller's 128.
        unsafe {
            let raw = vld1q_u8(p.add(16 * g));
            vreinterpretq_s8_u8(if HIGH {
                vshrq_n_u8::<4>(raw)
            } else {
                vandq_u8(raw, vdupq_n_u8(0x0F))
            })
        }
    })
}

impl Vecs for BlockQ4_1 {
    const NV: usize = 8;
    #[inline(always)]
    unsafe fn vecs(p: *const u8, _j: usize) -> [int8x16_t; 8] {
        // SAFETY: NEON is baseline; 4 loads of 16 bytes within the 64 bytes of nibbles.
        unsafe {
            let raw: [uint8x16_t; 4] = std::array::from_fn(|r| vld1q_u8(p.add(16 * r)));
            let m = vdupq_n_u8(0x0F);
            std::array::from_fn(|g| {
                vreinterpretq_s8_u8(if g < 4 {
                    vandq_u8(raw[g], m)
                } else {
                    vshrq_n_u8::<4>(raw[g - 4])
                })
            })
        }
    }
}

/// `plane` shifted left by `7 - g`: bit `g` to bit 7 (`g` < 8).
///
/// # Safety
/// NEON (baseline).
#[inline(always)]
unsafe fn bit_to_7(plane: uint8x16_t, g: usize) -> uint8x16_t {
    // SAFETY: register-only NEON shifts.
    unsafe {
        match g {
            0 => vshlq_n_u8::<7>(plane),
            1 => vshlq_n_u8::<6>(plane),
            2 => vshlq_n_u8::<5>(plane),
            3 => vshlq_n_u8::<4>(plane),
            4 => vshlq_n_u8::<3>(plane),
            5 => vshlq_n_u8::<2>(plane),
            6 => vshlq_n_u8::<1>(plane),
            _ => plane,
        }
    }
}

/// Five-bit group vectors from nibbles and a plane bit, 3 instructions each. `SIGNED` (the
/// plane holds inverted fifth bits): `q - 16`, the bit spread to 0xFF / 0 by an arithmetic shift
/// (high nibble all ones when negative). Unsigned: `q`, the bit moved to bit 4 (with SRI) or
/// bit 0 (with SLI) by a logical shift. `lo` takes its nibble from the low nibbles of `raw`
/// (SLI, which overwrites its copy of `raw`), `hi` from the high nibbles (SRI).
///
/// # Safety
/// NEON (baseline).
#[inline(always)]
unsafe fn five_lo<const SIGNED: bool>(raw: uint8x16_t, plane: uint8x16_t, g: usize) -> int8x16_t {
    // SAFETY: register-only NEON operations.
    unsafe {
        let x = bit_to_7(plane, g);
        let b = if SIGNED {
            vreinterpretq_u8_s8(vshrq_n_s8::<7>(vreinterpretq_s8_u8(x)))
        } else {
            vshrq_n_u8::<7>(x)
        };
        vreinterpretq_s8_u8(vsliq_n_u8::<4>(raw, b))
    }
}

/// See [`five_lo`].
///
/// # Safety
/// NEON (baseline).
#[inline(always)]
unsafe fn five_hi<const SIGNED: bool>(raw: uint8x16_t, plane: uint8x16_t, g: usize) -> int8x16_t {
    // SAFETY: register-only NEON operations.
    unsafe {
        let x = bit_to_7(plane, g);
        let b = if SIGNED {
            vreinterpretq_u8_s8(vshrq_n_s8::<7>(vreinterpretq_s8_u8(x)))
        } else {
            vshrq_n_u8::<3>(x)
        };
        vreinterpretq_s8_u8(vsriq_n_u8::<4>(b, raw))
    }
}

/// The 8 group vectors of a [`put_five`] layout at `p`.
///
/// # Safety
/// 80 readable bytes at `p`.
#[inline(always)]
unsafe fn five_vecs<const SIGNED: bool>(p: *const u8) -> [int8x16_t; 8] {
    // SAFETY: NEON is baseline; 5 loads of 16 bytes within the caller's 80.
    unsafe {
        let raw: [uint8x16_t; 4] = std::array::from_fn(|r| vld1q_u8(p.add(16 * r)));
        let plane = vld1q_u8(p.add(64));
        // High nibbles first (SRI reads `raw`), then SLI over the low nibbles.
        let hi: [int8x16_t; 4] = std::array::from_fn(|k| five_hi::<SIGNED>(raw[k], plane, 4 + k));
        let lo: [int8x16_t; 4] = std::array::from_fn(|k| five_lo::<SIGNED>(raw[k], plane, k));
        std::array::from_fn(|g| if g < 4 { lo[g] } else { hi[g - 4] })
    }
}

impl Vecs for BlockQ5_0 {
    const NV: usize = 8;
    #[inline(always)]
    unsafe fn vecs(p: *const u8, _j: usize) -> [int8x16_t; 8] {
        // SAFETY: the first 80 bytes of the tile block.
        unsafe { five_vecs::<true>(p) }
    }
}

impl Vecs for BlockQ5_1 {
    const NV: usize = 8;
    #[inline(always)]
    unsafe fn vecs(p: *const u8, _j: usize) -> [int8x16_t; 8] {
        // SAFETY: the first 80 bytes of the tile block.
        unsafe { five_vecs::<false>(p) }
    }
}

impl Vecs for BlockQ4K {
    const NV: usize = 8;
    #[inline(always)]
    unsafe fn vecs2(p: *const u8, pair: usize) -> [[int8x16_t; 8]; 2] {
        // SAFETY: forwarded contract (pair < 4: the caller's sub-blocks are < 8).
        unsafe { Self::pair_vecs(p, pair) }
    }
    #[inline(always)]
    unsafe fn vecs(p: *const u8, j: usize) -> [int8x16_t; 8] {
        // SAFETY: the 128 bytes of pair j / 2 < 4, within the 512 bytes of nibbles.
        unsafe {
            let p = p.add(128 * (j / 2));
            if j.is_multiple_of(2) {
                nibble_vecs::<false>(p)
            } else {
                nibble_vecs::<true>(p)
            }
        }
    }
}

impl BlockQ4K {
    /// Both sub-blocks of a pair from one load of its 8 nibble vectors.
    ///
    /// # Safety
    /// As [`Vecs::vecs`], `pair < 4`.
    #[inline(always)]
    unsafe fn pair_vecs(p: *const u8, pair: usize) -> [[int8x16_t; 8]; 2] {
        // SAFETY: NEON is baseline; 8 loads of 16 bytes of pair `pair`'s 128 bytes.
        unsafe {
            let raw: [uint8x16_t; 8] =
                std::array::from_fn(|g| vld1q_u8(p.add(128 * pair + 16 * g)));
            let m = vdupq_n_u8(0x0F);
            [
                raw.map(|v| vreinterpretq_s8_u8(vandq_u8(v, m))),
                raw.map(|v| vreinterpretq_s8_u8(vshrq_n_u8::<4>(v))),
            ]
        }
    }
}

impl Vecs for BlockQ5K {
    const NV: usize = 8;
    #[inline(always)]
    unsafe fn vecs(p: *const u8, j: usize) -> [int8x16_t; 8] {
        // SAFETY: forwarded contract (pair j / 2 < 4).
        unsafe { Self::vecs2(p, j / 2)[j % 2] }
    }
    /// Both sub-blocks of a pair from one load of its nibble vectors and planes.
    #[inline(always)]
    unsafe fn vecs2(p: *const u8, pair: usize) -> [[int8x16_t; 8]; 2] {
        // SAFETY: NEON is baseline; 10 loads of 16 bytes within pair `pair`'s 160 bytes.
        unsafe {
            let p = p.add(160 * pair);
            let raw: [uint8x16_t; 8] = std::array::from_fn(|g| vld1q_u8(p.add(16 * g)));
            let pl = [vld1q_u8(p.add(128)), vld1q_u8(p.add(144))];
            // Sub-block 2 pair + 1 first (SRI reads `raw`), then 2 pair (SLI overwrites it).
            let hi: [int8x16_t; 8] = std::array::from_fn(|g| five_hi::<false>(raw[g], pl[1], g));
            let lo: [int8x16_t; 8] = std::array::from_fn(|g| five_lo::<false>(raw[g], pl[0], g));
            [lo, hi]
        }
    }
}

impl Vecs for BlockQ6K {
    const NV: usize = 4;
    #[inline(always)]
    unsafe fn vecs(p: *const u8, j: usize) -> [int8x16_t; 8] {
        // SAFETY: forwarded contract (group j / 2 < 8).
        unsafe { Self::vecs2(p, j / 2)[j % 2] }
    }
    /// Group `pair`'s 8 group vectors, `q - 32` as i8: the plane's 2 bits to bits 6, 7, an
    /// arithmetic shift (sign-extended `q / 16 - 2`), combined with the nibble by SLI (low
    /// nibbles) or SRI (high nibbles): 3 instructions per vector, no mask register.
    #[inline(always)]
    unsafe fn vecs2(p: *const u8, pair: usize) -> [[int8x16_t; 8]; 2] {
        // SAFETY: NEON is baseline; 6 loads of 16 bytes within group `pair`'s 96 bytes.
        unsafe {
            let p = p.add(96 * pair);
            let raw: [uint8x16_t; 4] = std::array::from_fn(|r| vld1q_u8(p.add(16 * r)));
            let pl = [vld1q_s8(p.add(64).cast()), vld1q_s8(p.add(80).cast())];
            // Group vectors 4..8 (high nibbles): the 2 bits sign-extended into bits 4..7, the
            // nibble shifted in with SRI (reads `raw`).
            let top: [uint8x16_t; 4] = std::array::from_fn(|k| {
                let x = pl[1];
                vreinterpretq_u8_s8(match k {
                    0 => vshrq_n_s8::<2>(vshlq_n_s8::<6>(x)),
                    1 => vshrq_n_s8::<2>(vshlq_n_s8::<4>(x)),
                    2 => vshrq_n_s8::<2>(vshlq_n_s8::<2>(x)),
                    _ => vshrq_n_s8::<2>(x),
                })
            });
            let hi: [uint8x16_t; 4] = std::array::from_fn(|k| vsriq_n_u8::<4>(top[k], raw[k]));
            // Group vectors 0..4 (low nibbles): the 2 bits sign-extended to a byte, inserted
            // above the nibble with SLI (overwrites `raw`, after its last use above).
            let lo: [uint8x16_t; 4] = std::array::from_fn(|k| {
                let x = pl[0];
                let h = vreinterpretq_u8_s8(match k {
                    0 => vshrq_n_s8::<6>(vshlq_n_s8::<6>(x)),
                    1 => vshrq_n_s8::<6>(vshlq_n_s8::<4>(x)),
                    2 => vshrq_n_s8::<6>(vshlq_n_s8::<2>(x)),
                    _ => vshrq_n_s8::<6>(x),
                });
                vsliq_n_u8::<4>(raw[k], h)
            });
            let v: [int8x16_t; 8] =
                std::array::from_fn(|g| vreinterpretq_s8_u8(if g < 4 { lo[g] } else { hi[g - 4] }));
            [
                [v[0], v[1], v[2], v[3], v[0], v[1], v[2], v[3]],
                [v[4], v[5], v[6], v[7], v[4], v[5], v[6], v[7]],
            ]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tile kernels: R rows of activations times one tile of 4 columns, all blocks.

/// A tile kernel of one format on one tier.
trait Kern {
    /// Values per block.
    const LEN: usize;
    /// Packed bytes per tile and block.
    const BYTES: usize;
    /// Bytes per plain activation block.
    const ABYTES: usize;
    /// Whether `tile` reads `d_a * asum` per activation block (the min term of Q4_1, Q5_1).
    const ASUM: bool = false;
    /// `out[r][c]` = row `r < R` (activation blocks `kb` per row from `a`) times column `c` of
    /// the tile at `w` (`kb` tile blocks).
    ///
    /// # Safety
    /// `w` is valid for `kb * BYTES` bytes, `a` for `R * kb * ABYTES` bytes, with `ASUM` `s` for
    /// `R * kb` floats (`d_a * sum of the block's quants`, same order), and the tier's CPU
    /// features are present (enabled in the calling function for [`Dot`]).
    unsafe fn tile<const R: usize>(
        w: *const u8,
        a: *const u8,
        s: *const f32,
        kb: usize,
        out: &mut [[f32; NR]; MR],
    );
}

/// The 32-value formats: `(F, MIN, D, M)`: offsets of `d` and (with `MIN`) `m` in a tile block.
struct K32<F, I, const MIN: bool, const D: usize, const M: usize>(PhantomData<(F, I)>);

impl<F: Vecs, I: Isa, const MIN: bool, const D: usize, const M: usize> Kern
    for K32<F, I, MIN, D, M>
{
    const LEN: usize = QK;
    const BYTES: usize = F::BYTES;
    const ABYTES: usize = ACT32;
    const ASUM: bool = MIN;
    #[inline(always)]
    unsafe fn tile<const R: usize>(
        w: *const u8,
        a: *const u8,
        s: *const f32,
        kb: usize,
        out: &mut [[f32; NR]; MR],
    ) {
        // SAFETY: every pointer addresses tile block b < kb of `w`, block b of a row < R of `a`
        // or its sum in `s`, within the caller's bounds.
        unsafe {
            let mut y = [vdupq_n_f32(0.0); R];
            for b in 0..kb {
                let wb = w.add(b * F::BYTES);
                let ab: [*const u8; R] = std::array::from_fn(|r| a.add((r * kb + b) * ACT32));
                let wv = F::vecs(wb, 0);
                let isum = I::dots::<R, 8>(&wv, &ab.map(|p| p.add(4).cast()));
                let d = f16x4(wb.add(D));
                let m = if MIN { f16x4(wb.add(M)) } else { d };
                for r in 0..R {
                    let da = ab[r].cast::<f32>().read_unaligned();
                    y[r] = vfmaq_f32(y[r], vcvtq_f32_s32(isum[r]), vmulq_n_f32(d, da));
                    if MIN {
                        y[r] = vfmaq_n_f32(y[r], m, *s.add(r * kb + b));
                    }
                }
            }
            for r in 0..R {
                vst1q_f32(out[r].as_mut_ptr(), y[r]);
            }
        }
    }
}

/// The K-quants: `NSUB` sub-blocks of `F::NV` group vectors; scales at `SC` (u8, or i8 with
/// `SIGNED`, `[NSUB][4]`), with `MIN` mins at `SC + 32` (u8 `[8][4]`); `d` at `D`, `dmin` at
/// `D + 8`.
struct KK<
    F,
    I,
    const NSUB: usize,
    const SIGNED: bool,
    const MIN: bool,
    const SC: usize,
    const D: usize,
>(PhantomData<(F, I)>);

impl<
        F: Vecs,
        I: Isa,
        const NSUB: usize,
        const SIGNED: bool,
        const MIN: bool,
        const SC: usize,
        const D: usize,
    > Kern for KK<F, I, NSUB, SIGNED, MIN, SC, D>
{
    const LEN: usize = 256;
    const BYTES: usize = F::BYTES;
    const ABYTES: usize = ACTK;
    #[inline(always)]
    unsafe fn tile<const R: usize>(
        w: *const u8,
        a: *const u8,
        _s: *const f32,
        kb: usize,
        out: &mut [[f32; NR]; MR],
    ) {
        // SAFETY: every pointer addresses tile block b < kb of `w` or block b of a row < R of
        // `a`, within the caller's bounds.
        unsafe {
            let mut y = [vdupq_n_f32(0.0); R];
            for b in 0..kb {
                let wb = w.add(b * F::BYTES);
                let ab: [*const u8; R] = std::array::from_fn(|r| a.add((r * kb + b) * ACTK));
                // Whole super-block in int32: sum_j sc_j isum_j per column.
                let mut tot = [vdupq_n_s32(0); R];
                // Running activation pointers (sub-block j at 4 + 4 NV j).
                let mut aj = ab.map(|p| p.add(4).cast::<i8>());
                // Sub-block j of group vectors `wv`: its dot products times its scale.
                macro_rules! sub_block {
                    ($wv:expr, $j:expr) => {{
                        let s = if F::NV == 8 {
                            I::dots::<R, 8>($wv, &aj)
                        } else {
                            I::dots::<R, 4>($wv, &aj)
                        };
                        let s8 = vld1_u8(wb.add(SC + 4 * $j));
                        let sc = if SIGNED {
                            vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_u8(s8))))
                        } else {
                            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(s8))))
                        };
                        for r in 0..R {
                            tot[r] = vmlaq_s32(tot[r], s[r], sc);
                        }
                        aj = aj.map(|p| p.add(4 * F::NV));
                    }};
                }
                for pair in 0..NSUB / 2 {
                    let [v0, v1] = F::vecs2(wb, pair);
                    sub_block!(&v0, 2 * pair);
                    sub_block!(&v1, 2 * pair + 1);
                }
                let d = f16x4(wb.add(D));
                if MIN {
                    // Mins as int16 [sub-block pair][c]: sum_j m_j asum_j by SMLAL by lane.
                    let m8 = [vld1q_u8(wb.add(SC + 32)), vld1q_u8(wb.add(SC + 48))];
                    let m16 = [
                        vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m8[0]))),
                        vreinterpretq_s16_u16(vmovl_high_u8(m8[0])),
                        vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m8[1]))),
                        vreinterpretq_s16_u16(vmovl_high_u8(m8[1])),
                    ];
                    let dmin = f16x4(wb.add(D + 8));
                    for r in 0..R {
                        let bs = ab[r].add(ACTK_BSUMS).cast::<i16>();
                        // Sums of the 8 sub-blocks of 32 (|sum| <= 32 * 127: no i16 overflow).
                        let asum = vpaddq_s16(vld1q_s16(bs), vld1q_s16(bs.add(8)));
                        let mut mn = vmull_laneq_s16::<0>(vget_low_s16(m16[0]), asum);
                        mn = vmlal_laneq_s16::<1>(mn, vget_high_s16(m16[0]), asum);
                        mn = vmlal_laneq_s16::<2>(mn, vget_low_s16(m16[1]), asum);
                        mn = vmlal_laneq_s16::<3>(mn, vget_high_s16(m16[1]), asum);
                        mn = vmlal_laneq_s16::<4>(mn, vget_low_s16(m16[2]), asum);
                        mn = vmlal_laneq_s16::<5>(mn, vget_high_s16(m16[2]), asum);
                        mn = vmlal_laneq_s16::<6>(mn, vget_low_s16(m16[3]), asum);
                        mn = vmlal_laneq_s16::<7>(mn, vget_high_s16(m16[3]), asum);
                        let da = ab[r].cast::<f32>().read_unaligned();
                        y[r] = vfmaq_f32(y[r], vcvtq_f32_s32(tot[r]), vmulq_n_f32(d, da));
                        y[r] = vfmsq_f32(y[r], vcvtq_f32_s32(mn), vmulq_n_f32(dmin, da));
                    }
                } else {
                    for r in 0..R {
                        let da = ab[r].cast::<f32>().read_unaligned();
                        y[r] = vfmaq_f32(y[r], vcvtq_f32_s32(tot[r]), vmulq_n_f32(d, da));
                    }
                }
            }
            for r in 0..R {
                vst1q_f32(out[r].as_mut_ptr(), y[r]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The GEMM driver.

/// Per column tile of the requested columns, every group of up to [`MR`] requested rows into a
/// scratch tile, then the requested columns (plus bias) to the output.
///
/// # Safety
/// See [`WeightKernel::gemm`]; `w` made by [`pack`] for this format, `a` plain activation rows;
/// for [`Dot`] kernels, called from a function with FEAT_DotProd enabled.
#[inline(always)]
unsafe fn drive<K: Kern>(args: &GemmArgs<'_>) {
    let kb = args.k / K::LEN;
    let (w, a) = (args.w.bytes(), args.a.bytes());
    let (rows, cols, ldo) = (args.rows.clone(), args.cols.clone(), args.ldo);
    // The bounds the tile kernels read within.
    assert!(
        kb >= 1 && rows.end <= args.m && cols.end <= args.n && !rows.is_empty() && !cols.is_empty()
    );
    assert!(tiles(args.n) * kb * K::BYTES <= w.len());
    assert!(args.m * kb * K::ABYTES <= a.len());
    if let Some(b) = args.bias {
        assert!(b.len() >= args.n);
    }
    // `d_a * asum` of every activation block of the rows, once per call (not per tile).
    let sums: Vec<f32> = if K::ASUM {
        a[rows.start * kb * K::ABYTES..rows.end * kb * K::ABYTES]
            .chunks_exact(K::ABYTES)
            .map(|blk| {
                let d = f32::from_ne_bytes([blk[0], blk[1], blk[2], blk[3]]);
                d * blk[4..].iter().map(|&q| q as i8 as i32).sum::<i32>() as f32
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut tmp = [[0f32; NR]; MR];
    for t in cols.start / NR..cols.end.div_ceil(NR) {
        // SAFETY: tile t < tiles(n): its kb tile blocks lie within `w` (asserted).
        let wt = unsafe { w.as_ptr().add(t * kb * K::BYTES) };
        let (c_lo, c_hi) = ((t * NR).max(cols.start), ((t + 1) * NR).min(cols.end));
        let mut r0 = rows.start;
        while r0 < rows.end {
            let nr = (rows.end - r0).min(MR);
            // SAFETY: rows r0 .. r0 + nr <= m lie within `a` (asserted); the tier's features
            // are the caller's.
            unsafe {
                let ar = a.as_ptr().add(r0 * kb * K::ABYTES);
                // Rows r0 - rows.start .. + nr of `sums` (R * kb floats when ASUM).
                let sr = sums.as_ptr().wrapping_add((r0 - rows.start) * kb);
                match nr {
                    1 => K::tile::<1>(wt, ar, sr, kb, &mut tmp),
                    2 => K::tile::<2>(wt, ar, sr, kb, &mut tmp),
                    3 => K::tile::<3>(wt, ar, sr, kb, &mut tmp),
                    _ => K::tile::<4>(wt, ar, sr, kb, &mut tmp),
                }
            }
            for (i, y) in tmp.iter().enumerate().take(nr) {
                for j in c_lo..c_hi {
                    let v = y[j - t * NR] + args.bias.map_or(0.0, |b| b[j]);
                    // SAFETY: (r0 + i, j) lies in the ranges, for which the caller guarantees
                    // `out` valid at this offset.
                    unsafe { *args.out.add((r0 + i - rows.start) * ldo + (j - cols.start)) = v };
                }
            }
            r0 += nr;
        }
    }
}

/// The kernels of one format: `Neon` and `Dot` GEMMs of one tile kernel type (`@neon`: `Neon`
/// only).
macro_rules! kernels {
    // The `Neon` kernel alone.
    (@neon $block:ty, $neon:ident, $neon_name:literal, $kern:ident<$($p:tt),*>) => {
        pub(crate) static $neon: WeightKernel<$block> = {
            /// # Safety
            /// See [`WeightKernel::gemm`] (NEON is baseline).
            unsafe fn gemm(args: &GemmArgs<'_>) {
                // SAFETY: forwarded contract; weights packed by this kernel's `pack`.
                unsafe { drive::<$kern<$block, Neon, $($p),*>>(args) }
            }
            WeightKernel {
                name: $neon_name,
                pack: pack::<$block>,
                unpack_row: unpack_row::<$block>,
                acts: ActInput::Plain,
                gemm,
            }
        };
    };
    ($(#[$dot_attr:meta])* $block:ty, $neon:ident, $dot:ident, $neon_name:literal,
     $dot_name:literal, $kern:ident<$($p:tt),*>) => {
        kernels!(@neon $block, $neon, $neon_name, $kern<$($p),*>);
        $(#[$dot_attr])*
        pub(crate) static $dot: WeightKernel<$block> = {
            /// # Safety
            /// See [`WeightKernel::gemm`] (the tier, and so FEAT_DotProd, was checked).
            #[target_feature(enable = "dotprod")]
            unsafe fn gemm_dot(args: &GemmArgs<'_>) {
                // SAFETY: forwarded contract; weights packed by this kernel's `pack`; FEAT_DotProd
                // is enabled here for the inlined SDOT.
                unsafe { drive::<$kern<$block, Dot, $($p),*>>(args) }
            }
            /// # Safety
            /// See [`WeightKernel::gemm`].
            unsafe fn gemm(args: &GemmArgs<'_>) {
                assert!(
                    std::arch::is_aarch64_feature_detected!("dotprod"),
                    "CPU lacks FEAT_DotProd"
                );
                // SAFETY: forwarded contract; the CPU has FEAT_DotProd (checked).
                unsafe { gemm_dot(args) }
            }
            WeightKernel {
                name: $dot_name,
                pack: pack::<$block>,
                unpack_row: unpack_row::<$block>,
                acts: ActInput::Plain,
                gemm,
            }
        };
    };
}

kernels!(BlockQ4_1, Q4_1_NEON, Q4_1_DOT, "neon-q4_1-smlal", "neondot-q4_1-sdot", K32<true, 64, 72>);
// `NeonDot` and `NeonI8mm` run the Q5_0 asm kernels (q5_0_dot.rs, q5_0_mmla.rs).
kernels!(@neon BlockQ5_0, Q5_0_NEON, "neon-q5_0-smlal", K32<false, 80, 80>);
kernels!(BlockQ5_1, Q5_1_NEON, Q5_1_DOT, "neon-q5_1-smlal", "neondot-q5_1-sdot", K32<true, 80, 88>);
kernels!(
    // Off the tables: `NeonDot` and `NeonI8mm` run the Q4_K asm kernels (q4k_dot.rs,
    // q4k_mmla.rs); kept as their baseline.
    #[allow(dead_code)]
    BlockQ4K, Q4_K_NEON, Q4_K_DOT, "neon-q4_k-smlal", "neondot-q4_k-sdot", KK<8, false, true, 512, 576>
);
kernels!(
    // Off the tables: `NeonDot` and `NeonI8mm` run the Q5_K asm kernels (q5k_dot.rs,
    // q5k_mmla.rs); kept as their baseline.
    #[allow(dead_code)]
    BlockQ5K, Q5_K_NEON, Q5_K_DOT, "neon-q5_k-smlal", "neondot-q5_k-sdot", KK<8, false, true, 640, 704>
);
kernels!(
    // Off the tables: `NeonDot` and `NeonI8mm` run the Q6_K asm kernels (q6k_dot.rs,
    // q6k_mmla.rs); kept as their baseline.
    #[allow(dead_code)]
    BlockQ6K, Q6_K_NEON, Q6_K_DOT, "neon-q6_k-smlal", "neondot-q6_k-sdot", KK<16, true, false, 768, 832>
);
