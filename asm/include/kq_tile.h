/* The frame shared by the K-quant micro-kernels on the KArgs block (q4k_gemm.h):
 * q4k_gemm_dotprod.S, q5k_gemm_dotprod.S, q4k_gemm_i8mm.S, q5k_gemm_i8mm.S, q6k_gemm_i8mm.S.
 * Each kernel keeps its loop in its own file (labels 2: tile, 1: super-block, 4: sub-block); these
 * macros are the pieces that are the same logic in all of them: entry and exit, the loop
 * pointers and counters, the float step at the end of a super-block, the f32 tile stores, and the
 * Q4_K/Q5_K mins arithmetic that only depends on the activation layout.
 *
 * Registers of the frame (every kernel): x0 the KArgs block, x1 weights, x2/x3 activation
 * values/tail of super-block 0, x4 sub-block stride, x5 super-block stride, x6 kb, x7 tiles left,
 * x8 output, x9 ldo, x10 rows to store, x12 activation values of the sub-block, x13 tail of the
 * super-block, x14 super-blocks left, x15 sub-scale pointer, x16 sub-blocks left in the loop,
 * store pointer after it, x17 activation values of the super-block.
 * Stack: [sp, 0..32) zeros (loaded to zero registers); the pair kernels also
 * [sp, 32 + 32p) the float accumulators of row pair p.
 * Pair kernels: v8-v23 int32 super-block sums (pair p: v(8+2p), v(9+2p), as for_pairs passes them).
 * GEMVs: v16 float sums, v17 int32 super-block sums, v18 mins sums. */
#ifndef QKERN_KQ_TILE_H
#define QKERN_KQ_TILE_H

#include "qkern_asm.h"
#include "q4k_gemm.h"

.if ARGK_A != ARGK_W + 8 || ARGK_SUBSTRIDE != ARGK_AT + 8 || ARGK_KB != ARGK_SBSTRIDE + 8
.error "q4k_gemm.h: an ldp field pair is not adjacent"
.endif
.if ARGK_OUT != ARGK_NTILES + 8 || ARGK_NROWS != ARGK_LDO + 8
.error "q4k_gemm.h: an ldp field pair is not adjacent"
.endif

/* --- Entry and exit --- */

/* The 32 zero bytes at sp, then x1-x8 from the KArgs block at x0. */
.macro kq_zeros_args
    stp     xzr, xzr, [sp]
    stp     xzr, xzr, [sp, #16]
    ldp     x1, x2, [x0, #ARGK_W]
    ldp     x3, x4, [x0, #ARGK_AT]
    ldp     x5, x6, [x0, #ARGK_SBSTRIDE]
    ldp     x7, x8, [x0, #ARGK_NTILES]
.endm

/* Pair kernels: d8-d15 saved, 288 bytes of stack (zeros, 8 pairs' float accumulators), x1-x8
 * loaded. kq_pairs_leave undoes it and returns; both keep the CFI exact. */
.macro kq_pairs_enter
    save_d8_d15
    sub     sp, sp, #288
    .cfi_def_cfa_offset 352
    kq_zeros_args
.endm

.macro kq_pairs_leave
    add     sp, sp, #288
    .cfi_def_cfa_offset 64
    restore_d8_d15
    ret
.endm

/* GEMVs: 32 bytes of stack (zeros), x1-x8 loaded; v8-v15 untouched, so nothing is saved. */
.macro kq_gemv_enter
    sub     sp, sp, #32
    .cfi_def_cfa_offset 32
    kq_zeros_args
.endm

.macro kq_gemv_leave
    add     sp, sp, #32
    .cfi_def_cfa_offset 0
    ret
.endm

/* --- Loop pointers and counters --- */

.macro kq_zero_sums p, fa, fb
    ldp     q\fa, q\fb, [sp]
.endm

.macro kq_zero_facc p, fa, fb
    stp     q24, q25, [sp, #(32 + \p * 32)]
.endm

/* Tile start of the pair kernels: the int32 sums of the \np pairs and their float accumulators
 * zeroed (v24, v25 clobbered). */
.macro kq_zero_pairs np
    for_pairs \np, kq_zero_sums
    ldp     q24, q25, [sp]
    for_pairs \np, kq_zero_facc
.endm

/* Tile start: x17, x13 to the activation values and tail of super-block 0, x14 = kb. */
.macro kq_first_sb
    mov     x17, x2
    mov     x13, x3
    mov     x14, x6
.endm

/* Super-block start: x12 to its first sub-block's activation values, x15 to the tile
 * super-block's sub-scales (x1 + \sc), x16 = 8 sub-blocks (sub-block pairs for Q6_K). */
.macro kq_sb_start sc
    mov     x12, x17
    add     x15, x1, #\sc
    mov     x16, #8
.endm

/* Sub-block end: x12 to the next sub-block's activation values; loops to \loop while x16 > 0. */
.macro kq_next_sub loop
    add     x12, x12, x4
    subs    x16, x16, #1
    b.ne    \loop
.endm

/* Super-block end: x17, x13 to the next super-block's activations; loops to \loop while x14 > 0. */
.macro kq_next_sb loop
    add     x17, x17, x5
    add     x13, x13, x5
    subs    x14, x14, #1
    b.ne    \loop
.endm

/* Tile end: x8 to the next tile's 4 output columns; loops to \loop while x7 > 0. */
.macro kq_next_tile loop
    add     x8, x8, #16
    subs    x7, x7, #1
    b.ne    \loop
.endm

/* --- Float step and f32 stores --- */

/* The float step of row pair p at the end of a super-block: the int32 sums v\fa, v\fb to f32
 * (\fbits fraction bits undo a weight pre-scale; 0: none), times the weight scales d (\d0 for v\fa,
 * \d1 for v\fb), minus dmin (\m0, \m1) times the mins sums v26, v27 when \m0 is given, times the
 * activation scales (\a0, \a1), added to the pair's float accumulators on the stack; the sums
 * re-zeroed. Operands are full register operands (v2.4s, v29.s[0]). Clobbers v24, v25 (and v26,
 * v27 with mins). */
.macro kq_float_step p, fa, fb, fbits, d0, d1, a0, a1, m0, m1
.if \fbits
    scvtf   v\fa\().4s, v\fa\().4s, #\fbits
    scvtf   v\fb\().4s, v\fb\().4s, #\fbits
.else
    scvtf   v\fa\().4s, v\fa\().4s
    scvtf   v\fb\().4s, v\fb\().4s
.endif
.ifnb \m0
    scvtf   v26.4s, v26.4s
    scvtf   v27.4s, v27.4s
.endif
    fmul    v\fa\().4s, v\fa\().4s, \d0
    fmul    v\fb\().4s, v\fb\().4s, \d1
.ifnb \m0
    fmls    v\fa\().4s, v26.4s, \m0
    fmls    v\fb\().4s, v27.4s, \m1
.endif
    ldp     q24, q25, [sp, #(32 + \p * 32)]
    fmla    v24.4s, v\fa\().4s, \a0
    fmla    v25.4s, v\fb\().4s, \a1
    stp     q24, q25, [sp, #(32 + \p * 32)]
    ldp     q\fa, q\fb, [sp]
.endm

/* The GEMV's float step: v17 int32 sums to f32 (\fbits as kq_float_step), times d (\d), minus
 * dmin (\m) times the mins sums v18 when \m is given, times the activation scale \a, into v16;
 * v17 re-zeroed. Clobbers v18 with mins. */
.macro kq_gemv_float_step fbits, d, a, m
.if \fbits
    scvtf   v17.4s, v17.4s, #\fbits
.else
    scvtf   v17.4s, v17.4s
.endif
.ifnb \m
    scvtf   v18.4s, v18.4s
.endif
    fmul    v17.4s, v17.4s, \d
.ifnb \m
    fmls    v17.4s, v18.4s, \m
.endif
    fmla    v16.4s, v17.4s, \a
    ldr     q17, [sp]
.endm

/* Two f32 rows v\ra, v\rb to x16, x16 + ldo (x9), x16 left at the next row; stops after x10
 * rows (on to 3:). */
.macro kq_store_rows ra, rb
    str     q\ra, [x16]
    subs    x10, x10, #1
    b.eq    3f
    add     x16, x16, x9
    str     q\rb, [x16]
    subs    x10, x10, #1
    b.eq    3f
    add     x16, x16, x9
.endm

/* Rows 2p, 2p+1 from pair p's float accumulators (v24, v25), by their lane order:
 * kq_store_plain: rows already ([c0 c1 c2 c3] each: SDOT);
 * kq_store_zip: SMMLA order ([r0c0 r0c1 r1c0 r1c1], columns 2-3 likewise; rows in v26, v27);
 * kq_store_uzp: USMMLA order ([c0r0 c0r1 c1r0 c1r1], columns 2-3 likewise; rows in v26, v27). */
.macro kq_store_plain p, fa, fb
    ldp     q24, q25, [sp, #(32 + \p * 32)]
    kq_store_rows 24, 25
.endm

.macro kq_store_zip p, fa, fb
    ldp     q24, q25, [sp, #(32 + \p * 32)]
    zip1    v26.2d, v24.2d, v25.2d
    zip2    v27.2d, v24.2d, v25.2d
    kq_store_rows 26, 27
.endm

.macro kq_store_uzp p, fa, fb
    ldp     q24, q25, [sp, #(32 + \p * 32)]
    uzp1    v26.4s, v24.4s, v25.4s
    uzp2    v27.4s, v24.4s, v25.4s
    kq_store_rows 26, 27
.endm

/* Tile end of the pair kernels: the first ARGK_NROWS rows of the \np pairs to the output (x8,
 * row stride ARGK_LDO) through kq_store_\order (plain, zip or uzp). Sets x9, x10, x16; clobbers
 * v24-v27. Defines the label 3: after the stores. */
.macro kq_store_pairs np, order
    mov     x16, x8
    ldp     x9, x10, [x0, #ARGK_LDO]
    for_pairs \np, kq_store_\order
3:
.endm

/* --- Q4_K / Q5_K mins: sub-block sums asum_j = 64 h_j + l_j (H, L in the activation tail) --- */

/* After the 8 sub-blocks, x15 at the mins (32 bytes), then d, dmin (f16 [4] each): v0, v1 the
 * mins, v2 d, v3 dmin as f32 [c0 c1 c2 c3]; x1 to the next tile super-block. */
.macro kq_load_mins_d
    ldp     q0, q1, [x15]
    ldr     q2, [x15, #32]
    add     x1, x15, #48
    fcvtl2  v3.4s, v2.8h
    fcvtl   v2.4s, v2.4h
.endm

/* The SDOT kernels (q4k_gemm_dotprod.S, q5k_gemm_dotprod.S): the by-element operands W_0..W_7 of
 * a sub-block in v0-v7, the sub-scales in v28 [s0 s1 s2 s3] (int32). An activation chunk c (K
 * 8c..8c+7) holds [row 2p: 8 bytes][row 2p+1: 8 bytes], so lanes 0, 1 meet W_2c, W_2c+1 for the
 * first row, lanes 2, 3 for the second.
 * kq_sdot_sub_pair: one row pair of one sub-block, 16 sdot into the zeroed partials v26, v27,
 * times the sub-scales into the sums. Clobbers v24-v27. */
.macro kq_sdot_sub_pair p, fa, fb
    ldp     q26, q27, [sp]
    ldp     q24, q25, [x12, #(\p * 64)]
    sdot    v26.4s, v0.16b, v24.4b[0]
    sdot    v27.4s, v0.16b, v24.4b[2]
    sdot    v26.4s, v1.16b, v24.4b[1]
    sdot    v27.4s, v1.16b, v24.4b[3]
    sdot    v26.4s, v2.16b, v25.4b[0]
    sdot    v27.4s, v2.16b, v25.4b[2]
    sdot    v26.4s, v3.16b, v25.4b[1]
    sdot    v27.4s, v3.16b, v25.4b[3]
    ldp     q24, q25, [x12, #(\p * 64 + 32)]
    sdot    v26.4s, v4.16b, v24.4b[0]
    sdot    v27.4s, v4.16b, v24.4b[2]
    sdot    v26.4s, v5.16b, v24.4b[1]
    sdot    v27.4s, v5.16b, v24.4b[3]
    sdot    v26.4s, v6.16b, v25.4b[0]
    sdot    v27.4s, v6.16b, v25.4b[2]
    sdot    v26.4s, v7.16b, v25.4b[1]
    sdot    v27.4s, v7.16b, v25.4b[3]
    mla     v\fa\().4s, v26.4s, v28.4s
    mla     v\fb\().4s, v27.4s, v28.4s
.endm

/* The SDOT kernels, one row pair at the end of a super-block (after kq_load_mins_d): the mins
 * (H, L by element against v0 = [col c: m0..m3], v1 = [col c: m4..m7]) into v26, v27, then the
 * float step with the pair's activation scales [d0, d0, d1, d1] in v29. Clobbers v24-v27, v29. */
.macro kq_sdot_sb_pair p, fa, fb
    ldp     q24, q25, [x13, #(\p * 48)]
    ldp     q26, q27, [sp]
    sdot    v26.4s, v0.16b, v24.4b[0]
    sdot    v27.4s, v0.16b, v24.4b[2]
    sdot    v26.4s, v1.16b, v24.4b[1]
    sdot    v27.4s, v1.16b, v24.4b[3]
    ldr     q29, [x13, #(\p * 48 + 32)]
    shl     v26.4s, v26.4s, #6
    shl     v27.4s, v27.4s, #6
    sdot    v26.4s, v0.16b, v25.4b[0]
    sdot    v27.4s, v0.16b, v25.4b[2]
    sdot    v26.4s, v1.16b, v25.4b[1]
    sdot    v27.4s, v1.16b, v25.4b[3]
    kq_float_step \p, \fa, \fb, 0, v2.4s, v2.4s, v29.s[0], v29.s[2], v3.4s, v3.4s
.endm

/* The SDOT GEMVs, one sub-block: the first row of the pair (lanes 0, 1), 8 sdot into the zeroed
 * partial v18, times the sub-scales into v17. Clobbers v18, v24-v27. */
.macro kq_sdot_gemv_sub
    ldp     q24, q25, [x12]
    ldp     q26, q27, [x12, #32]
    ldr     q18, [sp]
    sdot    v18.4s, v0.16b, v24.4b[0]
    sdot    v18.4s, v1.16b, v24.4b[1]
    sdot    v18.4s, v2.16b, v25.4b[0]
    sdot    v18.4s, v3.16b, v25.4b[1]
    sdot    v18.4s, v4.16b, v26.4b[0]
    sdot    v18.4s, v5.16b, v26.4b[1]
    sdot    v18.4s, v6.16b, v27.4b[0]
    sdot    v18.4s, v7.16b, v27.4b[1]
    mla     v17.4s, v18.4s, v28.4s
.endm

/* The SDOT GEMVs at the end of a super-block (after kq_load_mins_d): the mins of the row into
 * v18, its activation scale in v26 lane 0. Clobbers v24-v26. */
.macro kq_sdot_gemv_mins
    ldp     q24, q25, [x13]
    ldr     s26, [x13, #32]
    ldr     q18, [sp]
    sdot    v18.4s, v0.16b, v24.4b[0]
    sdot    v18.4s, v1.16b, v24.4b[1]
    shl     v18.4s, v18.4s, #6
    sdot    v18.4s, v0.16b, v25.4b[0]
    sdot    v18.4s, v1.16b, v25.4b[1]
.endm

/* The SMMLA/USMMLA kernels' GEMVs (q4k_gemm_i8mm.S, q5k_gemm_i8mm.S) at the end of a super-block
 * (after kq_load_mins_d, the mins in the SMMLA layout [col c: m0..m7][col c+1: m0..m7]): the pair
 * holds its row twice, so vector SDOT of H, L gives [c: 0-3, c: 4-7, c+1: 0-3, c+1: 4-7] and addp
 * folds v0's and v1's into the mins [c0 c1 c2 c3] in v18; the activation scale in v26 lane 0.
 * Clobbers v18, v19, v24-v26. */
.macro kq_i8mm_gemv_mins
    ldp     q24, q25, [x13]
    ldr     s26, [x13, #32]
    ldp     q18, q19, [sp]
    sdot    v18.4s, v0.16b, v24.16b
    sdot    v19.4s, v1.16b, v24.16b
    shl     v18.4s, v18.4s, #6
    shl     v19.4s, v19.4s, #6
    sdot    v18.4s, v0.16b, v25.16b
    sdot    v19.4s, v1.16b, v25.16b
    addp    v18.4s, v18.4s, v19.4s
.endm

#endif
