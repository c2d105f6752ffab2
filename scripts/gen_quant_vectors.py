#!/usr/bin/env python3
"""Writes tests/data/quant_vectors.bin: f32 inputs and the Q4_0 and Q8_0 bytes that the `gguf`
package's numpy quantizers (an implementation independent of qkern, bit-exact with ggml's reference
quantizer on x86_64) produce for them. Run once by hand; CI only reads the committed file.

    pip install gguf==0.19.0 numpy==2.4.6 && python3 scripts/gen_quant_vectors.py

Format (little-endian): b"QKQV", u32 version = 1, u32 n_blocks,
then f32[n_blocks * 32] inputs, u8[n_blocks * 18] Q4_0 blocks, u8[n_blocks * 34] Q8_0 blocks.
"""
import struct
import warnings
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

warnings.filterwarnings("ignore")  # overflow/invalid casts are part of the edge cases
rng = np.random.default_rng(20261126)
blocks = []


def add(x):
    x = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    blocks.extend(x)


# Ordinary data at several magnitudes.
for scale in [1e-3, 0.02, 1.0, 37.0, 1e4]:
    add(rng.standard_normal((8, 32)) * scale)
add(rng.uniform(-1, 1, (8, 32)))
# All zeros; a single non-zero; negative and positive extremes of equal magnitude (first wins).
add(np.zeros(32))
one = np.zeros(32); one[7] = -3.0; add(one)
tie = rng.uniform(-1, 1, 32); tie[3] = 2.0; tie[20] = -2.0; add(tie)
tie = rng.uniform(-1, 1, 32); tie[3] = -2.0; tie[20] = 2.0; add(tie)
# Q4_0 truncation ties: max = -8 gives d = 1, so x + 8.5 is an exact integer for x = k + 0.5.
t = np.arange(32, dtype=np.float32) / 2 - 8.0; t[0] = -8.0; add(t)
t = -t; add(t)
# Q8_0 rounding ties: absmax 127 gives d = 1, so x = k + 0.5 rounds half away from zero.
t = np.arange(32, dtype=np.float32) - 15.5; t[0] = 127.0; add(t)
t = -t; add(t)
# Huge values: d overflows f16 (stored as inf) or stays finite near the f16 limit.
add(rng.standard_normal(32) * 1e30)
add(np.full(32, 3e38, dtype=np.float32) * np.sign(rng.standard_normal(32)))
add(rng.standard_normal(32) * 6e4)
# Scales that are f16 subnormals (|max| / 8 < 6.1e-5) and f16 underflow to zero.
add(rng.standard_normal(32) * 1e-5)
add(rng.standard_normal(32) * 1e-8)
# f32 subnormal inputs: 1/d overflows.
add(rng.standard_normal(32) * 1e-40)
add(rng.standard_normal(32) * 1e-38)
# Constant blocks and sign patterns.
add(np.full(32, 0.1)); add(np.full(32, -0.1))
add(np.where(np.arange(32) % 2 == 0, 1.0, -1.0))

x = np.stack(blocks).astype(np.float32)
q4 = quants.quantize(x, T.Q4_0)
q8 = quants.quantize(x, T.Q8_0)
assert q4.shape == (len(x), 18) and q8.shape == (len(x), 34)
out = Path(__file__).resolve().parent.parent / "tests" / "data" / "quant_vectors.bin"
with open(out, "wb") as f:
    f.write(b"QKQV" + struct.pack("<II", 1, len(x)))
    f.write(x.astype("<f4").tobytes())
    f.write(q4.tobytes())
    f.write(q8.tobytes())
print(f"wrote {out} ({len(x)} blocks)")
