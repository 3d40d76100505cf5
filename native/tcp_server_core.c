/* rxb-tcp-server: what every mode's loop uses of the server (tcp_server.h):
 * the run's state, a loop's failure, its counters published and read, a
 * connection made and closed, and what the kernel refused reported. The
 * mode files and the ring code sit above this file; rxb_tcp_server.c
 * (options, listeners, reports, main) above them all. */
#include "tcp_server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const mode_names[MODE_COUNT] = { "blocking", "epoll", "epoll_et",
				   "uring", "uring_opt", "uring_zcrx" };

struct server_run run = { .lfd = -1 };

/* ---- shared bits ------------------------------------------------------------- */

void loop_fail(struct loop *l, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->err_what, sizeof(l->err_what), fmt, ap);
	va_end(ap);
	__atomic_store_n(&l->err, err ? (err < 0 ? -err : err) : EIO, __ATOMIC_RELEASE);
	pthread_kill(run.main_tid, SIGUSR2);
}

void ctrs_publish(struct ctrs *dst, const struct ctrs *d)
{
	if (d->bytes)
		ctr_add(&dst->bytes, d->bytes);
	if (d->recvs)
		ctr_add(&dst->recvs, d->recvs);
	if (d->accepted)
		ctr_add(&dst->accepted, d->accepted);
	if (d->closed)
		ctr_add(&dst->closed, d->closed);
	if (d->errors)
		ctr_add(&dst->errors, d->errors);
	if (d->rearms)
		ctr_add(&dst->rearms, d->rearms);
	if (d->waits)
		ctr_add(&dst->waits, d->waits);
	if (d->enobufs)
		ctr_add(&dst->enobufs, d->enobufs);
	if (d->touch)
		ctr_add(&dst->touch, d->touch);
}

void ctrs_read(struct ctrs *sum, const struct ctrs *c)
{
	sum->bytes += ctr_get(&c->bytes);
	sum->recvs += ctr_get(&c->recvs);
	sum->accepted += ctr_get(&c->accepted);
	sum->closed += ctr_get(&c->closed);
	sum->errors += ctr_get(&c->errors);
	sum->rearms += ctr_get(&c->rearms);
	sum->waits += ctr_get(&c->waits);
	sum->enobufs += ctr_get(&c->enobufs);
	sum->touch += ctr_get(&c->touch);
}

struct conn *conn_new(struct loop *l, int fd, size_t buf, struct ctrs *d)
{
	struct conn *c = calloc(1, sizeof(*c) + buf);

	if (!c) {
		close(fd);
		d->closed++;
		d->errors++;
		return NULL;
	}
	c->fd = fd;
	c->loop = l;
	conn_link(&l->conns, c);
	return c;
}

void conn_close(struct loop *l, struct conn *c, struct ctrs *d, bool error)
{
	close(c->fd); /* epoll: also leaves the epoll set, the fd is not shared */
	conn_unlink(&l->conns, c);
	free(c);
	d->closed++;
	if (error)
		d->errors++;
}

/* {"event":"error","kind":"unsupported",...} for what the kernel refused. */
void report_unsupported(const char *feature, int err, const char *fmt, ...)
{
	char msg[256], name[16];
	va_list ap;
	int n;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));
	json_printf("{\"event\":\"error\",\"tool\":\"%s\",\"kind\":\"unsupported\",\"mode\":\"%s\","
		    "\"feature\":",
		    TOOL_NAME, mode_names[run.o.mode]);
	json_str(feature);
	json_printf(",\"errno\":%d,\"errno_name\":\"%s\",\"reason\":", err,
		    errno_name(err, name, sizeof(name)));
	json_str(msg);
	json_printf("}");
	json_end();
}
