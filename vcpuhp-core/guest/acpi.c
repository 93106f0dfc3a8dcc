/* SPDX-License-Identifier: MIT */
/*
 * acpi.c - RSDP -> XSDT -> MADT walk.
 *
 * ACPI fields are frequently misaligned (XSDT entries sit at offset 36,
 * MADT sub-tables at 44 + n*80) and with the MMU off every access is a
 * Device access that must be aligned, so all multi-byte fields are read
 * a byte at a time.
 */
#include "acpi.h"
#include "uart.h"

struct acpi_info acpi;

static u64 get_le(uptr a, int n)
{
	u64 v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | rd8(a + (uptr)i);
	return v;
}
#define get16(a) ((u32)get_le((a), 2))
#define get32(a) ((u32)get_le((a), 4))
#define get64(a) get_le((a), 8)

static int sig_is(uptr a, const char *sig, int n)
{
	for (int i = 0; i < n; i++)
		if (rd8(a + (uptr)i) != (u8)sig[i])
			return 0;
	return 1;
}

static int checksum_ok(uptr a, u32 len)
{
	u8 sum = 0;

	for (u32 i = 0; i < len; i++)
		sum = (u8)(sum + rd8(a + i));
	return sum == 0;
}

static void warn_checksum(const char *what)
{
	uart_puts("vcpuhp-guest: acpi: bad checksum in ");
	uart_puts(what);
	uart_puts(" (continuing)\n");
}

#define MAX_TABLE_LEN (1U << 20)

static void parse_madt(uptr madt, u32 len)
{
	uptr p = madt + 44; /* header (36) + local interrupt controller address (4) + flags (4) */
	uptr end = madt + len;

	acpi.gicd_base = 0x08000000UL;
	while (p + 2 <= end) {
		u8 type = rd8(p);
		u8 elen = rd8(p + 1);

		if (elen < 2 || p + elen > end)
			break;
		if (type == 0x0B && elen >= 76) { /* GICC */
			if (acpi.ncpus < MAX_CPUS) {
				u32 i = acpi.ncpus++;
				acpi.flags[i] = get32(p + 12);
				acpi.gicr_base[i] = get64(p + 60);
				acpi.mpidr[i] = get64(p + 68) & MPIDR_AFF_MASK;
			} else {
				uart_puts("vcpuhp-guest: acpi: more than 512 GICCs, extra ignored\n");
			}
		} else if (type == 0x0C && elen >= 16) { /* GICD */
			acpi.gicd_base = get64(p + 8);
		} else if (type == 0x0E && elen >= 16) { /* GICR region */
			if (acpi.nregions < MAX_RDIST_REGIONS) {
				acpi.rdist_base[acpi.nregions] = get64(p + 4);
				acpi.rdist_len[acpi.nregions] = get32(p + 12);
				acpi.nregions++;
			}
		}
		p += elen;
	}
}

int acpi_parse(uptr rsdp)
{
	uptr sdt;
	u32 entry_size, len;

	if (!rsdp || !sig_is(rsdp, "RSD PTR ", 8)) {
		uart_puts("vcpuhp-guest: acpi: no RSDP at ");
		uart_put_hex(rsdp);
		uart_puts("\n");
		return -1;
	}
	if (!checksum_ok(rsdp, 20))
		warn_checksum("RSDP");
	if (rd8(rsdp + 15) >= 2) {
		if (!checksum_ok(rsdp, 36))
			warn_checksum("RSDP (extended)");
		sdt = get64(rsdp + 24);
		entry_size = 8;
		if (!sdt || !sig_is(sdt, "XSDT", 4)) {
			uart_puts("vcpuhp-guest: acpi: bad XSDT\n");
			return -2;
		}
	} else {
		sdt = get32(rsdp + 16);
		entry_size = 4;
		if (!sdt || !sig_is(sdt, "RSDT", 4)) {
			uart_puts("vcpuhp-guest: acpi: bad RSDT\n");
			return -2;
		}
	}
	len = get32(sdt + 4);
	if (len < 36 || len > MAX_TABLE_LEN) {
		uart_puts("vcpuhp-guest: acpi: bad root table length\n");
		return -2;
	}
	if (!checksum_ok(sdt, len))
		warn_checksum(entry_size == 8 ? "XSDT" : "RSDT");

	for (uptr e = sdt + 36; e + entry_size <= sdt + len; e += entry_size) {
		uptr t = get_le(e, (int)entry_size);
		u32 tlen;

		if (!t || !sig_is(t, "APIC", 4))
			continue;
		tlen = get32(t + 4);
		if (tlen < 44 || tlen > MAX_TABLE_LEN) {
			uart_puts("vcpuhp-guest: acpi: bad MADT length\n");
			return -3;
		}
		if (!checksum_ok(t, tlen))
			warn_checksum("MADT");
		parse_madt(t, tlen);
		if (!acpi.ncpus) {
			uart_puts("vcpuhp-guest: acpi: MADT has no GICC\n");
			return -4;
		}
		return 0;
	}
	uart_puts("vcpuhp-guest: acpi: no MADT\n");
	return -3;
}

int acpi_cpu_index(u64 mpidr)
{
	mpidr &= MPIDR_AFF_MASK;
	for (u32 i = 0; i < acpi.ncpus; i++)
		if (acpi.mpidr[i] == mpidr)
			return (int)i;
	return -1;
}
