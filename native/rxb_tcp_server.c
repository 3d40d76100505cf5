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
 * uring_zcrx needs a NIC whose driver has queue-management ops and header
 * split; on veth/lo, registration fails (EOPNOTSUPP).
 *
 * This file: options, listeners, reports and the main thread.  Each mode
 * is a struct server_mode (tcp_server.h) in a file of its own, in the table
 * modes[] below: tcp_server_blocking.c, tcp_server_epoll.c (epoll and
 * epoll_et), tcp_server_uring.c, tcp_server_uring_opt.c, tcp_server_zcrx.c;
 * the io_uring modes share the ring code of tcp_server_ring.c, and every
 * mode the run's state and helpers of tcp_server_core.c.
 */
#include "tcp_server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define LISTEN_BACKLOG     4096

static const struct server_mode *const modes[] = {
	[MODE_BLOCKING] = &mode_blocking,   [MODE_EPOLL] = &mode_epoll,
	[MODE_EPOLL_ET] = &mode_epoll,      [MODE_URING] = &mode_uring,
	[MODE_URING_OPT] = &mode_uring_opt, [MODE_URING_ZCRX] = &mode_uring_zcrx,
};

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
	bool nonblock = run.m->nonblock;
	unsigned int i;

	if (run.m->one_listener || run.nloops == 1) {
		run.lfd = make_listener(false, nonblock, true);
		for (i = 0; i < run.nloops; i++)
			run.loops[i].lfd = run.lfd;
		return;
	}
	close(make_listener(false, false, false));
	for (i = 0; i < run.nloops; i++)
		run.loops[i].lfd = make_listener(true, nonblock, true);
}

/* ---- reporting ------------------------------------------------------------ */

static void report(const char *event, const char *reason)
{
	struct ctrs *per = calloc(run.nloops, sizeof(*per)), sum = { 0 };
	uint64_t t = mono_ns();
	unsigned int i;

	if (!per)
		die("calloc");
	if (run.m->collect) {
		run.m->collect(per);
	} else {
		for (i = 0; i < run.nloops; i++)
			ctrs_read(&per[i], &run.loops[i].c);
	}
	for (i = 0; i < run.nloops; i++)
		ctrs_read(&sum, &per[i]);

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
	if (run.m->report)
		run.m->report();
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
	/* the flags of the SINGLE_ISSUER rings (uring_opt, uring_zcrx): 0 elsewhere */
	if (run.ring_flags)
		json_str(ring_flag_names(run.ring_flags, names, sizeof(names)));
	else
		json_printf("null");
	if (run.m->ready)
		run.m->ready();
	else
		json_printf(READY_NO_RING_BUFS);
	json_printf(",\"nofile\":%llu,\"t_ns\":%" PRIu64 "}", (unsigned long long)rl.rlim_cur, t0);
	json_end();
}

static void print_snapshot(void *arg)
{
	(void)arg;
	report("snapshot", NULL);
}

/* ------------------------------------------------------------------------- */

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
		bool io_safe = ring_release(l);

		/* Connections still open (their requests are drained). */
		while (l->conns) {
			struct conn *c = l->conns;

			close(c->fd);
			conn_unlink(&l->conns, c);
			if (io_safe)
				free(c);
		}
		if (l->lfd >= 0 && l->lfd != run.lfd)
			close(l->lfd);
		if (io_safe && run.m->free_loop)
			run.m->free_loop(l);
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
	bool stopped;
	sigset_t sigs;
	unsigned int i;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, o);
	run.m = modes[o->mode];
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
	}

	open_listeners();
	if (run.m->prepare)
		run.m->prepare();
	for (i = 0; i < run.nloops && run.m->setup; i++)
		run.m->setup(&run.loops[i]);

	/* Every exit from here on stops and joins the started threads. */
	if (run.m->one_thread) {
		struct loop *l = &run.loops[0];

		if (start_thread(&l->tid, -1, run.m->thread, l, "rxb-tcp-acc"))
			goto out_stop;
		l->started = true;
	} else {
		for (i = 0; i < run.nloops; i++) {
			struct loop *l = &run.loops[i];
			char name[32];

			snprintf(name, sizeof(name), "rxb-tcp-%u", i);
			name[15] = '\0'; /* kernel limit: 16 bytes with the NUL */
			if (start_thread(&l->tid, l->cpu, run.m->thread, l, name))
				goto out_stop;
			l->started = true;
		}
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o->duration_s * (double)NS_PER_SEC);
	print_ready(t0);

	reason = run_until_signal(&sigs, deadline, print_snapshot, loops_failed, NULL);
	ret = strcmp(reason, "error") ? RXB_EXIT_OK : RXB_EXIT_FAIL;

out_stop:
	__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
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
	stopped = run.m->stopped ? run.m->stopped() : true;
	if (reason)
		report("final", reason);
	if (!stopped) {
		/* Threads still use the loops: leave everything to exit(). */
		return ret;
	}
	cleanup();
	return ret;
}
