#!/bin/sh
# Instruction mix of the aarch64 kernels of the file weight formats (Q4_1, Q5_0, Q5_1, Q4_K,
# Q5_K, Q6_K: src/arch/aarch64/formats.rs), counted with ../shared/tools/qcount as
# scripts/qcount-matmul.sh does for Q4_0: each kernel at K and 2K (same M, N), the difference is
# the inner loop over K; prints instructions per 1000 MAC and the modeled MAC/cycle (SMMLA at
# 1 and at 2 SIMD slots).
#
# usage: scripts/qcount-formats.sh [M]      (default M = 16; QCOUNT=path/to/qcount to override;
#        TIERS="neoni8mm neondot" FORMATS=q4_k to count a subset)
set -eu
. "$(dirname "$0")/qcount-env.sh"
# The Q8_0 rows count the SMMLA asm (qkern_q8_0_mmla_*_i8mm and the matmul_asm driver,
# NeonI8mm), the SDOT asm GEMV (qkern_q8_*, NeonDot)
# and the Neon kernel (matmul_q8).
# The kernels are Rust intrinsics and inline asm: count a release build (inlined intrinsics).
cargo build -q --release --example qcount_formats --target aarch64-unknown-linux-gnu
bin="$root/target/aarch64-unknown-linux-gnu/release/examples/qcount_formats"

M=${1:-16}
N=64
K=2048
printf '%-6s %-9s %4s %9s %10s %10s  %s\n' format tier M "insn/kMAC" "MAC/c" "MAC/c@2" "bound"
for tier in ${TIERS:-neoni8mm neondot neon}; do
    for fmt in ${FORMATS:-q5_0 q4_k q6_k q4_1 q5_1 q5_k q8_0}; do
        # The gemm of the format's kernel (mangled: formats8Q4_K_DOT8gemm_dot, formats9Q4_K_NEON4gemm).
        up=$(echo "$fmt" | tr a-z A-Z)
        if [ "$tier" = neon ]; then sym="${up}_NEON4gemm"; else sym="${up}_DOT8gemm_dot"; fi
        # NeonDot and NeonI8mm run the SDOT kernels of these formats but Q4_K, Q5_K, Q6_K and
        # Q5_0 (qkern::arch::aarch64 tables). Q4_K, Q5_K, Q6_K on NeonI8mm: the SMMLA asm
        # (qkern_q4k_mmla_*, qkern_q5k_mmla_*, qkern_q6k_mmla_*) and the Rust driver they share
        # (arch::aarch64::q4k_mmla::{gemm_with, run_kernel}, behind each format's gemm; not the
        # quantizer or the packing).
        drv=q4k_mmla9gemm_with:q4k_mmla10run_kernel
        if [ "$tier" = neoni8mm ]; then
            case $fmt in
                q4_k) sym=qkern_q4k_mmla:q4k_mmla4gemm:$drv ;;
                q6_k) sym=qkern_q6k_mmla:q6k_mmla4gemm:$drv ;;
                # Q5_K: the USMMLA asm (qkern_q5k_mmla_*) on the same driver.
                q5_k) sym=qkern_q5k_mmla:q5k_mmla4gemm:$drv ;;
                # The SMMLA asm (qkern_q5_0_mmla_*_i8mm) and the shared asm driver
                # (arch::aarch64::matmul_asm::gemm).
                q5_0) sym=qkern_q5_0_mmla:matmul_asm4gemm ;;
            esac
        fi
        # Q5_0 on NeonDot: the SDOT asm (qkern_q5_0_dot_*_dotprod) and the shared asm driver.
        if [ "$fmt" = q5_0 ] && [ "$tier" = neondot ]; then sym=qkern_q5_0_dot:matmul_asm4gemm; fi
        # Q6_K on NeonDot: the SDOT asm (qkern_q6k_dot_r*_dotprod) and its driver (q6k_dot.rs).
        if [ "$fmt" = q6_k ] && [ "$tier" = neondot ]; then sym=qkern_q6k_dot_r:q6k_dot4gemm:q6k_dot10run_kernel; fi
        # Q4_K on NeonDot: the SDOT asm (qkern_q4k_dot_*_dotprod) and the q4k_mmla driver.
        if [ "$fmt" = q4_k ] && [ "$tier" = neondot ]; then sym=qkern_q4k_dot:q4k_dot4gemm:$drv; fi
        # Q5_K on NeonDot: the SDOT asm (qkern_q5k_dot_*_dotprod) and the same driver.
        if [ "$fmt" = q5_k ] && [ "$tier" = neondot ]; then sym=qkern_q5k_dot:q5k_dot4gemm:$drv; fi
        if [ "$fmt" = q8_0 ]; then
            case $tier in
                neon) sym=matmul_q8 ;;
                neondot) sym=qkern_q8_ ;;
                *) sym=qkern_q8_0_mmla:matmul_asm4gemm ;;
            esac
        fi
        for k in $K $((2 * K)); do
            "$QCOUNT/qcount-run" -o "$build/$k.txt" -p "sym=$sym" -- "$bin" "$fmt" "$tier" "$M" "$N" "$k" >/dev/null
        done
        kmac=$(python3 -c "print($M * $N * $K / 1000)")
        r=$(python3 "$QCOUNT/qcount_cycles.py" "$build/$((2 * K)).txt" --baseline "$build/$K.txt" --per "$kmac")
        insn=$(echo "$r" | awk '$1 == "decode" { print $2 }' | tr -d ,)
        c=$(echo "$r" | awk '/cycle lower bound/ { print $4 }' | tr -d ,)
        b=$(echo "$r" | sed -n 's/.*(bound by \([a-z]*\)).*/\1/p')
        # The same with SMMLA at 2 SIMD slots (its cost on Apple cores is not known).
        c2=$(python3 "$QCOUNT/qcount_cycles.py" "$build/$((2 * K)).txt" --baseline "$build/$K.txt" \
            --per "$kmac" --mmla-cost 2 | awk '/cycle lower bound/ { print $4 }' | tr -d ,)
        printf '%-6s %-9s %4s %9.1f %10.1f %10.1f  %s\n' "$fmt" "$tier" "$M" "$insn" \
            "$(python3 -c "print(1000 / $c)")" "$(python3 -c "print(1000 / $c2)")" "$b"
    done
done
