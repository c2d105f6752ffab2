/* Shared assembler macros for asm/aarch64: one source for ELF (Linux, Android) and Mach-O (macOS, iOS).
 *
 *   function name ... endfunc name   a global, hidden, 16-byte aligned routine with CFI
 *   LOCAL(label)                     an assembler-local label (not in the symbol table)
 *
 * These are assembler macros, not C macros with `;` separators: on Mach-O `;` starts a comment.
 * Routines are leaf functions that keep the frame record untouched, so the CFA stays at sp and the
 * return address in x30: `.cfi_startproc` alone describes them completely for unwinders.
 * Routines that save registers on the stack must add `.cfi_def_cfa_offset` / `.cfi_offset`. */
#ifndef QKERN_ASM_H
#define QKERN_ASM_H

#ifdef __APPLE__
#define EXTERN _
#define LOCAL(label) L##label
#else
#define EXTERN
#define LOCAL(label) .L##label
#endif

.macro function name
    .text
    .p2align 4
    .globl EXTERN\name
#ifdef __APPLE__
    .private_extern EXTERN\name
#else
    .hidden EXTERN\name
    .type EXTERN\name, %function
#endif
EXTERN\name:
    .cfi_startproc
.endm

.macro endfunc name
    .cfi_endproc
#ifndef __APPLE__
    .size EXTERN\name, . - EXTERN\name
#endif
.endm

/* save_d8_d15 / restore_d8_d15: the AAPCS64 callee-saved low halves of v8-v15, for routines that
 * use all 32 vector registers. 64 bytes of stack, described for unwinders (DWARF 72.. = d8..). */
.macro save_d8_d15
    stp     d8, d9, [sp, #-64]!
    .cfi_def_cfa_offset 64
    .cfi_offset 72, -64
    .cfi_offset 73, -56
    stp     d10, d11, [sp, #16]
    .cfi_offset 74, -48
    .cfi_offset 75, -40
    stp     d12, d13, [sp, #32]
    .cfi_offset 76, -32
    .cfi_offset 77, -24
    stp     d14, d15, [sp, #48]
    .cfi_offset 78, -16
    .cfi_offset 79, -8
.endm

.macro restore_d8_d15
    ldp     d14, d15, [sp, #48]
    ldp     d12, d13, [sp, #32]
    ldp     d10, d11, [sp, #16]
    ldp     d8, d9, [sp], #64
    .cfi_def_cfa_offset 0
.endm

/* Offsets in the argument block that every q4 matmul micro-kernel takes in x0
 * (`KernelArgs` in src/arch/aarch64/matmul_asm.rs, 8 bytes per field). build.rs turns each
 * `#define ARG... <number>` line of the asm/include headers into a Rust constant that
 * matmul_asm.rs checks against `offset_of!`: an offset changed here or in the struct alone
 * fails the build. */
#define ARG_W        0   /* packed weights, first tile, block 0 */
#define ARG_A        8   /* activation values of the first row pair, block 0 */
#define ARG_AS      16   /* activation scales of the first row pair, block 0 */
#define ARG_ASTRIDE 24   /* bytes from one activation block to the next */
#define ARG_KB      32   /* blocks of 32 along K (>= 1) */
#define ARG_NTILES  40   /* column tiles of 4 (>= 1) */
#define ARG_OUT     48   /* output of the first row, first tile */
#define ARG_LDO     56   /* bytes from one output row to the next */
#define ARG_BIAS    64   /* 4 f32 added to each tile's columns */
#define ARG_BIASINC 72   /* bytes from one tile's bias to the next (16, or 0 for a zero bias) */
#define ARG_ZEROS   80   /* 64 zero bytes */
#define ARG_NROWS   88   /* rows to store (1 .. 2 * row pairs), from the first */
#define ARG_SIZE    96   /* size of the block */

/* Applies macro \m to the accumulator register pairs (v8+2p, v9+2p) of the first \np row
 * pairs p (the row-pair tile kernels: q4_gemm.h, q4k_gemm_i8mm.S). */
.macro for_pairs np, m
    \m      0, 8, 9
.if \np > 1
    \m      1, 10, 11
.endif
.if \np > 2
    \m      2, 12, 13
.endif
.if \np > 3
    \m      3, 14, 15
.endif
.if \np > 4
    \m      4, 16, 17
.endif
.if \np > 5
    \m      5, 18, 19
.endif
.if \np > 6
    \m      6, 20, 21
.endif
.if \np > 7
    \m      7, 22, 23
.endif
.endm

#endif
