// Q4_0 x int8 matmul micro-kernels with SDOT (FEAT_DotProd), for the NeonDot tier.
//
// Layouts: src/arch/aarch64/pack.rs (Layout::Dot: per column tile of 4 and block of 32, 64 bytes
// of nibbles XORed with 0x88 as registers [bytes 4j..4j+4 of columns 0, 1, 2, 3], then the 4
// weight scales as f16: 72 bytes, GGUF's 18 per column) and src/arch/aarch64/act.rs (row pairs,
// 8 bytes of each row in turn, scales [d0, d0, d1, d1]). SDOT by element takes 4 activation bytes
// of one row (lanes 0, 1: the pair's first row; 2, 3: its second), so a result is one row x 4
// columns, scaled by the weight scale vector (one fcvtl per block) and by the activation scale by
// element: no shuffles. The operands are 16 (q - 8): scvtf #4 divides by 16 (exact).
//
// Per 32-deep block of the 16x4 tile (qkern_q4_dot_p8_dotprod), 2048 MAC, as counted by qcount
// (scripts/qcount-matmul.sh):
//   128 sdot, 8 unpack (4 shl + 4 and), 1 fcvtl, 16 scvtf, 16 fmul (weight scale), 16 fmla by
//   element (activation scale), no movi: the 16 int32 accumulators are zeroed by 8 ldp from a
//   zero line, on the load ports instead of the SIMD pipes. Loads: 26 ldp + 9 ldr = 35 (61 mem
//   ops). Loop: 5. 225 instructions = 109.9 per 1000 MAC (llama.cpp's dotprod GEMM: 125.8).
//   SIMD 185 slots = 46.25 cycles -> 44.3 MAC/cycle; --mmla-cost does not apply. Bound: SIMD
//   pipes. (f32 scales, 80 bytes per tile and block: 184 slots, 44.5.)
// Smaller tiles (p1..p7: 2..14 rows; an odd row count stores one row less) run the same
// per-pair code (insn / 1000 MAC, MAC/cycle):
//   p4 (8x4) 118.2, 42.2; p2 (4x4) 134.8, 38.6; p1 (2x4) 168.0, 33.0.
// qkern_q4_dot_gemv_dotprod (one row, either half of a pair): 8 sdot + 8 unpack + fcvtl + scvtf +
//   fmul + fmla per block and 4 columns: 250.0 insn / 1000 MAC, 25.6 MAC/cycle (SIMD bound; in
//   practice bound by the weight stream from memory, 18 bytes per column and block).
#include "qkern_asm.h"
#include "q4_gemm.h"

// Register use: v0-v3 weights K 4j..4j+3 (j = 0..3) of columns 0-3, v4-v7 K 16+4j.., v8-v23
// float accumulators (pair p: v(8+2p) row 2p, v(9+2p) row 2p+1), v24-v27 a row pair's activations
// (K 0-7 .. 24-31 of both rows), v28-v29 int32 block sums, v30 0xF0 mask, v31 weight scales
// (f32).
// GPRs as in q4_gemm_i8mm.S.

.macro load_weights
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldr     d31, [x1, #64]
    and     v4.16b, v0.16b, v30.16b
    and     v5.16b, v1.16b, v30.16b
    and     v6.16b, v2.16b, v30.16b
    and     v7.16b, v3.16b, v30.16b
    shl     v0.16b, v0.16b, #4
    shl     v1.16b, v1.16b, #4
    shl     v2.16b, v2.16b, #4
    shl     v3.16b, v3.16b, #4
    fcvtl   v31.4s, v31.4h
.endm

// One row pair p of the current block: 16 sdot (8 per row), then scale and accumulate.
.macro dot_pair p, fa, fb
    ldp     q24, q25, [x12, #(\p * 64)]
    ldp     q26, q27, [x12, #(\p * 64 + 32)]
    ldp     q28, q29, [x11]
    sdot    v28.4s, v0.16b, v24.4b[0]
    sdot    v29.4s, v0.16b, v24.4b[2]
    sdot    v28.4s, v1.16b, v24.4b[1]
    sdot    v29.4s, v1.16b, v24.4b[3]
    sdot    v28.4s, v2.16b, v25.4b[0]
    sdot    v29.4s, v2.16b, v25.4b[2]
    sdot    v28.4s, v3.16b, v25.4b[1]
    sdot    v29.4s, v3.16b, v25.4b[3]
    sdot    v28.4s, v4.16b, v26.4b[0]
    sdot    v29.4s, v4.16b, v26.4b[2]
    sdot    v28.4s, v5.16b, v26.4b[1]
    sdot    v29.4s, v5.16b, v26.4b[3]
    sdot    v28.4s, v6.16b, v27.4b[0]
    sdot    v29.4s, v6.16b, v27.4b[2]
    sdot    v28.4s, v7.16b, v27.4b[1]
    sdot    v29.4s, v7.16b, v27.4b[3]
    ldr     q24, [x13, #(\p * 16)]
    scvtf   v28.4s, v28.4s, #4
    scvtf   v29.4s, v29.4s, #4
    fmul    v28.4s, v28.4s, v31.4s
    fmul    v29.4s, v29.4s, v31.4s
    fmla    v\fa\().4s, v28.4s, v24.s[0]
    fmla    v\fb\().4s, v29.4s, v24.s[2]
.endm

// Rows 2p, 2p+1 plus the bias in v24, stored at x16 and x16 + ldo until x15 rows are
// stored (then on to 3:); x16 advances two rows.
.macro store_acc p, fa, fb
    fadd    v25.4s, v\fa\().4s, v24.4s
    fadd    v26.4s, v\fb\().4s, v24.4s
    store_row_pair
.endm

// void qkern_q4_dot_p<np>_dotprod(const KernelArgs *), np = 1..8: rows 2*np x 4*ntiles columns, of
// which the first ARG_NROWS rows are stored.
.macro dot_kernel np
q4_tile_kernel qkern_q4_dot_p\np\()_dotprod, \np, dot_pair, store_acc
.endm

dot_kernel 8
dot_kernel 7
dot_kernel 6
dot_kernel 5
dot_kernel 4
dot_kernel 3
dot_kernel 2
dot_kernel 1

// void qkern_q4_dot_gemv_dotprod(const KernelArgs *): one row x 4*ntiles columns. The activation
// pointers address the row's half of its pair (+8 bytes for the second row), so the row's bytes
// are lanes 0 and 1 of each 16-byte load (the layout's tail padding covers the last load).
.macro gemv_block
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldr     d31, [x1, #64]
    ldp     q24, q25, [x12]
    ldp     q26, q27, [x12, #32]
    ldr     s23, [x13]
    ldr     q28, [x11]
    and     v4.16b, v0.16b, v30.16b
    and     v5.16b, v1.16b, v30.16b
    and     v6.16b, v2.16b, v30.16b
    and     v7.16b, v3.16b, v30.16b
    shl     v0.16b, v0.16b, #4
    shl     v1.16b, v1.16b, #4
    shl     v2.16b, v2.16b, #4
    shl     v3.16b, v3.16b, #4
    sdot    v28.4s, v0.16b, v24.4b[0]
    sdot    v28.4s, v1.16b, v24.4b[1]
    sdot    v28.4s, v2.16b, v25.4b[0]
    sdot    v28.4s, v3.16b, v25.4b[1]
    sdot    v28.4s, v4.16b, v26.4b[0]
    sdot    v28.4s, v5.16b, v26.4b[1]
    sdot    v28.4s, v6.16b, v27.4b[0]
    sdot    v28.4s, v7.16b, v27.4b[1]
    fcvtl   v31.4s, v31.4h
    scvtf   v28.4s, v28.4s, #4
    fmul    v28.4s, v28.4s, v31.4s
    fmla    v16.4s, v28.4s, v23.s[0]
.endm

q4_gemv_kernel qkern_q4_dot_gemv_dotprod, gemv_block
