// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server --mode epoll / epoll_et: one loop per CPU with its own
 * SO_REUSEPORT listener, non-blocking sockets, read until EAGAIN;
 * level-triggered (epoll) or edge-triggered (epoll_et).
 */
#include "tcp_server.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define EPOLL_EVENTS       256

static void epoll_accept(struct loop *l, struct ctrs *d, uint32_t evflags)
{
	for (;;) {
		struct epoll_event ev;
		struct conn *c;
		int fd;

		fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				d->errors++; /* EMFILE & co: the connection waits in the backlog */
			return;
		}
		d->accepted++;
		c = conn_new(l, fd, 0, d);
		if (!c)
			continue;
		ev.events = EPOLLIN | EPOLLRDHUP | evflags;
		ev.data.ptr = c;
		if (epoll_ctl(l->ep.epfd, EPOLL_CTL_ADD, fd, &ev))
			conn_close(l, c, d, true);
	}
}

/* Read until EAGAIN (both triggers), EOF or error.  The drain can run
 * long when the server is the bottleneck, so each read's bytes are
 * published at once (relaxed stores of the loop's own counters), not at
 * the end of the epoll_wait batch: a snapshot never reads stale bytes. */
static void epoll_read(struct loop *l, struct conn *c, struct ctrs *d)
{
	size_t len = run.o.buf;

	while (!stopping()) {
		ssize_t n = recv(c->fd, l->ep.buf, len, 0);

		if (n > 0) {
			ctr_add(&l->c.bytes, (uint64_t)n);
			ctr_add(&l->c.recvs, 1);
			if (run.o.touch)
				ctr_add(&l->c.touch, bytesum(l->ep.buf, (size_t)n));
			continue;
		}
		if (n == 0) {
			conn_close(l, c, d, false);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_close(l, c, d, true);
		return;
	}
}

static void *epoll_main(void *arg)
{
	struct loop *l = arg;
	uint32_t evflags = run.o.mode == MODE_EPOLL_ET ? EPOLLET : 0;
	struct epoll_event evs[EPOLL_EVENTS];

	while (!stopping()) {
		struct ctrs d = { 0 };
		int i, n;

		n = epoll_wait(l->ep.epfd, evs, EPOLL_EVENTS, POLL_TIMEOUT_MS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			loop_fail(l, errno, "epoll_wait");
			break;
		}
		d.waits++;
		for (i = 0; i < n; i++) {
			if (!evs[i].data.ptr)
				epoll_accept(l, &d, evflags);
			else
				epoll_read(l, evs[i].data.ptr, &d);
		}
		ctrs_publish(&l->c, &d);
	}
	return NULL;
}

/* Main thread: the loop's epoll set (its listener in it) and buffer. */
static void epoll_setup(struct loop *l)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (run.o.mode == MODE_EPOLL_ET)
		ev.events |= EPOLLET;
	l->ep.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep.epfd < 0)
		die("epoll_create1");
	if (epoll_ctl(l->ep.epfd, EPOLL_CTL_ADD, l->lfd, &ev))
		die("epoll_ctl(ADD listener)");
	l->ep.buf = malloc(run.o.buf);
	if (!l->ep.buf)
		die("malloc(%u)", run.o.buf);
}

static void epoll_free(struct loop *l)
{
	if (l->ep.epfd >= 0)
		close(l->ep.epfd);
	free(l->ep.buf);
}

/* epoll and epoll_et: the trigger is read from run.o.mode */
const struct server_mode mode_epoll = {
	.nonblock = true,
	.setup = epoll_setup,
	.thread = epoll_main,
	.free_loop = epoll_free,
};
