#!/usr/bin/env python3
"""Writes tests/data/format_vectors.bin: GGUF weight blocks made by llama.cpp's own quantizer
(llama-quantize) and their dequantization by the `gguf` package's numpy dequantizers, for Q4_1, Q5_0,
Q5_1, Q8_0, Q4_K, Q5_K and Q6_K. Both are independent of qkern; `tests/formats_reference.rs` checks
the reference crate against them. Run once by hand; CI only reads the committed file.

    python3 -m venv /tmp/genv && /tmp/genv/bin/pip install gguf==0.19.0 numpy==2.4.6
    eval "$(../shared/tools/peer-llamacpp.sh)"      # builds llama.cpp outside the repo, sets $LLAMA_QUANTIZE
    /tmp/genv/bin/python scripts/gen_format_vectors.py

The committed file was made with llama-quantize from the llama.cpp vendored in llama-cpp-python 0.3.36
(llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f, built by peer-llamacpp.sh with
GGML_NATIVE on x86_64), gguf 0.19.0 and numpy 2.4.6. The blocks come from ggml's reference quantizers
(`quantize_row_*_ref`; no importance matrix). For Q4_1, Q5_0, Q5_1 and Q8_0 the script also prints
whether gguf-py's own numpy quantizer gives the same bytes (it did, for every tensor).

The script writes a small F32 GGUF (a one-layer "llama" with two weight tensors of random data and
edge cases) to a temporary folder, runs `$LLAMA_QUANTIZE --pure IN OUT TYPE` once per type (--pure:
every weight gets TYPE, no per-tensor mixing), reads each output back with gguf.GGUFReader, and keeps
every tensor whose type is the requested one (a tensor whose row length is not a multiple of 256
falls back to another type for the K-quants and is left out for them). The temporary files are
deleted; nothing from llama.cpp is committed.

Tensors (rows x row length; ggml's ne[0] is the row length):
  blk.0.ffn_down.weight  6 x 512 (two super-blocks per row)   -> every type
  blk.0.ffn_up.weight    6 x 96  (three 32-blocks per row)     -> Q4_1, Q5_0, Q5_1, Q8_0
with ordinary data at several magnitudes, an all-zero row, single outliers, negative-only and
positive-only rows, constant blocks, sub-blocks of widely different magnitude inside one
super-block, and values small enough that the f16 scales are subnormal.

Format (all little-endian):
  b"QKFV", u32 version = 1, u32 n_entries, then n_entries times:
    u32 ggml_type   (GGML type id: Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14)
    u32 n_rows, u32 row_len (values per row)
    u32 name_len, u8[name_len] tensor name (UTF-8)
    u8[n_rows * row_len / block_len * block_bytes]  the blocks, exactly as in the GGUF, row after row
    f32[n_rows * row_len]                           gguf.quants.dequantize of those blocks
"""
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

# (llama-quantize type name, expected GGML type)
TARGETS = [
    ("Q4_1", T.Q4_1),
    ("Q5_0", T.Q5_0),
    ("Q5_1", T.Q5_1),
    ("Q8_0", T.Q8_0),
    ("Q4_K", T.Q4_K),  # alias of Q4_K_M; with --pure every tensor is Q4_K
    ("Q5_K", T.Q5_K),
    ("Q6_K", T.Q6_K),
]

rng = np.random.default_rng(20261201)


def normal(n, scale=1.0):
    return rng.standard_normal(n) * scale


def wide_rows():
    """6 rows of 512 values: two super-blocks per row, each with its own pattern."""
    z = np.zeros(256)
    outlier = z.copy(); outlier[77] = 5.0
    spiky = normal(256); spiky[200] = 40.0
    # Sub-blocks of 32 with magnitudes from 1e-3 to 1e3 in one super-block (the 6-bit scales clip).
    mags = np.concatenate([normal(32, 10.0 ** e) for e in (-3, -2, -1, 0, 1, 2, 3, 0)])
    # Half the sub-blocks zero, the others uniform in [0, 1) (mins 0 and non-zero).
    halves = np.concatenate([rng.uniform(0, 1, 32) if j % 2 else np.zeros(32) for j in range(8)])
    rows = [
        np.concatenate([normal(256), normal(256, 0.02)]),
        np.zeros(512),
        np.concatenate([outlier, spiky]),
        np.concatenate([-np.abs(normal(256)), np.abs(normal(256)) + 0.5]),
        np.concatenate([mags, halves]),
        np.concatenate([normal(256, 1e3), normal(256, 1e-6)]),
    ]
    return np.stack(rows).astype(np.float32)


def narrow_rows():
    """6 rows of 96 values: three 32-blocks per row."""
    z = np.zeros(32)
    one = z.copy(); one[7] = -3.0
    spiky = normal(32); spiky[20] = 50.0
    alt = np.where(np.arange(32) % 2 == 0, 1.0, -1.0)
    rows = [
        np.concatenate([normal(32), normal(32, 1e-3), normal(32, 1e3)]),
        np.zeros(96),
        np.concatenate([one, spiky, np.full(32, 0.25)]),
        -np.abs(normal(96)) - 0.1,
        np.abs(normal(96)) + 0.1,
        np.concatenate([normal(32, 1e-6), alt, rng.uniform(-1, 1, 32)]),
    ]
    return np.stack(rows).astype(np.float32)


def write_input(path, tensors):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(512)
    w.add_feed_forward_length(96)
    w.add_head_count(8)
    w.add_head_count_kv(8)
    w.add_rope_dimension_count(64)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all F32
    for name, data in tensors.items():
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    exe = os.environ.get("LLAMA_QUANTIZE")
    if not exe:
        sys.exit('set $LLAMA_QUANTIZE: eval "$(../shared/tools/peer-llamacpp.sh)"')
    tensors = {"blk.0.ffn_down.weight": wide_rows(), "blk.0.ffn_up.weight": narrow_rows()}
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "f32.gguf"
        write_input(src, tensors)
        for name, qtype in TARGETS:
            out = Path(tmp) / f"{name}.gguf"
            r = subprocess.run([exe, "--pure", str(src), str(out), name, "1"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"llama-quantize {name} failed:\n{r.stdout}\n{r.stderr}")
            reader = gguf.GGUFReader(str(out))
            got = {t.name: t for t in reader.tensors}
            kept = 0
            for tname, x in tensors.items():
                t = got[tname]
                if t.tensor_type != qtype:
                    continue
                raw = np.asarray(t.data, dtype=np.uint8).reshape(x.shape[0], -1)
                block_len, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
                assert raw.shape[1] == x.shape[1] // block_len * block_bytes, (name, tname, raw.shape)
                y = quants.dequantize(raw, qtype).astype(np.float32)
                assert y.shape == x.shape, (name, tname, y.shape)
                # Sanity: llama-quantize really quantized these values (error within a fraction of
                # each row's absmax).
                err = np.abs(y - x).max(axis=1)
                amax = np.abs(x).max(axis=1)
                assert np.all(err <= 0.3 * amax), (name, tname, err / np.maximum(amax, 1e-30))
                # Cross-check: for the types gguf-py can quantize, report whether its quantizer
                # gives the same bytes as llama-quantize.
                try:
                    same = np.array_equal(quants.quantize(x, qtype), raw)
                    print(f"{name:5} {tname}: gguf-py quantizer {'agrees' if same else 'DIFFERS'}")
                except NotImplementedError:
                    pass
                entries.append((int(qtype), tname, x.shape, raw.tobytes(), y))
                kept += 1
            if kept == 0:
                sys.exit(f"{name}: no tensor came out as {qtype.name}")
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "format_vectors.bin"
    with open(path, "wb") as f:
        f.write(b"QKFV" + struct.pack("<II", 1, len(entries)))
        for qtype, tname, (rows, cols), raw, y in entries:
            name = tname.encode()
            f.write(struct.pack("<IIII", qtype, rows, cols, len(name)) + name)
            f.write(raw)
            f.write(y.astype("<f4").tobytes())
    print(f"wrote {path} ({len(entries)} entries, {path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
