#!/usr/bin/env bash
# Runs the portable (Scalar-tier) code and the reference crate under Miri (nightly), which checks
# for undefined behaviour: the thread pool's lifetime erasure, the scalar kernels' output pointer,
# the block casts. Under Miri no SIMD tier is detected, so every op takes its Scalar path.
#
# What runs: every test of the reference crate (qkern-reference), then qkern's unit tests (--lib:
# thread pool, tier selection, model config, the x86 layouts, quantizer and portable tile
# emulation) and tests/quant.rs. Guard-page tests need mmap/mprotect, which Miri does not model;
# they are excluded. The unit test emu::wider_tiles is #[cfg_attr(miri, ignore)]: it kept the run
# busy for 25+ minutes under Miri, and the other emu sweeps cover the same paths.
# How long: not timed end to end; Miri interprets every instruction and first builds its own
# sysroot, so plan for tens of minutes on a 2-core machine, not seconds.
# Extra arguments go to the second cargo command, e.g.
#   scripts/miri.sh -- --skip parallel       # test-name filters after --
# Installs what it needs if missing: the nightly toolchain (minimal profile), miri and rust-src.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/prereqs.sh
need_nightly miri rust-src
export MIRIFLAGS="-Zmiri-disable-isolation"
cargo +nightly miri test -p qkern-reference
cargo +nightly miri test --lib --test quant "$@"
