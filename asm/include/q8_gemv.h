/* The argument block of the Q8_0 GEMV kernels (q8_gemv_dotprod.S): `Q8Args` in
 * src/arch/aarch64/matmul_q8.rs, 8 bytes per field. build.rs turns each `#define ARG... <number>`
 * line of the asm/include headers into a Rust constant that matmul_q8.rs checks against
 * `offset_of!`: an offset changed here or in the struct alone fails the build. */
#ifndef QKERN_Q8_GEMV_H
#define QKERN_Q8_GEMV_H

#define ARG8_W       0   /* weights of the first tile, block 0 */
#define ARG8_A       8   /* activation row 0, block 0 */
#define ARG8_AROW   16   /* bytes from one activation row to the next */
#define ARG8_KB     24   /* blocks of 32 along K (>= 1) */
#define ARG8_NTILES 32   /* column tiles of 4 (>= 1) */
#define ARG8_OUT    40   /* output row 0, first tile */
#define ARG8_LDO    48   /* bytes from one output row to the next */
#define ARG8_SIZE   56   /* size of the block */

/* The kernels load field pairs with one ldp: (W, A), (AROW, KB), (NTILES, OUT). */
.if ARG8_A != ARG8_W + 8 || ARG8_KB != ARG8_AROW + 8 || ARG8_OUT != ARG8_NTILES + 8
.error "q8_gemv.h: an ldp field pair is not adjacent"
.endif

#endif
