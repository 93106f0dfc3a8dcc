/* SPDX-License-Identifier: MIT */
/* timer.c - the EL1 virtual timer: periodic ticks and the deadlines of sleep_until(). */
#include "timer.h"

#define CNTV_CTL_ENABLE (1U << 0)

/* Per-CPU tick period (0: one-shot or off), indexed by this_cpu(). */
static u64 tick_period[MAX_CPUS];

u64 us_to_ticks(u64 us)
{
	u64 ticks = (counter_freq() * us + 999999) / 1000000;

	return ticks ? ticks : 1;
}

void timer_start_periodic(u64 period)
{
	tick_period[this_cpu()] = period;
	write_sysreg(cntv_tval_el0, period);
	write_sysreg(cntv_ctl_el0, CNTV_CTL_ENABLE);
	isb();
}

void timer_stop(void)
{
	tick_period[this_cpu()] = 0;
	write_sysreg(cntv_ctl_el0, 0);
	isb();
}

int timer_interrupt(u32 cpu)
{
	u64 period = tick_period[cpu];

	if (period) {
		write_sysreg(cntv_tval_el0, period); /* the next tick; lowers the line */
		isb();
		return 1;
	}
	write_sysreg(cntv_ctl_el0, 0); /* a deadline passed: the sleeper sees the counter */
	isb();
	return 0;
}

int sleep_until(int (*done)(uptr), uptr arg, u32 timeout_us)
{
	u64 deadline = counter_now() + us_to_ticks(timeout_us);
	int ok;

	tick_period[this_cpu()] = 0;
	write_sysreg(cntv_cval_el0, deadline);
	write_sysreg(cntv_ctl_el0, CNTV_CTL_ENABLE);
	isb();
	for (;;) {
		irq_mask();
		ok = done(arg);
		if (ok || counter_now() >= deadline)
			break;
		wfi();
		irq_unmask(); /* the interrupt that ended the WFI is taken here */
	}
	write_sysreg(cntv_ctl_el0, 0);
	isb();
	irq_unmask();
	return ok;
}
