/* Packed Q5_0 tile block of the NeonI8mm SMMLA kernels (asm/aarch64/q5_0_gemm_i8mm.S), shared with
 * src/arch/aarch64/q5_0_mmla.rs: build.rs turns every `#define ARG...` line into a Rust constant
 * that q5_0_mmla.rs checks against its layout. The kernels take the Q4_0 argument block
 * (`ARG_*` in qkern_asm.h, `KernelArgs` in src/arch/aarch64/matmul_asm.rs). */
#ifndef QKERN_Q5_0_GEMM_H
#define QKERN_Q5_0_GEMM_H

#define ARGQ5_FIELDS    64   /* bytes of the four 5-bit field registers R0..R3 of a tile block */
#define ARGQ5_HI        64   /* offset of the fifth register R4 (the top bits of operands 4..7) */
#define ARGQ5_SCALES    80   /* offset of the 4 f16 scales d(col 0..3), as in the file */
#define ARGQ5_TILE      88   /* bytes per tile of 4 columns and block of 32 (22 per column) */

#endif
