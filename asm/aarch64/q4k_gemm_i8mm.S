// Q4_K x Q8_256 GEMM micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts (src/arch/aarch64/q4k_mmla.rs):
// * weights, per column tile of 4 and super-block of 256, 592 bytes (148 per column; GGUF: 144):
//     [sub-block j = 0..8: 64 bytes of nibbles] [sc: u8 [8][4]] [mins: 32] [d: f16 [4]] [dmin: f16 [4]]
//   sub-block j: 4 registers (col pair cp = 0, 1) x (chunk c = 0, 1): [col 2cp: 8 bytes][col 2cp+1:
//   8 bytes], low nibbles K 8c..8c+7 of the sub-block, high nibbles K 8c+16..8c+23 (q, 0..15).
//   mins: [col 0: m0..m7][col 1: m0..m7][col 2: ..][col 3: ..] (u8 <= 63): SMMLA operands.
//   The sub-scale bytes of a sub-block, [s0 s1 s2 s3], widen to the int32 [s0 s1 s0 s1],
//   [s2 s3 s2 s3] with one tbl each (constant indices, 0xFF lanes read 0); d, dmin to f32
//   [w0 w1 w0 w1], [w2 w3 w2 w3] with ld1r .2s + fcvtl (4 per tile and super-block).
// * activations (src/arch/aarch64/q4k_mmla.rs, behind the plain ActBlockK rows): row pairs in
//   groups of 8 as act.rs's Q8_32 layout; per group and super-block: 8 sub-blocks of
//   [pair q: 4 chunks of [row 2q: 8 bytes][row 2q+1: 8 bytes]], then per pair 48 bytes: H, L
//   ([row 2q: 8 bytes][row 2q+1: 8 bytes], sub-block sums asum_j = 64 h_j + l_j, h_j in -64..63,
//   l_j in 0..63) and the scales [d0, d0, d1, d1] as f32.
//
// Arithmetic, per row pair and super-block, in SMMLA order [r0c0 r0c1 r1c0 r1c1]:
//   tot = sum_j sc_j * P_j                 P_j: 8 smmla (4 chunks x 2 column pairs), 2 mla
//   mins = (H . M) << 6 + L . M            4 smmla, 2 shl
//   acc += da * (d * float(tot) - dmin * float(mins))      4 scvtf, 2 fmul, 2 fmls, 2 fmla
// The float accumulators live on the stack (ldp/stp once per super-block and pair), so the 32
// vector registers hold 8 weight operands, 16 int32 super-block sums, the partials, scales, mask.
//
// Per super-block of the 16x4 tile (qkern_q4k_mmla_p8_i8mm), 16384 MAC, counted by qcount
// (scripts/qcount-formats.sh, M = 16):
//   per sub-block: 64 smmla, 16 mla, 8 unpack (4 and + 4 ushr), 2 tbl (sub-scales);
//   per super-block: 32 smmla, 16 shl, 32 scvtf, 16 fmul, 16 fmls, 16 fmla (mins and float step),
//   4 fcvtl (d, dmin).
//   1170 instructions = 71.4 per 1000 MAC (the SDOT asm kernel: 103.8); 518 load issues.
//   SIMD: 544 smmla + 308 other = 852 slots at cost 1: 76.9 MAC/cycle; 1396 at cost 2: 46.9.
//   SIMD bound at both costs (loads 10.5 c per 1000 MAC against 13.0 c SIMD at cost 1).
//   What bounds it: per sub-block and pair, 8 smmla carry 2 mla (the int32 sub-scales: one per
//   4 outputs, inherent to int32 super-block sums), and the tile's 8 unpack ops are shared by 8
//   pairs; per super-block and pair, 4 smmla + 2 shl (mins) and 10 float ops. The 148-byte
//   layout (160 before: u16 sub-scales, f32 d, dmin) costs the 4 fcvtl per tile and super-block
//   (848 slots before: 77.3 / 47.1); the u8 sub-scales cost nothing (tbl for uxtl). Sub-scales
//   as i32 (+24 bytes per column) would save the 16 tbl: 836 slots, 78.4 / 47.5.
// Smaller tiles p1..p7 (2..14 rows) run the same per-pair code (insn / 1000 MAC, MAC/cycle at
// cost 1 / 2): p4 (M = 8) 81.3, 70.0 / 44.3; p2 (M = 4) 101.1, 59.3 / 39.8; p1 (M = 2) 140.6,
// 45.5 / 33.0.
// qkern_q4k_mmla_gemv_i8mm (M = 1, the pair holds its row twice) uses vector SDOT: per
// sub-block and tile 8 sdot + 8 unpack + tbl + addp + mla; per super-block 4 sdot + 2 shl +
// addp + 5 float + 2 fcvtl: 253.9 insn / 1000 MAC, 24.7 MAC/cycle at either cost (the SDOT asm
// GEMV: 251.9, 25.0).
#include "kq_tile.h"

// Register use: v0-v7 weight operands of a sub-block (v0 cp0 chunk 0, v1 cp0 chunk 1, v2 cp1
// chunk 0, v3 cp1 chunk 1, v4-v7 chunks 2, 3 likewise), v8-v23 int32 super-block sums (pair p:
// v(8+2p) columns 0-1, v(9+2p) columns 2-3), v24-v25 activations, v26-v27 sub-block partials,
// v28-v29 sub-scales [s0 s1 s0 s1], [s2 s3 s2 s3], v30 0x0F mask, v31 the sub-block's
// sub-scale bytes. x registers and stack: the frame of kq_tile.h; x11 tbl indices.

// One row pair of one sub-block: 8 smmla into the zeroed partials, times the sub-scales.
.macro sub_pair p, fa, fb
    ldp     q26, q27, [sp]
    ldp     q24, q25, [x12, #(\p * 64)]
    smmla   v26.4s, v24.16b, v0.16b
    smmla   v27.4s, v24.16b, v2.16b
    smmla   v26.4s, v25.16b, v1.16b
    smmla   v27.4s, v25.16b, v3.16b
    ldp     q24, q25, [x12, #(\p * 64 + 32)]
    smmla   v26.4s, v24.16b, v4.16b
    smmla   v27.4s, v24.16b, v6.16b
    smmla   v26.4s, v25.16b, v5.16b
    smmla   v27.4s, v25.16b, v7.16b
    mla     v\fa\().4s, v26.4s, v28.4s
    mla     v\fb\().4s, v27.4s, v29.4s
.endm

// One row pair at the end of a super-block: the mins, the float step, and the sums re-zeroed.
// v0/v1 mins operands, v2/v3 d, v4/v5 dmin ([w0 w1 w0 w1], [w2 w3 w2 w3] as f32).
.macro sb_pair p, fa, fb
    ldp     q24, q25, [x13, #(\p * 48)]
    ldp     q26, q27, [sp]
    smmla   v26.4s, v24.16b, v0.16b
    smmla   v27.4s, v24.16b, v1.16b
    ldr     q6, [x13, #(\p * 48 + 32)]
    shl     v26.4s, v26.4s, #6
    shl     v27.4s, v27.4s, #6
    smmla   v26.4s, v25.16b, v0.16b
    smmla   v27.4s, v25.16b, v1.16b
    kq_float_step \p, \fa, \fb, 0, v2.4s, v3.4s, v6.4s, v6.4s, v4.4s, v5.4s
.endm

// void qkern_q4k_mmla_p<np>_i8mm(const KArgs *): rows 2*np (np row pairs) x 4*ntiles columns
// over kb super-blocks; stores the first ARGK_NROWS rows (no bias).
.macro q4k_kernel np
function qkern_q4k_mmla_p\np\()_i8mm
    kq_pairs_enter
    movi    v30.16b, #0x0F
    adr     x11, LOCAL(sc_pairs)
2:
    kq_zero_pairs \np
    kq_first_sb
1:
    kq_sb_start 512
4:
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    add     x1, x1, #64
    ldr     s31, [x15], #4
    ldp     q28, q29, [x11]
    ushr    v4.16b, v0.16b, #4
    ushr    v5.16b, v1.16b, #4
    ushr    v6.16b, v2.16b, #4
    ushr    v7.16b, v3.16b, #4
    and     v0.16b, v0.16b, v30.16b
    and     v1.16b, v1.16b, v30.16b
    and     v2.16b, v2.16b, v30.16b
    and     v3.16b, v3.16b, v30.16b
    tbl     v28.16b, {v31.16b}, v28.16b
    tbl     v29.16b, {v31.16b}, v29.16b
    for_pairs \np, sub_pair
    kq_next_sub 4b

    ldp     q0, q1, [x15]
    add     x16, x15, #32
    ld1r    {v2.2s}, [x16], #4
    ld1r    {v3.2s}, [x16], #4
    ld1r    {v4.2s}, [x16], #4
    ld1r    {v5.2s}, [x16], #4
    mov     x1, x16
    fcvtl   v2.4s, v2.4h
    fcvtl   v3.4s, v3.4h
    fcvtl   v4.4s, v4.4h
    fcvtl   v5.4s, v5.4h
    for_pairs \np, sb_pair
    kq_next_sb 1b

    kq_store_pairs \np, zip
    kq_next_tile 2b
    kq_pairs_leave
endfunc qkern_q4k_mmla_p\np\()_i8mm
.endm

.irp np, 8, 7, 6, 5, 4, 3, 2, 1
q4k_kernel \np
.endr

// void qkern_q4k_mmla_gemv_i8mm(const KArgs *): one row x 4*ntiles columns (ARGK_NROWS must be
// 1). The row pair must hold the same row twice (the last pair of an odd M), so each activation
// register is [x: 8 bytes][x: 8 bytes] and vector SDOT against [col c: 8][col c+1: 8] gives
// [c: K 0-3, c: K 4-7, c+1: K 0-3, c+1: K 4-7]; addp folds two column pairs into [c0 c1 c2 c3],
// which meets the sub-scales [s0 s1 s2 s3] (tbl-widened u8) and d, dmin (fcvtl, fcvtl2).
// Registers: v0-v7 weight operands, v16 float sums, v17 int32 super-block sums, v18-v19
// partials, v24-v27 activations, v28 sub-scales, v30 0x0F mask, v31 tbl indices. Stack: 32 zero bytes.
function qkern_q4k_mmla_gemv_i8mm
    kq_gemv_enter
    movi    v30.16b, #0x0F
    adr     x11, LOCAL(sc_widen)
    ldr     q31, [x11]
2:
    ldp     q16, q17, [sp]
    kq_first_sb
1:
    kq_sb_start 512
4:
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    add     x1, x1, #64
    ldr     s28, [x15], #4
    ldp     q24, q25, [x12]
    ldp     q26, q27, [x12, #32]
    ldp     q18, q19, [sp]
    ushr    v4.16b, v0.16b, #4
    ushr    v5.16b, v1.16b, #4
    ushr    v6.16b, v2.16b, #4
    ushr    v7.16b, v3.16b, #4
    and     v0.16b, v0.16b, v30.16b
    and     v1.16b, v1.16b, v30.16b
    and     v2.16b, v2.16b, v30.16b
    and     v3.16b, v3.16b, v30.16b
    sdot    v18.4s, v0.16b, v24.16b
    sdot    v19.4s, v2.16b, v24.16b
    sdot    v18.4s, v1.16b, v25.16b
    sdot    v19.4s, v3.16b, v25.16b
    sdot    v18.4s, v4.16b, v26.16b
    sdot    v19.4s, v6.16b, v26.16b
    sdot    v18.4s, v5.16b, v27.16b
    sdot    v19.4s, v7.16b, v27.16b
    tbl     v28.16b, {v28.16b}, v31.16b
    addp    v18.4s, v18.4s, v19.4s
    mla     v17.4s, v18.4s, v28.4s
    kq_next_sub 4b

    // Mins (H, L against [col c: m][col c+1: m]) and the float step.
    kq_load_mins_d
    kq_i8mm_gemv_mins
    kq_gemv_float_step 0, v2.4s, v26.s[0], v3.4s
    kq_next_sb 1b

    str     q16, [x8]
    kq_next_tile 2b
    kq_gemv_leave
endfunc qkern_q4k_mmla_gemv_i8mm

// tbl indices that widen sub-scale bytes to int32 (an index of 0xFF reads 0): from [s0 s1 s2 s3]
// (4 bytes), the SMMLA kernels' [s0 s1 s0 s1] and [s2 s3 s2 s3], the GEMV's [s0 s1 s2 s3].
    .text
    .p2align 4
LOCAL(sc_pairs):
    .byte   0, 255, 255, 255, 1, 255, 255, 255, 0, 255, 255, 255, 1, 255, 255, 255
    .byte   2, 255, 255, 255, 3, 255, 255, 255, 2, 255, 255, 255, 3, 255, 255, 255
LOCAL(sc_widen):
    .byte   0, 255, 255, 255, 1, 255, 255, 255, 2, 255, 255, 255, 3, 255, 255, 255
