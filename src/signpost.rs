//! Instruments signposts: an `os_signpost` interval around each op, named by op, layer and shape.
//!
//! With the cargo feature `signposts` on Apple targets, [`interval`] emits an interval begin now
//! and its end when the returned guard drops, under subsystem `dev.qkern`, category
//! `PointsOfInterest` (shown by Instruments' Points of Interest track). The system functions are
//! declared by hand, so no SDK headers are needed to build. Everywhere else, and with the feature
//! off, [`interval`] compiles to nothing and never calls its message closure.
//!
//! As with Apple's `os_signpost_interval_begin` / `_end` macros, the interval names and the format
//! string live in the image's `__TEXT,__oslogstring` section (the log stores references into it,
//! and readers resolve them from the binary): every name is a [`Name`] made by `oslog_str!`.
//! scripts/check-oslogstring.sh (run by scripts/test-all.sh) checks the built Apple libraries'
//! section for each `oslog_str!` string of `src/`.

/// A NUL-terminated string that, with signposts on Apple targets, lives in
/// `__TEXT,__oslogstring` (elsewhere in ordinary read-only data). Made only by `oslog_str!`.
#[derive(Clone, Copy)]
pub struct Name(&'static [u8]);

impl Name {
    /// The string's bytes, NUL included.
    #[cfg_attr(
        not(all(feature = "signposts", target_vendor = "apple")),
        allow(dead_code)
    )]
    fn bytes_with_nul(self) -> &'static [u8] {
        self.0
    }
}

/// `"s"` + NUL as an array (a `const fn` so `oslog_str!` can size its static); panics at compile
/// time on an interior NUL, which would cut the string short in a `cstring_literals` section.
const fn nul_terminated<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    assert!(b.len() + 1 == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < b.len() {
        assert!(b[i] != 0, "oslog_str! string holds a NUL");
        out[i] = b[i];
        i += 1;
    }
    out
}

/// `oslog_str!("text")`: a [`Name`] whose NUL-terminated bytes are a static in
/// `__TEXT,__oslogstring` (flags `cstring_literals`, as clang emits it for `os_log` strings) on
/// Apple targets with the `signposts` feature. scripts/check-oslogstring.sh greps `src/` for the
/// invocations of this macro (each must take a plain string literal, on one line) to know which
/// strings the section must hold.
macro_rules! oslog_str {
    ($s:literal) => {{
        const LEN: usize = $s.len() + 1;
        #[cfg_attr(
            all(feature = "signposts", target_vendor = "apple"),
            link_section = "__TEXT,__oslogstring,cstring_literals"
        )]
        static BYTES: [u8; LEN] = $crate::signpost::nul_terminated::<LEN>($s);
        $crate::signpost::Name(&BYTES)
    }};
}

/// Interval name of matrix multiplications (forward-pass ops and public kernel calls).
pub const MATMUL: Name = oslog_str!("matmul");
/// Interval name of attention.
pub const ATTENTION: Name = oslog_str!("attention");
/// Interval name of RMS norm + quantization and of activation quantization (forward-pass ops).
#[cfg_attr(not(feature = "model"), allow(dead_code))]
pub const QUANTIZE: Name = oslog_str!("quantize");
/// Interval name of the other, memory-bound ops (forward-pass ops).
#[cfg_attr(not(feature = "model"), allow(dead_code))]
pub const ELEMENTWISE: Name = oslog_str!("elementwise");

/// An open signpost interval; it ends when dropped.
#[must_use = "the interval ends when this guard is dropped"]
pub struct Interval {
    #[cfg(all(feature = "signposts", target_vendor = "apple"))]
    id: u64,
    #[cfg(all(feature = "signposts", target_vendor = "apple"))]
    name: Name,
}

/// Begins an interval named `name` (an op kind such as [`MATMUL`]) whose message is `message()`
/// (e.g. `"ffn_up L3 M=512 N=4864 K=896"`); `message` is only called when signposts are compiled
/// in and Instruments is recording.
#[inline(always)]
pub fn interval(name: Name, message: impl FnOnce() -> String) -> Interval {
    #[cfg(all(feature = "signposts", target_vendor = "apple"))]
    {
        apple::begin(name, message)
    }
    #[cfg(not(all(feature = "signposts", target_vendor = "apple")))]
    {
        let _ = (name, message);
        Interval {}
    }
}

#[cfg(all(feature = "signposts", target_vendor = "apple"))]
impl Drop for Interval {
    fn drop(&mut self) {
        apple::end(self);
    }
}

#[cfg(all(feature = "signposts", target_vendor = "apple"))]
mod apple {
    use super::{Interval, Name};
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::sync::OnceLock;

    const OS_SIGNPOST_INTERVAL_BEGIN: u8 = 1;
    const OS_SIGNPOST_INTERVAL_END: u8 = 2;

    /// The format string, in `__oslogstring` like the names.
    const FORMAT: Name = oslog_str!("%{public}s");

    unsafe extern "C" {
        static __dso_handle: c_void;
        fn os_log_create(subsystem: *const c_char, category: *const c_char) -> *mut c_void;
        fn os_signpost_enabled(log: *mut c_void) -> bool;
        fn os_signpost_id_generate(log: *mut c_void) -> u64;
        fn _os_signpost_emit_with_name_impl(
            dso: *const c_void,
            log: *mut c_void,
            kind: u8,
            id: u64,
            name: *const c_char,
            format: *const c_char,
            buf: *mut u8,
            size: u32,
        );
    }

    struct Log(*mut c_void);
    // SAFETY: os_log_t handles are immutable, thread-safe system objects.
    unsafe impl Send for Log {}
    unsafe impl Sync for Log {}

    fn log() -> *mut c_void {
        static LOG: OnceLock<Log> = OnceLock::new();
        LOG.get_or_init(|| {
            // SAFETY: two valid NUL-terminated strings; the handle is never released (as intended).
            Log(unsafe { os_log_create(c"dev.qkern".as_ptr(), c"PointsOfInterest".as_ptr()) })
        })
        .0
    }

    /// Emits one signpost with a single public string argument. The argument buffer follows the
    /// os_log encoding: summary byte (0x02: has a non-scalar), argument count, then per argument a
    /// descriptor byte (string type 2 << 4 | public 0x2), a size byte and the pointer.
    fn emit(kind: u8, id: u64, name: Name, message: &CStr) {
        let mut buf = [0u8; 12];
        buf[0] = 0x02;
        buf[1] = 1;
        buf[2] = 0x22;
        buf[3] = 8;
        buf[4..12].copy_from_slice(&(message.as_ptr() as u64).to_le_bytes());
        // SAFETY: `log()` is a valid handle, `name`, `message` and FORMAT are NUL-terminated
        // (`Name`s by construction) and outlive the call, and `buf` is a correctly encoded
        // argument buffer of its stated size.
        unsafe {
            _os_signpost_emit_with_name_impl(
                &__dso_handle,
                log(),
                kind,
                id,
                name.bytes_with_nul().as_ptr().cast::<c_char>(),
                FORMAT.bytes_with_nul().as_ptr().cast::<c_char>(),
                buf.as_mut_ptr(),
                buf.len() as u32,
            )
        };
    }

    pub(super) fn begin(name: Name, message: impl FnOnce() -> String) -> Interval {
        let log = log();
        // SAFETY: valid handle.
        if !unsafe { os_signpost_enabled(log) } {
            return Interval { id: 0, name };
        }
        // SAFETY: valid handle.
        let id = unsafe { os_signpost_id_generate(log) };
        let msg = CString::new(message()).unwrap_or_default();
        emit(OS_SIGNPOST_INTERVAL_BEGIN, id, name, &msg);
        Interval { id, name }
    }

    pub(super) fn end(iv: &Interval) {
        if iv.id != 0 {
            emit(OS_SIGNPOST_INTERVAL_END, iv.id, iv.name, c"");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nul_terminated_strings() {
        assert_eq!(MATMUL.bytes_with_nul(), b"matmul\0");
        assert_eq!(ATTENTION.bytes_with_nul(), b"attention\0");
        assert_eq!(QUANTIZE.bytes_with_nul(), b"quantize\0");
        assert_eq!(ELEMENTWISE.bytes_with_nul(), b"elementwise\0");
        // One static per name: every use of a name points at the same bytes.
        assert!(std::ptr::eq(
            MATMUL.bytes_with_nul(),
            MATMUL.bytes_with_nul()
        ));
    }
}
