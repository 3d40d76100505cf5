// SPDX-License-Identifier: GPL-2.0
/*
 * test-zcrx-rq: unit test of the zcrx refill-ring logic (rxb_zcrx_rq.h)
 * against a simulated kernel consumer on a ring of a few entries, so the
 * ring-full path runs all the time.  Checks that every buffer handed back
 * reaches the kernel exactly once, in order, with its offset (area token
 * included) and length; that nothing is visible before it is published;
 * that a slot the kernel has not consumed is never overwritten.
 *
 *   sequential  the kernel consumes 0..capacity+1 entries between batches
 *   threaded    the kernel runs in its own thread (acquire tail, release
 *               head), as the real one does on another CPU
 *
 * Output: one JSON line per case and a summary; exit 0 if all pass.
 */
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rxb_zcrx_rq.h"

#define TOKEN  ((uint64_t)3 << IORING_ZCRX_AREA_SHIFT)
#define PAGE   4096ULL

/* The shared region as the kernel lays it out: head, tail, entries. */
struct region {
	uint32_t head;
	uint32_t pad0[15];
	uint32_t tail;
	uint32_t pad1[15];
	struct io_uring_zcrx_rqe rqes[];
};

struct kernel {
	struct region *r;
	uint32_t entries;
	uint64_t next;       /* sequence number expected next */
	uint64_t errors;
	char first_error[200];
	volatile int stop;
};

static void expect(uint64_t i, uint64_t *off, uint32_t *len)
{
	*off = (i * PAGE + (i % 7) * 64) & ~IORING_ZCRX_AREA_MASK;
	*len = (uint32_t)(i % 4096) + 1;
}

/* The user hands back buffer number i (what expect(i) describes). */
static int push_nth(struct zrq *q, uint64_t i)
{
	uint64_t off;
	uint32_t len;

	expect(i, &off, &len);
	return zrq_push(q, off | TOKEN, len);
}

/* Consume up to max entries, as io_zcrx_ring_refill does. */
static uint32_t kernel_consume(struct kernel *k, uint32_t max)
{
	uint32_t head = k->r->head, tail = __atomic_load_n(&k->r->tail, __ATOMIC_ACQUIRE), n = 0;

	while (head != tail && n < max) {
		const struct io_uring_zcrx_rqe *e = &k->r->rqes[head & (k->entries - 1)];
		uint64_t off;
		uint32_t len;

		expect(k->next, &off, &len);
		if (e->off != (off | TOKEN) || e->len != len || e->__pad) {
			if (!k->errors++)
				snprintf(k->first_error, sizeof(k->first_error),
					 "entry %" PRIu64 ": got off 0x%" PRIx64 " len %u, want off 0x%" PRIx64
					 " len %u",
					 k->next, e->off, e->len, off | TOKEN, len);
		}
		k->next++;
		head++;
		n++;
	}
	__atomic_store_n(&k->r->head, head, __ATOMIC_RELEASE);
	return n;
}

static struct region *region_new(uint32_t entries)
{
	struct region *r = calloc(1, sizeof(*r) + entries * sizeof(struct io_uring_zcrx_rqe));

	if (!r) {
		perror("calloc");
		exit(1);
	}
	return r;
}

static void zrq_on(struct zrq *q, struct region *r, uint32_t entries)
{
	zrq_init(q, r, offsetof(struct region, head), offsetof(struct region, tail),
		 offsetof(struct region, rqes), entries, TOKEN);
}

static bool report(const char *name, uint32_t entries, uint64_t n, const struct kernel *k,
		   const struct zrq *q, const char *why)
{
	bool ok = !why && !k->errors && k->next == n && q->pend_count == 0;

	printf("{\"case\":\"%s\",\"ok\":%s,\"entries\":%u,\"pushed\":%" PRIu64
	       ",\"consumed\":%" PRIu64 ",\"mismatches\":%" PRIu64 ",\"ring_full\":%" PRIu64
	       ",\"pending_max\":%u,\"pending_left\":%u,\"reason\":\"%s\"}\n",
	       name, ok ? "true" : "false", entries, n, k->next, k->errors, q->full, q->pend_max,
	       q->pend_count, why ? why : (k->errors ? k->first_error : ""));
	return ok;
}

/* The kernel takes a random number of entries between the user's batches;
 * the user pushes a random batch and publishes it (as zc_end_batch does). */
static bool sequential(uint32_t entries, uint64_t n, unsigned int seed)
{
	struct region *r = region_new(entries);
	struct kernel k = { .r = r, .entries = entries };
	const char *why = NULL;
	struct zrq q;
	uint64_t i = 0;
	int rounds = 0;
	bool ok;

	srand(seed);
	zrq_on(&q, r, entries);
	while (i < n) {
		unsigned int batch = 1 + (unsigned int)rand() % (2 * entries + 3), j;

		for (j = 0; j < batch && i < n; j++, i++) {
			if (push_nth(&q, i)) {
				why = "pending FIFO could not grow";
				break;
			}
		}
		/* nothing pushed is visible before it is published */
		if (!why && kernel_consume(&k, UINT32_MAX) && k.next > i)
			why = "kernel saw more entries than were pushed";
		zrq_drain(&q);
		zrq_publish(&q);
		kernel_consume(&k, (uint32_t)rand() % (entries + 2));
		if (why)
			break;
	}
	/* the user's next batches (and the wait before blocking) retry */
	while (!why && (q.pend_count || zrq_queued(&q)) && rounds++ < 1000000) {
		zrq_drain(&q);
		zrq_publish(&q);
		kernel_consume(&k, 1 + (uint32_t)rand() % entries);
	}
	if (!why && !q.full)
		why = "the ring never filled: the test did not exercise the full path";
	ok = report("sequential", entries, n, &k, &q, why);
	zrq_free(&q);
	free(r);
	return ok;
}

static void *kernel_thread(void *arg)
{
	struct kernel *k = arg;

	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE) || k->r->head !=
	       __atomic_load_n(&k->r->tail, __ATOMIC_ACQUIRE))
		kernel_consume(k, 1 + (uint32_t)(k->next % 3));
	return NULL;
}

static bool threaded(uint32_t entries, uint64_t n)
{
	struct region *r = region_new(entries);
	struct kernel k = { .r = r, .entries = entries };
	const char *why = NULL;
	pthread_t tid;
	struct zrq q;
	uint64_t i;
	bool ok;

	zrq_on(&q, r, entries);
	if (pthread_create(&tid, NULL, kernel_thread, &k)) {
		perror("pthread_create");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		if (push_nth(&q, i)) {
			why = "pending FIFO could not grow";
			break;
		}
		if (i % 5 == 4) {
			zrq_drain(&q);
			zrq_publish(&q);
		}
	}
	while (zrq_drain(&q))
		zrq_publish(&q);
	zrq_publish(&q);
	__atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
	pthread_join(tid, NULL);
	if (!why && !q.full)
		why = "the ring never filled: the test did not exercise the full path";
	ok = report("threaded", entries, n, &k, &q, why);
	zrq_free(&q);
	free(r);
	return ok;
}

int main(void)
{
	bool ok = true;

	ok &= sequential(1, 5000, 1);
	ok &= sequential(4, 100000, 2);
	ok &= sequential(16, 100000, 3);
	ok &= threaded(2, 2000000);
	ok &= threaded(8, 2000000);
	printf("{\"summary\":true,\"ok\":%s}\n", ok ? "true" : "false");
	return ok ? 0 : 1;
}
