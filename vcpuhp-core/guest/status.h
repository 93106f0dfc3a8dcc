/* SPDX-License-Identifier: MIT */
/*
 * status.h - the vcpuhp-guest status page at a fixed physical address. The
 * host reads it (and never writes it); all fields are little-endian and
 * naturally aligned. Offsets are part of the host ABI: see README.md.
 */
#ifndef VCPUHP_STATUS_H
#define VCPUHP_STATUS_H
#include "common.h"

#define STATUS_PAGE_ADDR 0x40180000UL
#define STATUS_MAGIC 0x47504856U /* "VHPG" */
#define STATUS_VERSION 1U

enum guest_state {
	STATE_BOOTING = 0,
	STATE_IDLE = 1,
	STATE_HOTPLUG = 2,
	STATE_FATAL = 3,
};

struct status_page {
	u32 magic;                  /* 0x000 */
	u32 version;                /* 0x004 */
	u32 possible;               /* 0x008 */
	u32 state;                  /* 0x00C enum guest_state */
	u64 events;                 /* 0x010 CPU insert/remove events handled */
	u64 generation;             /* 0x018 +1 after every masks line */
	u8 online[MAX_CPUS];        /* 0x020 */
	u8 enabled[MAX_CPUS];       /* 0x220 */
	u64 work[MAX_CPUS];         /* 0x420 per-CPU work-loop counters */
	i64 last_psci_error;        /* 0x1420 last non-zero PSCI result seen */
	u64 fatal_esr;              /* 0x1428 */
	u64 fatal_elr;              /* 0x1430 */
	u32 stop_request[MAX_CPUS]; /* 0x1438 guest-internal: boot CPU -> secondary */
	/* Extensions after the version-1 fields (appended, never reordered). */
	u64 fatal_far;              /* 0x1C38 */
	u32 fatal_vector;           /* 0x1C40 vector offset the exception came through */
	u32 fatal_cpu;              /* 0x1C44 CPU index that took it (0xFFFFFFFF: unknown) */
};

#define STATUS ((volatile struct status_page *)STATUS_PAGE_ADDR)

_Static_assert(__builtin_offsetof(struct status_page, events) == 0x10, "events");
_Static_assert(__builtin_offsetof(struct status_page, generation) == 0x18, "generation");
_Static_assert(__builtin_offsetof(struct status_page, online) == 0x20, "online");
_Static_assert(__builtin_offsetof(struct status_page, enabled) == 0x220, "enabled");
_Static_assert(__builtin_offsetof(struct status_page, work) == 0x420, "work");
_Static_assert(__builtin_offsetof(struct status_page, last_psci_error) == 0x1420, "psci");
_Static_assert(__builtin_offsetof(struct status_page, fatal_esr) == 0x1428, "esr");
_Static_assert(__builtin_offsetof(struct status_page, fatal_elr) == 0x1430, "elr");
_Static_assert(__builtin_offsetof(struct status_page, stop_request) == 0x1438, "stop");
_Static_assert(__builtin_offsetof(struct status_page, fatal_far) == 0x1C38, "far");
_Static_assert(sizeof(struct status_page) == 0x1C48, "size");

/* Make status page writes visible to a host reading through its own caches. */
static inline void status_flush(void)
{
	flush_range(STATUS_PAGE_ADDR, sizeof(struct status_page));
}
#endif
