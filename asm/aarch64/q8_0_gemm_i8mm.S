// Q8_0 x int8 matmul micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts: weights src/arch/aarch64/q8_mmla.rs (per column tile of 4 and block of 32, 144 bytes =
// 36 per column, GGUF 34: 8 SMMLA operands o = 4 cp + c = [col 2cp: K 8c..8c+7][col 2cp+1: same],
// then the 4 scales widened to f32 at pack time), activations src/arch/aarch64/act.rs (row pairs,
// scales [d0, d0, d1, d1] f32), shared with the Q4_0 kernels. The operands are the stored bytes;
// `ld1r .2d` of the scales gives [w0 w1 w0 w1], [w2 w3 w2 w3], the order of SMMLA results: the
// loop has no decode, no fcvtl and no shuffle, only SMMLA and the float step.
//
// Per 32-deep block of the 16x4 tile (qkern_q8_0_mmla_p8_i8mm), 2048 MAC, counted by qcount
// (scripts/qcount-formats.sh 16, N = 64, K 2048 -> 4096):
//   64 smmla, 16 scvtf, 16 fmul (weight scale), 16 fmla (activation scale); int32 sums zeroed
//   by ldp from a zero line. Loads: 28 ldp + 8 ldr + 2 ld1r = 66 issues. Loop: 6.
//   156 instructions = 76.2 per 1000 MAC (the inline-asm 8x4 kernel it replaces: 84.0).
//   --mmla-cost 1: SIMD 112 slots = 28 cycles -> 73.2 MAC/cycle (loads 22 c, decode 19.5 c).
//   --mmla-cost 2: SIMD 176 slots = 44 cycles -> 46.6 MAC/cycle. Bound: SIMD pipes in both.
// What binds beside the 64 SMMLA: the float step, 3 ops per 4 outputs and block (scvtf, fmul
// by the weight scales, fmla by the activation scales). It is the floor of per-block scaling:
// each 2x2 result of a block meets two scale vectors (a product per element is unavoidable), and
// the int32 sums of two blocks cannot be added exactly (their scales differ). What the old
// kernel spent beyond it (8 movi zeroing, 2 fcvtl per block, an 8-row tile reloading the
// weights twice per 16 rows) is gone: zeroing by ldp, scales widened at pack time, 16 rows.
// Smaller tiles (p1..p7: 2..14 rows) run the same per-pair code (insn / 1000 MAC, MAC/cycle at
// cost 1 / 2): M = 8 (p4) 82.0, 73.2 / 46.6; M = 4 (p2) 93.8, 64.0 / 46.6 (load bound at cost
// 1); M = 2 (p1) 117.2, 45.2 / 45.2 (load bound).
// qkern_q8_0_mmla_gemv_i8mm (M = 1, on a pair that holds its one row twice) uses vector SDOT:
//   8 sdot + 2 movi + addp + scvtf + fmul + fmla per block and 4 columns, 9 loads (14 issues):
//   27 instructions per 144 weight bytes (0.19 per byte), 210.9 per 1000 MAC, 27.4 MAC/cycle
//   at either cost (load bound in the model; in practice bound by the weight stream).
#include "qkern_asm.h"
#include "q8_0_gemm.h"
#include "mmla_tile.h"

.if ARGQ8_TILE != ARGQ8_SCALES + 16 || ARGQ8_SCALES != 128
.error "q8_0_gemm.h: unexpected tile block layout"
.endif

// Register use (besides the frame's, mmla_tile.h): v0-v7 weight operands (v0-v3: columns 0-1,
// K 0-7 .. 24-31; v4-v7: columns 2-3), v24-v25 activations (then the pair's activation scales),
// v28-v29 the int32 block sums, v30 / v31 weight scales [w0 w1 w0 w1] / [w2 w3 w2 w3].

.macro q8_setup
.endm

// One tile block: 8 operands as stored, the f32 scales (columns 0-1, 2-3) each twice by ld1r.
.macro q8_load_weights
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    add     x15, x1, #ARGQ8_SCALES
    ld1r    {v30.2d}, [x15], #8
    ld1r    {v31.2d}, [x15]
.endm

// One row pair p of the current block: 8 smmla, then y += isum * w * a.
.macro q8_pair p, fa, fb
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
    scvtf   v28.4s, v28.4s
    scvtf   v29.4s, v29.4s
    fmul    v28.4s, v28.4s, v30.4s
    fmul    v29.4s, v29.4s, v31.4s
    fmla    v\fa\().4s, v28.4s, v24.4s
    fmla    v\fb\().4s, v29.4s, v24.4s
.endm

.macro q8_kernel np
mt_tile_kernel qkern_q8_0_mmla_p\np\()_i8mm, \np, q8_setup, q8_load_weights, q8_pair, ARGQ8_TILE
.endm

q8_kernel 8
q8_kernel 7
q8_kernel 6
q8_kernel 5
q8_kernel 4
q8_kernel 3
q8_kernel 2
q8_kernel 1

// One row (the pair holds it twice: [x: 8 bytes][x: 8 bytes]): vector SDOT against
// [col c: 8][col c+1: 8] gives [c: K 0-3, c: K 4-7, c+1: K 0-3, c+1: K 4-7]; addp folds them.
// v17-v20 activations, v21 activation scale, v22-v23 int32 sums (zeroed by movi: the GEMV is
// bound by loads, the SIMD pipes have room), v30 weight scales.
.macro q8_gemv_block
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldr     q30, [x1, #ARGQ8_SCALES]
    ldp     q17, q18, [x12]
    ldp     q19, q20, [x12, #32]
    ldr     s21, [x13]
    movi    v22.16b, #0
    movi    v23.16b, #0
    sdot    v22.4s, v0.16b, v17.16b
    sdot    v23.4s, v4.16b, v17.16b
    sdot    v22.4s, v1.16b, v18.16b
    sdot    v23.4s, v5.16b, v18.16b
    sdot    v22.4s, v2.16b, v19.16b
    sdot    v23.4s, v6.16b, v19.16b
    sdot    v22.4s, v3.16b, v20.16b
    sdot    v23.4s, v7.16b, v20.16b
    addp    v22.4s, v22.4s, v23.4s
    scvtf   v22.4s, v22.4s
    fmul    v22.4s, v22.4s, v30.4s
    fmla    v16.4s, v22.4s, v21.s[0]
.endm

mt_gemv_kernel qkern_q8_0_mmla_gemv_i8mm, q8_setup, q8_gemv_block, ARGQ8_TILE
