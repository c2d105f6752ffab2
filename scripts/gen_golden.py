#!/usr/bin/env python3
"""Makes the small random Qwen models and golden logits under tests/data/models/.

Run by hand, not by CI:

    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install -r scripts/requirements-golden.txt
    /tmp/golden-venv/bin/python scripts/gen_golden.py

For each model NAME, tests/data/models/NAME/ gets:

* config.json + model.safetensors (or model-0000X-of-00002.safetensors + model.safetensors.index.json):
  the Hugging Face folder, written with transformers' tensor names; dtype per model (f32, bf16, f16).
* model-q4_0.gguf: the same weights as GGUF v3 with llama.cpp's keys and names, as llama-quantize
  writes a Q4_0 file: linear weights Q4_0 (gguf.quants, ggml's reference rule), token_embd and
  output Q8_0, norms and biases F32; no output.weight when tied.
* logits_f32.bin: transformers' logits (float32 forward, eager attention) from the folder's weights.
* logits_q.bin: the same forward with (1) every linear weight replaced by its Q4_0 dequantization
  (the exact bytes of the GGUF file), (2) the token embedding and the output head (tied: the
  embedding) replaced by their Q8_0 dequantization, (3) the input of every linear layer, the output
  head included, rounded as qkern's int8 activations are (per block of 32 along K: d = absmax/127
  in f32, id = 1/d in f32 (0 if d = 0), q = round-half-away-from-zero(x * id), value = q * d;
  see src/quant/act.rs). Norms, biases, RoPE, attention and softmax stay float32.
* golden.json: the config, the tokens (prompt + three teacher-forced decode tokens), and the
  logits files' shape: row i holds the logits after tokens[0..=i] (little-endian float32,
  row-major [len(tokens), vocab]); rows prompt_len-1 .. are the prefill's last position and the
  three decode steps.
* logits_long_f32.bin / logits_long_q.bin: the same two goldens for a prompt of LONG_PROMPT_LEN
  tokens (longer than two KV tiles), golden.json's "long": only the prefill's last position and
  the three decode steps are stored (rows first_row ..).

qwen2_gqa_hd128 also gets model-q6k.gguf (token_embd and output in Q6_K, made by a small
quantizer below) with q6k_token_embd.f32 / q6k_output.f32: those Q6_K bytes dequantized by the
gguf package's numpy reference, for the loader's Q6_K test.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
import gguf
import safetensors.torch
import transformers
from gguf import GGMLQuantizationType as QT

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "models")

PROMPT_LEN = 9
DECODE_STEPS = 3
# The long prompt: two whole KV tiles of 64 positions and a tail (qkern's attention tiles keys by
# 64), then the same three decode steps. Only its rows from the prompt's last position on are
# stored (logits_long_*.bin), to keep the files small.
LONG_PROMPT_LEN = 150

# name, arch, hidden, n_head, n_kv, head_dim (None: hidden/n_head, not written), ffn, vocab,
# tied, storage dtype, config style (4: rope_theta at top level, 5: rope_parameters), sharded,
# rope_theta, gguf alignment (None: default 32, key not written)
MODELS = [
    dict(name="qwen2_tied", arch="qwen2", hidden=128, n_head=4, n_kv=2, head_dim=None, ffn=256,
         vocab=256, tied=True, dtype=torch.float32, style=4, sharded=False, theta=1e6, align=None),
    dict(name="qwen2_untied", arch="qwen2", hidden=128, n_head=4, n_kv=4, head_dim=None, ffn=320,
         vocab=320, tied=False, dtype=torch.bfloat16, style=5, sharded=False, theta=10000.0,
         align=None),
    dict(name="qwen2_gqa_hd128", arch="qwen2", hidden=256, n_head=2, n_kv=1, head_dim=None,
         ffn=512, vocab=256, tied=False, dtype=torch.float16, style=4, sharded=True, theta=1e6,
         align=None),
    dict(name="qwen3", arch="qwen3", hidden=128, n_head=4, n_kv=2, head_dim=64, ffn=256,
         vocab=256, tied=True, dtype=torch.float32, style=5, sharded=False, theta=1e6, align=64),
]
N_LAYERS = 2
RMS_EPS = 1e-6
MAX_POS = 512


def hf_config(m):
    hd = m["head_dim"] or m["hidden"] // m["n_head"]
    c = {
        "architectures": ["Qwen2ForCausalLM" if m["arch"] == "qwen2" else "Qwen3ForCausalLM"],
        "model_type": m["arch"],
        "hidden_size": m["hidden"],
        "intermediate_size": m["ffn"],
        "num_hidden_layers": N_LAYERS,
        "num_attention_heads": m["n_head"],
        "num_key_value_heads": m["n_kv"],
        "vocab_size": m["vocab"],
        "max_position_embeddings": MAX_POS,
        "rms_norm_eps": RMS_EPS,
        "tie_word_embeddings": m["tied"],
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "use_sliding_window": False,
    }
    if m["arch"] == "qwen3":
        c["head_dim"] = hd
        c["attention_bias"] = False
    dt = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[m["dtype"]]
    if m["style"] == 4:
        c["rope_theta"] = m["theta"]
        c["rope_scaling"] = None
        c["torch_dtype"] = dt
        c["transformers_version"] = "4.51.0"
    else:
        c["rope_parameters"] = {"rope_theta": m["theta"], "rope_type": "default"}
        c["dtype"] = dt
        c["transformers_version"] = transformers.__version__
    return c


def make_weights(m, seed):
    """Random weights, large enough that attention is far from uniform (q.k/sqrt(d) has a
    standard deviation of about 2.5)."""
    g = torch.Generator().manual_seed(seed)
    h, f, v = m["hidden"], m["ffn"], m["vocab"]
    hd = m["head_dim"] or h // m["n_head"]
    q, kv = m["n_head"] * hd, m["n_kv"] * hd

    def n(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    w = {"model.embed_tokens.weight": n(v, h, std=0.2 if m["tied"] else 1.0)}
    qk_scale = 1.0 if m["arch"] == "qwen3" else 1.6  # qwen3: q/k norms set the scale
    for i in range(N_LAYERS):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = n(h, std=0.1, mean=1.0)
        w[p + "self_attn.q_proj.weight"] = n(q, h, std=qk_scale / h**0.5)
        w[p + "self_attn.k_proj.weight"] = n(kv, h, std=qk_scale / h**0.5)
        w[p + "self_attn.v_proj.weight"] = n(kv, h, std=1 / h**0.5)
        w[p + "self_attn.o_proj.weight"] = n(h, q, std=1 / q**0.5)
        if m["arch"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = n(q, std=0.5)
            w[p + "self_attn.k_proj.bias"] = n(kv, std=0.5)
            w[p + "self_attn.v_proj.bias"] = n(kv, std=0.5)
        else:
            w[p + "self_attn.q_norm.weight"] = n(hd, std=0.2, mean=1.6)
            w[p + "self_attn.k_norm.weight"] = n(hd, std=0.2, mean=1.6)
        w[p + "post_attention_layernorm.weight"] = n(h, std=0.1, mean=1.0)
        w[p + "mlp.gate_proj.weight"] = n(f, h, std=1 / h**0.5)
        w[p + "mlp.up_proj.weight"] = n(f, h, std=1 / h**0.5)
        w[p + "mlp.down_proj.weight"] = n(h, f, std=1 / f**0.5)
    w["model.norm.weight"] = n(h, std=0.1, mean=1.0)
    if not m["tied"]:
        w["lm_head.weight"] = n(v, h, std=3 / h**0.5)
    # Round to the storage dtype, so the f32 values below are exactly what the folder holds.
    return {k: t.to(m["dtype"]).contiguous() for k, t in w.items()}


def save_folder(m, w, d):
    with open(os.path.join(d, "config.json"), "w") as fh:
        json.dump(hf_config(m), fh, indent=2)
    meta = {"format": "pt"}
    if not m["sharded"]:
        safetensors.torch.save_file(w, os.path.join(d, "model.safetensors"), metadata=meta)
        return
    names = list(w)
    half = len(names) // 2
    shards = [names[:half], names[half:]]
    weight_map = {}
    total = 0
    for i, part in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        safetensors.torch.save_file({k: w[k] for k in part}, os.path.join(d, fname), metadata=meta)
        for k in part:
            weight_map[k] = fname
            total += w[k].numel() * w[k].element_size()
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)


HF_TO_GGUF = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, i, rest = hf.split(".", 3)
    return f"blk.{i}.{HF_TO_GGUF[rest]}"


def gguf_type(hf):
    """llama-quantize's Q4_0 choice for these shapes."""
    if hf in ("model.embed_tokens.weight", "lm_head.weight"):
        return QT.Q8_0
    if hf.endswith(".weight") and ("_proj." in hf):
        return QT.Q4_0
    return QT.F32


def quantize_q6_k(x):
    """A simple Q6_K quantizer (per 16 values: scale absmax/32; per 256: d = max scale / 127),
    packing exactly as ggml's block_q6_K; only the packing matters, the tests use the gguf
    package's dequantization of these bytes as the reference."""
    x = x.reshape(-1, 256).astype(np.float32)
    out = []
    for b in x:
        g = b.reshape(16, 16)
        s = np.abs(g).max(axis=1) / 32
        d = np.float16(s.max() / 127)
        df = np.float32(d)
        sc = np.clip(np.round(s / df), -128, 127).astype(np.int8) if df > 0 else np.zeros(16, np.int8)
        q = np.zeros(256, np.int32)
        for j in range(16):
            step = df * np.float32(sc[j])
            if step != 0:
                q[16 * j:16 * j + 16] = np.clip(np.round(g[j] / step), -32, 31)
        q = (q + 32).astype(np.uint8)
        ql = np.zeros(128, np.uint8)
        qh = np.zeros(64, np.uint8)
        for half in range(2):
            y = q[128 * half:128 * half + 128]
            for l in range(32):
                ql[64 * half + l] = (y[l] & 0xF) | ((y[l + 64] & 0xF) << 4)
                ql[64 * half + l + 32] = (y[l + 32] & 0xF) | ((y[l + 96] & 0xF) << 4)
                qh[32 * half + l] = ((y[l] >> 4) | ((y[l + 32] >> 4) << 2)
                                     | ((y[l + 64] >> 4) << 4) | ((y[l + 96] >> 4) << 6))
        out.append(np.concatenate([ql, qh, sc.view(np.uint8), np.array([d]).view(np.uint8)]))
    return np.stack(out)


def write_gguf(m, w32, path, types=None):
    """Writes the GGUF file; returns {hf name: (ggml type, dequantized float32 weight)}."""
    hd = m["head_dim"] or m["hidden"] // m["n_head"]
    wr = gguf.GGUFWriter(path, m["arch"])
    if m["align"]:
        wr.add_custom_alignment(m["align"])
    wr.add_name(m["name"])
    wr.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    wr.add_context_length(MAX_POS)
    wr.add_embedding_length(m["hidden"])
    wr.add_block_count(N_LAYERS)
    wr.add_feed_forward_length(m["ffn"])
    wr.add_head_count(m["n_head"])
    wr.add_head_count_kv(m["n_kv"])
    wr.add_rope_freq_base(m["theta"])
    wr.add_layer_norm_rms_eps(RMS_EPS)
    if m["head_dim"]:
        wr.add_key_length(hd)
        wr.add_value_length(hd)
    wr.add_tokenizer_model("gpt2")
    wr.add_token_list([f"<t{i}>" for i in range(m["vocab"])])
    order = ["model.embed_tokens.weight"]
    order += [k for k in w32 if k.startswith("model.layers.")]
    order += ["model.norm.weight"] + (["lm_head.weight"] if "lm_head.weight" in w32 else [])
    deq = {}
    for k in order:
        t = w32[k].numpy().astype(np.float32)
        ty = (types or {}).get(k, gguf_type(k))
        if ty == QT.F32:
            data, back = t, t
        elif ty == QT.Q6_K:
            data = quantize_q6_k(t).reshape(t.shape[0], -1)
            back = gguf.quants.dequantize(data, QT.Q6_K)
        else:
            data = gguf.quants.quantize(t, ty)
            back = gguf.quants.dequantize(data, ty)
        wr.add_tensor(gguf_name(k), data, raw_dtype=ty)
        deq[k] = (ty, back.reshape(t.shape).astype(np.float32))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    # Read it back: every tensor as written.
    r = gguf.GGUFReader(path)
    names = {t.name: t for t in r.tensors}
    for k, (ty, back) in deq.items():
        t = names[gguf_name(k)]
        assert t.tensor_type == ty, (k, t.tensor_type, ty)
        np.testing.assert_array_equal(
            gguf.quants.dequantize(np.asarray(t.data), ty).reshape(back.shape), back)
    return deq


def act_qdq(x):
    """qkern's int8 activation rounding (src/quant/act.rs), quantize then dequantize."""
    shape = x.shape
    xb = x.reshape(-1, shape[-1] // 32, 32).to(torch.float32)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    d = amax / 127.0
    inv = torch.where(d == 0, torch.zeros_like(d), 1.0 / torch.where(d == 0, torch.ones_like(d), d))
    t = xb * inv
    r = torch.trunc(t)
    frac = t - r  # exact in f32
    q = r + torch.sign(t) * (frac.abs() >= 0.5).to(torch.float32)
    q = q.clamp(-127, 127)
    return (q * d).reshape(shape)


def load_hf(d):
    kw = dict(attn_implementation="eager")
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **kw)
    except TypeError:
        return transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, **kw)


def logits_of(model, tokens):
    with torch.no_grad():
        out = model(torch.tensor([tokens]), use_cache=False)
    return out.logits[0].to(torch.float32).numpy()


def check_decode(model, tokens, full, tol, prompt_len=PROMPT_LEN):
    """The teacher-forced decode steps through transformers' KV cache match the full pass;
    returns the largest difference."""
    with torch.no_grad():
        out = model(torch.tensor([tokens[:prompt_len]]), use_cache=True)
        past = out.past_key_values
        rows = [out.logits[0, -1]]
        for t in tokens[prompt_len:]:
            out = model(torch.tensor([[t]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            rows.append(out.logits[0, -1])
    got = torch.stack(rows).numpy()
    diff = float(np.abs(got - full[prompt_len - 1:]).max())
    assert diff <= tol, f"KV-cache decode differs from the full pass by {diff}"
    return diff


def quantized_model(d, deq):
    """The folder's model with the GGUF's dequantized weights and int8 activation rounding."""
    model = load_hf(d)
    sd = model.state_dict()
    with torch.no_grad():
        for k, (ty, back) in deq.items():
            if ty != QT.F32:
                sd[k].copy_(torch.from_numpy(back))
        if "lm_head.weight" not in deq:  # tied: the head is the dequantized embedding
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            mod.register_forward_pre_hook(lambda _m, args: (act_qdq(args[0]),) + args[1:])
    return model


def softmax_entropy_ratio(model, tokens):
    """Mean attention entropy / entropy of uniform attention over the causal window (1 = uniform)."""
    with torch.no_grad():
        out = model(torch.tensor([tokens]), use_cache=False, output_attentions=True)
    ratios = []
    for a in out.attentions:
        a = a[0]  # heads, q, k
        for qi in range(1, a.shape[1]):
            p = a[:, qi, : qi + 1]
            ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
            ratios.append((ent / np.log(qi + 1)).mean().item())
    return float(np.mean(ratios))


def write_fuzz_seeds():
    """Tiny valid inputs for the fuzz targets (fuzz/seeds/TARGET/seed-*)."""
    fuzz = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "seeds")
    m = dict(name="tiny", arch="qwen2", hidden=32, n_head=2, n_kv=1, head_dim=None, ffn=32,
             vocab=4, tied=True, dtype=torch.float16, style=5, sharded=False, theta=1e4,
             align=None)
    global N_LAYERS
    saved, N_LAYERS = N_LAYERS, 1
    try:
        w = make_weights(m, seed=7)
        w32 = {k: t.to(torch.float32) for k, t in w.items()}
        os.makedirs(os.path.join(fuzz, "gguf_parse"), exist_ok=True)
        os.makedirs(os.path.join(fuzz, "safetensors_parse"), exist_ok=True)
        write_gguf(m, w32, os.path.join(fuzz, "gguf_parse", "seed-tiny.gguf"))
        cfg = json.dumps(hf_config(m)).encode()
        st = safetensors.torch.save(w)
        with open(os.path.join(fuzz, "safetensors_parse", "seed-tiny"), "wb") as fh:
            fh.write(cfg + b"\n--\n" + st)
    finally:
        N_LAYERS = saved


def main():
    write_fuzz_seeds()
    os.makedirs(ROOT, exist_ok=True)
    for idx, m in enumerate(MODELS):
        d = os.path.join(ROOT, m["name"])
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        w = make_weights(m, seed=1000 + idx)
        save_folder(m, w, d)
        w32 = {k: t.to(torch.float32) for k, t in w.items()}
        deq = write_gguf(m, w32, os.path.join(d, "model-q4_0.gguf"))

        rng = np.random.default_rng(2000 + idx)
        tokens = [int(t) for t in rng.integers(0, m["vocab"], PROMPT_LEN + DECODE_STEPS)]

        model = load_hf(d)
        sd = model.state_dict()
        for k, t in w32.items():  # transformers read exactly the folder's weights
            assert torch.equal(sd[k], t), k
        full = logits_of(model, tokens)
        check_decode(model, tokens, full, 1e-4)
        ent = softmax_entropy_ratio(model, tokens)
        assert ent < 0.8, f"{m['name']}: attention too uniform ({ent:.2f})"

        qmodel = quantized_model(d, deq)
        qfull = logits_of(qmodel, tokens)
        # With int8 activation rounding, a last-bit difference between the cached and the full
        # pass can move one rounding by a step (1/127 of a block's absmax), so the two agree only
        # to that sensitivity; it is recorded, as a yardstick for the forward pass's tolerance.
        qdiff = check_decode(qmodel, tokens, qfull, 0.5)

        full.astype("<f4").tofile(os.path.join(d, "logits_f32.bin"))
        qfull.astype("<f4").tofile(os.path.join(d, "logits_q.bin"))

        # The long prompt, drawn after the short one from the same generator.
        long_tokens = [int(t) for t in rng.integers(0, m["vocab"], LONG_PROMPT_LEN + DECODE_STEPS)]
        long_full = logits_of(model, long_tokens)
        check_decode(model, long_tokens, long_full, 1e-4, LONG_PROMPT_LEN)
        long_q = logits_of(qmodel, long_tokens)
        long_qdiff = check_decode(qmodel, long_tokens, long_q, 0.5, LONG_PROMPT_LEN)
        long_full[LONG_PROMPT_LEN - 1:].astype("<f4").tofile(os.path.join(d, "logits_long_f32.bin"))
        long_q[LONG_PROMPT_LEN - 1:].astype("<f4").tofile(os.path.join(d, "logits_long_q.bin"))
        hd = m["head_dim"] or m["hidden"] // m["n_head"]
        info = {
            "arch": m["arch"],
            "config": {
                "n_layers": N_LAYERS, "hidden": m["hidden"], "n_head": m["n_head"],
                "n_kv_head": m["n_kv"], "head_dim": hd, "ffn": m["ffn"], "vocab": m["vocab"],
                "rope_theta": m["theta"], "rms_eps": RMS_EPS, "max_positions": MAX_POS,
                "tied_embeddings": m["tied"],
            },
            "safetensors_dtype": str(m["dtype"]).replace("torch.", ""),
            "config_style": f"transformers {m['style']}",
            "sharded": m["sharded"],
            "gguf_alignment": m["align"] or 32,
            "tokens": tokens,
            "prompt_len": PROMPT_LEN,
            "decode_steps": DECODE_STEPS,
            "logits_shape": [len(tokens), m["vocab"]],
            "logits_f32": "logits_f32.bin",
            "logits_q": "logits_q.bin",
            "attention_entropy_ratio": round(ent, 3),
            "max_abs_logit_f32": float(np.abs(full).max()),
            "max_abs_diff_q_vs_f32": float(np.abs(qfull - full).max()),
            "max_abs_diff_q_kv_cache_vs_full_pass": qdiff,
            "long": {
                "tokens": long_tokens,
                "prompt_len": LONG_PROMPT_LEN,
                "decode_steps": DECODE_STEPS,
                "first_row": LONG_PROMPT_LEN - 1,
                "logits_shape": [DECODE_STEPS + 1, m["vocab"]],
                "logits_f32": "logits_long_f32.bin",
                "logits_q": "logits_long_q.bin",
                "max_abs_logit_f32": float(np.abs(long_full[LONG_PROMPT_LEN - 1:]).max()),
                "max_abs_diff_q_vs_f32": float(np.abs(long_q - long_full)[LONG_PROMPT_LEN - 1:].max()),
                "max_abs_diff_q_kv_cache_vs_full_pass": long_qdiff,
            },
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "gguf": getattr(gguf, "__version__", "0.19.0"), "numpy": np.__version__},
        }
        with open(os.path.join(d, "golden.json"), "w") as fh:
            json.dump(info, fh, indent=2)
        print(f"{m['name']}: entropy ratio {ent:.2f}, max |logit| {np.abs(full).max():.2f}, "
              f"max |q - f32| {np.abs(qfull - full).max():.3f}")

        if m["name"] == "qwen2_gqa_hd128":
            types = {"model.embed_tokens.weight": QT.Q6_K, "lm_head.weight": QT.Q6_K}
            deq6 = write_gguf(m, w32, os.path.join(d, "model-q6k.gguf"), types)
            deq6["model.embed_tokens.weight"][1].astype("<f4").tofile(
                os.path.join(d, "q6k_token_embd.f32"))
            deq6["lm_head.weight"][1].astype("<f4").tofile(os.path.join(d, "q6k_output.f32"))
            err = np.abs(deq6["lm_head.weight"][1] - w32["lm_head.weight"].numpy()).max()
            print(f"  Q6_K file: max |q6k - f32| of the output head {err:.4f}")

    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print(f"total {total / 1e6:.2f} MB under {ROOT}")
    assert total < 20e6


if __name__ == "__main__":
    sys.exit(main())
