// int32 qkern_dot_i8_dotprod(const int8_t *a, const int8_t *b, size_t chunks)
// Sum of a[i] * b[i] over 16 * chunks bytes. FEAT_DotProd: one sdot per 16-byte chunk.
// Per chunk: 2 loads, 1 sdot, 2 loop ops -> 16 MAC per SIMD slot.
#include "qkern_asm.h"

function qkern_dot_i8_dotprod
    movi    v4.4s, #0
    cbz     x2, LOCAL(dot_done)
LOCAL(dot_loop):
    ld1     {v0.16b}, [x0], #16
    ld1     {v1.16b}, [x1], #16
    sdot    v4.4s, v0.16b, v1.16b
    subs    x2, x2, #1
    b.ne    LOCAL(dot_loop)
LOCAL(dot_done):
    addv    s0, v4.4s
    fmov    w0, s0
    ret
endfunc qkern_dot_i8_dotprod
