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
 * bursts of at most PACE_BURST_NS worth of frames (and --batch), sleeping
 * (clock_nanosleep, then a short spin) until the next one is due.  A sender
 * that fell behind (a late wake-up, back-pressure, preemption) catches up
 * burst by burst, up to PACE_DEPTH_NS behind; further behind, the schedule
 * restarts from now, counted as pace_resets (the rate is then below target).  Without --rate-pps it sends as fast as it can.
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
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
#define PACE_SPIN_NS         20000ULL   /* sleep until this close, then spin */
#define PACE_DEPTH_NS        20000000.0 /* catch up at most 20 ms behind schedule */

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
	unsigned int batch;
	unsigned int ring;       /* TX ring slots (method mmap) */
	enum method method;
	uint64_t rate_pps;       /* 0: as fast as possible */
};

struct stats {
	uint64_t packets;       /* accepted by the kernel */
	uint64_t backpressure;  /* EAGAIN/ENOBUFS/short submissions */
	uint64_t pace_resets;   /* schedule restarted after falling behind */
};

struct pacer {
	double period_ns;       /* 1e9 / rate */
	uint64_t t0;            /* when frame `base` was due */
	uint64_t base;          /* frames queued before t0 */
	unsigned int burst;     /* most frames per burst */
	uint64_t depth;         /* most frames behind schedule it catches up */
};

static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t snap_req;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		snap_req = 1;
	else
		stop_sig = sig;
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
		"  -f, --flows K         UDP source ports %u..%u+K-1, dst port %u (default: %u)\n"
		"  -t, --duration S      stop after S seconds, > 0 (default: %g)\n"
		"  -n, --count N         stop after N frames accepted, 0 = unlimited (default: %llu)\n"
		"  -c, --cpu N           pin to CPU N (default: no pinning)\n"
		"  -b, --batch B         frames per kernel submission, 1..%u (default: %u)\n"
		"  -r, --ring R          TX ring slots for mmap, >= batch, <= %u; also the\n"
		"                        most frames in flight (default: %u)\n"
		"  -m, --method M        mmap (PACKET_TX_RING) | sendmmsg (default: %s)\n"
		"  -R, --rate-pps R      pace to R frames/s, 1..%llu (default: 0, as fast as\n"
		"                        possible)\n"
		"  -h, --help            show this help\n"
		"\n"
		"Output: JSON lines (ready, snapshot on SIGUSR1, final) on stdout.\n"
		"SIGINT/SIGTERM/SIGHUP stop early (final line, exit 0).\n"
		"Exit: 0 ok, 1 runtime failure, 2 bad arguments/interface.\n",
		TOOL_NAME, MIN_SIZE, MAX_SIZE, ETH_OVERHEAD, DEFAULT_SIZE,
		UDP_SRC_PORT_BASE, UDP_SRC_PORT_BASE, UDP_DST_PORT, DEFAULT_FLOWS,
		DEFAULT_DURATION_S, (unsigned long long)DEFAULT_COUNT, MAX_BATCH,
		DEFAULT_BATCH, MAX_RING, DEFAULT_RING, method_names[DEFAULT_METHOD],
		(unsigned long long)MAX_RATE_PPS);
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
		{ "batch", required_argument, NULL, 'b' },
		{ "ring", required_argument, NULL, 'r' },
		{ "method", required_argument, NULL, 'm' },
		{ "rate-pps", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .size = DEFAULT_SIZE,
			    .flows = DEFAULT_FLOWS,
			    .duration_s = DEFAULT_DURATION_S,
			    .count = DEFAULT_COUNT,
			    .cpu = -1,
			    .batch = DEFAULT_BATCH,
			    .ring = DEFAULT_RING,
			    .method = DEFAULT_METHOD };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:D:S:s:d:l:f:t:n:c:b:r:m:R:h", longopts,
				NULL)) != -1) {
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
		case 'h':
			usage(stdout);
			exit(RXB_EXIT_OK);
		default:
			getopt_fail(c, argv);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
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

static void print_snapshot(const struct stats *st, unsigned int wire_len)
{
	json_printf("{\"event\":\"snapshot\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"backpressure\":%" PRIu64 "}",
		    mono_ns(), st->packets, st->packets * wire_len, st->backpressure);
	json_end();
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
 *    (touching no shared memory) with exponential backoff, then retry.
 * Signals interrupt ppoll (no SA_RESTART); callers recheck their flags. */
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
		while (mono_ns() < until && !stop_sig)
			cpu_relax();
		++*streak;
	}
}

struct run {
	const struct opts *o;
	int fd;
	unsigned int wire_len;
	uint8_t **frames;       /* flows precomputed frames (wire_len each) */
	uint64_t deadline;
	const char *reason;
	struct stats st;
	struct pacer pace;
};

static void pace_start(struct run *r, uint64_t t0)
{
	double per_burst;

	if (!r->o->rate_pps)
		return;
	r->pace.period_ns = (double)NS_PER_SEC / (double)r->o->rate_pps;
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

	if (!r->o->rate_pps)
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
	if (due <= done)
		return 0;
	due -= done;
	if (due > p->burst)
		due = p->burst;
	return due < max ? (unsigned int)due : max;
}

/* Sleep until the next frame is due (or a signal arrives). */
static void pace_wait(struct run *r, uint64_t queued)
{
	struct pacer *p = &r->pace;
	uint64_t next = p->t0 + (uint64_t)((double)(queued - p->base) * p->period_ns);
	uint64_t now = mono_ns();

	if (next > now + PACE_SPIN_NS) {
		uint64_t wake = next - PACE_SPIN_NS / 2;
		struct timespec ts = { (time_t)(wake / NS_PER_SEC), (long)(wake % NS_PER_SEC) };

		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	while (mono_ns() < next && !stop_sig && !snap_req)
		cpu_relax();
}

/* Common per-batch checks; returns true when the run must stop. */
static bool loop_check(struct run *r, uint64_t queued)
{
	if (stop_sig) {
		r->reason = "signal";
		return true;
	}
	if (snap_req) {
		snap_req = 0;
		print_snapshot(&r->st, r->wire_len);
	}
	if (r->o->count && queued >= r->o->count) {
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
			if (o->count && o->count - r->st.packets < n)
				n = (unsigned int)(o->count - r->st.packets);
			n = pace_allow(r, r->st.packets, n);
			if (!n) {
				off = 0;        /* nothing pending: fill a new batch next */
				pace_wait(r, r->st.packets);
				continue;
			}
			for (i = 0; i < n; i++) {
				iov[i].iov_base = r->frames[flow];
				if (++flow == o->flows)
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

struct txring {
	unsigned int vnet_len;  /* virtio_net_hdr in front of each frame, or 0 */
	uint8_t *map;
	size_t map_len;
	unsigned int nframes;
	uint8_t **slot;         /* slot[i]: start of frame i (tpacket2_hdr) */
};

static void txring_setup(struct run *r, struct txring *ring)
{
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
static void txring_reclaim(struct run *r, struct txring *ring, unsigned int *done,
			   unsigned int *inflight)
{
	while (*inflight) {
		uint32_t s = slot_status((struct tpacket2_hdr *)ring->slot[*done]);

		if (s & TP_STATUS_WRONG_FORMAT)
			die_err(EINVAL, "%s: kernel rejected a TX ring frame", r->o->ifname);
		if (s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING))
			break;
		r->st.packets++;
		--*inflight;
		if (++*done == ring->nframes)
			*done = 0;
	}
}

/* Ask the kernel to send every SEND_REQUEST slot.  Returns true if it
 * stopped early (back-pressure), with *kind saying why. */
static bool txring_kick(struct run *r, struct txring *ring, unsigned int head,
			enum bp_kind *kind)
{
	unsigned int last = head ? head - 1 : ring->nframes - 1;
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

static void run_mmap(struct run *r, struct txring *ring)
{
	const struct opts *o = r->o;
	const unsigned int N = ring->nframes;
	unsigned int head = 0;  /* next slot to fill */
	unsigned int done = 0;  /* oldest slot not yet reclaimed */
	unsigned int inflight = 0, flow = 0, streak = 0;
	uint64_t queued = 0;    /* frames handed to the ring (SEND_REQUEST) */
	bool pending = false;   /* SEND_REQUEST slots the kernel has not taken */
	enum bp_kind kind;
	uint64_t drain_end;

	for (;;) {
		unsigned int n, i;

		if (snap_req)
			txring_reclaim(r, ring, &done, &inflight);
		if (loop_check(r, queued))
			break;
		if (N - inflight < o->batch)
			txring_reclaim(r, ring, &done, &inflight);

		n = N - inflight;
		if (n > o->batch)
			n = o->batch;
		if (o->count && o->count - queued < n)
			n = (unsigned int)(o->count - queued);
		if (n && o->rate_pps) {
			n = pace_allow(r, queued, n);
			if (!n && !pending) {
				pace_wait(r, queued);
				continue;
			}
		}
		for (i = 0; i < n; i++) {
			struct tpacket2_hdr *h = (struct tpacket2_hdr *)ring->slot[head];

			if (o->flows > 1) {
				memcpy(ring->slot[head] + TX_DATA_OFF + ring->vnet_len + UDP_SPORT_OFF,
				       r->frames[flow] + UDP_SPORT_OFF, 2);
				if (++flow == o->flows)
					flow = 0;
			}
			__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
			if (++head == N)
				head = 0;
		}
		inflight += n;
		queued += n;

		if (n || pending) {
			pending = txring_kick(r, ring, head, &kind);
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
		txring_reclaim(r, ring, &done, &inflight);
		if (!inflight || mono_ns() >= drain_end)
			break;
		if (pending && !strcmp(r->reason, "count")) {
			pending = txring_kick(r, ring, head, &kind);
			if (pending) {
				if (kind != BP_RETRY)
					r->st.backpressure++;
				bp_wait(r->fd, kind, &streak);
			}
		} else if (slot_status((struct tpacket2_hdr *)ring->slot[done]) &
			   TP_STATUS_SEND_REQUEST) {
			break; /* oldest slot never taken: nothing more will complete */
		} else {
			cpu_relax();
		}
	}
	if (inflight && !strcmp(r->reason, "count"))
		warn_err(0, "%s: %u frame(s) not sent within the drain timeout", o->ifname,
			 inflight);
}

/* ------------------------------------------------------------------------- */

static void setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: let ppoll return EINTR */
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
	    sigaction(SIGHUP, &sa, NULL) || sigaction(SIGUSR1, &sa, NULL))
		die("sigaction");
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	struct txring ring = { 0 };
	struct sockaddr_ll sll;
	struct ifreq ifr;
	struct opts o;
	struct run r;
	uint64_t t0, t1;
	unsigned int i, mtu;
	int ifindex, one = 1, sndbuf = SNDBUF_BYTES;
	socklen_t optlen = sizeof(sndbuf);
	double elapsed;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);
	setup_signals();

	ifindex = opt_ifindex(o.ifname);
	{
		char dev[16];

		/* never on an interface that carries the default route */
		if (default_route_dev(o.ifname, dev) > 0)
			usage_error("--ifname %s: refused, it carries the default route", o.ifname);
	}

	pin_cpu(o.cpu);

	/* Protocol 0: transmit only, the socket is never hooked into RX. */
	memset(&r, 0, sizeof(r));
	r.o = &o;
	r.fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (r.fd < 0)
		die("socket(AF_PACKET, SOCK_RAW)");

	ifreq_ioctl(r.fd, SIOCGIFMTU, &ifr, o.ifname, "SIOCGIFMTU");
	mtu = (unsigned int)ifr.ifr_mtu;
	if (o.size > mtu + ETH_OVERHEAD)
		usage_error("--size %u: larger than %s MTU %u + %u = %u", o.size, o.ifname,
			    mtu, ETH_OVERHEAD, mtu + ETH_OVERHEAD);
	ifreq_ioctl(r.fd, SIOCGIFHWADDR, &ifr, o.ifname, "SIOCGIFHWADDR");
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		usage_error("--ifname '%s': not an Ethernet interface", o.ifname);
	if (!o.have_src_mac)
		memcpy(o.src_mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);

	r.wire_len = o.size - FCS_LEN;
	r.frames = calloc(o.flows, sizeof(*r.frames));
	if (!r.frames)
		die("calloc");
	for (i = 0; i < o.flows; i++) {
		r.frames[i] = malloc(r.wire_len);
		if (!r.frames[i])
			die("malloc");
		build_frame(r.frames[i], r.wire_len, &o, UDP_SRC_PORT_BASE + i);
	}

	if (setsockopt(r.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		die("setsockopt(PACKET_QDISC_BYPASS)");
	/* Optional: more frames in flight before EAGAIN.  SO_SNDBUFFORCE
	 * (CAP_NET_ADMIN) ignores net.core.wmem_max; SO_SNDBUF is capped by it.
	 * Neither is required: a full send buffer is just back-pressure. */
	if (setsockopt(r.fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)))
		(void)setsockopt(r.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (getsockopt(r.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen))
		die("getsockopt(SO_SNDBUF)");

	if (o.method == METHOD_MMAP)
		txring_setup(&r, &ring);

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifindex;
	sll.sll_protocol = 0;
	if (bind(r.fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("%s: bind(AF_PACKET)", o.ifname);

	t0 = mono_ns();
	r.deadline = t0 + (uint64_t)(o.duration_s * (double)NS_PER_SEC);
	pace_start(&r, t0);
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"ifname\":", TOOL_NAME);
	json_str(o.ifname);
	json_printf(",\"size\":%u,\"wire_bytes\":%u,\"flows\":%u,\"method\":\"%s\","
		    "\"batch\":%u,\"sndbuf\":%d,\"rate_pps\":%" PRIu64,
		    o.size, r.wire_len, o.flows, method_names[o.method], o.batch, sndbuf,
		    o.rate_pps);
	if (o.method == METHOD_MMAP)
		json_printf(",\"ring\":%u", ring.nframes);
	json_printf(",\"t_ns\":%" PRIu64 "}", t0);
	json_end();

	if (o.method == METHOD_MMAP)
		run_mmap(&r, &ring);
	else
		run_sendmmsg(&r);

	t1 = mono_ns();
	elapsed = (double)(t1 - t0) / (double)NS_PER_SEC;
	json_printf("{\"event\":\"final\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"backpressure\":%" PRIu64
		    ",\"pace_resets\":%" PRIu64 ",\"elapsed_s\":%.6f,\"pps\":%.1f,\"reason\":\"%s\"}",
		    t1, r.st.packets, r.st.packets * r.wire_len, r.st.backpressure,
		    r.st.pace_resets, elapsed,
		    elapsed > 0 ? (double)r.st.packets / elapsed : 0.0, r.reason);
	json_end();

	if (ring.map)
		munmap(ring.map, ring.map_len);
	free(ring.slot);
	close(r.fd);
	for (i = 0; i < o.flows; i++)
		free(r.frames[i]);
	free(r.frames);
	return RXB_EXIT_OK;
}
