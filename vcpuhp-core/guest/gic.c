/* SPDX-License-Identifier: MIT */
/*
 * gic.c - minimal GICv3 bring-up. Only 32-bit MMIO accesses are used (the
 * 64-bit GICD_IROUTER is written as low then high word, GICR_TYPER read
 * as two words) so the simplest register model serves.
 */
#include "gic.h"
#include "acpi.h"
#include "timer.h"
#include "uart.h"

#define GICD_CTLR 0x0000
#define GICD_CTLR_RWP (1U << 31)
#define GICD_CTLR_ARE_NS (1U << 4)
#define GICD_CTLR_ENABLE_G1NS (1U << 1)
#define GICD_IGROUPR 0x0080
#define GICD_ISENABLER 0x0100
#define GICD_IPRIORITYR 0x0400
#define GICD_ICFGR 0x0C00
#define GICD_IROUTER 0x6000

#define GICR_TYPER 0x0008
#define GICR_TYPER_VLPIS (1U << 1)
#define GICR_TYPER_LAST (1U << 4)
#define GICR_WAKER 0x0014
#define GICR_WAKER_PROCESSOR_SLEEP (1U << 1)
#define GICR_WAKER_CHILDREN_ASLEEP (1U << 2)
#define GICR_FRAME 0x10000UL /* one 64 KiB frame; RD_base + SGI_base = 2 frames */
/* In the SGI_base frame: the banked SGI/PPI registers, at the GICD offsets. */
#define GICR_IGROUPR0 (GICR_FRAME + GICD_IGROUPR)
#define GICR_ISENABLER0 (GICR_FRAME + GICD_ISENABLER)
#define GICR_IPRIORITYR (GICR_FRAME + GICD_IPRIORITYR)
#define PRIVATE_PRIORITY 0x80U

#define POLL_LIMIT 1000000U

static void rmw32(uptr a, u32 clear, u32 set)
{
	mmio_write32(a, (mmio_read32(a) & ~clear) | set);
}

int gic_dist_init(uptr gicd, u32 intid, u64 target_mpidr)
{
	u32 n = intid / 32, bit = 1U << (intid % 32);
	u32 shift = (intid % 4) * 8;
	u32 i;

	mmio_write32(gicd + GICD_CTLR, GICD_CTLR_ARE_NS | GICD_CTLR_ENABLE_G1NS);
	for (i = 0; i < POLL_LIMIT && (mmio_read32(gicd + GICD_CTLR) & GICD_CTLR_RWP); i++)
		cpu_relax();
	if (i == POLL_LIMIT)
		return -1;

	rmw32(gicd + GICD_IGROUPR + 4 * n, 0, bit);                            /* group 1 */
	rmw32(gicd + GICD_IPRIORITYR + (intid & ~3U), 0xFFU << shift, 0x80U << shift);
	/* Edge-triggered, as the GED's _CRS declares its interrupt (Int_config[1] = 1). */
	rmw32(gicd + GICD_ICFGR + 4 * (intid / 16), 0, 2U << ((intid % 16) * 2));
	/* Route to one PE (IRM = 0): Aff2.Aff1.Aff0 low word, Aff3 high word. */
	mmio_write32(gicd + GICD_IROUTER + 8 * intid, (u32)(target_mpidr & 0xFFFFFFU));
	mmio_write32(gicd + GICD_IROUTER + 8 * intid + 4, (u32)((target_mpidr >> 32) & 0xFFU));
	mmio_write32(gicd + GICD_ISENABLER + 4 * n, bit);
	return 0;
}

uptr gic_find_redist(u32 idx)
{
	u64 mpidr = acpi.mpidr[idx];
	u32 want = (u32)(((mpidr >> 32) & 0xFF) << 24) | (u32)(mpidr & 0xFFFFFF);

	if (acpi.gicr_base[idx])
		return acpi.gicr_base[idx];
	for (u32 r = 0; r < acpi.nregions; r++) {
		uptr rd = acpi.rdist_base[r];
		uptr end = rd + acpi.rdist_len[r];

		for (u32 n = 0; n < MAX_CPUS && rd < end; n++) {
			u32 typer_lo = mmio_read32(rd + GICR_TYPER);
			u32 typer_hi = mmio_read32(rd + GICR_TYPER + 4);

			if (typer_hi == want)
				return rd;
			if (typer_lo & GICR_TYPER_LAST)
				break;
			rd += (typer_lo & GICR_TYPER_VLPIS) ? 4 * GICR_FRAME : 2 * GICR_FRAME;
		}
	}
	return 0;
}

int gic_cpu_init(u32 idx)
{
	uptr rd = gic_find_redist(idx);
	int ret = 0;

	if (rd) {
		u32 bits = (1U << SGI_WAKE) | (1U << PPI_VIRTUAL_TIMER);
		u32 i;

		rmw32(rd + GICR_WAKER, GICR_WAKER_PROCESSOR_SLEEP, 0);
		for (i = 0; i < POLL_LIMIT && (mmio_read32(rd + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP); i++)
			cpu_relax();
		if (i == POLL_LIMIT)
			ret = -2;
		rmw32(rd + GICR_IGROUPR0, 0, bits);
		for (u32 intid = 0; intid < 32; intid++) {
			u32 shift = (intid % 4) * 8;

			if (bits & (1U << intid))
				rmw32(rd + GICR_IPRIORITYR + (intid & ~3U), 0xFFU << shift,
				      PRIVATE_PRIORITY << shift);
		}
		mmio_write32(rd + GICR_ISENABLER0, bits);
	} else {
		ret = -1;
	}

	/* CPU interface: system-register access, unmask everything above 0xF0, group 1 on. */
	write_sysreg(ICC_SRE_EL1, 0x7);
	isb();
	write_sysreg(ICC_PMR_EL1, 0xF0);
	write_sysreg(ICC_BPR1_EL1, 0);
	write_sysreg(ICC_IGRPEN1_EL1, 1);
	isb();
	return ret;
}

void gic_send_sgi(u64 mpidr, u32 intid)
{
	u64 aff0 = mpidr & 0xFF;
	u64 v = (1UL << (aff0 & 0xF))                 /* TargetList */
		| ((mpidr >> 8) & 0xFF) << 16          /* Aff1 */
		| (u64)(intid & 0xF) << 24             /* INTID */
		| ((mpidr >> 16) & 0xFF) << 32         /* Aff2 */
		| (aff0 >> 4) << 44                    /* RS: which 16 Aff0 values */
		| ((mpidr >> 32) & 0xFF) << 48;        /* Aff3 */

	dsb_sy(); /* what the target will look at is written before it wakes */
	write_sysreg(ICC_SGI1R_EL1, v);
	isb();
}
