/* Tile super-block layout of the Q5_K SMMLA micro-kernels (asm/aarch64/q5k_gemm_i8mm.S; the
 * argument block is the Q4_K one, q4k_gemm.h). build.rs turns every `#define ARG...` line into a
 * Rust constant that src/arch/aarch64/q5k_mmla.rs checks against its layout. */
#ifndef QKERN_Q5K_GEMM_H
#define QKERN_Q5K_GEMM_H

#define ARGQ5K_SUB     80   /* bytes of one sub-block (R0..R4, 16 bytes each) */
#define ARGQ5K_SC     640   /* sub-scales u8 [8][4] */
#define ARGQ5K_MINS   672   /* mins u8 [col][8] */
#define ARGQ5K_D      704   /* d f16 [4], then dmin f16 [4] */
#define ARGQ5K_TILE   720   /* bytes per tile of 4 columns and super-block (180 per column) */

#endif
