// Q4_0 x int8 matmul micro-kernels with SMMLA (FEAT_I8MM), for the NeonI8mm tier.
//
// Layouts: src/arch/aarch64/pack.rs (Layout::Mmla: per column tile of 4 and block of 32, 64
// bytes of nibbles XORed with 0x88 as [col 2cp: 8 bytes][col 2cp+1: 8 bytes] registers, then the
// 4 weight scales as f16: 72 bytes, GGUF's 18 per column) and src/arch/aarch64/act.rs (row
// pairs, 8 bytes of each row in turn, scales [d0, d0, d1, d1]). An SMMLA result [r0c0, r0c1,
// r1c0, r1c1] therefore meets the activation scales in their stored order and the weight scales
// as [w0, w1, w0, w1], [w2, w3, w2, w3] (ld1r .2s + fcvtl, once per block); the operands are
// 16 (q - 8), so the int32 -> f32 conversion divides by 16 (scvtf #4, exact). No uzp, no float
// shuffles in the loop.
//
// Per 32-deep block of the 16x4 tile (qkern_q4_mmla_p8_i8mm), 2048 MAC, as counted by qcount
// (scripts/qcount-matmul.sh):
//   64 smmla, 8 unpack (4 shl + 4 and), 2 fcvtl, 16 scvtf, 16 fmul (weight scale), 16 fmla
//   (activation scale), no movi: the 16 int32 accumulators are zeroed by 8 ldp from a zero line,
//   on the load ports instead of the SIMD pipes. Loads: 26 ldp + 2 ld1r + 8 ldr = 36 (62 mem
//   ops). Loop: 6. 164 instructions = 80.1 per 1000 MAC (llama.cpp's i8mm GEMM: 102.3).
//   --mmla-cost 1: SIMD 122 slots = 30.5 cycles -> 67.2 MAC/cycle.
//   --mmla-cost 2: SIMD 186 slots = 46.5 cycles -> 44.0 MAC/cycle. Bound: SIMD pipes in both.
// What is left beside the SMMLAs is the float epilogue (3 ops per 4 outputs and block) and the
// 2 fcvtl of the f16 scales: with the former f32 scales (80 bytes per tile and block) 120 / 184
// slots, 68.3 / 44.5 MAC/cycle, but 8 ld1r more per block (82.5 per 1000 MAC).
// Smaller tiles (p1..p7: 2..14 rows; an odd row count stores one row less) run the same
// per-pair code (insn / 1000 MAC, MAC/cycle at cost 1 / 2):
//   p4 (8x4) 89.8, 62.1 / 41.8; p2 (4x4) 109.4, 53.9 / 37.9; p1 (2x4) 148.4, 42.7 / 32.0.
// qkern_q4_mmla_gemv_i8mm (M = 1, on a pair that holds its one row twice) uses vector SDOT:
//   8 sdot + 8 unpack + addp + fcvtl + scvtf + fmul + fmla per block and 4 columns: 257.8 insn /
//   1000 MAC, 24.4 MAC/cycle (SIMD bound; in practice bound by the weight stream from memory).
#include "qkern_asm.h"
#include "q4_gemm.h"

// Register use: v0-v7 unpacked weights (v0-v3: columns 0-1, K 0-7, 8-15, 16-23, 24-31; v4-v7:
// columns 2-3), v8-v23 float accumulators (pair p: v(8+2p) columns 0-1, v(9+2p) columns 2-3),
// v24-v25 a row pair's activations (K 0-15, then 16-31), v26 weight scales [w2, w3, w2, w3],
// v28-v29 int32 block sums, v30 0xF0 mask, v31 weight scales [w0, w1, w0, w1].
// x1 weights, x2/x3 activation values/scales of block 0, x4 activation block stride, x5 kb,
// x6 tiles left, x7 output, x8 ldo, x9 bias, x10 bias step, x11 zeros, x12/x13 activation
// values/scales of the current block, x14 blocks left, x15 weight scale pointer, x16 store pointer.

// Loads and unpacks one block of weights (4 columns) into v0-v7, the scales into v31, v26.
.macro load_weights
    ldp     q0, q1, [x1]
    ldp     q4, q5, [x1, #32]
    add     x15, x1, #64
    ld1r    {v31.2s}, [x15], #4
    ld1r    {v26.2s}, [x15]
    and     v2.16b, v0.16b, v30.16b
    and     v3.16b, v1.16b, v30.16b
    shl     v0.16b, v0.16b, #4
    shl     v1.16b, v1.16b, #4
    and     v6.16b, v4.16b, v30.16b
    and     v7.16b, v5.16b, v30.16b
    shl     v4.16b, v4.16b, #4
    shl     v5.16b, v5.16b, #4
    fcvtl   v31.4s, v31.4h
    fcvtl   v26.4s, v26.4h
.endm

// One row pair p of the current block: 8 smmla, then scale and accumulate into v\fa, v\fb.
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
    ldr     q25, [x13, #(\p * 16)]
    scvtf   v28.4s, v28.4s, #4
    scvtf   v29.4s, v29.4s, #4
    fmul    v28.4s, v28.4s, v31.4s
    fmul    v29.4s, v29.4s, v26.4s
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
    ldr     d31, [x1, #64]
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
    fcvtl   v31.4s, v31.4h
    scvtf   v28.4s, v28.4s, #4
    fmul    v28.4s, v28.4s, v31.4s
    fmla    v16.4s, v28.4s, v23.s[0]
.endm

q4_gemv_kernel qkern_q4_mmla_gemv_i8mm, gemv_block
