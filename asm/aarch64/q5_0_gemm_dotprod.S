// Q5_0 x int8 matmul micro-kernels with SDOT (FEAT_DotProd), for the NeonDot tier.
//
// Layouts: weights src/arch/aarch64/q5_0_dot.rs (per column tile of 4 and block of 32, 88 bytes
// = 22 per column, as GGUF: the five registers R0..R4 of the SMMLA kernel (q5_0_gemm_i8mm.S),
// then the 4 scales as f16, with the SDOT operand order), activations src/arch/aarch64/act.rs
// (row pairs, 8 bytes of each row in turn, scales [d0, d0, d1, d1] f32), shared with Q4_0.
// Operands: operand o (v0-v7) = [col 0: K 4o..4o+3][col 1: same][col 2][col 3], the SDOT
// by-element operand of Q4_0's Layout::Dot, bytes 8 (q - 16); made by the SMMLA kernel's 14 ops
// (q5_unpack in q5_0_gemm.h: & 0xF8, << 3 + 2 bit + 2 sli of R4), which only need operand j and
// 4 + j to share their bytes, whatever their order. SDOT by element takes 4 activation bytes of
// one row (lanes 0, 1: the pair's first row; 2, 3: its second), so a result is one row x
// [c0 c1 c2 c3]: scaled by `scvtf #3` (the 1/8, exact), the weight scales as one fcvtl widens
// them, and the activation scale by element. No shuffles.
//
// Per 32-deep block of the 16x4 tile (qkern_q5_0_dot_p8_dotprod), 2048 MAC, counted by qcount
// (scripts/qcount-formats.sh 16, N = 64, K 2048 -> 4096, with the matmul_asm driver):
//   128 sdot, 14 unpack, 1 fcvtl, 16 scvtf, 16 fmul (weight scale), 16 fmla by element
//   (activation scale); int32 sums zeroed by ldp from a zero line. Loads: 3 + 1 (weights)
//   + 8 x 4 (activations, zeros, activation scales) = 36 instructions, 62 issues. Loop: 5.
//   232 instructions = 113.3 per 1000 MAC (the SDOT intrinsics kernel it replaces: 181.6).
//   SIMD 191 slots = 47.75 cycles -> 42.9 MAC/cycle (decode 29.0 c, loads 20.7 c);
//   --mmla-cost does not apply (no SMMLA). Bound: SIMD pipes (the intrinsics kernel: 29.7).
// What binds beside the 128 SDOT: the float step, 3 ops per row and block (48), then the
// fifth-bit decode, 14 + 1 fcvtl shared by the 8 pairs. Zeroing the int32 sums by ldp (one
// per pair) keeps 16 movi off the SIMD pipes.
// Smaller tiles (p1..p7: 2..14 rows; an odd row count stores one row less) run the same
// per-pair code (insn / 1000 MAC, MAC/cycle):
//   M = 8 (p4) 125.0, 39.8; M = 4 (p2) 148.4, 34.7; M = 2 (p1) 195.3, 27.7.
// qkern_q5_0_dot_gemv_dotprod (M = 1: one row, either half of a pair): 8 sdot + 14 unpack +
//   fcvtl + scvtf + fmul + fmla per block and 4 columns, 8 loads, 5 loop: 39 instructions per
//   88 weight bytes (0.44 per byte), 304.7 per 1000 MAC, 19.7 MAC/cycle (SIMD bound in the
//   model; in practice bound by the weight stream from memory; the intrinsics kernel: 335.9).
#include "qkern_asm.h"
#include "q5_0_gemm.h"
#include "mmla_tile.h"

.if ARGQ5_TILE != ARGQ5_SCALES + 8 || ARGQ5_HI != ARGQ5_FIELDS || ARGQ5_SCALES != ARGQ5_HI + 16
.error "q5_0_gemm.h: unexpected tile block layout"
.endif

// Register use (besides the frame's, mmla_tile.h): v0-v7 weight operands (K 4o..4o+3 of
// columns 0-3), v8-v23 float accumulators (pair p: v(8+2p) row 2p, v(9+2p) row 2p+1, lanes
// [c0 c1 c2 c3]), v24-v25 activations (then the pair's activation scales), v26 0xF8 mask,
// v27 0xC0 mask (q5_setup), v28-v29 R4 while unpacking (q5_unpack), then the int32 block sums,
// v31 weight scales [w0 w1 w2 w3].

// One block of weights: operands and the widened scales.
.macro load_weights
    ldr     d31, [x1, #ARGQ5_SCALES]
    q5_unpack
    fcvtl   v31.4s, v31.4h
.endm

// One row pair p of the current block: 16 sdot (8 per row), then y += (isum / 8) * w * a.
// Activation register lanes: [row 0: K 4i..][row 0: K 4i+4..][row 1: K 4i..][row 1: K 4i+4..].
.macro dot_pair p, fa, fb
    ldp     q24, q25, [x12, #(\p * 64)]
    ldp     q28, q29, [x11]
    sdot    v28.4s, v0.16b, v24.4b[0]
    sdot    v29.4s, v0.16b, v24.4b[2]
    sdot    v28.4s, v1.16b, v24.4b[1]
    sdot    v29.4s, v1.16b, v24.4b[3]
    sdot    v28.4s, v2.16b, v25.4b[0]
    sdot    v29.4s, v2.16b, v25.4b[2]
    sdot    v28.4s, v3.16b, v25.4b[1]
    sdot    v29.4s, v3.16b, v25.4b[3]
    ldp     q24, q25, [x12, #(\p * 64 + 32)]
    sdot    v28.4s, v4.16b, v24.4b[0]
    sdot    v29.4s, v4.16b, v24.4b[2]
    sdot    v28.4s, v5.16b, v24.4b[1]
    sdot    v29.4s, v5.16b, v24.4b[3]
    sdot    v28.4s, v6.16b, v25.4b[0]
    sdot    v29.4s, v6.16b, v25.4b[2]
    sdot    v28.4s, v7.16b, v25.4b[1]
    sdot    v29.4s, v7.16b, v25.4b[3]
    ldr     q24, [x13, #(\p * 16)]
    scvtf   v28.4s, v28.4s, #3
    scvtf   v29.4s, v29.4s, #3
    fmul    v28.4s, v28.4s, v31.4s
    fmul    v29.4s, v29.4s, v31.4s
    fmla    v\fa\().4s, v28.4s, v24.s[0]
    fmla    v\fb\().4s, v29.4s, v24.s[2]
.endm

// Rows 2p (v\fa), 2p+1 (v\fb) plus the bias in v24; stores until x15 rows are stored (then on
// to 3:).
.macro dot_store p, fa, fb
    fadd    v28.4s, v\fa\().4s, v24.4s
    fadd    v29.4s, v\fb\().4s, v24.4s
    str     q28, [x16]
    subs    x15, x15, #1
    b.eq    3f
    add     x16, x16, x8
    str     q29, [x16]
    subs    x15, x15, #1
    b.eq    3f
    add     x16, x16, x8
.endm

// void qkern_q5_0_dot_p<np>_dotprod(const KernelArgs *), np = 1..8: rows 2*np x 4*ntiles
// columns, of which the first ARG_NROWS rows are stored.
.macro dot_kernel np
mt_tile_kernel qkern_q5_0_dot_p\np\()_dotprod, \np, q5_setup, load_weights, dot_pair, ARGQ5_TILE, dot_store
.endm

dot_kernel 8
dot_kernel 7
dot_kernel 6
dot_kernel 5
dot_kernel 4
dot_kernel 3
dot_kernel 2
dot_kernel 1

// void qkern_q5_0_dot_gemv_dotprod(const KernelArgs *): one row x 4*ntiles columns. The
// activation pointers address the row's half of its pair (+8 bytes for the second row), so the
// row's bytes are lanes 0 and 1 of each 16-byte load (the layout's tail padding covers the last
// load). v17-v20 activations, v21 activation scale, v22 int32 sum, v31 weight scales.
.macro gemv_block
    ldr     d31, [x1, #ARGQ5_SCALES]
    ldp     q17, q18, [x12]
    ldp     q19, q20, [x12, #32]
    ldr     s21, [x13]
    ldr     q22, [x11]
    q5_unpack
    fcvtl   v31.4s, v31.4h
    sdot    v22.4s, v0.16b, v17.4b[0]
    sdot    v22.4s, v1.16b, v17.4b[1]
    sdot    v22.4s, v2.16b, v18.4b[0]
    sdot    v22.4s, v3.16b, v18.4b[1]
    sdot    v22.4s, v4.16b, v19.4b[0]
    sdot    v22.4s, v5.16b, v19.4b[1]
    sdot    v22.4s, v6.16b, v20.4b[0]
    sdot    v22.4s, v7.16b, v20.4b[1]
    scvtf   v22.4s, v22.4s, #3
    fmul    v22.4s, v22.4s, v31.4s
    fmla    v16.4s, v22.4s, v21.s[0]
.endm

mt_gemv_kernel qkern_q5_0_dot_gemv_dotprod, q5_setup, gemv_block, ARGQ5_TILE
