#!/usr/bin/env python3
"""Golden files for the weight formats: real llama-quantize GGUFs of the small random models of
tests/data/models (made by scripts/gen_golden.py) and reference logits for each, read by
tests/model_formats_golden.rs.

Run by hand, not by CI (numpy, gguf and safetensors only; no torch):

    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install numpy==2.4.6 gguf==0.19.0 safetensors==0.8.0
    eval "$(../shared/tools/peer-llamacpp.sh)"      # builds llama.cpp once; sets $LLAMA_QUANTIZE
    LLAMA_QUANTIZE=$LLAMA_QUANTIZE /tmp/golden-venv/bin/python scripts/gen_golden_formats.py [MODEL...]

(MODEL...: only those folders' files and formats.json; every model when none given.)

llama.cpp and its build stay outside the repository (never commit them).

The models are gen_golden.py's (their config is read from each folder's golden.json and
config.json, their weights from the committed safetensors, so nothing is regenerated), plus
NUMPY_MODELS (qwen2_h384), made here from a seed with gen_golden.py's recipe: their golden.json and
logits_f32.bin (this script's numpy forward on the float32 weights) are written each run; for each
(model, llama-quantize type) in FILES below:

1. the folder's weights are written as an F32 GGUF (llama.cpp's keys and names, as gen_golden.py
   writes them) in a temporary folder, and `$LLAMA_QUANTIZE in.gguf model-<type>.gguf <TYPE>`
   makes tests/data/models/<model>/model-<type>.gguf with llama.cpp's own per-tensor choices
   (Q4_K_M: Q4_K with Q6_K for the output head and some attn_v / ffn_down; rows whose length is
   not a multiple of 256 fall back to Q5_0 / Q5_1 / Q8_0);
2. every tensor of that file is dequantized exactly by gguf-py (`gguf.quants.dequantize`, the
   numpy reference the crate's dequantizers are tested bit-identical against in tests/formats.rs);
3. a float32 numpy Qwen forward (`forward` below; full causal pass over golden.json's tokens) on
   those weights, with every linear input rounded as qkern's int8 activations are: per block of 32
   along K for a weight in a 32-block format, per block of 256 for a K-quant weight (d = absmax/127
   in f32, id = 1/d in f32 (0 if d = 0), q = round-half-away-from-zero(x * id), value = q * d;
   src/quant/act.rs), gives logits-<type>.bin ([len(tokens), vocab] little-endian f32, row i after
   tokens[0..=i], as logits_f32.bin);
4. formats.json in the folder lists each file: name, llama-quantize type, the ggml type of every
   tensor, the logits file, and the max |difference| to logits_f32.bin.

The numpy forward is checked first against the committed goldens of every model: on the float
weights against transformers' logits_f32.bin (max difference relative to max |logit| must be below
1e-4; measured about 1e-6), and with model-q4_0.gguf's weights and the activation rounding against
logits_q.bin (the same tolerance, except rows where a last-bit difference flips an int8 rounding,
at most 3 % as in tests/model_golden.rs). So it computes what transformers computes.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "models")

# (model folder, llama-quantize type). K-quants need rows that are multiples of 256:
# qwen2_gqa_hd128 (hidden 256, q_dim 256, ffn 512). The 32-block types on the smaller models.
FILES = [
    ("qwen2_gqa_hd128", "Q4_K_M"),
    ("qwen2_gqa_hd128", "Q5_K_M"),
    ("qwen2_gqa_hd128", "Q6_K"),
    ("qwen2_tied", "Q8_0"),
    ("qwen2_tied", "Q5_0"),
    ("qwen3", "Q5_0"),
    ("qwen3", "Q4_1"),
    ("qwen2_untied", "Q5_1"),
    ("qwen2_h384", "Q4_K_M"),
]

# Models made here, in numpy, rather than by gen_golden.py (no safetensors committed: the weights
# are regenerated from the seed, numpy's PCG64 normal stream being stable across versions).
# qwen2_h384: hidden 384 (not a multiple of 256, as Qwen2.5-0.5B's 896) with ffn 256, so
# llama-quantize's Q4_K_M mixes types inside one layer: rows of 384 fall back (Q4_K -> Q5_0,
# Q6_K -> Q8_0) while ffn_down (rows of 256) stays Q4_K / Q6_K. Tied, as Qwen2.5-0.5B. q_dim must
# equal hidden (qwen2 GGUFs carry no key_length), so heads 6 x 64; ffn 256 rather than 512 keeps
# the file near 1 MB (ffn 512: 1.49 MB).
NUMPY_MODELS = {
    "qwen2_h384": dict(arch="qwen2", hidden=384, n_head=6, n_kv=2, head_dim=64, ffn=256,
                       vocab=256, tied=True, theta=1e6, seed=3000),
}
PROMPT_LEN = 9
DECODE_STEPS = 3

MAX_FILE_BYTES = 1_500_000


# --- reading the committed folders ---------------------------------------------------------------

def read_safetensors(path):
    """{name: float32 array} of one safetensors file (F32, F16, BF16)."""
    with open(path, "rb") as fh:
        buf = fh.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offset_offsets"] if "data_offset_offsets" in v else v["data_offsets"]
        raw = data[a:b]
        if v["dtype"] == "F32":
            x = np.frombuffer(raw, "<f4")
        elif v["dtype"] == "F16":
            x = np.frombuffer(raw, "<f2").astype(np.float32)
        elif v["dtype"] == "BF16":
            x = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(v["dtype"])
        out[k] = x.reshape(v["shape"]).astype(np.float32)
    return out


def read_folder(d):
    files = [f for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(d, f)))
    return w


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


def numpy_weights(m):
    """gen_golden.py's make_weights recipe (same standard deviations) with numpy's generator;
    {gguf name: float32 array}."""
    rng = np.random.default_rng(m["seed"])
    h, f, v, hd = m["hidden"], m["ffn"], m["vocab"], m["head_dim"]
    q, kv = m["n_head"] * hd, m["n_kv"] * hd

    def n(*shape, std=1.0, mean=0.0):
        return (rng.standard_normal(shape) * std + mean).astype(np.float32)

    w = {"token_embd.weight": n(v, h, std=0.2 if m["tied"] else 1.0)}
    for i in range(2):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = n(h, std=0.1, mean=1.0)
        w[p + "attn_q.weight"] = n(q, h, std=1.6 / h**0.5)
        w[p + "attn_k.weight"] = n(kv, h, std=1.6 / h**0.5)
        w[p + "attn_v.weight"] = n(kv, h, std=1 / h**0.5)
        w[p + "attn_output.weight"] = n(h, q, std=1 / q**0.5)
        w[p + "attn_q.bias"] = n(q, std=0.5)
        w[p + "attn_k.bias"] = n(kv, std=0.5)
        w[p + "attn_v.bias"] = n(kv, std=0.5)
        w[p + "ffn_norm.weight"] = n(h, std=0.1, mean=1.0)
        w[p + "ffn_gate.weight"] = n(f, h, std=1 / h**0.5)
        w[p + "ffn_up.weight"] = n(f, h, std=1 / h**0.5)
        w[p + "ffn_down.weight"] = n(h, f, std=1 / f**0.5)
    w["output_norm.weight"] = n(h, std=0.1, mean=1.0)
    if not m["tied"]:
        w["output.weight"] = n(v, h, std=3 / h**0.5)
    return w


def make_numpy_model(name):
    """A NUMPY_MODELS folder: golden.json (as gen_golden.py's) and logits_f32.bin, the numpy
    forward on the float32 weights (checked against transformers on the other models)."""
    m = NUMPY_MODELS[name]
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    w = numpy_weights(m)
    rng = np.random.default_rng(m["seed"] + 1)
    tokens = [int(t) for t in rng.integers(0, m["vocab"], PROMPT_LEN + DECODE_STEPS)]
    g = {
        "arch": m["arch"],
        "config": {
            "n_layers": 2, "hidden": m["hidden"], "n_head": m["n_head"],
            "n_kv_head": m["n_kv"], "head_dim": m["head_dim"], "ffn": m["ffn"],
            "vocab": m["vocab"], "rope_theta": m["theta"], "rms_eps": 1e-6,
            "max_positions": 512, "tied_embeddings": m["tied"],
        },
        "made_by": "scripts/gen_golden_formats.py (numpy weights, seed %d; no safetensors)"
                   % m["seed"],
        "tokens": tokens,
        "prompt_len": PROMPT_LEN,
        "decode_steps": DECODE_STEPS,
        "logits_shape": [len(tokens), m["vocab"]],
        "logits_f32": "logits_f32.bin",
    }
    logits = forward(g, w, {}, tokens, False)
    g["max_abs_logit_f32"] = float(np.abs(logits).max())
    g["versions"] = {"gguf": getattr(gguf, "__version__", "0.19.0"), "numpy": np.__version__}
    logits.astype("<f4").tofile(os.path.join(d, "logits_f32.bin"))
    with open(os.path.join(d, "golden.json"), "w") as fh:
        json.dump(g, fh, indent=2)
        fh.write("\n")
    return g, w


def load_model(name):
    if name in NUMPY_MODELS:
        return make_numpy_model(name)
    d = os.path.join(ROOT, name)
    with open(os.path.join(d, "golden.json")) as fh:
        g = json.load(fh)
    w = {gguf_name(k): v for k, v in read_folder(d).items()}
    return g, w


# --- the F32 GGUF that llama-quantize reads ------------------------------------------------------

def write_f32_gguf(g, w, path):
    """As gen_golden.py's write_gguf, every tensor F32, but always with the default alignment:
    given qwen3's general.alignment = 64, this llama-quantize wrote a Q5_0 file whose last tensor
    ends 32 bytes past the end of the file (both qkern and gguf-py reject it)."""
    c = g["config"]
    arch = g["arch"]
    wr = gguf.GGUFWriter(path, arch)
    wr.add_name("qkern-test")
    wr.add_file_type(gguf.LlamaFileType.ALL_F32)
    wr.add_context_length(c["max_positions"])
    wr.add_embedding_length(c["hidden"])
    wr.add_block_count(c["n_layers"])
    wr.add_feed_forward_length(c["ffn"])
    wr.add_head_count(c["n_head"])
    wr.add_head_count_kv(c["n_kv_head"])
    wr.add_rope_freq_base(c["rope_theta"])
    wr.add_layer_norm_rms_eps(c["rms_eps"])
    if arch == "qwen3":
        wr.add_key_length(c["head_dim"])
        wr.add_value_length(c["head_dim"])
    wr.add_tokenizer_model("gpt2")
    wr.add_token_list([f"<t{i}>" for i in range(c["vocab"])])
    order = ["token_embd.weight"] + sorted(
        (k for k in w if k.startswith("blk.")), key=lambda k: (int(k.split(".")[1]), k))
    order += ["output_norm.weight"] + (["output.weight"] if "output.weight" in w else [])
    for k in order:
        wr.add_tensor(k, np.ascontiguousarray(w[k], dtype=np.float32), raw_dtype=QT.F32)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def read_gguf(path):
    """{name: (ggml type name, float32 array in the row-major shape [n, k] / [n])}, dequantized
    by gguf-py."""
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        shape = [int(v) for v in reversed(t.shape.tolist())]
        x = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        out[t.name] = (t.tensor_type.name, np.asarray(x, np.float32).reshape(shape))
    return out


# --- the reference forward -----------------------------------------------------------------------

K_QUANTS = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}


def act_qdq(x, block):
    """qkern's int8 activation rounding per `block` values along the last axis."""
    shape = x.shape
    xb = x.reshape(-1, shape[-1] // block, block).astype(np.float32)
    amax = np.abs(xb).max(axis=-1, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / np.where(d == 0, 1, d))
    inv = np.where(np.isfinite(inv), inv, 0).astype(np.float32)
    t = (xb * inv).astype(np.float32)
    r = np.trunc(t)
    q = r + np.sign(t) * (np.abs(t - r) >= 0.5)
    q = np.clip(q, -127, 127).astype(np.float32)
    return (q * d).astype(np.float32).reshape(shape)


def rmsnorm(x, w, eps):
    v = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x * (np.float32(1) / np.sqrt(v + np.float32(eps)))).astype(np.float32) * w


def forward(g, w, types, tokens, quant_acts):
    """Full causal pass; `w` {gguf name: f32 array}, `types` {gguf name: ggml type name} (a
    K-quant weight's input is rounded per 256, any other per 32, when `quant_acts`)."""
    c = g["config"]
    h, nh, nkv, hd = c["hidden"], c["n_head"], c["n_kv_head"], c["head_dim"]
    eps, T = c["rms_eps"], len(tokens)

    def lin(x, name, bias=None):
        if quant_acts:
            x = act_qdq(x, 256 if types.get(name) in K_QUANTS else 32)
        y = (x @ w[name].T).astype(np.float32)
        if bias is not None and bias in w:
            y = y + w[bias]
        return y

    inv_freq = (1.0 / (c["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.int64)
                                           .astype(np.float32) / hd))).astype(np.float32)
    freqs = np.outer(np.arange(T, dtype=np.float32), inv_freq).astype(np.float32)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)

    def rope(x):  # [T, heads, hd], rotate_half (neox) as transformers' Qwen2/Qwen3
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        rot = np.concatenate([-x2, x1], axis=-1)
        return (x * cos[:, None, :] + rot * sin[:, None, :]).astype(np.float32)

    x = w["token_embd.weight"][tokens].astype(np.float32)
    mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    for i in range(c["n_layers"]):
        p = f"blk.{i}."
        a = rmsnorm(x, w[p + "attn_norm.weight"], eps)
        q = lin(a, p + "attn_q.weight", p + "attn_q.bias").reshape(T, nh, hd)
        k = lin(a, p + "attn_k.weight", p + "attn_k.bias").reshape(T, nkv, hd)
        v = lin(a, p + "attn_v.weight", p + "attn_v.bias").reshape(T, nkv, hd)
        if p + "attn_q_norm.weight" in w:
            q = rmsnorm(q, w[p + "attn_q_norm.weight"], eps)
            k = rmsnorm(k, w[p + "attn_k_norm.weight"], eps)
        q, k = rope(q), rope(k)
        rep = nh // nkv
        out = np.zeros((T, nh, hd), np.float32)
        for hh in range(nh):
            s = (q[:, hh] @ k[:, hh // rep].T).astype(np.float32) / np.float32(np.sqrt(hd))
            s = s + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s = (s / s.sum(axis=-1, keepdims=True)).astype(np.float32)
            out[:, hh] = s @ v[:, hh // rep]
        x = x + lin(out.reshape(T, nh * hd), p + "attn_output.weight")
        a = rmsnorm(x, w[p + "ffn_norm.weight"], eps)
        gate = lin(a, p + "ffn_gate.weight")
        up = lin(a, p + "ffn_up.weight")
        act = (gate / (np.float32(1) + np.exp(-gate))).astype(np.float32) * up
        x = x + lin(act, p + "ffn_down.weight")
    x = rmsnorm(x, w["output_norm.weight"], eps)
    head = "output.weight" if "output.weight" in w else "token_embd.weight"
    return lin(x, head)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def read_logits(d, name, g):
    return np.fromfile(os.path.join(d, name), "<f4").reshape(g["logits_shape"])


def check_forward():
    """The numpy forward against the committed transformers goldens of every model."""
    for name in ["qwen2_tied", "qwen2_untied", "qwen2_gqa_hd128", "qwen3"]:
        d = os.path.join(ROOT, name)
        g, w = load_model(name)
        f32 = read_logits(d, "logits_f32.bin", g)
        e_f = rel(forward(g, w, {}, g["tokens"], False), f32)
        q4 = read_gguf(os.path.join(d, "model-q4_0.gguf"))
        wq = {k: v for k, (_, v) in q4.items()}
        got_q = forward(g, wq, {k: t for k, (t, _) in q4.items()}, g["tokens"], True)
        want_q = read_logits(d, "logits_q.bin", g)
        scale = np.abs(want_q).max()
        rows = [float(np.abs(a - b).max() / scale) for a, b in zip(got_q, want_q)]
        print(f"check {name}: vs logits_f32 {e_f:.2e}; vs logits_q per row max "
              f"{max(rows):.2e}, rows above 1e-4: {sum(r > 1e-4 for r in rows)}")
        assert e_f < 1e-4, (name, e_f)
        assert sum(r > 1e-4 for r in rows) <= 1 and max(rows) < 0.03, (name, rows)


def llama_cpp_version(quantize):
    """The llama.cpp source the binary was built from: peer-llamacpp.sh's folder name
    (llama_cpp_python-<version>/vendor/llama.cpp), or the binary's path."""
    parts = os.path.abspath(quantize).split(os.sep)
    for i, p in enumerate(parts):
        if p.startswith("llama_cpp_python-"):
            return "/".join(parts[i:i + 3])
    return quantize


def main():
    quantize = os.environ.get("LLAMA_QUANTIZE")
    if not quantize:
        sys.exit("set LLAMA_QUANTIZE (eval \"$(../shared/tools/peer-llamacpp.sh)\")")
    check_forward()
    index = {}
    with tempfile.TemporaryDirectory() as tmp:
        only = sys.argv[1:]  # model folders to (re)make; all when none given
        for name, qtype in FILES:
            if only and name not in only:
                continue
            d = os.path.join(ROOT, name)
            g, w = load_model(name)
            src = os.path.join(tmp, f"{name}-f32.gguf")
            if not os.path.exists(src):
                write_f32_gguf(g, w, src)
            fname = f"model-{qtype.lower()}.gguf"
            out = os.path.join(d, fname)
            subprocess.run([quantize, src, out, qtype], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            size = os.path.getsize(out)
            assert size <= MAX_FILE_BYTES, (out, size)
            t = read_gguf(out)
            types = {k: ty for k, (ty, _) in t.items()}
            wq = {k: v for k, (_, v) in t.items()}
            logits = forward(g, wq, types, g["tokens"], True)
            lname = f"logits-{qtype.lower()}.bin"
            logits.astype("<f4").tofile(os.path.join(d, lname))
            f32 = read_logits(d, "logits_f32.bin", g)
            start = g["prompt_len"] - 1
            e = rel(logits[start:], f32[start:])
            counts = {}
            for ty in types.values():
                counts[ty] = counts.get(ty, 0) + 1
            print(f"{name} {qtype}: {size} bytes, types {counts}, "
                  f"rel diff vs f32 (rows {start}..) {e:.3f}")
            index.setdefault(name, []).append({
                "file": fname,
                "llama_quantize_type": qtype,
                "tensor_types": types,
                "logits": lname,
                "rel_diff_vs_f32": round(e, 4),
                "bytes": size,
            })
    for name, files in index.items():
        info = {
            "made_by": "scripts/gen_golden_formats.py",
            "versions": {"gguf": getattr(gguf, "__version__", "0.19.0"),
                         "numpy": np.__version__,
                         "llama_cpp": llama_cpp_version(quantize)},
            "files": files,
        }
        with open(os.path.join(ROOT, name, "formats.json"), "w") as fh:
            json.dump(info, fh, indent=2, sort_keys=False)
            fh.write("\n")


if __name__ == "__main__":
    main()
