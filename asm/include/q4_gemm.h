/* The frame shared by the Q4_0 tile kernels (q4_gemm_i8mm.S, q4_gemm_dotprod.S): argument
 * loading, the loops over column tiles and K blocks, the stores of row pairs and the GEMV loop.
 * Each file supplies what differs: `load_weights` (one block of 4 columns into v0-v7 and the
 * weight scales into v31), a per-row-pair macro `pair p, fa, fb` (accumulates row pair p into
 * v\fa, v\fb) and a per-row-pair store macro. Register use is documented in each file. */
#ifndef QKERN_Q4_GEMM_H
#define QKERN_Q4_GEMM_H

/* load_args loads field pairs with one ldp: (W, A), (AS, ASTRIDE), (KB, NTILES), (OUT, LDO),
 * (BIAS, BIASINC). */
.if ARG_A != ARG_W + 8 || ARG_ASTRIDE != ARG_AS + 8 || ARG_NTILES != ARG_KB + 8
.error "q4_gemm.h: an ldp field pair is not adjacent"
.endif
.if ARG_LDO != ARG_OUT + 8 || ARG_BIASINC != ARG_BIAS + 8
.error "q4_gemm.h: an ldp field pair is not adjacent"
.endif

.macro load_args
    ldp     x1, x2, [x0, #ARG_W]
    ldp     x3, x4, [x0, #ARG_AS]
    ldp     x5, x6, [x0, #ARG_KB]
    ldp     x7, x8, [x0, #ARG_OUT]
    ldp     x9, x10, [x0, #ARG_BIAS]
    ldr     x11, [x0, #ARG_ZEROS]
    movi    v30.16b, #0xF0
.endm

.macro zero_acc p, fa, fb
    movi    v\fa\().16b, #0
    movi    v\fb\().16b, #0
.endm

/* Stores q25 at x16 and q26 at x16 + ldo until x15 rows are stored (then on to 3:); x16
 * advances two rows. */
.macro store_row_pair
    str     q25, [x16]
    subs    x15, x15, #1
    b.eq    3f
    add     x16, x16, x8
    str     q26, [x16]
    subs    x15, x15, #1
    b.eq    3f
    add     x16, x16, x8
.endm

/* Steps the weight and activation pointers to the next block of 32 and loops to 1: while
 * blocks are left (x14). */
.macro next_block
    add     x1, x1, #72
    add     x12, x12, x4
    add     x13, x13, x4
    subs    x14, x14, #1
    b.ne    1b
.endm

/* Starts one column tile: the activation pointers and block count of block 0. */
.macro start_tile
    mov     x12, x2
    mov     x13, x3
    mov     x14, x5
.endm

/* Steps the output and bias to the next column tile and loops to 2: while tiles are left. */
.macro next_tile
    add     x7, x7, #16
    add     x9, x9, x10
    subs    x6, x6, #1
    b.ne    2b
.endm

/* void name(const KernelArgs *): rows 2*np (np row pairs) x 4*ntiles columns, of which the first
 * ARG_NROWS rows are stored; \pair accumulates one row pair and block, \store stores one pair
 * (the bias of the tile is in v24). */
.macro q4_tile_kernel name, np, pair, store
function \name
    save_d8_d15
    load_args
2:
    for_pairs \np, zero_acc
    start_tile
1:
    load_weights
    for_pairs \np, \pair
    next_block

    ldr     q24, [x9]
    mov     x16, x7
    ldr     x15, [x0, #ARG_NROWS]
    for_pairs \np, \store
3:
    next_tile
    restore_d8_d15
    ret
endfunc \name
.endm

/* void name(const KernelArgs *): one row x 4*ntiles columns; \block accumulates one block of 4
 * columns into v16. */
.macro q4_gemv_kernel name, block
function \name
    load_args
2:
    movi    v16.16b, #0
    start_tile
1:
    \block
    next_block

    ldr     q24, [x9]
    fadd    v16.4s, v16.4s, v24.4s
    str     q16, [x7]
    next_tile
    ret
endfunc \name
.endm

#endif
