/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The user side of a zcrx refill ring (header-only), shared by
 * rxb-tcp-server and its unit test (test_zcrx_rq.c, which plays the kernel
 * on a simulated ring).
 *
 * The kernel consumes entries from head (its store, read here with acquire)
 * to tail (our store, with release: the entries are written before the
 * kernel can see the new tail).  A buffer handed back while the ring is
 * full is never dropped: it waits in a local FIFO (pending) and goes onto
 * the ring, in order, as soon as the kernel has made room.  A dropped entry
 * would keep its net_iov's user reference forever: the area leaks and
 * receive stalls once the kernel runs out of buffers.
 */
#ifndef RXB_ZCRX_RQ_H
#define RXB_ZCRX_RQ_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "zcrx_abi.h"

struct zrq {
	uint32_t *khead, *ktail;         /* in the shared region */
	struct io_uring_zcrx_rqe *rqes;  /* entries[] in the shared region */
	uint32_t tail;                   /* our copy, published by zrq_publish */
	uint32_t entries, mask;
	uint64_t token;                  /* OR'ed into every offset (area id) */
	/* entries that did not fit, oldest first: pend[(head + i) % cap] */
	struct io_uring_zcrx_rqe *pend;
	uint32_t pend_head, pend_count, pend_cap;
	uint64_t full;                   /* entries that found the ring full */
	uint32_t pend_max;               /* most entries ever pending at once */
};

static inline void zrq_init(struct zrq *q, void *region, uint32_t head_off, uint32_t tail_off,
			    uint32_t rqes_off, uint32_t entries, uint64_t token)
{
	*q = (struct zrq){
		.khead = (uint32_t *)((uint8_t *)region + head_off),
		.ktail = (uint32_t *)((uint8_t *)region + tail_off),
		.rqes = (struct io_uring_zcrx_rqe *)((uint8_t *)region + rqes_off),
		.entries = entries,
		.mask = entries - 1,
		.token = token,
	};
	q->tail = __atomic_load_n(q->ktail, __ATOMIC_RELAXED);
}

/* Free slots on the ring now (entries the kernel has not consumed yet
 * count as taken, published or not). */
static inline uint32_t zrq_space(const struct zrq *q)
{
	return q->entries - (q->tail - __atomic_load_n(q->khead, __ATOMIC_ACQUIRE));
}

/* Entries on the ring the kernel has not consumed. */
static inline uint32_t zrq_queued(const struct zrq *q)
{
	return q->tail - __atomic_load_n(q->khead, __ATOMIC_ACQUIRE);
}

static inline void zrq_put(struct zrq *q, uint64_t off, uint32_t len)
{
	struct io_uring_zcrx_rqe *rqe = &q->rqes[q->tail & q->mask];

	rqe->off = (off & ~IORING_ZCRX_AREA_MASK) | q->token;
	rqe->len = len;
	rqe->__pad = 0;
	q->tail++;
}

/* Move pending entries onto the ring while there is room; returns how many
 * are still pending. */
static inline uint32_t zrq_drain(struct zrq *q)
{
	uint32_t room;

	if (!q->pend_count)
		return 0;
	room = zrq_space(q);
	while (room && q->pend_count) {
		const struct io_uring_zcrx_rqe *p = &q->pend[q->pend_head];

		zrq_put(q, p->off, p->len);
		q->pend_head = (q->pend_head + 1) % q->pend_cap;
		q->pend_count--;
		room--;
	}
	return q->pend_count;
}

/* Hand a buffer back: onto the ring when it has room and nothing is
 * pending before it, else to the end of the pending FIFO.  Returns 0, or
 * -ENOMEM if the FIFO cannot grow (the caller must treat that as fatal:
 * the buffer would be lost). */
static inline int zrq_push(struct zrq *q, uint64_t off, uint32_t len)
{
	if (!zrq_drain(q) && zrq_space(q)) {
		zrq_put(q, off, len);
		return 0;
	}
	q->full++;
	if (q->pend_count == q->pend_cap) {
		uint32_t cap = q->pend_cap ? q->pend_cap * 2 : 64, i;
		struct io_uring_zcrx_rqe *n;

		if (cap < q->pend_cap)
			return -ENOMEM;
		n = malloc((size_t)cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (i = 0; i < q->pend_count; i++)
			n[i] = q->pend[(q->pend_head + i) % q->pend_cap];
		free(q->pend);
		q->pend = n;
		q->pend_head = 0;
		q->pend_cap = cap;
	}
	q->pend[(q->pend_head + q->pend_count) % q->pend_cap] =
		(struct io_uring_zcrx_rqe){ .off = off, .len = len };
	q->pend_count++;
	if (q->pend_count > q->pend_max)
		q->pend_max = q->pend_count;
	return 0;
}

/* Make what is on the ring visible to the kernel. */
static inline void zrq_publish(struct zrq *q)
{
	__atomic_store_n(q->ktail, q->tail, __ATOMIC_RELEASE);
}

static inline void zrq_free(struct zrq *q)
{
	free(q->pend);
	q->pend = NULL;
	q->pend_count = q->pend_cap = 0;
}

#endif
