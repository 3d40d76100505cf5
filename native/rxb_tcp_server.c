// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-server: the TCP layer's receiver.  Accept connections on one IPv4
 * port and receive everything, counting bytes (optionally reading every
 * byte: --touch), with one of six receive paths (--mode):
 *
 *   blocking    one thread per connection, plain recv() loop; an acceptor
 *               thread; connection threads pinned round-robin to --cpus
 *   epoll       one loop per CPU with its own SO_REUSEPORT listener,
 *               non-blocking sockets, level-triggered, read until EAGAIN
 *   epoll_et    the same, edge-triggered
 *   uring       io_uring, one recv SQE per connection re-armed after each
 *               completion, accept re-armed the same way
 *   uring_opt   io_uring with SINGLE_ISSUER|DEFER_TASKRUN(|COOP_TASKRUN),
 *               multishot accept straight into a registered file table,
 *               multishot recv from a provided buffer ring, batched
 *               submission; a multishot that ends (ENOBUFS, no
 *               IORING_CQE_F_MORE) is re-armed, never a reason to close;
 *               --wait-nr N: each wait asks for N completions, bounded by
 *               --wait-us (with DEFER_TASKRUN the kernel wakes the loop
 *               only once N are pending: fewer wakeups per byte below
 *               saturation, at most wait-us of added latency)
 *   uring_zcrx  io_uring zero-copy receive (IORING_OP_RECV_ZC) from an
 *               interface queue registered with a user memory area; every
 *               buffer goes back through the refill ring
 *
 * Counters are per thread (no syscall, lock or print per message) and
 * summed by the main thread when it reports.  Every worker sees the stop
 * flag within POLL_TIMEOUT_MS (epoll/io_uring wait timeouts, SO_RCVTIMEO).
 *
 * Events (one JSON object per line on stdout, flushed):
 *   ready     once listening and every thread started
 *   snapshot  on SIGUSR1
 *   final     on exit (duration elapsed, SIGINT/SIGTERM/SIGHUP, worker error)
 *   error     {"kind":"unsupported",...} when the kernel refuses the mode
 *             (exit 3)
 * "conns" is the number of connections open; "closed" counts connections
 * the peer ended (EOF or error), not those still open at exit.  "threads"
 * and "per_thread" are the event loops; for blocking, the CPU slots whose
 * connection threads are summed together.
 *
 * uring_zcrx needs a NIC with queue-management ops and header split (see
 * shared/reference/zcrx.md); on veth/lo, registration fails (EOPNOTSUPP).
 */
#include "common.h"
#include "rxb_tcp_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <liburing.h>
#include "zcrx_abi.h"
#include "rxb_zcrx_rq.h"

#define TOOL_NAME          "rxb-tcp-server"
#define DEFAULT_ADDR       "0.0.0.0"
#define DEFAULT_BUF        (64U << 10)
#define MAX_BUF            (16U << 20)
#define DEFAULT_RING_BUFS  256U         /* uring_opt provided buffers per loop */
#define MAX_WAIT_NR        4096U        /* uring_opt --wait-nr */
#define DEFAULT_WAIT_US    5000U        /* uring_opt --wait-us with --wait-nr > 1 */
#define MAX_RING_BUFS      32768U       /* kernel limit of a buffer ring */
#define MAX_RING_MEM       (1ULL << 30) /* ring bufs x buf, per loop */
#define MAX_LOOPS          256U
#define LISTEN_BACKLOG     4096
#define POLL_TIMEOUT_MS    100          /* bounds how late a thread sees stop */
#define EPOLL_EVENTS       256
#define SQ_ENTRIES         1024U
#define CQ_ENTRIES         8192U
#define MAX_FIXED_FILES    65536U       /* uring_opt registered file table */
#define BGID               0            /* uring_opt buffer group */
#define ZCRX_AREA_BYTES    (64U << 20)  /* zcrx user memory area */
#define MAX_RQ_ENTRIES     32768U       /* kernel limit of a refill ring */
#define DRAIN_TIMEOUT_NS   (1 * NS_PER_SEC)
#define STOP_TIMEOUT_NS    (3 * NS_PER_SEC) /* blocking: wait for conn threads */
#define CONN_STACK         (256U << 10) /* blocking: connection thread stack */

enum mode { MODE_BLOCKING, MODE_EPOLL, MODE_EPOLL_ET, MODE_URING, MODE_URING_OPT, MODE_URING_ZCRX };
static const char *const mode_names[] = { "blocking", "epoll", "epoll_et",
					  "uring", "uring_opt", "uring_zcrx" };

struct opts {
	int mode;
	const char *addr_str;
	struct in_addr addr;
	unsigned int port;
	int cpus[MAX_LOOPS];
	unsigned int ncpus;
	bool touch;
	double duration_s;
	unsigned int buf;
	unsigned int ring_bufs;
	unsigned int wait_nr;   /* uring_opt: completions per wait */
	unsigned int wait_us;   /* ... its bound */
	const char *ifname;
	int rxq;                /* -1: not given */
	unsigned int rq_entries; /* uring_zcrx refill entries, 0: one per area page */
	bool nodev;             /* uring_zcrx device-less (ZCRX_REG_NODEV): copy fallback */
};

struct ctrs {
	uint64_t bytes;    /* payload bytes received */
	uint64_t recvs;    /* recv calls / completions that returned data */
	uint64_t accepted;
	uint64_t closed;   /* connections the peer ended (EOF or error) */
	uint64_t errors;   /* receive/accept errors (a reset connection counts) */
	uint64_t rearms;   /* multishot requests that ended and were re-armed */
	uint64_t waits;    /* epoll_wait / io_uring waits of the event loops */
	uint64_t enobufs;  /* of which for lack of buffers (ENOBUFS, zcrx ENOSPC/ENOMEM) */
	uint64_t touch;    /* byte sum of what was received (--touch) */
};

/* One connection.  blocking: owned by its thread (c, buf); epoll, uring,
 * uring_zcrx: owned by its loop (buf for uring only). */
struct conn {
	struct conn *prev, *next;
	struct loop *loop;
	int fd;
	pthread_t tid;
	alignas(CACHELINE) struct ctrs c; /* blocking only */
	alignas(CACHELINE) uint8_t buf[];
};

/* One event loop (epoll, io_uring) or, for blocking, one CPU slot whose
 * counters collect its ended connection threads (under run.lock). */
struct loop {
	alignas(CACHELINE) struct ctrs c;
	alignas(CACHELINE) unsigned int idx;
	int cpu;                /* -1: not pinned */
	int lfd;                /* its listener (-1: shares run.lfd) */
	pthread_t tid;
	bool started;
	int err;                /* set by the thread before it exits on error */
	char err_what[160];
	bool err_seen;
	struct conn *conns;     /* open connections (not blocking) */
	/* epoll */
	int epfd;
	uint8_t *buf;
	/* io_uring */
	struct io_uring ring;
	bool ring_ok;
	unsigned int inflight;  /* requests submitted, final CQE not yet seen */
	bool drained;           /* inflight reached 0 after cancel: safe to free */
	/* uring_opt */
	struct io_uring_buf_ring *br;
	size_t br_len;
	uint8_t *bufs;
	size_t bufs_len;
	unsigned int br_mask;
	unsigned int br_pending; /* buffers re-added, not yet published */
	/* uring_zcrx */
	uint8_t *area;
	size_t area_len;
	void *rq_mem;
	size_t rq_len;
	struct zrq rq;          /* refill ring + entries waiting for room */
	uint32_t rq_entries;
	uint64_t refill_full;   /* buffers that found the ring full (kept, retried) */
	uint32_t refill_pending_max;
	uint32_t zcrx_id;
	/* device-less zcrx */
	uint64_t flushes;       /* ZCRX_CTRL_FLUSH_RQ calls */
	uint64_t flush_errors;
	const struct rxb_zcrx_stats *stats; /* in the refill region, kernel-written */
	char stats_why[96];     /* why there are no copy counters */
};

static struct {
	struct opts o;
	struct loop *loops;
	unsigned int nloops;
	int lfd;                /* blocking and uring_zcrx: the one listener */
	int stop;               /* __atomic, set by main */
	pthread_t main_tid;
	unsigned int ring_flags; /* io_uring setup flags in use */
	unsigned int nslots;     /* uring_opt fixed-file table size */
	int ifindex;
	/* blocking */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int live;      /* connection threads running */
	struct conn *bconns;    /* their connections */
	pthread_t acc_tid;
	bool acc_started;
} run = { .lfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --mode MODE --port PORT --duration SECS [options]\n"
		"Accept TCP connections on PORT and receive everything, counting bytes.\n"
		"\n"
		"  -m, --mode MODE       blocking, epoll, epoll_et, uring, uring_opt or\n"
		"                        uring_zcrx (required)\n"
		"  -p, --port PORT       listen port, 1..65535 (required)\n"
		"  -a, --addr ADDR       IPv4 address to bind (default: %s)\n"
		"  -c, --cpus LIST       one event loop per CPU, pinned; blocking: connection\n"
		"                        threads pinned round-robin (default: one loop, unpinned)\n"
		"  -T, --touch           read every received byte (byte sum in \"touch\")\n"
		"  -d, --duration SECS   exit after SECS seconds, > 0 (required)\n"
		"  -b, --recv-size BYTES bytes asked for per receive (recv length; uring_opt:\n"
		"                        provided buffer size), 1..%u (default: %u);\n"
		"                        uring_zcrx takes what the kernel gives (--buf: alias)\n"
		"  -n, --ring-bufs N     uring_opt: provided buffers per loop, a power of two\n"
		"                        <= %u (default: %u)\n"
		"  -w, --wait-nr N       uring_opt: wait for N completions (1..%u, default 1),\n"
		"                        at most --wait-us (1..%u, default %u with N > 1)\n"
		"  -W, --wait-us US      the bound of such a wait, microseconds\n"
		"  -i, --ifname IF       uring_zcrx: interface to receive on (required)\n"
		"  -q, --rxq Q           uring_zcrx: its receive queue (required)\n"
		"  -N, --zcrx-nodev      uring_zcrx: device-less zcrx (ZCRX_REG_NODEV, Linux >=\n"
		"                        7.1) on any socket, no --ifname/--rxq: every byte is\n"
		"                        copied (copy fallback, not zero-copy); the kernel's\n"
		"                        copy counters are in the final line\n"
		"  -R, --zcrx-rq-entries N  uring_zcrx: refill ring entries, a power of two\n"
		"                        <= %u (default: one per area page; small values\n"
		"                        exercise the ring-full path)\n"
		"  -h, --help            show this help\n"
		"\n"
		"Output: JSON lines (ready, snapshot on SIGUSR1, final; error if the kernel\n"
		"refuses the mode) on stdout.\n"
		"Signals: SIGUSR1 prints a snapshot; SIGINT/SIGTERM/SIGHUP stop early.\n"
		"Exit: 0 ok, 1 runtime failure, 2 bad arguments/port in use, 3 unsupported.\n",
		TOOL_NAME, DEFAULT_ADDR, MAX_BUF, DEFAULT_BUF, MAX_RING_BUFS, DEFAULT_RING_BUFS,
		MAX_WAIT_NR, POLL_TIMEOUT_MS * 1000U, DEFAULT_WAIT_US, MAX_RQ_ENTRIES);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "port", required_argument, NULL, 'p' },
		{ "addr", required_argument, NULL, 'a' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "touch", no_argument, NULL, 'T' },
		{ "duration", required_argument, NULL, 'd' },
		{ "recv-size", required_argument, NULL, 'b' },
		{ "buf", required_argument, NULL, 'b' },
		{ "ring-bufs", required_argument, NULL, 'n' },
		{ "wait-nr", required_argument, NULL, 'w' },
		{ "wait-us", required_argument, NULL, 'W' },
		{ "ifname", required_argument, NULL, 'i' },
		{ "rxq", required_argument, NULL, 'q' },
		{ "zcrx-rq-entries", required_argument, NULL, 'R' },
		{ "zcrx-nodev", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool ring_bufs_set = false, wait_set = false;
	int c;

	*o = (struct opts){ .mode = -1, .addr_str = DEFAULT_ADDR, .buf = DEFAULT_BUF,
			    .ring_bufs = DEFAULT_RING_BUFS, .wait_nr = 1, .rxq = -1 };
	while ((c = opt_next(argc, argv, ":m:p:a:c:Td:b:n:w:W:i:q:R:Nh", longopts, usage)) != -1) {
		switch (c) {
		case 'm':
			o->mode = opt_enum("mode", optarg, mode_names, ARRAY_SIZE(mode_names));
			break;
		case 'p':
			o->port = opt_uint("port", optarg, 1, 65535);
			break;
		case 'a':
			o->addr_str = optarg;
			break;
		case 'c':
			opt_cpu_list(optarg, o->cpus, MAX_LOOPS, &o->ncpus);
			break;
		case 'T':
			o->touch = true;
			break;
		case 'd':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		case 'b':
			o->buf = opt_uint("recv-size", optarg, 1, MAX_BUF);
			break;
		case 'n':
			o->ring_bufs = opt_uint("ring-bufs", optarg, 1, MAX_RING_BUFS);
			if (o->ring_bufs & (o->ring_bufs - 1))
				usage_error("--ring-bufs: %u is not a power of two", o->ring_bufs);
			ring_bufs_set = true;
			break;
		case 'w':
			o->wait_nr = opt_uint("wait-nr", optarg, 1, MAX_WAIT_NR);
			wait_set = true;
			break;
		case 'W':
			o->wait_us = opt_uint("wait-us", optarg, 1, POLL_TIMEOUT_MS * 1000U);
			wait_set = true;
			break;
		case 'i':
			o->ifname = optarg;
			break;
		case 'q':
			o->rxq = (int)opt_uint("rxq", optarg, 0, 65535);
			break;
		case 'N':
			o->nodev = true;
			break;
		case 'R':
			o->rq_entries = opt_uint("zcrx-rq-entries", optarg, 1, MAX_RQ_ENTRIES);
			if (o->rq_entries & (o->rq_entries - 1))
				usage_error("--zcrx-rq-entries: %u is not a power of two",
					    o->rq_entries);
			break;
		}
	}
	if (o->mode < 0)
		usage_error("--mode is required");
	if (!o->port)
		usage_error("--port is required");
	if (o->duration_s <= 0)
		usage_error("--duration is required (a safety bound)");
	if (inet_pton(AF_INET, o->addr_str, &o->addr) != 1)
		usage_error("--addr: invalid IPv4 address '%s'", o->addr_str);
	if (o->nodev && o->mode != MODE_URING_ZCRX)
		usage_error("--zcrx-nodev only applies to --mode uring_zcrx");
	if (o->nodev && (o->ifname || o->rxq >= 0))
		usage_error("--zcrx-nodev registers no device: drop --ifname/--rxq");
	if (o->mode == MODE_URING_ZCRX) {
		if (!o->nodev && (!o->ifname || o->rxq < 0))
			usage_error("--mode uring_zcrx needs --ifname and --rxq (or --zcrx-nodev)");
		if (o->ncpus > 1)
			usage_error("--mode uring_zcrx: one loop per receive queue (give one CPU)");
	} else if (o->ifname || o->rxq >= 0) {
		usage_error("--ifname/--rxq only apply to --mode uring_zcrx");
	}
	if (o->rq_entries && o->mode != MODE_URING_ZCRX)
		usage_error("--zcrx-rq-entries only applies to --mode uring_zcrx");
	if (ring_bufs_set && o->mode != MODE_URING_OPT)
		usage_error("--ring-bufs only applies to --mode uring_opt");
	if (wait_set && o->mode != MODE_URING_OPT)
		usage_error("--wait-nr/--wait-us only apply to --mode uring_opt");
	if (!o->wait_us)
		o->wait_us = o->wait_nr > 1 ? DEFAULT_WAIT_US : POLL_TIMEOUT_MS * 1000U;
	if (o->mode == MODE_URING_OPT && (uint64_t)o->ring_bufs * o->buf > MAX_RING_MEM)
		usage_error("--ring-bufs %u x --buf %u: more than %llu MiB per loop", o->ring_bufs,
			    o->buf, MAX_RING_MEM >> 20);
}

/* ---- shared bits ---------------------------------------------------------- */

static inline bool stopping(void)
{
	return __atomic_load_n(&run.stop, __ATOMIC_RELAXED);
}

/* A loop cannot go on: record why and wake the main thread (SIGUSR2). */
RXB_PRINTF(3, 4) static void loop_fail(struct loop *l, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->err_what, sizeof(l->err_what), fmt, ap);
	va_end(ap);
	__atomic_store_n(&l->err, err ? (err < 0 ? -err : err) : EIO, __ATOMIC_RELEASE);
	pthread_kill(run.main_tid, SIGUSR2);
}

static void ctrs_publish(struct ctrs *dst, const struct ctrs *d)
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

static void ctrs_read(struct ctrs *sum, const struct ctrs *c)
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

static void conn_link(struct conn **head, struct conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static void conn_unlink(struct conn **head, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Received data at p[0..n): count it, and read it all with --touch. */
static inline void account(struct ctrs *d, const void *p, size_t n)
{
	d->bytes += n;
	d->recvs++;
	if (run.o.touch)
		d->touch += bytesum(p, n);
}

/* {"event":"error","kind":"unsupported",...} for what the kernel refused. */
RXB_PRINTF(3, 4) static void report_unsupported(const char *feature, int err, const char *fmt, ...)
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

/* ---- listeners ------------------------------------------------------------ */

/* Bound and listening TCP socket on --addr:--port; exit 2 when the port is
 * taken or the address is not ours. */
static int make_listener(bool reuseport, bool nonblock, bool do_listen)
{
	const struct opts *o = &run.o;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port),
				   .sin_addr = o->addr };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		die("socket(AF_INET, SOCK_STREAM)");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		die("setsockopt(SO_REUSEADDR)");
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		die("setsockopt(SO_REUSEPORT)");
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    (do_listen && listen(fd, LISTEN_BACKLOG))) {
		if (errno == EADDRINUSE)
			usage_error("port %u on %s is already in use", o->port, o->addr_str);
		if (errno == EADDRNOTAVAIL)
			usage_error("--addr %s: not an address of this host (or namespace)",
				    o->addr_str);
		if (errno == EACCES)
			usage_error("port %u: permission denied", o->port);
		die("bind/listen %s:%u", o->addr_str, o->port);
	}
	return fd;
}

/* One listener (blocking, uring_zcrx, one loop) or one SO_REUSEPORT
 * listener per loop.  A reuseport group would silently share the port with
 * another reuseport listener of the same user, so first check with a plain
 * bind that nobody listens there. */
static void open_listeners(void)
{
	const struct opts *o = &run.o;
	bool nonblock = o->mode == MODE_EPOLL || o->mode == MODE_EPOLL_ET;
	unsigned int i;

	if (o->mode == MODE_BLOCKING || o->mode == MODE_URING_ZCRX || run.nloops == 1) {
		run.lfd = make_listener(false, nonblock, true);
		for (i = 0; i < run.nloops; i++)
			run.loops[i].lfd = run.lfd;
		return;
	}
	close(make_listener(false, false, false));
	for (i = 0; i < run.nloops; i++)
		run.loops[i].lfd = make_listener(true, nonblock, true);
}

/* ---- blocking ------------------------------------------------------------- */

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

	pthread_mutex_lock(&run.lock);
	slot->c.bytes += c->c.bytes;
	slot->c.recvs += c->c.recvs;
	slot->c.touch += c->c.touch;
	if (ended)
		slot->c.closed++;
	if (err)
		slot->c.errors++;
	conn_unlink(&run.bconns, c);
	if (--run.live == 0)
		pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.lock);
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
				pthread_mutex_lock(&run.lock);
				l0->c.errors++;
				pthread_mutex_unlock(&run.lock);
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
			pthread_mutex_lock(&run.lock);
			slot->c.accepted++;
			slot->c.closed++;
			slot->c.errors++;
			pthread_mutex_unlock(&run.lock);
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
		pthread_mutex_lock(&run.lock);
		slot->c.accepted++;
		conn_link(&run.bconns, c);
		run.live++;
		err = pthread_create(&c->tid, &attr, bconn_main, c);
		if (err) {
			/* Out of threads: drop this connection, keep serving. */
			conn_unlink(&run.bconns, c);
			run.live--;
			slot->c.closed++;
			slot->c.errors++;
		}
		pthread_mutex_unlock(&run.lock);
		pthread_attr_destroy(&attr);
		if (err) {
			close(fd);
			free(c);
		}
	}
	return NULL;
}

/* ---- epoll ---------------------------------------------------------------- */

static void econn_close(struct loop *l, struct conn *c, struct ctrs *d, bool error)
{
	close(c->fd); /* also leaves the epoll set: the fd is not shared */
	conn_unlink(&l->conns, c);
	free(c);
	d->closed++;
	if (error)
		d->errors++;
}

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
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			d->closed++;
			d->errors++;
			continue;
		}
		c->fd = fd;
		c->loop = l;
		ev.events = EPOLLIN | EPOLLRDHUP | evflags;
		ev.data.ptr = c;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			d->closed++;
			d->errors++;
			continue;
		}
		conn_link(&l->conns, c);
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
		ssize_t n = recv(c->fd, l->buf, len, 0);

		if (n > 0) {
			ctr_add(&l->c.bytes, (uint64_t)n);
			ctr_add(&l->c.recvs, 1);
			if (run.o.touch)
				ctr_add(&l->c.touch, bytesum(l->buf, (size_t)n));
			continue;
		}
		if (n == 0) {
			econn_close(l, c, d, false);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			econn_close(l, c, d, true);
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

		n = epoll_wait(l->epfd, evs, EPOLL_EVENTS, POLL_TIMEOUT_MS);
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

static void epoll_setup(struct loop *l)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	if (run.o.mode == MODE_EPOLL_ET)
		ev.events |= EPOLLET;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		die("epoll_create1");
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->lfd, &ev))
		die("epoll_ctl(ADD listener)");
	l->buf = malloc(run.o.buf);
	if (!l->buf)
		die("malloc(%u)", run.o.buf);
}

/* ---- io_uring: common ----------------------------------------------------- */

/* user_data: the request kind in the top byte, a conn pointer or a fixed
 * file slot below. */
enum { TAG_ACCEPT = 1, TAG_RECV, TAG_CLOSE, TAG_CANCEL };
#define UD(tag, v)   (((uint64_t)(tag) << 56) | (uint64_t)(v))
#define UD_TAG(ud)   ((unsigned int)((ud) >> 56))
#define UD_VAL(ud)   ((ud) & ((1ULL << 56) - 1))

/* An SQE, submitting what is queued when the SQ is full. */
static struct io_uring_sqe *get_sqe(struct loop *l)
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

static void ring_setup_fail(const char *feature, int err, unsigned int flags)
{
	report_unsupported(feature, err, "io_uring_setup(flags 0x%x)", flags);
	exit(RXB_EXIT_UNSUPPORTED);
}

static const char *ring_flag_names(unsigned int flags, char *buf, size_t len)
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

/* Create a loop's ring (main thread).  uring_opt and uring_zcrx rings are
 * SINGLE_ISSUER: created disabled so that main can register resources, and
 * enabled by the loop thread, which becomes their only submitter.
 * COOP_TASKRUN is optional: dropped (with a note) if refused. */
static void ring_create(struct loop *l)
{
	struct io_uring_params p;
	unsigned int want = 0;
	int ret;

	if (run.o.mode == MODE_URING_OPT || run.o.mode == MODE_URING_ZCRX) {
		want = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		       IORING_SETUP_COOP_TASKRUN | IORING_SETUP_R_DISABLED;
		if (run.o.mode == MODE_URING_ZCRX)
			want |= IORING_SETUP_CQE32;
		if (run.ring_flags) /* a previous loop found what works */
			want = run.ring_flags | IORING_SETUP_R_DISABLED;
	}
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

/* Exit 3 unless the kernel knows every opcode in ops[]. */
static void require_opcodes(struct io_uring *ring, const int *ops, const char *const *names, int n)
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

typedef void (*cqe_fn)(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d);
typedef void (*batch_fn)(struct loop *l);

/* Process every CQE available, then end_batch (buffer publishing). */
static void ring_reap(struct loop *l, cqe_fn fn, batch_fn end_batch, struct ctrs *d)
{
	struct io_uring_cqe *cqe;
	unsigned int head, count = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe) {
		if (!(cqe->flags & IORING_CQE_F_MORE))
			l->inflight--; /* the request's last CQE */
		fn(l, cqe, d);
		count++;
	}
	if (end_batch)
		end_batch(l);
	io_uring_cq_advance(&l->ring, count);
}

/* Run a loop until stop, then cancel everything in flight and wait (at
 * most DRAIN_TIMEOUT_NS) for the last completions, so that no buffer is
 * freed while the kernel may still write to it. */
static void ring_run(struct loop *l, cqe_fn fn, batch_fn end_batch)
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
		ring_reap(l, fn, end_batch, &d);
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
		ring_reap(l, fn, end_batch, &d);
		ctrs_publish(&l->c, &d);
	}
	l->drained = l->inflight == 0;
}

static bool recv_ended_ok(int res)
{
	/* The multishot stopped but the connection is fine: re-arm it. */
	return res > 0 || res == -ENOBUFS || res == -EAGAIN || res == -EINTR ||
	       res == -ENOSPC || res == -ENOMEM;
}

/* ---- io_uring: plain ------------------------------------------------------ */

static void uring_arm_accept(struct loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

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

static void uconn_close(struct loop *l, struct conn *c, struct ctrs *d, bool error)
{
	close(c->fd);
	conn_unlink(&l->conns, c);
	free(c);
	d->closed++;
	if (error)
		d->errors++;
}

static void uring_cqe(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d)
{
	struct conn *c;

	switch (UD_TAG(cqe->user_data)) {
	case TAG_ACCEPT:
		if (cqe->res >= 0) {
			d->accepted++;
			c = calloc(1, sizeof(*c) + run.o.buf);
			if (!c) {
				close(cqe->res);
				d->closed++;
				d->errors++;
			} else {
				c->fd = cqe->res;
				c->loop = l;
				conn_link(&l->conns, c);
				if (!stopping())
					uring_arm_recv(l, c);
			}
		} else if (cqe->res != -ECANCELED) {
			d->errors++;
		}
		if (!stopping())
			uring_arm_accept(l);
		break;
	case TAG_RECV:
		c = (struct conn *)(uintptr_t)UD_VAL(cqe->user_data);
		if (cqe->res > 0) {
			account(d, c->buf, (size_t)cqe->res);
			if (!stopping())
				uring_arm_recv(l, c);
		} else if (cqe->res == 0) {
			uconn_close(l, c, d, false);
		} else if (cqe->res == -ECANCELED) {
			/* stopping: closed with the loop */
		} else if (recv_ended_ok(cqe->res)) {
			if (!stopping())
				uring_arm_recv(l, c);
		} else {
			uconn_close(l, c, d, true);
		}
		break;
	default:
		break;
	}
}

static void *uring_main(void *arg)
{
	struct loop *l = arg;

	uring_arm_accept(l);
	ring_run(l, uring_cqe, NULL);
	return NULL;
}

/* ---- io_uring: optimised -------------------------------------------------- */

static void opt_arm_accept(struct loop *l, struct ctrs *d)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	io_uring_prep_multishot_accept_direct(sqe, l->lfd, NULL, NULL, 0);
	sqe->user_data = UD(TAG_ACCEPT, 0);
	if (d)
		d->rearms++;
}

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

static void opt_cqe(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d)
{
	unsigned int slot = (unsigned int)UD_VAL(cqe->user_data);
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;

	switch (UD_TAG(cqe->user_data)) {
	case TAG_ACCEPT:
		if (res >= 0) {
			d->accepted++;
			if (stopping())
				break; /* the slot is closed with the ring */
			opt_arm_recv(l, (unsigned int)res);
		} else if (res != -ECANCELED) {
			d->errors++; /* ENFILE: table full, the kernel closed the socket */
		}
		if (!more && !stopping())
			opt_arm_accept(l, d);
		break;
	case TAG_RECV:
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			uint8_t *buf = l->bufs + (size_t)bid * run.o.buf;

			if (res > 0)
				account(d, buf, (size_t)res);
			io_uring_buf_ring_add(l->br, buf, run.o.buf, (unsigned short)bid, l->br_mask,
					      (int)l->br_pending++);
		}
		if (more || stopping())
			break;
		if (res == 0) {
			opt_close(l, slot);
		} else if (recv_ended_ok(res)) {
			/* Buffers are published before the next submit. */
			d->rearms++;
			if (res == -ENOBUFS)
				d->enobufs++;
			opt_arm_recv(l, slot);
		} else {
			d->errors++;
			opt_close(l, slot);
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

/* io_uring_enable_rings() is declared by liburing 2.3 but missing from its
 * shared library (not in the 2.3 symbol map): call the kernel directly. */
static int enable_rings(struct io_uring *ring)
{
	if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0))
		return -errno;
	return 0;
}

static void opt_end_batch(struct loop *l)
{
	if (l->br_pending) {
		io_uring_buf_ring_advance(l->br, (int)l->br_pending);
		l->br_pending = 0;
	}
}

static void *opt_main(void *arg)
{
	struct loop *l = arg;
	int ret;

	ret = enable_rings(&l->ring);
	if (ret) {
		loop_fail(l, ret, "io_uring_enable_rings");
		return NULL;
	}
	opt_arm_accept(l, NULL);
	ring_run(l, opt_cqe, opt_end_batch);
	return NULL;
}

/* Register and fill a loop's provided-buffer ring. */
static int buf_ring_setup(struct loop *l, unsigned int nbufs, size_t buf_len, int bgid)
{
	struct io_uring_buf_reg reg;
	unsigned int i;
	int ret;

	l->br_len = (size_t)nbufs * sizeof(struct io_uring_buf);
	l->br = mmap(NULL, l->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l->br == MAP_FAILED) {
		l->br = NULL;
		die("mmap(buffer ring, %zu B)", l->br_len);
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)l->br;
	reg.ring_entries = nbufs;
	reg.bgid = (uint16_t)bgid;
	ret = io_uring_register_buf_ring(&l->ring, &reg, 0);
	if (ret)
		return ret;
	l->bufs_len = (size_t)nbufs * buf_len;
	l->bufs = mmap(NULL, l->bufs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (l->bufs == MAP_FAILED) {
		l->bufs = NULL;
		die("mmap(buffers, %zu B)", l->bufs_len);
	}
	l->br_mask = (unsigned int)io_uring_buf_ring_mask(nbufs);
	io_uring_buf_ring_init(l->br);
	for (i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * buf_len, (unsigned int)buf_len,
				      (unsigned short)i, l->br_mask, (int)i);
	io_uring_buf_ring_advance(l->br, (int)nbufs);
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
	munmap(pl.bufs, pl.bufs_len);
	munmap(pl.br, pl.br_len);
}

static void opt_setup(struct loop *l)
{
	static const int ops[] = { IORING_OP_ACCEPT, IORING_OP_RECV, IORING_OP_CLOSE,
				   IORING_OP_ASYNC_CANCEL };
	static const char *const names[] = { "IORING_OP_ACCEPT", "IORING_OP_RECV",
					     "IORING_OP_CLOSE", "IORING_OP_ASYNC_CANCEL" };
	int ret;

	ring_create(l);
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

/* ---- io_uring: zero-copy receive ------------------------------------------ */

static void zc_arm_accept(struct loop *l, struct ctrs *d)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, l->lfd, NULL, NULL, SOCK_CLOEXEC);
	sqe->user_data = UD(TAG_ACCEPT, 0);
	if (d)
		d->rearms++;
}

static void zc_arm_recv(struct loop *l, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return;
	/* len 0: no limit; the ifq id sits in the u32 of sqe->file_index. */
	io_uring_prep_rw(IORING_OP_RECV_ZC, sqe, c->fd, NULL, 0, 0);
	sqe->ioprio |= IORING_RECV_MULTISHOT;
	sqe->file_index = l->zcrx_id;
	sqe->user_data = UD(TAG_RECV, (uintptr_t)c);
}

/* Hand a buffer back to the kernel through the refill ring (published in
 * zc_end_batch).  Several CQEs can point into one area page and the kernel
 * reads the ring only when its cache runs low, so the ring can be full: the
 * entry then waits in the ring's pending FIFO (rxb_zcrx_rq.h), never lost. */
static void zc_refill(struct loop *l, uint64_t off, uint32_t len)
{
	if (zrq_push(&l->rq, off, len)) {
		loop_fail(l, ENOMEM, "zcrx refill: no memory to keep a buffer for the ring");
		__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
	}
}

/* Device-less zcrx: the kernel takes the published refill entries back
 * into its free list (a no-op call elsewhere). */
static void zc_flush(struct loop *l)
{
	struct rxb_zcrx_ctrl ctrl = { .zcrx_id = l->zcrx_id, .op = RXB_ZCRX_CTRL_FLUSH_RQ };

	if (!run.o.nodev)
		return;
	zrq_publish(&l->rq);
	if (syscall(__NR_io_uring_register, l->ring.ring_fd, RXB_IORING_REGISTER_ZCRX_CTRL, &ctrl,
		    0))
		__atomic_store_n(&l->flush_errors, l->flush_errors + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&l->flushes, l->flushes + 1, __ATOMIC_RELAXED);
}

static void zc_cqe(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;
	struct conn *c;

	switch (UD_TAG(cqe->user_data)) {
	case TAG_ACCEPT:
		if (res >= 0) {
			d->accepted++;
			c = calloc(1, sizeof(*c));
			if (!c) {
				close(res);
				d->closed++;
				d->errors++;
				break;
			}
			c->fd = res;
			c->loop = l;
			conn_link(&l->conns, c);
			if (!stopping())
				zc_arm_recv(l, c);
		} else if (res != -ECANCELED) {
			d->errors++;
		}
		if (!more && !stopping())
			zc_arm_accept(l, d);
		break;
	case TAG_RECV:
		c = (struct conn *)(uintptr_t)UD_VAL(cqe->user_data);
		if (res > 0) {
			const struct io_uring_zcrx_cqe *zc = (const void *)(cqe + 1);
			uint64_t off = zc->off & ~IORING_ZCRX_AREA_MASK;

			if (off + (uint64_t)res <= l->area_len)
				account(d, l->area + off, (size_t)res);
			else
				d->errors++; /* cannot happen: the kernel owns the offsets */
			zc_refill(l, zc->off, (uint32_t)res);
		}
		if (more || stopping())
			break;
		if (res == 0) {
			uconn_close(l, c, d, false);
		} else if (recv_ended_ok(res)) {
			d->rearms++;
			if (res == -ENOSPC || res == -ENOMEM || res == -ENOBUFS) {
				d->enobufs++;
				zc_flush(l); /* nodev: hand the kernel its buffers first */
			}
			zc_arm_recv(l, c);
		} else {
			uconn_close(l, c, d, true);
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
	zrq_drain(&l->rq);
	zrq_publish(&l->rq);
	if (run.o.nodev && (l->rq.pend_count || zrq_queued(&l->rq) >= (l->rq.entries + 1) / 2)) {
		zc_flush(l);
		zrq_drain(&l->rq);
		zrq_publish(&l->rq);
	}
	__atomic_store_n(&l->refill_full, l->rq.full, __ATOMIC_RELAXED);
	__atomic_store_n(&l->refill_pending_max, l->rq.pend_max, __ATOMIC_RELAXED);
}

static void *zc_main(void *arg)
{
	struct loop *l = arg;
	int ret;

	ret = enable_rings(&l->ring);
	if (ret) {
		loop_fail(l, ret, "io_uring_enable_rings");
		return NULL;
	}
	zc_arm_accept(l, NULL);
	ring_run(l, zc_cqe, zc_end_batch);
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
		snprintf(l->stats_why, sizeof(l->stats_why),
			 "kernel has no ZCRX_FEATURE_EVENT (features 0x%x)", q.features);
		return;
	}
	ret = zcrx_query(RXB_IO_URING_QUERY_ZCRX_EVENT, &e, sizeof(e));
	if (ret || e.stats_size < sizeof(struct rxb_zcrx_stats)) {
		char name[16];

		snprintf(l->stats_why, sizeof(l->stats_why), "IO_URING_QUERY_ZCRX_EVENT: %s",
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

	ring_create(l);
	require_opcodes(&l->ring, ops, names, ARRAY_SIZE(ops));
	if (run.o.nodev)
		nodev_probe(l, &hdr, &hdr_align, &stats_size, &stats_align);

	l->area_len = ZCRX_AREA_BYTES;
	l->area = mmap(NULL, l->area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (l->area == MAP_FAILED) {
		l->area = NULL;
		die("mmap(zcrx area, %zu B)", l->area_len);
	}
	/* Default: one refill entry per area page (the ring can still be full:
	 * several CQEs may share a page; zc_refill keeps what does not fit). */
	want = run.o.rq_entries ? run.o.rq_entries : (uint32_t)(l->area_len / page);
	l->rq_len = ALIGN_UP(hdr, hdr_align) + (size_t)want * sizeof(struct io_uring_zcrx_rqe);
	if (stats_size) {
		stats_off = ALIGN_UP(l->rq_len, stats_align);
		l->rq_len = stats_off + stats_size;
	}
	l->rq_len = ALIGN_UP(l->rq_len, page);
	l->rq_mem = mmap(NULL, l->rq_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			 0);
	if (l->rq_mem == MAP_FAILED) {
		l->rq_mem = NULL;
		die("mmap(zcrx refill ring, %zu B)", l->rq_len);
	}

	memset(&region, 0, sizeof(region));
	region.user_addr = (uint64_t)(uintptr_t)l->rq_mem;
	region.size = l->rq_len;
	region.flags = RXB_MEM_REGION_TYPE_USER;
	memset(&area, 0, sizeof(area));
	area.addr = (uint64_t)(uintptr_t)l->area;
	area.len = l->area_len;
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
			snprintf(l->stats_why, sizeof(l->stats_why),
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
					   want, (unsigned int)(l->area_len >> 20), u.release);
			exit(RXB_EXIT_UNSUPPORTED);
		}
		if (stats_size)
			l->stats = (const struct rxb_zcrx_stats *)((uint8_t *)l->rq_mem + stats_off);
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
					   (unsigned int)(l->area_len >> 20));
			exit(RXB_EXIT_UNSUPPORTED);
		}
	}
	l->rq_entries = reg.rq_entries;
	zrq_init(&l->rq, l->rq_mem, reg.offsets.head, reg.offsets.tail, reg.offsets.rqes,
		 reg.rq_entries, area.rq_area_token);
	l->zcrx_id = reg.zcrx_id;
}

/* ---- reporting ------------------------------------------------------------ */

static void report(const char *event, const char *reason)
{
	struct ctrs *per = calloc(run.nloops, sizeof(*per)), sum = { 0 };
	uint64_t t = mono_ns(), refill_full = 0;
	uint32_t pending_max = 0;
	unsigned int i;

	if (!per)
		die("calloc");
	if (run.o.mode == MODE_BLOCKING) {
		struct conn *c;

		pthread_mutex_lock(&run.lock);
		for (i = 0; i < run.nloops; i++)
			ctrs_read(&per[i], &run.loops[i].c);
		for (c = run.bconns; c; c = c->next)
			ctrs_read(&per[c->loop->idx], &c->c);
		pthread_mutex_unlock(&run.lock);
	} else {
		for (i = 0; i < run.nloops; i++)
			ctrs_read(&per[i], &run.loops[i].c);
	}
	for (i = 0; i < run.nloops; i++) {
		ctrs_read(&sum, &per[i]);
		refill_full += __atomic_load_n(&run.loops[i].refill_full, __ATOMIC_RELAXED);
		if (__atomic_load_n(&run.loops[i].refill_pending_max, __ATOMIC_RELAXED) > pending_max)
			pending_max = __atomic_load_n(&run.loops[i].refill_pending_max,
						      __ATOMIC_RELAXED);
	}

	json_printf("{\"event\":\"%s\",\"t_ns\":%" PRIu64 ",\"mode\":\"%s\",\"bytes\":%" PRIu64
		    ",\"recvs\":%" PRIu64 ",\"conns\":%" PRIu64 ",\"accepted\":%" PRIu64
		    ",\"closed\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"rearms\":%" PRIu64
		    ",\"enobufs\":%" PRIu64 ",\"waits\":%" PRIu64 ",\"touch\":",
		    event, t, mode_names[run.o.mode], sum.bytes, sum.recvs,
		    sum.accepted - sum.closed, sum.accepted, sum.closed, sum.errors, sum.rearms,
		    sum.enobufs, sum.waits);
	if (run.o.touch)
		json_printf("%" PRIu64, sum.touch);
	else
		json_printf("null");
	if (run.o.mode == MODE_URING_ZCRX)
		json_printf(",\"refill_full\":%" PRIu64 ",\"refill_pending_max\":%u", refill_full,
			    pending_max);
	if (run.o.mode == MODE_URING_ZCRX) {
		const struct loop *l0 = &run.loops[0];

		json_printf(",\"zcrx\":\"%s\"", run.o.nodev ? "nodev" : "device");
		if (run.o.nodev)
			json_printf(",\"zcrx_flushes\":%" PRIu64 ",\"zcrx_flush_errors\":%" PRIu64,
				    __atomic_load_n(&l0->flushes, __ATOMIC_RELAXED),
				    __atomic_load_n(&l0->flush_errors, __ATOMIC_RELAXED));
		if (l0->stats) {
			json_printf(",\"copy_count\":%" PRIu64 ",\"copy_bytes\":%" PRIu64,
				    __atomic_load_n(&l0->stats->copy_count, __ATOMIC_RELAXED),
				    __atomic_load_n(&l0->stats->copy_bytes, __ATOMIC_RELAXED));
		} else {
			json_printf(",\"copy_count\":null,\"copy_bytes\":null,\"copy_stats\":");
			json_str(run.o.nodev ? l0->stats_why : "not asked for (device mode)");
		}
	}
	json_printf(",\"per_thread\":{");
	for (i = 0; i < run.nloops; i++) {
		json_printf("%s\"%u\":{\"cpu\":", i ? "," : "", i);
		if (run.loops[i].cpu >= 0)
			json_printf("%d", run.loops[i].cpu);
		else
			json_printf("null");
		json_printf(",\"bytes\":%" PRIu64 ",\"recvs\":%" PRIu64 ",\"accepted\":%" PRIu64
			    ",\"closed\":%" PRIu64 "}",
			    per[i].bytes, per[i].recvs, per[i].accepted, per[i].closed);
	}
	json_printf("}");
	if (reason)
		json_printf(",\"reason\":\"%s\"", reason);
	json_printf("}");
	json_end();
	free(per);
}

static void print_ready(uint64_t t0)
{
	const struct opts *o = &run.o;
	struct rlimit rl = { 0 };
	char names[96];

	getrlimit(RLIMIT_NOFILE, &rl);
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"mode\":\"%s\",\"addr\":", TOOL_NAME,
		    mode_names[o->mode]);
	json_str(o->addr_str);
	json_printf(",\"port\":%u,\"threads\":%u", o->port, run.nloops);
	json_cpus(o->cpus, o->ncpus);
	json_printf(",\"buf\":%u,\"recv_size\":%u,\"touch\":%s,\"ring_flags\":", o->buf, o->buf,
		    o->touch ? "true" : "false");
	if (o->mode == MODE_URING_OPT || o->mode == MODE_URING_ZCRX) {
		json_str(ring_flag_names(run.ring_flags, names, sizeof(names)));
	} else {
		json_printf("null");
	}
	if (o->mode == MODE_URING_OPT)
		json_printf(",\"ring_bufs\":%u,\"fixed_files\":%u,\"wait_nr\":%u,\"wait_us\":%u",
			    o->ring_bufs, run.nslots, o->wait_nr, o->wait_us);
	else
		json_printf(",\"ring_bufs\":null,\"fixed_files\":null,\"wait_nr\":null,"
			    "\"wait_us\":null");
	if (o->mode == MODE_URING_ZCRX) {
		json_printf(",\"zcrx\":\"%s\",\"ifname\":", o->nodev ? "nodev" : "device");
		if (o->ifname)
			json_str(o->ifname);
		else
			json_printf("null");
		json_printf(",\"ifindex\":%d,\"rxq\":%d,\"zcrx_id\":%u,\"zcrx_area\":%zu,"
			    "\"rq_entries\":%u",
			    run.ifindex, o->rxq, run.loops[0].zcrx_id, run.loops[0].area_len,
			    run.loops[0].rq_entries);
	}
	json_printf(",\"nofile\":%llu,\"t_ns\":%" PRIu64 "}", (unsigned long long)rl.rlim_cur, t0);
	json_end();
}

/* ------------------------------------------------------------------------- */

static void *(*const loop_fns[])(void *) = {
	[MODE_BLOCKING] = acceptor_main, [MODE_EPOLL] = epoll_main,
	[MODE_EPOLL_ET] = epoll_main,    [MODE_URING] = uring_main,
	[MODE_URING_OPT] = opt_main,     [MODE_URING_ZCRX] = zc_main,
};

static int start_thread(pthread_t *tid, int cpu, void *(*fn)(void *), void *arg,
			const char *name)
{
	pthread_attr_t attr;
	int err;

	pthread_attr_init(&attr);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		if (err) {
			warn_err(err, "pthread_attr_setaffinity_np(CPU %d)", cpu);
			pthread_attr_destroy(&attr);
			return -1;
		}
	}
	err = pthread_create(tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (err) {
		warn_err(err, "pthread_create (%s, CPU %d)", name, cpu);
		return -1;
	}
	pthread_setname_np(*tid, name);
	return 0;
}

/* A loop's error, reported once on stderr; true if there was one. */
static bool check_loop_err(struct loop *l)
{
	int err = __atomic_load_n(&l->err, __ATOMIC_ACQUIRE);

	if (!err || l->err_seen)
		return false;
	l->err_seen = true;
	warn_err(err, "thread %u: %s", l->idx, l->err_what);
	return true;
}

static void print_snapshot(void *arg)
{
	(void)arg;
	report("snapshot", NULL);
}

/* SIGUSR2: a loop stopped on an error. */
static const char *loops_failed(void *arg)
{
	const char *reason = NULL;
	unsigned int i;

	(void)arg;
	for (i = 0; i < run.nloops; i++)
		if (check_loop_err(&run.loops[i]))
			reason = "error";
	return reason;
}

static void cleanup(void)
{
	unsigned int i;

	for (i = 0; i < run.nloops; i++) {
		struct loop *l = &run.loops[i];
		bool io_safe = true;

		if (l->ring_ok) {
			io_uring_queue_exit(&l->ring);
			io_safe = l->drained || !l->started;
		}
		/* Connections still open (their requests are drained). */
		while (l->conns) {
			struct conn *c = l->conns;

			close(c->fd);
			conn_unlink(&l->conns, c);
			if (io_safe)
				free(c);
		}
		if (l->epfd >= 0)
			close(l->epfd);
		if (l->lfd >= 0 && l->lfd != run.lfd)
			close(l->lfd);
		free(l->buf);
		if (io_safe) {
			if (l->bufs)
				munmap(l->bufs, l->bufs_len);
			if (l->br)
				munmap(l->br, l->br_len);
			if (l->area)
				munmap(l->area, l->area_len);
			if (l->rq_mem)
				munmap(l->rq_mem, l->rq_len);
			zrq_free(&l->rq);
		}
	}
	if (run.lfd >= 0)
		close(run.lfd);
	free(run.loops);
}

int main(int argc, char **argv)
{
	struct opts *o = &run.o;
	const char *reason = NULL;
	uint64_t t0, deadline;
	int ret = RXB_EXIT_FAIL;
	sigset_t sigs;
	unsigned int i;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, o);
	raise_nofile();
	if (o->mode == MODE_URING_ZCRX && !o->nodev)
		run.ifindex = opt_ifindex(o->ifname);

	/* Signals are taken synchronously by the main thread (sigtimedwait);
	 * blocked before any thread exists so every thread inherits the mask.
	 * SIGUSR2 is a worker's "I stopped on an error". */
	block_signals(&sigs, SIGUSR2);
	run.main_tid = pthread_self();

	run.nloops = o->ncpus ? o->ncpus : 1;
	run.loops = aligned_alloc(CACHELINE, run.nloops * sizeof(*run.loops));
	if (!run.loops)
		die("aligned_alloc");
	memset(run.loops, 0, run.nloops * sizeof(*run.loops));
	for (i = 0; i < run.nloops; i++) {
		run.loops[i].idx = i;
		run.loops[i].cpu = o->ncpus ? o->cpus[i] : -1;
		run.loops[i].lfd = -1;
		run.loops[i].epfd = -1;
	}

	open_listeners();
	if (o->mode == MODE_BLOCKING) {
		struct timeval tv = { .tv_sec = 0, .tv_usec = POLL_TIMEOUT_MS * 1000 };

		if (setsockopt(run.lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
			die("setsockopt(SO_RCVTIMEO)");
	}
	if (o->mode == MODE_URING_OPT) {
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		run.nslots = rl.rlim_cur < MAX_FIXED_FILES ? (unsigned int)rl.rlim_cur
							   : MAX_FIXED_FILES;
	}
	for (i = 0; i < run.nloops; i++) {
		struct loop *l = &run.loops[i];
		static const int ops[] = { IORING_OP_ACCEPT, IORING_OP_RECV,
					   IORING_OP_ASYNC_CANCEL };
		static const char *const names[] = { "IORING_OP_ACCEPT", "IORING_OP_RECV",
						     "IORING_OP_ASYNC_CANCEL" };

		switch (o->mode) {
		case MODE_EPOLL:
		case MODE_EPOLL_ET:
			epoll_setup(l);
			break;
		case MODE_URING:
			ring_create(l);
			if (i == 0)
				require_opcodes(&l->ring, ops, names, ARRAY_SIZE(ops));
			break;
		case MODE_URING_OPT:
			opt_setup(l);
			if (i == 0)
				probe_multishot_recv(run.ring_flags);
			break;
		case MODE_URING_ZCRX:
			zc_setup(l);
			break;
		default:
			break;
		}
	}

	/* Every exit from here on stops and joins the started threads. */
	for (i = 0; i < run.nloops; i++) {
		struct loop *l = &run.loops[i];
		char name[32];

		if (o->mode == MODE_BLOCKING) {
			/* One acceptor; the slots only pin connection threads. */
			if (start_thread(&run.acc_tid, -1, acceptor_main, l, "rxb-tcp-acc"))
				goto out_stop;
			run.acc_started = true;
			break;
		}
		snprintf(name, sizeof(name), "rxb-tcp-%u", i);
		name[15] = '\0'; /* kernel limit: 16 bytes with the NUL */
		if (start_thread(&l->tid, l->cpu, loop_fns[o->mode], l, name))
			goto out_stop;
		l->started = true;
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o->duration_s * (double)NS_PER_SEC);
	print_ready(t0);

	reason = run_until_signal(&sigs, deadline, print_snapshot, loops_failed, NULL);
	ret = strcmp(reason, "error") ? RXB_EXIT_OK : RXB_EXIT_FAIL;

out_stop:
	__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
	if (run.acc_started)
		pthread_join(run.acc_tid, NULL);
	for (i = 0; i < run.nloops; i++) {
		struct loop *l = &run.loops[i];

		if (l->started)
			pthread_join(l->tid, NULL);
		/* An error the main loop had no time to see. */
		if (check_loop_err(l)) {
			ret = RXB_EXIT_FAIL;
			if (reason)
				reason = "error";
		}
	}
	if (o->mode == MODE_BLOCKING) {
		struct timespec until;
		uint64_t end = (uint64_t)time(NULL) * NS_PER_SEC + STOP_TIMEOUT_NS;

		until.tv_sec = (time_t)(end / NS_PER_SEC);
		until.tv_nsec = 0;
		pthread_mutex_lock(&run.lock);
		while (run.live && pthread_cond_timedwait(&run.cond, &run.lock, &until) == 0)
			;
		if (run.live)
			warn_err(0, "%u connection thread(s) did not stop", run.live);
		pthread_mutex_unlock(&run.lock);
	}
	if (reason)
		report("final", reason);
	if (o->mode == MODE_BLOCKING && run.live) {
		/* Threads still use the loops: leave everything to exit(). */
		return ret;
	}
	cleanup();
	return ret;
}
