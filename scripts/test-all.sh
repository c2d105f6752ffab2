#!/usr/bin/env bash
# Runs every test of the crate: the host tiers, then the host tiers again without the default
# feature `model` (the kernels alone: what `default-features = false` users get), then the aarch64
# tiers under qemu-aarch64 (cortex-a72 -> Neon, neoverse-n1 -> NeonDot, max -> NeonI8mm), then
# checks that aarch64 Linux and the Apple targets build with and without `model`, then the fuzz
# smoke run (scripts/fuzz-smoke.sh: every fuzz target replays its committed inputs and runs
# FUZZ_SECONDS, default 30; QKERN_SKIP_FUZZ=1 skips it). Installs what is missing first (rustup
# targets; Debian packages, as root or with sudo). Prints how many per-tier tests ran on each tier.
set -euo pipefail
cd "$(dirname "$0")/.."

log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# --- prerequisites -----------------------------------------------------------------------------
. scripts/lib/prereqs.sh
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-dev-arm64-cross)
command -v clang >/dev/null || missing+=(clang)
command -v c++ >/dev/null || missing+=(g++) # libFuzzer (libfuzzer-sys) for the fuzz smoke run
need_debian_pkgs ${missing[@]+"${missing[@]}"}
need_rustup_targets aarch64-unknown-linux-gnu aarch64-apple-darwin aarch64-apple-ios

# --- which tiers each CPU must have ------------------------------------------------------------
# The host's tiers come from /proc/cpuinfo, independently of the crate's own detection, so the
# dispatcher test compares against an outside source.
host_tiers() {
  local flags; flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  local has=1 tiers="scalar"
  for f in avx2 fma f16c; do [[ $flags == *" $f "* ]] || has=0; done
  if [ $has = 1 ]; then
    tiers+=",avx2"
    [[ $flags == *" avx_vnni "* ]] && tiers+=",avxvnni"
    has=1
    for f in avx512f avx512bw avx512vl avx512_vnni; do [[ $flags == *" $f "* ]] || has=0; done
    [ $has = 1 ] && tiers+=",avx512vnni"
  fi
  echo "$tiers"
}

# Runs `cargo test` with the given expected tiers; tests of tiers outside the list are skipped by
# name, so every counted per-tier test really ran on its tier.
run_tests() { # label, expected tiers, all tiers of the arch, cargo args...
  local label=$1 expect=$2 all=$3; shift 3
  local skips=() t
  for t in ${all//,/ }; do
    [[ ",$expect," == *",$t,"* ]] || skips+=(--skip "tier_$t")
  done
  echo "== $label: tiers $expect (at ${SECONDS} s)"
  QKERN_EXPECT_TIERS=$expect QKERN_EXPECT_TIER=${expect##*,} \
    cargo test "$@" -- "${skips[@]}" 2>&1 | tee "$log_dir/$label.log" | grep -E '^(test result|error|failures)|panicked|FAILED' || true
  if grep -qE '^test result: FAILED|^error(\[|:)' "$log_dir/$label.log" || ! grep -q '^test result: ok' "$log_dir/$label.log"; then
    echo "!! $label failed; full log:"; cat "$log_dir/$label.log"; exit 1
  fi
}

host_all="scalar,avx2,avxvnni,avx512vnni"
arm_all="scalar,neon,neondot,neoni8mm"
case $(uname -m) in
  x86_64) run_tests host "$(host_tiers)" "$host_all" --workspace ;;
  *) run_tests host "scalar" "$host_all,$arm_all" --workspace ;;
esac
# On a CPU with AVX512_BF16 the Avx512Vnni tier runs the bf16 attention path: its f32 path again.
if [ "$(uname -m)" = x86_64 ] && grep -qw avx512_bf16 /proc/cpuinfo; then
  QKERN_ATTN_BF16=0 run_tests host-attention-f32 "$(host_tiers)" "$host_all" --test attention --test model
  # ... and over an int8 cache its integer Q K^T: the bf16 conversion of int8 tiles again.
  QKERN_ATTN_I8=0 run_tests host-attention-i8-bf16 "$(host_tiers)" "$host_all" --test attention --test model
fi
# The kernels without the model, its loaders and their dependencies (the model's tests, benches,
# examples and the CLI have required-features = ["model"] and drop out).
case $(uname -m) in
  x86_64) run_tests host-kernels-only "$(host_tiers)" "$host_all" --no-default-features --lib --tests ;;
  *) run_tests host-kernels-only "scalar" "$host_all,$arm_all" --no-default-features --lib --tests ;;
esac

export QKERN_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
# The qemu runs use the `qemu-test` profile (Cargo.toml): dev's overflow checks and debug
# assertions at opt-level 1, several times faster under emulation than a plain debug build.
qemu_test=(--profile qemu-test --target aarch64-unknown-linux-gnu)
cargo test --workspace "${qemu_test[@]}" --no-run 2>&1 | grep -E '^(error|warning: unused)' || true
for cpu in cortex-a72:scalar,neon neoverse-n1:scalar,neon,neondot max:scalar,neon,neondot,neoni8mm; do
  QEMU_CPU=${cpu%%:*} run_tests "qemu-${cpu%%:*}" "${cpu#*:}" "$arm_all" --workspace "${qemu_test[@]}"
done
# NeonDot and NeonI8mm run the integer attention over an int8 cache: the dequantizing path again.
QKERN_ATTN_I8=0 QEMU_CPU=max run_tests qemu-max-attention-dequant "$arm_all" "$arm_all" \
  --test attention --test model_golden "${qemu_test[@]}"
# The integer attention's softmax runs in f16 where the CPU has FEAT_FP16 (every qemu CPU with
# dotprod has it): its f32 fallback again (NeonDot and NeonI8mm).
QKERN_ATTN_I8_F16=0 QEMU_CPU=max run_tests qemu-max-attention-i8-f32-softmax "$arm_all" "$arm_all" \
  --test attention "${qemu_test[@]}"

echo "== build checks: aarch64 benches, aarch64 without model, Apple targets (Mach-O assembly) (at ${SECONDS} s)"
cargo build -q --benches "${qemu_test[@]}"
cargo build -q --no-default-features --target aarch64-unknown-linux-gnu
echo "built aarch64-unknown-linux-gnu (without model)"
sdk=$(mktemp -d)
for t in aarch64-apple-darwin aarch64-apple-ios; do
  SDKROOT=$sdk CC_aarch64_apple_darwin=clang CC_aarch64_apple_ios=clang cargo build -q --lib --target "$t" --features signposts
  echo "built $t (with signposts)"
  SDKROOT=$sdk CC_aarch64_apple_darwin=clang CC_aarch64_apple_ios=clang cargo build -q --lib --target "$t" --no-default-features --features signposts
  echo "built $t (with signposts, without model)"
done
rmdir "$sdk"
# The signpost names and format string sit in __TEXT,__oslogstring as Apple's macros put them.
scripts/check-oslogstring.sh "${CARGO_TARGET_DIR:-target}"/{aarch64-apple-darwin,aarch64-apple-ios}/debug/libqkern.rlib

if [ "${QKERN_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz smoke (at ${SECONDS} s)"
  scripts/fuzz-smoke.sh
fi

echo
echo "== per-tier tests that ran (name suffix ::tier_<name>); ${SECONDS} s in all"
tiers="$host_all,${arm_all#scalar,}"
printf '%-18s' "run"; for t in ${tiers//,/ }; do printf ' %11s' "$t"; done; echo
for label in host host-kernels-only qemu-cortex-a72 qemu-neoverse-n1 qemu-max; do
  f="$log_dir/$label.log"
  printf '%-18s' "$label"
  for t in ${tiers//,/ }; do
    printf ' %11s' "$(grep -cE "::tier_$t \.\.\. ok$" "$f" || true)"
  done
  echo
done
echo "all tests passed"
