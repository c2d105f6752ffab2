#!/usr/bin/env bash
# Fuzz smoke run for CI: every cargo-fuzz target for a fixed time (FUZZ_SECONDS, default 60),
# starting from the checked-in seeds. Installs cargo-fuzz if it is missing. Fails on any crash,
# leaving the reproducer in fuzz/artifacts/TARGET/ (minimize it with `cargo +nightly fuzz tmin`
# and add it under tests/data/fuzz/ so tests/fuzz_regressions.rs replays it).
# Time from a clean state on the 2-core Zen 3 dev box (cores shared): building the fuzz crate
# (sanitized release build of qkern + targets) took 11m40s wall / 5m14s CPU; then 3 x FUZZ_SECONDS.
# cargo-fuzz install was not measured (estimate 2-4 min on 2 cores). Total ~15-18 min at 60 s.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-60}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz build
for t in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "== fuzz $t for ${secs}s"
  cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -max_len=16384 -len_control=0 -print_final_stats=1
done
