//! Packed Q4_0 weight layouts of the aarch64 tiers, and the tile packer of the other formats'
//! layouts ([`pack_tiles`], [`unpack_tiles`]).
//!
//! Columns (weight rows) go in tiles of [`NR`] = 4, N padded with zero blocks. Tile `t` holds its
//! `kb` blocks one after the other, [`TILE_BLOCK`] = 72 bytes each (GGUF's 18 per column):
//!
//! ```text
//! [64 bytes of nibbles, XORed with 0x88][d(4t) .. d(4t+3): f16 as in the file]
//! ```
//!
//! XOR 0x88 turns each nibble `q` into the 4-bit two's complement of `q - 8`, so `shl #4` (low
//! nibbles, K 0..15) and `and #0xF0` (high nibbles, K 16..31) yield int8 operands equal to
//! `16 * (q - 8)`; the kernels fold the 1/16 into the int32 -> f32 conversion (`scvtf #4`,
//! exact: a power of two) and widen the scales with one `fcvtl`. The nibble order is
//! per layout, so that one 16-byte load unpacks into two micro-kernel operands:
//!
//! * [`Layout::Mmla`] (SMMLA; also the `Neon` kernel): register `2 * cp + h` (column pair `cp`,
//!   half `h`) = `[col 2cp: bytes 8h..8h+8][col 2cp+1: bytes 8h..8h+8]`, a 2x8 SMMLA operand
//!   (K `8h..`) after `shl`, and (K `16 + 8h..`) after `and`.
//! * [`Layout::Dot`] (SDOT): register `j` = bytes `4j..4j+4` of columns 0, 1, 2, 3: four columns
//!   of four K values, the SDOT by-element operand.
//!
//! The scales keep their f16 bits, so [`unpack_row`] returns the original blocks bit for bit.

use crate::aligned::AlignedBuf;
use crate::quant::{BlockQ4_0, QK};
use half::f16;

const _: () = assert!(
    TILE_BLOCK == 72,
    "asm/include/q4_gemm.h steps 72 bytes per block"
);

/// Columns per tile.
pub(crate) const NR: usize = 4;
/// Bytes of nibbles per tile and block.
pub(crate) const TILE_NIBBLES: usize = 64;
/// Bytes per tile and block.
pub(crate) const TILE_BLOCK: usize = TILE_NIBBLES + 2 * NR;

/// Nibble order within a tile's block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Layout {
    Mmla,
    Dot,
}

impl Layout {
    /// Byte offset, within a tile's 64 nibble bytes, of byte `i` (0..16) of column `c` (0..4).
    fn offset(self, c: usize, i: usize) -> usize {
        match self {
            Layout::Mmla => (c / 2) * 32 + (i / 8) * 16 + (c % 2) * 8 + i % 8,
            Layout::Dot => (i / 4) * 16 + c * 4 + i % 4,
        }
    }
}

/// Column tiles for `n` columns.
pub(crate) fn tiles(n: usize) -> usize {
    n.div_ceil(NR)
}

/// Bytes of tile `t`'s block 0.
pub(crate) fn tile_offset(t: usize, kb: usize) -> usize {
    t * kb * TILE_BLOCK
}

pub(crate) fn size(n: usize, k: usize) -> usize {
    tiles(n) * (k / QK) * TILE_BLOCK
}

/// Packs `n` columns of `k / len` blocks each (rows of `blocks`) in tiles of [`NR`] columns, each
/// tile's blocks contiguous, `tile_block` bytes per tile and block: `put` writes one tile block
/// (zeroed bytes) from the 4 columns' blocks; the columns past `n` of the last tile are `pad`.
/// The layout of every aarch64 tiled format but Q4_0's.
pub(crate) fn pack_tiles<B: Copy>(
    blocks: &[B],
    n: usize,
    k: usize,
    len: usize,
    tile_block: usize,
    pad: B,
    put: impl Fn(&[B; NR], &mut [u8]),
) -> AlignedBuf {
    let kb = k / len;
    assert!(blocks.len() >= n * kb);
    let mut buf = AlignedBuf::zeroed(tiles(n) * kb * tile_block);
    let bytes = buf.bytes_mut();
    for t in 0..tiles(n) {
        for b in 0..kb {
            let tb: [B; NR] = std::array::from_fn(|c| {
                let j = t * NR + c;
                if j < n {
                    blocks[j * kb + b]
                } else {
                    pad
                }
            });
            put(&tb, &mut bytes[(t * kb + b) * tile_block..][..tile_block]);
        }
    }
    buf
}

/// Column `row`'s blocks from tiles of [`pack_tiles`] with the same `len` and `tile_block`:
/// `get` reads one column's block from a tile block.
pub(crate) fn unpack_tiles<B>(
    buf: &AlignedBuf,
    k: usize,
    len: usize,
    tile_block: usize,
    row: usize,
    out: &mut [B],
    get: impl Fn(&[u8], usize) -> B,
) {
    let kb = k / len;
    let (t, c) = (row / NR, row % NR);
    for (b, o) in out.iter_mut().enumerate().take(kb) {
        *o = get(&buf.bytes()[(t * kb + b) * tile_block..][..tile_block], c);
    }
}

pub(crate) fn pack(layout: Layout, blocks: &[BlockQ4_0], n: usize, k: usize) -> AlignedBuf {
    let kb = k / QK;
    let mut buf = AlignedBuf::zeroed(size(n, k));
    let out = buf.bytes_mut();
    for t in 0..tiles(n) {
        for b in 0..kb {
            let o = tile_offset(t, kb) + b * TILE_BLOCK;
            for c in 0..NR {
                let j = t * NR + c;
                // Padding columns: zero scale and nibbles 8 (value 0).
                let blk = (j < n).then(|| blocks[j * kb + b]);
                let qs = blk.map_or([0x88; 16], |x| x.qs);
                for (i, &q) in qs.iter().enumerate() {
                    out[o + layout.offset(c, i)] = q ^ 0x88;
                }
                let s = blk.map_or(0, |x| x.d.to_bits());
                let so = o + TILE_NIBBLES + 2 * c;
                out[so..so + 2].copy_from_slice(&s.to_ne_bytes());
            }
        }
    }
    buf
}

pub(crate) fn unpack_row(
    layout: Layout,
    buf: &AlignedBuf,
    k: usize,
    j: usize,
    out: &mut [BlockQ4_0],
) {
    let kb = k / QK;
    let bytes = buf.bytes();
    let (t, c) = (j / NR, j % NR);
    for (b, o) in out.iter_mut().enumerate().take(kb) {
        let off = tile_offset(t, kb) + b * TILE_BLOCK;
        let qs = core::array::from_fn(|i| bytes[off + layout.offset(c, i)] ^ 0x88);
        let so = off + TILE_NIBBLES + 2 * c;
        *o = BlockQ4_0 {
            d: f16::from_bits(u16::from_ne_bytes([bytes[so], bytes[so + 1]])),
            qs,
        };
    }
}
