// Q5_K x Q8_256 GEMM micro-kernels with USMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts (src/arch/aarch64/q5k_mmla.rs):
// * weights, per column tile of 4 and super-block of 256, 720 bytes (180 per column; GGUF: 176):
//     [sub-block j = 0..8: R0..R4, 16 bytes each] [sc: u8 [8][4]] [mins: 32]
//     [d: f16 [4]] [dmin: f16 [4]]
//   The 8 operands of a sub-block, o = 4 cp + c (column pair cp, K chunk c) = [col 2cp: 8 bytes]
//   [col 2cp+1: 8 bytes], are 8 q (q = 0..31 in bits 7..3, unsigned), stored as the Q5_0 SMMLA
//   kernel stores its 5-bit fields: R_j (j < 4) = [operand j: bits 7..3][operand 4 + j: q bits
//   2..0], R4 = the top 2 bits of operands 4..7 at bits 7..6, 1..0, 5..4, 3..2. Operand j is
//   R_j & 0xF8, operand 4 + j R_j << 3 with bits 7..6 from R4 (bit / sli): 14 SIMD ops, no lookup.
//   Unsigned weights (q up to 31, 8 q up to 248) make them USMMLA's first operand, so results
//   are [c0r0 c0r1 c1r0 c1r1] (columns by rows): the sub-scale bytes widen to int32 [s0 s0 s1 s1],
//   [s2 s2 s3 s3] with one tbl each, d, dmin to f32 [w0 w0 w1 w1], [w2 w2 w3 w3] with zip1 / zip2
//   + fcvtl / fcvtl2 (6 per tile and super-block), and the stores de-interleave with uzp1 / uzp2.
//   mins: [col 0: m0..m7][col 1: m0..m7][col 2: ..][col 3: ..] (u8 <= 63): SMMLA operands.
// * activations: the row pairs of the Q4_K SMMLA kernels (src/arch/aarch64/q4k_mmla.rs), unchanged;
//   the pair scales [d0 d0 d1 d1] are read from their middle ([d0 d1], ld1r .2d: [d0 d1 d0 d1]).
//
// Arithmetic, per row pair and super-block, in USMMLA order [c0r0 c0r1 c1r0 c1r1]:
//   tot = sum_j sc_j * P_j (8 q)           P_j: 8 usmmla (4 chunks x 2 column pairs), 2 mla
//   mins = (M . H) << 6 + M . L            4 smmla, 2 shl
//   acc += da * (d * float(tot) / 8 - dmin * float(mins))
//                                          4 scvtf (#3: exact), 2 fmul, 2 fmls, 2 fmla
//   |tot| <= 8 * 31 * 128 * 32 * 63 * 8 < 2^29: exact in int32.
// The float accumulators live on the stack (ldp/stp once per super-block and pair), as for Q4_K.
//
// Per super-block of the 16x4 tile (qkern_q5k_mmla_p8_i8mm), 16384 MAC, counted by qcount
// (scripts/qcount-formats.sh, M = 16, N = 64, K 2048 -> 4096):
//   per sub-block: 64 usmmla, 16 mla, 14 unpack (4 shl + 4 and + 2 bit + 2 sli + shl + ushr),
//   2 tbl (sub-scales);
//   per super-block: 32 smmla, 16 shl, 32 scvtf, 16 fmul, 16 fmls, 16 fmla (mins and float step),
//   2 zip + 4 fcvtl (d, dmin).
//   1232 instructions = 75.2 per 1000 MAC (the SDOT inline-asm kernel it replaces: 188.7);
//   523 load issues.
//   SIMD: 544 (us)mmla + 358 other = 902 slots at cost 1: 72.7 MAC/cycle; 1446 at cost 2: 45.3
//   (the SDOT kernel: 26.5). SIMD bound at both costs (loads 10.6 c per 1000 MAC against 13.8 c
//   SIMD at cost 1).
//   What bounds it: Q4_K's kernel (852 slots) plus the fifth bit: 6 more unpack ops per tile and
//   sub-block (14 against 8, shared by 8 pairs: 48 per super-block) and 2 zip for the transposed
//   d, dmin. Per sub-block and pair, 8 usmmla carry 2 mla (int32 sub-scales); per super-block and
//   pair, 4 smmla + 2 shl (mins) and 10 float ops.
// Smaller tiles p1..p7 (2..14 rows) run the same per-pair code (insn / 1000 MAC, MAC/cycle at
// cost 1 / 2): p4 (M = 8) 88.4, 63.3 / 41.5; p2 (M = 4) 114.8, 50.3 / 35.5; p1 (M = 2) 167.5,
// 35.6 / 27.5.
// qkern_q5k_mmla_gemv_i8mm (M = 1, the pair holds its row twice) uses vector USDOT: per
// sub-block and tile 8 usdot + 14 unpack + tbl + addp + mla; per super-block 4 sdot + 2 shl +
// addp + 5 float + 2 fcvtl: 308.6 insn / 1000 MAC, 19.1 MAC/cycle at either cost; 0.44
// instructions per packed weight byte (720 per tile and super-block).
#include "kq_tile.h"
#include "q5k_gemm.h"
.if ARGQ5K_SUB != 80 || ARGQ5K_SC != 8 * ARGQ5K_SUB || ARGQ5K_MINS != ARGQ5K_SC + 32
.error "q5k_gemm.h: unexpected tile super-block layout"
.endif
.if ARGQ5K_D != ARGQ5K_MINS + 32 || ARGQ5K_TILE != ARGQ5K_D + 16
.error "q5k_gemm.h: unexpected tile super-block layout"
.endif

// Register use: v0-v7 weight operands of a sub-block (v0-v3 column pair 0, K chunks 0-3; v4-v7
// column pair 1), v8-v23 int32 super-block sums (pair p: v(8+2p) columns 0-1, v(9+2p) columns
// 2-3), v24-v25 activations, v26-v27 sub-block partials (v26 first the sub-scale bytes),
// v28-v29 R4 while unpacking, then the sub-scales [s0 s0 s1 s1], [s2 s2 s3 s3], v30 0xF8 mask,
// v31 0xC0 mask. x registers and stack: the frame of kq_tile.h; x11 tbl indices, x16 also the
// scale address at the end of a super-block.

// The 8 operands of one sub-block (4 columns x 32 values, 80 bytes at x1), bytes 8 q (q in
// 0..31 in bits 7..3, unsigned): operand j < 4 is R_j & 0xF8; operand 4 + j is R_j << 3 (bits
// 2..0 to 5..3) with bits 7..6 from R4 (bits 7..6, 1..0, 5..4, 3..2 for j = 0..3): 14 SIMD ops.
// \t0, \t1: temporaries; \m8 0xF8, \mc 0xC0.
.macro unpack t0, t1, m8, mc
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldr     q\t0, [x1, #64]
    add     x1, x1, #ARGQ5K_SUB
    shl     v4.16b, v0.16b, #3
    shl     v5.16b, v1.16b, #3
    shl     v6.16b, v2.16b, #3
    shl     v7.16b, v3.16b, #3
    shl     v\t1\().16b, v\t0\().16b, #2
    bit     v4.16b, v\t0\().16b, v\mc\().16b
    sli     v5.16b, v\t0\().16b, #6
    ushr    v\t0\().16b, v\t0\().16b, #2
    bit     v6.16b, v\t1\().16b, v\mc\().16b
    sli     v7.16b, v\t0\().16b, #6
    and     v0.16b, v0.16b, v\m8\().16b
    and     v1.16b, v1.16b, v\m8\().16b
    and     v2.16b, v2.16b, v\m8\().16b
    and     v3.16b, v3.16b, v\m8\().16b
.endm

// One row pair of one sub-block: 8 usmmla (weights unsigned, activations signed; results
// [c0r0 c0r1 c1r0 c1r1]) into the zeroed partials, times the sub-scales.
.macro sub_pair p, fa, fb
    ldp     q26, q27, [sp]
    ldp     q24, q25, [x12, #(\p * 64)]
    usmmla  v26.4s, v0.16b, v24.16b
    usmmla  v27.4s, v4.16b, v24.16b
    usmmla  v26.4s, v1.16b, v25.16b
    usmmla  v27.4s, v5.16b, v25.16b
    ldp     q24, q25, [x12, #(\p * 64 + 32)]
    usmmla  v26.4s, v2.16b, v24.16b
    usmmla  v27.4s, v6.16b, v24.16b
    usmmla  v26.4s, v3.16b, v25.16b
    usmmla  v27.4s, v7.16b, v25.16b
    mla     v\fa\().4s, v26.4s, v28.4s
    mla     v\fb\().4s, v27.4s, v29.4s
.endm

// One row pair at the end of a super-block: the mins, the float step, and the sums re-zeroed.
// v0/v1 mins operands, v2/v3 d, v4/v5 dmin ([w0 w0 w1 w1], [w2 w2 w3 w3] as f32). The pair's
// scales [d0 d0 d1 d1] are read from the middle ([d0 d1], 64 bits) and replicated: [d0 d1 d0 d1].
.macro sb_pair p, fa, fb
    ldp     q24, q25, [x13, #(\p * 48)]
    ldp     q26, q27, [sp]
    smmla   v26.4s, v0.16b, v24.16b
    smmla   v27.4s, v1.16b, v24.16b
    add     x16, x13, #(\p * 48 + 36)
    ld1r    {v6.2d}, [x16]
    shl     v26.4s, v26.4s, #6
    shl     v27.4s, v27.4s, #6
    smmla   v26.4s, v0.16b, v25.16b
    smmla   v27.4s, v1.16b, v25.16b
    kq_float_step \p, \fa, \fb, 3, v2.4s, v3.4s, v6.4s, v6.4s, v4.4s, v5.4s
.endm

// void qkern_q5k_mmla_p<np>_i8mm(const KArgs *): rows 2*np (np row pairs) x 4*ntiles columns
// over kb super-blocks; stores the first ARGK_NROWS rows (no bias).
.macro q5k_kernel np
function qkern_q5k_mmla_p\np\()_i8mm
    kq_pairs_enter
    movi    v30.16b, #0xF8
    movi    v31.16b, #0xC0
    adr     x11, LOCAL(q5k_sc_pairs)
2:
    kq_zero_pairs \np
    kq_first_sb
1:
    kq_sb_start ARGQ5K_SC
4:
    ldr     s26, [x15], #4
    unpack  28, 29, 30, 31
    ldp     q28, q29, [x11]
    tbl     v28.16b, {v26.16b}, v28.16b
    tbl     v29.16b, {v26.16b}, v29.16b
    for_pairs \np, sub_pair
    kq_next_sub 4b

    // x15 is at the mins; d, dmin follow.
    ldp     q0, q1, [x15]
    ldr     q5, [x15, #32]
    add     x1, x15, #48
    zip1    v3.8h, v5.8h, v5.8h
    zip2    v5.8h, v5.8h, v5.8h
    fcvtl   v2.4s, v3.4h
    fcvtl2  v3.4s, v3.8h
    fcvtl   v4.4s, v5.4h
    fcvtl2  v5.4s, v5.8h
    for_pairs \np, sb_pair
    kq_next_sb 1b

    kq_store_pairs \np, uzp
    kq_next_tile 2b
    kq_pairs_leave
endfunc qkern_q5k_mmla_p\np\()_i8mm
.endm

.irp np, 8, 7, 6, 5, 4, 3, 2, 1
q5k_kernel \np
.endr

// void qkern_q5k_mmla_gemv_i8mm(const KArgs *): one row x 4*ntiles columns (ARGK_NROWS must be
// 1). The row pair must hold the same row twice (the last pair of an odd M), so each activation
// register is [x: 8 bytes][x: 8 bytes] and vector USDOT against [col c: 8][col c+1: 8] gives
// [c: K 0-3, c: K 4-7, c+1: K 0-3, c+1: K 4-7]; addp folds two column pairs into [c0 c1 c2 c3],
// which meets the sub-scales [s0 s1 s2 s3] (tbl-widened u8) and d, dmin (fcvtl, fcvtl2).
// Registers: v0-v7 weight operands, v16 float sums, v17 int32 super-block sums, v18-v19
// partials, v20-v21 R4 while unpacking, v22 0xF8 mask, v23 0xC0 mask, v24-v27 activations,
// v28 sub-scales, v31 tbl indices. Stack: 32 zero bytes.
function qkern_q5k_mmla_gemv_i8mm
    kq_gemv_enter
    movi    v22.16b, #0xF8
    movi    v23.16b, #0xC0
    adr     x11, LOCAL(q5k_sc_widen)
    ldr     q31, [x11]
2:
    ldp     q16, q17, [sp]
    kq_first_sb
1:
    kq_sb_start ARGQ5K_SC
4:
    ldr     s28, [x15], #4
    ldp     q24, q25, [x12]
    ldp     q26, q27, [x12, #32]
    ldp     q18, q19, [sp]
    unpack  20, 21, 22, 23
    usdot   v18.4s, v0.16b, v24.16b
    usdot   v19.4s, v4.16b, v24.16b
    usdot   v18.4s, v1.16b, v25.16b
    usdot   v19.4s, v5.16b, v25.16b
    usdot   v18.4s, v2.16b, v26.16b
    usdot   v19.4s, v6.16b, v26.16b
    usdot   v18.4s, v3.16b, v27.16b
    usdot   v19.4s, v7.16b, v27.16b
    tbl     v28.16b, {v28.16b}, v31.16b
    addp    v18.4s, v18.4s, v19.4s
    mla     v17.4s, v18.4s, v28.4s
    kq_next_sub 4b

    // Mins (H, L against [col c: m][col c+1: m]) and the float step; x15 is at the mins.
    kq_load_mins_d
    kq_i8mm_gemv_mins
    kq_gemv_float_step 3, v2.4s, v26.s[0], v3.4s
    kq_next_sb 1b

    str     q16, [x8]
    kq_next_tile 2b
    kq_gemv_leave
endfunc qkern_q5k_mmla_gemv_i8mm

// tbl indices that widen sub-scale bytes to int32 (an index of 0xFF reads 0): from [s0 s1 s2 s3]
// (4 bytes), the USMMLA kernels' [s0 s0 s1 s1] and [s2 s2 s3 s3], the GEMV's [s0 s1 s2 s3].
    .text
    .p2align 4
LOCAL(q5k_sc_pairs):
    .byte   0, 255, 255, 255, 0, 255, 255, 255, 1, 255, 255, 255, 1, 255, 255, 255
    .byte   2, 255, 255, 255, 2, 255, 255, 255, 3, 255, 255, 255, 3, 255, 255, 255
LOCAL(q5k_sc_widen):
    .byte   0, 255, 255, 255, 1, 255, 255, 255, 2, 255, 255, 255, 3, 255, 255, 255
