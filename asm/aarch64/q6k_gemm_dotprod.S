// Q6_K x Q8_256 GEMM micro-kernels with SDOT (FEAT_DotProd), for the NeonDot tier.
//
// Layouts (src/arch/aarch64/q6k_dot.rs):
// * weights: the tile layout of the SMMLA kernel (q6k_gemm_i8mm.S), 904 bytes per column tile
//   of 4 and super-block (226 per column; GGUF: 210), with the SDOT operand order: per
//   sub-block of 16, operand G_g (g = 0..4) is [c0: K 4g..4g+3][c1: same][c2][c3] of
//   w = q - 32 (6-bit two's complement), stored in A, B, C as G0..G2 << 2 plus 2 bits of G3;
//   and, shl, 2 sli give all four as 4 w. Then sub-scales i16 [16][4], d f16 [4].
// * activations: the plain ActBlockK rows of the tier (d f32, qs i8 [256], bsums i16 [16];
//   292 bytes), row stride ARGD_ASTRIDE; the bsums are skipped.
//
// Arithmetic, per row and super-block, lanes [c0 c1 c2 c3]:
//   tot = sum_s sc_s * P_s                 P_s: 4 sdot by element (the row's 16 values), 1 mla
//   acc += da * (d * float(tot) / 4)       scvtf #2, fmul, fmla by element
// Rows in tiles of up to 8 (qkern_q6k_dot_r<R>_dotprod): the unpack (6 ops, 1 sxtl per
// sub-block) is shared by R rows; r1 is the GEMV.
//
// Per super-block of the 8x4 tile (r8), 8192 MAC, counted by qcount (scripts/qcount-formats.sh,
// M = 16, two r8 calls per tile):
//   per sub-block of 16: 32 sdot, 8 mla, 6 unpack, 1 sxtl; per super-block 24 float + fcvtl.
//   1143 instructions = 139.5 per 1000 MAC (the intrinsics SDOT kernel: 195.8); 337 load issues.
//   SIMD: 512 sdot + 265 other = 777 slots: 42.2 MAC/cycle (the intrinsics kernel: 25.6).
//   What binds: SIMD, 1 mla per 4 sdot (sub-blocks of 16, one int32 sub-scale multiply per row
//   and sub-block), then the unpack per 8 rows.
// Smaller tiles (insn / 1000 MAC, MAC/cycle): r4 (M = 4) 163.8, 36.8; r2 212.4, 29.4; r1 (M = 1)
// 309.6, 20.9 (the intrinsics kernel: 416.0, 12.0), 0.35 instructions per packed weight byte.
#include "qkern_asm.h"
#include "q6k_dot.h"

.if ARGD_A != ARGD_W + 8 || ARGD_KB != ARGD_ASTRIDE + 8 || ARGD_OUT != ARGD_NTILES + 8
.error "q6k_dot.h: an ldp field pair is not adjacent"
.endif

// Register use: v0-v2 A, B, C, then v3 G0, v1 G1, v2 G2, v0 G3; v4 sub-scales [s0 s1 s2 s3]
// (i32); v5 partial; v6 activations; v7 0xFC mask; v8-v15 int32 super-block sums of rows 0-7,
// v16-v23 float sums, v24/v25 da of rows 0-3 / 4-7 (lanes), v26 d [w0 w1 w2 w3].
// x1 weights, x2 super-blocks left, x3 sub-blocks left / scratch, x4 row stride, x5 activations
// (row 0, block 0), x6 kb, x7 tiles left, x8 output, x9-x16 activation pointers of rows 0-7,
// x17 sub-scale pointer. Stack: [sp, 0..16) zeros.

// for_rows R, m: m i, sum, facc, xrow, dareg, lane for rows i < R.
.macro for_rows r, m
    \m      0, 8, 16, 9, 24, 0
.if \r > 1
    \m      1, 9, 17, 10, 24, 1
.endif
.if \r > 2
    \m      2, 10, 18, 11, 24, 2
.endif
.if \r > 3
    \m      3, 11, 19, 12, 24, 3
.endif
.if \r > 4
    \m      4, 12, 20, 13, 25, 0
.endif
.if \r > 5
    \m      5, 13, 21, 14, 25, 1
.endif
.if \r > 6
    \m      6, 14, 22, 15, 25, 2
.endif
.if \r > 7
    \m      7, 15, 23, 16, 25, 3
.endif
.endm

// Tile start: the row's activation pointer (x3 runs over the rows), sums zeroed.
.macro row_init i, s, f, x, dv, l
    mov     x\x, x3
    add     x3, x3, x4
    movi    v\s\().4s, #0
    movi    v\f\().4s, #0
.endm

// Super-block start: the row's da into its lane (the pointer moves on to qs).
.macro row_da i, s, f, x, dv, l
    ld1     {v\dv\().s}[\l], [x\x], #4
.endm

// One row of one sub-block: 4 sdot into the zeroed partial, times the sub-scales.
.macro row_sub i, s, f, x, dv, l
    ldr     q6, [x\x], #16
    ldr     q5, [sp]
    sdot    v5.4s, v3.16b, v6.4b[0]
    sdot    v5.4s, v1.16b, v6.4b[1]
    sdot    v5.4s, v2.16b, v6.4b[2]
    sdot    v5.4s, v0.16b, v6.4b[3]
    mla     v\s\().4s, v5.4s, v4.4s
.endm

// Super-block end: the float step, the sum re-zeroed, the pointer past the bsums.
.macro row_sb i, s, f, x, dv, l
    scvtf   v\s\().4s, v\s\().4s, #2
    fmul    v\s\().4s, v\s\().4s, v26.4s
    fmla    v\f\().4s, v\s\().4s, v\dv\().s[\l]
    ldr     q\s, [sp]
    add     x\x, x\x, #32
.endm

// Tile end: row i to x3 (stride ldo in x17).
.macro row_store i, s, f, x, dv, l
    str     q\f, [x3]
    add     x3, x3, x17
.endm

// void qkern_q6k_dot_r<R>_dotprod(const DArgs *): rows R x 4*ntiles columns over kb
// super-blocks, stores all R rows (no bias).
.macro q6k_dot_kernel r
function qkern_q6k_dot_r\r\()_dotprod
    save_d8_d15
    sub     sp, sp, #16
    .cfi_def_cfa_offset 80
    stp     xzr, xzr, [sp]
    ldp     x1, x5, [x0, #ARGD_W]
    ldp     x4, x6, [x0, #ARGD_ASTRIDE]
    ldp     x7, x8, [x0, #ARGD_NTILES]
    movi    v7.16b, #0xFC
2:
    mov     x3, x5
    for_rows \r, row_init
    mov     x2, x6
1:
    for_rows \r, row_da
    add     x17, x1, #768
    mov     x3, #16
4:
    ldp     q0, q1, [x1], #32
    ldr     q2, [x1], #16
    ldr     d4, [x17], #8
    and     v3.16b, v0.16b, v7.16b
    shl     v0.16b, v0.16b, #2
    sli     v0.16b, v1.16b, #4
    sli     v0.16b, v2.16b, #6
    and     v1.16b, v1.16b, v7.16b
    and     v2.16b, v2.16b, v7.16b
    sxtl    v4.4s, v4.4h
    for_rows \r, row_sub
    subs    x3, x3, #1
    b.ne    4b

    ldr     d26, [x17]
    add     x1, x17, #8
    fcvtl   v26.4s, v26.4h
    for_rows \r, row_sb
    subs    x2, x2, #1
    b.ne    1b

    mov     x3, x8
    ldr     x17, [x0, #ARGD_LDO]
    for_rows \r, row_store
    add     x8, x8, #16
    subs    x7, x7, #1
    b.ne    2b
    add     sp, sp, #16
    .cfi_def_cfa_offset 64
    restore_d8_d15
    ret
endfunc qkern_q6k_dot_r\r\()_dotprod
.endm

.irp r, 8, 7, 6, 5, 4, 3, 2, 1
q6k_dot_kernel \r
.endr
