#!/usr/bin/env bash
# qkern against llama.cpp, back to back on this machine, on the files users download: random-weight
# GGUFs with the exact Qwen2.5-0.5B and -1.5B shapes, quantized by llama.cpp's own llama-quantize
# to Q4_K_M, Q8_0 and Q4_0. Prints one markdown row per file and round: llama-bench pp512 / tg32
# (2 threads, 3 runs), qkern prefill 512 (best of 3), qkern decode from an empty context (as tg32),
# the ratios, and how many of its 2 threads qkern kept busy (below ~1.9 means another job
# disturbed the run: rerun it).
#
# usage: scripts/bench-peer.sh [ROUNDS] [FILE-NAMES...]   (default 1 round; names like q15-Q4_K_M)
# Needs: llama.cpp built by ../shared/tools/peer-llamacpp.sh (it builds it, ~15 minutes the first
# time), python3 with numpy and gguf (installed from scripts/requirements-bench.txt if missing).
# Files go to $QKERN_BENCH_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/qkern-bench, ~6 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
shift || true
dir=${QKERN_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qkern-bench}
mkdir -p "$dir"
peer=../shared/tools/peer-llamacpp.sh
[ -x "$peer" ] || peer=/work/shared/tools/peer-llamacpp.sh
eval "$("$peer")"
python3 -c 'import gguf, numpy' 2>/dev/null || pip install -q -r scripts/requirements-bench.txt
cargo build -q --release --bin qkern
qkern=target/release/qkern

for shape in 0.5b 1.5b; do
    tag=q${shape/./}
    tag=${tag%b}
    [ -f "$dir/$tag-f16.gguf" ] || python3 scripts/gen_bench_gguf.py "$shape" "$dir/$tag-f16.gguf"
    for t in Q4_K_M Q8_0 Q4_0; do
        [ -f "$dir/$tag-$t.gguf" ] || "$LLAMA_QUANTIZE" "$dir/$tag-f16.gguf" "$dir/$tag-$t.gguf" "$t" >/dev/null 2>&1
    done
done

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(q05-Q4_K_M q05-Q8_0 q05-Q4_0 q15-Q4_K_M q15-Q8_0 q15-Q4_0)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs); qkern $(git rev-parse --short HEAD)"
echo "| file | llama.cpp pp512 | llama.cpp tg32 | qkern prefill 512 | qkern decode (empty context) | prefill ratio | decode ratio | qkern threads busy (prefill, decode) |"
echo "|---|---|---|---|---|---|---|---|"
for _ in $(seq "$rounds"); do
    for f in "${files[@]}"; do
        F=$dir/$f.gguf
        ll=$(taskset -c 0,1 "$LLAMA_BENCH" -m "$F" -p 512 -n 32 -t 2 -r 3 -o csv 2>/dev/null |
             python3 -c 'import csv,sys
r={(int(x["n_prompt"]),int(x["n_gen"])):float(x["avg_ts"]) for x in csv.DictReader(sys.stdin)}
print(r[(512,0)], r[(0,32)])')
        read -r lp lg <<<"$ll"
        pre=$(taskset -c 0,1 "$qkern" bench --model "$F" --threads 2 --prompt 512 --decode 1 --reps 3 | grep '^prefill')
        dec=$(taskset -c 0,1 "$qkern" bench --model "$F" --threads 2 --prompt 1 --decode 32 --reps 1 | grep '^decode')
        qp=$(sed -E 's/.*tokens: +([0-9.]+) tokens.*/\1/' <<<"$pre")
        qd=$(sed -E 's/.*tokens: +([0-9.]+) tokens.*/\1/' <<<"$dec")
        bp=$(sed -E 's/.* ([0-9.]+) of 2 threads busy.*/\1/' <<<"$pre")
        bd=$(sed -E 's/.* ([0-9.]+) of 2 threads busy.*/\1/' <<<"$dec")
        python3 -c "print(f'| $f | {$lp:.1f} | {$lg:.1f} | $qp | $qd | {$qp/$lp:.2f}x | {$qd/$lg:.2f}x | $bp, $bd |')"
    done
done
