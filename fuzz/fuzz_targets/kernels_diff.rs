//! Differential kernel fuzzing: every host tier's kernels against `qkern_reference` on a small
//! random shape and data; the check itself (and its tolerances) is in `kernels_diff_check.rs`,
//! shared with `tests/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod kernels_diff_check;

fuzz_target!(|data: &[u8]| kernels_diff_check::check(data));
