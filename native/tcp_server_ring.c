// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server: the io_uring code its three ring modes share (uring,
 * uring_opt, uring_zcrx): ring setup and probes, SQEs, the completion loop
 * with its drain at stop, and the accept's completions.
 */
#include "tcp_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SQ_ENTRIES         1024U
#define CQ_ENTRIES         8192U
#define DRAIN_TIMEOUT_NS   (1 * NS_PER_SEC)

struct io_uring_sqe *get_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	if (!sqe) {
		loop_fail(l, EBUSY, "io_uring SQ full");
		__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	l->inflight++;
	return sqe;
}

void ring_setup_fail(const char *feature, int err, unsigned int flags)
{
	report_unsupported(feature, err, "io_uring_setup(flags 0x%x)", flags);
	exit(RXB_EXIT_UNSUPPORTED);
}

const char *ring_flag_names(unsigned int flags, char *buf, size_t len)
{
	static const struct { unsigned int flag; const char *name; } names[] = {
		{ IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER" },
		{ IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN" },
		{ IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN" },
		{ IORING_SETUP_CQE32, "CQE32" },
	};
	int i;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (flags & names[i].flag)
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "|" : "",
				 names[i].name);
	return buf;
}

void ring_create(struct loop *l, unsigned int want)
{
	struct io_uring_params p;
	int ret;

	if (run.ring_flags) /* a previous loop found what works */
		want = run.ring_flags;
	if (want & IORING_SETUP_SINGLE_ISSUER)
		want |= IORING_SETUP_R_DISABLED;
	memset(&p, 0, sizeof(p));
	p.flags = want | IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_ENTRIES;
	ret = io_uring_queue_init_params(SQ_ENTRIES, &l->ring, &p);
	if (ret == -EINVAL && (want & IORING_SETUP_COOP_TASKRUN)) {
		memset(&p, 0, sizeof(p));
		p.flags = (want & ~IORING_SETUP_COOP_TASKRUN) | IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_ENTRIES;
		want &= ~IORING_SETUP_COOP_TASKRUN;
		ret = io_uring_queue_init_params(SQ_ENTRIES, &l->ring, &p);
		if (!ret)
			warn_err(0, "io_uring_setup: IORING_SETUP_COOP_TASKRUN refused "
				    "(EINVAL), continuing without it");
	}
	if (ret) {
		char names[96];

		if (want & IORING_SETUP_SINGLE_ISSUER)
			ring_setup_fail(ring_flag_names(want, names, sizeof(names)), ret, want);
		ring_setup_fail("io_uring", ret, want);
	}
	l->ring_ok = true;
	run.ring_flags = want & ~IORING_SETUP_R_DISABLED;
}

void require_opcodes(struct io_uring *ring, const int *ops, const char *const *names, int n)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	int i;

	if (!probe) {
		report_unsupported("IORING_REGISTER_PROBE", EOPNOTSUPP, "io_uring opcode probe");
		exit(RXB_EXIT_UNSUPPORTED);
	}
	for (i = 0; i < n; i++) {
		if (!io_uring_opcode_supported(probe, ops[i])) {
			report_unsupported(names[i], EOPNOTSUPP, "io_uring opcode %s (%d)", names[i],
					   ops[i]);
			exit(RXB_EXIT_UNSUPPORTED);
		}
	}
	io_uring_free_probe(probe);
}

/* Wait for completions (--wait-nr of them, at most --wait-us; one, at most
 * POLL_TIMEOUT_MS, by default), submitting what is queued in the same
 * call.  Returns 0 or -errno (not for a timeout). */
static int ring_wait(struct loop *l)
{
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = run.o.wait_us * 1000LL };
	struct io_uring_cqe *cqe;
	int ret;

	ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, run.o.wait_nr, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;
	return 0;
}

/* Process every CQE available, then end_batch (buffer publishing). */
static void ring_reap(struct loop *l, const struct ring_ops *ops, struct ctrs *d)
{
	struct io_uring_cqe *cqe;
	unsigned int head, count = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe) {
		if (!(cqe->flags & IORING_CQE_F_MORE))
			l->inflight--; /* the request's last CQE */
		ops->cqe(l, cqe, d);
		count++;
	}
	if (ops->end_batch)
		ops->end_batch(l);
	io_uring_cq_advance(&l->ring, count);
}

/* Run a loop until stop, then cancel everything in flight and wait (at
 * most DRAIN_TIMEOUT_NS) for the last completions, so that no buffer is
 * freed while the kernel may still write to it. */
static void ring_run(struct loop *l, const struct ring_ops *ops)
{
	struct io_uring_sqe *sqe;
	uint64_t deadline;
	int ret;

	while (!stopping()) {
		struct ctrs d = { 0 };

		ret = ring_wait(l);
		if (ret) {
			loop_fail(l, ret, "io_uring_submit_and_wait_timeout");
			return;
		}
		d.waits++;
		ring_reap(l, ops, &d);
		ctrs_publish(&l->c, &d);
	}

	sqe = get_sqe(l);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	sqe->user_data = UD(TAG_CANCEL, 0);
	deadline = mono_ns() + DRAIN_TIMEOUT_NS;
	while (l->inflight && mono_ns() < deadline) {
		struct ctrs d = { 0 };

		if (ring_wait(l))
			break;
		ring_reap(l, ops, &d);
		ctrs_publish(&l->c, &d);
	}
	l->drained = l->inflight == 0;
}

/* io_uring_enable_rings() is declared by liburing 2.3 but missing from its
 * shared library (not in the 2.3 symbol map): call the kernel directly. */
static int enable_rings(struct io_uring *ring)
{
	if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0))
		return -errno;
	return 0;
}

void ring_loop(struct loop *l, const struct ring_ops *ops)
{
	if (run.ring_flags & IORING_SETUP_SINGLE_ISSUER) {
		int ret = enable_rings(&l->ring);

		if (ret) {
			loop_fail(l, ret, "io_uring_enable_rings");
			return;
		}
	}
	ops->arm_accept(l, NULL);
	ring_run(l, ops);
}

void arm_multishot_accept(struct loop *l, struct ctrs *d, bool direct)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	if (direct)
		io_uring_prep_multishot_accept_direct(sqe, l->lfd, NULL, NULL, 0);
	else
		io_uring_prep_multishot_accept(sqe, l->lfd, NULL, NULL, SOCK_CLOEXEC);
	sqe->user_data = UD(TAG_ACCEPT, 0);
	if (d)
		d->rearms++;
}

void ring_accept_cqe(struct loop *l, const struct io_uring_cqe *cqe, struct ctrs *d,
		     const struct ring_ops *ops)
{
	if (cqe->res >= 0) {
		d->accepted++;
		ops->new_conn(l, cqe->res, d);
	} else if (cqe->res != -ECANCELED) {
		d->errors++; /* uring_opt ENFILE: table full, the kernel closed the socket */
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && !stopping())
		ops->arm_accept(l, d);
}

bool ring_release(struct loop *l)
{
	if (!l->ring_ok)
		return true;
	io_uring_queue_exit(&l->ring);
	return l->drained || !l->started;
}
