//! Portable attention micro-kernels (f32 arithmetic; f16 tiles widened once per block).

use super::ops;
use crate::kernels::attention::{path, AttnKernel, AttnPath, Tile, KV_TILE};
use half::f16;

pub(crate) struct Scalar;

impl Scalar {
    /// `dst = src * scale`.
    pub(crate) fn load_q_f32(src: &[f32], scale: f32, dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s * scale;
        }
    }
}

pub(crate) static PATH: AttnPath = path::<Scalar>();

/// Widens an f16 key tile and `nk` value rows into the buffers, or borrows f32 storage.
pub(crate) fn tile_f32<'a>(
    t: Tile<'a>,
    nk: usize,
    d: usize,
    kbuf: &'a mut [f32],
    vbuf: &'a mut [f32],
    widen: impl Fn(&[f16], &mut [f32]),
) -> (&'a [f32], &'a [f32]) {
    match t {
        Tile::F32 { kt, v } => (&kt[..KV_TILE * d], &v[..nk * d]),
        Tile::F16 { kt, v } => {
            widen(&kt[..KV_TILE * d], &mut kbuf[..KV_TILE * d]);
            widen(&v[..nk * d], &mut vbuf[..nk * d]);
            (&kbuf[..KV_TILE * d], &vbuf[..nk * d])
        }
    }
}

impl AttnKernel for Scalar {
    type E = f32;

    unsafe fn load_q(src: &[f32], scale: f32, dst: &mut [f32]) {
        Self::load_q_f32(src, scale, dst);
    }

    unsafe fn tile<'a>(
        t: Tile<'a>,
        nk: usize,
        d: usize,
        kbuf: &'a mut [f32],
        vbuf: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]) {
        tile_f32(t, nk, d, kbuf, vbuf, ops::f16_to_f32)
    }

    unsafe fn qk(q: &[f32], rows: usize, d: usize, kt: &[f32], nk: usize, s: &mut [f32]) {
        for r in 0..rows {
            let srow = &mut s[r * KV_TILE..r * KV_TILE + nk];
            srow.fill(0.0);
            for (i, &qv) in q[r * d..(r + 1) * d].iter().enumerate() {
                for (sv, &kv) in srow.iter_mut().zip(&kt[i * KV_TILE..i * KV_TILE + nk]) {
                    *sv += qv * kv;
                }
            }
        }
    }

    unsafe fn max(x: &[f32]) -> f32 {
        ops::max(x)
    }

    unsafe fn exp_to_p(s: &mut [f32], m: f32, p: &mut [f32]) -> f32 {
        let sum = ops::exp_sub_sum(s, m);
        p.copy_from_slice(s);
        sum
    }

    unsafe fn pv(
        p: &[f32],
        rows: usize,
        nk: usize,
        v: &[f32],
        d: usize,
        corr: &[f32],
        o: &mut [f32],
    ) {
        for r in 0..rows {
            let orow = &mut o[r * d..(r + 1) * d];
            let c = corr[r];
            orow.iter_mut().for_each(|x| *x *= c);
            for j in 0..nk {
                let pj = p[r * KV_TILE + j];
                for (x, &vv) in orow.iter_mut().zip(&v[j * d..(j + 1) * d]) {
                    *x += pj * vv;
                }
            }
        }
    }
}
