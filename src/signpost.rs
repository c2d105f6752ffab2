//! Instruments signposts: an `os_signpost` interval around each op, named by op, layer and shape.
//!
//! With the cargo feature `signposts` on Apple targets, [`interval`] emits an interval begin now
//! and its end when the returned guard drops, under subsystem `dev.qkern`, category
//! `PointsOfInterest` (shown by Instruments' Points of Interest track). The system functions are
//! declared by hand, so no SDK headers are needed to build. Everywhere else, and with the feature
//! off, [`interval`] compiles to nothing and never calls its message closure.

/// An open signpost interval; it ends when dropped.
#[must_use = "the interval ends when this guard is dropped"]
pub struct Interval {
    #[cfg(all(feature = "signposts", target_vendor = "apple"))]
    id: u64,
    #[cfg(all(feature = "signposts", target_vendor = "apple"))]
    name: &'static std::ffi::CStr,
}

/// Begins an interval named `name` (a static op kind such as `c"matmul"`) whose message is
/// `message()` (e.g. `"ffn_up L3 M=512 N=4864 K=896"`); `message` is only called when signposts
/// are compiled in and Instruments is recording.
#[inline(always)]
pub fn interval(name: &'static std::ffi::CStr, message: impl FnOnce() -> String) -> Interval {
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
    use super::Interval;
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::sync::OnceLock;

    const OS_SIGNPOST_INTERVAL_BEGIN: u8 = 1;
    const OS_SIGNPOST_INTERVAL_END: u8 = 2;

    /// The format string must live in the image's `__oslogstring` section: the log records only
    /// its offset, and readers resolve it from the binary.
    #[link_section = "__TEXT,__oslogstring,cstring_literals"]
    static FORMAT: [u8; 12] = *b"%{public}s\0\0";

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
    fn emit(kind: u8, id: u64, name: &CStr, message: &CStr) {
        let mut buf = [0u8; 12];
        buf[0] = 0x02;
        buf[1] = 1;
        buf[2] = 0x22;
        buf[3] = 8;
        buf[4..12].copy_from_slice(&(message.as_ptr() as u64).to_le_bytes());
        // SAFETY: `log()` is a valid handle, `name`, `message` and FORMAT are NUL-terminated and
        // outlive the call, and `buf` is a correctly encoded argument buffer of its stated size.
        unsafe {
            _os_signpost_emit_with_name_impl(
                &__dso_handle,
                log(),
                kind,
                id,
                name.as_ptr(),
                FORMAT.as_ptr() as *const c_char,
                buf.as_mut_ptr(),
                buf.len() as u32,
            )
        };
    }

    pub(super) fn begin(name: &'static CStr, message: impl FnOnce() -> String) -> Interval {
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
