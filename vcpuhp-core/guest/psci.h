/* SPDX-License-Identifier: MIT */
/* psci.h - PSCI function ids and return codes (conduit: hvc #0). */
#ifndef VCPUHP_PSCI_H
#define VCPUHP_PSCI_H
#include "common.h"

#define PSCI_VERSION 0x84000000UL
#define PSCI_CPU_OFF 0x84000002UL
#define PSCI_CPU_ON_64 0xC4000003UL
#define PSCI_AFFINITY_INFO_64 0xC4000004UL
#define PSCI_SYSTEM_OFF 0x84000008UL

#define PSCI_RET_SUCCESS 0
#define PSCI_RET_NOT_SUPPORTED (-1)
#define PSCI_RET_INVALID_PARAMS (-2)
#define PSCI_RET_DENIED (-3)
#define PSCI_RET_ALREADY_ON (-4)
#define PSCI_RET_ON_PENDING (-5)

#define PSCI_AFF_ON 0
#define PSCI_AFF_OFF 1
#define PSCI_AFF_ON_PENDING 2

/* psci_call() (start.S): x0..x3 in, x0 out, via hvc #0. */
static inline i64 psci_cpu_on(u64 mpidr, u64 entry, u64 ctx)
{
	dsb_sy(); /* everything the target will read is visible before it starts */
	return psci_call(PSCI_CPU_ON_64, mpidr, entry, ctx);
}

static inline i64 psci_affinity_info(u64 mpidr)
{
	return psci_call(PSCI_AFFINITY_INFO_64, mpidr, 0, 0);
}
#endif
