#!/usr/bin/env python3
"""Writes a random-weight F16 GGUF with the exact Qwen2.5-0.5B or -1.5B shapes, for the
side-by-side benchmarks of scripts/bench-peer.sh (llama-quantize turns it into Q4_K_M, Q8_0 and
Q4_0). Weights N(0, 0.02) from a fixed seed, norms 1, biases N(0, 0.01). The tokenizer is a
minimal byte-level one (256 byte tokens, five merges whose results are tokens too, filler, three
special tokens), enough for every loader; the benchmarks feed token ids.

usage: gen_bench_gguf.py 0.5b|1.5b OUT.gguf [LAYERS [VOCAB]]
  (needs numpy and gguf: scripts/requirements-bench.txt). LAYERS and VOCAB default to the model's
  (24 / 28 and 151936); fewer layers and a small vocabulary make files for instruction counting
  (scripts/qcount-forward.sh), whose per-layer work does not depend on them.
"""
import sys

import gguf
import numpy as np

name, out = sys.argv[1], sys.argv[2]
S = {"0.5b": dict(L=24, H=896, F=4864, NH=14, NKV=2),
     "1.5b": dict(L=28, H=1536, F=8960, NH=12, NKV=2)}[name]
L, H, F, NH, NKV = S["L"], S["H"], S["F"], S["NH"], S["NKV"]
if len(sys.argv) > 3:
    L = int(sys.argv[3])
HD = H // NH
V = int(sys.argv[4]) if len(sys.argv) > 4 else 151936
w = gguf.GGUFWriter(out, "qwen2")
w.add_name(f"random-qwen2.5-{name}")
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
w.add_block_count(L)
w.add_context_length(32768)
w.add_embedding_length(H)
w.add_feed_forward_length(F)
w.add_head_count(NH)
w.add_head_count_kv(NKV)
w.add_rope_freq_base(1e6)
w.add_layer_norm_rms_eps(1e-6)
# GPT-2's byte-to-character map for the 256 byte tokens.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + n)
        n += 1
merges = ["Ġ Ġ", "Ġ t", "i n", "Ġ a", "h e"]
merged = [m.replace(" ", "") for m in merges]
toks = [chr(c) for c in cs] + merged + [f"tok{i}" for i in range(256 + len(merged), V - 3)]
toks += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
types = [1] * (V - 3) + [3] * 3
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("qwen2")
w.add_token_list(toks)
w.add_token_types(types)
w.add_token_merges(merges)
w.add_eos_token_id(V - 3)
w.add_bos_token_id(V - 3)
w.add_pad_token_id(V - 3)
w.add_add_bos_token(False)
T = [("token_embd.weight", (V, H), np.float16, "w")]
for i in range(L):
    p = f"blk.{i}."
    T += [(p + "attn_norm.weight", (H,), np.float32, "one"),
          (p + "attn_q.weight", (NH * HD, H), np.float16, "w"), (p + "attn_q.bias", (NH * HD,), np.float32, "b"),
          (p + "attn_k.weight", (NKV * HD, H), np.float16, "w"), (p + "attn_k.bias", (NKV * HD,), np.float32, "b"),
          (p + "attn_v.weight", (NKV * HD, H), np.float16, "w"), (p + "attn_v.bias", (NKV * HD,), np.float32, "b"),
          (p + "attn_output.weight", (H, NH * HD), np.float16, "w"),
          (p + "ffn_norm.weight", (H,), np.float32, "one"),
          (p + "ffn_gate.weight", (F, H), np.float16, "w"), (p + "ffn_up.weight", (F, H), np.float16, "w"),
          (p + "ffn_down.weight", (H, F), np.float16, "w")]
T.append(("output_norm.weight", (H,), np.float32, "one"))
for n_, sh, dt, _ in T:
    w.add_tensor_info(n_, sh, np.dtype(dt), int(np.prod(sh)) * np.dtype(dt).itemsize)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()
rng = np.random.default_rng(1234)
for n_, sh, dt, kind in T:
    if kind == "one":
        a = np.ones(sh, dt)
    elif kind == "b":
        a = (rng.standard_normal(sh, dtype=np.float32) * 0.01).astype(dt)
    else:
        # Row chunks, so that the 151936-row embedding never exists in f32 at once.
        a = np.empty(sh, dt)
        for r0 in range(0, sh[0], 8192):
            rows = min(8192, sh[0] - r0)
            a[r0:r0 + rows] = rng.standard_normal((rows, sh[1]), dtype=np.float32) * np.float32(0.02)
    w.write_tensor_data(a)
w.close()
print("wrote", out)
