//! Packed layouts shared by the x86_64 tiers.
//!
//! **Activations** (all three tiers): row `i`, block `b` is a 40-byte record at
//! `(i * k/32 + b) * 40`: the 32 `i8` values in element order, the f32 scale `d`, and the i32
//! correction `-8 * sum(q)`. The correction turns the kernels' `sum(nibble * a)` over unsigned
//! nibbles `0..15` into the Q4_0 value `sum((nibble - 8) * a)`, exactly.
//!
//! **Weights**, for a column group width `C` (16 for zmm, 8 for ymm): N is padded to a multiple of
//! `PANEL * C` with zero blocks. Group `g` (columns `g*C .. g*C + C`) has `k/32` records of
//! `18 * C` bytes, one per block of 32 along K (as many bytes as the plain blocks). The records
//! of block `b` of the [`PANEL`] groups of a panel are adjacent, panel after panel, block after
//! block ([`rec_at`]): a GEMV tile of `PANEL` groups then reads its weights as one contiguous
//! stream, which the hardware prefetchers follow far better than one stream per group (decode is
//! bound by that stream). A record holds:
//! * `C` f16 scales, the `d` of each column as stored (the kernels convert them with F16C,
//!   exactly);
//! * 4 vectors `v = 0..3` of `4 * C` bytes: lane `j` of vector `v` holds bytes `4v .. 4v + 4` of
//!   column `j`'s `qs`. So the low nibbles of vector `v` are elements `4v .. 4v + 4` and the high
//!   nibbles elements `16 + 4v .. 16 + 4v + 4`: one `vpdpbusd` per nibble half and vector, against
//!   the matching 4 activation bytes broadcast to every lane.

use crate::aligned::AlignedBuf;
use crate::quant::{
    quantize_activation_block, ActBlock, ActBlockK, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, KParts, QK, QK_K,
};
use half::f16;

/// Bytes of one activation record.
pub(super) const ACT_REC: usize = 40;
/// Offset of the f32 scale in an activation record.
pub(super) const ACT_D: usize = 32;
/// Offset of the i32 correction `-8 * sum(q)` in an activation record.
pub(super) const ACT_CORR: usize = 36;

pub(super) fn act_size(m: usize, k: usize) -> usize {
    m * (k / QK) * ACT_REC
}

pub(super) fn quantize_row(x: &[f32], i: usize, _m: usize, k: usize, out: &mut [u8]) {
    let kb = k / QK;
    let row = &mut out[i * kb * ACT_REC..(i + 1) * kb * ACT_REC];
    for (rec, xb) in row.chunks_exact_mut(ACT_REC).zip(x.chunks_exact(QK)) {
        let blk = quantize_activation_block(xb.try_into().expect("chunk of 32"));
        let sum: i32 = blk.qs.iter().map(|&q| q as i32).sum();
        rec[..QK].copy_from_slice(bytemuck::cast_slice(&blk.qs));
        rec[ACT_D..ACT_D + 4].copy_from_slice(&blk.d.to_ne_bytes());
        rec[ACT_CORR..ACT_CORR + 4].copy_from_slice(&(-8 * sum).to_ne_bytes());
    }
}

pub(super) fn unpack_acts(buf: &[u8], m: usize, k: usize) -> Vec<ActBlock> {
    buf[..act_size(m, k)]
        .chunks_exact(ACT_REC)
        .map(|rec| ActBlock {
            d: f32::from_ne_bytes(rec[ACT_D..ACT_D + 4].try_into().expect("4 bytes")),
            qs: bytemuck::cast_slice::<u8, i8>(&rec[..QK])
                .try_into()
                .expect("32 values"),
        })
        .collect()
}

/// Weight kinds of the generic driver: Q4_0 ([`pack_groups`]), Q8_0 ([`pack_q8`]), Q5_0
/// ([`pack_q5`]), Q4_K ([`pack_q4k`]), Q6_K ([`pack_q6k`]), Q5_K ([`pack_q5k`]), Q4_1 and Q5_1
/// ([`pack_q4_1`], [`pack_q5_1`]).
pub(super) const Q4: u8 = 0;
pub(super) const Q8: u8 = 1;
pub(super) const Q5: u8 = 2;
pub(super) const Q4K: u8 = 3;
pub(super) const Q6K: u8 = 4;
pub(super) const Q5K: u8 = 5;
pub(super) const Q41: u8 = 6;
pub(super) const Q51: u8 = 7;

/// Bytes of one weight record (one block of one column group of width `c`) of a weight kind.
/// All start with the `c` f16 scales; the weight vectors follow at [`w_vecs`].
pub(super) const fn w_rec<const KIND: u8>(c: usize) -> usize {
    match KIND {
        Q8 => 34 * c,
        Q5 => 22 * c,
        Q4K => 148 * c,
        Q6K => 210 * c,
        Q5K => 180 * c,
        Q41 => 20 * c,
        Q51 => 24 * c,
        _ => 18 * c,
    }
}

/// Column groups per panel (see the module notes).
pub(super) const PANEL: usize = 2;

/// Byte offset of block `b` of column group `g` in packed weights of `kb` blocks per column and
/// records of `rec` bytes.
pub(super) const fn rec_at(rec: usize, kb: usize, g: usize, b: usize) -> usize {
    ((g / PANEL) * kb + b) * PANEL * rec + (g % PANEL) * rec
}

/// Bytes of packed weights: `n` columns of `kb` blocks, group width `c`, records of `rec` bytes.
pub(super) const fn w_size(rec: usize, c: usize, n: usize, kb: usize) -> usize {
    n.div_ceil(PANEL * c) * PANEL * kb * rec
}

/// Offset of the first weight vector in a record of group width `c` (after the `c` f16 scales).
pub(super) const fn w_vecs(c: usize) -> usize {
    2 * c
}

/// [`w_vecs`] of a weight kind: after the scales and, for Q4_1 / Q5_1, the `c` f16 mins.
pub(super) const fn w_vecs_of<const KIND: u8>(c: usize) -> usize {
    match KIND {
        Q41 | Q51 => 4 * c,
        _ => 2 * c,
    }
}

/// Packs `n` rows of `kb` blocks into records of `rec_len` bytes placed by [`rec_at`] for group
/// width `c` (N padded with zero columns): `write(rec, j, block)` fills column `j`'s part of the
/// record of `block`.
fn pack_records<B>(
    c: usize,
    rec_len: usize,
    blocks: &[B],
    n: usize,
    kb: usize,
    write: impl Fn(&mut [u8], usize, &B),
) -> AlignedBuf {
    let mut buf = AlignedBuf::zeroed(w_size(rec_len, c, n, kb));
    let bytes = buf.bytes_mut();
    for (col, row) in blocks.chunks_exact(kb).enumerate().take(n) {
        let (g, j) = (col / c, col % c);
        for (b, blk) in row.iter().enumerate() {
            write(&mut bytes[rec_at(rec_len, kb, g, b)..][..rec_len], j, blk);
        }
    }
    buf
}

/// The `kb` blocks of row `row` from records made by [`pack_records`]: `read(rec, j)` is column
/// `j`'s block of a record.
fn unpack_records<B>(
    c: usize,
    rec_len: usize,
    buf: &AlignedBuf,
    kb: usize,
    row: usize,
    out: &mut [B],
    read: impl Fn(&[u8], usize) -> B,
) {
    let (g, j) = (row / c, row % c);
    for (b, o) in out[..kb].iter_mut().enumerate() {
        *o = read(&buf.bytes()[rec_at(rec_len, kb, g, b)..][..rec_len], j);
    }
}

/// Writes `bytes` (a multiple of 4 long) as lane `j` of consecutive vectors of `4 c` bytes from
/// `off`: bytes `4 v .. 4 v + 4` into vector `v`.
fn put_vectors(rec: &mut [u8], off: usize, c: usize, j: usize, bytes: &[u8]) {
    for (v, four) in bytes.chunks_exact(4).enumerate() {
        rec[off + v * 4 * c + 4 * j..][..4].copy_from_slice(four);
    }
}

/// Reads back what [`put_vectors`] wrote.
fn get_vectors<const N: usize>(rec: &[u8], off: usize, c: usize, j: usize) -> [u8; N] {
    std::array::from_fn(|i| rec[off + (i / 4) * 4 * c + 4 * j + i % 4])
}

/// The f16 at byte `p`.
fn f16_at(rec: &[u8], p: usize) -> f16 {
    f16::from_bits(u16::from_ne_bytes([rec[p], rec[p + 1]]))
}

/// Packs Q4_0 blocks for a group width `C` (16 for zmm, 8 for ymm; see the module notes).
#[allow(non_snake_case)]
pub(super) fn pack_groups(C: usize, blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q4>(C), blocks, n, k / QK, |rec, j, blk| {
        rec[2 * j..2 * j + 2].copy_from_slice(&blk.d.to_bits().to_ne_bytes());
        put_vectors(rec, w_vecs(C), C, j, &blk.qs);
    })
}

/// Weight row (output column) `col` of [`pack_groups`]'s layout for a group width `C` given at
/// run time, into `out` (`k / 32` blocks).
#[allow(non_snake_case)]
pub(super) fn unpack_row_groups(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    col: usize,
    out: &mut [BlockQ4_0],
) {
    unpack_records(C, w_rec::<Q4>(C), buf, k / QK, col, out, |rec, j| {
        BlockQ4_0 {
            d: f16_at(rec, 2 * j),
            qs: get_vectors(rec, w_vecs(C), C, j),
        }
    })
}

/// Q8_0 weights for group width `C`: as Q4_0 (N padded, records placed by [`rec_at`]) with
/// records of `34 * C` bytes: `C` f16 scales, then 8 vectors `v = 0..7` of `4 * C` bytes whose
/// lane `j` holds elements `4v .. 4v + 4` of column `j`, each offset by +128 to u8 (`q ^ 0x80`).
#[allow(non_snake_case)]
pub(super) fn pack_q8(C: usize, blocks: &[BlockQ8_0], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q8>(C), blocks, n, k / QK, |rec, j, blk| {
        rec[2 * j..2 * j + 2].copy_from_slice(&blk.d.to_bits().to_ne_bytes());
        put_vectors(rec, w_vecs(C), C, j, &blk.qs.map(|q| q as u8 ^ 0x80));
    })
}

/// Row `row` of Q8_0 weights packed by [`pack_q8`], exactly as given, into `out` (`k / 32` blocks).
#[allow(non_snake_case)]
pub(super) fn unpack_row_q8(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ8_0],
) {
    unpack_records(C, w_rec::<Q8>(C), buf, k / QK, row, out, |rec, j| {
        BlockQ8_0 {
            d: f16_at(rec, 2 * j),
            qs: get_vectors::<32>(rec, w_vecs(C), C, j).map(|q| (q ^ 0x80) as i8),
        }
    })
}

/// Q5_0 weights for group width `C`: as Q4_0 (the `C` f16 scales, then the 4 nibble vectors of
/// the low 4 bits), followed by `C` u32: lane `j` holds column `j`'s fifth bits (`qh` as stored).
/// Records of `22 * C` bytes, as many as the plain blocks.
#[allow(non_snake_case)]
pub(super) fn pack_q5(C: usize, blocks: &[BlockQ5_0], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q5>(C), blocks, n, k / QK, |rec, j, blk| {
        rec[2 * j..2 * j + 2].copy_from_slice(&blk.d.to_bits().to_ne_bytes());
        put_vectors(rec, w_vecs(C), C, j, &blk.qs);
        put_vectors(rec, w_vecs(C) + 16 * C, C, j, &blk.qh);
    })
}

/// Row `row` of Q5_0 weights packed by [`pack_q5`], exactly as given, into `out`.
#[allow(non_snake_case)]
pub(super) fn unpack_row_q5(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ5_0],
) {
    unpack_records(C, w_rec::<Q5>(C), buf, k / QK, row, out, |rec, j| {
        BlockQ5_0 {
            d: f16_at(rec, 2 * j),
            qs: get_vectors(rec, w_vecs(C), C, j),
            qh: get_vectors(rec, w_vecs(C) + 16 * C, C, j),
        }
    })
}

/// Q4_1 (`20 * C` bytes) and Q5_1 (`24 * C`) records for group width `C`: the `C` f16 scales,
/// the `C` f16 mins, the 4 nibble vectors as in Q4_0, and for Q5_1 the `C` u32 of fifth bits.
#[allow(non_snake_case)]
pub(super) fn pack_q4_1(C: usize, blocks: &[BlockQ4_1], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q41>(C), blocks, n, k / QK, |rec, j, blk| {
        put_scale_min(rec, C, j, blk.d, blk.m);
        put_vectors(rec, w_vecs_of::<Q41>(C), C, j, &blk.qs);
    })
}

/// See [`pack_q4_1`].
#[allow(non_snake_case)]
pub(super) fn pack_q5_1(C: usize, blocks: &[BlockQ5_1], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q51>(C), blocks, n, k / QK, |rec, j, blk| {
        put_scale_min(rec, C, j, blk.d, blk.m);
        put_vectors(rec, w_vecs_of::<Q51>(C), C, j, &blk.qs);
        put_vectors(rec, w_vecs_of::<Q51>(C) + 16 * C, C, j, &blk.qh);
    })
}

/// Row `row` of [`pack_q4_1`] into `out`.
#[allow(non_snake_case)]
pub(super) fn unpack_row_q4_1(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ4_1],
) {
    unpack_records(C, w_rec::<Q41>(C), buf, k / QK, row, out, |rec, j| {
        BlockQ4_1 {
            d: f16_at(rec, 2 * j),
            m: f16_at(rec, 2 * C + 2 * j),
            qs: get_vectors(rec, w_vecs_of::<Q41>(C), C, j),
        }
    })
}

/// Row `row` of [`pack_q5_1`] into `out`.
#[allow(non_snake_case)]
pub(super) fn unpack_row_q5_1(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ5_1],
) {
    unpack_records(C, w_rec::<Q51>(C), buf, k / QK, row, out, |rec, j| {
        BlockQ5_1 {
            d: f16_at(rec, 2 * j),
            m: f16_at(rec, 2 * C + 2 * j),
            qh: get_vectors(rec, w_vecs_of::<Q51>(C) + 16 * C, C, j),
            qs: get_vectors(rec, w_vecs_of::<Q51>(C), C, j),
        }
    })
}

/// Column `j`'s f16 scale and min in a Q4_1 / Q5_1 record.
#[allow(non_snake_case)]
fn put_scale_min(rec: &mut [u8], C: usize, j: usize, d: f16, m: f16) {
    rec[2 * j..2 * j + 2].copy_from_slice(&d.to_bits().to_ne_bytes());
    rec[2 * C + 2 * j..][..2].copy_from_slice(&m.to_bits().to_ne_bytes());
}

/// Bytes of one `Q8_256` activation record: the plain `ActBlockK` (every tier reads it as is).
pub(super) const AK_REC: usize = size_of::<ActBlockK>();
/// Offsets in it: the f32 scale, the 256 quants, the 16 i16 sums of 16.
pub(super) const AK_D: usize = 0;
pub(super) const AK_QS: usize = 4;
pub(super) const AK_BSUMS: usize = 260;
const _: () = assert!(AK_REC == 292 && std::mem::offset_of!(ActBlockK, bsums) == AK_BSUMS);
const _: () = assert!(std::mem::offset_of!(ActBlockK, qs) == AK_QS);

/// Offsets in a Q4_K weight record of group width `c` (`148 * c` bytes per super-block, placed by
/// [`rec_at`]; the file has 144): `c` f16 `d`, `c` f16 `dmin`, then the sub-block scales (8 x `c`
/// bytes: sub-block `j`'s scales of the `c` columns at `K_SC + j * c`), the mins as u8 pairs (4
/// groups of `2 c` bytes: bytes `2 j, 2 j + 1` of group `h` hold `(m[2h], m[2h + 1])` of column `j`,
/// widened to i16 pairs in the kernel), and the quants: 32
/// vectors of `4 c` bytes, vector `8 q + t` holding in lane `j` bytes `32 q + 4 t ..` of column
/// `j`'s `qs` (low nibbles: sub-block `2 q`, high nibbles: `2 q + 1`, values `4 t .. 4 t + 4`).
pub(super) const fn k_dmin(c: usize) -> usize {
    2 * c
}
pub(super) const fn k_sc(c: usize) -> usize {
    4 * c
}
pub(super) const fn k_mins(c: usize) -> usize {
    12 * c
}
pub(super) const fn k_qs(c: usize) -> usize {
    20 * c
}

/// Writes the Q4_K part of column `j`'s record (`d`, `dmin`, scales, mins, quants).
#[allow(non_snake_case)]
fn write_k4(rec: &mut [u8], C: usize, j: usize, d: f16, dmin: f16, p: &KParts, qs: &[u8; 128]) {
    rec[2 * j..2 * j + 2].copy_from_slice(&d.to_bits().to_ne_bytes());
    rec[k_dmin(C) + 2 * j..][..2].copy_from_slice(&dmin.to_bits().to_ne_bytes());
    for s in 0..8 {
        rec[k_sc(C) + s * C + j] = p.sc[s];
    }
    for h in 0..4 {
        let off = k_mins(C) + h * 2 * C + 2 * j;
        rec[off] = p.m[2 * h];
        rec[off + 1] = p.m[2 * h + 1];
    }
    for v in 0..32 {
        let off = k_qs(C) + v * 4 * C + 4 * j;
        rec[off..off + 4].copy_from_slice(&qs[4 * v..4 * v + 4]);
    }
}

/// Reads back what [`write_k4`] wrote: `(d, dmin, packed scales, quants)`.
#[allow(non_snake_case)]
fn read_k4(rec: &[u8], C: usize, j: usize) -> (f16, f16, [u8; 12], [u8; 128]) {
    let f16_at = |p: usize| f16::from_bits(u16::from_ne_bytes([rec[p], rec[p + 1]]));
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for s in 0..8 {
        sc[s] = rec[k_sc(C) + s * C + j];
        m[s] = rec[k_mins(C) + (s / 2) * 2 * C + 2 * j + s % 2];
    }
    let mut qs = [0u8; 128];
    for v in 0..32 {
        let off = k_qs(C) + v * 4 * C + 4 * j;
        qs[4 * v..4 * v + 4].copy_from_slice(&rec[off..off + 4]);
    }
    (
        f16_at(2 * j),
        f16_at(k_dmin(C) + 2 * j),
        pack_scale_min(&sc, &m),
        qs,
    )
}

/// Packs Q4_K super-blocks for group width `C` (see [`k_qs`] for the record).
#[allow(non_snake_case)]
pub(super) fn pack_q4k(C: usize, blocks: &[BlockQ4K], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q4K>(C), blocks, n, k / QK_K, |rec, j, blk| {
        write_k4(rec, C, j, blk.d, blk.dmin, &blk.parts(), &blk.qs);
    })
}

/// Row `row` of Q4_K weights packed by [`pack_q4k`], exactly as given, into `out`.
#[allow(non_snake_case)]
pub(super) fn unpack_row_q4k(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ4K],
) {
    unpack_records(C, w_rec::<Q4K>(C), buf, k / QK_K, row, out, |rec, j| {
        let (d, dmin, scales, qs) = read_k4(rec, C, j);
        BlockQ4K {
            d,
            dmin,
            scales,
            qs,
        }
    })
}

/// Offset of the fifth-bit vectors in a Q5_K record (`180 * c` bytes: the Q4_K record, then 8
/// vectors of `4 c` bytes, vector `t` holding in lane `j` bytes `4 t .. 4 t + 4` of column `j`'s
/// `qh`; bit `s` of `qh[l]` is the fifth bit of value `l` of sub-block `s`).
pub(super) const fn k_qh(c: usize) -> usize {
    148 * c
}

/// Packs Q5_K super-blocks for group width `C`: the Q4_K record of [`pack_q4k`] plus the fifth
/// bits at [`k_qh`].
#[allow(non_snake_case)]
pub(super) fn pack_q5k(C: usize, blocks: &[BlockQ5K], n: usize, k: usize) -> AlignedBuf {
    pack_records(C, w_rec::<Q5K>(C), blocks, n, k / QK_K, |rec, j, blk| {
        write_k4(rec, C, j, blk.d, blk.dmin, &blk.parts(), &blk.qs);
        put_vectors(rec, k_qh(C), C, j, &blk.qh);
    })
}

/// Row `row` of Q5_K weights packed by [`pack_q5k`], exactly as given, into `out`.
#[allow(non_snake_case)]
pub(super) fn unpack_row_q5k(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ5K],
) {
    unpack_records(C, w_rec::<Q5K>(C), buf, k / QK_K, row, out, |rec, j| {
        let (d, dmin, scales, qs) = read_k4(rec, C, j);
        BlockQ5K {
            d,
            dmin,
            scales,
            qh: get_vectors(rec, k_qh(C), C, j),
            qs,
        }
    })
}

/// The 12 bytes of Q4_K / Q5_K scales and mins from the 6-bit values (the inverse of ggml's
/// `get_scale_min_k4`; the 96 bits are all used, so the packing is a bijection).
fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..4 {
        q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    q
}

/// Offsets in a Q6_K weight record of group width `c` (`210 * c` bytes per super-block, as many
/// as the plain blocks): `c` f16 `d`; the 16 sub-block scales (i8, `c` bytes per sub-block at
/// `K6_SC + s * c`); 32 nibble vectors of `4 c` bytes at [`k6_ql`]; 16 high-bit vectors at
/// [`k6_qh`]. With `q` the unsigned 6-bit values (0..=63) of a column and "vector `u`" its values
/// `4 u .. 4 u + 4` (one per byte of a 32-bit lane): nibble vector `p` holds vector `p` in its low
/// nibbles and vector `p + 32` in its high nibbles; byte `t` of high-bit vector `h` holds bits
/// 4..5 of value `t` of vector `h + 16 s` at bits `2 s .. 2 s + 2` (`s` = 0..4).
pub(super) const fn k6_sc(c: usize) -> usize {
    2 * c
}
pub(super) const fn k6_ql(c: usize) -> usize {
    18 * c
}
pub(super) const fn k6_qh(c: usize) -> usize {
    146 * c
}

/// Packs Q6_K super-blocks for group width `C` (see [`k6_sc`] for the record).
#[allow(non_snake_case)]
pub(super) fn pack_q6k(C: usize, blocks: &[BlockQ6K], n: usize, k: usize) -> AlignedBuf {
    let kb = k / QK_K;
    let rec_len = w_rec::<Q6K>(C);
    let mut buf = AlignedBuf::zeroed(w_size(rec_len, C, n, kb));
    let bytes = buf.bytes_mut();
    for (col, row) in blocks.chunks_exact(kb).enumerate().take(n) {
        let (g, j) = (col / C, col % C);
        for (b, blk) in row.iter().enumerate() {
            let rec = &mut bytes[rec_at(rec_len, kb, g, b)..][..rec_len];
            let (sc, q) = blk.parts();
            let q = q.map(|v| (v + 32) as u8);
            rec[2 * j..2 * j + 2].copy_from_slice(&blk.d.to_bits().to_ne_bytes());
            for s in 0..16 {
                rec[k6_sc(C) + s * C + j] = sc[s] as u8;
            }
            for p in 0..32 {
                for t in 0..4 {
                    let v = (q[4 * p + t] & 0x0F) | ((q[4 * (p + 32) + t] & 0x0F) << 4);
                    rec[k6_ql(C) + p * 4 * C + 4 * j + t] = v;
                }
            }
            for h in 0..16 {
                for t in 0..4 {
                    let mut v = 0u8;
                    for s in 0..4 {
                        v |= (q[4 * (h + 16 * s) + t] >> 4) << (2 * s);
                    }
                    rec[k6_qh(C) + h * 4 * C + 4 * j + t] = v;
                }
            }
        }
    }
    buf
}

/// Row `row` of Q6_K weights packed by [`pack_q6k`], exactly as given, into `out`.
#[allow(non_snake_case)]
pub(super) fn unpack_row_q6k(
    C: usize,
    buf: &AlignedBuf,
    k: usize,
    row: usize,
    out: &mut [BlockQ6K],
) {
    let kb = k / QK_K;
    let rec_len = w_rec::<Q6K>(C);
    let (g, j) = (row / C, row % C);
    for (b, o) in out[..kb].iter_mut().enumerate() {
        let rec = &buf.bytes()[rec_at(rec_len, kb, g, b)..][..rec_len];
        o.d = f16::from_bits(u16::from_ne_bytes([rec[2 * j], rec[2 * j + 1]]));
        let mut sc = [0i8; 16];
        for (s, v) in sc.iter_mut().enumerate() {
            *v = rec[k6_sc(C) + s * C + j] as i8;
        }
        let mut q = [0u8; 256];
        for u in 0..64 {
            for t in 0..4 {
                let nib = rec[k6_ql(C) + (u % 32) * 4 * C + 4 * j + t];
                let lo = if u < 32 { nib & 0x0F } else { nib >> 4 };
                let hb = rec[k6_qh(C) + (u % 16) * 4 * C + 4 * j + t];
                q[4 * u + t] = lo | (((hb >> (2 * (u / 16))) & 3) << 4);
            }
        }
        *o = q6k_from_parts(o.d, &sc, &q);
    }
}

/// The Q6_K block of scale `d`, sub-block scales `sc` (element order) and unsigned values `q`
/// (element order, 0..=63): the inverse of `BlockQ6K::parts`.
fn q6k_from_parts(d: f16, sc: &[i8; 16], q: &[u8; 256]) -> BlockQ6K {
    let mut o = BlockQ6K {
        d,
        ..BlockQ6K::default()
    };
    for half in 0..2 {
        for l in 0..32 {
            let e = 128 * half + l;
            let (q1, q2, q3, q4) = (q[e], q[e + 32], q[e + 64], q[e + 96]);
            o.ql[64 * half + l] = (q1 & 0x0F) | ((q3 & 0x0F) << 4);
            o.ql[64 * half + l + 32] = (q2 & 0x0F) | ((q4 & 0x0F) << 4);
            o.qh[32 * half + l] =
                (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    for (s, &v) in sc.iter().enumerate() {
        o.scales[8 * (s / 8) + s % 2 + 2 * ((s % 8) / 2)] = v;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correction_is_minus_eight_times_the_sum() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3)
            .collect();
        let mut buf = vec![0u8; act_size(1, 96)];
        quantize_row(&x, 0, 1, 96, &mut buf);
        for (rec, blk) in buf.chunks_exact(ACT_REC).zip(unpack_acts(&buf, 1, 96)) {
            let corr = i32::from_ne_bytes(rec[ACT_CORR..ACT_CORR + 4].try_into().unwrap());
            assert_eq!(corr, -8 * blk.qs.iter().map(|&q| q as i32).sum::<i32>());
        }
    }
}
