// Q4_0 x int8 matmul micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts: src/arch/aarch64/pack.rs (Layout::Mmla: per column tile of 4 and block of 32, 64
// bytes of nibbles XORed with 0x88 as [col 2cp: 8 bytes][col 2cp+1: 8 bytes] registers, then the
// 4 weight scales / 16 as f32) and src/arch/aarch64/act.rs (row pairs, 8 bytes of each row in
// turn, scales [d0, d0, d1, d1]). An SMMLA result [r0c0, r0c1, r1c0, r1c1] therefore meets the
// activation scales in their stored order and the weight scales as [w0, w1, w0, w1] (ld1r .2d):
// no uzp, no fcvtl, no float shuffles in the loop.
//
// Per 32-deep block of the 16x4 tile (qkern_q4_mmla_p8_i8mm), 2048 MAC, as counted by qcount
// (scripts/qcount-matmul.sh):
//   64 smmla, 8 unpack (4 shl + 4 and), 16 scvtf, 16 fmul (weight scale), 16 fmla (activation
//   scale), no movi: the 16 int32 accumulators are zeroed by 8 ldp from a zero line, on the load
//   ports instead of the SIMD pipes. Loads: 26 ldp + 9 ld1r + 8 ldr = 43 (69 mem ops). Loop: 6.
//   169 instructions = 82.5 per 1000 MAC (llama.cpp's i8mm GEMM: 102.3).
//   --mmla-cost 1: SIMD 120 slots = 30 cycles -> 68.3 MAC/cycle (loads 23 c, decode 21 c).
//   --mmla-cost 2: SIMD 184 slots = 46 cycles -> 44.5 MAC/cycle. Bound: SIMD pipes in both.
// What is left beside the SMMLAs is the float epilogue (3 ops per 4 outputs and block); with movi
// zeroing it would be 200 slots at cost 2 (41.0 MAC/cycle).
// Smaller tiles (p1..p7: 2..14 rows; an odd row count stores one row less) run the same
// per-pair code (insn / 1000 MAC, MAC/cycle at cost 1 / 2):
//   p4 (8x4) 90.8, 64.0 / 42.7; p2 (4x4) 107.4, 56.9 / 39.4; p1 (2x4) 140.6, 46.6 / 34.1.
// qkern_q4_mmla_gemv_i8mm (M = 1, on a pair that holds its one row twice) uses vector SDOT:
//   8 sdot + 8 unpack + addp + scvtf + fmul + fmla per block and 4 columns: 250 insn / 1000 MAC,
//   25.6 MAC/cycle (SIMD bound; in practice bound by the weight stream from memory).
#include "qkern_asm.h"
#include "q4_gemm.h"

// Register use: v0-v7 unpacked weights (v0-v3: columns 0-1, K 0-7, 8-15, 16-23, 24-31; v4-v7:
// columns 2-3), v8-v23 float accumulators (pair p: v(8+2p) columns 0-1, v(9+2p) columns 2-3),
// v24-v27 a row pair's activations (K 0-7 .. 24-31), v28-v29 int32 block sums, v30 0xF0 mask,
// v31 weight scales [w0, w1, w0, w1].
// x1 weights, x2/x3 activation values/scales of block 0, x4 activation block stride, x5 kb,
// x6 tiles left, x7 output, x8 ldo, x9 bias, x10 bias step, x11 zeros, x12/x13 activation
// values/scales of the current block, x14 blocks left, x15 weight scale pointer, x16 store pointer.

// Loads and unpacks one block of weights (4 columns) into v0-v7, and [w0, w1, w0, w1] into v31.
.macro load_weights
    ldp     q0, q1, [x1]
    ldp     q4, q5, [x1, #32]
    add     x15, x1, #64
    ld1r    {v31.2d}, [x15], #8
    and     v2.16b, v0.16b, v30.16b
    and     v3.16b, v1.16b, v30.16b
    shl     v0.16b, v0.16b, #4
    shl     v1.16b, v1.16b, #4
    and     v6.16b, v4.16b, v30.16b
    and     v7.16b, v5.16b, v30.16b
    shl     v4.16b, v4.16b, #4
    shl     v5.16b, v5.16b, #4
.endm

// One row pair p of the current block: 8 smmla, then scale and accumulate into v\fa, v\fb.
.macro mmla_pair p, fa, fb
    ldp     q24, q25, [x12, #(\p * 64)]
    ldp     q26, q27, [x12, #(\p * 64 + 32)]
    ldp     q28, q29, [x11]
    smmla   v28.4s, v24.16b, v0.16b
    smmla   v29.4s, v24.16b, v4.16b
    smmla   v28.4s, v25.16b, v1.16b
    smmla   v29.4s, v25.16b, v5.16b
    smmla   v28.4s, v26.16b, v2.16b
    smmla   v29.4s, v26.16b, v6.16b
    smmla   v28.4s, v27.16b, v3.16b
    smmla   v29.4s, v27.16b, v7.16b
    ld1r    {v24.2d}, [x15]
    ldr     q25, [x13, #(\p * 16)]
    scvtf   v28.4s, v28.4s
    scvtf   v29.4s, v29.4s
    fmul    v28.4s, v28.4s, v31.4s
    fmul    v29.4s, v29.4s, v24.4s
    fmla    v\fa\().4s, v28.4s, v25.4s
    fmla    v\fb\().4s, v29.4s, v25.4s
.endm

// Rows 2p, 2p+1 of the tile from v\fa ([r0c0 r0c1 r1c0 r1c1]) and v\fb (columns 2-3), plus the
// bias in v24.
.macro store_acc p, fa, fb
    zip1    v25.2d, v\fa\().2d, v\fb\().2d
    zip2    v26.2d, v\fa\().2d, v\fb\().2d
    fadd    v25.4s, v25.4s, v24.4s
    fadd    v26.4s, v26.4s, v24.4s
    store_row_pair
.endm

// void qkern_q4_mmla_p<np>_i8mm(const KernelArgs *), np = 1..8: rows 2*np (np row pairs) x
// 4*ntiles columns, of which the first ARG_NROWS rows are stored.
.macro mmla_kernel np
q4_tile_kernel qkern_q4_mmla_p\np\()_i8mm, \np, mmla_pair, store_acc
.endm

mmla_kernel 8
mmla_kernel 7
mmla_kernel 6
mmla_kernel 5
mmla_kernel 4
mmla_kernel 3
mmla_kernel 2
mmla_kernel 1

// void qkern_q4_mmla_gemv_i8mm(const KernelArgs *): one row x 4*ntiles columns. The row pair
// must hold the same row twice (the last pair of an odd M), so each activation register is
// [x: 8 bytes][x: 8 bytes] and vector SDOT against [col c: 8][col c+1: 8] gives four partial sums
// [c: K 0-3, c: K 4-7, c+1: K 0-3, c+1: K 4-7]; addp folds them.
.macro gemv_block
    ldp     q0, q1, [x1]
    ldp     q4, q5, [x1, #32]
    ldr     q31, [x1, #64]
    ldp     q24, q25, [x12]
    ldp     q26, q27, [x12, #32]
    ldr     s23, [x13]
    ldp     q28, q29, [x11]
    and     v2.16b, v0.16b, v30.16b
    and     v3.16b, v1.16b, v30.16b
    shl     v0.16b, v0.16b, #4
    shl     v1.16b, v1.16b, #4
    and     v6.16b, v4.16b, v30.16b
    and     v7.16b, v5.16b, v30.16b
    shl     v4.16b, v4.16b, #4
    shl     v5.16b, v5.16b, #4
    sdot    v28.4s, v0.16b, v24.16b
    sdot    v29.4s, v4.16b, v24.16b
    sdot    v28.4s, v1.16b, v25.16b
    sdot    v29.4s, v5.16b, v25.16b
    sdot    v28.4s, v2.16b, v26.16b
    sdot    v29.4s, v6.16b, v26.16b
    sdot    v28.4s, v3.16b, v27.16b
    sdot    v29.4s, v7.16b, v27.16b
    addp    v28.4s, v28.4s, v29.4s
    scvtf   v28.4s, v28.4s
    fmul    v28.4s, v28.4s, v31.4s
    fmla    v16.4s, v28.4s, v23.s[0]
.endm

q4_gemv_kernel qkern_q4_mmla_gemv_i8mm, gemv_block
