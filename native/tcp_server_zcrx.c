// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server --mode uring_zcrx: io_uring zero-copy receive
 * (IORING_OP_RECV_ZC) from an interface queue registered with a user memory
 * area, multishot accept and receive; every buffer goes back through the
 * refill ring (rxb_zcrx_rq.h).  --zcrx-nodev: device-less zcrx
 * (ZCRX_REG_NODEV, Linux >= 7.1) on any socket, every byte copied.
 */
#include "tcp_server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "zcrx_abi.h"

#define ZCRX_AREA_BYTES    (64U << 20)  /* zcrx user memory area */

static void zc_arm_recv(struct loop *l, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	/* len 0: no limit; the ifq id sits in the u32 of sqe->file_index. */
	io_uring_prep_rw(IORING_OP_RECV_ZC, sqe, c->fd, NULL, 0, 0);
	sqe->ioprio |= IORING_RECV_MULTISHOT;
	sqe->file_index = l->zc.zcrx_id;
	sqe->user_data = UD(TAG_RECV, (uintptr_t)c);
}

/* Hand a buffer back to the kernel through the refill ring (published in
 * zc_end_batch).  Several CQEs can point into one area page and the kernel
 * reads the ring only when its cache runs low, so the ring can be full: the
 * entry then waits in the ring's pending FIFO (rxb_zcrx_rq.h), never lost. */
static void zc_refill(struct loop *l, uint64_t off, uint32_t len)
{
	if (zrq_push(&l->zc.rq, off, len)) {
		loop_fail(l, ENOMEM, "zcrx refill: no memory to keep a buffer for the ring");
		__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
	}
}

/* Device-less zcrx: the kernel takes the published refill entries back
 * into its free list (a no-op call elsewhere). */
static void zc_flush(struct loop *l)
{
	struct rxb_zcrx_ctrl ctrl = { .zcrx_id = l->zc.zcrx_id, .op = RXB_ZCRX_CTRL_FLUSH_RQ };

	if (!run.o.nodev)
		return;
	zrq_publish(&l->zc.rq);
	if (syscall(__NR_io_uring_register, l->ring.ring_fd, RXB_IORING_REGISTER_ZCRX_CTRL, &ctrl,
		    0))
		__atomic_store_n(&l->zc.flush_errors, l->zc.flush_errors + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&l->zc.flushes, l->zc.flushes + 1, __ATOMIC_RELAXED);
}

static void zc_new_conn(struct loop *l, int fd, struct ctrs *d)
{
	struct conn *c = conn_new(l, fd, 0, d);

	if (c && !stopping())
		zc_arm_recv(l, c);
}

static const struct ring_ops zc_ops;

static void zc_cqe(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d)
{
	int res = cqe->res;
	struct conn *c;

	switch (UD_TAG(cqe->user_data)) {
	case TAG_ACCEPT:
		ring_accept_cqe(l, cqe, d, &zc_ops);
		break;
	case TAG_RECV:
		c = (struct conn *)(uintptr_t)UD_VAL(cqe->user_data);
		if (res > 0) {
			const struct io_uring_zcrx_cqe *zc = (const void *)(cqe + 1);
			uint64_t off = zc->off & ~IORING_ZCRX_AREA_MASK;

			if (off + (uint64_t)res <= l->zc.area_len)
				account(d, l->zc.area + off, (size_t)res);
			else
				d->errors++; /* cannot happen: the kernel owns the offsets */
			zc_refill(l, zc->off, (uint32_t)res);
		}
		switch (ms_recv_next(cqe, d)) {
		case MS_REARM:
			if (res == -ENOSPC || res == -ENOMEM || res == -ENOBUFS) {
				d->enobufs++;
				zc_flush(l); /* nodev: hand the kernel its buffers first */
			}
			zc_arm_recv(l, c);
			break;
		case MS_ERROR:
			conn_close(l, c, d, true);
			break;
		case MS_EOF:
			conn_close(l, c, d, false);
			break;
		default:
			break;
		}
		break;
	default:
		break;
	}
}

/* After every batch, i.e. before the loop blocks again: move what waited
 * for room onto the ring, publish the tail.  Device-less, no page pool
 * takes entries off the ring: ask the kernel to (ZCRX_CTRL_FLUSH_RQ) once
 * half of it is queued, or when entries wait for room. */
static void zc_end_batch(struct loop *l)
{
	zrq_drain(&l->zc.rq);
	zrq_publish(&l->zc.rq);
	if (run.o.nodev &&
	    (l->zc.rq.pend_count || zrq_queued(&l->zc.rq) >= (l->zc.rq.entries + 1) / 2)) {
		zc_flush(l);
		zrq_drain(&l->zc.rq);
		zrq_publish(&l->zc.rq);
	}
	__atomic_store_n(&l->zc.refill_full, l->zc.rq.full, __ATOMIC_RELAXED);
	__atomic_store_n(&l->zc.refill_pending_max, l->zc.rq.pend_max, __ATOMIC_RELAXED);
}

static void zc_arm_accept(struct loop *l, struct ctrs *d)
{
	arm_multishot_accept(l, d, false);
}

static const struct ring_ops zc_ops = {
	.arm_accept = zc_arm_accept,
	.new_conn = zc_new_conn,
	.cqe = zc_cqe,
	.end_batch = zc_end_batch,
};

static void *zc_main(void *arg)
{
	ring_loop(arg, &zc_ops);
	return NULL;
}

/* IORING_REGISTER_QUERY (no ring needed): 0 or -errno. */
static int zcrx_query(uint32_t op, void *data, uint32_t size)
{
	struct rxb_query_hdr h = { .query_data = (uint64_t)(uintptr_t)data, .query_op = op,
				   .size = size };

	if (syscall(__NR_io_uring_register, -1, RXB_IORING_REGISTER_QUERY, &h, 0))
		return -errno;
	return h.result < 0 ? h.result : 0;
}

#define ALIGN_UP(v, a) (((v) + (a) - 1) / (a) * (a))

/* What device-less zcrx needs, probed: exit 3 naming what is missing.
 * Fills the refill header size/alignment and, where the kernel keeps copy
 * counters (ZCRX_FEATURE_EVENT), their size and alignment (0 if not). */
static void nodev_probe(struct loop *l, size_t *hdr, size_t *hdr_align, size_t *stats_size,
			size_t *stats_align)
{
	struct rxb_query_zcrx q = { 0 };
	struct rxb_query_zcrx_event e = { 0 };
	struct utsname u;
	int ret;

	uname(&u);
	ret = zcrx_query(RXB_IO_URING_QUERY_ZCRX, &q, sizeof(q));
	if (ret) {
		report_unsupported("device-less zcrx (ZCRX_REG_NODEV)", ret,
				   "IORING_REGISTER_QUERY(IO_URING_QUERY_ZCRX) refused by Linux %s; "
				   "device-less zcrx needs Linux >= 7.1",
				   u.release);
		exit(RXB_EXIT_UNSUPPORTED);
	}
	if (!(q.register_flags & RXB_ZCRX_REG_NODEV)) {
		report_unsupported("device-less zcrx (ZCRX_REG_NODEV)", EOPNOTSUPP,
				   "Linux %s supports zcrx register flags 0x%llx, not ZCRX_REG_NODEV "
				   "(0x%x); device-less zcrx needs Linux >= 7.1",
				   u.release, (unsigned long long)q.register_flags, RXB_ZCRX_REG_NODEV);
		exit(RXB_EXIT_UNSUPPORTED);
	}
	*hdr = q.rq_hdr_size ? q.rq_hdr_size : (size_t)sysconf(_SC_PAGESIZE);
	*hdr_align = q.rq_hdr_alignment ? q.rq_hdr_alignment : (size_t)sysconf(_SC_PAGESIZE);
	*stats_size = *stats_align = 0;
	if (!(q.features & RXB_ZCRX_FEATURE_EVENT)) {
		snprintf(l->zc.stats_why, sizeof(l->zc.stats_why),
			 "kernel has no ZCRX_FEATURE_EVENT (features 0x%x)", q.features);
		return;
	}
	ret = zcrx_query(RXB_IO_URING_QUERY_ZCRX_EVENT, &e, sizeof(e));
	if (ret || e.stats_size < sizeof(struct rxb_zcrx_stats)) {
		char name[16];

		snprintf(l->zc.stats_why, sizeof(l->zc.stats_why), "IO_URING_QUERY_ZCRX_EVENT: %s",
			 ret ? errno_name(ret, name, sizeof(name)) : "stats too small");
		return;
	}
	*stats_size = e.stats_size;
	*stats_align = e.stats_off_alignment > CACHELINE ? e.stats_off_alignment : CACHELINE;
}

/* Register the interface queue with an area and a refill ring (exit 3 if
 * the kernel or the device refuses: veth, virtio-net, no CAP_NET_ADMIN...),
 * or, with --zcrx-nodev, a device-less instance whose refill region (user
 * memory) also holds the kernel's copy counters where it keeps them. */
static void zc_setup(struct loop *l)
{
	static const int ops[] = { IORING_OP_ACCEPT, IORING_OP_RECV_ZC, IORING_OP_ASYNC_CANCEL };
	static const char *const names[] = { "IORING_OP_ACCEPT", "IORING_OP_RECV_ZC",
					     "IORING_OP_ASYNC_CANCEL" };
	struct io_uring_zcrx_ifq_reg reg;
	struct io_uring_zcrx_area_reg area;
	struct rxb_region_desc region;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t hdr = page, hdr_align = page, stats_size = 0, stats_align = 0, stats_off = 0;
	struct rxb_zcrx_event_desc ev;
	uint32_t want;
	char feature[96];
	int err;

	ring_create(l, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		       IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQE32);
	require_opcodes(&l->ring, ops, names, ARRAY_SIZE(ops));
	if (run.o.nodev)
		nodev_probe(l, &hdr, &hdr_align, &stats_size, &stats_align);

	l->zc.area_len = ZCRX_AREA_BYTES;
	l->zc.area = mmap(NULL, l->zc.area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (l->zc.area == MAP_FAILED) {
		l->zc.area = NULL;
		die("mmap(zcrx area, %zu B)", l->zc.area_len);
	}
	/* Default: one refill entry per area page (the ring can still be full:
	 * several CQEs may share a page; zc_refill keeps what does not fit). */
	want = run.o.rq_entries ? run.o.rq_entries : (uint32_t)(l->zc.area_len / page);
	l->zc.rq_len = ALIGN_UP(hdr, hdr_align) + (size_t)want * sizeof(struct io_uring_zcrx_rqe);
	if (stats_size) {
		stats_off = ALIGN_UP(l->zc.rq_len, stats_align);
		l->zc.rq_len = stats_off + stats_size;
	}
	l->zc.rq_len = ALIGN_UP(l->zc.rq_len, page);
	l->zc.rq_mem = mmap(NULL, l->zc.rq_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	if (l->zc.rq_mem == MAP_FAILED) {
		l->zc.rq_mem = NULL;
		die("mmap(zcrx refill ring, %zu B)", l->zc.rq_len);
	}

	memset(&region, 0, sizeof(region));
	region.user_addr = (uint64_t)(uintptr_t)l->zc.rq_mem;
	region.size = l->zc.rq_len;
	region.flags = RXB_MEM_REGION_TYPE_USER;
	memset(&area, 0, sizeof(area));
	area.addr = (uint64_t)(uintptr_t)l->zc.area;
	area.len = l->zc.area_len;
	memset(&reg, 0, sizeof(reg));
	reg.rq_entries = want;
	reg.area_ptr = (uint64_t)(uintptr_t)&area;
	reg.region_ptr = (uint64_t)(uintptr_t)&region;
	if (run.o.nodev) {
		uint64_t evp = (uint64_t)(uintptr_t)&ev;

		reg.flags = RXB_ZCRX_REG_NODEV;
		memset(&ev, 0, sizeof(ev));
		ev.flags = RXB_ZCRX_EVENT_DESC_FLAG_STATS;
		ev.stats_offset = stats_off;
		if (stats_size)
			memcpy((uint8_t *)&reg + RXB_ZCRX_IFQ_REG_EVENT_DESC_OFF, &evp, sizeof(evp));
		err = syscall(__NR_io_uring_register, l->ring.ring_fd, IORING_REGISTER_ZCRX_IFQ,
			      &reg, 1) ? errno : 0;
		if (err == EINVAL && stats_size) {
			/* the counters refused: register without them, say so */
			snprintf(l->zc.stats_why, sizeof(l->zc.stats_why),
				 "registration with copy stats refused (EINVAL)");
			stats_size = 0;
			memset((uint8_t *)&reg + RXB_ZCRX_IFQ_REG_EVENT_DESC_OFF, 0, sizeof(evp));
			err = syscall(__NR_io_uring_register, l->ring.ring_fd,
				      IORING_REGISTER_ZCRX_IFQ, &reg, 1) ? errno : 0;
		}
		if (err) {
			struct utsname u;

			uname(&u);
			report_unsupported("device-less zcrx (ZCRX_REG_NODEV)", err,
					   "IORING_REGISTER_ZCRX_IFQ(ZCRX_REG_NODEV, %u entries, "
					   "%u MiB area) on Linux %s",
					   want, (unsigned int)(l->zc.area_len >> 20), u.release);
			exit(RXB_EXIT_UNSUPPORTED);
		}
		if (stats_size)
			l->zc.stats = (const struct rxb_zcrx_stats *)((uint8_t *)l->zc.rq_mem +
								       stats_off);
	} else {
		reg.if_idx = (uint32_t)run.ifindex;
		reg.if_rxq = (uint32_t)run.o.rxq;
		if (syscall(__NR_io_uring_register, l->ring.ring_fd, IORING_REGISTER_ZCRX_IFQ, &reg,
			    1)) {
			err = errno;
			snprintf(feature, sizeof(feature), "zcrx ifq on %s rxq %d", run.o.ifname,
				 run.o.rxq);
			report_unsupported(feature, err,
					   "IORING_REGISTER_ZCRX_IFQ (%s ifindex %d rxq %d, %u MiB area)",
					   run.o.ifname, run.ifindex, run.o.rxq,
					   (unsigned int)(l->zc.area_len >> 20));
			exit(RXB_EXIT_UNSUPPORTED);
		}
	}
	l->zc.rq_entries = reg.rq_entries;
	zrq_init(&l->zc.rq, l->zc.rq_mem, reg.offsets.head, reg.offsets.tail, reg.offsets.rqes,
		 reg.rq_entries, area.rq_area_token);
	l->zc.zcrx_id = reg.zcrx_id;
}

/* After "ring_flags": the uring_opt fields (null) and zcrx's own. */
static void zc_ready(void)
{
	const struct loop *l0 = &run.loops[0];

	json_printf(READY_NO_RING_BUFS);
	json_printf(",\"zcrx\":\"%s\",\"ifname\":", run.o.nodev ? "nodev" : "device");
	if (run.o.ifname)
		json_str(run.o.ifname);
	else
		json_printf("null");
	json_printf(",\"ifindex\":%d,\"rxq\":%d,\"zcrx_id\":%u,\"zcrx_area\":%zu,"
		    "\"rq_entries\":%u",
		    run.ifindex, run.o.rxq, l0->zc.zcrx_id, l0->zc.area_len, l0->zc.rq_entries);
}

static void zc_report(void)
{
	const struct loop *l0 = &run.loops[0];
	uint64_t refill_full = 0;
	uint32_t pending_max = 0, pm;
	unsigned int i;

	for (i = 0; i < run.nloops; i++) {
		refill_full += __atomic_load_n(&run.loops[i].zc.refill_full, __ATOMIC_RELAXED);
		pm = __atomic_load_n(&run.loops[i].zc.refill_pending_max, __ATOMIC_RELAXED);
		if (pm > pending_max)
			pending_max = pm;
	}
	json_printf(",\"refill_full\":%" PRIu64 ",\"refill_pending_max\":%u", refill_full,
		    pending_max);
	json_printf(",\"zcrx\":\"%s\"", run.o.nodev ? "nodev" : "device");
	if (run.o.nodev)
		json_printf(",\"zcrx_flushes\":%" PRIu64 ",\"zcrx_flush_errors\":%" PRIu64,
			    __atomic_load_n(&l0->zc.flushes, __ATOMIC_RELAXED),
			    __atomic_load_n(&l0->zc.flush_errors, __ATOMIC_RELAXED));
	if (l0->zc.stats) {
		json_printf(",\"copy_count\":%" PRIu64 ",\"copy_bytes\":%" PRIu64,
			    __atomic_load_n(&l0->zc.stats->copy_count, __ATOMIC_RELAXED),
			    __atomic_load_n(&l0->zc.stats->copy_bytes, __ATOMIC_RELAXED));
	} else {
		json_printf(",\"copy_count\":null,\"copy_bytes\":null,\"copy_stats\":");
		json_str(run.o.nodev ? l0->zc.stats_why : "not asked for (device mode)");
	}
}

static void zc_free(struct loop *l)
{
	if (l->zc.area)
		munmap(l->zc.area, l->zc.area_len);
	if (l->zc.rq_mem)
		munmap(l->zc.rq_mem, l->zc.rq_len);
	zrq_free(&l->zc.rq);
}

/* one listener: one loop per receive queue */
const struct server_mode mode_uring_zcrx = {
	.one_listener = true,
	.setup = zc_setup,
	.thread = zc_main,
	.ready = zc_ready,
	.report = zc_report,
	.free_loop = zc_free,
};
