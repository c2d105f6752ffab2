#!/usr/bin/env bash
# Runs the portable (Scalar-tier) code and the reference crate under Miri (nightly), which checks
# for undefined behaviour: the thread pool's lifetime erasure, the scalar kernels' output pointer,
# the block casts. Under Miri no SIMD tier is detected, so every op takes its Scalar path.
# Guard-page tests need mmap/mprotect, which Miri does not model; they are excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup +nightly component add miri rust-src >/dev/null
export MIRIFLAGS="-Zmiri-disable-isolation"
cargo +nightly miri test -p qkern-reference
cargo +nightly miri test --lib --test quant "$@"
