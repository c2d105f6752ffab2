// Q5_0 x int8 matmul micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts: weights src/arch/aarch64/q5_0_mmla.rs (per column tile of 4 and block of 32, 88 bytes
// = 22 per column, as GGUF: five 16-byte registers R0..R4 of 5-bit fields, then the 4 scales as
// f16), activations src/arch/aarch64/act.rs (row pairs, 8 bytes of each row in turn, scales
// [d0, d0, d1, d1] f32), shared with the Q4_0 kernels.
// Operands: SMMLA operand o = 4 cp + c (column pair cp, K chunk c) is
// [col 2cp: K 8c..8c+7][col 2cp+1: K 8c..8c+7], bytes 8 (q - 16) (the 5-bit two's complement of
// q - 16 in bits 7..3): operand j < 4 = R_j & 0xF8; operand 4 + j = R_j << 3 (bits 2..0 of R_j
// to bits 5..3) with bits 7..6 from R4 (bit with 0xC0, sli #6, bit of R4 << 2, sli #6 of
// R4 >> 2). 14 SIMD ops per block and tile, no lookup, no extra SMMLA for the fifth bit; the 1/8
// is `scvtf #3` (exact). Scales: `ld1r .4s` of the f16 pairs (d0, d1), (d2, d3) and one fcvtl
// each give [w0 w1 w0 w1], [w2 w3 w2 w3], the order of SMMLA results.
//
// Per 32-deep block of the 16x4 tile (qkern_q5_0_mmla_p8_i8mm), 2048 MAC, counted by qcount
// (scripts/qcount-formats.sh 16, N = 64, K 2048 -> 4096):
//   64 smmla, 14 unpack (5 shl + ushr + 2 bit + 2 sli + 4 and), 2 fcvtl, 16 scvtf, 16 fmul
//   (weight scale), 16 fmla (activation scale); int32 sums zeroed by ldp from a zero line.
//   Loads: 26 ldp + 9 ldr + 2 ld1r = 63 issues. Loop: 6. 171 instructions = 83.5 per 1000 MAC
//   (the SDOT intrinsics kernel it replaces: 181.6).
//   --mmla-cost 1: SIMD 128 slots = 32 cycles -> 64.0 MAC/cycle (loads 21 c, decode 21.4 c).
//   --mmla-cost 2: SIMD 192 slots = 48 cycles -> 42.7 MAC/cycle. Bound: SIMD pipes in both.
// What binds beside the 64 SMMLA: the float step, 3 ops per 4 outputs and block (48), then the
// fifth-bit decode (14, shared by the 8 pairs). 80 bytes hold exactly 128 x 5 bits, so no byte
// is spare for a cheaper decode: every 2-op construction wastes one bit of the 15 spare ones.
// Smaller tiles (p1..p7: 2..14 rows; an odd row count stores one row less) run the same
// per-pair code (insn / 1000 MAC, MAC/cycle at cost 1 / 2):
//   M = 8 (p4) 96.7, 56.9 / 39.4; M = 4 (p2) 123.0, 46.6 / 34.1; M = 2 (p1) 175.8, 34.1 / 26.9.
// qkern_q5_0_mmla_gemv_i8mm (M = 1, on a pair that holds its one row twice) uses vector SDOT:
//   8 sdot + 14 unpack + fcvtl + addp + scvtf + fmul + fmla per block and 4 columns, 8 loads:
//   40 instructions per 88 weight bytes (0.45 per byte), 312.5 per 1000 MAC, 19.0 MAC/cycle
//   (SIMD bound in the model; in practice bound by the weight stream from memory).
#include "qkern_asm.h"
#include "q5_0_gemm.h"
#include "mmla_tile.h"

.if ARGQ5_TILE != ARGQ5_SCALES + 8 || ARGQ5_HI != ARGQ5_FIELDS || ARGQ5_SCALES != ARGQ5_HI + 16
.error "q5_0_gemm.h: unexpected tile block layout"
.endif

// Register use (besides the frame's, mmla_tile.h): v0-v7 weight operands (v0-v3: columns 0-1,
// K 0-7 .. 24-31; v4-v7: columns 2-3), v24-v25 activations (then the pair's activation scales),
// v26 0xF8 mask, v27 0xC0 mask (q5_setup), v28-v29 R4 while unpacking (q5_unpack, both in
// q5_0_gemm.h), then the int32 block sums, v30 / v31 weight scales [w0 w1 w0 w1] / [w2 w3 w2 w3].

// One block of weights: operands and the widened scales [w0 w1 w0 w1], [w2 w3 w2 w3].
.macro load_weights
    add     x15, x1, #ARGQ5_SCALES
    ld1r    {v30.4s}, [x15], #4
    ld1r    {v31.4s}, [x15]
    q5_unpack
    fcvtl   v30.4s, v30.4h
    fcvtl   v31.4s, v31.4h
.endm

// One row pair p of the current block: 8 smmla, then y += (isum / 8) * w * a.
.macro mmla_pair p, fa, fb
    ldp     q24, q25, [x12, #(\p * 64)]
    ldp     q28, q29, [x11]
    smmla   v28.4s, v24.16b, v0.16b
    smmla   v29.4s, v24.16b, v4.16b
    smmla   v28.4s, v25.16b, v1.16b
    smmla   v29.4s, v25.16b, v5.16b
    ldp     q24, q25, [x12, #(\p * 64 + 32)]
    smmla   v28.4s, v24.16b, v2.16b
    smmla   v29.4s, v24.16b, v6.16b
    smmla   v28.4s, v25.16b, v3.16b
    smmla   v29.4s, v25.16b, v7.16b
    ldr     q24, [x13, #(\p * 16)]
    scvtf   v28.4s, v28.4s, #3
    scvtf   v29.4s, v29.4s, #3
    fmul    v28.4s, v28.4s, v30.4s
    fmul    v29.4s, v29.4s, v31.4s
    fmla    v\fa\().4s, v28.4s, v24.4s
    fmla    v\fb\().4s, v29.4s, v24.4s
.endm

.macro mmla_kernel np
mt_tile_kernel qkern_q5_0_mmla_p\np\()_i8mm, \np, q5_setup, load_weights, mmla_pair, ARGQ5_TILE
.endm

mmla_kernel 8
mmla_kernel 7
mmla_kernel 6
mmla_kernel 5
mmla_kernel 4
mmla_kernel 3
mmla_kernel 2
mmla_kernel 1

// One row (the pair holds it twice: [x: 8 bytes][x: 8 bytes]): vector SDOT against
// [col c: 8][col c+1: 8] gives [c: K 0-3, c: K 4-7, c+1: K 0-3, c+1: K 4-7]; addp folds them.
// v17-v20 activations, v21 activation scale, v22-v23 int32 sums, v31 weight scales.
.macro gemv_block
    ldr     d31, [x1, #ARGQ5_SCALES]
    ldp     q17, q18, [x12]
    ldp     q19, q20, [x12, #32]
    ldr     s21, [x13]
    ldp     q22, q23, [x11]
    q5_unpack
    fcvtl   v31.4s, v31.4h
    sdot    v22.4s, v0.16b, v17.16b
    sdot    v23.4s, v4.16b, v17.16b
    sdot    v22.4s, v1.16b, v18.16b
    sdot    v23.4s, v5.16b, v18.16b
    sdot    v22.4s, v2.16b, v19.16b
    sdot    v23.4s, v6.16b, v19.16b
    sdot    v22.4s, v3.16b, v20.16b
    sdot    v23.4s, v7.16b, v20.16b
    addp    v22.4s, v22.4s, v23.4s
    scvtf   v22.4s, v22.4s, #3
    fmul    v22.4s, v22.4s, v31.4s
    fmla    v16.4s, v22.4s, v21.s[0]
.endm

mt_gemv_kernel qkern_q5_0_mmla_gemv_i8mm, q5_setup, gemv_block, ARGQ5_TILE
