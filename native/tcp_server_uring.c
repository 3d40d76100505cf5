// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server --mode uring: io_uring, one recv SQE per connection
 * re-armed after each completion into the connection's own buffer, the
 * accept re-armed the same way.
 */
#include "tcp_server.h"

#include <errno.h>
#include <sys/socket.h>

static void uring_arm_accept(struct loop *l, struct ctrs *d)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	(void)d; /* single-shot: re-armed after every completion, not a "rearm" */
	if (!sqe)
		return;
	io_uring_prep_accept(sqe, l->lfd, NULL, NULL, SOCK_CLOEXEC);
	sqe->user_data = UD(TAG_ACCEPT, 0);
}

static void uring_arm_recv(struct loop *l, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	io_uring_prep_recv(sqe, c->fd, c->buf, run.o.buf, 0);
	sqe->user_data = UD(TAG_RECV, (uintptr_t)c);
}

static void uring_new_conn(struct loop *l, int fd, struct ctrs *d)
{
	struct conn *c = conn_new(l, fd, run.o.buf, d);

	if (c && !stopping())
		uring_arm_recv(l, c);
}

static const struct ring_ops uring_ops;

static void uring_cqe(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d)
{
	struct conn *c;

	switch (UD_TAG(cqe->user_data)) {
	case TAG_ACCEPT:
		ring_accept_cqe(l, cqe, d, &uring_ops);
		break;
	case TAG_RECV:
		c = (struct conn *)(uintptr_t)UD_VAL(cqe->user_data);
		if (cqe->res > 0) {
			account(d, c->buf, (size_t)cqe->res);
			if (!stopping())
				uring_arm_recv(l, c);
		} else if (cqe->res == 0) {
			conn_close(l, c, d, false);
		} else if (cqe->res == -ECANCELED) {
			/* stopping: closed with the loop */
		} else if (recv_ended_ok(cqe->res)) {
			if (!stopping())
				uring_arm_recv(l, c);
		} else {
			conn_close(l, c, d, true);
		}
		break;
	default:
		break;
	}
}

static const struct ring_ops uring_ops = {
	.arm_accept = uring_arm_accept,
	.new_conn = uring_new_conn,
	.cqe = uring_cqe,
};

static void *uring_main(void *arg)
{
	ring_loop(arg, &uring_ops);
	return NULL;
}

static void uring_setup(struct loop *l)
{
	static const int ops[] = { IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_ASYNC_CANCEL };
	static const char *const names[] = { "IORING_OP_ACCEPT", "IORING_OP_RECV",
					     "IORING_OP_ASYNC_CANCEL" };

	ring_create(l, 0);
	if (l->idx == 0)
		require_opcodes(&l->ring, ops, names, ARRAY_SIZE(ops));
}

const struct server_mode mode_uring = {
	.setup = uring_setup,
	.thread = uring_main,
};
