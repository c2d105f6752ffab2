//! Scalar Q4_0 matmul. Layouts: weights are the plain `BlockQ4_0` rows, activations plain
//! `ActBlock` rows.

use crate::aligned::AlignedBuf;
use crate::contract::gemm::{ActInput, ActKernel, GemmArgs, WeightKernel};
use crate::contract::WeightFormat;
use crate::quant::{
    quantize_activation_block, quantize_activation_block_k, ActBlock, ActBlockK, BlockQ4_0, QK,
    QK_K,
};

pub(crate) static ACT_KERNEL: ActKernel<ActBlock> = ActKernel {
    size: plain_act_size,
    quantize_row: quantize_row_plain,
    unpack: unpack_plain_acts,
    plain: true,
};

pub(crate) static Q4_KERNEL: WeightKernel<BlockQ4_0> = WeightKernel {
    name: "scalar",
    pack: pack_plain,
    unpack_row: unpack_row_plain,
    acts: ActInput::Native,
    gemm: gemm_scalar,
};

/// Plain activation layout: `m * k / 32` `ActBlock`s in row order.
fn plain_act_size(m: usize, k: usize) -> usize {
    m * (k / QK) * size_of::<ActBlock>()
}

fn quantize_row_plain(x: &[f32], i: usize, _m: usize, k: usize, out: &mut [u8]) {
    let kb = k / QK;
    let row = &mut bytemuck::cast_slice_mut::<u8, ActBlock>(&mut out[..plain_act_size(i + 1, k)])
        [i * kb..];
    for (o, xb) in row.iter_mut().zip(x.chunks_exact(QK)) {
        *o = quantize_activation_block(xb.try_into().expect("chunk of 32"));
    }
}

fn unpack_plain_acts(buf: &[u8], m: usize, k: usize) -> Vec<ActBlock> {
    bytemuck::cast_slice::<u8, ActBlock>(&buf[..plain_act_size(m, k)]).to_vec()
}

/// The `Q8_256` activations of every tier: `m * k / 256` plain `ActBlockK`s in row order.
pub(crate) static ACT_KERNEL_K: ActKernel<ActBlockK> = ActKernel {
    size: plain_act_k_size,
    quantize_row: quantize_row_plain_k,
    unpack: unpack_plain_acts_k,
    plain: true,
};

pub(crate) fn plain_act_k_size(m: usize, k: usize) -> usize {
    m * (k / QK_K) * size_of::<ActBlockK>()
}

fn quantize_row_plain_k(x: &[f32], i: usize, _m: usize, k: usize, out: &mut [u8]) {
    let kb = k / QK_K;
    let row =
        &mut bytemuck::cast_slice_mut::<u8, ActBlockK>(&mut out[..plain_act_k_size(i + 1, k)])
            [i * kb..];
    for (o, xb) in row.iter_mut().zip(x.chunks_exact(QK_K)) {
        *o = quantize_activation_block_k(xb.try_into().expect("chunk of 256"));
    }
}

pub(crate) fn unpack_plain_acts_k(buf: &[u8], m: usize, k: usize) -> Vec<ActBlockK> {
    bytemuck::cast_slice::<u8, ActBlockK>(&buf[..plain_act_k_size(m, k)]).to_vec()
}

/// The plain weight layout of any format: the blocks as given, row-major.
pub(crate) fn pack_plain<B: WeightFormat>(blocks: &[B], _n: usize, _k: usize) -> AlignedBuf {
    let mut buf = AlignedBuf::zeroed(std::mem::size_of_val(blocks));
    buf.bytes_mut()[..std::mem::size_of_val(blocks)].copy_from_slice(bytemuck::cast_slice(blocks));
    buf
}

/// Row `row` of [`pack_plain`]'s layout into `out` (`k / B::BLOCK_LEN` blocks).
pub(crate) fn unpack_row_plain<B: WeightFormat>(
    buf: &AlignedBuf,
    n: usize,
    k: usize,
    row: usize,
    out: &mut [B],
) {
    let kb = k / B::BLOCK_LEN;
    let all: &[B] = bytemuck::cast_slice(&buf.bytes()[..n * kb * size_of::<B>()]);
    out.copy_from_slice(&all[row * kb..(row + 1) * kb]);
}

/// Exact integer dot product of a Q4_0 block with an activation block.
#[inline]
pub(crate) fn block_dot(w: &BlockQ4_0, a: &ActBlock) -> i32 {
    let mut s = 0i32;
    for j in 0..16 {
        s += ((w.qs[j] & 0x0F) as i32 - 8) * a.qs[j] as i32;
        s += ((w.qs[j] >> 4) as i32 - 8) * a.qs[j + 16] as i32;
    }
    s
}

/// # Safety
/// See [`WeightKernel::gemm`].
unsafe fn gemm_scalar(args: &GemmArgs<'_>) {
    let kb = args.k / QK;
    let w: &[BlockQ4_0] =
        bytemuck::cast_slice(&args.w.bytes()[..args.n * kb * size_of::<BlockQ4_0>()]);
    let a: &[ActBlock] = bytemuck::cast_slice(&args.a.bytes()[..plain_act_size(args.m, args.k)]);
    for i in args.rows.clone() {
        let arow = &a[i * kb..(i + 1) * kb];
        for j in args.cols.clone() {
            let wrow = &w[j * kb..(j + 1) * kb];
            let mut acc = 0f32;
            for (wb, ab) in wrow.iter().zip(arow) {
                acc += wb.d.to_f32() * ab.d * block_dot(wb, ab) as f32;
            }
            if let Some(b) = args.bias {
                acc += b[j];
            }
            // SAFETY: the caller guarantees `out` is valid for every (i, j) of the ranges at this offset.
            unsafe {
                *args
                    .out
                    .add((i - args.rows.start) * args.ldo + (j - args.cols.start)) = acc
            };
        }
    }
}
