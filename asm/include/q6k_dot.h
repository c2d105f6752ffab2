/* Argument block of the Q6_K SDOT micro-kernels (asm/aarch64/q6k_gemm_dotprod.S): `DArgs` in
 * src/arch/aarch64/q6k_dot.rs, 8 bytes per field. build.rs turns every `#define ARG...` line
 * into a Rust constant that q6k_dot.rs checks against `offset_of!`. */
#ifndef QKERN_Q6K_DOT_H
#define QKERN_Q6K_DOT_H

#define ARGD_W          0   /* packed weights: first tile, super-block 0 */
#define ARGD_A          8   /* plain ActBlockK rows: block 0 of the first row */
#define ARGD_ASTRIDE   16   /* bytes from one activation row to the next */
#define ARGD_KB        24   /* super-blocks of 256 along K (>= 1) */
#define ARGD_NTILES    32   /* column tiles of 4 (>= 1) */
#define ARGD_OUT       40   /* output of the first row, first tile */
#define ARGD_LDO       48   /* bytes from one output row to the next */
#define ARGD_SIZE      56   /* size of the block */

#endif
