/* Packed Q5_0 tile block of the NeonI8mm SMMLA kernels (asm/aarch64/q5_0_gemm_i8mm.S) and the
 * NeonDot SDOT kernels (q5_0_gemm_dotprod.S), shared with src/arch/aarch64/q5_0_mmla.rs: build.rs
 * turns every `#define ARG...` line into a Rust constant that q5_0_mmla.rs checks against its
 * layout. The two layouts differ only in which value goes to which operand byte. The kernels take
 * the Q4_0 argument block (`ARG_*` in qkern_asm.h, `KernelArgs` in
 * src/arch/aarch64/matmul_asm.rs). */
#ifndef QKERN_Q5_0_GEMM_H
#define QKERN_Q5_0_GEMM_H

#define ARGQ5_FIELDS    64   /* bytes of the four 5-bit field registers R0..R3 of a tile block */
#define ARGQ5_HI        64   /* offset of the fifth register R4 (the top bits of operands 4..7) */
#define ARGQ5_SCALES    80   /* offset of the 4 f16 scales d(col 0..3), as in the file */
#define ARGQ5_TILE      88   /* bytes per tile of 4 columns and block of 32 (22 per column) */


/* The decode both kernels share. v26 0xF8 mask, v27 0xC0 mask. */
.macro q5_setup
    movi    v26.16b, #0xF8
    movi    v27.16b, #0xC0
.endm

/* The 8 operands v0-v7 of one block (4 columns) from the 80 bytes at x1: operand j < 4 is
 * R_j & 0xF8; operand 4 + j takes its low 3 bits from R_j bits 2..0 (shl #3) and its top 2
 * from R4 (bits 7..6, 1..0, 5..4, 3..2 for j = 0, 1, 2, 3). 14 SIMD ops for 8 operands, each
 * byte 8 (q - 16). Clobbers v28, v29. */
.macro q5_unpack
    ldp     q0, q1, [x1]
    ldp     q2, q3, [x1, #32]
    ldr     q28, [x1, #ARGQ5_HI]
    shl     v4.16b, v0.16b, #3
    shl     v5.16b, v1.16b, #3
    shl     v6.16b, v2.16b, #3
    shl     v7.16b, v3.16b, #3
    shl     v29.16b, v28.16b, #2
    bit     v4.16b, v28.16b, v27.16b
    sli     v5.16b, v28.16b, #6
    ushr    v28.16b, v28.16b, #2
    bit     v6.16b, v29.16b, v27.16b
    sli     v7.16b, v28.16b, #6
    and     v0.16b, v0.16b, v26.16b
    and     v1.16b, v1.16b, v26.16b
    and     v2.16b, v2.16b, v26.16b
    and     v3.16b, v3.16b, v26.16b
.endm

#endif
