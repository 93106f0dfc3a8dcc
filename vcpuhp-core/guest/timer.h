/* SPDX-License-Identifier: MIT */
/*
 * timer.h - the EL1 virtual timer (CNTV_*, PPI 27) and sleeping in WFI.
 *
 * Each CPU uses its virtual timer in one of two ways: the boot CPU for the
 * deadlines of sleep_until() (one-shot), the secondaries for a periodic tick
 * (timer_start_periodic()). The IRQ handler calls timer_interrupt() for
 * PPI 27; it returns 1 for a periodic tick.
 */
#ifndef VCPUHP_TIMER_H
#define VCPUHP_TIMER_H
#include "common.h"

#define PPI_VIRTUAL_TIMER 27U

/* Counter ticks in `us` microseconds (rounded up, at least 1). */
u64 us_to_ticks(u64 us);

/* Re-arm every `period` counter ticks until timer_stop(); interrupts count as ticks. */
void timer_start_periodic(u64 period);
void timer_stop(void);

/* Handle CPU `cpu`'s (this one's) timer interrupt: re-arm a periodic tick
 * (returns 1) or end a one-shot deadline (returns 0). */
int timer_interrupt(u32 cpu);

/*
 * Sleep in WFI until done(arg) is true or `timeout_us` passed; returns done(arg).
 * Call with IRQs unmasked. What makes the condition true must also send this CPU
 * an interrupt (an SGI, the GED); the deadline is a one-shot virtual timer. The
 * condition is checked with IRQs masked right before each WFI, so a wake-up
 * interrupt that arrives in between is not lost (WFI completes while one is
 * pending, masked or not).
 */
int sleep_until(int (*done)(uptr), uptr arg, u32 timeout_us);
#endif
