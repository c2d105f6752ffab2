// Q5_K x Q8_256 GEMM micro-kernels with SDOT (FEAT_DotProd), for the NeonDot tier.
//
// Layouts:
// * weights (src/arch/aarch64/q5k_dot.rs), per column tile of 4 and super-block of 256, 720 bytes
//   (180 per column; GGUF: 176):
//     [sub-block j = 0..8: R0..R4, 16 bytes each] [sc: u8 [8][4]] [mins: 32]
//     [d: f16 [4]] [dmin: f16 [4]]
//   The 8 by-element operands W_t of a sub-block = [col 0: 4 bytes][col 1]..[col 3], K 4t..4t+3,
//   are q (0..31, signed-safe: no offset to correct). R_j (j < 4) = W_j << 3 | W_4+j & 7, R4 = the
//   top 2 bits of W_4..W_7 at bits 7..6, 5..4, 3..2, 1..0: W_j = R_j >> 3 (ushr), W_4+j = sli #3
//   of the 2 bits isolated at bits 1..0 (ushr #6; shl + ushr #6 twice; and #3) into R_j: 14 SIMD
//   ops per sub-block and tile. mins: [col c: m0..m3] x 4, then [col c: m4..m7] x 4.
// * activations: the row pairs of the Q4_K SMMLA kernels (src/arch/aarch64/q4k_mmla.rs), read as
//   the Q4_K SDOT kernel reads them: lane 0, 1 of a chunk are K 8c..8c+3, 8c+4.. of the first
//   row, lanes 2, 3 the second's.
//
// Arithmetic, per row and super-block, as [c0 c1 c2 c3] (as the Q4_K SDOT kernel):
//   tot = sum_j sc_j * P_j                 P_j: 8 sdot by element, 1 mla
//   mins = (H . M) << 6 + L . M            4 sdot by element, 1 shl
//   acc += da * (d * float(tot) - dmin * float(mins))      2 scvtf, fmul, fmls, fmla by element
//
// Per super-block of the 16x4 tile (qkern_q5k_dot_p8_dotprod), 16384 MAC, counted by qcount
// (scripts/qcount-formats.sh, M = 16, N = 64, K 2048 -> 4096):
//   per sub-block: 128 sdot, 16 mla, 14 unpack, 2 uxtl (u8 sub-scales);
//   per super-block: 64 sdot, 16 shl, 32 scvtf, 16 fmul, 16 fmls, 16 fmla, 2 fcvtl.
//   1756 instructions = 107.2 per 1000 MAC (the SDOT inline-asm kernel it replaces: 188.7);
//   507 load issues (10.3 c per 1000 MAC).
//   SIMD: 1088 sdot + 354 other = 1442 slots = 360.5 cycles: 45.5 MAC/cycle (the inline-asm
//   kernel: 26.5; SMMLA cost does not apply). Bound: SIMD pipes (22.0 c per 1000 MAC; loads
//   10.3 c, decode 13.4 c).
//   What bounds it: Q4_K's SDOT kernel (1394 slots) plus 6 unpack ops per tile and sub-block for
//   the fifth bit (shared by 16 rows: 48 per super-block); 1024 of the 1442 slots are the
//   main sdot.
// Smaller tiles p1..p7 (2..14 rows) run the same per-pair code (insn / 1000 MAC, MAC/cycle):
// p4 (M = 8) 119.6, 41.7; p2 (M = 4) 144.5, 35.8; p1 (M = 2) 194.3, 27.9.
// qkern_q5k_dot_gemv_dotprod (M = 1, the first row of its pair): per sub-block and tile 8 sdot +
// 14 unpack + 2 uxtl + mla; per super-block 4 sdot + shl + 5 float + 2 fcvtl: 306.6 insn / 1000
// MAC, 19.3 MAC/cycle; 0.44 instructions per packed weight byte (720 per tile and super-block).
#include "kq_tile.h"
#include "q5k_gemm.h"

.if ARGQ5K_SC != 8 * ARGQ5K_SUB || ARGQ5K_MINS != ARGQ5K_SC + 32 || ARGQ5K_D != ARGQ5K_MINS + 32
.error "q5k_gemm.h: unexpected tile super-block layout"
.endif

// Register use: v0-v7 weight operands W_t of a sub-block (K 4t..4t+3 of columns 0-3; v0-v3
// R_j >> 3, v4-v7 the other four, made in place in the loaded R0..R3), v8-v23 int32 super-block
// sums (pair p: v(8+2p) row 2p, v(9+2p) row 2p+1, [c0 c1 c2 c3]), v24-v25 activations, v26-v27
// sub-block partials (row 2p, row 2p+1), v28 sub-scales [s0 s1 s2 s3] (int32), v29 activation
// scales, v30 0x03 mask (v26, v27 also R4 and a temporary while unpacking). x registers and
// stack: the frame of kq_tile.h; the SDOT arithmetic (kq_sdot_*) is the Q4_K kernels'.

// Loads sub-block weights at x1 (advancing it) and the sub-scales at x15 (advancing it), unpacks:
// W_j = R_j >> 3 (j < 4); W_4+j = R_j bits 2..0 with bits 4..3 from R4 (sli #3 of R4 bits 7..6,
// 5..4, 3..2, 1..0 isolated at bits 1..0). 14 SIMD ops; v26, v27 temporaries.
.macro load_sub
    ldp     q4, q5, [x1]
    ldp     q6, q7, [x1, #32]
    ldr     q26, [x1, #64]
    add     x1, x1, #ARGQ5K_SUB
    ldr     s28, [x15], #4
    ushr    v0.16b, v4.16b, #3
    ushr    v1.16b, v5.16b, #3
    ushr    v2.16b, v6.16b, #3
    ushr    v3.16b, v7.16b, #3
    ushr    v27.16b, v26.16b, #6
    sli     v4.16b, v27.16b, #3
    shl     v27.16b, v26.16b, #2
    ushr    v27.16b, v27.16b, #6
    sli     v5.16b, v27.16b, #3
    shl     v27.16b, v26.16b, #4
    ushr    v27.16b, v27.16b, #6
    sli     v6.16b, v27.16b, #3
    and     v26.16b, v26.16b, v30.16b
    sli     v7.16b, v26.16b, #3
    uxtl    v28.8h, v28.8b
    uxtl    v28.4s, v28.4h
.endm

// void qkern_q5k_dot_p<np>_dotprod(const KArgs *): rows 2*np (np row pairs) x 4*ntiles columns
// over kb super-blocks; stores the first ARGK_NROWS rows (no bias).
.macro q5k_kernel np
function qkern_q5k_dot_p\np\()_dotprod
    kq_pairs_enter
    movi    v30.16b, #0x03
2:
    kq_zero_pairs \np
    kq_first_sb
1:
    kq_sb_start ARGQ5K_SC
4:
    load_sub
    for_pairs \np, kq_sdot_sub_pair
    kq_next_sub 4b

    kq_load_mins_d
    for_pairs \np, kq_sdot_sb_pair
    kq_next_sb 1b

    kq_store_pairs \np, plain
    kq_next_tile 2b
    kq_pairs_leave
endfunc qkern_q5k_dot_p\np\()_dotprod
.endm

.irp np, 8, 7, 6, 5, 4, 3, 2, 1
q5k_kernel \np
.endr

// void qkern_q5k_dot_gemv_dotprod(const KArgs *): one row x 4*ntiles columns (ARGK_NROWS must be
// 1), the first row of the pair (lanes 0 and 1 of each activation register).
// Registers: v0-v7 weight operands, v16 float sums, v17 int32 super-block sums, v18 partial,
// v24-v27 activations (v26, v27 also unpack temporaries), v28 sub-scales, v30 0x03 mask.
// Stack: 32 zero bytes.
function qkern_q5k_dot_gemv_dotprod
    kq_gemv_enter
    movi    v30.16b, #0x03
2:
    ldp     q16, q17, [sp]
    kq_first_sb
1:
    kq_sb_start ARGQ5K_SC
4:
    load_sub
    kq_sdot_gemv_sub
    kq_next_sub 4b

    kq_load_mins_d
    kq_sdot_gemv_mins
    kq_gemv_float_step 0, v2.4s, v26.s[0], v3.4s
    kq_next_sb 1b

    str     q16, [x8]
    kq_next_tile 2b
    kq_gemv_leave
endfunc qkern_q5k_dot_gemv_dotprod
