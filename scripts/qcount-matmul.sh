#!/bin/sh
# Instruction mix of the aarch64 Q4_0 matmul micro-kernels, counted with ../shared/tools/qcount
# (qemu-aarch64 TCG plugin) and turned into the Apple P-core cycle bound by qcount_cycles.py.
#
# For each kernel, runs examples/qcount_matmul twice (K and 2K, same M and N) with the plugin
# restricted to the asm symbols (sym=qkern_q4_), and subtracts the first report from the second:
# what is left is exactly the inner loop over K (the per-tile prologue and stores cancel). Prints
# instructions per 1000 MAC and the modeled MAC/cycle at --mmla-cost 1 and 2. MACs are the useful
# ones (M x N x K): M = 3 runs the 4-row kernel and stores 3 rows.
#
# usage: scripts/qcount-matmul.sh            (QCOUNT=path/to/qcount to override the tool folder)
set -eu
. "$(dirname "$0")/qcount-env.sh"
# The micro-kernels are assembly: a debug build counts the same instructions and builds fast.
cargo build -q --example qcount_matmul --target aarch64-unknown-linux-gnu
bin="$root/target/aarch64-unknown-linux-gnu/debug/examples/qcount_matmul"

N=64
K=2048
printf '%-28s %4s %9s %10s %10s  %s\n' kernel M "insn/kMAC" "MAC/c@1" "MAC/c@2" "bound (cost 1 / cost 2)"
for spec in neoni8mm:16:qkern_q4_mmla_p8 neoni8mm:8:qkern_q4_mmla_p4 neoni8mm:4:qkern_q4_mmla_p2 \
    neoni8mm:3:qkern_q4_mmla_p2 neoni8mm:2:qkern_q4_mmla_p1 neoni8mm:1:qkern_q4_mmla_gemv \
    neondot:16:qkern_q4_dot_p8 neondot:8:qkern_q4_dot_p4 neondot:4:qkern_q4_dot_p2 \
    neondot:3:qkern_q4_dot_p2 neondot:2:qkern_q4_dot_p1 neondot:1:qkern_q4_dot_gemv; do
    tier=${spec%%:*}
    rest=${spec#*:}
    m=${rest%%:*}
    sym=${rest#*:}
    for k in $K $((2 * K)); do
        "$QCOUNT/qcount-run" -o "$build/$k.txt" -p "sym=$sym" -- "$bin" "$tier" "$m" "$N" "$k" >/dev/null
    done
    # MACs of the K extra values, in thousands.
    kmac=$(python3 -c "print($m * $N * $K / 1000)")
    r1=$(python3 "$QCOUNT/qcount_cycles.py" "$build/$((2 * K)).txt" --baseline "$build/$K.txt" --per "$kmac" --mmla-cost 1)
    r2=$(python3 "$QCOUNT/qcount_cycles.py" "$build/$((2 * K)).txt" --baseline "$build/$K.txt" --per "$kmac" --mmla-cost 2)
    insn=$(echo "$r1" | awk '$1 == "decode" { print $2 }')
    c1=$(echo "$r1" | awk '/cycle lower bound/ { print $4 }')
    c2=$(echo "$r2" | awk '/cycle lower bound/ { print $4 }')
    b1=$(echo "$r1" | sed -n 's/.*(bound by \([a-z]*\)).*/\1/p')
    b2=$(echo "$r2" | sed -n 's/.*(bound by \([a-z]*\)).*/\1/p')
    printf '%-28s %4s %9.1f %10.1f %10.1f  %s / %s\n' "$sym" "$m" "$insn" \
        "$(python3 -c "print(1000 / $c1)")" "$(python3 -c "print(1000 / $c2)")" "$b1" "$b2"
done
