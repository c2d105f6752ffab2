// Q4_K x Q8_256 GEMM micro-kernels with SDOT (FEAT_DotProd), for the NeonDot tier.
//
// Layouts:
// * weights (src/arch/aarch64/q4k_dot.rs), per column tile of 4 and super-block of 256, 592 bytes
//   (148 per column; GGUF: 144):
//     [sub-block j = 0..8: 64 bytes of nibbles] [sc: u8 [8][4]] [mins: 32] [d: f16 [4]] [dmin: f16 [4]]
//   sub-block j: 4 registers r = [col 0: 4 bytes][col 1]..[col 3], low nibbles K 4r..4r+3 of the
//   sub-block, high nibbles K 16+4r..: `and #0x0F` / `ushr #4` give the SDOT by-element operands
//   W_r, W_r+4 (q = 0..15) of the 4 columns. mins: [col c: m0..m3] x 4, then [col c: m4..m7] x 4.
// * activations: the row pairs of the Q4_K SMMLA kernels (src/arch/aarch64/q4k_mmla.rs): per
//   sub-block and pair 4 chunks [row 2q: 8 bytes][row 2q+1: 8 bytes], so lane 0, 1 of a chunk
//   are K 8c..8c+3, 8c+4.. of the first row (against W_2c, W_2c+1), lanes 2, 3 the second's; per
//   super-block and pair H, L (sub-block sums asum_j = 64 h_j + l_j) and [d0, d0, d1, d1] f32.
//
// Arithmetic, per row and super-block, as [c0 c1 c2 c3]:
//   tot = sum_j sc_j * P_j                 P_j: 8 sdot by element, 1 mla
//   mins = (H . M) << 6 + L . M            4 sdot by element, 1 shl
//   acc += da * (d * float(tot) - dmin * float(mins))      2 scvtf, fmul, fmls, fmla by element
// d, dmin: one fcvtl / fcvtl2 per tile and super-block. The float accumulators live on the stack
// (ldp/stp once per super-block and pair), as in the SMMLA kernel: the 32 vector registers hold 8
// weight operands, the 16 int32 super-block sums, activations, partials, sub-scales, mask.
//
// Per super-block of the 16x4 tile (qkern_q4k_dot_p8_dotprod), 16384 MAC, counted by qcount
// (scripts/qcount-formats.sh, M = 16):
//   per sub-block: 128 sdot, 16 mla, 8 unpack (4 and + 4 ushr), 2 uxtl (u8 sub-scales);
//   per super-block: 64 sdot, 16 shl, 32 scvtf, 16 fmul, 16 fmls, 16 fmla, 2 fcvtl.
//   1700 instructions = 103.8 per 1000 MAC (the SDOT intrinsic kernel it replaces: 149.2);
//   499 load issues (10.2 c per 1000 MAC).
//   SIMD: 1088 sdot + 306 other = 1394 slots = 348.5 cycles: 47.0 MAC/cycle (the intrinsic
//   kernel: 34.0; SMMLA cost does not apply). Bound: SIMD pipes (21.3 c per 1000 MAC; loads
//   10.2 c, decode 13.0 c).
//   What bounds it: per row and sub-block, 8 sdot carry 1 mla (int32 sub-scales: one per 4
//   outputs, inherent to int32 super-block sums); the tile's 10 unpack/widen ops are shared by
//   16 rows; per row and super-block 4 sdot + 1 shl (mins) and 5 float ops. 1024 of the 1394
//   slots are the main sdot: 73%, 47.0 of the 64 MAC/cycle SDOT peak.
// Smaller tiles p1..p7 (2..14 rows) run the same per-pair code (insn / 1000 MAC, MAC/cycle):
// p4 (M = 8) 112.8, 44.4; p2 (M = 4) 130.9, 40.0; p1 (M = 2) 167.0, 33.3.
// qkern_q4k_dot_gemv_dotprod (M = 1, the first row of its pair): per sub-block and tile 8 sdot +
// 8 unpack + 2 uxtl + mla; per super-block 4 sdot + shl + 5 float + 2 fcvtl: 251.9 insn / 1000
// MAC, 25.0 MAC/cycle (the intrinsic kernel: 249.0, 21.6); bound in practice by the weight
// stream (148 bytes per column and super-block).
#include "kq_tile.h"

// Register use: v0-v7 weight operands W_t of a sub-block (K 4t..4t+3 of columns 0-3; v0-v3 the
// low nibbles of the 4 loaded registers, v4-v7 the high nibbles), v8-v23 int32 super-block sums
// (pair p: v(8+2p) row 2p, v(9+2p) row 2p+1, [c0 c1 c2 c3]), v24-v25 activations, v26-v27
// sub-block partials (row 2p, row 2p+1), v28 sub-scales [s0 s1 s2 s3] (int32), v29 activation
// scales, v30 0x0F mask. x registers and stack: the frame of kq_tile.h; the SDOT arithmetic
// (kq_sdot_*) is shared with the Q5_K kernels, which differ only in the unpacking (load_sub).

// Loads sub-block weights at x1 (advancing it) and the sub-scales at x15 (advancing it), unpacks.
.macro load_sub
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    add     x1, x1, #64
    ldr     s28, [x15], #4
    ushr    v4.16b, v0.16b, #4
    ushr    v5.16b, v1.16b, #4
    ushr    v6.16b, v2.16b, #4
    ushr    v7.16b, v3.16b, #4
    and     v0.16b, v0.16b, v30.16b
    and     v1.16b, v1.16b, v30.16b
    and     v2.16b, v2.16b, v30.16b
    and     v3.16b, v3.16b, v30.16b
    uxtl    v28.8h, v28.8b
    uxtl    v28.4s, v28.4h
.endm

// void qkern_q4k_dot_p<np>_dotprod(const KArgs *): rows 2*np (np row pairs) x 4*ntiles columns
// over kb super-blocks; stores the first ARGK_NROWS rows (no bias).
.macro q4k_kernel np
function qkern_q4k_dot_p\np\()_dotprod
    kq_pairs_enter
    movi    v30.16b, #0x0F
2:
    kq_zero_pairs \np
    kq_first_sb
1:
    kq_sb_start 512
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
endfunc qkern_q4k_dot_p\np\()_dotprod
.endm

.irp np, 8, 7, 6, 5, 4, 3, 2, 1
q4k_kernel \np
.endr

// void qkern_q4k_dot_gemv_dotprod(const KArgs *): one row x 4*ntiles columns (ARGK_NROWS must be
// 1), the first row of the pair (lanes 0 and 1 of each activation register).
// Registers: v0-v7 weight operands, v16 float sums, v17 int32 super-block sums, v18 partial,
// v24-v27 activations, v28 sub-scales, v30 0x0F mask. Stack: 32 zero bytes.
function qkern_q4k_dot_gemv_dotprod
    kq_gemv_enter
    movi    v30.16b, #0x0F
2:
    ldp     q16, q17, [sp]
    kq_first_sb
1:
    kq_sb_start 512
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
endfunc qkern_q4k_dot_gemv_dotprod
