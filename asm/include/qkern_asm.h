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

#endif
