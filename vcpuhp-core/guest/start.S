/* SPDX-License-Identifier: MIT */
/*
 * start.S - entry points, exception vectors and the PSCI conduit.
 *
 * Boot CPU:   _start          x0 = command line (NUL-terminated), x1 = RSDP
 * Secondary:  secondary_entry x0 = PSCI CPU_ON context id = CPU index
 * Both run at EL1 with the MMU off; they select SP_EL1 and mask DAIF first.
 */

#define MAX_CPUS	512
#define CPU_STACK_SHIFT	12		/* 4 KiB per secondary CPU */
#define BOOT_STACK_SIZE	16384

	.section .text.start, "ax"
	.global _start
_start:
	msr	daifset, #0xf
	msr	spsel, #1
	mov	x19, x0
	mov	x20, x1

	/* Zero .bss (16-byte aligned, size a multiple of 16; see linker.ld). */
	adrp	x0, __bss_start
	add	x0, x0, :lo12:__bss_start
	adrp	x1, __bss_end
	add	x1, x1, :lo12:__bss_end
1:	cmp	x0, x1
	b.hs	2f
	stp	xzr, xzr, [x0], #16
	b	1b
2:
	adrp	x0, boot_stack_top
	add	x0, x0, :lo12:boot_stack_top
	mov	sp, x0
	adrp	x0, vectors
	add	x0, x0, :lo12:vectors
	msr	vbar_el1, x0
	isb

	mov	x0, x19
	mov	x1, x20
	bl	boot_main
3:	wfi
	b	3b

	.text
	.global secondary_entry
	.type	secondary_entry, %function
secondary_entry:
	msr	daifset, #0xf
	msr	spsel, #1
	cmp	x0, #MAX_CPUS
	b.hs	9f			/* no stack for a bogus index: park */
	adrp	x1, cpu_stacks
	add	x1, x1, :lo12:cpu_stacks
	add	x2, x0, #1
	lsl	x2, x2, #CPU_STACK_SHIFT
	add	sp, x1, x2
	adrp	x1, vectors
	add	x1, x1, :lo12:vectors
	msr	vbar_el1, x1
	isb
	bl	secondary_main
9:	wfi
	b	9b
	.size	secondary_entry, . - secondary_entry

/* i64 psci_call(u64 fn, u64 a1, u64 a2, u64 a3): SMCCC via hvc #0, result in x0. */
	.global psci_call
	.type	psci_call, %function
psci_call:
	hvc	#0
	ret
	.size	psci_call, . - psci_call

/*
 * IRQ from the current EL (SP_ELx). The handler runs with PSTATE.I set and
 * takes no exception at EL1 (no nesting, no PSCI call), so ELR_EL1/SPSR_EL1
 * stay intact and are not saved; save the AAPCS64 caller-saved registers and
 * x30, call irq_handler(), restore, eret.
 */
	.type	irq_entry, %function
irq_entry:
	sub	sp, sp, #160
	stp	x0, x1, [sp, #0]
	stp	x2, x3, [sp, #16]
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x30, [sp, #144]
	bl	irq_handler
	ldp	x18, x30, [sp, #144]
	ldp	x16, x17, [sp, #128]
	ldp	x14, x15, [sp, #112]
	ldp	x12, x13, [sp, #96]
	ldp	x10, x11, [sp, #80]
	ldp	x8, x9, [sp, #64]
	ldp	x6, x7, [sp, #48]
	ldp	x4, x5, [sp, #32]
	ldp	x2, x3, [sp, #16]
	ldp	x0, x1, [sp, #0]
	add	sp, sp, #160
	eret
	.size	irq_entry, . - irq_entry

/* Anything else is fatal: exception_handler(vector offset, ESR, ELR, FAR), then park. */
	.type	fatal_entry, %function
fatal_entry:
	mrs	x1, esr_el1
	mrs	x2, elr_el1
	mrs	x3, far_el1
	bl	exception_handler
1:	wfi
	b	1b
	.size	fatal_entry, . - fatal_entry

	.macro	vec_fatal off
	.balign	0x80
	mov	x0, #\off
	b	fatal_entry
	.endm

	.section .text.vectors, "ax"
	.balign	2048
	.global	vectors
vectors:
	vec_fatal 0x000		/* current EL, SP_EL0: sync */
	vec_fatal 0x080		/*                     IRQ */
	vec_fatal 0x100		/*                     FIQ */
	vec_fatal 0x180		/*                     SError */
	vec_fatal 0x200		/* current EL, SP_ELx: sync */
	.balign	0x80		/*                     IRQ (0x280) */
	b	irq_entry
	vec_fatal 0x300		/*                     FIQ */
	vec_fatal 0x380		/*                     SError */
	vec_fatal 0x400		/* lower EL, AArch64 */
	vec_fatal 0x480
	vec_fatal 0x500
	vec_fatal 0x580
	vec_fatal 0x600		/* lower EL, AArch32 */
	vec_fatal 0x680
	vec_fatal 0x700
	vec_fatal 0x780

	.bss
	.balign	16
boot_stack:
	.skip	BOOT_STACK_SIZE
boot_stack_top:
	.balign	16
	.global	cpu_stacks
cpu_stacks:
	.skip	MAX_CPUS << CPU_STACK_SHIFT

	.section .note.GNU-stack, "", %progbits
