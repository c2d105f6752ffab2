//! Read-only file mappings the loaders pack from, and an embedding table read from one in place.
//!
//! [`Maps`] owns the mappings of the files of one load. Once a tensor is packed, its pages are
//! released ([`Maps::release`]), so a load holds the packed weights plus about one tensor of the
//! file at a time. An untied token embedding is never packed: [`MappedRows`] keeps the mapping
//! and converts one row per lookup.

use super::convert::{DType, RawTensor};
use super::QuantType;
use crate::aligned::SharedBytes;
use crate::{Error, Result};
use memmap2::Mmap;
use std::path::Path;
use std::sync::Arc;

/// The mappings of the files of one load (none for a load from bytes in memory).
#[derive(Default)]
pub(crate) struct Maps {
    maps: Vec<Arc<Mmap>>,
}

impl Maps {
    /// Maps `path` read-only and keeps the mapping; returns it.
    pub(crate) fn open(&mut self, path: &Path) -> Result<Arc<Mmap>> {
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: a read-only mapping; the file must not be truncated or changed by another process
        // while it is mapped (the usual memory-map caveat, which every mmap-based model loader
        // shares). Every read is bounds-checked against its length.
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(io)?);
        self.maps.push(map.clone());
        Ok(map)
    }

    /// The mapping holding all of `s`, and the offset of `s` in it.
    fn find(&self, s: &[u8]) -> Option<(&Arc<Mmap>, usize)> {
        let p = s.as_ptr() as usize;
        self.maps.iter().find_map(|m| {
            let start = m.as_ptr() as usize;
            (p >= start && p + s.len() <= start + m.len()).then(|| (m, p - start))
        })
    }

    /// Tells the system that the pages under `s` (widened to whole pages) are not needed any more,
    /// if `s` lies in one of the mappings: they leave this process's resident set now (and are
    /// read from the file again if touched). A no-op for bytes in memory.
    pub(crate) fn release(&self, s: &[u8]) {
        #[cfg(unix)]
        if let Some((m, offset)) = self.find(s) {
            // SAFETY: the mapping is read-only (`Mmap::map`), so its pages are clean copies of the
            // file: MADV_DONTNEED only drops them from this process's page tables, and the next
            // access faults the same bytes back in from the file (unlike a writable private
            // mapping, nothing can be lost, and borrows of the mapping stay valid and see the same
            // contents). The range lies inside the mapping (`find`); memmap2 widens it to whole
            // pages, which may cover bytes of a neighbouring tensor: they are simply re-read if
            // used. A failure only means the pages stay resident, so it is ignored.
            let _ = unsafe {
                m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, s.len())
            };
        }
        #[cfg(not(unix))]
        let _ = s;
    }

    /// Releases every page of every mapping ([`Maps::release`]).
    pub(crate) fn release_all(&self) {
        for m in &self.maps {
            self.release(&m[..]);
        }
    }

    /// An embedding table (`rows` rows of `k` values) read in place from its mapping, if `t` lies
    /// in one; `None` for bytes in memory.
    pub(crate) fn rows(&self, t: &RawTensor<'_>, rows: usize, k: usize) -> Option<MappedRows> {
        let (map, offset) = self.find(t.data)?;
        let row_bytes = t.data.len().checked_div(rows)?;
        (row_bytes * rows == t.data.len()).then(|| MappedRows {
            map: map.clone() as SharedBytes,
            offset,
            rows,
            row_bytes,
            k,
            dtype: t.dtype,
            name: t.name.clone(),
        })
    }
}

/// An embedding table in a file mapping: `rows` rows of `k` values of a file type, each converted
/// on lookup exactly as the loaders convert a whole table (kept as it is if quantized; a float
/// table quantized to Q8_0 row by row, which is what quantizing the whole table gives).
pub(crate) struct MappedRows {
    map: SharedBytes,
    offset: usize,
    rows: usize,
    row_bytes: usize,
    k: usize,
    dtype: DType,
    name: String,
}

impl MappedRows {
    /// `rows` rows of `k` values of `dtype` at `offset` in `owner`; an error if they do not fit.
    pub(crate) fn new(
        owner: SharedBytes,
        offset: usize,
        rows: usize,
        k: usize,
        dtype: DType,
        name: &str,
    ) -> Result<MappedRows> {
        let row_bytes = super::convert::byte_size(dtype, k).filter(|&b| b > 0);
        let fits = row_bytes
            .and_then(|rb| rb.checked_mul(rows))
            .and_then(|len| offset.checked_add(len))
            .is_some_and(|end| end <= (*owner).as_ref().len());
        match row_bytes {
            Some(row_bytes) if fits && rows > 0 => Ok(MappedRows {
                map: owner,
                offset,
                rows,
                row_bytes,
                k,
                dtype,
                name: name.to_string(),
            }),
            _ => Err(Error::Format(format!(
                "{name}: {rows} rows of {k} values of {dtype:?} do not fit at offset {offset}"
            ))),
        }
    }

    /// The element type of the table.
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    /// The bytes of the table.
    pub(crate) fn data(&self) -> &[u8] {
        &(*self.map).as_ref()[self.offset..self.offset + self.bytes()]
    }

    /// The type rows are read in (a float table's: Q8_0).
    pub(crate) fn quant_type(&self) -> QuantType {
        match self.dtype {
            DType::Quant(t) => t,
            DType::F32 | DType::F16 | DType::BF16 => QuantType::Q8_0,
        }
    }

    /// Bytes of the table in the file.
    pub(crate) fn bytes(&self) -> usize {
        self.rows * self.row_bytes
    }

    /// Row `row` dequantized into `out` (`k` values).
    pub(crate) fn dequantize_row(&self, row: usize, out: &mut [f32]) -> Result<()> {
        if row >= self.rows || out.len() != self.k {
            return Err(Error::ShapeMismatch(format!(
                "row {row} of {} rows of {} values into {} values",
                self.rows,
                self.k,
                out.len()
            )));
        }
        let start = self.offset + row * self.row_bytes;
        let t = RawTensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape: vec![1, self.k],
            data: &(*self.map).as_ref()[start..start + self.row_bytes],
        };
        t.to_quant(1, self.k, QuantType::Q8_0)?
            .dequantize_row(self.k, 0, out)
    }
}

/// Gives the heap's free memory back to the system after a load. glibc keeps freed blocks in its
/// heap once a large block was freed (its mmap threshold then rises), so the temporaries of a load
/// would otherwise stay resident as anonymous memory; other allocators return large blocks
/// themselves.
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
