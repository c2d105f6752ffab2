#!/bin/sh
# Instructions of the aarch64 prefill attention per token and layer, counted with
# ../shared/tools/qcount (qemu-aarch64 TCG plugin), next to the Q4_0 matmul instructions of the
# same layer.
#
# Attention: examples/qcount_attention (release build) runs, for one layer, a KV cache write of T
# positions plus one causal attention call over T query rows, REPEAT = 1 and 2 times; the whole
# program is counted both ways and the first count subtracted from the second, which leaves exactly
# one warm write + attention. Divided by T: instructions per token and layer (the average over a
# T-token prompt). The per-function split of that difference is printed too (-v: every function).
#
# Matmul: the instructions per 1000 MAC of the i8mm 16-row Q4_0 kernel (qkern_q4_mmla_p8, the one a
# prefill of T >= 16 runs) are measured as in scripts/qcount-matmul.sh (inner K loop: K and 2K,
# subtracted), then multiplied by the layer's MACs per token:
#   hidden * (n_head * d) [q] + 2 * hidden * (n_kv * d) [k, v] + (n_head * d) * hidden [o]
#   + 3 * hidden * ffn [gate, up, down].
# The matmul count excludes the per-tile epilogue and the activation quantization, so the
# attention share printed is, if anything, slightly too high.
#
# usage: scripts/qcount-attention.sh [-v] [TIER]   (TIER default neoni8mm: qemu -cpu max, which
#        has FEAT_FP16, so the fp16 path runs; neon gives the NEON f32 path)
#        QCOUNT=path/to/qcount overrides the tool folder.
set -eu
verbose=0
if [ "${1:-}" = "-v" ]; then verbose=1; shift; fi
tier=${1:-neoni8mm}
. "$(dirname "$0")/qcount-env.sh"
cargo build -q --release --example qcount_attention --target aarch64-unknown-linux-gnu
# The matmul micro-kernels are assembly: a debug build counts the same instructions.
cargo build -q --example qcount_matmul --target aarch64-unknown-linux-gnu
attn="$root/target/aarch64-unknown-linux-gnu/release/examples/qcount_attention"
mm="$root/target/aarch64-unknown-linux-gnu/debug/examples/qcount_matmul"

# Matmul: i8mm 16-row kernel, instructions per 1000 MAC of the inner K loop.
for k in 2048 4096; do
    "$QCOUNT/qcount-run" -o "$build/mm$k.txt" -p sym=qkern_q4_mmla_p8 -- "$mm" neoni8mm 16 64 "$k" >/dev/null
done
mm_rate=$(python3 "$QCOUNT/qcount_cycles.py" "$build/mm4096.txt" --baseline "$build/mm2048.txt" \
    --per "$((16 * 64 * 2048 / 1000))" | awk '$1 == "decode" { print $2 }')
echo "matmul: qkern_q4_mmla_p8 (i8mm, 16 rows) $mm_rate instructions / 1000 MAC (inner K loop)"
echo "attention: tier $tier, f16 KV cache, one layer, prefill from position 0, warm"
echo

printf '%-14s %5s %10s %12s %12s %12s %8s\n' model T path "attn/tok" "of which KV" "matmul/tok" "attn %"
# model:hidden:ffn:n_head:n_kv:head_dim
for spec in qwen2.5-0.5b:896:4864:14:2:64 qwen2.5-1.5b:1536:8960:12:2:128; do
    IFS=: read -r name hidden ffn nh nkv d <<EOF
$spec
EOF
    for t in 128 512; do
        for rep in 1 2; do
            "$QCOUNT/qcount-run" -o "$build/a$rep.txt" -p top=400 -- \
                "$attn" "$tier" "$nh" "$nkv" "$d" "$t" "$rep" >"$build/a$rep.out"
        done
        path=$(sed -n 's/.*(\(.*\)).*/\1/p' "$build/a2.out")
        python3 - "$QCOUNT" "$build/a2.txt" "$build/a1.txt" "$t" "$hidden" "$ffn" "$nh" "$nkv" "$d" \
            "$mm_rate" "$name" "$path" "$verbose" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from qcount_cycles import parse_report
a2, a1 = (parse_report(open(p).read()) for p in sys.argv[2:4])
t, hidden, ffn, nh, nkv, d = map(int, sys.argv[4:10])
rate, name, path, verbose = float(sys.argv[10]), sys.argv[11], sys.argv[12], sys.argv[13] == "1"
total = (a2["total_insns"] - a1["total_insns"]) / t
syms = {s: (a2["symbols"].get(s, 0) - a1["symbols"].get(s, 0)) / t
        for s in set(a2["symbols"]) | set(a1["symbols"])}
kv = sum(v for s, v in syms.items() if "KvCache" in s and "write" in s)
macs = hidden * nh * d + 2 * hidden * nkv * d + nh * d * hidden + 3 * hidden * ffn
mm = macs / 1000 * rate
print(f"{name:<14} {t:>5} {path:>10} {total:>12,.0f} {kv:>12,.0f} {mm:>12,.0f} {100 * total / mm:>7.2f}%")
def demangle(s):
    # Legacy Rust mangling: _ZN <len><ident>... 17h<hash> E; keep the path, drop the hash.
    if not s.startswith("_ZN"):
        return s
    i, parts = 3, []
    while i < len(s) and s[i].isdigit():
        j = i
        while s[j].isdigit():
            j += 1
        n = int(s[i:j])
        parts.append(s[j:j + n])
        i = j + n
    if parts and parts[-1].startswith("h") and len(parts[-1]) == 17:
        parts.pop()
    out = "::".join(parts)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("..", "::"), ("$RF$", "&")):
        out = out.replace(a, b)
    return out
rows = sorted(syms.items(), key=lambda kv: -kv[1])
shown = rows if verbose else [r for r in rows if r[1] >= 0.01 * total][:8]
for s, v in shown:
    if abs(v) >= 0.5:
        print(f"{'':>20} {v:>12,.0f}  {100 * v / total:5.1f}%  {demangle(s)[:100]}")
PY
    done
done
