/* SPDX-License-Identifier: MIT */
/* gic.h - minimal GICv3: distributor setup for one SPI, redistributor wake-up, CPU interface. */
#ifndef VCPUHP_GIC_H
#define VCPUHP_GIC_H
#include "common.h"

#define GED_INTID 41U /* GED on SPI 9 -> INTID 32 + 9 */
#define SGI_WAKE 1U    /* sent by one CPU to wake another from WFI */
#define GIC_SPURIOUS_FIRST 1020U

/* Distributor: enable affinity routing + group 1, route/enable INTID `intid` to `target_mpidr`. */
int gic_dist_init(uptr gicd, u32 intid, u64 target_mpidr);

/* Find CPU `idx`'s redistributor (MADT GICC GICR base or a region walk), 0 if none. */
uptr gic_find_redist(u32 idx);

/*
 * Wake this CPU's redistributor, enable its SGI_WAKE and virtual timer PPI
 * (group 1, priority 0x80) and its CPU interface (group 1, PMR 0xF0).
 */
int gic_cpu_init(u32 idx);

/* Send SGI `intid` to the CPU whose MPIDR is `mpidr` (ICC_SGI1R_EL1, IRM = 0). */
void gic_send_sgi(u64 mpidr, u32 intid);

static inline u32 gic_ack(void) { return (u32)read_sysreg(ICC_IAR1_EL1) & 0xFFFFFFU; }
static inline void gic_eoi(u32 intid) { write_sysreg(ICC_EOIR1_EL1, intid); isb(); }
#endif
