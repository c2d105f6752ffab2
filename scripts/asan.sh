#!/usr/bin/env bash
# Host test suite under AddressSanitizer (nightly, std rebuilt with the sanitizer so that its
# allocations are tracked too). Usage: scripts/asan.sh [cargo test args]; default: every test
# binary of the workspace (qkern's lib, bin and integration tests, the reference crate), doc tests
# excepted.
#   scripts/asan.sh --test matmul --test ops      # a subset
# Guard-page tests (tests/common/guard.rs) still work: ASan leaves mmap'ed PROT_NONE pages alone.
# Leak checking is off: the thread pool and per-thread scratch are intentionally process-lived.
# allocator_may_return_null=1: a fallible allocation (`try_reserve`) of an impossible size gets a
# null pointer, as from the system allocator, so the code's Error::AllocationFailed path runs;
# ASan's default aborts on any request above its 1 TiB limit (tests/api_misuse.rs asks for more).
# Installs what it needs if missing: the nightly toolchain (minimal profile) and its rust-src
# component (for -Zbuild-std).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
need_nightly rust-src
target=$(rustc +nightly -vV | sed -n 's/^host: //p')
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--workspace --lib --bins --tests)
export RUSTFLAGS="-Zsanitizer=address -Cdebug-assertions=on"
export RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS="detect_leaks=0:detect_stack_use_after_return=1:abort_on_error=1:allocator_may_return_null=1"
export CARGO_TARGET_DIR=target/asan
# --target keeps build scripts and proc macros unsanitized; -Zbuild-std instruments std.
exec cargo +nightly test -Zbuild-std --target "$target" "${args[@]}"
