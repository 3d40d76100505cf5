// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-pktgen: Linux's in-kernel packet generator (the pktgen module, the
 * seed's VM generator) behind the JSON-lines protocol of the other tools.
 *
 * It loads the module if needed (modprobe pktgen), gives IF to the pktgen
 * kthread of --cpu (kpktgend_<cpu>: rem_device_all, add_device IF@0), sets
 * count, pkt_size (the frame without its 4-byte FCS), dst, dst_mac, burst,
 * clone_skb and ratep, starts it (a thread writes "start" to pgctrl, which
 * blocks until the run ends) and is bounded by --count and --duration:
 * at the deadline or on SIGINT/SIGTERM/SIGHUP it writes "stop".
 *
 * One thread per queue (--threads T --cpus LIST): device IF@i goes to the
 * kthread of LIST[i % n], sends on TX queue i (queue_map_min/max i) and
 * cycles through FLOWS_PER_THREAD UDP source ports of its own (1024 +
 * i * FLOWS_PER_THREAD ...), so the receiver's RSS hash spreads the
 * threads' flows over its queues; --count and --rate-pps are per thread.
 * The counters are the sum of the devices'; "threads" in the snapshot and
 * final lines gives each one's cpu, queue and packets.
 *
 * Output: {"event":"ready",...}, {"event":"snapshot","t_ns","packets",
 * "bytes","errors"} on SIGUSR1 (pkts-sofar of the device file), and
 * {"event":"final",...} with pktgen's own "Result:" line.
 * Exit 3 (unsupported): no pktgen in this kernel, or the device refuses a
 * setting (burst > 1 and clone_skb > 0 need IFF_TX_SKB_SHARING: virtio-net
 * has it, veth and tap do not).
 *
 *   rxb-pktgen --ifname test0 --dst 198.18.0.2 --dst-mac 52:54:00:18:00:02 \
 *              --size 64 --duration 5 [--count N] [--rate-pps P] [--burst B]
 *              [--clone-skb C] [--cpu 0 | --threads 2 --cpus 0,1]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define TOOL_NAME "rxb-pktgen"
#define PG_DIR "/proc/net/pktgen"
#define BENCH_NET 0xc6120000u  /* 198.18.0.0/15 */
#define BENCH_MASK 0xfffe0000u
#define FCS_LEN 4
#define MAX_THREADS 64
#define FLOWS_PER_THREAD 16

struct opts {
	const char *ifname, *dst, *dst_mac;
	unsigned int size, burst, clone_skb, cpu, threads, ncpus;
	int cpus[MAX_THREADS];
	uint64_t count, rate_pps;
	double duration_s;
};

static char devpath[256];                      /* the device dev_set() writes to */
static char devpaths[MAX_THREADS][256];        /* IF@i of each thread */
static unsigned int nthreads = 1, thread_cpu[MAX_THREADS];

static void usage(FILE *f)
{
	fprintf(f, "usage: %s --ifname IF --dst IP --dst-mac MAC --size BYTES --duration S\n"
		   "          [--count N] [--rate-pps P] [--burst B] [--clone-skb C]\n"
		   "          [--cpu N | --threads T --cpus LIST]\n",
		TOOL_NAME);
}

/* Write one pktgen command; 0 or -errno (pktgen reports refusals both as a
 * write error and in the file's "Result:" line, which we check too). */
static int pg_write(const char *path, const char *cmd)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, cmd, strlen(cmd));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

static int pg_read(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n, got = 0;

	if (fd < 0)
		return -errno;
	while ((size_t)got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += n;
	buf[got] = 0;
	close(fd);
	return 0;
}

static void dev_set(const char *fmt, ...) RXB_PRINTF(1, 2);
static void dev_set(const char *fmt, ...)
{
	char cmd[256], buf[8192], *res;
	va_list ap;
	int err;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	err = pg_write(devpath, cmd);
	if (err) {
		fprintf(stderr, "%s: %s: '%s' refused: %s\n", TOOL_NAME, devpath, cmd,
			strerror(-err));
		exit(RXB_EXIT_UNSUPPORTED);
	}
	if (pg_read(devpath, buf, sizeof(buf)) == 0 && (res = strstr(buf, "Result: ")) &&
	    strncmp(res + 8, "OK", 2) != 0) {
		*strchrnul(res, '\n') = 0;
		fprintf(stderr, "%s: %s: '%s' refused: %s\n", TOOL_NAME, devpath, cmd, res + 8);
		exit(RXB_EXIT_UNSUPPORTED);
	}
}

static void dev_counters(const char *path, uint64_t *pkts, uint64_t *errors, char *result,
			 size_t rlen)
{
	char buf[8192], *p;

	*pkts = *errors = 0;
	if (pg_read(path, buf, sizeof(buf)))
		return;
	if ((p = strstr(buf, "pkts-sofar:")))
		*pkts = strtoull(p + 11, NULL, 10);
	if ((p = strstr(buf, "errors:")))
		*errors = strtoull(p + 7, NULL, 10);
	if (result && (p = strstr(buf, "Result: "))) {
		char *end = strchrnul(p + 8, '\n');

		/* the result spans two lines: "OK: ... usec, N (SIZEbyte,0frags)" and "PPS..." */
		if (*end)
			end = strchrnul(end + 1, '\n');
		snprintf(result, rlen, "%.*s", (int)(end - (p + 8)), p + 8);
		for (p = result; *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
}

/* The sum over every thread's device; each one's packets in per[]. With
 * several threads the result is each device's "Result:", "; "-separated. */
static void counters(uint64_t *pkts, uint64_t *errors, char *result, size_t rlen,
		     uint64_t *per)
{
	size_t used = 0;

	*pkts = *errors = 0;
	if (result)
		result[0] = 0;
	for (unsigned int i = 0; i < nthreads; i++) {
		char one[512] = "";
		uint64_t p, e;

		dev_counters(devpaths[i], &p, &e, result ? one : NULL, sizeof(one));
		*pkts += p;
		*errors += e;
		if (per)
			per[i] = p;
		if (result && used < rlen)
			used += (size_t)snprintf(result + used, rlen - used, "%s%s",
						 i ? "; " : "", one);
	}
}

static void json_threads(const uint64_t *per)
{
	json_printf(",\"threads\":[");
	for (unsigned int i = 0; i < nthreads; i++)
		json_printf("%s{\"cpu\":%u,\"queue\":%u,\"packets\":%" PRIu64 "}",
			    i ? "," : "", thread_cpu[i], i, per[i]);
	json_printf("]");
}

static pthread_t main_tid;

/* "start" returns once the run is over (--count packets out, or "stop"):
 * then wake the main thread. */
static void *starter(void *arg)
{
	int *err = arg;

	*err = pg_write(PG_DIR "/pgctrl", "start");
	pthread_kill(main_tid, SIGUSR2);
	return NULL;
}

static uint32_t bench_ip(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		usage_error("--dst: invalid IPv4 address '%s'", s);
	if ((ntohl(a.s_addr) & BENCH_MASK) != BENCH_NET)
		usage_error("--dst %s: refused, outside the benchmarking range 198.18.0.0/15", s);
	return a.s_addr;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"ifname", required_argument, NULL, 'i'},
		{"dst", required_argument, NULL, 'd'},
		{"dst-mac", required_argument, NULL, 'm'},
		{"size", required_argument, NULL, 's'},
		{"duration", required_argument, NULL, 'D'},
		{"count", required_argument, NULL, 'n'},
		{"rate-pps", required_argument, NULL, 'r'},
		{"burst", required_argument, NULL, 'b'},
		{"clone-skb", required_argument, NULL, 'c'},
		{"cpu", required_argument, NULL, 'C'},
		{"threads", required_argument, NULL, 'T'},
		{"cpus", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	unsigned int mac[6];
	int c;

	memset(o, 0, sizeof(*o));
	o->burst = 1;
	o->threads = 1;
	while ((c = opt_next(argc, argv, ":i:d:m:s:D:n:r:b:c:C:T:L:h", longopts, usage)) != -1) {
		switch (c) {
		case 'i': o->ifname = optarg; break;
		case 'd': o->dst = optarg; break;
		case 'm': o->dst_mac = optarg; break;
		case 's': o->size = opt_uint("--size", optarg, 64, 9018); break;
		case 'D': o->duration_s = opt_duration(optarg, 86400); break;
		case 'n':
			if (parse_u64(optarg, UINT64_MAX, &o->count))
				usage_error("--count: invalid value '%s'", optarg);
			break;
		case 'r':
			if (parse_u64(optarg, 1000000000ULL, &o->rate_pps))
				usage_error("--rate-pps: invalid value '%s'", optarg);
			break;
		case 'b': o->burst = opt_uint("--burst", optarg, 1, 1024); break;
		case 'c': o->clone_skb = opt_uint("--clone-skb", optarg, 0, 1000000); break;
		case 'C': o->cpu = opt_uint("--cpu", optarg, 0, 4095); break;
		case 'T': o->threads = opt_uint("--threads", optarg, 1, MAX_THREADS); break;
		case 'L': opt_cpu_list(optarg, o->cpus, MAX_THREADS, &o->ncpus); break;
		}
	}
	if (!o->ifname || !o->dst || !o->dst_mac || !o->size || o->duration_s <= 0)
		usage_error("--ifname, --dst, --dst-mac, --size and --duration are required");
	bench_ip(o->dst);
	if (o->threads > 1 && !o->ncpus)
		usage_error("--threads %u needs --cpus (one pktgen kthread per CPU)", o->threads);
	if (sscanf(o->dst_mac, "%2x:%2x:%2x:%2x:%2x:%2x", &mac[0], &mac[1], &mac[2], &mac[3],
		   &mac[4], &mac[5]) != 6 || strlen(o->dst_mac) != 17)
		usage_error("--dst-mac: invalid MAC address '%s'", o->dst_mac);
}

/* What the main thread watches while pktgen runs. */
struct watch {
	const struct opts *o;
	pthread_t *th;
	uint64_t *per;
};

static void watch_snapshot(void *arg)
{
	struct watch *w = arg;
	uint64_t pkts, errors;

	counters(&pkts, &errors, NULL, 0, w->per);
	json_printf("{\"event\":\"snapshot\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64,
		    mono_ns(), pkts, pkts * w->o->size, errors);
	json_threads(w->per);
	json_printf("}");
	json_end();
}

/* SIGUSR2: the starter is done, --count packets are out. */
static const char *watch_wake(void *arg)
{
	struct watch *w = arg;

	pthread_join(*w->th, NULL);
	*w->th = 0;
	return "count";
}

int main(int argc, char **argv)
{
	struct opts o;
	char thread[64], cmd[128], dev[16], result[4096] = "";
	uint64_t t0, deadline, pkts, errors, per[MAX_THREADS] = {0};
	const char *reason;
	struct watch watch;
	pthread_t th;
	sigset_t sigs;
	int serr = 0, status;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);
	opt_ifindex(o.ifname);
	if (default_route_dev(o.ifname, dev) > 0)
		usage_error("--ifname %s: refused, it carries the default route", o.ifname);
	if (access(PG_DIR "/pgctrl", W_OK)) {
		pid_t p = fork();

		if (p == 0) {
			execlp("modprobe", "modprobe", "-q", "pktgen", (char *)NULL);
			_exit(127);
		}
		if (p > 0)
			waitpid(p, &status, 0);
		if (access(PG_DIR "/pgctrl", W_OK)) {
			fprintf(stderr, "%s: Linux pktgen unavailable: %s missing after modprobe "
					"pktgen (kernel without CONFIG_NET_PKTGEN, or no module loading)\n",
				TOOL_NAME, PG_DIR "/pgctrl");
			return RXB_EXIT_UNSUPPORTED;
		}
	}
	block_signals(&sigs, SIGUSR2);
	main_tid = pthread_self();

	nthreads = o.threads;
	for (unsigned int i = 0; i < nthreads; i++)
		thread_cpu[i] = o.ncpus ? (unsigned int)o.cpus[i % o.ncpus] : o.cpu;
	for (unsigned int i = 0; i < nthreads; i++) {
		snprintf(thread, sizeof(thread), PG_DIR "/kpktgend_%u", thread_cpu[i]);
		if (pg_write(thread, "rem_device_all"))
			usage_error("CPU %u: no pktgen thread %s", thread_cpu[i], thread);
	}
	for (unsigned int i = 0; i < nthreads; i++) {
		snprintf(thread, sizeof(thread), PG_DIR "/kpktgend_%u", thread_cpu[i]);
		snprintf(cmd, sizeof(cmd), "add_device %s@%u", o.ifname, i);
		if ((serr = pg_write(thread, cmd)))
			die_err(serr, "%s: '%s'", thread, cmd);
		snprintf(devpaths[i], sizeof(devpaths[i]), PG_DIR "/%s@%u", o.ifname, i);
		memcpy(devpath, devpaths[i], sizeof(devpath));
		dev_set("count %" PRIu64, o.count);
		dev_set("pkt_size %u", o.size - FCS_LEN);
		dev_set("dst %s", o.dst);
		dev_set("dst_mac %s", o.dst_mac);
		dev_set("delay 0");
		dev_set("clone_skb %u", o.clone_skb);
		dev_set("burst %u", o.burst);
		if (o.rate_pps)
			dev_set("ratep %" PRIu64, o.rate_pps);
		if (nthreads > 1) {
			/* its own TX queue and its own flows (the receiver's RSS spreads them) */
			dev_set("queue_map_min %u", i);
			dev_set("queue_map_max %u", i);
			dev_set("udp_src_min %u", 1024 + i * FLOWS_PER_THREAD);
			dev_set("udp_src_max %u", 1024 + (i + 1) * FLOWS_PER_THREAD - 1);
		}
	}

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o.duration_s * (double)NS_PER_SEC);
	serr = 0;
	if ((errno = pthread_create(&th, NULL, starter, &serr)))
		die("pthread_create");
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"ifname\":", TOOL_NAME);
	json_str(o.ifname);
	json_printf(",\"size\":%u,\"pkt_size\":%u,\"count\":%" PRIu64 ",\"rate_pps\":%" PRIu64
		    ",\"burst\":%u,\"clone_skb\":%u,\"cpu\":%u,\"flows_per_thread\":%u",
		    o.size, o.size - FCS_LEN, o.count, o.rate_pps, o.burst, o.clone_skb, thread_cpu[0],
		    nthreads > 1 ? FLOWS_PER_THREAD : 1);
	json_threads(per);
	json_printf(",\"t_ns\":%" PRIu64 "}", t0);
	json_end();

	/* the run ends by itself once --count packets are out */
	watch = (struct watch){ .o = &o, .th = &th, .per = per };
	reason = run_until_signal(&sigs, deadline, watch_snapshot, watch_wake, &watch);
	if (!strcmp(reason, "duration"))
		reason = "deadline";
	if (th) {
		pg_write(PG_DIR "/pgctrl", "stop");
		pthread_join(th, NULL);
	}
	counters(&pkts, &errors, result, sizeof(result), per);
	json_printf("{\"event\":\"final\",\"t_ns\":%" PRIu64 ",\"packets\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"elapsed_s\":%.6f"
		    ",\"reason\":\"%s\",\"result\":",
		    mono_ns(), pkts, pkts * o.size, errors,
		    (double)(mono_ns() - t0) / (double)NS_PER_SEC, reason);
	json_str(result);
	json_threads(per);
	json_printf("}");
	json_end();
	for (unsigned int i = 0; i < nthreads; i++) {
		snprintf(thread, sizeof(thread), PG_DIR "/kpktgend_%u", thread_cpu[i]);
		pg_write(thread, "rem_device_all");
	}
	if (serr && serr != -EINTR) {
		fprintf(stderr, "%s: pgctrl start: %s\n", TOOL_NAME, strerror(-serr));
		return RXB_EXIT_FAIL;
	}
	return RXB_EXIT_OK;
}
