//! Row-part helpers: a chunk's activations are quantized in parts of [`PART_ROWS`] rows, in
//! parallel, and all parts of the chunk feed one parallel matmul call.

use super::packed::Linear;
use crate::parallel::ThreadPool;
use crate::QuantizedActivations;
use crate::{Error, Result};
use std::sync::Mutex;

/// Rows per part of a chunk's quantized activations. Parts are quantized in parallel (the
/// quantizers are serial per call), then one parallel matmul takes them all and streams the
/// weights once per chunk; 128 is a multiple of every kernel's row tile, so the split changes no
/// result.
pub(super) const PART_ROWS: usize = 128;

/// Quantizes the rows of `x` (`k` values each) into `parts` (the first `rows.div_ceil(PART_ROWS)`
/// of them are used; there must be that many) with `quantize(rows, part)`, parts in parallel.
pub(super) fn quantize_parts(
    pool: &ThreadPool,
    parts: &mut [QuantizedActivations],
    x: &[f32],
    k: usize,
    quantize: &(dyn Fn(&[f32], &mut QuantizedActivations) -> Result<()> + Sync),
) -> Result<()> {
    let chunks: Vec<&[f32]> = x.chunks(PART_ROWS * k).collect();
    if chunks.len() > parts.len() {
        return Err(Error::ShapeMismatch("too few activation parts".into()));
    }
    if chunks.len() == 1 {
        return quantize(chunks[0], &mut parts[0]);
    }
    let slots: Vec<Mutex<&mut QuantizedActivations>> = parts.iter_mut().map(Mutex::new).collect();
    let err: Mutex<Option<Error>> = Mutex::new(None);
    pool.run(chunks.len(), &|i| {
        let mut part = slots[i].lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = quantize(chunks[i], &mut part) {
            *err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
    });
    match err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `out = parts * w^T (+ bias)`: the parts' rows stacked into consecutive rows of `out`, one
/// parallel matmul for all of them (`scratch`: see [`Linear::matmul_parallel`]).
pub(super) fn matmul_parts(
    pool: &ThreadPool,
    w: &Linear,
    parts: &[QuantizedActivations],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) -> Result<()> {
    let rows: usize = parts.iter().map(|a| a.m()).sum();
    let len = crate::error::mul(rows, w.n(), "output size")?;
    let out = out
        .get_mut(..len)
        .ok_or_else(|| Error::ShapeMismatch("matmul output too short".into()))?;
    w.matmul_parallel(pool, parts, bias, out, scratch)
}
