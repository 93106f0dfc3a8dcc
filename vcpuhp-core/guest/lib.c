/* SPDX-License-Identifier: MIT */
/* lib.c - the few libc routines a freestanding gcc build may call, plus polling waits. */
#include "common.h"

void *memset(void *d, int c, unsigned long n)
{
	volatile u8 *p = d; /* volatile: stop gcc turning this back into memset */

	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	volatile u8 *dp = d;
	const volatile u8 *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

void flush_range(uptr a, u64 len)
{
	uptr end = a + len;

	/* 64 bytes is the smallest line size we may meet; extra ops are harmless. */
	dsb_sy();
	for (a &= ~63UL; a < end; a += 64)
		__asm__ volatile("dc civac, %0" ::"r"(a) : "memory");
	dsb_sy();
}

u64 counter_freq(void)
{
	u64 f = read_sysreg(cntfrq_el0) & 0xFFFFFFFFUL;

	return f ? f : 62500000UL; /* QEMU's classic 62.5 MHz if firmware left it 0 */
}

/* Iteration cap for the polling waits (keeps them finite if the counter is frozen). */
#define WAIT_MAX_SPINS (1UL << 28)

int poll_u8(uptr flag, u8 want, u32 timeout_ms)
{
	u64 ticks = counter_freq() / 1000 * timeout_ms;
	u64 start = counter_now();

	for (u64 n = 0; n < WAIT_MAX_SPINS; n++) {
		if (rd8(flag) == want)
			return 1;
		if (counter_now() - start >= ticks)
			break;
		cpu_relax();
	}
	return rd8(flag) == want;
}

void spin_delay_us(u32 us)
{
	u64 ticks = counter_freq() / 1000000 * us;
	u64 start = counter_now();

	for (u64 n = 0; n < WAIT_MAX_SPINS / 1024; n++) {
		if (counter_now() - start >= ticks)
			break;
		cpu_relax();
	}
}
