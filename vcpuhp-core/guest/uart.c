/* SPDX-License-Identifier: MIT */
/*
 * uart.c - polled PL011 transmit. The UART is left as the machine resets it
 * (QEMU-style PL011 models transmit without UARTCR programming); every
 * access is a 32-bit volatile access.
 */
#include "uart.h"

void uart_putc(char c)
{
	/* Bounded poll: a stuck TXFF must not hang the firmware forever. */
	for (u32 n = 0; n < 1000000U; n++) {
		if (!(mmio_read32(PL011_BASE + PL011_FR) & PL011_FR_TXFF))
			break;
	}
	mmio_write32(PL011_BASE + PL011_DR, (u8)c);
}

void uart_puts(const char *s)
{
	while (*s)
		uart_putc(*s++);
}

void uart_put_udec(u64 v)
{
	char buf[24];
	int i = 0;

	do {
		buf[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		uart_putc(buf[--i]);
}

void uart_put_dec(i64 v)
{
	if (v < 0) {
		uart_putc('-');
		uart_put_udec(0 - (u64)v);
	} else {
		uart_put_udec((u64)v);
	}
}

void uart_put_hex(u64 v)
{
	int shift = 60;

	uart_puts("0x");
	while (shift > 0 && !((v >> shift) & 0xF))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		uart_putc("0123456789abcdef"[(v >> shift) & 0xF]);
}
