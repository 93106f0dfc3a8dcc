/* SPDX-License-Identifier: MIT */
/*
 * psci_probe.c - psci-probe: exercises the VMM's PSCI policy from the boot
 * CPU and records each x0 result, in call order, in its status page:
 *
 *   0x40180000 u32 magic 0x50534350 ("PSCP")
 *   0x40180004 u32 count of results stored so far (8 when done)
 *   0x40180008 i64 results[8]
 *   0x40180080 u32 set to 1 by CPU1 once it runs (the probe waits for it,
 *                  up to 5 s, before the second CPU_ON so that call and
 *                  AFFINITY_INFO see a CPU that is really on)
 *
 * and prints "psci <name> -> <value>" for each (decimal). A call whose
 * target CPU does not exist in the MADT is skipped: its result is
 * INT64_MIN and it prints "skipped".
 */
#include "acpi.h"
#include "psci.h"
#include "uart.h"

#define PROBE_PAGE 0x40180000UL
#define PROBE_MAGIC 0x50534350U
#define PROBE_SKIPPED ((i64)(1UL << 63))
#define UNKNOWN_MPIDR 0xFF00FFUL
#define UNKNOWN_FUNCTION 0x8400FFFFUL
#define PROBE_STARTED (PROBE_PAGE + 0x80)

static u32 count;

static void record(const char *name, i64 v)
{
	wr64(PROBE_PAGE + 8 + 8 * count, (u64)v);
	dmb_ish();
	wr32(PROBE_PAGE + 4, ++count);
	flush_range(PROBE_PAGE, 8 + 8 * count);
	uart_puts("psci ");
	uart_puts(name);
	uart_puts(" -> ");
	if (v == PROBE_SKIPPED)
		uart_puts("skipped");
	else
		uart_put_dec(v);
	uart_putc('\n');
}

static void cpu_on(const char *name, int idx, u64 mpidr)
{
	record(name, idx < 0 ? PROBE_SKIPPED : psci_cpu_on(mpidr, (u64)(uptr)secondary_entry, (u64)idx));
}

static void affinity_info(const char *name, int idx)
{
	i64 r = PROBE_SKIPPED;

	if (idx >= 0) {
		/* A CPU just started may briefly report ON_PENDING: allow it 2 s. */
		u64 ticks = counter_freq() * 2, start = counter_now();

		for (u32 n = 0; n < 100000U; n++) {
			r = psci_affinity_info(acpi.mpidr[idx]);
			if (r != PSCI_AFF_ON_PENDING || counter_now() - start >= ticks)
				break;
			spin_delay_us(100);
		}
	}
	record(name, r);
}

void boot_main(const char *cmdline, u64 rsdp)
{
	int cpu1 = -1, disabled = -1;

	(void)cmdline;
	for (u32 i = 0; i < 0x100; i += 4)
		wr32(PROBE_PAGE + i, 0);
	dmb_ish();
	wr32(PROBE_PAGE, PROBE_MAGIC);
	flush_range(PROBE_PAGE, 0x100);
	uart_puts("psci-probe: start\n");

	if (acpi_parse(rsdp) == 0) {
		if (acpi.ncpus > 1)
			cpu1 = 1;
		for (u32 i = 0; i < acpi.ncpus; i++)
			if ((acpi.flags[i] & (MADT_GICC_ENABLED | MADT_GICC_ONLINE_CAPABLE)) ==
			    MADT_GICC_ONLINE_CAPABLE)
				disabled = (int)i;
	}

	record("version", psci_call(PSCI_VERSION, 0, 0, 0));
	cpu_on("cpu_on_cpu1", cpu1, cpu1 < 0 ? 0 : acpi.mpidr[cpu1]);
	if (cpu1 >= 0 && !poll_u8(PROBE_STARTED, 1, 5000))
		uart_puts("psci-probe: cpu1 did not start within 5 s\n");
	cpu_on("cpu_on_cpu1_again", cpu1, cpu1 < 0 ? 0 : acpi.mpidr[cpu1]);
	cpu_on("cpu_on_unknown", 0, UNKNOWN_MPIDR);
	cpu_on("cpu_on_disabled", disabled, disabled < 0 ? 0 : acpi.mpidr[disabled]);
	affinity_info("affinity_info_cpu1", cpu1);
	affinity_info("affinity_info_disabled", disabled);
	record("unknown_function", psci_call(UNKNOWN_FUNCTION, 0, 0, 0));
	uart_puts("psci-probe done\n");
	for (;;)
		wfi(); /* IRQs stay masked */
}

void secondary_main(u64 idx)
{
	(void)idx;
	wr8(PROBE_STARTED, 1);
	flush_range(PROBE_STARTED, 1);
	for (;;)
		wfi();
}

void irq_handler(void)
{
	u32 intid = (u32)read_sysreg(ICC_IAR1_EL1) & 0xFFFFFFU;

	if (intid < 1020)
		write_sysreg(ICC_EOIR1_EL1, intid);
}

void exception_handler(u64 vec, u64 esr, u64 elr, u64 far)
{
	uart_puts("psci-probe: fatal exception vector ");
	uart_put_hex(vec);
	uart_puts(" esr ");
	uart_put_hex(esr);
	uart_puts(" elr ");
	uart_put_hex(elr);
	uart_puts(" far ");
	uart_put_hex(far);
	uart_putc('\n');
}
