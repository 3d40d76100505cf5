// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-counters: one reader of a host's counters for a cell's life.  Every
 * snapshot reads, in one place and between two CLOCK_MONOTONIC stamps
 * (t0_ns, t1_ns):
 *   cpu      per-CPU /proc/stat (ticks of 1/clk_tck s, every field)
 *   links    /sys/class/net/IF/statistics/ (every file) of each --ifname
 *   ethtool  the driver's statistics (SIOCETHTOOL ETHTOOL_GSTATS) of each --ifname
 *   softnet  /proc/net/softnet_stat, per CPU
 *   softirqs /proc/softirqs: how often each softirq ran, per CPU (HRTIMER
 *            counts TCP's pacing timers, NET_RX the backlog's runs)
 *   snmp     /proc/net/snmp + /proc/net/netstat, named as nstat names them
 *            (TcpRetransSegs, TcpExtTCPOFODrop, ...)
 *   procs    utime/stime (ticks), the summed /proc/PID/task/TID/schedstat
 *            run and wait time (ns) and the summed voluntary and involuntary
 *            context switches (/proc/PID/task/TID/status) of every process
 *            in the trees of --pid, and of the kernel threads whose name
 *            starts with --comm-prefix
 * and says how long it took (snapshot_ns) and how much CPU this reader has
 * used so far (self_cpu_ns).  The network counters are those of the network
 * namespace the reader runs in; the files are opened once at start (a
 * /proc/net file keeps the namespace it was opened in) and re-read with
 * pread; nothing is forked, nothing is allocated per snapshot.
 *
 * Events (one JSON object per line, flushed):
 *   ready     the files are open; lists what will be read
 *   snapshot  on SIGUSR1
 *   final     on exit (duration elapsed, SIGINT/SIGTERM/SIGHUP), a snapshot too
 * A counter that cannot be read in a snapshot is left out of it and named
 * in that snapshot's "errors" list (e.g. an interface that went away).
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/ethtool.h>
#include <linux/sockios.h>

#define TOOL_NAME          "rxb-counters"
#define DEFAULT_DURATION_S 60.0
#define MAX_DURATION_S     (365.0 * 24 * 3600)
#define MAX_IFS            8
#define MAX_ROOTS          16
#define MAX_PROCS          512
#define MAX_KTHREADS       4096
#define MAX_PREFIX         16
#define BUF_SIZE           (1 << 20)
#define NLINK              (ARRAY_SIZE(link_fields))

/* struct rtnl_link_stats64's fields, as sysfs names them */
static const char *const link_fields[] = {
	"rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
	"rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
	"rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
	"rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
	"tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed",
	"rx_nohandler",
};
static const char *const cpu_fields[] = {
	"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
	"guest_nice",
};
/* /proc/net/softnet_stat columns (net/core/net-procfs.c); "" = always 0 */
static const char *const softnet_fields[] = {
	"processed", "dropped", "time_squeeze", "", "", "", "", "", "", "received_rps",
	"flow_limit_count", "backlog_len", "cpu", "input_qlen", "process_qlen",
};

struct iface {
	const char *name;
	int link_fd[ARRAY_SIZE(link_fields)]; /* -1: not present in this kernel */
	struct ethtool_gstrings *strings;      /* NULL: no driver statistics */
	struct ethtool_stats *stats;
	unsigned int n_stats;
};

struct opts {
	double duration_s;
	int cpu;
	unsigned int n_ifs, n_roots;
	const char *ifs[MAX_IFS];
	int roots[MAX_ROOTS];
	const char *comm_prefix;
	unsigned int rt_priority; /* 0: the default scheduler */
};

static struct {
	struct opts o;
	struct iface ifs[MAX_IFS];
	int stat_fd, softnet_fd, softirqs_fd, snmp_fd, netstat_fd, sock;
	long clk_tck;
	char buf[BUF_SIZE];      /* one file's text */
	char buf2[BUF_SIZE];     /* /proc/net/netstat while snmp is in buf */
	char dents[1 << 16];
	int procs[MAX_PROCS];    /* this snapshot's processes ... */
	int proc_root[MAX_PROCS]; /* ... the --pid they descend from (0: kthread) */
	unsigned int n_procs;
	int kpid[MAX_KTHREADS];  /* kernel threads seen, and whether they match */
	char kmatch[MAX_KTHREADS];
	unsigned int n_kpid;
	char errors[4096];
	uint64_t seq;
} g;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [options]\n"
		"Read this host's counters (in this network namespace) on SIGUSR1, one\n"
		"JSON line per snapshot, each stamped with CLOCK_MONOTONIC.\n"
		"\n"
		"  -i, --ifname IF        link and ethtool counters of IF (repeatable, up to %d)\n"
		"  -p, --pid PID          CPU time of PID and all its descendants (repeatable,\n"
		"                         up to %d)\n"
		"  -k, --comm-prefix STR  CPU time of kernel threads whose name starts with STR\n"
		"                         (e.g. napi/)\n"
		"  -d, --duration SECS    run time in seconds, > 0 (default: %g)\n"
		"  -c, --cpu N            pin this process to CPU N (default: no pinning)\n"
		"  -r, --rt-priority N    run as SCHED_FIFO N (1..99), so that a snapshot is not\n"
		"                         preempted by the saturated CPUs it measures (default: 0,\n"
		"                         the normal scheduler)\n"
		"  -h, --help             show this help\n"
		"\n"
		"Signals: SIGUSR1 prints a snapshot; SIGINT/SIGTERM/SIGHUP stop early.\n"
		"Exit: 0 ok, 1 failure, 2 bad arguments/interface/pid.\n",
		TOOL_NAME, MAX_IFS, MAX_ROOTS, DEFAULT_DURATION_S);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "ifname", required_argument, NULL, 'i' },
		{ "pid", required_argument, NULL, 'p' },
		{ "comm-prefix", required_argument, NULL, 'k' },
		{ "duration", required_argument, NULL, 'd' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "rt-priority", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char path[64];
	int c;

	*o = (struct opts){ .duration_s = DEFAULT_DURATION_S, .cpu = -1 };
	while ((c = opt_next(argc, argv, ":i:p:k:d:c:r:h", longopts, usage)) != -1) {
		switch (c) {
		case 'i':
			if (o->n_ifs == MAX_IFS)
				usage_error("--ifname: more than %d interfaces", MAX_IFS);
			opt_ifindex(optarg);
			o->ifs[o->n_ifs++] = optarg;
			break;
		case 'p':
			if (o->n_roots == MAX_ROOTS)
				usage_error("--pid: more than %d processes", MAX_ROOTS);
			o->roots[o->n_roots] = (int)opt_uint("pid", optarg, 1, INT_MAX);
			snprintf(path, sizeof(path), "/proc/%d/stat", o->roots[o->n_roots]);
			if (access(path, R_OK))
				usage_error("--pid %s: no such process (%s)", optarg, strerror(errno));
			o->n_roots++;
			break;
		case 'k':
			if (!*optarg || strlen(optarg) >= MAX_PREFIX)
				usage_error("--comm-prefix '%s': want 1..%d characters", optarg,
					    MAX_PREFIX - 1);
			o->comm_prefix = optarg;
			break;
		case 'd':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		case 'c':
			o->cpu = opt_cpu(optarg);
			break;
		case 'r':
			o->rt_priority = opt_uint("rt-priority", optarg, 0, 99);
			break;
		}
	}
}

/* SCHED_FIFO if asked; a kernel or container that refuses it is told in
 * the ready line (the snapshots still work, they may just be preempted). */
static const char *set_rt(unsigned int prio)
{
	struct sched_param sp = { .sched_priority = (int)prio };

	if (!prio)
		return "other";
	if (sched_setscheduler(0, SCHED_FIFO, &sp)) {
		warn_err(errno, "sched_setscheduler(SCHED_FIFO, %u)", prio);
		return "other (SCHED_FIFO refused)";
	}
	return "fifo";
}

static void add_error(const char *what, int err)
{
	size_t n = strlen(g.errors);

	snprintf(g.errors + n, sizeof(g.errors) - n, "%s\"%s: %s\"", n ? "," : "", what,
		 strerror(err));
}

/* The whole of an open file into buf (NUL-terminated); its length or -1. */
static ssize_t read_fd(int fd, char *buf, size_t size)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = pread(fd, buf + n, size - 1 - n, (off_t)n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0 || n + (size_t)r >= size - 1) {
			n += (size_t)r;
			break;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

static ssize_t read_path(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read_fd(fd, buf, size);
	close(fd);
	return n;
}

static int open_ro(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open %s", path);
	return fd;
}

static int ethtool_ioctl(const char *ifname, void *data)
{
	struct ifreq ifr = {};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = data;
	return ioctl(g.sock, SIOCETHTOOL, &ifr);
}

/* The names of IF's driver statistics, once; NULL strings: it has none. */
static void ethtool_open(struct iface *f)
{
	struct {
		struct ethtool_sset_info hdr;
		__u32 len;
	} info = { .hdr = { .cmd = ETHTOOL_GSSET_INFO, .sset_mask = 1ULL << ETH_SS_STATS } };
	unsigned int n;

	if (ethtool_ioctl(f->name, &info) || !(info.hdr.sset_mask & (1ULL << ETH_SS_STATS)) ||
	    !info.len)
		return;
	n = info.len;
	f->strings = calloc(1, sizeof(*f->strings) + (size_t)n * ETH_GSTRING_LEN);
	f->stats = calloc(1, sizeof(*f->stats) + (size_t)n * sizeof(__u64));
	if (!f->strings || !f->stats)
		die("calloc");
	f->strings->cmd = ETHTOOL_GSTRINGS;
	f->strings->string_set = ETH_SS_STATS;
	f->strings->len = n;
	if (ethtool_ioctl(f->name, f->strings))
		die("%s: SIOCETHTOOL ETHTOOL_GSTRINGS", f->name);
	f->n_stats = f->strings->len < n ? f->strings->len : n;
	for (unsigned int i = 0; i < f->n_stats; i++)
		f->strings->data[(i + 1) * ETH_GSTRING_LEN - 1] = '\0';
}

static void iface_open(struct iface *f, const char *name)
{
	char path[128];

	f->name = name;
	for (int i = 0; i < NLINK; i++) {
		snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", name, link_fields[i]);
		f->link_fd[i] = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (f->link_fd[0] < 0)
		usage_error("--ifname '%s': no /sys/class/net/%s/statistics in this namespace "
			    "(is /sys mounted for it?)", name, name);
	ethtool_open(f);
}

/* ---- snapshot parts: each prints one JSON member ---- */

static void put_cpu(void)
{
	char *line, *save;

	if (read_fd(g.stat_fd, g.buf, sizeof(g.buf)) < 0) {
		add_error("/proc/stat", errno);
		return;
	}
	json_printf(",\"cpu\":{");
	int first = 1;
	for (line = strtok_r(g.buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p, *end;
		unsigned long cpu;

		if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9')
			continue;
		cpu = strtoul(line + 3, &p, 10);
		json_printf("%s\"%lu\":{", first ? "" : ",", cpu);
		first = 0;
		for (int i = 0; i < ARRAY_SIZE(cpu_fields); i++) {
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			p = end;
			json_printf("%s\"%s\":%llu", i ? "," : "", cpu_fields[i], v);
		}
		json_printf("}");
	}
	json_printf("}");
}

static void put_links(void)
{
	char what[160];

	json_printf(",\"links\":{");
	for (unsigned int k = 0; k < g.o.n_ifs; k++) {
		struct iface *f = &g.ifs[k];
		int first = 1;

		json_printf("%s", k ? "," : "");
		json_str(f->name);
		json_printf(":{");
		for (int i = 0; i < NLINK; i++) {
			char num[32];

			if (f->link_fd[i] < 0)
				continue;
			if (read_fd(f->link_fd[i], num, sizeof(num)) < 0) {
				snprintf(what, sizeof(what), "links %s %s", f->name, link_fields[i]);
				add_error(what, errno);
				continue;
			}
			json_printf("%s\"%s\":%llu", first ? "" : ",", link_fields[i],
				    strtoull(num, NULL, 10));
			first = 0;
		}
		json_printf("}");
	}
	json_printf("}");
}

static void put_ethtool(void)
{
	char what[160];
	int firstif = 1;

	json_printf(",\"ethtool\":{");
	for (unsigned int k = 0; k < g.o.n_ifs; k++) {
		struct iface *f = &g.ifs[k];

		if (!f->strings)
			continue;
		f->stats->cmd = ETHTOOL_GSTATS;
		f->stats->n_stats = f->n_stats;
		if (ethtool_ioctl(f->name, f->stats)) {
			snprintf(what, sizeof(what), "ethtool %s", f->name);
			add_error(what, errno);
			continue;
		}
		if (f->stats->n_stats != f->n_stats) {
			snprintf(what, sizeof(what), "ethtool %s: the statistics changed", f->name);
			add_error(what, ESTALE);
			continue;
		}
		json_printf("%s", firstif ? "" : ",");
		firstif = 0;
		json_str(f->name);
		json_printf(":{");
		for (unsigned int i = 0; i < f->n_stats; i++) {
			json_printf("%s", i ? "," : "");
			json_str((const char *)f->strings->data + (size_t)i * ETH_GSTRING_LEN);
			json_printf(":%llu", (unsigned long long)f->stats->data[i]);
		}
		json_printf("}");
	}
	json_printf("}");
}

static void put_softnet(void)
{
	char *line, *save;
	int idx = 0;

	if (read_fd(g.softnet_fd, g.buf, sizeof(g.buf)) < 0) {
		add_error("/proc/net/softnet_stat", errno);
		return;
	}
	json_printf(",\"softnet\":[");
	for (line = strtok_r(g.buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = line, *end;
		int first = 1;

		json_printf("%s{", idx++ ? "," : "");
		for (int i = 0; i < ARRAY_SIZE(softnet_fields); i++) {
			unsigned long v = strtoul(p, &end, 16);

			if (end == p)
				break;
			p = end;
			if (!*softnet_fields[i])
				continue;
			json_printf("%s\"%s\":%lu", first ? "" : ",", softnet_fields[i], v);
			first = 0;
		}
		json_printf("}");
	}
	json_printf("]");
}

/* "   CPU0 CPU1\n  HI: 0 0\n..." -> "softirqs":{"HI":{"0":0,"1":0},...} */
static void put_softirqs(void)
{
	int cpus[1024], ncpu = 0, first = 1;
	char *line, *save, *p, *end;

	if (read_fd(g.softirqs_fd, g.buf, sizeof(g.buf)) < 0) {
		add_error("/proc/softirqs", errno);
		return;
	}
	line = strtok_r(g.buf, "\n", &save);
	for (p = line ? strstr(line, "CPU") : NULL; p && ncpu < ARRAY_SIZE(cpus);
	     p = strstr(p, "CPU")) {
		p += 3;
		cpus[ncpu++] = (int)strtol(p, &end, 10);
		p = end;
	}
	json_printf(",\"softirqs\":{");
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		*colon = '\0';
		for (p = line; *p == ' '; p++)
			;
		json_printf("%s", first ? "" : ",");
		json_str(p);
		json_printf(":{");
		p = colon + 1;
		for (int i = 0; i < ncpu; i++) {
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			p = end;
			json_printf("%s\"%d\":%llu", i ? "," : "", cpus[i], v);
		}
		json_printf("}");
		first = 0;
	}
	json_printf("}");
}

/* "Tcp: Name1 Name2\nTcp: 1 2\n..." -> "TcpName1":1,... ("Tcp: " -> "Tcp") */
static void put_snmp_text(char *text, int *first)
{
	char *save, *names, *vals;

	names = strtok_r(text, "\n", &save);
	while (names && (vals = strtok_r(NULL, "\n", &save))) {
		char *colon = strchr(names, ':'), *np, *vp, *ns, *vs;
		size_t plen;

		if (!colon || strncmp(names, vals, (size_t)(colon - names + 1))) {
			names = vals; /* out of step: resynchronise on the next pair */
			continue;
		}
		plen = (size_t)(colon - names);
		*colon = '\0';
		np = strtok_r(colon + 1, " ", &ns);
		vp = strtok_r(vals + plen + 1, " ", &vs);
		for (; np && vp; np = strtok_r(NULL, " ", &ns), vp = strtok_r(NULL, " ", &vs)) {
			json_printf("%s\"%s%s\":%lld", *first ? "" : ",", names, np,
				    strtoll(vp, NULL, 10));
			*first = 0;
		}
		names = strtok_r(NULL, "\n", &save);
	}
}

static void put_snmp(void)
{
	int first = 1;

	if (read_fd(g.snmp_fd, g.buf, sizeof(g.buf)) < 0) {
		add_error("/proc/net/snmp", errno);
		return;
	}
	if (read_fd(g.netstat_fd, g.buf2, sizeof(g.buf2)) < 0) {
		add_error("/proc/net/netstat", errno);
		return;
	}
	json_printf(",\"snmp\":{");
	put_snmp_text(g.buf, &first);
	put_snmp_text(g.buf2, &first);
	json_printf("}");
}

/* The numeric entries of a /proc directory into out[] (at most max). */
static int list_dir(const char *path, int *out, unsigned int max)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = 0;
	long r;

	if (fd < 0)
		return -1;
	while ((r = syscall(SYS_getdents64, fd, g.dents, sizeof(g.dents))) > 0) {
		for (long off = 0; off < r;) {
			struct dirent64 *d = (struct dirent64 *)(g.dents + off);

			off += d->d_reclen;
			if (d->d_name[0] >= '0' && d->d_name[0] <= '9' && (unsigned int)n < max)
				out[n++] = atoi(d->d_name);
		}
	}
	close(fd);
	return n;
}

static int known_proc(int pid)
{
	for (unsigned int i = 0; i < g.n_procs; i++)
		if (g.procs[i] == pid)
			return 1;
	return 0;
}

/* Append the children of every task of pid ("/proc/P/task/T/children"). */
static void add_children(int pid, int root)
{
	static int tids[MAX_PROCS];
	char path[96], text[4096];
	int n;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	n = list_dir(path, tids, MAX_PROCS);
	for (int i = 0; i < n; i++) {
		char *p, *end;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, tids[i]);
		if (read_path(path, text, sizeof(text)) < 0)
			continue;
		for (p = text;; p = end) {
			long c = strtol(p, &end, 10);

			if (end == p)
				break;
			if (c > 0 && !known_proc((int)c) && g.n_procs < MAX_PROCS) {
				g.proc_root[g.n_procs] = root;
				g.procs[g.n_procs++] = (int)c;
			}
		}
	}
}

/* Every process of the --pid trees, breadth first, then the matching kthreads. */
static void collect_procs(void)
{
	static int kids[MAX_KTHREADS];
	char path[64], comm[64];
	int n;

	g.n_procs = 0;
	for (unsigned int r = 0; r < g.o.n_roots; r++) {
		unsigned int start = g.n_procs;

		if (known_proc(g.o.roots[r]))
			continue;
		g.proc_root[g.n_procs] = g.o.roots[r];
		g.procs[g.n_procs++] = g.o.roots[r];
		for (unsigned int i = start; i < g.n_procs; i++)
			add_children(g.procs[i], g.o.roots[r]);
	}
	if (!g.o.comm_prefix)
		return;
	/* kernel threads are kthreadd's (pid 2) children; a name is read once */
	n = read_path("/proc/2/task/2/children", g.buf, sizeof(g.buf));
	if (n < 0) {
		add_error("/proc/2/task/2/children", errno);
		return;
	}
	n = 0;
	for (char *p = g.buf, *end;; p = end) {
		long c = strtol(p, &end, 10);

		if (end == p || n == MAX_KTHREADS)
			break;
		kids[n++] = (int)c;
	}
	for (int i = 0; i < n; i++) {
		unsigned int j;
		int match;

		for (j = 0; j < g.n_kpid && g.kpid[j] != kids[i]; j++)
			;
		if (j < g.n_kpid) {
			match = g.kmatch[j];
		} else {
			snprintf(path, sizeof(path), "/proc/%d/comm", kids[i]);
			if (read_path(path, comm, sizeof(comm)) < 0)
				continue;
			match = !strncmp(comm, g.o.comm_prefix, strlen(g.o.comm_prefix));
			if (g.n_kpid < MAX_KTHREADS) {
				g.kpid[g.n_kpid] = kids[i];
				g.kmatch[g.n_kpid++] = (char)match;
			}
		}
		if (match && !known_proc(kids[i]) && g.n_procs < MAX_PROCS) {
			g.proc_root[g.n_procs] = 0;
			g.procs[g.n_procs++] = kids[i];
		}
	}
}

/* The sum of a "name:\tN" line's N in a /proc/.../status text (0 if none). */
static unsigned long long status_field(const char *text, const char *name)
{
	const char *p = text;
	size_t len = strlen(name);

	while ((p = strstr(p, name))) {
		if ((p == text || p[-1] == '\n') && p[len] == ':')
			return strtoull(p + len + 1, NULL, 10);
		p += len;
	}
	return 0;
}

/* One process: comm, ppid, ticks, last CPU, threads, summed schedstat and
 * context switches. */
static int put_proc(int pid, int root, int first)
{
	static int tids[MAX_PROCS];
	char path[96], text[1024], *p, *rp, comm[64];
	static char status[4096];
	unsigned long long utime, stime, run = 0, wait = 0, vcs = 0, ivcs = 0;
	int ppid, cpu = -1, nthreads = 0, n, have_sched = 0, have_cs = 0;
	size_t clen;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_path(path, text, sizeof(text)) < 0)
		return 0; /* gone: not part of this snapshot */
	p = strchr(text, '(');
	rp = strrchr(text, ')');
	if (!p || !rp)
		return 0;
	clen = (size_t)(rp - p - 1) < sizeof(comm) - 1 ? (size_t)(rp - p - 1) : sizeof(comm) - 1;
	memcpy(comm, p + 1, clen);
	comm[clen] = '\0';
	/* fields after ")": 3 state, 4 ppid, ... 14 utime, 15 stime, 20 threads, 39 cpu */
	{
		char *f = rp + 2, *end;
		unsigned long long v[40] = { 0 };
		int i;

		for (i = 3; i <= 39 && *f; i++) {
			if (i == 3) {
				f += 2;
				continue;
			}
			v[i] = strtoull(f, &end, 10);
			if (end == f)
				break;
			f = end;
		}
		if (i <= 39)
			return 0;
		ppid = (int)v[4];
		utime = v[14];
		stime = v[15];
		nthreads = (int)v[20];
		cpu = (int)v[39];
	}
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	n = list_dir(path, tids, MAX_PROCS);
	for (int i = 0; i < n; i++) {
		unsigned long long r, w;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tids[i]);
		if (read_path(path, text, sizeof(text)) < 0 ||
		    sscanf(text, "%llu %llu", &r, &w) != 2)
			continue;
		run += r;
		wait += w;
		have_sched = 1;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tids[i]);
		if (read_path(path, status, sizeof(status)) < 0)
			continue;
		vcs += status_field(status, "voluntary_ctxt_switches");
		ivcs += status_field(status, "nonvoluntary_ctxt_switches");
		have_cs = 1;
	}
	json_printf("%s\"%d\":{\"comm\":", first ? "" : ",", pid);
	json_str(comm);
	json_printf(",\"root\":%d,\"ppid\":%d,\"utime\":%llu,\"stime\":%llu,\"last_cpu\":%d,"
		    "\"threads\":%d", root, ppid, utime, stime, cpu, nthreads);
	if (have_sched)
		json_printf(",\"run_ns\":%llu,\"wait_ns\":%llu", run, wait);
	if (have_cs)
		json_printf(",\"vol_cs\":%llu,\"invol_cs\":%llu", vcs, ivcs);
	json_printf("}");
	return 1;
}

static void put_procs(void)
{
	int first = 1;

	collect_procs();
	json_printf(",\"procs\":{");
	for (unsigned int i = 0; i < g.n_procs; i++)
		if (put_proc(g.procs[i], g.proc_root[i], first))
			first = 0;
	json_printf("}");
}

static uint64_t self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void snapshot(const char *event, const char *reason)
{
	uint64_t t0, t1;

	g.errors[0] = '\0';
	t0 = mono_ns();
	json_printf("{\"event\":\"%s\",\"seq\":%" PRIu64 ",\"t0_ns\":%" PRIu64, event, g.seq++, t0);
	put_cpu();
	put_links();
	put_ethtool();
	put_softnet();
	put_softirqs();
	put_snmp();
	put_procs();
	t1 = mono_ns();
	json_printf(",\"t1_ns\":%" PRIu64 ",\"snapshot_ns\":%" PRIu64 ",\"self_cpu_ns\":%" PRIu64
		    ",\"errors\":[%s]", t1, t1 - t0, self_cpu_ns(), g.errors);
	if (reason)
		json_printf(",\"reason\":\"%s\"", reason);
	json_printf("}");
	json_end();
}

static void print_snapshot(void *arg)
{
	(void)arg;
	snapshot("snapshot", NULL);
}

int main(int argc, char **argv)
{
	static char outbuf[BUF_SIZE];
	const char *reason = NULL, *sched;
	sigset_t sigs;
	uint64_t t0, deadline;
	int ret = RXB_EXIT_OK;

	rxb_tool = TOOL_NAME;
	g.sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (g.sock < 0)
		die("socket(AF_INET, SOCK_DGRAM)");
	parse_args(argc, argv, &g.o);
	pin_cpu(g.o.cpu);
	sched = set_rt(g.o.rt_priority);
	block_signals(&sigs, 0);
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	g.clk_tck = sysconf(_SC_CLK_TCK);

	g.stat_fd = open_ro("/proc/stat");
	g.softnet_fd = open_ro("/proc/net/softnet_stat");
	g.softirqs_fd = open_ro("/proc/softirqs");
	g.snmp_fd = open_ro("/proc/net/snmp");
	g.netstat_fd = open_ro("/proc/net/netstat");
	for (unsigned int k = 0; k < g.o.n_ifs; k++)
		iface_open(&g.ifs[k], g.o.ifs[k]);

	t0 = mono_ns();
	deadline = t0 + (uint64_t)(g.o.duration_s * NS_PER_SEC);
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"t_ns\":%" PRIu64 ",\"clk_tck\":%ld,"
		    "\"ncpus\":%ld,\"ifnames\":{", TOOL_NAME, t0, g.clk_tck,
		    sysconf(_SC_NPROCESSORS_CONF));
	for (unsigned int k = 0; k < g.o.n_ifs; k++) {
		json_printf("%s", k ? "," : "");
		json_str(g.ifs[k].name);
		json_printf(":{\"ifindex\":%u,\"ethtool_stats\":%u}", if_nametoindex(g.ifs[k].name),
			    g.ifs[k].n_stats);
	}
	json_printf("},\"pids\":[");
	for (unsigned int r = 0; r < g.o.n_roots; r++)
		json_printf("%s%d", r ? "," : "", g.o.roots[r]);
	json_printf("],\"sched\":\"%s\",\"comm_prefix\":", sched);
	if (g.o.comm_prefix)
		json_str(g.o.comm_prefix);
	else
		json_printf("null");
	json_printf("}");
	json_end();

	reason = run_until_signal(&sigs, deadline, print_snapshot, NULL, NULL);
	if (!strcmp(reason, "error"))
		ret = RXB_EXIT_FAIL;
	snapshot("final", reason);
	if (ferror(stdout))
		ret = RXB_EXIT_FAIL;
	return ret;
}
