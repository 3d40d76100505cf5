// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-af-xdp: receive frames on AF_XDP sockets and drop them.
 *
 * One XSK socket per queue 0..N-1, each with its own UMEM and its own thread.
 * A thread peeks up to --batch RX descriptors, adds their lengths to its
 * counters and hands every buffer straight back to the fill ring: no per-packet
 * syscall, allocation or print.  libxdp's default XSK program
 * (xsk_def_xdp_prog.o: redirect to xsks_map[rx_queue_index], XDP_PASS when the
 * slot is empty) steers the frames into the sockets.
 *
 * UMEM: 2 * --ring frames per socket = the capacity of the fill ring plus the
 * capacity of the RX ring, so the kernel can always be offered a full fill
 * ring while the RX ring is full.  Frames that do not fit into the fill ring
 * at the moment wait on a small per-thread LIFO stack (initially: the second
 * half of the UMEM) and go back in on the next refill.
 *
 * The program is attached by this tool (xdp_program__attach, in the requested
 * mode) rather than implicitly by xsk_socket__create, so that a refused
 * zero-copy bind and a refused XDP attach can be told apart (both are usually
 * EOPNOTSUPP); the sockets are created with XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD
 * and inserted into xsks_map with xsk_socket__update_xskmap.
 *
 * RLIMIT_MEMLOCK is never touched: libbpf's automatic bump is disabled with
 * libbpf_set_memlock_rlim(0) (libbpf 1.x only bumps when the kernel lacks
 * memcg accounting of BPF memory; libxdp 1.3.1 itself never calls setrlimit).
 * The UMEM is charged against RLIMIT_MEMLOCK by the kernel unless the process
 * has CAP_IPC_LOCK; XDP_UMEM_REG then fails with ENOBUFS.
 *
 * Events (one JSON object per line on stdout, flushed):
 *   ready     all sockets bound, program attached, threads running
 *   snapshot  on SIGUSR1
 *   final     on exit (duration elapsed, SIGINT/SIGTERM/SIGHUP, thread error)
 *   error     zero-copy bind / XDP attach / busy-poll option refused (exit 3)
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

/* Declared by libbpf 1.1.2's bpf.h but only exported from the shared library
 * from libbpf 1.2 on: a weak reference is NULL where it is missing. */
#pragma weak libbpf_set_memlock_rlim

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define TOOL_NAME              "rxb-af-xdp"
#define DEFAULT_QUEUES         1U
#define DEFAULT_BIND           BIND_AUTO
#define DEFAULT_MODE           MODE_NATIVE
#define DEFAULT_WAIT           WAIT_POLL
#define DEFAULT_BATCH          64U
#define DEFAULT_RING           2048U     /* RX and fill ring entries */
#define DEFAULT_FRAME_SIZE     XSK_UMEM__DEFAULT_FRAME_SIZE
#define DEFAULT_BUSY_USECS     20U
#define DEFAULT_BUSY_BUDGET    0U        /* 0: same as --batch */
#define DEFAULT_DURATION_S     10.0
#define MAX_DURATION_S         (365.0 * 24 * 3600)
#define MAX_QUEUES             256U
#define MIN_RING               64U
#define MAX_RING               65536U
#define MIN_FRAME_SIZE         2048U     /* XDP_UMEM_MIN_CHUNK_SIZE */
#define MAX_BUSY_BUDGET        65535U    /* kernel: U16_MAX */
#define UMEM_FRAMES_PER_SLOT   2U        /* UMEM frames = ring * this */
#define BIND_BUSY_WAIT_MS      2000ULL   /* retry a bind refused with EBUSY ... */
#define BIND_BUSY_RETRY_US     10000     /* ... every 10 ms, for up to 2 s */
#define XSK_PROG_FILE          "xsk_def_xdp_prog.o" /* shipped with libxdp */
#define XSK_MAP_NAME           "xsks_map"
#define CACHE_LINE             64

enum bind_mode { BIND_COPY, BIND_ZEROCOPY, BIND_AUTO };
static const char *const bind_names[] = { "copy", "zerocopy", "auto" };
enum xdp_mode { MODE_NATIVE, MODE_SKB };
static const char *const mode_names[] = { "native", "skb" };
enum wait_mode { WAIT_POLL, WAIT_SPIN, WAIT_BUSY_POLL };
static const char *const wait_names[] = { "poll", "spin", "busy-poll" };

enum { OPT_BUSY_USECS = 256, OPT_BUSY_BUDGET };

struct opts {
	const char *ifname;
	unsigned int queues;
	int cpus[MAX_QUEUES];
	unsigned int ncpus;      /* 0: no pinning */
	enum bind_mode bind;
	enum xdp_mode mode;
	enum wait_mode wait;
	unsigned int batch;
	unsigned int ring;
	unsigned int frame_size;
	unsigned int busy_usecs;
	unsigned int busy_budget; /* 0: batch */
	double duration_s;
};

/* Written only by the queue's own thread (relaxed atomic stores), read by the
 * main thread (relaxed atomic loads); one cache line per queue. */
struct counters {
	uint64_t packets;
	uint64_t bytes;
} __attribute__((aligned(CACHE_LINE)));

struct xq {
	struct counters ctr;
	/* Below: owned by the thread while it runs. */
	struct xsk_ring_cons rx;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;  /* unused (no TX), but required by the UMEM */
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	void *area;
	size_t area_len;
	uint64_t *stack;            /* frame addresses the kernel does not own */
	uint32_t top;
	uint64_t frame_mask;
	int fd;
	unsigned int qid;
	int cpu;                    /* -1: not pinned */
	bool zc;
	bool started;
	pthread_t tid;
} __attribute__((aligned(CACHE_LINE)));

/* Read-only for the threads once they run, except stop/failed. */
static struct {
	enum wait_mode wait;
	uint32_t batch;
	int efd;                    /* eventfd, made readable to stop poll() */
	pthread_t main_tid;
	int stop __attribute__((aligned(CACHE_LINE)));
	int failed;
} run;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --ifname IF [options]\n"
		"Receive frames on AF_XDP sockets and drop them (every buffer goes straight\n"
		"back to the fill ring), counting packets and bytes.\n"
		"\n"
		"  -i, --ifname IF          interface to receive on (required)\n"
		"  -q, --queues N           one socket + thread per queue 0..N-1 (default: %u)\n"
		"  -c, --cpus LIST          comma list, thread i pinned to the i-th CPU; one\n"
		"                           entry per queue (default: no pinning)\n"
		"  -b, --bind MODE          copy|zerocopy|auto (default: %s; auto = zero-copy\n"
		"                           if the driver accepts it, else copy)\n"
		"  -m, --mode MODE          XDP attach mode of the redirect program:\n"
		"                           native|skb (default: %s)\n"
		"  -w, --wait MODE          poll|spin|busy-poll (default: %s)\n"
		"                           poll: poll() when the RX ring is empty (zero-copy:\n"
		"                           only when the driver asks for a wakeup)\n"
		"                           spin: busy loop, syscalls only for need_wakeup\n"
		"                           busy-poll: SO_PREFER_BUSY_POLL + recvfrom()\n"
		"      --busy-poll-usecs N  SO_BUSY_POLL for --wait busy-poll (default: %u)\n"
		"      --busy-budget N      SO_BUSY_POLL_BUDGET (default: --batch)\n"
		"  -B, --batch N            RX descriptors per peek (default: %u)\n"
		"  -r, --ring N             RX and fill ring entries, power of two, %u..%u\n"
		"                           (default: %u); UMEM = %u * N frames per socket\n"
		"  -f, --frame-size N       UMEM frame size, power of two, %u..page size\n"
		"                           (default: %u)\n"
		"  -d, --duration SECS      run time in seconds, > 0 (default: %g)\n"
		"  -h, --help               show this help\n"
		"\n"
		"Signals: SIGUSR1 prints a snapshot; SIGINT/SIGTERM/SIGHUP stop early.\n"
		"Exit: 0 ok, 1 failure, 2 bad arguments/interface, 3 mode refused.\n",
		TOOL_NAME, DEFAULT_QUEUES, bind_names[DEFAULT_BIND],
		mode_names[DEFAULT_MODE], wait_names[DEFAULT_WAIT], DEFAULT_BUSY_USECS,
		DEFAULT_BATCH, MIN_RING, MAX_RING, DEFAULT_RING, UMEM_FRAMES_PER_SLOT,
		MIN_FRAME_SIZE, DEFAULT_FRAME_SIZE, DEFAULT_DURATION_S);
}

static bool is_pow2(unsigned int v)
{
	return v && !(v & (v - 1));
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "ifname", required_argument, NULL, 'i' },
		{ "queues", required_argument, NULL, 'q' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "bind", required_argument, NULL, 'b' },
		{ "mode", required_argument, NULL, 'm' },
		{ "wait", required_argument, NULL, 'w' },
		{ "busy-poll-usecs", required_argument, NULL, OPT_BUSY_USECS },
		{ "busy-budget", required_argument, NULL, OPT_BUSY_BUDGET },
		{ "batch", required_argument, NULL, 'B' },
		{ "ring", required_argument, NULL, 'r' },
		{ "frame-size", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long page = sysconf(_SC_PAGESIZE);
	unsigned int max_frame = page > 0 ? (unsigned int)page : 4096U;
	int c;

	*o = (struct opts){ .queues = DEFAULT_QUEUES,
			    .bind = DEFAULT_BIND,
			    .mode = DEFAULT_MODE,
			    .wait = DEFAULT_WAIT,
			    .batch = DEFAULT_BATCH,
			    .ring = DEFAULT_RING,
			    .frame_size = DEFAULT_FRAME_SIZE,
			    .busy_usecs = DEFAULT_BUSY_USECS,
			    .busy_budget = DEFAULT_BUSY_BUDGET,
			    .duration_s = DEFAULT_DURATION_S };
	while ((c = opt_next(argc, argv, ":i:q:c:b:m:w:B:r:f:d:h", longopts, usage)) != -1) {
		switch (c) {
		case 'i':
			o->ifname = optarg;
			break;
		case 'q':
			o->queues = opt_uint("queues", optarg, 1, MAX_QUEUES);
			break;
		case 'c':
			opt_cpu_list(optarg, o->cpus, MAX_QUEUES, &o->ncpus);
			break;
		case 'b':
			o->bind = opt_enum("bind", optarg, bind_names, ARRAY_SIZE(bind_names));
			break;
		case 'm':
			o->mode = opt_enum("mode", optarg, mode_names, ARRAY_SIZE(mode_names));
			break;
		case 'w':
			o->wait = opt_enum("wait", optarg, wait_names, ARRAY_SIZE(wait_names));
			break;
		case OPT_BUSY_USECS:
			o->busy_usecs = opt_uint("busy-poll-usecs", optarg, 1, INT_MAX);
			break;
		case OPT_BUSY_BUDGET:
			o->busy_budget = opt_uint("busy-budget", optarg, 1, MAX_BUSY_BUDGET);
			break;
		case 'B':
			o->batch = opt_uint("batch", optarg, 1, MAX_RING);
			break;
		case 'r':
			o->ring = opt_uint("ring", optarg, MIN_RING, MAX_RING);
			if (!is_pow2(o->ring))
				usage_error("--ring: invalid value '%s' (want a power of two)", optarg);
			break;
		case 'f':
			o->frame_size = opt_uint("frame-size", optarg, MIN_FRAME_SIZE, max_frame);
			if (!is_pow2(o->frame_size))
				usage_error("--frame-size: invalid value '%s' (want a power of two)",
					    optarg);
			break;
		case 'd':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		}
	}
	if (!o->ifname)
		usage_error("--ifname is required");
	if (o->batch > o->ring)
		usage_error("--batch %u: larger than --ring %u", o->batch, o->ring);
	if (o->ncpus && o->ncpus != o->queues)
		usage_error("--cpus: %u CPU(s) given for %u queue(s) (want one per queue)",
			    o->ncpus, o->queues);
	if (o->wait != WAIT_BUSY_POLL && o->busy_budget)
		usage_error("--busy-budget needs --wait busy-poll");
	if (!o->busy_budget)
		o->busy_budget = o->batch;
}

/* Number of RX queues from sysfs (the netns's view), or 0 if unknown. */
static unsigned int sysfs_rx_queues(const char *ifname)
{
	char path[64 + IF_NAMESIZE];
	struct dirent *de;
	unsigned int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/class/net/%s/queues", ifname);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "rx-", 3))
			n++;
	closedir(d);
	return n;
}

static int libxdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBXDP_WARN)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_WARN)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* strerror() that also knows libxdp's own codes. */
static const char *xdpstrerror(int err)
{
	static char buf[128];

	if (libxdp_strerror(err, buf, sizeof(buf)))
		snprintf(buf, sizeof(buf), "%s", strerror(err < 0 ? -err : err));
	return buf;
}

/* {"event":"error","kind":"unsupported",...} for a mode the kernel refused. */
RXB_PRINTF(2, 3) static void report_unsupported(int err, const char *fmt, ...)
{
	char msg[256];
	int n;
	va_list ap;

	if (err < 0)
		err = -err;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", xdpstrerror(err));
	json_printf("{\"event\":\"error\",\"kind\":\"unsupported\",\"errno\":%d,\"reason\":",
		    err);
	json_str(msg);
	json_printf("}");
	json_end();
}

/* A thread cannot go on: tell the main thread (it waits for SIGUSR2 too). */
static void thread_fail(struct xq *q, int err, const char *what)
{
	warn_err(err, "queue %u: %s", q->qid, what);
	__atomic_store_n(&run.failed, 1, __ATOMIC_RELAXED);
	pthread_kill(run.main_tid, SIGUSR2);
}

/* Kick the kernel from the fill-ring side (kernel doc: recvfrom or poll). */
static int wakeup(struct xq *q)
{
	if (recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) >= 0)
		return 0;
	switch (errno) {
	case EAGAIN:
	case EBUSY:
	case ENOBUFS:
	case EINTR:
		return 0;
	default:
		return -errno;
	}
}

/* Move as many frames from the stack to the fill ring as fit; re-read the
 * kernel's consumer index only when fewer than want slots are known free. */
static inline int refill(struct xq *q, uint32_t want)
{
	uint32_t n, i, idx = 0;

	if (!q->top)
		return 0;
	if (want > q->top)
		want = q->top;
	n = xsk_prod_nb_free(&q->fill, want);
	if (n > q->top)
		n = q->top;
	if (!n)
		return 0;
	xsk_ring_prod__reserve(&q->fill, n, &idx); /* cannot fail: n <= free */
	for (i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = q->stack[--q->top];
	xsk_ring_prod__submit(&q->fill, n);
	if (xsk_ring_prod__needs_wakeup(&q->fill))
		return wakeup(q);
	return 0;
}

static void *rx_thread(void *arg)
{
	struct xq *q = arg;
	const enum wait_mode wait = run.wait;
	const uint32_t batch = run.batch;
	const uint64_t mask = q->frame_mask;
	struct pollfd pfd[2] = {
		{ .fd = q->fd, .events = POLLIN },
		{ .fd = run.efd, .events = POLLIN },
	};
	uint64_t packets = 0, bytes = 0;
	int err;

	while (!__atomic_load_n(&run.stop, __ATOMIC_RELAXED)) {
		uint32_t idx, n, i;

		n = xsk_ring_cons__peek(&q->rx, batch, &idx);
		if (n) {
			for (i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);

				bytes += d->len;
				q->stack[q->top++] = d->addr & mask;
			}
			xsk_ring_cons__release(&q->rx, n);
			packets += n;
			__atomic_store_n(&q->ctr.packets, packets, __ATOMIC_RELAXED);
			__atomic_store_n(&q->ctr.bytes, bytes, __ATOMIC_RELAXED);
			err = refill(q, n);
			if (err) {
				thread_fail(q, err, "recvfrom (fill ring wakeup)");
				break;
			}
			continue;
		}

		/* RX ring empty. */
		err = refill(q, 1);
		if (err) {
			thread_fail(q, err, "recvfrom (fill ring wakeup)");
			break;
		}
		switch (wait) {
		case WAIT_SPIN:
			if (xsk_ring_prod__needs_wakeup(&q->fill))
				err = wakeup(q);
			break;
		case WAIT_BUSY_POLL:
			/* Drives the NAPI busy loop (SO_PREFER_BUSY_POLL). */
			err = wakeup(q);
			break;
		case WAIT_POLL:
			/* Zero-copy: a clear need_wakeup flag means the driver is
			 * still processing; keep peeking.  Copy mode never sets the
			 * flag: the socket is woken by sk_data_ready, so sleep. */
			if (q->zc && !xsk_ring_prod__needs_wakeup(&q->fill))
				break;
			if (poll(pfd, 2, -1) < 0) {
				if (errno != EINTR)
					err = -errno;
			} else if (pfd[0].revents & (POLLERR | POLLNVAL)) {
				err = -EIO;
			}
			break;
		}
		if (err) {
			thread_fail(q, err, wait == WAIT_POLL ? "poll" : "recvfrom");
			break;
		}
	}
	return NULL;
}

struct xsk_sums {
	uint64_t rx_dropped, rx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs;
};

static void report(const char *event, struct xq *qs, unsigned int nq, const char *reason)
{
	struct xsk_sums s = {};
	uint64_t packets = 0, bytes = 0, t = mono_ns();
	unsigned int i;

	for (i = 0; i < nq; i++) {
		packets += __atomic_load_n(&qs[i].ctr.packets, __ATOMIC_RELAXED);
		bytes += __atomic_load_n(&qs[i].ctr.bytes, __ATOMIC_RELAXED);
	}
	json_printf("{\"event\":\"%s\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"per_queue\":{",
		    event, t, packets, bytes);
	for (i = 0; i < nq; i++) {
		struct xdp_statistics st;
		socklen_t len = sizeof(st);

		json_printf("%s\"%u\":{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
			    i ? "," : "", qs[i].qid,
			    __atomic_load_n(&qs[i].ctr.packets, __ATOMIC_RELAXED),
			    __atomic_load_n(&qs[i].ctr.bytes, __ATOMIC_RELAXED));
		memset(&st, 0, sizeof(st));
		if (getsockopt(qs[i].fd, SOL_XDP, XDP_STATISTICS, &st, &len)) {
			warn_err(errno, "queue %u: getsockopt(XDP_STATISTICS)", qs[i].qid);
			continue;
		}
		s.rx_dropped += st.rx_dropped;
		s.rx_invalid_descs += st.rx_invalid_descs;
		s.rx_ring_full += st.rx_ring_full;
		s.rx_fill_ring_empty_descs += st.rx_fill_ring_empty_descs;
	}
	json_printf("},\"xsk\":{\"rx_dropped\":%" PRIu64 ",\"rx_invalid_descs\":%" PRIu64
		    ",\"rx_ring_full\":%" PRIu64 ",\"rx_fill_ring_empty_descs\":%" PRIu64 "}",
		    s.rx_dropped, s.rx_invalid_descs, s.rx_ring_full,
		    s.rx_fill_ring_empty_descs);
	if (reason)
		json_printf(",\"reason\":\"%s\"", reason);
	json_printf("}");
	json_end();
}

static int set_sockopt_int(struct xq *q, const char *ifname, int opt, const char *name,
			   int val)
{
	if (!setsockopt(q->fd, SOL_SOCKET, opt, &val, sizeof(val)))
		return RXB_EXIT_OK;
	report_unsupported(errno, "setsockopt %s=%d on %s queue %u refused", name, val,
			   ifname, q->qid);
	return RXB_EXIT_UNSUPPORTED;
}

/* UMEM + socket for one queue, fill ring populated.  bind is BIND_AUTO only
 * for the first socket; *zc says what the kernel chose.  Returns an exit code;
 * whatever was created is left in q for cleanup(). */
static int setup_queue(struct xq *q, const struct opts *o, enum bind_mode bind)
{
	struct xsk_umem_config ucfg = {
		.fill_size = o->ring,
		.comp_size = o->ring,
		.frame_size = o->frame_size,
		.frame_headroom = XSK_UMEM__DEFAULT_FRAME_HEADROOM,
		.flags = XSK_UMEM__DEFAULT_FLAGS,
	};
	struct xsk_socket_config scfg = {
		.rx_size = o->ring,
		.tx_size = 0,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = o->mode == MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE,
		.bind_flags = XDP_USE_NEED_WAKEUP,
	};
	uint32_t nframes = o->ring * UMEM_FRAMES_PER_SLOT, i;
	struct xdp_options xopts;
	socklen_t len = sizeof(xopts);
	uint64_t deadline;
	int err, ret;

	if (bind == BIND_COPY)
		scfg.bind_flags |= XDP_COPY;
	else if (bind == BIND_ZEROCOPY)
		scfg.bind_flags |= XDP_ZEROCOPY;

	q->frame_mask = ~((uint64_t)o->frame_size - 1);
	q->area_len = (size_t)nframes * o->frame_size;
	q->area = mmap(NULL, q->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		warn_err(errno, "queue %u: mmap UMEM (%zu bytes)", q->qid, q->area_len);
		return RXB_EXIT_FAIL;
	}
	q->stack = calloc(nframes, sizeof(*q->stack));
	if (!q->stack) {
		warn_err(errno, "calloc");
		return RXB_EXIT_FAIL;
	}

	err = xsk_umem__create(&q->umem, q->area, q->area_len, &q->fill, &q->comp, &ucfg);
	if (err) {
		q->umem = NULL;
		if (err == -ENOBUFS)
			warn_err(err, "queue %u: xsk_umem__create (%zu bytes; the kernel charges the UMEM to RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK; try a smaller --ring or --frame-size)",
				 q->qid, q->area_len);
		else
			warn_err(err, "queue %u: xsk_umem__create", q->qid);
		return RXB_EXIT_FAIL;
	}

	/* A queue whose previous socket was closed a moment ago can still be
	 * busy: the kernel releases the old buffer pool from a workqueue.
	 * libxdp leaves the UMEM reusable after a failed create, so retry. */
	deadline = mono_ns() + BIND_BUSY_WAIT_MS * 1000000ULL;
	for (;;) {
		err = xsk_socket__create(&q->xsk, o->ifname, q->qid, q->umem, &q->rx, NULL,
					 &scfg);
		if (err != -EBUSY || mono_ns() >= deadline)
			break;
		usleep(BIND_BUSY_RETRY_US);
	}
	if (err) {
		q->xsk = NULL;
		if (bind == BIND_ZEROCOPY && err != -EBUSY) {
			report_unsupported(err, "zero-copy bind on %s queue %u refused", o->ifname,
					   q->qid);
			return RXB_EXIT_UNSUPPORTED;
		}
		if (err == -EBUSY)
			warn_err(err, "%s queue %u: AF_XDP bind still refused after %llu ms (another socket bound to this queue?)",
				 o->ifname, q->qid, BIND_BUSY_WAIT_MS);
		else
			warn_err(err, "%s queue %u: AF_XDP socket (%s bind)", o->ifname, q->qid,
				 bind_names[bind]);
		return RXB_EXIT_FAIL;
	}
	q->fd = xsk_socket__fd(q->xsk);

	memset(&xopts, 0, sizeof(xopts));
	if (getsockopt(q->fd, SOL_XDP, XDP_OPTIONS, &xopts, &len)) {
		warn_err(errno, "queue %u: getsockopt(XDP_OPTIONS)", q->qid);
		return RXB_EXIT_FAIL;
	}
	q->zc = xopts.flags & XDP_OPTIONS_ZEROCOPY;

	if (o->wait == WAIT_BUSY_POLL) {
		ret = set_sockopt_int(q, o->ifname, SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL", 1);
		if (!ret)
			ret = set_sockopt_int(q, o->ifname, SO_BUSY_POLL, "SO_BUSY_POLL",
					      (int)o->busy_usecs);
		if (!ret)
			ret = set_sockopt_int(q, o->ifname, SO_BUSY_POLL_BUDGET,
					      "SO_BUSY_POLL_BUDGET", (int)o->busy_budget);
		if (ret)
			return ret;
	}

	/* All frames start on the stack; the fill ring takes o->ring of them. */
	for (i = 0; i < nframes; i++)
		q->stack[i] = (uint64_t)(nframes - 1 - i) * o->frame_size;
	q->top = nframes;
	err = refill(q, o->ring);
	if (err) {
		warn_err(err, "queue %u: fill ring wakeup", q->qid);
		return RXB_EXIT_FAIL;
	}
	return RXB_EXIT_OK;
}

static void stop_threads(struct xq *qs, unsigned int nq)
{
	uint64_t one = 1;
	unsigned int i;

	__atomic_store_n(&run.stop, 1, __ATOMIC_RELAXED);
	if (run.efd >= 0 && write(run.efd, &one, sizeof(one)) != sizeof(one))
		warn_err(errno, "eventfd write");
	for (i = 0; i < nq; i++) {
		if (!qs[i].started)
			continue;
		pthread_join(qs[i].tid, NULL);
		qs[i].started = false;
	}
}

/* What the main thread watches while the queues run. */
struct watch {
	struct xq *qs;
	unsigned int nq;
};

static void watch_snapshot(void *arg)
{
	struct watch *w = arg;

	report("snapshot", w->qs, w->nq, NULL);
}

/* SIGUSR2: a queue thread stopped on an error. */
static const char *watch_wake(void *arg)
{
	(void)arg;
	return __atomic_load_n(&run.failed, __ATOMIC_RELAXED) ? "error" : NULL;
}

int main(int argc, char **argv)
{
	struct xdp_program *prog = NULL;
	struct bpf_map *map;
	struct xq *qs = NULL;
	struct watch watch;
	const char *reason = NULL;
	enum xdp_attach_mode attach_mode = XDP_MODE_NATIVE;
	enum bind_mode bind;
	bool attached = false, all_zc = true;
	unsigned int i, nrxq;
	sigset_t sigs;
	uint64_t t0, deadline;
	int ifindex, map_fd, err;
	int ret = RXB_EXIT_FAIL;
	struct opts o;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);

	ifindex = opt_ifindex(o.ifname);
	nrxq = sysfs_rx_queues(o.ifname);
	if (nrxq && o.queues > nrxq)
		usage_error("--queues %u: %s has only %u RX queue(s)", o.queues, o.ifname, nrxq);

	/* Signals are handled synchronously by the main thread (sigtimedwait);
	 * the RX threads inherit the blocked mask.  SIGUSR2: a thread failed. */
	block_signals(&sigs, SIGUSR2);

	libxdp_set_print(libxdp_print);
	libbpf_set_print(libbpf_print);
	/* Never raise RLIMIT_MEMLOCK.  libbpf >= 1.0 only tries on kernels
	 * without memcg accounting of BPF memory (< 5.11) and ignores a
	 * failure; where it can be switched off explicitly, do so. */
	if (libbpf_set_memlock_rlim)
		libbpf_set_memlock_rlim(0);

	run.wait = o.wait;
	run.batch = o.batch;
	run.main_tid = pthread_self();
	run.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (run.efd < 0)
		die("eventfd");

	if (posix_memalign((void **)&qs, CACHE_LINE, sizeof(*qs) * o.queues))
		die("posix_memalign");
	memset(qs, 0, sizeof(*qs) * o.queues);
	for (i = 0; i < o.queues; i++) {
		qs[i].qid = i;
		qs[i].fd = -1;
		qs[i].cpu = o.ncpus ? o.cpus[i] : -1;
	}

	/* Sockets first, so that a refused zero-copy bind is reported as such.
	 * auto: the kernel picks for queue 0; the others follow its choice. */
	bind = o.bind;
	for (i = 0; i < o.queues; i++) {
		ret = setup_queue(&qs[i], &o, bind);
		if (ret)
			goto cleanup;
		if (bind == BIND_AUTO)
			bind = qs[i].zc ? BIND_ZEROCOPY : BIND_COPY;
		all_zc = all_zc && qs[i].zc;
	}
	ret = RXB_EXIT_FAIL;

	/* libxdp's default XSK program, xsks_map sized to our queues (frames
	 * on other queues hit an empty slot and are passed to the stack). */
	prog = xdp_program__find_file(XSK_PROG_FILE, NULL, NULL);
	err = (int)libxdp_get_error(prog);
	if (err) {
		prog = NULL;
		warn_err(0, "xdp_program__find_file %s: %s", XSK_PROG_FILE, xdpstrerror(err));
		goto cleanup;
	}
	map = bpf_object__find_map_by_name(xdp_program__bpf_obj(prog), XSK_MAP_NAME);
	if (!map) {
		warn_err(ENOENT, "%s: map '%s'", XSK_PROG_FILE, XSK_MAP_NAME);
		goto cleanup;
	}
	err = bpf_map__set_max_entries(map, o.queues);
	if (err) {
		warn_err(err, "bpf_map__set_max_entries(%s)", XSK_MAP_NAME);
		goto cleanup;
	}
	attach_mode = o.mode == MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE;
	err = xdp_program__attach(prog, ifindex, attach_mode, 0);
	if (err) {
		report_unsupported(err, "%s XDP attach on %s refused", mode_names[o.mode],
				   o.ifname);
		ret = RXB_EXIT_UNSUPPORTED;
		goto cleanup;
	}
	attached = true;
	map_fd = bpf_map__fd(map);
	for (i = 0; i < o.queues; i++) {
		err = xsk_socket__update_xskmap(qs[i].xsk, map_fd);
		if (err) {
			warn_err(err, "queue %u: xsk_socket__update_xskmap", i);
			goto cleanup;
		}
	}

	for (i = 0; i < o.queues; i++) {
		pthread_attr_t attr;

		err = pthread_attr_init(&attr);
		if (!err && qs[i].cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(qs[i].cpu, &set);
			err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		if (!err)
			err = pthread_create(&qs[i].tid, &attr, rx_thread, &qs[i]);
		pthread_attr_destroy(&attr);
		if (err) {
			warn_err(err, "queue %u: pthread_create (cpu %d)", i, qs[i].cpu);
			goto cleanup;
		}
		qs[i].started = true;
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o.duration_s * NS_PER_SEC);
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"ifname\":", TOOL_NAME);
	json_str(o.ifname);
	json_printf(",\"ifindex\":%d,\"queues\":%u,\"bind\":\"%s\",\"mode\":\"%s\","
		    "\"wait\":\"%s\",\"batch\":%u,\"ring\":%u,\"frame_size\":%u,"
		    "\"prog_id\":%u,\"t_ns\":%" PRIu64 "}",
		    ifindex, o.queues, all_zc ? "zerocopy" : "copy", mode_names[o.mode],
		    wait_names[o.wait], o.batch, o.ring, o.frame_size,
		    xdp_program__id(prog), t0);
	json_end();

	watch = (struct watch){ .qs = qs, .nq = o.queues };
	reason = run_until_signal(&sigs, deadline, watch_snapshot, watch_wake, &watch);
	ret = strcmp(reason, "error") ? RXB_EXIT_OK : RXB_EXIT_FAIL;
	stop_threads(qs, o.queues);
	report("final", qs, o.queues, reason);

cleanup:
	stop_threads(qs, o.queues);
	if (attached) {
		err = xdp_program__detach(prog, ifindex, attach_mode, 0);
		if (err == -ENODEV) {
			warn_err(0, "%s: interface is gone; nothing to detach", o.ifname);
		} else if (err) {
			warn_err(0, "%s: xdp_program__detach: %s", o.ifname, xdpstrerror(err));
			ret = RXB_EXIT_FAIL;
		}
	}
	if (prog)
		xdp_program__close(prog);
	for (i = 0; i < o.queues; i++) {
		xsk_socket__delete(qs[i].xsk);
		if (qs[i].umem && xsk_umem__delete(qs[i].umem))
			warn_err(EBUSY, "queue %u: xsk_umem__delete", i);
		if (qs[i].area)
			munmap(qs[i].area, qs[i].area_len);
		free(qs[i].stack);
	}
	free(qs);
	close(run.efd);
	return ret;
}
