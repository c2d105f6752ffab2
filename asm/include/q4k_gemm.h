/* Argument block of the Q4_K, Q5_K and Q6_K asm micro-kernels (asm/aarch64/q4k_gemm_*.S,
 * q5k_gemm_*.S, q6k_gemm_i8mm.S): `KArgs` in src/arch/aarch64/q4k_mmla.rs, 8 bytes per field.
 * build.rs turns every `#define ARG...` line into a Rust constant that q4k_mmla.rs checks
 * against `offset_of!`. */
#ifndef QKERN_Q4K_GEMM_H
#define QKERN_Q4K_GEMM_H

#define ARGK_W          0   /* packed weights: first tile, super-block 0 */
#define ARGK_A          8   /* activation values of the first row pair, super-block 0, sub-block 0 */
#define ARGK_AT        16   /* activation tail (H, L, scales) of the first row pair, super-block 0 */
#define ARGK_SUBSTRIDE 24   /* bytes from one activation sub-block to the next (64 * pairs of the group) */
#define ARGK_SBSTRIDE  32   /* bytes from one activation super-block to the next */
#define ARGK_KB        40   /* super-blocks of 256 along K (>= 1) */
#define ARGK_NTILES    48   /* column tiles of 4 (>= 1) */
#define ARGK_OUT       56   /* output of the first row, first tile */
#define ARGK_LDO       64   /* bytes from one output row to the next */
#define ARGK_NROWS     72   /* rows to store (1 .. 2 * row pairs), from the first */
#define ARGK_SIZE      80   /* size of the block */

#endif
