// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-af-packet: the classic socket-path baseline.  Receive every frame of
 * one interface through AF_PACKET PACKET_MMAP TPACKET_V3 rings and drop it,
 * counting packets and bytes (tp_len: frame length without FCS).  No
 * per-packet syscall, allocation or print: one thread per socket walks the
 * ring block by block and sleeps in poll() only when no block is ready.
 *
 * With --threads N > 1 the N sockets join one PACKET_FANOUT group
 * (PACKET_FANOUT_HASH, no DEFRAG flag, group id from the pid) so flows
 * spread across the threads.  With one thread there is no fanout group.
 *
 * Each socket is created with protocol 0 (hooked nowhere) and only then
 * bound to the interface with ETH_P_ALL, after the ring is mapped, so no
 * frame of another interface ever lands in the ring.  PACKET_IGNORE_OUTGOING
 * (one socket) or PACKET_FANOUT_FLAG_IGNORE_OUTGOING (fanout group) keeps
 * the host's own outgoing frames (e.g. ICMP port unreachable) out.
 *
 * Events (one JSON object per line on stdout, flushed):
 *   ready     once every socket is bound, its ring mapped, its thread started
 *   snapshot  on SIGUSR1
 *   final     on exit (duration elapsed, SIGINT/SIGTERM/SIGHUP, worker error)
 *
 * packet_stats are the kernel's PACKET_STATISTICS summed over the sockets
 * and accumulated since start (reading them resets the kernel's counters, so
 * only the main thread reads them).  The kernel's tp_packets includes
 * tp_drops and frames still in a block not yet retired to user space.
 */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>

/* Linux >= 6.2; older UAPI headers (Debian 12's) lack the name.  A fanout
 * group has its own receive hook: the members' PACKET_IGNORE_OUTGOING does
 * not apply to it, only this group flag does. */
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

#define TOOL_NAME               "rxb-af-packet"
#define DEFAULT_THREADS         1U
#define DEFAULT_BLOCK_SIZE      (1U << 20)  /* 1 MiB */
#define DEFAULT_BLOCKS          64U
#define DEFAULT_FRAME_SIZE      2048U
#define DEFAULT_BLOCK_TIMEOUT_MS 10U        /* tp_retire_blk_tov */
#define DEFAULT_DURATION_S      10.0
#define MAX_DURATION_S          (365.0 * 24 * 3600)
#define MAX_THREADS             256U        /* kernel PACKET_FANOUT_MAX */
#define MAX_BLOCK_SIZE          (256U << 20)
#define MAX_BLOCKS              65536U
#define MAX_RING_BYTES          (4ULL << 30) /* per socket */
#define MAX_BLOCK_TIMEOUT_MS    65535U      /* kernel keeps it in a u16 */
#define POLL_TIMEOUT_MS         100         /* bounds how late a thread sees stop */
#define CACHELINE               64

struct opts {
	const char *ifname;
	unsigned int threads;
	int cpus[MAX_THREADS];  /* --cpus; ncpus == 0: no pinning */
	unsigned int ncpus;     /* entries given to --cpus */
	unsigned int block_size;
	unsigned int blocks;
	unsigned int frame_size;
	unsigned int block_timeout_ms;
	double duration_s;
};

/* Per-thread state.  The counters are written by their thread only (plain
 * relaxed stores of its running totals) and read by the main thread with
 * relaxed loads; they sit alone in their cache line. */
/* The kernel's PACKET_STATISTICS are 32-bit and reset on every read: read
 * often enough (every snapshot), their sums here do not wrap. */
struct stats64 {
	uint64_t tp_packets, tp_drops, tp_freeze_q_cnt;
};

static void stats_add(struct stats64 *acc, const struct tpacket_stats_v3 *st)
{
	acc->tp_packets += st->tp_packets;
	acc->tp_drops += st->tp_drops;
	acc->tp_freeze_q_cnt += st->tp_freeze_q_cnt;
}

struct worker {
	alignas(CACHELINE) uint64_t packets;
	uint64_t bytes;
	/* Read-only for the thread after start, from here on. */
	alignas(CACHELINE) int fd;
	int cpu;                /* -1: not pinned */
	unsigned int idx;
	uint8_t *map;
	size_t map_len;
	size_t block_size;
	unsigned int nblocks;
	pthread_t tid;
	bool started;
	int err;                /* set by the thread before it exits on error */
	/* Main thread only. */
	struct stats64 acc;          /* PACKET_STATISTICS accumulated since start */
	bool err_seen;               /* err reported */
};

static int stop_flag;           /* __atomic, set by main */

static pthread_t main_tid;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --ifname IF [options]\n"
		"Receive every frame of IF through AF_PACKET TPACKET_V3 rings, count\n"
		"packets and bytes (frame length without FCS), drop them.\n"
		"\n"
		"  -i, --ifname IF            interface to receive on (required)\n"
		"  -t, --threads N            sockets/threads, 1..%u; N > 1 joins them in one\n"
		"                             PACKET_FANOUT_HASH group (default: %u)\n"
		"  -c, --cpus LIST            comma list of N CPUs, thread i pinned to the\n"
		"                             i-th (default: no pinning)\n"
		"  -B, --block-size BYTES     ring block size, multiple of the page size,\n"
		"                             <= %u (default: %u)\n"
		"  -b, --blocks N             ring blocks per socket, 1..%u (default: %u)\n"
		"  -F, --frame-size BYTES     tp_frame_size, multiple of %d, >= %zu,\n"
		"                             <= block size (default: %u)\n"
		"  -T, --block-timeout-ms MS  tp_retire_blk_tov, 0..%u, 0 = kernel's\n"
		"                             choice (default: %u)\n"
		"  -d, --duration SECS        run time in seconds, > 0 (default: %g)\n"
		"  -h, --help                 show this help\n"
		"\n"
		"Output: JSON lines (ready, snapshot on SIGUSR1, final) on stdout.\n"
		"Signals: SIGUSR1 prints a snapshot; SIGINT/SIGTERM/SIGHUP stop early.\n"
		"Exit: 0 ok, 1 runtime failure, 2 bad arguments/interface.\n",
		TOOL_NAME, MAX_THREADS, DEFAULT_THREADS, MAX_BLOCK_SIZE, DEFAULT_BLOCK_SIZE,
		MAX_BLOCKS, DEFAULT_BLOCKS, TPACKET_ALIGNMENT, (size_t)TPACKET3_HDRLEN,
		DEFAULT_FRAME_SIZE, MAX_BLOCK_TIMEOUT_MS, DEFAULT_BLOCK_TIMEOUT_MS,
		DEFAULT_DURATION_S);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "ifname", required_argument, NULL, 'i' },
		{ "threads", required_argument, NULL, 't' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "block-size", required_argument, NULL, 'B' },
		{ "blocks", required_argument, NULL, 'b' },
		{ "frame-size", required_argument, NULL, 'F' },
		{ "block-timeout-ms", required_argument, NULL, 'T' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned int page = (unsigned int)sysconf(_SC_PAGESIZE);
	int c;

	*o = (struct opts){ .threads = DEFAULT_THREADS,
			    .block_size = DEFAULT_BLOCK_SIZE,
			    .blocks = DEFAULT_BLOCKS,
			    .frame_size = DEFAULT_FRAME_SIZE,
			    .block_timeout_ms = DEFAULT_BLOCK_TIMEOUT_MS,
			    .duration_s = DEFAULT_DURATION_S };
	while ((c = opt_next(argc, argv, ":i:t:c:B:b:F:T:d:h", longopts, usage)) != -1) {
		switch (c) {
		case 'i':
			o->ifname = optarg;
			break;
		case 't':
			if (parse_uint(optarg, MAX_THREADS, &o->threads) || !o->threads)
				usage_error("--threads: invalid value '%s' (want 1..%u)", optarg,
					    MAX_THREADS);
			break;
		case 'c':
			opt_cpu_list(optarg, o->cpus, MAX_THREADS, &o->ncpus);
			break;
		case 'B':
			if (parse_uint(optarg, MAX_BLOCK_SIZE, &o->block_size) ||
			    !o->block_size || o->block_size % page)
				usage_error("--block-size: invalid value '%s' (want a multiple of %u, <= %u)",
					    optarg, page, MAX_BLOCK_SIZE);
			break;
		case 'b':
			if (parse_uint(optarg, MAX_BLOCKS, &o->blocks) || !o->blocks)
				usage_error("--blocks: invalid value '%s' (want 1..%u)", optarg,
					    MAX_BLOCKS);
			break;
		case 'F':
			if (parse_uint(optarg, MAX_BLOCK_SIZE, &o->frame_size) ||
			    o->frame_size < TPACKET3_HDRLEN ||
			    o->frame_size % TPACKET_ALIGNMENT)
				usage_error("--frame-size: invalid value '%s' (want a multiple of %d, >= %zu)",
					    optarg, TPACKET_ALIGNMENT, (size_t)TPACKET3_HDRLEN);
			break;
		case 'T':
			if (parse_uint(optarg, MAX_BLOCK_TIMEOUT_MS, &o->block_timeout_ms))
				usage_error("--block-timeout-ms: invalid value '%s' (want 0..%u)",
					    optarg, MAX_BLOCK_TIMEOUT_MS);
			break;
		case 'd':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		}
	}
	if (!o->ifname)
		usage_error("--ifname is required");
	if (o->ncpus && o->ncpus != o->threads)
		usage_error("--cpus: %u CPU(s) given for %u thread(s) (want one per thread)",
			    o->ncpus, o->threads);
	if (o->frame_size > o->block_size)
		usage_error("--frame-size %u: larger than --block-size %u", o->frame_size,
			    o->block_size);
	if ((uint64_t)o->block_size * o->blocks > MAX_RING_BYTES)
		usage_error("--block-size %u x --blocks %u: ring larger than %llu MiB",
			    o->block_size, o->blocks, MAX_RING_BYTES >> 20);
}

/* ---- worker ------------------------------------------------------------- */

static inline bool stopping(void)
{
	return __atomic_load_n(&stop_flag, __ATOMIC_RELAXED);
}

static void worker_fail(struct worker *w, int err)
{
	__atomic_store_n(&w->err, err, __ATOMIC_RELAXED);
	/* Wake the main thread (SIGUSR2 is in its sigtimedwait set). */
	pthread_kill(main_tid, SIGUSR2);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN | POLLERR };
	uint64_t packets = 0, bytes = 0;
	unsigned int cur = 0;

	while (!stopping()) {
		struct tpacket_block_desc *bd =
			(struct tpacket_block_desc *)(w->map + (size_t)cur * w->block_size);
		const uint8_t *p;
		uint32_t i, n;

		if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) &
		      TP_STATUS_USER)) {
			int ret = poll(&pfd, 1, POLL_TIMEOUT_MS);

			if (ret < 0 && errno != EINTR) {
				worker_fail(w, errno);
				break;
			}
			if (ret > 0 && (pfd.revents & (POLLERR | POLLNVAL))) {
				int err = 0;
				socklen_t len = sizeof(err);

				/* ENETDOWN when the interface goes down or away. */
				if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len))
					err = errno;
				if (err || (pfd.revents & POLLNVAL)) {
					worker_fail(w, err ? err : EBADF);
					break;
				}
			}
			continue;
		}

		n = bd->hdr.bh1.num_pkts;
		p = (const uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
		for (i = 0; i < n; i++) {
			const struct tpacket3_hdr *h = (const struct tpacket3_hdr *)p;

			bytes += h->tp_len;
			p += h->tp_next_offset;
		}
		packets += n;
		__atomic_store_n(&w->packets, packets, __ATOMIC_RELAXED);
		__atomic_store_n(&w->bytes, bytes, __ATOMIC_RELAXED);

		__atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		if (++cur == w->nblocks)
			cur = 0;
	}
	return NULL;
}

/* ---- setup / teardown --------------------------------------------------- */

/* Join the fanout group (fanout_arg: id | type << 16), asking it to ignore
 * outgoing frames while *ignore_outgoing holds.  A kernel that refuses the
 * flag (EINVAL, before 6.2) is retried without it, for the first member
 * only (all members must pass the same flags). */
static int fanout_join(struct worker *w, int fanout_arg, bool *ignore_outgoing)
{
	int arg = fanout_arg;

	if (*ignore_outgoing)
		arg |= PACKET_FANOUT_FLAG_IGNORE_OUTGOING << 16;
	if (!setsockopt(w->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)))
		return 0;
	if (errno == EINVAL && w->idx == 0 && *ignore_outgoing &&
	    !setsockopt(w->fd, SOL_PACKET, PACKET_FANOUT, &fanout_arg, sizeof(fanout_arg))) {
		warn_err(0, "PACKET_FANOUT_FLAG_IGNORE_OUTGOING refused (outgoing frames will be counted)");
		*ignore_outgoing = false;
		return 0;
	}
	warn_err(errno, "setsockopt(PACKET_FANOUT, id %d, hash)", fanout_arg & 0xffff);
	return -1;
}

/* Socket, TPACKET_V3 RX ring, mmap, bind to ifindex, fanout.  Returns 0 or
 * -1 (after a diagnostic); w->fd / w->map are left for worker_close. */
static int worker_open(struct worker *w, const struct opts *o, int ifindex,
		       const int *fanout_arg, bool *ignore_outgoing)
{
	struct tpacket_req3 req;
	struct sockaddr_ll sll;
	int ver = TPACKET_V3, one = 1;

	/* Protocol 0: not hooked into RX until bind() names the interface. */
	w->fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (w->fd < 0) {
		warn_err(errno, "socket(AF_PACKET, SOCK_RAW)");
		return -1;
	}
	if (setsockopt(w->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver))) {
		warn_err(errno, "setsockopt(PACKET_VERSION, TPACKET_V3)");
		return -1;
	}
	if (setsockopt(w->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one))) {
		if (*ignore_outgoing)
			warn_err(errno, "setsockopt(PACKET_IGNORE_OUTGOING) (outgoing frames will be counted)");
		*ignore_outgoing = false;
	}

	memset(&req, 0, sizeof(req));
	req.tp_block_size = o->block_size;
	req.tp_block_nr = o->blocks;
	req.tp_frame_size = o->frame_size;
	req.tp_frame_nr = (o->block_size / o->frame_size) * o->blocks;
	req.tp_retire_blk_tov = o->block_timeout_ms;
	if (setsockopt(w->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req))) {
		warn_err(errno, "setsockopt(PACKET_RX_RING, %u x %u B)", o->blocks,
			 o->block_size);
		return -1;
	}
	w->block_size = o->block_size;
	w->nblocks = o->blocks;
	w->map_len = (size_t)o->block_size * o->blocks;
	w->map = mmap(NULL, w->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
	if (w->map == MAP_FAILED) {
		w->map = NULL;
		warn_err(errno, "mmap(PACKET_RX_RING, %zu B)", w->map_len);
		return -1;
	}

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifindex;
	if (bind(w->fd, (struct sockaddr *)&sll, sizeof(sll))) {
		warn_err(errno, "%s: bind(AF_PACKET, ETH_P_ALL)", o->ifname);
		return -1;
	}
	if (fanout_arg)
		return fanout_join(w, *fanout_arg, ignore_outgoing);
	return 0;
}

static void worker_close(struct worker *w)
{
	if (w->map)
		munmap(w->map, w->map_len);
	w->map = NULL;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* Interface must exist (exit 2 otherwise) and be up (bind to a down
 * interface leaves the socket unhooked, and fanout refuses it). */
static int check_ifname(const char *ifname)
{
	struct ifreq ifr;
	int ifindex, fd;

	ifindex = opt_ifindex(ifname);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket(AF_INET)");
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		if (errno == ENODEV)
			usage_error("--ifname '%s': no such interface", ifname);
		die("%s: ioctl(SIOCGIFFLAGS)", ifname);
	}
	close(fd);
	if (!(ifr.ifr_flags & IFF_UP))
		usage_error("--ifname '%s': interface is down", ifname);
	return ifindex;
}

/* ---- reporting ---------------------------------------------------------- */

/* Read (and thereby reset) every socket's PACKET_STATISTICS into acc. */
static int collect_stats(struct worker *ws, unsigned int n, struct stats64 *sum)
{
	unsigned int i;
	int ret = 0;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n; i++) {
		struct tpacket_stats_v3 st;
		socklen_t len = sizeof(st);

		memset(&st, 0, sizeof(st));
		if (getsockopt(ws[i].fd, SOL_PACKET, PACKET_STATISTICS, &st, &len)) {
			warn_err(errno, "thread %u: getsockopt(PACKET_STATISTICS)", i);
			ret = -1;
		} else {
			stats_add(&ws[i].acc, &st);
		}
		sum->tp_packets += ws[i].acc.tp_packets;
		sum->tp_drops += ws[i].acc.tp_drops;
		sum->tp_freeze_q_cnt += ws[i].acc.tp_freeze_q_cnt;
	}
	return ret;
}

static int report(const char *event, struct worker *ws, unsigned int n, const char *reason)
{
	uint64_t packets = 0, bytes = 0, t = mono_ns();
	uint64_t *pk = calloc(n, sizeof(*pk)), *by = calloc(n, sizeof(*by));
	struct stats64 sum;
	unsigned int i;
	int ret;

	if (!pk || !by) {
		warn_err(errno, "calloc");
		free(pk);
		free(by);
		return -1;
	}
	for (i = 0; i < n; i++) {
		pk[i] = __atomic_load_n(&ws[i].packets, __ATOMIC_RELAXED);
		by[i] = __atomic_load_n(&ws[i].bytes, __ATOMIC_RELAXED);
		packets += pk[i];
		bytes += by[i];
	}
	ret = collect_stats(ws, n, &sum);

	json_printf("{\"event\":\"%s\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"per_thread\":{",
		    event, t, packets, bytes);
	for (i = 0; i < n; i++)
		json_printf("%s\"%u\":{\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
			    i ? "," : "", i, pk[i], by[i]);
	json_printf("},\"packet_stats\":{\"tp_packets\":%" PRIu64 ",\"tp_drops\":%" PRIu64
		    ",\"tp_freeze_q_cnt\":%" PRIu64 "}",
		    sum.tp_packets, sum.tp_drops, sum.tp_freeze_q_cnt);
	if (reason)
		json_printf(",\"reason\":\"%s\"", reason);
	json_printf("}");
	json_end();
	free(pk);
	free(by);
	return ret;
}

static void print_ready(const struct opts *o, int ifindex, int fanout_id,
			bool ignore_outgoing, uint64_t t0)
{
	unsigned int i;

	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"ifname\":", TOOL_NAME);
	json_str(o->ifname);
	json_printf(",\"ifindex\":%d,\"threads\":%u,\"cpus\":", ifindex, o->threads);
	if (o->ncpus) {
		json_printf("[");
		for (i = 0; i < o->ncpus; i++)
			json_printf("%s%d", i ? "," : "", o->cpus[i]);
		json_printf("]");
	} else {
		json_printf("null");
	}
	json_printf(",\"block_size\":%u,\"blocks\":%u,\"frame_size\":%u,"
		    "\"block_timeout_ms\":%u,\"fanout_id\":",
		    o->block_size, o->blocks, o->frame_size, o->block_timeout_ms);
	if (fanout_id >= 0)
		json_printf("%d", fanout_id);
	else
		json_printf("null");
	json_printf(",\"ignore_outgoing\":%s,\"t_ns\":%" PRIu64 "}",
		    ignore_outgoing ? "true" : "false", t0);
	json_end();
}

/* A worker's error, said once on stderr; true if there was one. */
static bool worker_err_seen(struct worker *w, const char *ifname)
{
	int err = __atomic_load_n(&w->err, __ATOMIC_RELAXED);

	if (!err || w->err_seen)
		return false;
	w->err_seen = true;
	warn_err(err, "thread %u: %s: receive", w->idx, ifname);
	return true;
}

/* What the main thread watches while the workers run. */
struct watch {
	struct worker *ws;
	const struct opts *o;
	bool failed; /* a snapshot could not be read */
};

static void watch_snapshot(void *arg)
{
	struct watch *w = arg;

	if (report("snapshot", w->ws, w->o->threads, NULL))
		w->failed = true;
}

/* SIGUSR2: a worker stopped on an error. */
static const char *watch_wake(void *arg)
{
	struct watch *w = arg;
	const char *reason = NULL;
	unsigned int i;

	for (i = 0; i < w->o->threads; i++)
		if (worker_err_seen(&w->ws[i], w->o->ifname))
			reason = "error";
	return reason;
}

/* ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct worker *ws = NULL;
	struct watch watch;
	const char *reason = NULL;
	bool ignore_outgoing = true;
	sigset_t sigs;
	uint64_t t0, deadline;
	int ifindex, fanout_id = -1, fanout_arg = 0, err;
	int ret = RXB_EXIT_FAIL;
	unsigned int i;
	struct opts o;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);
	ifindex = check_ifname(o.ifname);

	/* Signals are handled synchronously by the main thread with
	 * sigtimedwait; blocked before any thread exists, so every worker
	 * inherits the mask.  SIGUSR2 is a worker's "I stopped on an error".
	 * A closed stdout must not kill us before cleanup. */
	block_signals(&sigs, SIGUSR2);
	main_tid = pthread_self();

	ws = aligned_alloc(CACHELINE, o.threads * sizeof(*ws));
	if (!ws)
		die("aligned_alloc");
	memset(ws, 0, o.threads * sizeof(*ws));
	for (i = 0; i < o.threads; i++) {
		ws[i].fd = -1;
		ws[i].idx = i;
		ws[i].cpu = o.ncpus ? o.cpus[i] : -1;
	}

	if (o.threads > 1) {
		fanout_id = (int)(getpid() & 0xffff);
		fanout_arg = fanout_id | (PACKET_FANOUT_HASH << 16);
	}
	for (i = 0; i < o.threads; i++)
		if (worker_open(&ws[i], &o, ifindex, o.threads > 1 ? &fanout_arg : NULL,
				&ignore_outgoing))
			goto out;

	/* Every exit from here on stops and joins the started threads. */
	for (i = 0; i < o.threads; i++) {
		pthread_attr_t attr;
		char name[32];

		pthread_attr_init(&attr);
		if (ws[i].cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(ws[i].cpu, &set);
			err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
			if (err) {
				warn_err(err, "pthread_attr_setaffinity_np(CPU %d)", ws[i].cpu);
				pthread_attr_destroy(&attr);
				goto out_stop;
			}
		}
		err = pthread_create(&ws[i].tid, &attr, worker_main, &ws[i]);
		pthread_attr_destroy(&attr);
		if (err) {
			warn_err(err, "pthread_create (thread %u, CPU %d)", i, ws[i].cpu);
			goto out_stop;
		}
		ws[i].started = true;
		snprintf(name, sizeof(name), "rxb-afp-%u", i);
		name[15] = '\0'; /* kernel limit: 16 bytes with the NUL */
		pthread_setname_np(ws[i].tid, name);
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o.duration_s * (double)NS_PER_SEC);
	print_ready(&o, ifindex, fanout_id, ignore_outgoing, t0);

	watch = (struct watch){ .ws = ws, .o = &o };
	reason = run_until_signal(&sigs, deadline, watch_snapshot, watch_wake, &watch);
	ret = watch.failed || !strcmp(reason, "error") ? RXB_EXIT_FAIL : RXB_EXIT_OK;

out_stop:
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	for (i = 0; i < o.threads; i++) {
		if (!ws[i].started)
			continue;
		err = pthread_join(ws[i].tid, NULL);
		if (err) {
			warn_err(err, "pthread_join (thread %u)", i);
			ret = RXB_EXIT_FAIL;
		}
		/* An error the main loop had no time to see. */
		if (worker_err_seen(&ws[i], o.ifname)) {
			ret = RXB_EXIT_FAIL;
			if (reason)
				reason = "error";
		}
	}
	if (reason && report("final", ws, o.threads, reason))
		ret = RXB_EXIT_FAIL;

out:
	for (i = 0; i < o.threads; i++)
		worker_close(&ws[i]);
	free(ws);
	return ret;
}
