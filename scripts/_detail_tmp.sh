#!/bin/sh
# usage: detail.sh fmt tier M sym
set -eu
. "$(dirname "$0")/qcount-env.sh"
bin="$root/target/aarch64-unknown-linux-gnu/release/examples/qcount_formats"
fmt=$1; tier=$2; M=$3; sym=$4; N=64; K=2048
for k in $K $((2 * K)); do
  "$QCOUNT/qcount-run" -o "$build/$k.txt" -p "sym=$sym" -- "$bin" "$fmt" "$tier" "$M" "$N" "$k" >/dev/null
done
kmac=$(python3 -c "print($M * $N * $K / 1000)")
python3 "$QCOUNT/qcount_cycles.py" "$build/$((2 * K)).txt" --baseline "$build/$K.txt" --per "$kmac"
python3 "$QCOUNT/qcount_cycles.py" "$build/$((2 * K)).txt" --baseline "$build/$K.txt" --per "$kmac" --mmla-cost 2 | grep -i "cycle\|simd"
