// Q6_K x Q8_256 GEMM micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts (src/arch/aarch64/q6k_mmla.rs):
// * weights, per column tile of 4 and super-block of 256, 904 bytes (226 per column; GGUF: 210):
//     [sub-block s = 0..16: A, B, C (16 bytes each)] [sc: i16 [16][4]] [d: f16 [4]]
//   Four SMMLA operands per sub-block of 16: O0 (col pair 0, K 0-7), O1 (pair 0, K 8-15), O2
//   (pair 1, K 0-7), O3 (pair 1, K 8-15), each [col 2cp: 8 bytes][col 2cp+1: 8 bytes] of
//   w = q - 32 as 6-bit two's complement (q ^ 32). Byte e: A = O0 << 2 | O3 & 3, B = O1 << 2 |
//   (O3 >> 2) & 3, C = O2 << 2 | O3 >> 4, so 6 ops give all four as 4 w (low 2 bits zero):
//     O0 = A & 0xFC, O1 = B & 0xFC, O2 = C & 0xFC, O3 = sli(sli(A << 2, B, 4), C, 6)
// * activations: the row-paired Q8_256 layout of the Q4_K SMMLA kernel (q4k_gemm_i8mm.S,
//   src/arch/aarch64/q4k_mmla.rs), unchanged: its sub-block j of 32 (4 chunks of 8 per pair) is
//   Q6_K sub-blocks 2j (chunks 0, 1) and 2j + 1 (chunks 2, 3); of the pair's 48-byte tail only
//   the scales [d0, d0, d1, d1] (offset 32) are read. No activation sums: the signed weights
//   need no offset term.
//
// Arithmetic, per row pair and super-block, in SMMLA order [r0c0 r0c1 r1c0 r1c1]:
//   tot = sum_s sc_s * P_s                 P_s: 4 smmla (2 chunks x 2 column pairs) of 4 w, 2 mla
//   acc += da * (d * float(tot) / 4)       2 scvtf #2 (2 fraction bits: the / 4), 2 fmul, 2 fmla
//   |tot| <= 16 * 128 * (16 * 128 * 128) = 2^29: int32 is exact.
// Float accumulators on the stack as in the Q4_K kernel; the 32 vector registers hold 4 weight
// operands, 2 sub-scale vectors, 16 int32 super-block sums, activations, partials, the mask.
//
// Per super-block of the 16x4 tile (qkern_q6k_mmla_p8_i8mm), 16384 MAC, counted by qcount
// (scripts/qcount-formats.sh, M = 16):
//   per sub-block of 16: 32 smmla, 16 mla, 6 unpack (3 and, shl, 2 sli), 2 sxtl (sub-scales);
//   per super-block: 16 scvtf, 16 fmul, 16 fmla, 2 fcvtl (float step).
//   1340 instructions = 81.8 per 1000 MAC (the SDOT kernel: 195.8); 634 load issues.
//   SIMD: 512 smmla + 434 other = 946 slots at cost 1: 69.3 MAC/cycle; 1458 at cost 2: 44.9.
//   SIMD bound at both costs (loads 12.9 c per 1000 MAC against 14.4 c SIMD at cost 1).
//   What bounds it: sub-blocks of 16 give each pair 2 mla per 4 smmla (one int32 sub-scale
//   multiply per 2x2 outputs and sub-block: 256 slots); the tile's 6 unpack + 2 sxtl per
//   sub-block are shared by 8 pairs (128 slots); the float step is 6 per pair (48). Sub-scales
//   stored as i32 pairs would drop the sxtl (computed: 914 slots, 71.7 / 45.9) for +32 bytes
//   per column.
// Smaller tiles p1..p7 (2..14 rows) run the same per-pair code (insn / 1000 MAC, MAC/cycle at
// cost 1 / 2): p4 (M = 8) 96.2, 60.9 / 41.3; p2 (M = 4) 125.0, 49.0 / 35.5; p1 (M = 2) 182.6,
// 35.3 / 27.7.
// qkern_q6k_mmla_gemv_i8mm (M = 1, the pair holds its row twice) uses vector SDOT: per
// sub-block of 16 and tile 4 sdot + 6 unpack + sxtl + addp + mla; per super-block 5 float:
// 327.1 insn / 1000 MAC, 19.3 MAC/cycle at either cost (the SDOT kernel: 416.0, 12.0); 0.37
// instructions per packed weight byte (226 bytes per 256 MAC and column).
#include "kq_tile.h"   // the same argument block (KArgs) and frame as the Q4_K kernels

// Register use: v0-v2 A, B, C, then (unpacked) v3 O0, v1 O1, v2 O2, v0 O3; v4-v5 sub-scales
// [s0 s1 s0 s1], [s2 s3 s2 s3] (i32); v8-v23 int32 super-block sums (pair p: v(8+2p) columns
// 0-1, v(9+2p) columns 2-3), v24-v25 activations, v26-v27 sub-block partials, v30 0xFC mask.
// x registers and stack: the frame of kq_tile.h, where a sub-block step is a pair of sub-blocks
// of 16 (x4 the activation stride of 32 values, x16 sub-block pairs left).

// A, B, C at [x1, #off] into the operands v3 O0, v1 O1, v2 O2, v0 O3 (each 4 w), and the
// sub-scales of the sub-block (x15 advanced).
.macro unpack off
    ldp     q0, q1, [x1, #\off]
    ldr     q2, [x1, #(\off + 32)]
    ld1r    {v4.2s}, [x15], #4
    ld1r    {v5.2s}, [x15], #4
    and     v3.16b, v0.16b, v30.16b
    shl     v0.16b, v0.16b, #2
    sli     v0.16b, v1.16b, #4
    sli     v0.16b, v2.16b, #6
    and     v1.16b, v1.16b, v30.16b
    and     v2.16b, v2.16b, v30.16b
    sxtl    v4.4s, v4.4h
    sxtl    v5.4s, v5.4h
.endm

// One row pair of one sub-block of 16 (activation chunks at x12 + 64 p + off): 4 smmla into the
// zeroed partials, times the sub-scales.
.macro sub16 p, fa, fb, off
    ldp     q26, q27, [sp]
    ldp     q24, q25, [x12, #(\p * 64 + \off)]
    smmla   v26.4s, v24.16b, v3.16b
    smmla   v27.4s, v24.16b, v2.16b
    smmla   v26.4s, v25.16b, v1.16b
    smmla   v27.4s, v25.16b, v0.16b
    mla     v\fa\().4s, v26.4s, v4.4s
    mla     v\fb\().4s, v27.4s, v5.4s
.endm

.macro sub_lo p, fa, fb
    sub16   \p, \fa, \fb, 0
.endm

.macro sub_hi p, fa, fb
    sub16   \p, \fa, \fb, 32
.endm

// One row pair at the end of a super-block: the float step and the sums re-zeroed.
// v0/v1 d ([w0 w1 w0 w1], [w2 w3 w2 w3]).
.macro sb_pair p, fa, fb
    ldr     q2, [x13, #(\p * 48 + 32)]
    kq_float_step \p, \fa, \fb, 2, v0.4s, v1.4s, v2.4s, v2.4s
.endm

// void qkern_q6k_mmla_p<np>_i8mm(const KArgs *): rows 2*np (np row pairs) x 4*ntiles columns
// over kb super-blocks; stores the first ARGK_NROWS rows (no bias).
.macro q6k_kernel np
function qkern_q6k_mmla_p\np\()_i8mm
    kq_pairs_enter
    movi    v30.16b, #0xFC
2:
    kq_zero_pairs \np
    kq_first_sb
1:
    kq_sb_start 768
4:
    unpack  0
    for_pairs \np, sub_lo
    unpack  48
    add     x1, x1, #96
    for_pairs \np, sub_hi
    kq_next_sub 4b

    ld1r    {v0.2s}, [x15], #4
    ld1r    {v1.2s}, [x15], #4
    mov     x1, x15
    fcvtl   v0.4s, v0.4h
    fcvtl   v1.4s, v1.4h
    for_pairs \np, sb_pair
    kq_next_sb 1b

    kq_store_pairs \np, zip
    kq_next_tile 2b
    kq_pairs_leave
endfunc qkern_q6k_mmla_p\np\()_i8mm
.endm

.irp np, 8, 7, 6, 5, 4, 3, 2, 1
q6k_kernel \np
.endr

// One sub-block of 16 of the GEMV: A, B, C at [x1, #off], activations at [x12, #aoff].
// Vector SDOT of [col c: 8][col c+1: 8] with [x: 8][x: 8] gives [c: K 0-3, c: K 4-7, c+1: K 0-3,
// c+1: K 4-7]; addp folds the two column pairs into [c0 c1 c2 c3], which meets the sub-scales
// [s0 s1 s2 s3] (sxtl of the stored i16).
.macro gemv16 off, aoff
    ldp     q0, q1, [x1, #\off]
    ldr     q2, [x1, #(\off + 32)]
    ldr     d4, [x15], #8
    ldp     q24, q25, [x12, #\aoff]
    ldp     q18, q19, [sp]
    and     v3.16b, v0.16b, v30.16b
    shl     v0.16b, v0.16b, #2
    sli     v0.16b, v1.16b, #4
    sli     v0.16b, v2.16b, #6
    and     v1.16b, v1.16b, v30.16b
    and     v2.16b, v2.16b, v30.16b
    sdot    v18.4s, v3.16b, v24.16b
    sdot    v19.4s, v2.16b, v24.16b
    sdot    v18.4s, v1.16b, v25.16b
    sdot    v19.4s, v0.16b, v25.16b
    sxtl    v4.4s, v4.4h
    addp    v18.4s, v18.4s, v19.4s
    mla     v17.4s, v18.4s, v4.4s
.endm

// void qkern_q6k_mmla_gemv_i8mm(const KArgs *): one row x 4*ntiles columns (ARGK_NROWS must be
// 1). The row pair must hold the same row twice (the last pair of an odd M).
// Registers: v0-v3 weight operands, v4 sub-scales, v16 float sums, v17 int32 super-block sums,
// v18-v19 partials, v24-v25 activations, v30 0xFC mask. Stack: 32 zero bytes.
function qkern_q6k_mmla_gemv_i8mm
    kq_gemv_enter
    movi    v30.16b, #0xFC
2:
    ldp     q16, q17, [sp]
    kq_first_sb
1:
    kq_sb_start 768
4:
    gemv16  0, 0
    gemv16  48, 32
    add     x1, x1, #96
    kq_next_sub 4b

    // The float step: d [w0 w1 w2 w3], da of the row.
    ldr     d0, [x15]
    add     x1, x15, #8
    ldr     s2, [x13, #32]
    fcvtl   v0.4s, v0.4h
    kq_gemv_float_step 2, v0.4s, v2.s[0]
    kq_next_sb 1b

    str     q16, [x8]
    kq_next_tile 2b
    kq_gemv_leave
endfunc qkern_q6k_mmla_gemv_i8mm
