//! A byte buffer aligned to 64 bytes (one cache line, one zmm register), for packed operands:
//! owned, or borrowed from a shared read-only owner (a pre-packed model file's mapping).

use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Read-only bytes that buffers can borrow a range of, shared (a file mapping, say).
pub(crate) type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A 64-byte-aligned byte buffer whose length is a multiple of 64: zero-initialised and owned, or
/// a range of [`SharedBytes`] (read-only: writing to one first copies it into an owned buffer).
#[derive(Clone)]
pub(crate) struct AlignedBuf {
    store: Store,
}

// `Shared` is made by the pre-packed model files only.
#[cfg_attr(not(feature = "model"), allow(dead_code))]
#[derive(Clone)]
enum Store {
    Owned(Vec<Line>),
    /// `owner`'s bytes `start .. start + len`; checked by [`AlignedBuf::shared`] to be in range,
    /// 64-byte aligned and a multiple of 64 long.
    Shared {
        owner: SharedBytes,
        start: usize,
        len: usize,
    },
}

impl Default for AlignedBuf {
    fn default() -> Self {
        AlignedBuf {
            store: Store::Owned(Vec::new()),
        }
    }
}

impl AlignedBuf {
    /// A buffer of at least `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> Self {
        AlignedBuf {
            store: Store::Owned(vec![Line([0; 64]); len.div_ceil(64)]),
        }
    }

    /// Bytes `start .. start + len` of `owner`, used in place; `None` unless that range lies in
    /// `owner`, starts at a 64-byte-aligned address and is a multiple of 64 long.
    #[cfg_attr(not(feature = "model"), allow(dead_code))]
    pub(crate) fn shared(owner: SharedBytes, start: usize, len: usize) -> Option<Self> {
        let bytes = (*owner).as_ref();
        let range = bytes.get(start..start.checked_add(len)?)?;
        if !(range.as_ptr() as usize).is_multiple_of(64) || !len.is_multiple_of(64) {
            return None;
        }
        Some(AlignedBuf {
            store: Store::Shared { owner, start, len },
        })
    }

    /// Whether the bytes are borrowed from [`SharedBytes`].
    #[cfg_attr(not(feature = "model"), allow(dead_code))]
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared { .. })
    }

    /// An owned buffer with these bytes.
    fn make_owned(&mut self) -> &mut Vec<Line> {
        if let Store::Shared { .. } = self.store {
            let bytes = self.bytes();
            let mut lines = vec![Line([0; 64]); bytes.len() / 64];
            bytemuck::cast_slice_mut::<Line, u8>(&mut lines).copy_from_slice(bytes);
            self.store = Store::Owned(lines);
        }
        match &mut self.store {
            Store::Owned(lines) => lines,
            Store::Shared { .. } => unreachable!("made owned above"),
        }
    }

    /// Makes the buffer hold at least `len` bytes, keeping its allocation when large enough.
    /// Contents are unspecified afterwards.
    pub(crate) fn resize(&mut self, len: usize) {
        let lines = len.div_ceil(64);
        let v = self.make_owned();
        if v.len() < lines {
            v.resize(lines, Line([0; 64]));
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.store {
            Store::Owned(lines) => bytemuck::cast_slice(lines),
            Store::Shared { owner, start, len } => &(**owner).as_ref()[*start..*start + *len],
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(self.make_owned())
    }
}
