#!/usr/bin/env bash
# Fuzz smoke run (part of scripts/test-all.sh, hence of CI): every target of fuzz/ replays its
# committed inputs (fuzz/seeds/TARGET/ and the minimized crashes in tests/data/fuzz/TARGET/) and is
# then fuzzed for FUZZ_SECONDS (default 30) from them. Fails on any crash, leaving the reproducer
# in target/fuzz/artifacts/TARGET/ (minimize it, add it under tests/data/fuzz/TARGET/ so that
# tests/fuzz_regressions.rs replays it; see fuzz/README.md).
#
# Cheap to build: no cargo-fuzz and no nightly. One plain `cargo build` of the three targets with
# the stable toolchain, passing the libFuzzer coverage flags that `cargo fuzz build` passes
# (sancov: inline 8-bit counters, PC table, compare tracing, stack depth; `--cfg fuzzing`), without
# ASan, at opt-level 1 with debug assertions and overflow checks, 16 codegen units (profile
# `fuzz-smoke` in fuzz/Cargo.toml). `--target` keeps the flags off build scripts and proc macros.
# Output in target/fuzz (inside the workspace target dir; nothing is written under fuzz/).
# Deep runs (ASan, 1 codegen unit, hours) use cargo-fuzz itself, as fuzz/README.md describes.
#
# Time on the 2-core Zen 3 dev box, clean target dir: the build takes about 1 m 55 s of CPU (52 s
# wall in a CI run at load average 3), then 3 x FUZZ_SECONDS; details in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${FUZZ_SECONDS:-30}
host=$(rustc -vV | sed -n 's/^host: //p')
out=$root/target/fuzz

flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  --cfg fuzzing
)
[[ $host == *-linux-* ]] && flags+=(-Cllvm-args=-sanitizer-coverage-stack-depth)

# libFuzzer itself: the one of the system's clang (Debian's clang package brings it; test-all.sh
# installs clang) if there is one, which saves compiling libfuzzer-sys's copy (about 25 C++ files,
# one at a time: the longest single step of a clean build). Same runtime, older LLVM release.
if [ -z "${CUSTOM_LIBFUZZER_PATH:-}" ] && command -v clang >/dev/null; then
  arch=${host%%-*}
  lib=$(clang -print-file-name="libclang_rt.fuzzer-$arch.a")
  if [ -f "$lib" ]; then
    export CUSTOM_LIBFUZZER_PATH=$lib
  fi
fi
echo "== fuzz smoke: building the targets ($host, profile fuzz-smoke, libFuzzer: ${CUSTOM_LIBFUZZER_PATH:-built from libfuzzer-sys})"
start=$SECONDS
RUSTFLAGS="${flags[*]}" CARGO_TARGET_DIR=$out \
  cargo build -q --manifest-path fuzz/Cargo.toml --target "$host" --profile fuzz-smoke --bins
echo "built in $((SECONDS - start)) s"

bins=$out/$host/fuzz-smoke
for t in gguf_parse safetensors_parse prepacked_parse kernels_diff; do
  inputs=()
  for d in "fuzz/seeds/$t" "tests/data/fuzz/$t"; do
    [ -d "$d" ] && inputs+=("$d")
  done
  corpus=$out/corpus/$t
  rm -rf "$corpus"
  mkdir -p "$corpus" "$out/artifacts/$t"
  case $t in
    kernels_diff) max_len=32768 ;; # the largest shape reads ~25 KB
    prepacked_parse) max_len=262144 ;; # tensors start at multiples of 16 KiB: the seed is 144 KiB
    *) max_len=16384 ;;
  esac
  echo "== fuzz $t: replay ${inputs[*]}, then ${secs} s"
  # The first directory is the (scratch) corpus the fuzzer writes to; the committed inputs are
  # read from the others and run first. -timeout: a single input running 10 s is a hang.
  log=$out/$t.log
  status=0
  "$bins/$t" "$corpus" "${inputs[@]}" -max_total_time="$secs" -max_len="$max_len" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec)' "$log" || true
  if [ "$status" != 0 ]; then
    echo "!! fuzz $t failed (exit $status); reproducer in $out/artifacts/$t/; log:"
    tail -n 60 "$log"
    ls -l "$out/artifacts/$t/"
    exit 1
  fi
done
echo "fuzz smoke passed"
