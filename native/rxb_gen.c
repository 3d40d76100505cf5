// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-gen: send fixed-size UDP/IPv4 frames out of one interface as fast as
 * possible, for a bounded time and/or frame count, through an AF_PACKET
 * socket (PACKET_TX_RING or sendmmsg, qdisc bypassed).
 *
 * Back-pressure (EAGAIN: socket send buffer full; ENOBUFS: driver queue full
 * or stopped, e.g. veth when the peer's ring is full; fewer frames accepted
 * than submitted) never aborts the run: it is counted and retried.  Only
 * frames the kernel accepted are counted:
 *   mmap:     frames whose ring slot went SEND_REQUEST -> SENDING -> AVAILABLE
 *             (the skb was handed to the driver and has been freed);
 *   sendmmsg: the return value of sendmmsg().
 *
 * Pacing (--rate-pps R): frame k (k = 0, 1, ...) is due at t0 + k/R on
 * CLOCK_MONOTONIC; the loop hands the kernel the frames that are due, in
 * groups of PACE_BURST_NS worth of frames (at least 1, at most --batch):
 * one submission per group deadline (the time its last frame is due),
 * sleeping (clock_nanosleep with a 1 ns timer slack, then a short spin)
 * until then, so a paced sender leaves its CPU idle between groups.  A
 * sender that fell behind (a late wake-up, back-pressure, preemption on a
 * shared CPU) catches up without long bursts: at most PACE_CREDIT_NS (1 ms)
 * worth of frames at once (what a late wake-up of up to 1 ms owes), then
 * at no more than (1 + --catch-up) x R (a second schedule, `floor`, spaced
 * period / (1 + X)), up to
 * PACE_DEPTH_NS behind; further behind, the schedule restarts from now,
 * counted as pace_resets (the rate is then below target: a rate above what
 * the sender can do).  Without --rate-pps it sends as fast as it can.
 *
 * Threads (--threads T, --cpus LIST): one sending thread per TX queue, each
 * with its own AF_PACKET socket (and TX ring), pinned to CPU LIST[i % n],
 * sending its own flows (flow f goes to thread f % T: with --flows T, thread
 * i sends UDP source port BASE + i).  With PACKET_QDISC_BYPASS and a device
 * without ndo_select_queue (veth), the kernel picks the TX queue from the
 * sending CPU (XPS if xps_cpus maps it, else CPU % real_num_tx_queues:
 * net/packet/af_packet.c packet_pick_tx_queue), and veth delivers to the
 * peer's RX queue of the same number; so threads on CPUs that differ modulo
 * the queue count land on distinct queues (workflow/rxbench/queues.py).
 * --rate-pps and --count are split evenly over the threads; --duration is
 * one deadline for all.  Snapshots and the final line sum every thread and,
 * with T > 1, list each thread (cpu, flows, packets) under "threads".  The
 * main thread only waits for signals (blocked in every thread).
 *
 * Traffic safety: source and destination addresses must lie in the
 * benchmarking range 198.18.0.0/15 (RFC 2544); anything else is refused.
 *
 * Events (one JSON object per line on stdout, flushed):
 *   ready     right before the send loop starts
 *   snapshot  on SIGUSR1 (checked once per batch)
 *   final     at the end (duration elapsed, count reached, SIGINT/SIGTERM/SIGHUP)
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <endian.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>

#define TOOL_NAME            "rxb-gen"
#define DEFAULT_FLOWS        1U
#define DEFAULT_DURATION_S   10.0
#define DEFAULT_COUNT        0ULL   /* 0 = unlimited */
#define DEFAULT_BATCH        64U
#define DEFAULT_METHOD       METHOD_MMAP
#define MAX_DURATION_S       (365.0 * 24 * 3600)
#define MAX_BATCH            1024U
#define DEFAULT_SIZE         64U    /* RFC 2544 frame size, incl. 4-byte FCS */
#define MIN_SIZE             64U
#define MAX_SIZE             9018U
#define FCS_LEN              4U
#define ETH_OVERHEAD         18U    /* Ethernet header + FCS, on top of the MTU */
#define UDP_SRC_PORT_BASE    1024U  /* flow i uses UDP source port BASE + i */
#define UDP_DST_PORT         9U     /* discard */
#define MAX_FLOWS            (65535U - UDP_SRC_PORT_BASE + 1U)
#define IP_TTL_DEFAULT       64
#define BENCH_NET            0xC6120000U /* 198.18.0.0 */
#define BENCH_MASK           0xFFFE0000U /* /15 */
#define SNDBUF_BYTES         (4 * 1024 * 1024) /* asked for, see main() */
/* TX ring geometry (method mmap). */
#define DEFAULT_RING         1024U  /* TX ring slots (rounded up to fill whole blocks) */
#define MAX_RING             65536U
#define RING_MAX_BLOCK_SIZE  (128U * 1024U)
#define RING_MAX_BYTES       (256U * 1024U * 1024U)
/* Back-pressure handling: see bp_wait(). */
#define BP_BACKOFF_MIN_NS    1000ULL    /* first busy-wait after ENOBUFS */
#define BP_BACKOFF_MAX_NS    16000ULL   /* doubling up to this */
#define BP_POLL_TIMEOUT_NS   1000000L   /* ppoll(POLLOUT) when the send buffer is full */
/* Bounded wait, after the loop, for frames the kernel has taken. */
#define DRAIN_TIMEOUT_NS     (1ULL * NS_PER_SEC)
/* Pacing: see pace_allow(). */
#define MAX_RATE_PPS         1000000000ULL
#define PACE_BURST_NS        50000.0    /* at most 50 us of frames per burst */
#define PACE_SPIN_NS         5000ULL    /* sleep until this close, then spin */
#define PACE_DEPTH_NS        100000000.0 /* catch up at most 100 ms behind schedule */
#define DEFAULT_CATCH_UP     1.0        /* ... at no more than 2 x the rate */
#define PACE_CREDIT_NS       1000000.0  /* ... after at most 1 ms of frames at once */
#define MAX_CATCH_UP         100.0
#define PACE_SLEEP_MAX_NS    1000000ULL /* sleep in slices of at most 1 ms */
/* Threads. */
#define MAX_THREADS          64U
#define SNAP_ACK_TIMEOUT_NS  (50ULL * 1000 * 1000) /* threads' counts for a snapshot */

#define IPV4_HDR_LEN         20U
#define UDP_HDR_LEN          8U
#define L2_HDR_LEN           14U
#define UDP_SPORT_OFF        (L2_HDR_LEN + IPV4_HDR_LEN)
/* Frame data offset inside a TPACKET_V2 slot (no PACKET_TX_HAS_OFF). */
#define TX_DATA_OFF          (TPACKET2_HDRLEN - sizeof(struct sockaddr_ll))

enum method { METHOD_MMAP, METHOD_SENDMMSG };
static const char *const method_names[] = { "mmap", "sendmmsg" };

struct opts {
	const char *ifname;
	uint8_t dst_mac[ETH_ALEN];
	uint8_t src_mac[ETH_ALEN];
	bool have_dst_mac, have_src_mac;
	uint32_t src_ip, dst_ip; /* network byte order */
	bool have_src_ip, have_dst_ip;
	unsigned int size;       /* RFC 2544 frame size incl. FCS */
	unsigned int flows;
	double duration_s;
	uint64_t count;
	int cpu;                 /* -1: no pinning */
	unsigned int threads;
	int cpus[MAX_THREADS];   /* --cpus: thread i on cpus[i % ncpus] */
	unsigned int ncpus;
	bool have_flows;
	unsigned int batch;
	unsigned int ring;       /* TX ring slots (method mmap) */
	enum method method;
	uint64_t rate_pps;       /* 0: as fast as possible */
	double catch_up;         /* behind schedule: at most (1 + catch_up) x rate */
};

struct stats {
	uint64_t packets;       /* accepted by the kernel */
	uint64_t backpressure;  /* EAGAIN/ENOBUFS/short submissions */
	uint64_t pace_resets;   /* schedule restarted after falling behind */
};

struct pacer {
	double period_ns;       /* 1e9 / rate */
	double catchup_ns;      /* period / (1 + --catch-up): closest spacing */
	double floor;           /* the next frame goes no earlier (ns) */
	uint64_t t0;            /* when frame `base` was due */
	uint64_t base;          /* frames queued before t0 */
	unsigned int burst;     /* most frames per burst */
	unsigned int want;      /* frames of the next group */
	uint64_t depth;         /* most frames behind schedule it catches up */
};

/* Set by the main thread, read by the senders. */
static int g_stop;              /* a stop signal arrived */
static unsigned int g_snap_gen; /* incremented per SIGUSR1 */
static pthread_t g_main;

static inline bool stopping(void)
{
	return __atomic_load_n(&g_stop, __ATOMIC_RELAXED);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --ifname IF --dst-mac MAC --src-ip A --dst-ip B [options]\n"
		"Send fixed-size UDP/IPv4 frames out of IF as fast as possible, for a\n"
		"bounded time and/or count. Addresses must be in 198.18.0.0/15.\n"
		"\n"
		"  -i, --ifname IF       interface to send on (required)\n"
		"  -D, --dst-mac MAC     destination MAC, aa:bb:cc:dd:ee:ff (required)\n"
		"  -S, --src-mac MAC     source MAC (default: the interface's own MAC)\n"
		"  -s, --src-ip A        IPv4 source, in 198.18.0.0/15 (required)\n"
		"  -d, --dst-ip B        IPv4 destination, in 198.18.0.0/15 (required)\n"
		"  -l, --size N          frame size incl. 4-byte FCS, %u..%u and <= MTU+%u;\n"
		"                        N-4 bytes are written (default: %u)\n"
		"  -f, --flows K         UDP source ports %u..%u+K-1, dst port %u; >= threads\n"
		"                        (default: %u, with --threads T: T)\n"
		"  -t, --duration S      stop after S seconds, > 0 (default: %g)\n"
		"  -n, --count N         stop after N frames accepted, 0 = unlimited (default: %llu)\n"
		"  -c, --cpu N           pin to CPU N (default: no pinning)\n"
		"  -T, --threads T       sending threads, one per TX queue, 1..%u; flows, rate\n"
		"                        and count are split over them (default: 1)\n"
		"  -C, --cpus LIST       pin thread i to CPU LIST[i %% n] (comma list; not with\n"
		"                        --cpu)\n"
		"  -b, --batch B         frames per kernel submission, 1..%u (default: %u)\n"
		"  -r, --ring R          TX ring slots for mmap, >= batch, <= %u; also the\n"
		"                        most frames in flight (default: %u)\n"
		"  -m, --method M        mmap (PACKET_TX_RING) | sendmmsg (default: %s)\n"
		"  -R, --rate-pps R      pace to R frames/s, 1..%llu (default: 0, as fast as\n"
		"                        possible)\n"
		"  -U, --catch-up X      paced and behind schedule (a late wake-up, preemption):\n"
		"                        catch up at no more than (1+X) x R, spaced, up to\n"
		"                        %g ms behind (default: %g)\n"
		"  -h, --help            show this help\n"
		"\n"
		"Output: JSON lines (ready, snapshot on SIGUSR1, final) on stdout.\n"
		"SIGINT/SIGTERM/SIGHUP stop early (final line, exit 0).\n"
		"Exit: 0 ok, 1 runtime failure, 2 bad arguments/interface.\n",
		TOOL_NAME, MIN_SIZE, MAX_SIZE, ETH_OVERHEAD, DEFAULT_SIZE,
		UDP_SRC_PORT_BASE, UDP_SRC_PORT_BASE, UDP_DST_PORT, DEFAULT_FLOWS,
		DEFAULT_DURATION_S, (unsigned long long)DEFAULT_COUNT, MAX_THREADS, MAX_BATCH,
		DEFAULT_BATCH, MAX_RING, DEFAULT_RING, method_names[DEFAULT_METHOD],
		(unsigned long long)MAX_RATE_PPS, PACE_DEPTH_NS / 1e6, DEFAULT_CATCH_UP);
}

static int parse_mac(const char *s, uint8_t mac[ETH_ALEN])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < ETH_ALEN; i++) {
		const char *h, *l;

		if (!s[0] || !s[1])
			return -1;
		h = strchr(hex, s[0] | 0x20);
		l = strchr(hex, s[1] | 0x20);
		if (!h || !l || !*h || !*l)
			return -1;
		mac[i] = (uint8_t)(((h - hex) << 4) | (l - hex));
		s += 2;
		if (i < ETH_ALEN - 1) {
			if (*s != ':')
				return -1;
			s++;
		}
	}
	return *s ? -1 : 0;
}

static uint32_t parse_bench_ip(const char *opt, const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		usage_error("%s: invalid IPv4 address '%s'", opt, s);
	if ((ntohl(a.s_addr) & BENCH_MASK) != BENCH_NET)
		usage_error("%s %s: refused, outside the benchmarking range 198.18.0.0/15",
			    opt, s);
	return a.s_addr;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "ifname", required_argument, NULL, 'i' },
		{ "dst-mac", required_argument, NULL, 'D' },
		{ "src-mac", required_argument, NULL, 'S' },
		{ "src-ip", required_argument, NULL, 's' },
		{ "dst-ip", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'l' },
		{ "flows", required_argument, NULL, 'f' },
		{ "duration", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 'T' },
		{ "cpus", required_argument, NULL, 'C' },
		{ "batch", required_argument, NULL, 'b' },
		{ "ring", required_argument, NULL, 'r' },
		{ "method", required_argument, NULL, 'm' },
		{ "rate-pps", required_argument, NULL, 'R' },
		{ "catch-up", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .size = DEFAULT_SIZE,
			    .flows = DEFAULT_FLOWS,
			    .duration_s = DEFAULT_DURATION_S,
			    .count = DEFAULT_COUNT,
			    .cpu = -1,
			    .threads = 1,
			    .catch_up = DEFAULT_CATCH_UP,
			    .batch = DEFAULT_BATCH,
			    .ring = DEFAULT_RING,
			    .method = DEFAULT_METHOD };
	while ((c = opt_next(argc, argv, ":i:D:S:s:d:l:f:t:n:c:T:C:b:r:m:R:U:h", longopts,
			     usage)) != -1) {
		switch (c) {
		case 'i':
			o->ifname = optarg;
			break;
		case 'D':
			if (parse_mac(optarg, o->dst_mac))
				usage_error("--dst-mac: invalid MAC '%s' (want aa:bb:cc:dd:ee:ff)",
					    optarg);
			o->have_dst_mac = true;
			break;
		case 'S':
			if (parse_mac(optarg, o->src_mac))
				usage_error("--src-mac: invalid MAC '%s' (want aa:bb:cc:dd:ee:ff)",
					    optarg);
			o->have_src_mac = true;
			break;
		case 's':
			o->src_ip = parse_bench_ip("--src-ip", optarg);
			o->have_src_ip = true;
			break;
		case 'd':
			o->dst_ip = parse_bench_ip("--dst-ip", optarg);
			o->have_dst_ip = true;
			break;
		case 'l':
			if (parse_uint(optarg, MAX_SIZE, &o->size) || o->size < MIN_SIZE)
				usage_error("--size: invalid value '%s' (want %u..%u)", optarg,
					    MIN_SIZE, MAX_SIZE);
			break;
		case 'f':
			if (parse_uint(optarg, MAX_FLOWS, &o->flows) || !o->flows)
				usage_error("--flows: invalid value '%s' (want 1..%u)", optarg,
					    MAX_FLOWS);
			o->have_flows = true;
			break;
		case 't':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		case 'n':
			if (parse_u64(optarg, UINT64_MAX, &o->count))
				usage_error("--count: invalid value '%s' (want a frame count, 0 = unlimited)",
					    optarg);
			break;
		case 'c':
			o->cpu = opt_cpu(optarg);
			break;
		case 'T':
			o->threads = opt_uint("threads", optarg, 1, MAX_THREADS);
			break;
		case 'C':
			opt_cpu_list(optarg, o->cpus, MAX_THREADS, &o->ncpus);
			break;
		case 'b':
			if (parse_uint(optarg, MAX_BATCH, &o->batch) || !o->batch)
				usage_error("--batch: invalid value '%s' (want 1..%u)", optarg,
					    MAX_BATCH);
			break;
		case 'r':
			if (parse_uint(optarg, MAX_RING, &o->ring) || !o->ring)
				usage_error("--ring: invalid value '%s' (want 1..%u)", optarg,
					    MAX_RING);
			break;
		case 'm':
			o->method = opt_enum("method", optarg, method_names,
					     ARRAY_SIZE(method_names));
			break;
		case 'R':
			if (parse_u64(optarg, MAX_RATE_PPS, &o->rate_pps) || !o->rate_pps)
				usage_error("--rate-pps: invalid value '%s' (want 1..%llu frames/s)",
					    optarg, (unsigned long long)MAX_RATE_PPS);
			break;
		case 'U':
			if (parse_double(optarg, &o->catch_up) || o->catch_up < 0 ||
			    o->catch_up > MAX_CATCH_UP)
				usage_error("--catch-up: invalid value '%s' (want 0..%g)", optarg,
					    MAX_CATCH_UP);
			break;
		}
	}
	if (!o->ifname)
		usage_error("--ifname is required");
	if (!o->have_dst_mac)
		usage_error("--dst-mac is required");
	if (!o->have_src_ip)
		usage_error("--src-ip is required");
	if (!o->have_dst_ip)
		usage_error("--dst-ip is required");
	if (o->method == METHOD_MMAP && o->ring < o->batch)
		usage_error("--ring %u: smaller than --batch %u", o->ring, o->batch);
	if (o->cpu >= 0 && o->ncpus)
		usage_error("--cpu and --cpus: give one of them");
	if (!o->have_flows)
		o->flows = o->threads;
	else if (o->flows < o->threads)
		usage_error("--flows %u: fewer than --threads %u (each thread sends its own flows)",
			    o->flows, o->threads);
	if (o->rate_pps && o->rate_pps < o->threads)
		usage_error("--rate-pps %llu: below one frame/s per thread (--threads %u)",
			    (unsigned long long)o->rate_pps, o->threads);
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, unsigned int v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Build one Ethernet/IPv4/UDP frame of wire_len bytes (no FCS) into buf. */
static void build_frame(uint8_t *buf, unsigned int wire_len, const struct opts *o,
			unsigned int sport)
{
	uint8_t *ip = buf + L2_HDR_LEN, *udp = ip + IPV4_HDR_LEN;
	uint16_t csum;

	memset(buf, 0, wire_len);
	memcpy(buf, o->dst_mac, ETH_ALEN);
	memcpy(buf + ETH_ALEN, o->src_mac, ETH_ALEN);
	put16(buf + 2 * ETH_ALEN, ETHERTYPE_IP);

	ip[0] = 0x45;                                   /* v4, IHL 5 */
	put16(ip + 2, wire_len - L2_HDR_LEN);           /* total length */
	put16(ip + 6, 0x4000);                          /* DF */
	ip[8] = IP_TTL_DEFAULT;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, &o->src_ip, 4);
	memcpy(ip + 16, &o->dst_ip, 4);
	csum = ip_checksum(ip, IPV4_HDR_LEN);
	put16(ip + 10, csum);

	put16(udp, sport);
	put16(udp + 2, UDP_DST_PORT);
	put16(udp + 4, wire_len - L2_HDR_LEN - IPV4_HDR_LEN); /* UDP checksum 0 */
}

static void ifreq_ioctl(int fd, unsigned long req, struct ifreq *ifr, const char *ifname,
			const char *what)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
	if (ioctl(fd, req, ifr) < 0) {
		if (errno == ENODEV)
			usage_error("--ifname '%s': no such interface", ifname);
		die("%s: ioctl(%s)", ifname, what);
	}
}

static inline uint32_t slot_status(const volatile struct tpacket2_hdr *h)
{
	return __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

enum bp_kind {
	BP_RETRY,   /* short submission, reason unknown: retry at once */
	BP_NOBUFS,  /* ENOBUFS: driver queue full (veth: peer ring full) */
	BP_WMEM,    /* EAGAIN: socket send buffer full */
};

/* Wait before retrying after back-pressure.
 *  - BP_WMEM: sleep in ppoll(POLLOUT); freeing our skbs wakes us up.
 *  - BP_NOBUFS: nothing will wake us, and sleeping on the socket would make
 *    the consumer pay a wake-up per freed skb, so busy-wait in user space
 *    (touching no shared memory) with exponential backoff, then retry. */
static void bp_wait(int fd, enum bp_kind kind, unsigned int *streak)
{
	if (kind == BP_WMEM) {
		struct timespec ts = { 0, BP_POLL_TIMEOUT_NS };
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };

		if (ppoll(&pfd, 1, &ts, NULL) < 0 && errno != EINTR)
			die("ppoll");
	} else if (kind == BP_NOBUFS) {
		uint64_t wait = BP_BACKOFF_MIN_NS << (*streak < 8 ? *streak : 8);
		uint64_t until;

		if (wait > BP_BACKOFF_MAX_NS)
			wait = BP_BACKOFF_MAX_NS;
		until = mono_ns() + wait;
		while (mono_ns() < until && !stopping())
			cpu_relax();
		++*streak;
	}
}

/* TX ring of one thread (method mmap). */
struct txring {
	unsigned int vnet_len;  /* virtio_net_hdr in front of each frame, or 0 */
	uint8_t *map;
	size_t map_len;
	unsigned int nframes;
	uint8_t **slot;         /* slot[i]: start of frame i (tpacket2_hdr) */
	unsigned int head;      /* next slot to fill */
	unsigned int done;      /* oldest slot not yet reclaimed */
	unsigned int inflight;  /* slots handed to the kernel, not yet reclaimed */
};

/* One sending thread. */
struct run {
	const struct opts *o;
	unsigned int idx;
	int cpu;                /* -1: not pinned by us */
	int fd;
	unsigned int wire_len;
	uint8_t **frames;       /* this thread's flows' frames (wire_len each) */
	unsigned int nflows;
	unsigned int sport0;    /* UDP source port of its first flow */
	uint64_t count;         /* this thread's share of --count, 0 = unlimited */
	double rate_pps;        /* this thread's share of --rate-pps, 0 = unpaced */
	uint64_t deadline;
	const char *reason;
	struct stats st;
	struct pacer pace;
	struct txring ring;
	pthread_t tid;
	/* published for the main thread (__atomic) */
	uint64_t pub_packets, pub_backpressure;
	unsigned int snap_seen;
	int finished;
	uint64_t t_end;
};

static void publish(struct run *r)
{
	__atomic_store_n(&r->pub_packets, r->st.packets, __ATOMIC_RELAXED);
	__atomic_store_n(&r->pub_backpressure, r->st.backpressure, __ATOMIC_RELAXED);
}

static void pace_start(struct run *r, uint64_t t0)
{
	double per_burst;

	if (r->rate_pps <= 0)
		return;
	r->pace.period_ns = (double)NS_PER_SEC / r->rate_pps;
	r->pace.catchup_ns = r->pace.period_ns / (1.0 + r->o->catch_up);
	r->pace.floor = (double)t0;
	r->pace.t0 = t0;
	r->pace.base = 0;
	per_burst = PACE_BURST_NS / r->pace.period_ns;
	r->pace.burst = per_burst < 1.0 ? 1U :
			per_burst > (double)r->o->batch ? r->o->batch : (unsigned int)per_burst;
	r->pace.depth = (uint64_t)(PACE_DEPTH_NS / r->pace.period_ns);
	if (r->pace.depth < 2ULL * r->pace.burst)
		r->pace.depth = 2ULL * r->pace.burst;
}

/* How many of the next `max` frames are due (queued: frames handed to the
 * kernel so far); 0 means wait for pace_wait(). */
static unsigned int pace_allow(struct run *r, uint64_t queued, unsigned int max)
{
	struct pacer *p = &r->pace;
	uint64_t now, due, done;

	if (r->rate_pps <= 0)
		return max;
	now = mono_ns();
	due = now < p->t0 ? 0 : (uint64_t)((double)(now - p->t0) / p->period_ns) + 1;
	done = queued - p->base;
	if (due > done + p->depth) {            /* far behind: restart the schedule */
		r->st.pace_resets++;
		p->t0 = now;
		p->base = queued;
		due = 1;
		done = 0;
	}
	/* one group of `want` frames per deadline: the whole burst, or what
	 * the caller can take (ring room, count left) */
	p->want = max < p->burst ? max : p->burst;
	if (!p->want)
		return 0;
	if (due < done + p->want)
		return 0;
	due -= done;
	if (due > p->want)
		due = p->want;
	/* behind schedule: no faster than the catch-up spacing allows */
	if (p->floor < (double)now - PACE_CREDIT_NS)
		p->floor = (double)now - PACE_CREDIT_NS;
	if ((double)now < p->floor + (double)(p->want - 1) * p->catchup_ns)
		return 0;
	p->floor += (double)due * p->catchup_ns;
	return (unsigned int)due;
}

static inline bool snap_pending(const struct run *r)
{
	return __atomic_load_n(&g_snap_gen, __ATOMIC_ACQUIRE) != r->snap_seen;
}

/* Sleep until the next group (p->want frames, set by pace_allow) is due,
 * and the catch-up spacing allows it (or a stop or snapshot request). */
static void pace_wait(struct run *r, uint64_t queued)
{
	struct pacer *p = &r->pace;
	unsigned int k = p->want ? p->want - 1 : 0;
	uint64_t next = p->t0 + (uint64_t)((double)(queued - p->base + k) * p->period_ns);
	uint64_t now = mono_ns();
	double fl = p->floor + (double)k * p->catchup_ns;

	if ((double)next < fl)
		next = (uint64_t)fl;

	while (next > now + PACE_SPIN_NS && !stopping() && !snap_pending(r)) {
		uint64_t wake = next - PACE_SPIN_NS / 2;
		struct timespec ts;

		if (wake > now + PACE_SLEEP_MAX_NS)
			wake = now + PACE_SLEEP_MAX_NS;
		ts = (struct timespec){ (time_t)(wake / NS_PER_SEC), (long)(wake % NS_PER_SEC) };
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		now = mono_ns();
	}
	while (mono_ns() < next && !stopping() && !snap_pending(r))
		cpu_relax();
}

static void txring_reclaim(struct run *r);

/* Common per-batch checks; returns true when the run must stop. */
static bool loop_check(struct run *r, uint64_t queued)
{
	if (stopping()) {
		r->reason = "signal";
		return true;
	}
	if (snap_pending(r)) {
		unsigned int gen = __atomic_load_n(&g_snap_gen, __ATOMIC_ACQUIRE);

		if (r->ring.map)
			txring_reclaim(r);
		publish(r);
		__atomic_store_n(&r->snap_seen, gen, __ATOMIC_RELEASE);
	}
	if (r->count && queued >= r->count) {
		r->reason = "count";
		return true;
	}
	if (mono_ns() >= r->deadline) {
		r->reason = "duration";
		return true;
	}
	return false;
}

/* ---- method sendmmsg ---------------------------------------------------- */

static void run_sendmmsg(struct run *r)
{
	const struct opts *o = r->o;
	unsigned int B = o->batch, flow = 0, streak = 0, i;
	unsigned int off = 0, n = 0;    /* msgs[off..n) still to be sent */
	struct mmsghdr *msgs = calloc(B, sizeof(*msgs));
	struct iovec *iov = calloc(B, sizeof(*iov));

	if (!msgs || !iov)
		die("calloc");
	for (i = 0; i < B; i++) {
		iov[i].iov_len = r->wire_len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	while (!loop_check(r, r->st.packets)) {
		enum bp_kind kind;
		int ret;

		if (off == n) {
			n = B;
			if (r->count && r->count - r->st.packets < n)
				n = (unsigned int)(r->count - r->st.packets);
			n = pace_allow(r, r->st.packets, n);
			if (!n) {
				off = 0;        /* nothing pending: fill a new batch next */
				pace_wait(r, r->st.packets);
				continue;
			}
			for (i = 0; i < n; i++) {
				iov[i].iov_base = r->frames[flow];
				if (++flow == r->nflows)
					flow = 0;
			}
			off = 0;
		}
		/* A short or failed submission keeps the rest of the batch
		 * (the flow sequence stays intact) for the next attempt. */
		ret = sendmmsg(r->fd, msgs + off, n - off, MSG_DONTWAIT);
		if (ret > 0) {
			r->st.packets += (unsigned int)ret;
			off += (unsigned int)ret;
			if (off == n) {
				streak = 0;
				continue;
			}
			kind = BP_RETRY; /* the next call reports why */
		} else if (ret < 0 && errno == EINTR) {
			continue;
		} else if (ret < 0 && errno == ENOBUFS) {
			kind = BP_NOBUFS;
		} else if (ret < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			kind = BP_WMEM;
		} else {
			die("%s: sendmmsg", o->ifname);
		}
		r->st.backpressure++;
		bp_wait(r->fd, kind, &streak);
	}
	free(msgs);
	free(iov);
}

/* ---- method mmap (PACKET_TX_RING, TPACKET_V2) --------------------------- */

static void txring_setup(struct run *r)
{
	struct txring *ring = &r->ring;
	unsigned int frame_size, fpb, blocks, block_size;
	struct tpacket_req req;
	int ver = TPACKET_V2, one = 1;
	unsigned int i;

	/* With a virtio_net_hdr whose hdr_len covers the whole frame, the
	 * kernel copies the frame into a linear skb.  Without it, it attaches
	 * the ring pages as zero-copy frags, which veth (like any forwarding
	 * path) must then copy into freshly allocated pages: slower. */
	if (!setsockopt(r->fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)))
		ring->vnet_len = sizeof(struct virtio_net_hdr);
	frame_size = (unsigned int)(TX_DATA_OFF + ring->vnet_len + r->wire_len + 63U) & ~63U;
	/* Blocks: a power of two >= one page, no bigger than needed. */
	block_size = (unsigned int)sysconf(_SC_PAGESIZE);
	while (block_size < RING_MAX_BLOCK_SIZE &&
	       (block_size < frame_size ||
		(size_t)block_size < (size_t)r->o->ring * frame_size))
		block_size <<= 1;
	fpb = block_size / frame_size;
	blocks = (r->o->ring + fpb - 1) / fpb;
	if ((size_t)blocks * block_size > RING_MAX_BYTES)
		usage_error("--ring %u: TX ring of %zu MiB is too large (max %u MiB)",
			    r->o->ring, ((size_t)blocks * block_size) >> 20,
			    RING_MAX_BYTES >> 20);

	if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof(ver)))
		die("setsockopt(PACKET_VERSION, TPACKET_V2)");
	req = (struct tpacket_req){ .tp_block_size = block_size,
				    .tp_block_nr = blocks,
				    .tp_frame_size = frame_size,
				    .tp_frame_nr = fpb * blocks };
	if (setsockopt(r->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof(req)))
		die("setsockopt(PACKET_TX_RING, %u x %u B)", req.tp_frame_nr, frame_size);
	ring->nframes = req.tp_frame_nr;
	ring->map_len = (size_t)blocks * block_size;
	ring->map = mmap(NULL, ring->map_len, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_POPULATE, r->fd, 0);
	if (ring->map == MAP_FAILED)
		die("mmap(PACKET_TX_RING, %zu B)", ring->map_len);
	ring->slot = calloc(ring->nframes, sizeof(*ring->slot));
	if (!ring->slot)
		die("calloc");
	/* Pre-fill every slot once; the kernel never writes frame data, so
	 * per packet only tp_len, the UDP source port and tp_status change. */
	for (i = 0; i < ring->nframes; i++) {
		struct tpacket2_hdr *h;

		ring->slot[i] = ring->map + (size_t)(i / fpb) * block_size +
				(size_t)(i % fpb) * frame_size;
		h = (struct tpacket2_hdr *)ring->slot[i];
		if (ring->vnet_len) {
			struct virtio_net_hdr vh = {
				.flags = 0,
				.gso_type = VIRTIO_NET_HDR_GSO_NONE,
				.hdr_len = htole16((uint16_t)r->wire_len),
			};

			memcpy(ring->slot[i] + TX_DATA_OFF, &vh, sizeof(vh));
		}
		memcpy(ring->slot[i] + TX_DATA_OFF + ring->vnet_len, r->frames[0], r->wire_len);
		h->tp_len = ring->vnet_len + r->wire_len;
		h->tp_snaplen = h->tp_len;
	}
}

/* Count slots the kernel has finished with (SENDING -> AVAILABLE), in ring
 * order.  Their status is written by whichever CPU frees the skb, so this is
 * done lazily, only when room or an up-to-date count is needed. */
static void txring_reclaim(struct run *r)
{
	struct txring *ring = &r->ring;

	while (ring->inflight) {
		uint32_t s = slot_status((struct tpacket2_hdr *)ring->slot[ring->done]);

		if (s & TP_STATUS_WRONG_FORMAT)
			die_err(EINVAL, "%s: kernel rejected a TX ring frame", r->o->ifname);
		if (s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING))
			break;
		r->st.packets++;
		ring->inflight--;
		if (++ring->done == ring->nframes)
			ring->done = 0;
	}
}

/* Ask the kernel to send every SEND_REQUEST slot.  Returns true if it
 * stopped early (back-pressure), with *kind saying why. */
static bool txring_kick(struct run *r, enum bp_kind *kind)
{
	struct txring *ring = &r->ring;
	unsigned int last = ring->head ? ring->head - 1 : ring->nframes - 1;
	ssize_t ret = sendto(r->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
	int err = errno;

	if (ret < 0 && err != EINTR && err != ENOBUFS && err != EAGAIN && err != EWOULDBLOCK)
		die("%s: sendto(PACKET_TX_RING)", r->o->ifname);
	/* The kernel takes slots strictly in order: if the newest one is still
	 * SEND_REQUEST, it stopped early.  A failed frame (ENOBUFS) is put
	 * back to SEND_REQUEST by the kernel and retried on the next kick.
	 * Only sock_alloc_send_skb failures (send buffer full) return a
	 * partial byte count or EAGAIN. */
	if (!(slot_status((struct tpacket2_hdr *)ring->slot[last]) & TP_STATUS_SEND_REQUEST))
		return false;
	if (ret < 0 && err == EINTR)
		*kind = BP_RETRY;
	else
		*kind = ret < 0 && err == ENOBUFS ? BP_NOBUFS : BP_WMEM;
	return true;
}

static void run_mmap(struct run *r)
{
	const struct opts *o = r->o;
	struct txring *ring = &r->ring;
	const unsigned int N = ring->nframes;
	unsigned int flow = 0, streak = 0;
	uint64_t queued = 0;    /* frames handed to the ring (SEND_REQUEST) */
	bool pending = false;   /* SEND_REQUEST slots the kernel has not taken */
	enum bp_kind kind;
	uint64_t drain_end;

	for (;;) {
		unsigned int n, i;

		if (loop_check(r, queued))
			break;
		if (N - ring->inflight < o->batch)
			txring_reclaim(r);

		n = N - ring->inflight;
		if (n > o->batch)
			n = o->batch;
		if (r->count && r->count - queued < n)
			n = (unsigned int)(r->count - queued);
		if (n && r->rate_pps > 0) {
			n = pace_allow(r, queued, n);
			if (!n && !pending) {
				pace_wait(r, queued);
				continue;
			}
		}
		for (i = 0; i < n; i++) {
			struct tpacket2_hdr *h = (struct tpacket2_hdr *)ring->slot[ring->head];

			if (r->nflows > 1) {
				memcpy(ring->slot[ring->head] + TX_DATA_OFF + ring->vnet_len +
				       UDP_SPORT_OFF, r->frames[flow] + UDP_SPORT_OFF, 2);
				if (++flow == r->nflows)
					flow = 0;
			}
			__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
			if (++ring->head == N)
				ring->head = 0;
		}
		ring->inflight += n;
		queued += n;

		if (n || pending) {
			pending = txring_kick(r, &kind);
			if (pending) {
				if (kind != BP_RETRY)
					r->st.backpressure++;
				bp_wait(r->fd, kind, &streak);
			} else {
				streak = 0;
			}
		} else {
			/* Ring full of frames the driver still holds. */
			cpu_relax();
		}
	}

	/* Bounded drain.  --count: every queued frame must go out.  Otherwise
	 * submit nothing more; frames the kernel already took may complete,
	 * frames it has not taken are neither sent nor counted. */
	drain_end = mono_ns() + DRAIN_TIMEOUT_NS;
	for (;;) {
		txring_reclaim(r);
		if (!ring->inflight || mono_ns() >= drain_end)
			break;
		if (pending && !strcmp(r->reason, "count")) {
			pending = txring_kick(r, &kind);
			if (pending) {
				if (kind != BP_RETRY)
					r->st.backpressure++;
				bp_wait(r->fd, kind, &streak);
			}
		} else if (slot_status((struct tpacket2_hdr *)ring->slot[ring->done]) &
			   TP_STATUS_SEND_REQUEST) {
			break; /* oldest slot never taken: nothing more will complete */
		} else {
			cpu_relax();
		}
	}
	if (ring->inflight && !strcmp(r->reason, "count"))
		warn_err(0, "%s: thread %u: %u frame(s) not sent within the drain timeout",
			 o->ifname, r->idx, ring->inflight);
}

/* ---- threads ------------------------------------------------------------ */

static void *sender_main(void *arg)
{
	struct run *r = arg;

	/* wake-ups on time (the default slack is 50 us) */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	if (r->cpu >= 0)
		pin_cpu(r->cpu);
	if (r->o->method == METHOD_MMAP)
		run_mmap(r);
	else
		run_sendmmsg(r);
	publish(r);
	__atomic_store_n(&r->t_end, mono_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&r->finished, 1, __ATOMIC_RELEASE);
	pthread_kill(g_main, SIGUSR2);     /* wake the main thread's signal wait */
	return NULL;
}

/* One AF_PACKET socket bound to the interface, qdisc bypassed; returns
 * the send buffer size the kernel granted. */
static int sock_setup(struct run *r, int ifindex)
{
	struct sockaddr_ll sll;
	int one = 1, sndbuf = SNDBUF_BYTES;
	socklen_t optlen = sizeof(sndbuf);

	/* Protocol 0: transmit only, the socket is never hooked into RX. */
	r->fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (r->fd < 0)
		die("socket(AF_PACKET, SOCK_RAW)");
	if (setsockopt(r->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		die("setsockopt(PACKET_QDISC_BYPASS)");
	/* Optional: more frames in flight before EAGAIN.  SO_SNDBUFFORCE
	 * (CAP_NET_ADMIN) ignores net.core.wmem_max; SO_SNDBUF is capped by it.
	 * Neither is required: a full send buffer is just back-pressure. */
	if (setsockopt(r->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		(void)setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (getsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen))
		die("getsockopt(SO_SNDBUF)");
	if (r->o->method == METHOD_MMAP)
		txring_setup(r);
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifindex;
	sll.sll_protocol = 0;
	if (bind(r->fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("%s: bind(AF_PACKET)", r->o->ifname);
	return sndbuf;
}

/* ,"threads":[{...},...] (only with more than one thread). */
static void print_threads(struct run *runs, unsigned int T, bool final)
{
	unsigned int i;

	if (T < 2)
		return;
	json_printf(",\"threads\":[");
	for (i = 0; i < T; i++) {
		const struct run *r = &runs[i];

		json_printf("%s{\"thread\":%u,\"cpu\":%d,\"sport\":%u,\"flows\":%u,"
			    "\"packets\":%" PRIu64 ",\"backpressure\":%" PRIu64,
			    i ? "," : "", i, r->cpu, r->sport0, r->nflows,
			    __atomic_load_n(&r->pub_packets, __ATOMIC_RELAXED),
			    __atomic_load_n(&r->pub_backpressure, __ATOMIC_RELAXED));
		if (final)
			json_printf(",\"pace_resets\":%" PRIu64 ",\"reason\":\"%s\"",
				    r->st.pace_resets, r->reason);
		json_printf("}");
	}
	json_printf("]");
}

static uint64_t sum_pub(struct run *runs, unsigned int T, uint64_t *bp)
{
	uint64_t p = 0;
	unsigned int i;

	*bp = 0;
	for (i = 0; i < T; i++) {
		p += __atomic_load_n(&runs[i].pub_packets, __ATOMIC_RELAXED);
		*bp += __atomic_load_n(&runs[i].pub_backpressure, __ATOMIC_RELAXED);
	}
	return p;
}

/* SIGUSR1: ask every thread for its count (bounded wait), print the sum. */
static void snapshot(struct run *runs, unsigned int T, unsigned int wire_len)
{
	unsigned int gen = __atomic_add_fetch(&g_snap_gen, 1, __ATOMIC_ACQ_REL), i;
	uint64_t until = mono_ns() + SNAP_ACK_TIMEOUT_NS, packets, bp;

	for (i = 0; i < T; i++) {
		while (!__atomic_load_n(&runs[i].finished, __ATOMIC_ACQUIRE) &&
		       __atomic_load_n(&runs[i].snap_seen, __ATOMIC_ACQUIRE) != gen &&
		       mono_ns() < until) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
		}
	}
	packets = sum_pub(runs, T, &bp);
	json_printf("{\"event\":\"snapshot\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"backpressure\":%" PRIu64,
		    mono_ns(), packets, packets * wire_len, bp);
	print_threads(runs, T, false);
	json_printf("}");
	json_end();
}

static bool all_finished(struct run *runs, unsigned int T)
{
	unsigned int i;

	for (i = 0; i < T; i++)
		if (!__atomic_load_n(&runs[i].finished, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

/* What the main thread watches while the senders run. */
struct watch {
	struct run *runs;
	unsigned int T, wire_len;
};

static void watch_snapshot(void *arg)
{
	struct watch *w = arg;

	snapshot(w->runs, w->T, w->wire_len);
}

/* SIGUSR2: a sender finished; the run ends once all have. */
static const char *watch_wake(void *arg)
{
	struct watch *w = arg;

	return all_finished(w->runs, w->T) ? "finished" : NULL;
}

int main(int argc, char **argv)
{
	struct ifreq ifr;
	struct opts o;
	struct run *runs;
	uint8_t **frames;
	sigset_t sigs;
	uint64_t t0, t1, packets, bp, resets = 0, deadline;
	unsigned int i, j, mtu, T, wire_len;
	int ifindex, fd, sndbuf = 0;
	const char *reason = NULL;
	struct watch watch;
	bool signalled = false, all_count = true;
	double elapsed;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);
	T = o.threads;

	ifindex = opt_ifindex(o.ifname);
	{
		char dev[16];

		/* never on an interface that carries the default route */
		if (default_route_dev(o.ifname, dev) > 0)
			usage_error("--ifname %s: refused, it carries the default route", o.ifname);
	}

	pin_cpu(o.cpu);
	/* Signals blocked in every thread (they inherit the mask); the main
	 * thread takes them with sigtimedwait.  SIGUSR2: a sender finished. */
	block_signals(&sigs, SIGUSR2);
	g_main = pthread_self();

	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		die("socket(AF_PACKET, SOCK_RAW)");
	ifreq_ioctl(fd, SIOCGIFMTU, &ifr, o.ifname, "SIOCGIFMTU");
	mtu = (unsigned int)ifr.ifr_mtu;
	if (o.size > mtu + ETH_OVERHEAD)
		usage_error("--size %u: larger than %s MTU %u + %u = %u", o.size, o.ifname,
			    mtu, ETH_OVERHEAD, mtu + ETH_OVERHEAD);
	ifreq_ioctl(fd, SIOCGIFHWADDR, &ifr, o.ifname, "SIOCGIFHWADDR");
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		usage_error("--ifname '%s': not an Ethernet interface", o.ifname);
	if (!o.have_src_mac)
		memcpy(o.src_mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	close(fd);

	wire_len = o.size - FCS_LEN;
	frames = calloc(o.flows, sizeof(*frames));
	runs = calloc(T, sizeof(*runs));
	if (!frames || !runs)
		die("calloc");
	for (i = 0; i < o.flows; i++) {
		frames[i] = malloc(wire_len);
		if (!frames[i])
			die("malloc");
		build_frame(frames[i], wire_len, &o, UDP_SRC_PORT_BASE + i);
	}

	/* Thread i: flows i, i+T, ...; its share of rate and count. */
	for (i = 0; i < T; i++) {
		struct run *r = &runs[i];

		r->o = &o;
		r->idx = i;
		r->cpu = o.ncpus ? o.cpus[i % o.ncpus] : o.cpu;
		r->wire_len = wire_len;
		r->nflows = (o.flows - i + T - 1) / T;
		r->frames = calloc(r->nflows, sizeof(*r->frames));
		if (!r->frames)
			die("calloc");
		for (j = 0; j < r->nflows; j++)
			r->frames[j] = frames[i + j * T];
		r->sport0 = UDP_SRC_PORT_BASE + i;
		r->rate_pps = (double)o.rate_pps / (double)T;
		r->count = o.count ? o.count / T + (i < o.count % T) : 0;
		if (o.count && !r->count)
			r->count = UINT64_MAX;  /* a thread with nothing to send */
		r->reason = "duration";
		sndbuf = sock_setup(r, ifindex);
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o.duration_s * (double)NS_PER_SEC);
	for (i = 0; i < T; i++) {
		runs[i].deadline = deadline;
		pace_start(&runs[i], t0);
	}
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"ifname\":", TOOL_NAME);
	json_str(o.ifname);
	json_printf(",\"size\":%u,\"wire_bytes\":%u,\"flows\":%u,\"method\":\"%s\","
		    "\"batch\":%u,\"sndbuf\":%d,\"rate_pps\":%" PRIu64,
		    o.size, wire_len, o.flows, method_names[o.method], o.batch, sndbuf,
		    o.rate_pps);
	if (o.method == METHOD_MMAP)
		json_printf(",\"ring\":%u", runs[0].ring.nframes);
	if (T > 1) {
		json_printf(",\"threads\":%u,\"cpus\":[", T);
		for (i = 0; i < T; i++)
			json_printf("%s%d", i ? "," : "", runs[i].cpu);
		json_printf("]");
	}
	json_printf(",\"t_ns\":%" PRIu64 "}", t0);
	json_end();

	for (i = 0; i < T; i++) {
		int err;

		if (runs[i].count == UINT64_MAX) {  /* --count below --threads */
			runs[i].count = 0;
			runs[i].reason = "count";
			runs[i].finished = 1;
			continue;
		}
		err = pthread_create(&runs[i].tid, NULL, sender_main, &runs[i]);
		if (err)
			die_err(err, "pthread_create (thread %u)", i);
	}

	/* The senders stop by themselves at the deadline (the wait ends
	 * DRAIN_TIMEOUT_NS later regardless); a stop signal stops them now. */
	watch = (struct watch){ .runs = runs, .T = T, .wire_len = wire_len };
	if (!all_finished(runs, T)) {
		reason = run_until_signal(&sigs, deadline + DRAIN_TIMEOUT_NS, watch_snapshot,
					  watch_wake, &watch);
		if (!strcmp(reason, "error"))
			exit(RXB_EXIT_FAIL); /* sigtimedwait failed: said on stderr */
		if (!strcmp(reason, "signal")) {
			signalled = true;
			__atomic_store_n(&g_stop, 1, __ATOMIC_RELAXED);
		}
	}
	t1 = 0;
	for (i = 0; i < T; i++) {
		if (runs[i].tid)
			pthread_join(runs[i].tid, NULL);
		if (runs[i].t_end > t1)
			t1 = runs[i].t_end;
		resets += runs[i].st.pace_resets;
		if (strcmp(runs[i].reason, "count"))
			all_count = false;
	}
	if (!t1)
		t1 = mono_ns();
	reason = signalled ? "signal" : all_count ? "count" : "duration";

	packets = sum_pub(runs, T, &bp);
	elapsed = (double)(t1 - t0) / (double)NS_PER_SEC;
	json_printf("{\"event\":\"final\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"backpressure\":%" PRIu64
		    ",\"pace_resets\":%" PRIu64 ",\"elapsed_s\":%.6f,\"pps\":%.1f,\"reason\":\"%s\"",
		    t1, packets, packets * wire_len, bp, resets, elapsed,
		    elapsed > 0 ? (double)packets / elapsed : 0.0, reason);
	print_threads(runs, T, true);
	json_printf("}");
	json_end();

	for (i = 0; i < T; i++) {
		if (runs[i].ring.map)
			munmap(runs[i].ring.map, runs[i].ring.map_len);
		free(runs[i].ring.slot);
		close(runs[i].fd);
		free(runs[i].frames);
	}
	for (i = 0; i < o.flows; i++)
		free(frames[i]);
	free(frames);
	free(runs);
	return RXB_EXIT_OK;
}
