//! Token embedding lookup: one row of a table in any of the row formats a model keeps its
//! embedding in, widened to f32.

use crate::contract::Kernels;
use crate::quant::{blocks_in, check_len, dequantize_q4_0, dequantize_q8_0, BlockQ4_0, BlockQ8_0};
use crate::{Error, Result};
use half::{bf16, f16};

/// An embedding table: rows of `k` values, row-major, in one format.
#[derive(Clone, Copy, Debug)]
pub enum EmbeddingTable<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    Bf16(&'a [bf16]),
    /// Q8_0 blocks, `k / 32` per row.
    Q8_0(&'a [BlockQ8_0]),
    /// Q4_0 blocks, `k / 32` per row.
    Q4_0(&'a [BlockQ4_0]),
}

impl EmbeddingTable<'_> {
    /// Number of whole rows of `k` values; an error if `k` does not fit the format or the table
    /// does not hold whole rows.
    pub fn rows(&self, k: usize) -> Result<usize> {
        let (len, per_row) = match self {
            EmbeddingTable::F32(t) => (t.len(), k),
            EmbeddingTable::F16(t) => (t.len(), k),
            EmbeddingTable::Bf16(t) => (t.len(), k),
            EmbeddingTable::Q8_0(t) => (t.len(), blocks_in(k, "embedding K")?),
            EmbeddingTable::Q4_0(t) => (t.len(), blocks_in(k, "embedding K")?),
        };
        if per_row == 0 || !len.is_multiple_of(per_row) {
            return Err(Error::ShapeMismatch(format!(
                "embedding table of {len} elements does not hold whole rows of {k} values"
            )));
        }
        Ok(len / per_row)
    }
}

/// Writes row `row` of `table` (rows of `k` values) into `out` (`k` values) as f32.
pub fn embedding_row(
    kernels: &Kernels,
    table: EmbeddingTable<'_>,
    k: usize,
    row: usize,
    out: &mut [f32],
) -> Result<()> {
    let kern = kernels.ops;
    let rows = table.rows(k)?;
    if row >= rows {
        return Err(Error::ShapeMismatch(format!(
            "embedding row {row} is outside the table's {rows} rows"
        )));
    }
    check_len("embedding output", out.len(), k)?;
    match table {
        EmbeddingTable::F32(t) => out.copy_from_slice(&t[row * k..(row + 1) * k]),
        // SAFETY: `Kernels` exist only for supported tiers; both slices have `k` values.
        EmbeddingTable::F16(t) => unsafe { (kern.f16_to_f32)(&t[row * k..(row + 1) * k], out) },
        EmbeddingTable::Bf16(t) => {
            for (o, v) in out.iter_mut().zip(&t[row * k..(row + 1) * k]) {
                *o = v.to_f32();
            }
        }
        EmbeddingTable::Q8_0(t) => {
            let kb = k / 32;
            dequantize_q8_0(&t[row * kb..(row + 1) * kb], out)?;
        }
        EmbeddingTable::Q4_0(t) => {
            let kb = k / 32;
            dequantize_q4_0(&t[row * kb..(row + 1) * kb], out)?;
        }
    }
    Ok(())
}
