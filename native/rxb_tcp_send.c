// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-tcp-send: the TCP layer's sender.  Open N connections to DST:PORT,
 * then write MSG-byte messages on all of them as fast as possible until the
 * duration (or --count-bytes) runs out.  Each connection's stream is one
 * fixed MSG-byte pattern repeated, so the byte sum of everything sent
 * ("touch") is known and a receiver's --touch sum must equal it.
 *
 * Threads: one per --cpus entry (pinned), connections dealt round-robin;
 * each thread runs an epoll loop over its non-blocking sockets (level-
 * triggered EPOLLOUT), so one slow connection does not hold up the others.
 * A writable socket gets one turn, then the next socket: a turn sends until
 * the socket is full (EAGAIN) or the turn's bytes went out (--turn-bytes;
 * at least one send).  The default depends on the message size:
 *  - messages of at least ONE_SEND_MSG: one message per turn, so the
 *    connections' packets interleave.  In turns of 1 MiB, 8 connections
 *    with 64 KiB messages got no more goodput than one (10 Gbit/s on
 *    veth, 2 vCPUs): the sender's CPU took an RPS IPI for most ACKs
 *    (13.7 per MB).  One message per turn got 29 Gbit/s at 3.5 per MB,
 *    as iperf3's client (one write per stream per round) does.
 *  - smaller messages: TURN_BYTES.  One 1 KiB message per turn leaves 1 KiB
 *    packets: 8 connections got 0.6 Gbit/s in 64 KiB turns and 5.1 in
 *    1 MiB turns (iperf3's client, one write per stream, 0.97).  Turns of
 *    a fixed number of sends (16) had halved 1 KiB goodput from one
 *    connection to two (paper/data/tcp_turns.csv).
 * With --zerocopy every send carries MSG_ZEROCOPY and the completions are
 * reaped from the socket error queue (EPOLLERR).
 *
 * --rate-gbps R caps the goodput at R Gbit/s in all: each thread has a token
 * bucket (bytes) filled at its share of R (its connections / all of them),
 * holding at most BUCKET_NS of it (and at least one message), and sends
 * only what the bucket holds; it sleeps until the bucket has a message's
 * worth again.  Over an interval the bytes accepted by send() are R x time
 * to within a bucket's depth, unless the path cannot carry R (then the
 * sender runs flat out and the cell says so).
 *
 * A connection the server resets or closes is counted as failed (its errno
 * in per_conn) and the others go on; exit 1 only if every one failed.
 *
 * Traffic safety: only destinations in 198.18.0.0/15 (RFC 2544 benchmark
 * range) or 127.0.0.0/8 are accepted.
 *
 * Events (one JSON object per line on stdout, flushed):
 *   ready     once every connection is open and every thread started
 *   snapshot  on SIGUSR1 (sends, turns, epoll waits; each connection's
 *             bytes and the kernel's pacing rate for it, TCP_INFO)
 *   final     on exit (duration, count reached, SIGINT/SIGTERM/SIGHUP,
 *             every connection ended)
 *   error     {"kind":"connect"|"unsupported",...} before ready (exit 1/3)
 */
#include "common.h"
#include "rxb_tcp_common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <linux/tcp.h>      /* struct tcp_info with tcpi_pacing_rate (glibc's is older) */

#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif

#define TOOL_NAME          "rxb-tcp-send"
#define DEFAULT_CONNS      1U
#define DEFAULT_MSG        (64U << 10)
#define MAX_CONNS          65536U
#define MAX_MSG            (64U << 20)
#define MAX_THREADS        256U
#define CONNECT_TIMEOUT_NS (2 * NS_PER_SEC) /* per connection, refusals retried */
#define CONNECT_RETRY_US   50000
#define POLL_TIMEOUT_MS    100              /* bounds how late a thread sees stop */
#define EPOLL_EVENTS       256
#define TURN_BYTES         (1U << 20)       /* per connection per turn, messages < ONE_SEND_MSG */
#define ONE_SEND_MSG       (16U << 10)      /* from this message size: one send per turn */
#define MAX_TURN_BYTES     (1ULL << 32)
#define BUCKET_NS          100000000ULL     /* --rate-gbps: bucket depth, 100 ms of the rate */
#define MAX_RATE_GBPS      10000.0
#define CC_NAME_MAX        16               /* the kernel's TCP_CA_NAME_MAX */

struct opts {
	const char *dst_str;
	struct in_addr dst;
	unsigned int port;
	unsigned int conns;
	unsigned int msg;
	double duration_s;
	uint64_t count_bytes;   /* 0: no limit */
	int cpus[MAX_THREADS];
	unsigned int ncpus;
	bool zerocopy;
	double rate_gbps;       /* 0: as fast as possible */
	uint64_t turn_bytes;    /* 0: the default for the message size */
};

/* One connection, owned by one thread.  bytes/err/open are read by the main
 * thread with relaxed loads. */
struct sconn {
	uint64_t bytes;
	uint64_t budget;        /* 0: no limit */
	int fd;
	unsigned int off;       /* position in the pattern */
	int err;                /* errno that ended it, 0 if none */
	int open;
	struct sthread *t;
};

struct sthread {
	alignas(CACHELINE) uint64_t sends;  /* send calls that wrote data */
	uint64_t turns;                     /* conn_write calls (one per writable socket seen) */
	uint64_t turns_full;                /* ... that ended with the socket full (EAGAIN) */
	uint64_t waits;                     /* epoll_wait calls */
	uint64_t zc_done;                   /* MSG_ZEROCOPY sends completed */
	uint64_t zc_copied;                 /* ... of which the kernel copied */
	int finished;                       /* no open connection left */
	alignas(CACHELINE) unsigned int idx;
	int cpu;
	int epfd;
	unsigned int open;
	unsigned int nconns;    /* connections dealt to it */
	pthread_t tid;
	bool started;
	/* --rate-gbps token bucket (thread-private) */
	double rate_Bpns;       /* bytes per ns */
	double tokens, depth, want;
	uint64_t last_ns;
	alignas(CACHELINE) uint64_t throttled_ns; /* time slept for the rate */
};

static struct {
	struct opts o;
	struct sconn *conns;
	struct sthread *threads;
	unsigned int nthreads;
	uint8_t *pattern;
	uint64_t pattern_sum;
	int stop;               /* __atomic, set by main */
	pthread_t main_tid;
	uint64_t turn_bytes;    /* bytes of a turn (at least one send) */
} run;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --dst ADDR --port PORT --duration SECS [options]\n"
		"Open N TCP connections to ADDR:PORT and write MSG-byte messages on all of\n"
		"them as fast as possible.  ADDR must be in 198.18.0.0/15 or 127.0.0.0/8.\n"
		"\n"
		"  -D, --dst ADDR           destination IPv4 address (required)\n"
		"  -p, --port PORT          destination port, 1..65535 (required)\n"
		"  -n, --conns N            connections, 1..%u (default: %u)\n"
		"  -m, --msg BYTES          bytes per send call, 1..%u (default: %u)\n"
		"  -d, --duration SECS      send for SECS seconds, > 0 (required)\n"
		"  -B, --count-bytes B      stop once B bytes in total are sent, split\n"
		"                           evenly over the connections (default: no limit)\n"
		"  -c, --cpus LIST          one thread per CPU, pinned; connections dealt\n"
		"                           round-robin (default: one thread, unpinned)\n"
		"  -z, --zerocopy           MSG_ZEROCOPY sends, completions reaped\n"
		"  -r, --rate-gbps R        cap the goodput at R Gbit/s in all (0 < R <= %.0f),\n"
		"                           a token bucket per thread (default: no cap)\n"
		"  -t, --turn-bytes B       bytes a writable connection gets per turn before\n"
		"                           the next one (at least one send; default: one\n"
		"                           message from %u-byte messages, else %u)\n"
		"  -h, --help               show this help\n"
		"\n"
		"Output: JSON lines (ready, snapshot on SIGUSR1, final) on stdout.\n"
		"Signals: SIGUSR1 prints a snapshot; SIGINT/SIGTERM/SIGHUP stop early.\n"
		"Exit: 0 ok, 1 failure (every connection failed), 2 bad arguments or\n"
		"destination, 3 unsupported (--zerocopy).\n",
		TOOL_NAME, MAX_CONNS, DEFAULT_CONNS, MAX_MSG, DEFAULT_MSG, MAX_RATE_GBPS, ONE_SEND_MSG, TURN_BYTES);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "dst", required_argument, NULL, 'D' },
		{ "port", required_argument, NULL, 'p' },
		{ "conns", required_argument, NULL, 'n' },
		{ "msg", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ "count-bytes", required_argument, NULL, 'B' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "zerocopy", no_argument, NULL, 'z' },
		{ "rate-gbps", required_argument, NULL, 'r' },
		{ "turn-bytes", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t a;
	int c;

	*o = (struct opts){ .conns = DEFAULT_CONNS, .msg = DEFAULT_MSG };
	while ((c = opt_next(argc, argv, ":D:p:n:m:d:B:c:zr:t:h", longopts, usage)) != -1) {
		switch (c) {
		case 'D':
			o->dst_str = optarg;
			break;
		case 'p':
			o->port = opt_uint("port", optarg, 1, 65535);
			break;
		case 'n':
			o->conns = opt_uint("conns", optarg, 1, MAX_CONNS);
			break;
		case 'm':
			o->msg = opt_uint("msg", optarg, 1, MAX_MSG);
			break;
		case 'd':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		case 'B':
			if (parse_u64(optarg, UINT64_MAX, &o->count_bytes) || !o->count_bytes)
				usage_error("--count-bytes: invalid value '%s' (want bytes, > 0)",
					    optarg);
			break;
		case 'c':
			opt_cpu_list(optarg, o->cpus, MAX_THREADS, &o->ncpus);
			break;
		case 't':
			if (parse_u64(optarg, MAX_TURN_BYTES, &o->turn_bytes) || !o->turn_bytes)
				usage_error("--turn-bytes: invalid value '%s' (want bytes, "
					    "0 < B <= %llu)", optarg, (unsigned long long)MAX_TURN_BYTES);
			break;
		case 'z':
			o->zerocopy = true;
			break;
		case 'r':
			if (parse_double(optarg, &o->rate_gbps) || !(o->rate_gbps > 0) ||
			    o->rate_gbps > MAX_RATE_GBPS)
				usage_error("--rate-gbps: invalid value '%s' (want Gbit/s, 0 < R <= %.0f)",
					    optarg, MAX_RATE_GBPS);
			break;
		}
	}
	if (!o->dst_str)
		usage_error("--dst is required");
	if (!o->port)
		usage_error("--port is required");
	if (o->duration_s <= 0)
		usage_error("--duration is required (a safety bound)");
	if (inet_pton(AF_INET, o->dst_str, &o->dst) != 1)
		usage_error("--dst: invalid IPv4 address '%s'", o->dst_str);
	a = ntohl(o->dst.s_addr);
	if ((a & 0xfffe0000U) != 0xc6120000U && (a >> 24) != 127)
		usage_error("--dst %s: refused, only 198.18.0.0/15 (benchmark range) and "
			    "127.0.0.0/8 may be sent to",
			    o->dst_str);
	if (o->count_bytes && o->count_bytes < o->conns)
		usage_error("--count-bytes %" PRIu64 ": less than one byte per connection (%u)",
			    o->count_bytes, o->conns);
	/* test traffic stays in namespaces without a default route: a route
	 * through a gateway could carry it off this machine */
	if ((a >> 24) != 127) {
		char dev[16];
		int r = default_route_dev(NULL, dev);

		if (r != 0)
			usage_error("--dst %s: refused, this network namespace %s a default route%s%s "
				    "(run the sender in a test namespace without one)",
				    o->dst_str, r > 0 ? "has" : "may have (cannot read /proc/net/route)",
				    r > 0 ? " via " : "", r > 0 ? dev : "");
	}
}

static inline bool stopping(void)
{
	return __atomic_load_n(&run.stop, __ATOMIC_RELAXED);
}

/* ---- connections ---------------------------------------------------------- */

/* Connect one socket (non-blocking), retrying refusals for up to
 * CONNECT_TIMEOUT_NS.  Returns the fd or -errno. */
static int connect_one(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)run.o.port),
				   .sin_addr = run.o.dst };
	uint64_t deadline = mono_ns() + CONNECT_TIMEOUT_NS;

	for (;;) {
		struct pollfd pfd = { .events = POLLOUT };
		socklen_t len = sizeof(int);
		int fd, err = 0, one = 1;
		uint64_t now;

		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (run.o.zerocopy && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one))) {
			char name[16];

			err = errno;
			json_printf("{\"event\":\"error\",\"tool\":\"%s\",\"kind\":\"unsupported\","
				    "\"feature\":\"MSG_ZEROCOPY\",\"errno\":%d,\"errno_name\":\"%s\","
				    "\"reason\":",
				    TOOL_NAME, err, errno_name(err, name, sizeof(name)));
			json_str("setsockopt(SO_ZEROCOPY) refused");
			json_printf("}");
			json_end();
			exit(RXB_EXIT_UNSUPPORTED);
		}
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			return fd;
		if (errno != EINPROGRESS) {
			err = errno;
		} else {
			now = mono_ns();
			pfd.fd = fd;
			if (poll(&pfd, 1, now < deadline ? (int)((deadline - now) / 1000000) + 1 : 0) <= 0)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
				err = errno;
			if (!err)
				return fd;
		}
		close(fd);
		if (err != ECONNREFUSED || mono_ns() + CONNECT_RETRY_US * 1000ULL >= deadline)
			return -err;
		usleep(CONNECT_RETRY_US);
	}
}

/* MSG_ZEROCOPY completions (ranges of send numbers) from the error queue. */
static void zc_reap(struct sconn *c)
{
	struct sthread *t = c->t;
	char control[256];

	for (;;) {
		struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };
		struct cmsghdr *cm;

		if (recvmsg(c->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return; /* EAGAIN: empty; anything else shows up on send */
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			const struct sock_extended_err *ee;
			uint64_t n;

			if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
			      (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
				continue;
			ee = (const struct sock_extended_err *)CMSG_DATA(cm);
			if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY)
				continue;
			n = (uint64_t)(ee->ee_data - ee->ee_info) + 1;
			ctr_add(&t->zc_done, n);
			if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
				ctr_add(&t->zc_copied, n);
		}
	}
}

static void conn_end(struct sconn *c, int err)
{
	struct sthread *t = c->t;

	if (run.o.zerocopy)
		zc_reap(c); /* what has completed so far; later ones are not counted */
	epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	__atomic_store_n(&c->err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&c->open, 0, __ATOMIC_RELAXED);
	t->open--;
}

/* One turn of a writable socket: sends until it is full (EAGAIN), TURN_BYTES
 * went out (at least one send), the budget or the rate's bucket is spent. */
static void conn_write(struct sconn *c)
{
	int flags = MSG_DONTWAIT | MSG_NOSIGNAL | (run.o.zerocopy ? MSG_ZEROCOPY : 0);
	unsigned int msg = run.o.msg;
	uint64_t sends = 0, sent = 0, full = 0;

	while ((!sends || sent < run.turn_bytes) && !stopping()) {
		size_t len = msg - c->off;
		ssize_t n;

		if (c->budget && c->budget - c->bytes < len)
			len = (size_t)(c->budget - c->bytes);
		if (run.o.rate_gbps) {
			if (c->t->tokens < 1.0)
				break;
			if ((double)len > c->t->tokens)
				len = (size_t)c->t->tokens;
		}
		n = send(c->fd, run.pattern + c->off, len, flags);
		if (n > 0) {
			sends++;
			sent += (uint64_t)n;
			if (run.o.rate_gbps)
				c->t->tokens -= (double)n;
			ctr_add(&c->bytes, (uint64_t)n);
			c->off = (unsigned int)((c->off + (size_t)n) % msg);
			if (c->budget && c->bytes == c->budget) {
				conn_end(c, 0);
				break;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			full = 1;
			break;
		}
		if (n < 0 && errno == ENOBUFS && run.o.zerocopy) {
			zc_reap(c); /* optmem full of pending notifications */
			break;
		}
		conn_end(c, n < 0 ? errno : EPIPE);
		break;
	}
	if (sends)
		ctr_add(&c->t->sends, sends);
	ctr_add(&c->t->turns, 1);
	if (full)
		ctr_add(&c->t->turns_full, 1);
}

/* --rate-gbps: add what the rate earned since last time (at most the
 * bucket's depth); if it holds less than a message, sleep until it will.
 * Returns false if the loop should look at stop first. */
static bool bucket_wait(struct sthread *t)
{
	uint64_t now = mono_ns();

	t->tokens += (double)(now - t->last_ns) * t->rate_Bpns;
	if (t->tokens > t->depth)
		t->tokens = t->depth;
	t->last_ns = now;
	if (t->tokens >= t->want)
		return true;
	{
		double ns = (t->want - t->tokens) / t->rate_Bpns;
		struct timespec ts;

		if (ns > POLL_TIMEOUT_MS * 1e6)
			ns = POLL_TIMEOUT_MS * 1e6;
		ts.tv_sec = (time_t)(ns / 1e9);
		ts.tv_nsec = (long)(ns - (double)ts.tv_sec * 1e9);
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		ctr_add(&t->throttled_ns, mono_ns() - now);
	}
	return false;
}

static void *thread_main(void *arg)
{
	struct sthread *t = arg;
	struct epoll_event evs[EPOLL_EVENTS];

	if (run.o.rate_gbps) {
		/* this thread's share of the rate, in bytes per ns */
		t->rate_Bpns = run.o.rate_gbps / 8.0 * t->nconns / run.o.conns;
		t->depth = t->rate_Bpns * (double)BUCKET_NS;
		t->want = run.o.msg < t->depth ? run.o.msg : t->depth;
		if (t->depth < run.o.msg)
			t->depth = run.o.msg;
		if (t->want < 1.0)
			t->want = 1.0;
		t->tokens = 0;
		t->last_ns = mono_ns();
	}
	while (!stopping() && t->open) {
		int i, n;

		if (run.o.rate_gbps && !bucket_wait(t))
			continue;
		n = epoll_wait(t->epfd, evs, EPOLL_EVENTS, POLL_TIMEOUT_MS);
		ctr_add(&t->waits, 1);

		if (n < 0 && errno != EINTR) {
			warn_err(errno, "thread %u: epoll_wait", t->idx);
			break;
		}
		for (i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;

			if (run.o.zerocopy && (evs[i].events & EPOLLERR))
				zc_reap(c);
			if (__atomic_load_n(&c->open, __ATOMIC_RELAXED))
				conn_write(c);
		}
	}
	__atomic_store_n(&t->finished, 1, __ATOMIC_RELAXED);
	pthread_kill(run.main_tid, SIGUSR2);
	return NULL;
}

/* ---- reporting ------------------------------------------------------------ */

/* Byte sum of the first n bytes of a connection's stream. */
static uint64_t stream_sum(uint64_t n)
{
	return (n / run.o.msg) * run.pattern_sum + bytesum(run.pattern, (size_t)(n % run.o.msg));
}

/* The pacing rate TCP computed for a connection (bytes/s, TCP_INFO), null
 * if closed or unknown.  TCP itself enforces it only when the congestion
 * control asks for pacing (BBR) and no fq qdisc does it; ~0: "unlimited". */
static void pacing_rate(const struct sconn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int fd = __atomic_load_n(&c->fd, __ATOMIC_RELAXED);

	memset(&ti, 0, sizeof(ti));
	if (!__atomic_load_n(&c->open, __ATOMIC_RELAXED) || fd < 0 ||
	    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_pacing_rate) + sizeof(ti.tcpi_pacing_rate))
		json_printf("null");
	else if (ti.tcpi_pacing_rate == UINT64_MAX)
		json_printf("\"unlimited\"");
	else
		json_printf("%" PRIu64, (uint64_t)ti.tcpi_pacing_rate);
}

static void report(const char *event, const char *reason)
{
	uint64_t bytes = 0, sends = 0, zc_done = 0, zc_copied = 0, touch = 0, t = mono_ns();
	uint64_t throttled = 0, turns = 0, turns_full = 0, waits = 0;
	unsigned int i, open = 0, errors = 0;
	char name[16];

	for (i = 0; i < run.nthreads; i++) {
		sends += ctr_get(&run.threads[i].sends);
		zc_done += ctr_get(&run.threads[i].zc_done);
		zc_copied += ctr_get(&run.threads[i].zc_copied);
		throttled += ctr_get(&run.threads[i].throttled_ns);
		turns += ctr_get(&run.threads[i].turns);
		turns_full += ctr_get(&run.threads[i].turns_full);
		waits += ctr_get(&run.threads[i].waits);
	}
	for (i = 0; i < run.o.conns; i++) {
		uint64_t b = ctr_get(&run.conns[i].bytes);

		bytes += b;
		touch += stream_sum(b);
		open += (unsigned int)__atomic_load_n(&run.conns[i].open, __ATOMIC_RELAXED);
		errors += __atomic_load_n(&run.conns[i].err, __ATOMIC_RELAXED) != 0;
	}
	json_printf("{\"event\":\"%s\",\"t_ns\":%" PRIu64 ",\"bytes\":%" PRIu64
		    ",\"sends\":%" PRIu64 ",\"conns\":%u,\"conns_open\":%u,\"errors\":%u"
		    ",\"touch\":%" PRIu64,
		    event, t, bytes, sends, run.o.conns, open, errors, touch);
	if (run.o.zerocopy)
		json_printf(",\"zc_completions\":%" PRIu64 ",\"zc_copied\":%" PRIu64, zc_done,
			    zc_copied);
	else
		json_printf(",\"zc_completions\":null,\"zc_copied\":null");
	json_printf(",\"threads\":%u,\"throttled_ns\":%" PRIu64, run.nthreads, throttled);
	json_printf(",\"turns\":%" PRIu64 ",\"turns_full\":%" PRIu64 ",\"waits\":%" PRIu64, turns,
		    turns_full, waits);
	json_printf(",\"per_conn\":[");
	for (i = 0; i < run.o.conns; i++) {
		int err = __atomic_load_n(&run.conns[i].err, __ATOMIC_RELAXED);

		json_printf("%s{\"bytes\":%" PRIu64 ",\"error\":", i ? "," : "",
			    ctr_get(&run.conns[i].bytes));
		if (err)
			json_printf("\"%s\"", errno_name(err, name, sizeof(name)));
		else
			json_printf("null");
		json_printf(",\"pacing_Bps\":");
		pacing_rate(&run.conns[i]);
		json_printf("}");
	}
	json_printf("]");
	if (reason)
		json_printf(",\"reason\":\"%s\"", reason);
	json_printf("}");
	json_end();
}

static void print_ready(uint64_t t0)
{
	const struct opts *o = &run.o;
	char cc[CC_NAME_MAX + 1] = "";
	socklen_t cclen = CC_NAME_MAX;

	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"dst\":", TOOL_NAME);
	json_str(o->dst_str);
	json_printf(",\"port\":%u,\"conns\":%u,\"msg\":%u,\"threads\":%u", o->port, o->conns,
		    o->msg, run.nthreads);
	json_cpus(o->cpus, o->ncpus);
	json_printf(",\"congestion_control\":");
	/* the namespace's default (net.ipv4.tcp_congestion_control): the kernel's
	 * pacing, and so the sender's cost per byte, depend on it */
	if (getsockopt(run.conns[0].fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cclen) == 0) {
		cc[cclen < CC_NAME_MAX ? cclen : CC_NAME_MAX] = '\0';
		json_str(cc);
	} else {
		json_printf("null");
	}
	json_printf(",\"turn_bytes\":%" PRIu64, run.turn_bytes);
	json_printf(",\"zerocopy\":%s,\"rate_gbps\":", o->zerocopy ? "true" : "false");
	if (o->rate_gbps)
		json_printf("%.6g", o->rate_gbps);
	else
		json_printf("null");
	json_printf(",\"count_bytes\":");
	if (o->count_bytes)
		json_printf("%" PRIu64, o->count_bytes);
	else
		json_printf("null");
	json_printf(",\"t_ns\":%" PRIu64 "}", t0);
	json_end();
}

static void print_snapshot(void *arg)
{
	(void)arg;
	report("snapshot", NULL);
}

/* SIGUSR2: a thread has finished; the run ends once all have. */
static const char *threads_done(void *arg)
{
	unsigned int done = 0, i;

	(void)arg;
	for (i = 0; i < run.nthreads; i++)
		done += (unsigned int)__atomic_load_n(&run.threads[i].finished, __ATOMIC_RELAXED);
	if (done < run.nthreads)
		return NULL;
	return run.o.count_bytes ? "count" : "closed";
}

/* ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct opts *o = &run.o;
	const char *reason = NULL;
	uint64_t t0, deadline;
	int ret = RXB_EXIT_FAIL, err;
	unsigned int i, failed;
	sigset_t sigs;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, o);
	raise_nofile();
	block_signals(&sigs, SIGUSR2);
	run.main_tid = pthread_self();

	/* The pattern: any non-constant bytes; its sum gives "touch". */
	run.pattern = malloc(o->msg);
	if (!run.pattern)
		die("malloc(%u)", o->msg);
	for (i = 0; i < o->msg; i++)
		run.pattern[i] = (uint8_t)(i * 131 + 7);
	run.pattern_sum = bytesum(run.pattern, o->msg);

	run.nthreads = o->ncpus ? o->ncpus : 1;
	run.turn_bytes = o->turn_bytes ? o->turn_bytes : o->msg >= ONE_SEND_MSG ? o->msg : TURN_BYTES;
	if (run.nthreads > o->conns)
		run.nthreads = o->conns; /* no idle threads */
	run.threads = aligned_alloc(CACHELINE, run.nthreads * sizeof(*run.threads));
	run.conns = calloc(o->conns, sizeof(*run.conns));
	if (!run.threads || !run.conns)
		die("alloc");
	memset(run.threads, 0, run.nthreads * sizeof(*run.threads));
	for (i = 0; i < run.nthreads; i++) {
		run.threads[i].idx = i;
		run.threads[i].cpu = o->ncpus ? o->cpus[i] : -1;
		run.threads[i].epfd = epoll_create1(EPOLL_CLOEXEC);
		if (run.threads[i].epfd < 0)
			die("epoll_create1");
	}

	for (i = 0; i < o->conns; i++) {
		struct sconn *c = &run.conns[i];
		struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
		int fd = connect_one();

		if (fd < 0) {
			char name[16], msg[160];

			snprintf(msg, sizeof(msg), "connection %u of %u to %s:%u: %s", i + 1, o->conns,
				 o->dst_str, o->port, strerror(-fd));
			warn_err(0, "%s", msg);
			json_printf("{\"event\":\"error\",\"tool\":\"%s\",\"kind\":\"connect\","
				    "\"errno\":%d,\"errno_name\":\"%s\",\"reason\":",
				    TOOL_NAME, -fd, errno_name(-fd, name, sizeof(name)));
			json_str(msg);
			json_printf("}");
			json_end();
			goto out;
		}
		c->fd = fd;
		c->open = 1;
		c->t = &run.threads[i % run.nthreads];
		c->t->open++;
		c->t->nconns++;
		if (o->count_bytes)
			c->budget = o->count_bytes / o->conns + (i < o->count_bytes % o->conns);
		if (epoll_ctl(c->t->epfd, EPOLL_CTL_ADD, fd, &ev))
			die("epoll_ctl(ADD)");
	}

	for (i = 0; i < run.nthreads; i++) {
		struct sthread *t = &run.threads[i];
		pthread_attr_t attr;
		char name[32];

		pthread_attr_init(&attr);
		if (t->cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(t->cpu, &set);
			err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
			if (err) {
				warn_err(err, "pthread_attr_setaffinity_np(CPU %d)", t->cpu);
				pthread_attr_destroy(&attr);
				goto out_stop;
			}
		}
		err = pthread_create(&t->tid, &attr, thread_main, t);
		pthread_attr_destroy(&attr);
		if (err) {
			warn_err(err, "pthread_create (thread %u, CPU %d)", i, t->cpu);
			goto out_stop;
		}
		t->started = true;
		snprintf(name, sizeof(name), "rxb-send-%u", i);
		name[15] = '\0';
		pthread_setname_np(t->tid, name);
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o->duration_s * (double)NS_PER_SEC);
	print_ready(t0);

	reason = run_until_signal(&sigs, deadline, print_snapshot, threads_done, NULL);

out_stop:
	__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < run.nthreads; i++)
		if (run.threads[i].started)
			pthread_join(run.threads[i].tid, NULL);
	/* Reap the last zerocopy completions before reporting. */
	for (i = 0; i < o->conns && o->zerocopy; i++)
		if (run.conns[i].open)
			zc_reap(&run.conns[i]);
	if (reason)
		report("final", reason);
	failed = 0;
	for (i = 0; i < o->conns; i++)
		failed += run.conns[i].err != 0;
	ret = reason && strcmp(reason, "error") && failed < o->conns ? RXB_EXIT_OK : RXB_EXIT_FAIL;
	if (failed == o->conns)
		warn_err(0, "every connection failed (first: %s)", strerror(run.conns[0].err));

out:
	for (i = 0; i < o->conns; i++)
		if (run.conns[i].open)
			close(run.conns[i].fd);
	for (i = 0; i < run.nthreads; i++)
		close(run.threads[i].epfd);
	free(run.conns);
	free(run.threads);
	free(run.pattern);
	return ret;
}
