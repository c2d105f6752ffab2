#!/bin/sh
# Instruction mix of a whole aarch64 prefill (every op of a layer, not only the matmul), counted
# with ../shared/tools/qcount under qemu-aarch64 and turned into the Apple P-core cycle bound.
#
# examples/qcount_forward builds a random model with the preset's exact layer shapes (one layer,
# small vocabulary) on one thread and runs one prefill of TOKENS tokens; a run with 0 tokens
# (model build only) is subtracted, so what is left is the prefill. Prints, per token and layer:
# instructions, the cycle bound at --mmla-cost 1 and 2 and the resource that binds, the P-core
# prefill rate that bound allows for the full model at 3.23 GHz (A15), and the functions that
# execute the instructions.
#
# usage: scripts/qcount-forward.sh [MODEL] [TOKENS] [TIERS]
#   MODEL 0.5b (default) or 1.5b: random Q4_0 weights with the preset's shapes (one layer); or a
#     GGUF file, for a type mix as llama-quantize writes it, e.g. four 1.5B-shaped layers (two of
#     each Q4_K_M layer kind: Q6_K attn_v / ffn_down in layers 0 and 2) and a small vocabulary:
#       python3 scripts/gen_bench_gguf.py 1.5b f16.gguf 4 4096
#       "$LLAMA_QUANTIZE" f16.gguf q4_k_m.gguf Q4_K_M     # (eval "$(../shared/tools/peer-llamacpp.sh)")
#       scripts/qcount-forward.sh q4_k_m.gguf 64:128
#     The counts are per token and per layer (the file's layers averaged).
#   TOKENS 512 (default): one prefill, minus a run that only builds the model; or A:B, the
#     increment from a prefill of A tokens to one of B (positions A..B-1; the head and the build
#     cancel out).
#   TIERS "neoni8mm neondot" (default)
#   QKERN_KV=f16 (default), f32 or i8: the KV cache's dtype (i8: the integer attention path at
#     NeonDot / NeonI8mm; QKERN_ATTN_I8=0 runs the dequantizing path on it instead).
#   The "attention" line sums every function of the attention modules (driver, paths, KV cache
#   dequantization; not the KV cache write).
set -eu
preset=${1:-0.5b}
tokens=${2:-512}
tiers=${3:-neoni8mm neondot}
. "$(dirname "$0")/qcount-env.sh"
cargo build -q --release --example qcount_forward --target aarch64-unknown-linux-gnu
bin="$root/target/aarch64-unknown-linux-gnu/release/examples/qcount_forward"
case $tokens in *:*) t0=${tokens%%:*}; t1=${tokens#*:} ;; *) t0=0; t1=$tokens ;; esac
case $preset in
    0.5b) layers=24; run_layers=1; args="$preset 1" ;;
    1.5b) layers=28; run_layers=1; args="$preset 1" ;;
    *.gguf)
        [ -f "$preset" ] || { echo "no file $preset" >&2; exit 2; }
        preset=$(cd "$(dirname "$preset")" && pwd)/$(basename "$preset")
        args="$preset -"
        run_layers=$(qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu "$bin" neon "$preset" - 0 | sed -n 's/^layers //p')
        layers=0 ;; # the model's full depth is not in the file: no per-model rate
    *) echo "model: 0.5b, 1.5b or a .gguf file" >&2; exit 2 ;;
esac

for tier in $tiers; do
    for t in "$t0" "$t1"; do
        # shellcheck disable=SC2086 # $args is two words on purpose
        "$QCOUNT/qcount-run" -o "$build/$tier-$t.txt" -p top=400 -- "$bin" "$tier" $args "$t" >/dev/null
    done
    echo "== $tier, $(basename "$preset"), KV ${QKERN_KV:-f16}, prefill positions $t0..$((t1 - 1)) (per token and layer)"
    python3 - "$QCOUNT" "$build/$tier-$t0.txt" "$build/$tier-$t1.txt" "$((t1 - t0))" "$layers" "$run_layers" <<'EOF'
import re, sys
sys.path.insert(0, sys.argv[1])
import qcount_cycles as qc
base, run = (qc.parse_report(open(p).read()) for p in sys.argv[2:4])
tokens, layers, run_layers = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
diff = qc.subtract(run, base)
# Per token and per layer of the run (a file of several layers: their average).
tokens *= run_layers
total = diff["total_insns"] / tokens
print(f"instructions {total:,.0f}")
from types import SimpleNamespace
for cost in (1, 2):
    # qcount_cycles.py's default Apple P-core resources (its --help), with --mmla-cost cost.
    p = SimpleNamespace(decode=8, simd=4, load=3, store=2, mem=4, branch=2, taken=1, alu=6,
                        mmla_cost=cost)
    _, _, (name, cycles) = qc.estimate(diff, p)
    c = cycles / tokens
    line = f"mmla-cost {cost}: {c:,.0f} cycles ({name}-bound)"
    if layers:
        rate = 3.23e9 / (c * layers)
        line += (f" -> at most {rate:,.0f} tokens/s per P-core at 3.23 GHz for {layers} layers"
                 " (head and embedding not counted)")
    print(line)

def short(sym):
    # Legacy Rust mangling: _ZN<len><name>...17h<hash>E -> path without the hash.
    parts, s = [], sym[3:] if sym.startswith("_ZN") else None
    if s is None:
        return sym
    while s and s[0].isdigit():
        n = re.match(r"\d+", s).group(0)
        s = s[len(n):]
        parts.append(s[:int(n)])
        s = s[int(n):]
    parts = [p for p in parts if not re.fullmatch(r"h[0-9a-f]{16}", p)]
    return "::".join(parts).replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ") \
        .replace("..", "::").replace("$C$", ",")
syms = {k: v - base["symbols"].get(k, 0) for k, v in run["symbols"].items()}
attn = sum(v for k, v in syms.items() if "attention" in short(k))
print(f"attention {attn / tokens:,.0f} ({100 * attn / diff['total_insns']:.1f}%)")
print(f"  {'instructions':>12} {'share':>6}  function")
for k, v in sorted(syms.items(), key=lambda kv: -kv[1])[:14]:
    if v / tokens >= 1:
        print(f"  {v / tokens:12,.0f} {100 * v / diff['total_insns']:5.1f}%  {short(k)}")
EOF
done
