// Q8_0-weight x int8-activation GEMV/small-M kernels with SDOT (FEAT_DotProd), for the NeonDot
// and NeonI8mm tiers (src/arch/aarch64/matmul_q8.rs: layout, argument block, safe wrapper).
//
// Weights (packed by matmul_q8.rs): per column tile of 4 and block of 32, 144 bytes: 8 groups of
// 16 bytes [K 4g..4g+3 of columns 0, 1, 2, 3] (g = 0..7), then the 4 column scales as f32. The
// tiles' kb blocks are contiguous, tiles one after another. Activations: plain ActBlock rows
// (36 bytes per block: f32 scale, 32 int8), row stride ARG8_AROW bytes. SDOT by element takes
// 4 activation bytes of one row against 16 weight bytes: lane c of the int32 sum is column c,
// so the result needs no horizontal reduction.
//
// Per block of 32 and tile of 4 columns (128 MAC per row), instructions:
//   weights: 4 ldp q + 1 ldr q (scales) + 1 add = 6; loop: 2 (subs, b.ne);
//   per row: 2 loads (ldr s and ldp q, post-index), 1 movi (zero), 8 sdot, 1 fmul (weight
//   scales x activation scale by element), 1 scvtf, 1 fmla = 14.
//   r1: 6 + 14 + 2 = 22 insn / 128 MAC = 172 insn per 1000 MAC (12 SIMD ops on 2 NEON pipes:
//   ~6 cycles per block, ~21 MAC/cycle); r4: 6 + 56 + 2 = 64 insn / 512 MAC = 125 per 1000 MAC
//   (~24 cycles SIMD, ~21 MAC/cycle, weights loaded once for 4 rows). Decode (r1) streams 36
//   weight bytes per block and column and is bound by memory bandwidth, not the SIMD pipes.
// Integer block sums are exact (|sum| <= 32 * 128 * 127 < 2^31); the f32 combination rounds.
#include "qkern_asm.h"
#include "q8_gemv.h" // the argument block: offsets ARG8_*

// Registers: v0-v7 weight groups, v20 weight scales, v16-v19 f32 accumulators of rows 0-3,
// v21-v25 / v26-v30 per-row temporaries (alternating rows): scale, 2 x 16 activation bytes,
// int32 sum, scale product. Only v16-v31 and v0-v7: no callee-saved registers are touched.
// x1 weights (advances), x2 row 0 block 0, x3 row stride, x4 kb, x5 tiles left, x6 output,
// x7 ldo, x9-x12 row pointers, x13 blocks left, x14 store pointer.

.macro load_w
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldr     q20, [x1, #128]
    add     x1, x1, #144
.endm

// One row: \ptr its block pointer, \acc its f32 accumulator, \s \a0 \a1 \i \t temporaries.
.macro dot_row ptr, acc, s, a0, a1, i, t
    ldr     s\s, [\ptr], #4
    ldp     q\a0, q\a1, [\ptr], #32
    movi    v\i\().4s, #0
    sdot    v\i\().4s, v0.16b, v\a0\().4b[0]
    sdot    v\i\().4s, v1.16b, v\a0\().4b[1]
    sdot    v\i\().4s, v2.16b, v\a0\().4b[2]
    sdot    v\i\().4s, v3.16b, v\a0\().4b[3]
    sdot    v\i\().4s, v4.16b, v\a1\().4b[0]
    sdot    v\i\().4s, v5.16b, v\a1\().4b[1]
    sdot    v\i\().4s, v6.16b, v\a1\().4b[2]
    sdot    v\i\().4s, v7.16b, v\a1\().4b[3]
    fmul    v\t\().4s, v20.4s, v\s\().s[0]
    scvtf   v\i\().4s, v\i\().4s
    fmla    v\acc\().4s, v\i\().4s, v\t\().4s
.endm

// void qkern_q8_dot_r<nr>_dotprod(const Q8Args *), nr = 1..4: nr rows x 4 * ntiles columns,
// all stored (row stride ARG8_LDO), no bias.
.macro q8_kernel nr
function qkern_q8_dot_r\nr\()_dotprod
    ldp     x1, x2, [x0, #ARG8_W]
    ldp     x3, x4, [x0, #ARG8_AROW]
    ldp     x5, x6, [x0, #ARG8_NTILES]
    ldr     x7, [x0, #ARG8_LDO]
2:
    movi    v16.16b, #0
    mov     x9, x2
.if \nr > 1
    movi    v17.16b, #0
    add     x10, x9, x3
.endif
.if \nr > 2
    movi    v18.16b, #0
    add     x11, x10, x3
.endif
.if \nr > 3
    movi    v19.16b, #0
    add     x12, x11, x3
.endif
    mov     x13, x4
1:
    load_w
    dot_row x9, 16, 21, 22, 23, 24, 25
.if \nr > 1
    dot_row x10, 17, 26, 27, 28, 29, 30
.endif
.if \nr > 2
    dot_row x11, 18, 21, 22, 23, 24, 25
.endif
.if \nr > 3
    dot_row x12, 19, 26, 27, 28, 29, 30
.endif
    subs    x13, x13, #1
    b.ne    1b

    mov     x14, x6
    str     q16, [x14]
.if \nr > 1
    add     x14, x14, x7
    str     q17, [x14]
.endif
.if \nr > 2
    add     x14, x14, x7
    str     q18, [x14]
.endif
.if \nr > 3
    add     x14, x14, x7
    str     q19, [x14]
.endif
    add     x6, x6, #16
    subs    x5, x5, #1
    b.ne    2b
    ret
endfunc qkern_q8_dot_r\nr\()_dotprod
.endm

q8_kernel 1
q8_kernel 2
q8_kernel 3
q8_kernel 4
