/* SPDX-License-Identifier: MIT */
/* acpi.h - the little of ACPI the guest needs: CPUs and GIC from the MADT. */
#ifndef VCPUHP_ACPI_H
#define VCPUHP_ACPI_H
#include "common.h"

#define MADT_GICC_ENABLED (1U << 0)
#define MADT_GICC_ONLINE_CAPABLE (1U << 3)
#define MAX_RDIST_REGIONS 8U

struct acpi_info {
	u32 ncpus;                  /* number of GICC entries = possible CPUs */
	u32 nregions;               /* GICR structures (redistributor regions) */
	u64 gicd_base;              /* from the GICD structure (0x08000000 if absent) */
	u64 rdist_base[MAX_RDIST_REGIONS];
	u64 rdist_len[MAX_RDIST_REGIONS];
	u64 mpidr[MAX_CPUS];        /* GICC MPIDR, masked to the affinity fields */
	u64 gicr_base[MAX_CPUS];    /* GICC GICR base (0: use the regions) */
	u32 flags[MAX_CPUS];        /* GICC flags */
};

extern struct acpi_info acpi;

/* Parse RSDP -> XSDT (or RSDT) -> MADT into `acpi`. Returns 0 or a negative error (printed). */
int acpi_parse(uptr rsdp);

/* CPU index (GICC order) whose MPIDR matches `mpidr`, or -1. */
int acpi_cpu_index(u64 mpidr);
#endif
