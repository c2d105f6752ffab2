//! The `Neon` (ARMv8.0, no dot product) Q4_0 kernel in Rust intrinsics, on the SMMLA layouts
//! ([`pack::Layout::Mmla`] weights, the shared activation layout): each 2x2 SMMLA step becomes
//! four `smull`/`smlal` pairs (16-bit products, two per lane: |16 * 8 * 127| * 2 < 2^15) folded
//! with `sadalp`, then the same float epilogue as the SMMLA kernel.

use super::act::{self, GROUP_PAIRS};
use super::pack::{self, NR, TILE_BLOCK, TILE_NIBBLES};
use crate::contract::gemm::GemmArgs;
use crate::quant::QK;
use core::arch::aarch64::*;

/// Four f16 (as bits) widened to f32 (`fcvtl`; Rust's f16 vector types are unstable).
#[inline(always)]
fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    let f: float32x4_t;
    // SAFETY: `fcvtl` is base ARMv8 (NEON); it reads and writes only the named registers.
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

/// Rows `2p`, `2p + 1` x the 4 columns of one tile, over all `kb` blocks.
/// `w_off`: the tile's block 0; `ar_data` / `ar_scales`: the pair's block 0; `stride`: block step.
fn tile_2x4(
    w: &[u8],
    w_off: usize,
    a: &[u8],
    ar_data: usize,
    ar_scales: usize,
    stride: usize,
    kb: usize,
) -> [[f32; NR]; 2] {
    assert!(kb >= 1 && w_off + kb * TILE_BLOCK <= w.len());
    assert!(ar_data + (kb - 1) * stride + act::PAIR_DATA <= a.len());
    assert!(ar_scales + (kb - 1) * stride + act::PAIR_SCALES <= a.len());
    // SAFETY: NEON is baseline on aarch64. Per block the loads read 72 bytes at
    // `w_off + b * TILE_BLOCK` and 64 + 16 bytes at `ar_* + b * stride`, inside the slices as
    // asserted above (the f32 and u16 loads are aligned: weight offsets are multiples of 8,
    // activation offsets of 16, from the 64-byte aligned buffers).
    unsafe {
        let mask = vdupq_n_s8(0xF0u8 as i8);
        let mut acc = [vdupq_n_f32(0.0); 2];
        for b in 0..kb {
            let wp = w.as_ptr().add(w_off + b * TILE_BLOCK);
            let ap = a.as_ptr().add(ar_data + b * stride);
            let dw = f16x4_to_f32(vld1_u16(wp.add(TILE_NIBBLES).cast()));
            let dx = vld1q_f32(a.as_ptr().add(ar_scales + b * stride).cast());
            let x: [int8x16_t; 4] = core::array::from_fn(|c| vld1q_s8(ap.add(16 * c).cast()));
            for (cp, acc_cp) in acc.iter_mut().enumerate() {
                let p0 = vld1q_s8(wp.add(32 * cp).cast());
                let p1 = vld1q_s8(wp.add(32 * cp + 16).cast());
                // K 0-7, 8-15, 16-23, 24-31 of columns 2cp, 2cp+1, times 16.
                let wv = [
                    vshlq_n_s8::<4>(p0),
                    vshlq_n_s8::<4>(p1),
                    vandq_s8(p0, mask),
                    vandq_s8(p1, mask),
                ];
                // c0r0, c0r1, c1r0, c1r1
                let mut s = [vdupq_n_s32(0); 4];
                for h in 0..2 {
                    let (w0, w1, x0, x1) = (wv[2 * h], wv[2 * h + 1], x[2 * h], x[2 * h + 1]);
                    let m00 = vmlal_s8(
                        vmull_s8(vget_low_s8(w0), vget_low_s8(x0)),
                        vget_low_s8(w1),
                        vget_low_s8(x1),
                    );
                    let m01 = vmlal_s8(
                        vmull_s8(vget_low_s8(w0), vget_high_s8(x0)),
                        vget_low_s8(w1),
                        vget_high_s8(x1),
                    );
                    let m10 = vmlal_s8(
                        vmull_s8(vget_high_s8(w0), vget_low_s8(x0)),
                        vget_high_s8(w1),
                        vget_low_s8(x1),
                    );
                    let m11 = vmlal_high_s8(vmull_high_s8(w0, x0), w1, x1);
                    s[0] = vpadalq_s16(s[0], m00);
                    s[1] = vpadalq_s16(s[1], m01);
                    s[2] = vpadalq_s16(s[2], m10);
                    s[3] = vpadalq_s16(s[3], m11);
                }
                // [r0c0, r0c1, r1c0, r1c1], the SMMLA order.
                let isum = vpaddq_s32(vpaddq_s32(s[0], s[2]), vpaddq_s32(s[1], s[3]));
                let dwp = if cp == 0 {
                    vcombine_f32(vget_low_f32(dw), vget_low_f32(dw))
                } else {
                    vcombine_f32(vget_high_f32(dw), vget_high_f32(dw))
                };
                // The weights are 16 (q - 8): the conversion divides by 16.
                let fsum = vcvtq_n_f32_s32::<4>(isum);
                *acc_cp = vfmaq_f32(*acc_cp, vmulq_f32(fsum, dwp), dx);
            }
        }
        let (a0, a1) = (vreinterpretq_f64_f32(acc[0]), vreinterpretq_f64_f32(acc[1]));
        let mut r = [[0f32; NR]; 2];
        vst1q_f32(r[0].as_mut_ptr(), vreinterpretq_f32_f64(vzip1q_f64(a0, a1)));
        vst1q_f32(r[1].as_mut_ptr(), vreinterpretq_f32_f64(vzip2q_f64(a0, a1)));
        r
    }
}

/// # Safety
/// See `WeightKernel::gemm`; `w` was packed with [`pack::Layout::Mmla`].
pub(crate) unsafe fn gemm(args: &GemmArgs<'_>) {
    let kb = args.k / QK;
    let (w, a) = (args.w.bytes(), args.a.bytes());
    for p in args.rows.start / 2..args.rows.end.div_ceil(2) {
        let g = act::group(p / GROUP_PAIRS, args.m, args.k);
        let q = p % GROUP_PAIRS;
        for t in args.cols.start / NR..args.cols.end.div_ceil(NR) {
            let r = tile_2x4(
                w,
                pack::tile_offset(t, kb),
                a,
                g.data(q),
                g.scales(q),
                g.stride,
                kb,
            );
            for (h, row) in r.iter().enumerate() {
                let i = 2 * p + h;
                if !args.rows.contains(&i) {
                    continue;
                }
                for (c, &v) in row.iter().enumerate() {
                    let j = t * NR + c;
                    if !args.cols.contains(&j) {
                        continue;
                    }
                    let v = v + args.bias.map_or(0.0, |b| b[j]);
                    // SAFETY: (i, j) lies in the ranges, so the caller guarantees this element.
                    unsafe {
                        *args
                            .out
                            .add((i - args.rows.start) * args.ldo + (j - args.cols.start)) = v
                    };
                }
            }
        }
    }
}
