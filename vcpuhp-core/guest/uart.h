/* SPDX-License-Identifier: MIT */
/* uart.h - polled PL011 output (transmit only). */
#ifndef VCPUHP_UART_H
#define VCPUHP_UART_H
#include "common.h"

#define PL011_BASE 0x09000000UL
#define PL011_DR 0x000  /* data register */
#define PL011_FR 0x018  /* flag register */
#define PL011_FR_TXFF (1U << 5) /* transmit FIFO full */

void uart_putc(char c);
void uart_puts(const char *s);
void uart_put_udec(u64 v);
void uart_put_dec(i64 v);
void uart_put_hex(u64 v); /* "0x..." without leading zeros */
#endif
