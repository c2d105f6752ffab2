#!/usr/bin/env python3
"""Largest relative error of the int8 attention path's f16 `2^y` (`exp2_h` in
src/arch/aarch64/attention_i8.rs) over every f16 `y` in [-14.5, 0], emulating each f16 operation
with numpy (one rounding per instruction; an FMLA rounds once). Prints the error and the
coefficients' f16 bits. docs/KERNELS.md ("Integer attention (aarch64)") uses the result."""
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("needs numpy: python3 -m pip install numpy")

C1, C2, C3 = (float(np.float16(c)) for c in (0.693359375, 0.2423095703125, 0.055023193359375))


def r16(x):
    return float(np.float16(x))  # float64 -> f16, round to nearest even


def exp2_h(y):
    n = float(np.rint(y))  # FRINTN (ties to even)
    r = y - n  # FSUB, exact
    if n + 15 <= 0:  # FADD 15, FCVTZU #10 saturates at 0
        return 0.0
    e = 2.0**n
    r2 = r16(r * r)  # FMUL
    t = r16(C2 + r * C3)  # MOV C2, FMLA
    u = r16(r * C1)  # FMUL
    q = r16(u + r2 * t)  # FMLA
    return r16(e + e * q)  # FMLA


# Every f16 in [-14.5, 0]: the bit patterns of -0.0 up to -14.5.
ys = np.arange(0x8000, 0xCB41, dtype=np.uint16).view(np.float16).astype(np.float64).tolist()
worst = max(abs(exp2_h(y) - 2.0**y) / 2.0**y for y in ys)
bits = [hex(int(np.array([c], dtype=np.float16).view(np.uint16)[0])) for c in (C1, C2, C3)]
print(f"f16 inputs {len(ys)}, max relative error {worst:.3e}, coefficients {bits}")
