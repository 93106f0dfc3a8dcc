/* SPDX-License-Identifier: MIT */
/*
 * main.c - vcpuhp-guest: the OS side of ARM64 ACPI CPU hotplug.
 *
 * Boot CPU: parse ACPI, set up the GIC, online the cold-booted CPUs up to
 * maxcpus=, print the sysfs-style masks, then sleep in WFI until the GED
 * interrupt brings an event: CPU hotplug runs the equivalent of
 * \_SB.CPUS.CSCN against the QEMU-style CPU hotplug register block, the
 * power button powers the machine off (PSCI SYSTEM_OFF). Secondaries sleep
 * in WFI counting their timer ticks until asked to stop, then PSCI CPU_OFF
 * themselves. Every wait is a WFI woken by an interrupt: the other CPU's
 * SGI_WAKE, the GED, or the virtual timer (ticks, deadlines).
 */
#include "acpi.h"
#include "gic.h"
#include "psci.h"
#include "status.h"
#include "timer.h"
#include "uart.h"

/* GED event selector (read clears) and its events. */
#define GED_BASE 0x09080000UL
#define GED_EVT_POWER_DOWN 0x2U
#define GED_EVT_CPU_HOTPLUG 0x8U
#define GED_EVT_KNOWN (GED_EVT_POWER_DOWN | GED_EVT_CPU_HOTPLUG)

/* ACPI CPU hotplug register block (QEMU docs/specs/acpi_cpu_hotplug.rst). */
#define CPUHP_BASE 0x090C0000UL
#define CPUHP_SELECTOR 0x0   /* dword: write = selector, read = command data 2 */
#define CPUHP_FLAGS 0x4      /* byte */
#define CPUHP_CMD 0x5        /* byte, write only */
#define CPUHP_DATA 0x8       /* dword */
#define CPUHP_F_ENABLED 0x01
#define CPUHP_F_INSERT 0x02
#define CPUHP_F_REMOVE 0x04
#define CPUHP_F_EJECT 0x08
#define CPUHP_CMD_NEXT_EVENT 0
#define CPUHP_CMD_OST_EVENT 1
#define CPUHP_CMD_OST_STATUS 2
#define CPUHP_CMD_ARCH_ID 3

/* _OST event and status codes. */
#define OST_EV_DEVICE_CHECK 0x1
#define OST_EV_EJECT_REQUEST 0x3
#define OST_ST_SUCCESS 0x0
#define OST_ST_FAILURE 0x1

#define ONLINE_TIMEOUT_US 5000000U
#define OFFLINE_TIMEOUT_US 5000000U
#define OFF_POLL_US 50U   /* between AFFINITY_INFO calls once the CPU said it stops */
#define TICK_HZ 10U       /* each online secondary's timer tick (its work counter) */

static u32 boot_idx;
/* GED events the boot CPU's IRQ handler read, for its main loop to handle. */
static volatile u32 ged_events;

/* ---------------------------------------------------------------- status */

static void note_psci(i64 r)
{
	if (r < 0) {
		STATUS->last_psci_error = r;
		status_flush();
	}
}

static void status_init(void)
{
	volatile u64 *p = (volatile u64 *)STATUS_PAGE_ADDR;

	for (u64 i = 0; i < sizeof(struct status_page) / 8; i++)
		p[i] = 0;
	STATUS->version = STATUS_VERSION;
	STATUS->fatal_cpu = 0xFFFFFFFFU;
	dmb_ish();
	STATUS->magic = STATUS_MAGIC;
	status_flush();
}

/* Set the state, then bump the generation the host waits on. */
static void publish(u32 state)
{
	STATUS->state = state;
	dmb_ish();
	STATUS->generation = STATUS->generation + 1;
	status_flush();
}

/* ---------------------------------------------------------------- masks */

enum mask_kind { MASK_POSSIBLE, MASK_ENABLED, MASK_ONLINE };

static int in_mask(enum mask_kind k, u32 i)
{
	switch (k) {
	case MASK_ENABLED:
		return STATUS->enabled[i] != 0;
	case MASK_ONLINE:
		return STATUS->online[i] != 0;
	default:
		return 1;
	}
}

/* Linux cpulist format: "0-3,5,7-8"; empty mask prints nothing. */
static void put_cpulist(enum mask_kind k)
{
	u32 n = acpi.ncpus, i = 0;
	int first = 1;

	while (i < n) {
		u32 j;

		if (!in_mask(k, i)) {
			i++;
			continue;
		}
		for (j = i; j + 1 < n && in_mask(k, j + 1); j++)
			;
		if (!first)
			uart_putc(',');
		first = 0;
		uart_put_udec(i);
		if (j > i) {
			uart_putc('-');
			uart_put_udec(j);
		}
		i = j + 1;
	}
}

static void print_masks(void)
{
	uart_puts("possible ");
	put_cpulist(MASK_POSSIBLE);
	uart_puts(" present "); /* present == possible on arm64 */
	put_cpulist(MASK_POSSIBLE);
	uart_puts(" enabled ");
	put_cpulist(MASK_ENABLED);
	uart_puts(" online ");
	put_cpulist(MASK_ONLINE);
	uart_putc('\n');
}

/* ---------------------------------------------------------------- CPU up/down */

static void cpu_msg(u32 idx, const char *msg, i64 val)
{
	uart_puts("vcpuhp-guest: cpu ");
	uart_put_udec(idx);
	uart_puts(msg);
	uart_put_dec(val);
	uart_putc('\n');
}

static void wake_cpu(u32 idx)
{
	gic_send_sgi(acpi.mpidr[idx], SGI_WAKE);
}

static int is_online(uptr idx) { return STATUS->online[idx] != 0; }
static int is_offline(uptr idx) { return STATUS->online[idx] == 0; }
static int never(uptr unused) { (void)unused; return 0; }

/* PSCI CPU_ON idx and sleep until it marks itself online (it then wakes us). */
static int cpu_up(u32 idx, u64 mpidr)
{
	i64 r;

	if (STATUS->online[idx])
		return 1;
	STATUS->stop_request[idx] = 0;
	dmb_ish();
	r = psci_cpu_on(mpidr, (u64)(uptr)secondary_entry, idx);
	if (r != PSCI_RET_SUCCESS) {
		note_psci(r);
		cpu_msg(idx, ": CPU_ON returned ", r);
		if (r != PSCI_RET_ALREADY_ON && r != PSCI_RET_ON_PENDING)
			return 0;
	}
	if (!sleep_until(is_online, idx, ONLINE_TIMEOUT_US)) {
		cpu_msg(idx, ": did not come online, timeout ms ", ONLINE_TIMEOUT_US / 1000);
		return 0;
	}
	return 1;
}

/*
 * Ask idx to stop (stop_request + SGI_WAKE), sleep until it says it stops (it
 * clears online and wakes us right before its CPU_OFF), then ask PSCI until it
 * is OFF. Returns 1 if off.
 */
static int cpu_down(u32 idx)
{
	u64 mpidr = acpi.mpidr[idx];
	u64 deadline = counter_now() + us_to_ticks(OFFLINE_TIMEOUT_US);

	if (STATUS->online[idx]) {
		STATUS->stop_request[idx] = 1;
		status_flush();
		wake_cpu(idx);
		sleep_until(is_offline, idx, OFFLINE_TIMEOUT_US);
	}
	for (;;) {
		i64 r = psci_affinity_info(mpidr);

		if (r == PSCI_AFF_OFF)
			return 1;
		if (r < 0) {
			note_psci(r);
			cpu_msg(idx, ": AFFINITY_INFO returned ", r);
			return 0;
		}
		if (counter_now() >= deadline)
			break;
		sleep_until(never, 0, OFF_POLL_US);
	}
	cpu_msg(idx, ": still not OFF, timeout ms ", OFFLINE_TIMEOUT_US / 1000);
	return 0;
}

/* ---------------------------------------------------------------- CSCN */

static void cpuhp_cmd(u8 cmd) { mmio_write8(CPUHP_BASE + CPUHP_CMD, cmd); }
static void cpuhp_select(u32 idx) { mmio_write32(CPUHP_BASE + CPUHP_SELECTOR, idx); }

/* _OST for the selected CPU: event then status (the status write reports it). */
static void cpuhp_ost(u32 event, u32 status)
{
	cpuhp_cmd(CPUHP_CMD_OST_EVENT);
	mmio_write32(CPUHP_BASE + CPUHP_DATA, event);
	cpuhp_cmd(CPUHP_CMD_OST_STATUS);
	mmio_write32(CPUHP_BASE + CPUHP_DATA, status);
}

static void handle_insert(u32 idx)
{
	u64 arch_id;
	int ok;

	mmio_write8(CPUHP_BASE + CPUHP_FLAGS, CPUHP_F_INSERT); /* clear the insert event */
	cpuhp_cmd(CPUHP_CMD_ARCH_ID);
	arch_id = mmio_read32(CPUHP_BASE + CPUHP_DATA);
	arch_id |= (u64)mmio_read32(CPUHP_BASE + CPUHP_SELECTOR) << 32;
	arch_id &= MPIDR_AFF_MASK;
	if (arch_id != acpi.mpidr[idx])
		cpu_msg(idx, ": arch id differs from MADT MPIDR, using arch id ", (i64)arch_id);
	STATUS->enabled[idx] = 1;
	ok = cpu_up(idx, arch_id);
	cpuhp_ost(OST_EV_DEVICE_CHECK, ok ? OST_ST_SUCCESS : OST_ST_FAILURE);
}

static void handle_remove(u32 idx)
{
	mmio_write8(CPUHP_BASE + CPUHP_FLAGS, CPUHP_F_REMOVE); /* clear the remove event */
	if (idx == boot_idx) {
		cpu_msg(idx, ": refusing to offline the boot CPU, status ", OST_ST_FAILURE);
		cpuhp_ost(OST_EV_EJECT_REQUEST, OST_ST_FAILURE);
		return;
	}
	if (!cpu_down(idx)) {
		cpuhp_select(idx);
		cpuhp_ost(OST_EV_EJECT_REQUEST, OST_ST_FAILURE);
		return;
	}
	STATUS->online[idx] = 0; /* normally already cleared by the CPU itself */
	cpuhp_select(idx);
	mmio_write8(CPUHP_BASE + CPUHP_FLAGS, CPUHP_F_EJECT); /* _EJ0 */
	STATUS->enabled[idx] = 0;
	cpuhp_ost(OST_EV_EJECT_REQUEST, OST_ST_SUCCESS);
}

/* \_SB.CPUS.CSCN: handle every pending insert/remove event. Returns how many. */
static u32 cpu_scan(void)
{
	u32 handled = 0;

	for (u32 iter = 0; iter < 2 * acpi.ncpus + 2; iter++) {
		u32 idx;
		u8 flags;

		cpuhp_cmd(CPUHP_CMD_NEXT_EVENT); /* moves the selector to the next CPU with an event */
		idx = mmio_read32(CPUHP_BASE + CPUHP_DATA);
		if (idx >= acpi.ncpus) {
			cpu_msg(idx, ": hotplug selector out of range, possible ", acpi.ncpus);
			break;
		}
		cpuhp_select(idx);
		flags = mmio_read8(CPUHP_BASE + CPUHP_FLAGS);
		if (flags & CPUHP_F_INSERT)
			handle_insert(idx);
		else if (flags & CPUHP_F_REMOVE)
			handle_remove(idx);
		else
			break; /* no CPU has an event left */
		handled++;
	}
	return handled;
}

/* The GED's events: CPU hotplug scans (CSCN), the power button powers off. */
static void handle_ged_events(u32 events)
{
	if (events & GED_EVT_POWER_DOWN) {
		i64 r;

		uart_puts("vcpuhp-guest: power button: powering off\n");
		r = psci_call(PSCI_SYSTEM_OFF, 0, 0, 0);
		note_psci(r); /* SYSTEM_OFF does not return on success */
		cpu_msg(boot_idx, ": SYSTEM_OFF returned ", r);
	}
	if (events & GED_EVT_CPU_HOTPLUG) {
		u32 n;

		STATUS->state = STATE_HOTPLUG;
		status_flush();
		n = cpu_scan();
		STATUS->events = STATUS->events + n;
		print_masks();
		publish(STATE_IDLE);
	}
}

/* Every CPU's IRQ handler (vector VBAR_EL1 + 0x280), with IRQs masked. */
void irq_handler(void)
{
	u32 intid = gic_ack();

	if (intid >= GIC_SPURIOUS_FIRST && intid <= 1023)
		return;
	if (intid == GED_INTID) {
		u32 sel = mmio_read32(GED_BASE);

		if (sel & ~GED_EVT_KNOWN) {
			uart_puts("vcpuhp-guest: ged: ignoring events ");
			uart_put_hex(sel & ~GED_EVT_KNOWN);
			uart_putc('\n');
		}
		/*
		 * An empty selector is taken as a CPU hotplug event: the scan is
		 * idempotent, and it keeps an event whose selector read got lost
		 * (e.g. an MMIO read replayed by an emulator) from going unnoticed.
		 */
		ged_events = ged_events | (sel ? sel & GED_EVT_KNOWN : GED_EVT_CPU_HOTPLUG);
	} else if (intid == PPI_VIRTUAL_TIMER) {
		u32 cpu = this_cpu();

		if (timer_interrupt(cpu)) {
			STATUS->work[cpu] = STATUS->work[cpu] + 1;
			flush_range((uptr)&STATUS->work[cpu], 8);
		}
	} else if (intid != SGI_WAKE) { /* SGI_WAKE only ends a WFI: its waiter rechecks */
		uart_puts("vcpuhp-guest: unexpected interrupt ");
		uart_put_udec(intid);
		uart_putc('\n');
	}
	gic_eoi(intid);
}

/* ---------------------------------------------------------------- entry points */

/* "maxcpus=N" as a whole word of the command line; returns -1 if absent. */
static i64 parse_maxcpus(uptr cmd)
{
	static const char key[] = "maxcpus=";
	i64 found = -1;

	if (!cmd)
		return -1;
	for (u32 i = 0; i < 4096 && rd8(cmd + i); i++) {
		u32 k = 0;
		u64 v = 0;

		if (i && rd8(cmd + i - 1) != ' ')
			continue;
		while (key[k] && rd8(cmd + i + k) == (u8)key[k])
			k++;
		if (key[k])
			continue;
		i += k;
		if (rd8(cmd + i) < '0' || rd8(cmd + i) > '9')
			continue;
		while (rd8(cmd + i) >= '0' && rd8(cmd + i) <= '9' && v < 100000)
			v = v * 10 + (rd8(cmd + i++) - '0');
		found = (i64)v; /* the last occurrence wins, as in Linux */
	}
	return found;
}

static void fatal(const char *msg)
{
	uart_puts("vcpuhp-guest: fatal: ");
	uart_puts(msg);
	uart_putc('\n');
	STATUS->state = STATE_FATAL;
	status_flush();
}

void boot_main(const char *cmdline, u64 rsdp)
{
	i64 maxcpus;
	int self;
	u32 online = 1;

	status_init();
	maxcpus = parse_maxcpus((uptr)cmdline);
	if (acpi_parse(rsdp) != 0) {
		uart_puts("vcpuhp-guest: booting\n");
		fatal("no usable ACPI tables");
		return;
	}
	if (maxcpus < 0)
		maxcpus = acpi.ncpus;
	uart_puts("vcpuhp-guest: booting, possible=");
	uart_put_udec(acpi.ncpus);
	uart_puts(" maxcpus=");
	uart_put_udec((u64)maxcpus);
	uart_putc('\n');

	self = acpi_cpu_index(read_sysreg(mpidr_el1));
	if (self < 0) {
		fatal("boot CPU MPIDR not in the MADT");
		return;
	}
	boot_idx = (u32)self;
	set_this_cpu(boot_idx);
	STATUS->possible = acpi.ncpus;
	for (u32 i = 0; i < acpi.ncpus; i++)
		STATUS->enabled[i] = (acpi.flags[i] & MADT_GICC_ENABLED) ? 1 : 0;
	STATUS->online[boot_idx] = 1;
	status_flush();

	if (gic_dist_init(acpi.gicd_base, GED_INTID, acpi.mpidr[boot_idx]))
		uart_puts("vcpuhp-guest: gic: GICD_CTLR.RWP stuck\n");
	if (gic_cpu_init(boot_idx))
		uart_puts("vcpuhp-guest: gic: boot CPU redistributor not found or not awake\n");

	for (u32 i = 0; i < acpi.ncpus && online < (u64)maxcpus; i++) {
		if (i == boot_idx || !STATUS->enabled[i])
			continue;
		if (cpu_up(i, acpi.mpidr[i]))
			online++;
	}

	print_masks();
	publish(STATE_IDLE);
	for (;;) {
		u32 events;

		irq_mask();
		while (!(events = ged_events)) {
			wfi();
			irq_unmask(); /* the GED interrupt (or an SGI) is taken here */
			irq_mask();
		}
		ged_events = 0;
		irq_unmask();
		handle_ged_events(events);
	}
}

void secondary_main(u64 idx)
{
	if (idx >= acpi.ncpus || acpi.mpidr[idx] != (read_sysreg(mpidr_el1) & MPIDR_AFF_MASK)) {
		uart_puts("vcpuhp-guest: secondary context id does not match MPIDR_EL1, parking\n");
		return;
	}
	set_this_cpu((u32)idx);
	if (gic_cpu_init((u32)idx))
		cpu_msg((u32)idx, ": redistributor not found or not awake, status ", -1);

	dmb_ish();
	STATUS->online[idx] = 1;
	dmb_ish();
	status_flush();
	wake_cpu(boot_idx); /* it sleeps in cpu_up() until we are online */

	/* Work: count timer ticks, sleeping in WFI in between, until asked to stop. */
	timer_start_periodic(us_to_ticks(1000000U / TICK_HZ));
	irq_mask();
	while (!STATUS->stop_request[idx]) {
		wfi();
		irq_unmask(); /* a tick, or the boot CPU's SGI_WAKE with stop_request */
		irq_mask();
	}
	timer_stop();

	STATUS->online[idx] = 0;
	dmb_ish();
	status_flush();
	wake_cpu(boot_idx); /* it sleeps in cpu_down() until we stop */
	{
		i64 r = psci_call(PSCI_CPU_OFF, 0, 0, 0);

		/* CPU_OFF does not return on success. */
		note_psci(r);
		cpu_msg((u32)idx, ": CPU_OFF returned ", r);
	}
}

void exception_handler(u64 vec, u64 esr, u64 elr, u64 far)
{
	int cpu = acpi.ncpus ? acpi_cpu_index(read_sysreg(mpidr_el1)) : -1;

	STATUS->fatal_esr = esr;
	STATUS->fatal_elr = elr;
	STATUS->fatal_far = far;
	STATUS->fatal_vector = (u32)vec;
	STATUS->fatal_cpu = (u32)cpu;
	dmb_ish();
	STATUS->state = STATE_FATAL;
	status_flush();
	uart_puts("vcpuhp-guest: fatal exception vector ");
	uart_put_hex(vec);
	uart_puts(" esr ");
	uart_put_hex(esr);
	uart_puts(" elr ");
	uart_put_hex(elr);
	uart_puts(" far ");
	uart_put_hex(far);
	uart_puts(" cpu ");
	uart_put_dec(cpu);
	uart_putc('\n');
}
