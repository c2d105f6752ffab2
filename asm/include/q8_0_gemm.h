/* Packed Q8_0 tile block of the NeonI8mm SMMLA kernels (asm/aarch64/q8_0_gemm_i8mm.S), shared with
 * src/arch/aarch64/q8_mmla.rs: build.rs turns every `#define ARG...` line into a Rust constant
 * that q8_mmla.rs checks against its layout. The kernels take the Q4_0 argument block (`ARG_*` in
 * qkern_asm.h, `KernelArgs` in src/arch/aarch64/matmul_asm.rs). */
#ifndef QKERN_Q8_0_GEMM_H
#define QKERN_Q8_0_GEMM_H

#define ARGQ8_SCALES   128   /* offset of the 4 scales d(col 0..3) as f32, after 8 operand registers */
#define ARGQ8_TILE     144   /* bytes per tile of 4 columns and block of 32 (36 per column) */

#endif
