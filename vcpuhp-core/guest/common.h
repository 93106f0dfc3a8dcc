/* SPDX-License-Identifier: MIT */
/*
 * common.h - freestanding basics for the vcpuhp guest firmware.
 *
 * The firmware runs at EL1 with the MMU off. Every data access is then
 * Device-nGnRnE: unaligned accesses fault and exclusives are not usable,
 * so all shared state is accessed with plain aligned volatile loads/stores
 * and explicit barriers.
 */
#ifndef VCPUHP_COMMON_H
#define VCPUHP_COMMON_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef unsigned long uptr;

#define NULL ((void *)0)
#define MAX_CPUS 512U

/* Affinity fields of MPIDR_EL1: Aff3 [39:32], Aff2 [23:16], Aff1 [15:8], Aff0 [7:0]. */
#define MPIDR_AFF_MASK 0xFF00FFFFFFUL

/* ---- volatile RAM access (naturally aligned only) ---- */
static inline u8 rd8(uptr a) { return *(volatile u8 *)a; }
static inline u32 rd32(uptr a) { return *(volatile u32 *)a; }
static inline u64 rd64(uptr a) { return *(volatile u64 *)a; }
static inline void wr8(uptr a, u8 v) { *(volatile u8 *)a = v; }
static inline void wr32(uptr a, u32 v) { *(volatile u32 *)a = v; }
static inline void wr64(uptr a, u64 v) { *(volatile u64 *)a = v; }

/*
 * Device registers: one plain LDR/STR (no pair, no writeback) per access,
 * forced with inline asm. A hypervisor can only emulate an MMIO access
 * whose syndrome it can decode (ESR_EL2.ISV = 1); an LDP/STP or a
 * writeback form from the optimiser would make KVM give up.
 */
static inline u32 mmio_read32(uptr a)
{
	u32 v;
	__asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
	return v;
}
static inline u8 mmio_read8(uptr a)
{
	u32 v;
	__asm__ volatile("ldrb %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
	return (u8)v;
}
static inline void mmio_write32(uptr a, u32 v)
{
	__asm__ volatile("str %w0, [%1]" ::"rZ"(v), "r"(a) : "memory");
}
static inline void mmio_write8(uptr a, u8 v)
{
	__asm__ volatile("strb %w0, [%1]" ::"rZ"((u32)v), "r"(a) : "memory");
}

#define dmb_ish() __asm__ volatile("dmb ish" ::: "memory")
#define dsb_sy() __asm__ volatile("dsb sy" ::: "memory")
#define isb() __asm__ volatile("isb" ::: "memory")
#define cpu_relax() __asm__ volatile("yield" ::: "memory")
#define wfi() __asm__ volatile("wfi" ::: "memory")
/* IRQ masking (PSTATE.I). Unmasking is followed by an isb so that an interrupt that is
 * already pending is taken before the next instruction (a mask right after it included). */
#define irq_mask() __asm__ volatile("msr daifset, #2" ::: "memory")
#define irq_unmask() __asm__ volatile("msr daifclr, #2\n\tisb" ::: "memory")

/* System registers by generic S3_op1_Cn_Cm_op2 names so any assembler accepts them. */
#define read_sysreg(name) ({ u64 __v; __asm__ volatile("mrs %0, " #name : "=r"(__v)); __v; })
#define write_sysreg(name, v) __asm__ volatile("msr " #name ", %0" ::"r"((u64)(v)) : "memory")

#define ICC_SGI1R_EL1 S3_0_C12_C11_5
#define ICC_IAR1_EL1 S3_0_C12_C12_0
#define ICC_EOIR1_EL1 S3_0_C12_C12_1
#define ICC_BPR1_EL1 S3_0_C12_C12_3
#define ICC_SRE_EL1 S3_0_C12_C12_5
#define ICC_IGRPEN1_EL1 S3_0_C12_C12_7
#define ICC_PMR_EL1 S3_0_C4_C6_0

/* ---- the generic timer's counter (timer.c programs the virtual timer itself) ---- */
static inline u64 counter_now(void)
{
	isb();
	return read_sysreg(cntvct_el0);
}
u64 counter_freq(void);

/* The CPU index (MADT GICC order) this CPU runs as; set at its entry (TPIDR_EL1). */
static inline u32 this_cpu(void) { return (u32)read_sysreg(tpidr_el1); }
static inline void set_this_cpu(u32 idx) { write_sysreg(tpidr_el1, idx); }

/*
 * Polling waits, for psci-probe only (it sets up no interrupts): poll_u8 returns
 * 1 once *flag (a u8 in shared memory) equals want, 0 after timeout_ms of counter
 * time or a fixed iteration cap (finite even if the counter does not advance).
 * vcpuhp-guest sleeps in WFI instead (timer.h: sleep_until).
 */
int poll_u8(uptr flag, u8 want, u32 timeout_ms);
void spin_delay_us(u32 us);

/* ---- tiny libc subset (gcc may emit calls to these) ---- */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

/*
 * Clean+invalidate the cache lines covering [a, a+len) to the point of
 * coherency. The guest writes with caches off; a host that maps the same
 * RAM cacheable (KVM without FWB) would otherwise keep reading stale lines.
 * Harmless (a no-op in effect) under TCG.
 */
void flush_range(uptr a, u64 len);

/* Provided by start.S */
i64 psci_call(u64 fn, u64 a1, u64 a2, u64 a3);
extern char secondary_entry[];
extern char __image_start[], __image_end[];

/* Provided by each program */
void boot_main(const char *cmdline, u64 rsdp);
void secondary_main(u64 idx);
void irq_handler(void);
void exception_handler(u64 kind, u64 esr, u64 elr, u64 far);

#endif
