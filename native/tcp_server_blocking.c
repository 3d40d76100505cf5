// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server --mode blocking: one thread per connection, a plain recv()
 * loop; one acceptor thread; connection threads pinned round-robin to the
 * CPU slots (the loops), whose counters collect the ended threads' counts.
 */
#include "tcp_server.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define STOP_TIMEOUT_NS    (3 * NS_PER_SEC) /* blocking: wait for conn threads */
#define CONN_STACK         (256U << 10) /* blocking: connection thread stack */

/* The connection threads (the slots' counters too: under lock). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int live;      /* connection threads running */
	struct conn *conns;     /* their connections */
} blk = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* A connection thread: recv() until EOF/error or stop (SO_RCVTIMEO wakes it
 * every POLL_TIMEOUT_MS).  On the way out it closes its socket and moves its
 * counts into its slot. */
static void *bconn_main(void *arg)
{
	struct conn *c = arg;
	struct loop *slot = c->loop;
	size_t len = run.o.buf;
	bool ended = false;
	int err = 0;

	while (!stopping()) {
		ssize_t n = recv(c->fd, c->buf, len, 0);

		if (n > 0) {
			ctr_add(&c->c.bytes, (uint64_t)n);
			ctr_add(&c->c.recvs, 1);
			if (run.o.touch)
				ctr_add(&c->c.touch, bytesum(c->buf, (size_t)n));
			continue;
		}
		if (n == 0) {
			ended = true;
			break;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			continue;
		err = errno;
		ended = true;
		break;
	}
	close(c->fd);

	pthread_mutex_lock(&blk.lock);
	slot->c.bytes += c->c.bytes;
	slot->c.recvs += c->c.recvs;
	slot->c.touch += c->c.touch;
	if (ended)
		slot->c.closed++;
	if (err)
		slot->c.errors++;
	conn_unlink(&blk.conns, c);
	if (--blk.live == 0)
		pthread_cond_broadcast(&blk.cond);
	pthread_mutex_unlock(&blk.lock);
	free(c);
	return NULL;
}

/* Accept (SO_RCVTIMEO on the listener bounds each wait) and start one
 * detached, pinned thread per connection. */
static void *acceptor_main(void *arg)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = POLL_TIMEOUT_MS * 1000 };
	struct loop *l0 = arg;
	unsigned int next = 0;

	while (!stopping()) {
		struct loop *slot;
		pthread_attr_t attr;
		struct conn *c;
		int fd, err;

		fd = accept4(run.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				pthread_mutex_lock(&blk.lock);
				l0->c.errors++;
				pthread_mutex_unlock(&blk.lock);
				usleep(10000);
				continue;
			}
			loop_fail(l0, errno, "accept");
			break;
		}
		slot = &run.loops[next++ % run.nloops];
		c = calloc(1, sizeof(*c) + run.o.buf);
		if (!c || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
			free(c);
			close(fd);
			pthread_mutex_lock(&blk.lock);
			slot->c.accepted++;
			slot->c.closed++;
			slot->c.errors++;
			pthread_mutex_unlock(&blk.lock);
			continue;
		}
		c->fd = fd;
		c->loop = slot;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, CONN_STACK);
		if (slot->cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(slot->cpu, &set);
			pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		pthread_mutex_lock(&blk.lock);
		slot->c.accepted++;
		conn_link(&blk.conns, c);
		blk.live++;
		err = pthread_create(&c->tid, &attr, bconn_main, c);
		if (err) {
			/* Out of threads: drop this connection, keep serving. */
			conn_unlink(&blk.conns, c);
			blk.live--;
			slot->c.closed++;
			slot->c.errors++;
		}
		pthread_mutex_unlock(&blk.lock);
		pthread_attr_destroy(&attr);
		if (err) {
			close(fd);
			free(c);
		}
	}
	return NULL;
}

/* The acceptor waits at most POLL_TIMEOUT_MS in accept (SO_RCVTIMEO). */
static void blocking_prepare(void)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = POLL_TIMEOUT_MS * 1000 };

	if (setsockopt(run.lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		die("setsockopt(SO_RCVTIMEO)");
}

/* Per slot: the ended threads' counts plus those of the running ones. */
static void blocking_collect(struct ctrs *per)
{
	struct conn *c;
	unsigned int i;

	pthread_mutex_lock(&blk.lock);
	for (i = 0; i < run.nloops; i++)
		ctrs_read(&per[i], &run.loops[i].c);
	for (c = blk.conns; c; c = c->next)
		ctrs_read(&per[c->loop->idx], &c->c);
	pthread_mutex_unlock(&blk.lock);
}

/* The acceptor has stopped: wait (at most STOP_TIMEOUT_NS) for the
 * connection threads, which see the stop within POLL_TIMEOUT_MS. */
static bool blocking_stopped(void)
{
	struct timespec until;
	uint64_t end = (uint64_t)time(NULL) * NS_PER_SEC + STOP_TIMEOUT_NS;
	bool gone;

	until.tv_sec = (time_t)(end / NS_PER_SEC);
	until.tv_nsec = 0;
	pthread_mutex_lock(&blk.lock);
	while (blk.live && pthread_cond_timedwait(&blk.cond, &blk.lock, &until) == 0)
		;
	if (blk.live)
		warn_err(0, "%u connection thread(s) did not stop", blk.live);
	gone = !blk.live;
	pthread_mutex_unlock(&blk.lock);
	return gone;
}

const struct server_mode mode_blocking = {
	.one_listener = true,
	.one_thread = true,
	.prepare = blocking_prepare,
	.thread = acceptor_main,
	.collect = blocking_collect,
	.stopped = blocking_stopped,
};
