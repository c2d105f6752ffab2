// int32 qkern_dot_i8_neon(const int8_t *a, const int8_t *b, size_t chunks)
// Sum of a[i] * b[i] over 16 * chunks bytes. ARMv8.0 NEON: smull/smull2 + sadalp.
// Per 16-byte chunk: 2 loads, 4 SIMD ops, 2 loop ops -> 16 MAC in 4 SIMD slots (4 MAC/slot).
#include "qkern_asm.h"

function qkern_dot_i8_neon
    movi    v4.4s, #0
    cbz     x2, LOCAL(neon_done)
LOCAL(neon_loop):
    ld1     {v0.16b}, [x0], #16
    ld1     {v1.16b}, [x1], #16
    smull   v2.8h, v0.8b, v1.8b
    smull2  v3.8h, v0.16b, v1.16b
    sadalp  v4.4s, v2.8h
    sadalp  v4.4s, v3.8h
    subs    x2, x2, #1
    b.ne    LOCAL(neon_loop)
LOCAL(neon_done):
    addv    s0, v4.4s
    fmov    w0, s0
    ret
endfunc qkern_dot_i8_neon
