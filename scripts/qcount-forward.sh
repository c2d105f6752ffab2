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
# usage: scripts/qcount-forward.sh [PRESET] [TOKENS] [TIERS]
#   PRESET 0.5b (default) or 1.5b; TOKENS 512 (default); TIERS "neoni8mm neondot" (default)
set -eu
preset=${1:-0.5b}
tokens=${2:-512}
tiers=${3:-neoni8mm neondot}
. "$(dirname "$0")/qcount-env.sh"
cargo build -q --release --example qcount_forward --target aarch64-unknown-linux-gnu
bin="$root/target/aarch64-unknown-linux-gnu/release/examples/qcount_forward"
case $preset in 0.5b) layers=24 ;; 1.5b) layers=28 ;; *) echo "preset: 0.5b or 1.5b" >&2; exit 2 ;; esac

for tier in $tiers; do
    for t in 0 "$tokens"; do
        "$QCOUNT/qcount-run" -o "$build/$tier-$t.txt" -p top=400 -- "$bin" "$tier" "$preset" 1 "$t" >/dev/null
    done
    echo "== $tier, Qwen2.5-$preset layer shapes, prefill of $tokens tokens (per token and layer)"
    python3 - "$QCOUNT" "$build/$tier-0.txt" "$build/$tier-$tokens.txt" "$tokens" "$layers" <<'EOF'
import re, sys
sys.path.insert(0, sys.argv[1])
import qcount_cycles as qc
base, run = (qc.parse_report(open(p).read()) for p in sys.argv[2:4])
tokens, layers = int(sys.argv[4]), int(sys.argv[5])
diff = qc.subtract(run, base)
total = diff["total_insns"] / tokens
print(f"instructions {total:,.0f}")
from types import SimpleNamespace
for cost in (1, 2):
    # qcount_cycles.py's default Apple P-core resources (its --help), with --mmla-cost cost.
    p = SimpleNamespace(decode=8, simd=4, load=3, store=2, mem=4, branch=2, taken=1, alu=6,
                        mmla_cost=cost)
    _, _, (name, cycles) = qc.estimate(diff, p)
    c = cycles / tokens
    rate = 3.23e9 / (c * layers)
    print(f"mmla-cost {cost}: {c:,.0f} cycles ({name}-bound) -> at most {rate:,.0f} tokens/s"
          f" per P-core at 3.23 GHz for {layers} layers (head and embedding not counted)")

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
print(f"  {'instructions':>12} {'share':>6}  function")
for k, v in sorted(syms.items(), key=lambda kv: -kv[1])[:14]:
    if v / tokens >= 1:
        print(f"  {v / tokens:12,.0f} {100 * v / diff['total_insns']:5.1f}%  {short(k)}")
EOF
done
