/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by rxb-tcp-server and rxb-tcp-send (header-only: each tool
 * links only its own file and common.c).
 */
#ifndef RXB_TCP_COMMON_H
#define RXB_TCP_COMMON_H

#include "common.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_DURATION_S (365.0 * 24 * 3600)
#define CACHELINE      64

/* Byte sum (mod 2^64) of p[0..n): the "touch" checksum.  It reads every
 * byte, does not depend on how the stream was cut into reads, and the sender
 * can compute it for what it sent.  Eight bytes at a time: two bytes per
 * 16-bit lane, at most 510 per word, so a lane holds 128 words (65280). */
static inline uint64_t bytesum(const void *buf, size_t n)
{
	const uint64_t m = 0x00ff00ff00ff00ffULL;
	const unsigned char *p = buf;
	uint64_t total = 0;

	while (n >= 8) {
		size_t words = n / 8 > 128 ? 128 : n / 8, i;
		uint64_t acc = 0;

		for (i = 0; i < words; i++) {
			uint64_t w;

			memcpy(&w, p + i * 8, 8);
			acc += (w & m) + ((w >> 8) & m);
		}
		total += (acc & 0xffff) + ((acc >> 16) & 0xffff) + ((acc >> 32) & 0xffff) +
			 (acc >> 48);
		p += words * 8;
		n -= words * 8;
	}
	while (n--)
		total += *p++;
	return total;
}

/* "ECONNRESET" for ECONNRESET (sign ignored); "E<n>" if glibc has no name. */
static inline const char *errno_name(int err, char *buf, size_t len)
{
	const char *name = strerrorname_np(err < 0 ? -err : err);

	if (name)
		return name;
	snprintf(buf, len, "E%d", err < 0 ? -err : err);
	return buf;
}

/* Soft RLIMIT_NOFILE up to the hard limit (many connections, one fd each). */
static inline void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			warn_err(errno, "setrlimit(RLIMIT_NOFILE, %llu)",
				 (unsigned long long)rl.rlim_max);
	}
}

/* Counters written by one thread (relaxed stores of its running totals,
 * so no lock or locked instruction per message) and read by the main
 * thread with relaxed loads. */
static inline uint64_t ctr_get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void ctr_add(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* ,"cpus":[1,3] or ,"cpus":null */
static inline void json_cpus(const int *cpus, unsigned int n)
{
	unsigned int i;

	if (!n) {
		json_printf(",\"cpus\":null");
		return;
	}
	json_printf(",\"cpus\":[");
	for (i = 0; i < n; i++)
		json_printf("%s%d", i ? "," : "", cpus[i]);
	json_printf("]");
}

#endif
