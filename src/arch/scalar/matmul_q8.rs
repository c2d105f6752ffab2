//! Portable Q8_0 matmul. Layouts: weights are the plain `BlockQ8_0` rows, activations plain
//! `ActBlock` rows (every tier without its own Q8_0 kernel runs this one on plain activations).

use super::matmul::{pack_plain, unpack_row_plain};
use crate::contract::gemm::{ActInput, GemmArgs, WeightKernel};
use crate::quant::{ActBlock, BlockQ8_0, QK};

pub(crate) static Q8_KERNEL: WeightKernel<BlockQ8_0> = WeightKernel {
    name: "scalar",
    pack: pack_plain,
    unpack_row: unpack_row_plain,
    acts: ActInput::Plain,
    gemm: gemm_scalar,
};

/// Exact integer dot product of a Q8_0 block with an activation block (|sum| <= 32 * 128 * 127).
#[inline]
fn block_dot(w: &[i8; 32], a: &[i8; 32]) -> i32 {
    w.iter().zip(a).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// # Safety
/// See [`WeightKernel::gemm`]; `args.a` holds plain `ActBlock`s.
unsafe fn gemm_scalar(args: &GemmArgs<'_>) {
    let kb = args.k / QK;
    let w: &[BlockQ8_0] =
        bytemuck::cast_slice(&args.w.bytes()[..args.n * kb * size_of::<BlockQ8_0>()]);
    let a: &[ActBlock] =
        bytemuck::cast_slice(&args.a.bytes()[..args.m * kb * size_of::<ActBlock>()]);
    // One weight row at a time (it stays in L1 across the activation rows).
    for j in args.cols.clone() {
        let wrow = &w[j * kb..(j + 1) * kb];
        for i in args.rows.clone() {
            let arow = &a[i * kb..(i + 1) * kb];
            let mut acc = 0f32;
            for (wb, ab) in wrow.iter().zip(arow) {
                acc += wb.d.to_f32() * ab.d * block_dot(&wb.qs, &ab.qs) as f32;
            }
            if let Some(b) = args.bias {
                acc += b[j];
            }
            // SAFETY: the caller guarantees `out` is valid for every (i, j) of the ranges at this
            // offset.
            unsafe {
                *args
                    .out
                    .add((i - args.rows.start) * args.ldo + (j - args.cols.start)) = acc
            };
        }
    }
}
