//! Buffers that sit between two `PROT_NONE` pages, with the data ending exactly at the upper one:
//! a kernel that reads or writes one element too far (or before the start) faults.

use std::ptr::NonNull;

/// `len` values of `T` ending exactly at an inaccessible page, with another one before the start
/// page. `T`'s size must divide the page size for the end to be exact (true for all primitives).
pub struct Guarded<T: Copy> {
    base: NonNull<u8>,
    map_len: usize,
    data: *mut T,
    len: usize,
}

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl<T: Copy> Guarded<T> {
    /// A guarded copy of `src`.
    pub fn from_slice(src: &[T]) -> Self {
        let page = page();
        let bytes = std::mem::size_of_val(src);
        let data_pages = bytes.div_ceil(page).max(1);
        let map_len = (data_pages + 2) * page;
        // SAFETY: anonymous private mapping, no file; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap failed");
        let base = base as *mut u8;
        // SAFETY: [page, page + data_pages*page) lies inside the mapping.
        let rc = unsafe {
            libc::mprotect(
                base.add(page) as *mut libc::c_void,
                data_pages * page,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(rc, 0, "mprotect failed");
        assert_eq!(page % std::mem::size_of::<T>().max(1), 0);
        // SAFETY: the data ends at base + (data_pages + 1) * page, the start of the upper guard page,
        // and starts inside the readable region; alignment holds since the end is page aligned and
        // size_of::<T>() divides the page size (checked above).
        let data = unsafe { base.add((data_pages + 1) * page - bytes) } as *mut T;
        // SAFETY: data..data+len is writable and does not overlap src.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), data, src.len()) };
        Guarded {
            base: NonNull::new(base).expect("mmap returned non-null"),
            map_len,
            data,
            len: src.len(),
        }
    }

    /// A guarded buffer of `len` copies of `v`.
    pub fn filled(v: T, len: usize) -> Self {
        Self::from_slice(&vec![v; len])
    }
}

impl<T: Copy> std::ops::Deref for Guarded<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `data` points to `len` initialised values in a live, readable mapping.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for Guarded<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl<T: Copy> Drop for Guarded<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `from_slice`.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.map_len) };
    }
}
