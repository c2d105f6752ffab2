//! Portable attention arithmetic (f32; f16 tiles widened once per block), driven as an
//! [`F32`] path.

use super::ops;
#[cfg(doc)]
use crate::contract::attention::F32Ops;
use crate::contract::attention::{f32_ops, AttnPath, KV_TILE};
use crate::drivers::attention::{path, F32};

pub(crate) struct Scalar;

pub(crate) static PATH: AttnPath = path::<F32<Scalar>>();

f32_ops!(Scalar {
    widen: ops::f16_to_f32,
    max: ops::max,
    exp_sub_sum: ops::exp_sub_sum,
    qk_rows: qk_scalar,
    pv_rows: pv_scalar,
});

/// `R` rows of `Q K^T` (see [`F32Ops::qk_rows`]).
///
/// # Safety
/// The caller checked the shapes.
unsafe fn qk_scalar<const R: usize>(
    q: *const f32,
    d: usize,
    kt: *const f32,
    nk: usize,
    s: *mut f32,
) {
    for r in 0..R {
        // SAFETY: the caller checked q (R x d), kt (d x 64), s (R x 64), nk <= 64.
        let (qr, srow) = unsafe {
            (
                std::slice::from_raw_parts(q.add(r * d), d),
                std::slice::from_raw_parts_mut(s.add(r * KV_TILE), nk),
            )
        };
        srow.fill(0.0);
        for (i, &qv) in qr.iter().enumerate() {
            // SAFETY: as above.
            let kr = unsafe { std::slice::from_raw_parts(kt.add(i * KV_TILE), nk) };
            for (sv, &kv) in srow.iter_mut().zip(kr) {
                *sv += qv * kv;
            }
        }
    }
}

/// `R` rows of `P V` (see [`F32Ops::pv_rows`]).
///
/// # Safety
/// The caller checked the shapes.
unsafe fn pv_scalar<const R: usize>(
    p: *const f32,
    nk: usize,
    v: *const f32,
    d: usize,
    corr: *const f32,
    o: *mut f32,
) {
    for r in 0..R {
        // SAFETY: the caller checked p (R x 64), v (nk x d), corr (R), o (R x d).
        let (prow, orow, c) = unsafe {
            (
                std::slice::from_raw_parts(p.add(r * KV_TILE), nk),
                std::slice::from_raw_parts_mut(o.add(r * d), d),
                *corr.add(r),
            )
        };
        orow.iter_mut().for_each(|x| *x *= c);
        for (j, &pj) in prow.iter().enumerate() {
            // SAFETY: as above.
            let vr = unsafe { std::slice::from_raw_parts(v.add(j * d), d) };
            for (x, &vv) in orow.iter_mut().zip(vr) {
                *x += pj * vv;
            }
        }
    }
}
