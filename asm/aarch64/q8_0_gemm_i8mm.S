// Q8_0 x int8 matmul micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// CARD
#include "qkern_asm.h"
#include "q8_0_gemm.h"
#include "mmla_tile.h"

.if ARGQ8_TILE != ARGQ8_SCALES + 16 || ARGQ8_SCALES != 128
.error "q8_0_gemm.h: unexpected tile block layout"
.endif

// Register use (besides the frame's, mmla_tile.h): v0-v7 weight operands (v0-v3: columns 0-1,
// K 0-7 .. 24-31; v4-v7: columns 2-3), v24-v25 activations (then the pair's activation scales),
// v28-v29 the int32 block sums, v30 / v31 weight scales [w0 w1 w0 w1] / [w2 w3 w2 w3].

.macro q8_setup
.endm

// One tile block: 8 operands as stored, the f32 scales (columns 0-1, 2-3) each twice by ld1r.
.macro q8_load_weights
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    add     x15, x1, #ARGQ8_SCALES
    ld1r    {v30.2d}, [x15], #8
    ld1r    {v31.2d}, [x15]
.endm

// One row pair p of the current block: 8 smmla, then y += isum * w * a.
.macro q8_pair p, fa, fb
    ldp     q24, q25, [x12, #(\p * 64)]
    ldp     q28, q29, [x11]
    smmla   v28.4s, v24.16b, v0.16b
    smmla   v29.4s, v24.16b, v4.16b
    smmla   v28.4s, v25.16b, v1.16b
    smmla   v29.4s, v25.16b, v5.16b
    ldp     q24, q25, [x12, #(\p * 64 + 32)]
    smmla   v28.4s, v24.16b, v2.16b
    smmla   v29.4s, v24.16b, v6.16b
    smmla   v28.4s, v25.16b, v3.16b
    smmla   v29.4s, v25.16b, v7.16b
    ldr     q24, [x13, #(\p * 16)]
    scvtf   v28.4s, v28.4s
    scvtf   v29.4s, v29.4s
    fmul    v28.4s, v28.4s, v30.4s
    fmul    v29.4s, v29.4s, v31.4s
    fmla    v\fa\().4s, v28.4s, v24.4s
    fmla    v\fb\().4s, v29.4s, v24.4s
.endm

.macro q8_kernel np
mt_tile_kernel qkern_q8_0_mmla_p\np\()_i8mm, \np, q8_setup, q8_load_weights, q8_pair, ARGQ8_TILE
.endm

q8_kernel 8
q8_kernel 7
q8_kernel 6
q8_kernel 5
q8_kernel 4
q8_kernel 3
q8_kernel 2
q8_kernel 1

// One row (the pair holds it twice: [x: 8 bytes][x: 8 bytes]): vector SDOT against
// [col c: 8][col c+1: 8] gives [c: K 0-3, c: K 4-7, c+1: K 0-3, c+1: K 4-7]; addp folds them.
// v17-v20 activations, v21 activation scale, v22-v23 int32 sums, v30 weight scales.
.macro q8_gemv_block
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldr     q30, [x1, #ARGQ8_SCALES]
    ldp     q17, q18, [x12]
    ldp     q19, q20, [x12, #32]
    ldr     s21, [x13]
    ldp     q22, q23, [x11]
    sdot    v22.4s, v0.16b, v17.16b
    sdot    v23.4s, v4.16b, v17.16b
    sdot    v22.4s, v1.16b, v18.16b
    sdot    v23.4s, v5.16b, v18.16b
    sdot    v22.4s, v2.16b, v19.16b
    sdot    v23.4s, v6.16b, v19.16b
    sdot    v22.4s, v3.16b, v20.16b
    sdot    v23.4s, v7.16b, v20.16b
    addp    v22.4s, v22.4s, v23.4s
    scvtf   v22.4s, v22.4s
    fmul    v22.4s, v22.4s, v30.4s
    fmla    v16.4s, v22.4s, v21.s[0]
.endm

mt_gemv_kernel qkern_q8_0_mmla_gemv_i8mm, q8_setup, q8_gemv_block, ARGQ8_TILE
