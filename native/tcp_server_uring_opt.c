// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server --mode uring_opt: io_uring with SINGLE_ISSUER|DEFER_TASKRUN
 * (|COOP_TASKRUN), multishot accept straight into a registered file table,
 * multishot recv from a provided buffer ring, batched submission; a
 * multishot that ends (ENOBUFS, no IORING_CQE_F_MORE) is re-armed, never a
 * reason to close; --wait-nr/--wait-us bound each wait (tcp_server_ring.c).
 */
#include "tcp_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FIXED_FILES    65536U       /* uring_opt registered file table */
#define BGID               0            /* uring_opt buffer group */

static void opt_arm_recv(struct loop *l, unsigned int slot)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, (int)slot, NULL, 0, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	sqe->user_data = UD(TAG_RECV, slot);
}

static void opt_close(struct loop *l, unsigned int slot)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	io_uring_prep_close_direct(sqe, slot);
	sqe->user_data = UD(TAG_CLOSE, slot);
}

static void opt_new_conn(struct loop *l, int slot, struct ctrs *d)
{
	(void)d;
	if (!stopping()) /* else the slot is closed with the ring */
		opt_arm_recv(l, (unsigned int)slot);
}

static const struct ring_ops opt_ops;

static void opt_cqe(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d)
{
	unsigned int slot = (unsigned int)UD_VAL(cqe->user_data);
	int res = cqe->res;

	switch (UD_TAG(cqe->user_data)) {
	case TAG_ACCEPT:
		ring_accept_cqe(l, cqe, d, &opt_ops);
		break;
	case TAG_RECV:
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			uint8_t *buf = l->opt.bufs + (size_t)bid * run.o.buf;

			if (res > 0)
				account(d, buf, (size_t)res);
			io_uring_buf_ring_add(l->opt.br, buf, run.o.buf, (unsigned short)bid,
					      l->opt.br_mask, (int)l->opt.br_pending++);
		}
		switch (ms_recv_next(cqe, d)) {
		case MS_REARM: /* buffers are published before the next submit */
			if (res == -ENOBUFS)
				d->enobufs++;
			opt_arm_recv(l, slot);
			break;
		case MS_ERROR:
			d->errors++;
			opt_close(l, slot);
			break;
		case MS_EOF:
			opt_close(l, slot);
			break;
		default:
			break;
		}
		break;
	case TAG_CLOSE:
		d->closed++;
		if (res < 0)
			d->errors++;
		break;
	default:
		break;
	}
}

static void opt_end_batch(struct loop *l)
{
	if (l->opt.br_pending) {
		io_uring_buf_ring_advance(l->opt.br, (int)l->opt.br_pending);
		l->opt.br_pending = 0;
	}
}

static void opt_arm_accept(struct loop *l, struct ctrs *d)
{
	arm_multishot_accept(l, d, true);
}

static const struct ring_ops opt_ops = {
	.arm_accept = opt_arm_accept,
	.new_conn = opt_new_conn,
	.cqe = opt_cqe,
	.end_batch = opt_end_batch,
};

static void *opt_main(void *arg)
{
	ring_loop(arg, &opt_ops);
	return NULL;
}

/* Register and fill a loop's provided-buffer ring. */
static int buf_ring_setup(struct loop *l, unsigned int nbufs, size_t buf_len, int bgid)
{
	struct io_uring_buf_reg reg;
	unsigned int i;
	int ret;

	l->opt.br_len = (size_t)nbufs * sizeof(struct io_uring_buf);
	l->opt.br = mmap(NULL, l->opt.br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (l->opt.br == MAP_FAILED) {
		l->opt.br = NULL;
		die("mmap(buffer ring, %zu B)", l->opt.br_len);
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)l->opt.br;
	reg.ring_entries = nbufs;
	reg.bgid = (uint16_t)bgid;
	ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (ret)
		return ret;
	l->opt.bufs_len = (size_t)nbufs * buf_len;
	l->opt.bufs = mmap(NULL, l->opt.bufs_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->opt.bufs == MAP_FAILED) {
		l->opt.bufs = NULL;
		die("mmap(buffers, %zu B)", l->opt.bufs_len);
	}
	l->opt.br_mask = (unsigned int)io_uring_buf_ring_mask(nbufs);
	io_uring_buf_ring_init(l->opt.br);
	for (i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(l->opt.br, l->opt.bufs + (size_t)i * buf_len,
				      (unsigned int)buf_len, (unsigned short)i, l->opt.br_mask,
				      (int)i);
	io_uring_buf_ring_advance(l->opt.br, (int)nbufs);
	return 0;
}

/* Does this kernel do multishot recv from a buffer ring?  Tried for real on
 * a throwaway ring and an AF_UNIX socket pair: 0, or exit 3 naming what is
 * missing.  (Multishot accept is older than multishot recv: not probed.) */
static void probe_multishot_recv(unsigned int flags)
{
	struct __kernel_timespec ts = { .tv_sec = 1 };
	struct io_uring_cqe *cqe = NULL;
	struct io_uring_sqe *sqe;
	struct loop pl;
	int sv[2], ret;

	memset(&pl, 0, sizeof(pl));
	ret = io_uring_queue_init(8, &pl.ring, flags);
	if (ret)
		ring_setup_fail("io_uring", ret, flags);
	ret = buf_ring_setup(&pl, 2, 64, BGID);
	if (ret) {
		report_unsupported("provided buffer ring (IORING_REGISTER_PBUF_RING)", ret,
				   "io_uring_register_buf_ring");
		exit(RXB_EXIT_UNSUPPORTED);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair");
	sqe = io_uring_get_sqe(&pl.ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_submit(&pl.ring);
	if (write(sv[1], "x", 1) != 1)
		die("write(socketpair)");
	ret = io_uring_wait_cqe_timeout(&pl.ring, &cqe, &ts);
	if (!ret && cqe->res < 0)
		ret = cqe->res;
	else if (!ret && !(cqe->flags & IORING_CQE_F_BUFFER))
		ret = -EOPNOTSUPP;
	if (ret) {
		report_unsupported("multishot recv (IORING_RECV_MULTISHOT + IOSQE_BUFFER_SELECT)",
				   ret, "multishot recv probe on a socket pair");
		exit(RXB_EXIT_UNSUPPORTED);
	}
	close(sv[0]);
	close(sv[1]);
	io_uring_queue_exit(&pl.ring);
	munmap(pl.opt.bufs, pl.opt.bufs_len);
	munmap(pl.opt.br, pl.opt.br_len);
}

static void opt_setup(struct loop *l)
{
	static const int ops[] = { IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_CLOSE,
				   IORING_OP_ASYNC_CANCEL };
	static const char *const names[] = { "IORING_OP_ACCEPT", "IORING_OP_RECV",
					     "IORING_OP_CLOSE", "IORING_OP_ASYNC_CANCEL" };
	int ret;

	ring_create(l, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		       IORING_SETUP_COOP_TASKRUN);
	require_opcodes(&l->ring, ops, names, ARRAY_SIZE(ops));
	ret = io_uring_register_files_sparse(&l->ring, run.nslots);
	if (ret) {
		report_unsupported("sparse registered file table", ret,
				   "io_uring_register_files_sparse(%u)", run.nslots);
		exit(RXB_EXIT_UNSUPPORTED);
	}
	ret = buf_ring_setup(l, run.o.ring_bufs, run.o.buf, BGID);
	if (ret) {
		report_unsupported("provided buffer ring (IORING_REGISTER_PBUF_RING)", ret,
				   "io_uring_register_buf_ring(%u x %u B)", run.o.ring_bufs,
				   run.o.buf);
		exit(RXB_EXIT_UNSUPPORTED);
	}
}

/* The fixed-file table: as many slots as this process may open files. */
static void opt_prepare(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	run.nslots = rl.rlim_cur < MAX_FIXED_FILES ? (unsigned int)rl.rlim_cur : MAX_FIXED_FILES;
}

static void opt_setup_loop(struct loop *l)
{
	opt_setup(l);
	if (l->idx == 0)
		probe_multishot_recv(run.ring_flags);
}

static void opt_ready(void)
{
	json_printf(",\"ring_bufs\":%u,\"fixed_files\":%u,\"wait_nr\":%u,\"wait_us\":%u",
		    run.o.ring_bufs, run.nslots, run.o.wait_nr, run.o.wait_us);
}

static void opt_free(struct loop *l)
{
	if (l->opt.bufs)
		munmap(l->opt.bufs, l->opt.bufs_len);
	if (l->opt.br)
		munmap(l->opt.br, l->opt.br_len);
}

const struct server_mode mode_uring_opt = {
	.prepare = opt_prepare,
	.setup = opt_setup_loop,
	.thread = opt_main,
	.ready = opt_ready,
	.free_loop = opt_free,
};
