/* The frame shared by the SMMLA tile kernels of Q5_0 and Q8_0 (q5_0_gemm_i8mm.S,
 * q8_0_gemm_i8mm.S) and the SDOT one of Q5_0 (q5_0_gemm_dotprod.S) on the Q4_0 argument block
 * (`ARG_*` in qkern_asm.h): argument loading, the loops over column tiles and K blocks, the stores
 * of row pairs and the GEMV loop. Each file supplies `setup` (constants, once per call),
 * `load_weights` (one tile block into v0-v7 and the weight scales), a per-row-pair macro
 * `pair p, fa, fb` (accumulates row pair p into v\fa, v\fb), optionally a store macro of the
 * same shape (default mt_store, the SMMLA result order) and, for the GEMV, `gemv_block` (one tile
 * block into v16).
 *
 * Register use of the frame: v8-v23 float accumulators (pair p: v(8+2p) columns 0-1, v(9+2p)
 * columns 2-3 under SMMLA; rows 2p, 2p+1 under SDOT; the GEMV: v16), v24 the tile's bias when
 * storing, v28-v29 store temporaries.
 * x1 weights, x2/x3 activation values/scales of block 0, x4 activation block stride, x5 kb,
 * x6 tiles left, x7 output, x8 ldo, x9 bias, x10 bias step, x11 zeros, x12/x13 activation
 * values/scales of the current block, x14 blocks left, x15 free in the loop (rows to store
 * after it), x16 store pointer. */
#ifndef QKERN_MMLA_TILE_H
#define QKERN_MMLA_TILE_H

.if ARG_A != ARG_W + 8 || ARG_ASTRIDE != ARG_AS + 8 || ARG_NTILES != ARG_KB + 8
.error "mmla_tile.h: an ldp field pair is not adjacent"
.endif
.if ARG_LDO != ARG_OUT + 8 || ARG_BIASINC != ARG_BIAS + 8
.error "mmla_tile.h: an ldp field pair is not adjacent"
.endif

.macro mt_load_args
    ldp     x1, x2, [x0, #ARG_W]
    ldp     x3, x4, [x0, #ARG_AS]
    ldp     x5, x6, [x0, #ARG_KB]
    ldp     x7, x8, [x0, #ARG_OUT]
    ldp     x9, x10, [x0, #ARG_BIAS]
    ldr     x11, [x0, #ARG_ZEROS]
.endm

.macro mt_zero_acc p, fa, fb
    movi    v\fa\().16b, #0
    movi    v\fb\().16b, #0
.endm

/* Rows 2p, 2p+1 of the tile from v\fa ([r0c0 r0c1 r1c0 r1c1]) and v\fb (columns 2-3), plus the
 * bias in v24; stores until x15 rows are stored (then on to 3:). */
.macro mt_store p, fa, fb
    zip1    v28.2d, v\fa\().2d, v\fb\().2d
    zip2    v29.2d, v\fa\().2d, v\fb\().2d
    fadd    v28.4s, v28.4s, v24.4s
    fadd    v29.4s, v29.4s, v24.4s
    str     q28, [x16]
    subs    x15, x15, #1
    b.eq    3f
    add     x16, x16, x8
    str     q29, [x16]
    subs    x15, x15, #1
    b.eq    3f
    add     x16, x16, x8
.endm

/* void name(const KernelArgs *): rows 2*np (np row pairs) x 4*ntiles columns, of which the
 * first ARG_NROWS rows are stored; tile blocks of \bytes bytes; \store stores one row pair
 * (the tile's bias in v24). */
.macro mt_tile_kernel name, np, setup, load_weights, pair, bytes, store=mt_store
function \name
    save_d8_d15
    mt_load_args
    \setup
2:
    for_pairs \np, mt_zero_acc
    mov     x12, x2
    mov     x13, x3
    mov     x14, x5
1:
    \load_weights
    for_pairs \np, \pair
    add     x1, x1, #\bytes
    add     x12, x12, x4
    add     x13, x13, x4
    subs    x14, x14, #1
    b.ne    1b

    ldr     q24, [x9]
    mov     x16, x7
    ldr     x15, [x0, #ARG_NROWS]
    for_pairs \np, \store
3:
    add     x7, x7, #16
    add     x9, x9, x10
    subs    x6, x6, #1
    b.ne    2b
    restore_d8_d15
    ret
endfunc \name
.endm

/* void name(const KernelArgs *): one row x 4*ntiles columns; \block accumulates one tile block
 * into v16 without touching v8-v15 (so nothing is saved). */
.macro mt_gemv_kernel name, setup, block, bytes
function \name
    mt_load_args
    \setup
2:
    movi    v16.16b, #0
    mov     x12, x2
    mov     x13, x3
    mov     x14, x5
1:
    \block
    add     x1, x1, #\bytes
    add     x12, x12, x4
    add     x13, x13, x4
    subs    x14, x14, #1
    b.ne    1b

    ldr     q24, [x9]
    fadd    v16.4s, v16.4s, v24.4s
    str     q16, [x7]
    add     x7, x7, #16
    add     x9, x9, x10
    subs    x6, x6, #1
    b.ne    2b
    ret
endfunc \name
.endm

#endif
