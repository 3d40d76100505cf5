// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-xdp-drop: attach xdp_drop.bpf.o to an interface, drop every received
 * frame in XDP, count the test flow (--dst-ip/--dst-port) and the other
 * frames apart, report counters as JSON lines on stdout.
 *
 * Events (one JSON object per line, flushed):
 *   ready     after a successful attach
 *   snapshot  on SIGUSR1
 *   final     on exit (duration elapsed, SIGINT/SIGTERM/SIGHUP)
 *   error     attach refused by the kernel (exit 3)
 */
#include "common.h"
#include "xdp_drop.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#define TOOL_NAME           "rxb-xdp-drop"
#define DEFAULT_MODE        MODE_NATIVE
#define DEFAULT_DURATION_S  10.0
#define DEFAULT_PROG_FILE   "xdp_drop.bpf.o"
#define MAX_DURATION_S      (365.0 * 24 * 3600)

enum xdp_mode { MODE_NATIVE, MODE_SKB, MODE_AUTO };
static const char *const mode_names[] = { "native", "skb", "auto" };

struct opts {
	const char *ifname;
	enum xdp_mode mode;
	double duration_s;
	const char *prog_path; /* NULL: DEFAULT_PROG_FILE next to the binary */
	int cpu;               /* -1: do not pin */
	const char *dst_ip;    /* the test flow; NULL: every frame counts */
	struct xdp_drop_cfg cfg;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --ifname IF [options]\n"
		"Attach an XDP program that drops every received frame and counts the\n"
		"test flow (IPv4 UDP to --dst-ip:--dst-port) and the other frames apart.\n"
		"\n"
		"  -i, --ifname IF        interface to attach to (required)\n"
		"  -m, --mode MODE        native|skb|auto (default: %s; auto = native,\n"
		"                         falling back to skb if native is refused)\n"
		"  -d, --duration SECS    run time in seconds, > 0 (default: %g)\n"
		"  -p, --prog PATH        BPF object (default: %s next to this binary)\n"
		"  -c, --cpu N            pin this process to CPU N (default: no pinning)\n"
		"  -a, --dst-ip ADDR      the test flow's IPv4 destination (with --dst-port;\n"
		"                         default: every frame counts as the test flow)\n"
		"  -P, --dst-port PORT    the test flow's UDP destination port, 1..65535\n"
		"  -h, --help             show this help\n"
		"\n"
		"Signals: SIGUSR1 prints a snapshot; SIGINT/SIGTERM/SIGHUP stop early.\n"
		"Exit: 0 ok, 1 failure, 2 bad arguments/interface, 3 attach refused.\n",
		TOOL_NAME, mode_names[DEFAULT_MODE], DEFAULT_DURATION_S,
		DEFAULT_PROG_FILE);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "ifname", required_argument, NULL, 'i' },
		{ "mode", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ "prog", required_argument, NULL, 'p' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "dst-ip", required_argument, NULL, 'a' },
		{ "dst-port", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct in_addr addr;
	unsigned int port = 0;
	int c;

	*o = (struct opts){ .mode = DEFAULT_MODE,
			    .duration_s = DEFAULT_DURATION_S,
			    .cpu = -1 };
	while ((c = opt_next(argc, argv, ":i:m:d:p:c:a:P:h", longopts, usage)) != -1) {
		switch (c) {
		case 'i':
			o->ifname = optarg;
			break;
		case 'm':
			o->mode = opt_enum("mode", optarg, mode_names, ARRAY_SIZE(mode_names));
			break;
		case 'd':
			o->duration_s = opt_duration(optarg, MAX_DURATION_S);
			break;
		case 'p':
			o->prog_path = optarg;
			break;
		case 'c':
			o->cpu = opt_cpu(optarg);
			break;
		case 'a':
			if (inet_pton(AF_INET, optarg, &addr) != 1)
				usage_error("--dst-ip: invalid IPv4 address '%s'", optarg);
			o->dst_ip = optarg;
			o->cfg.daddr = addr.s_addr;
			break;
		case 'P':
			if (parse_uint(optarg, 65535, &port) || !port)
				usage_error("--dst-port: invalid value '%s' (want 1..65535)", optarg);
			o->cfg.dport = htons((uint16_t)port);
			break;
		}
	}
	if (!o->ifname)
		usage_error("--ifname is required");
	if (!o->dst_ip != !port)
		usage_error("--dst-ip and --dst-port go together");
	o->cfg.filter = o->dst_ip != NULL;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* strerror() that also knows libbpf's own codes (LIBBPF_ERRNO__*, >= 4000). */
static const char *lbstrerror(int err)
{
	static char buf[128];

	if (libbpf_strerror(err, buf, sizeof(buf)))
		snprintf(buf, sizeof(buf), "error %d", err);
	return buf;
}

/* Read one slot's per-CPU counters into vals[ncpus]; its sums in *sum. */
static int read_slot(int map_fd, __u32 key, struct xdp_drop_stats *vals, int ncpus,
		     struct xdp_drop_stats *sum)
{
	int i;

	if (bpf_map_lookup_elem(map_fd, &key, vals)) {
		warn_err(errno, "bpf_map_lookup_elem(%s, %u)", XDP_DROP_MAP_NAME, key);
		return -1;
	}
	*sum = (struct xdp_drop_stats){ 0 };
	for (i = 0; i < ncpus; i++) {
		sum->packets += vals[i].packets;
		sum->bytes += vals[i].bytes;
	}
	return 0;
}

/* The test flow's counters (total and per CPU) and the other frames' as
 * one event. */
static int report(const char *event, int map_fd, struct xdp_drop_stats *vals,
		  int ncpus, const char *reason)
{
	struct xdp_drop_stats flow, other;
	uint64_t t = mono_ns();
	int i;

	if (read_slot(map_fd, XDP_DROP_OTHER, vals, ncpus, &other) ||
	    read_slot(map_fd, XDP_DROP_FLOW, vals, ncpus, &flow))
		return -1;
	json_printf("{\"event\":\"%s\",\"t_ns\":%" PRIu64 ",\"packets\":%llu,"
		    "\"bytes\":%llu,\"per_cpu\":{",
		    event, t, (unsigned long long)flow.packets, (unsigned long long)flow.bytes);
	for (i = 0; i < ncpus; i++)
		json_printf("%s\"%d\":{\"packets\":%llu,\"bytes\":%llu}", i ? "," : "",
			    i, (unsigned long long)vals[i].packets,
			    (unsigned long long)vals[i].bytes);
	json_printf("},\"other\":{\"packets\":%llu,\"bytes\":%llu}",
		    (unsigned long long)other.packets, (unsigned long long)other.bytes);
	if (reason)
		json_printf(",\"reason\":\"%s\"", reason);
	json_printf("}");
	json_end();
	return 0;
}

static int attach(int ifindex, int prog_fd, enum xdp_mode mode)
{
	__u32 mode_flag = mode == MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;

	return bpf_xdp_attach(ifindex, prog_fd, mode_flag | XDP_FLAGS_UPDATE_IF_NOEXIST,
			      NULL);
}

/* Detach only if the attached program is still ours (kernel checks
 * expected fd under XDP_FLAGS_REPLACE and returns EEXIST otherwise). */
static int detach(int ifindex, const char *ifname, int prog_fd, enum xdp_mode mode)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, dopts, .old_prog_fd = prog_fd);
	__u32 mode_flag = mode == MODE_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	int err;

	err = bpf_xdp_detach(ifindex, mode_flag, &dopts);
	if (!err)
		return 0;
	if (err == -EEXIST) {
		warn_err(0, "%s: attached XDP program is no longer ours (removed or replaced); left as is",
			 ifname);
		return 0;
	}
	if (err == -ENODEV) {
		warn_err(0, "%s: interface is gone; nothing to detach", ifname);
		return 0;
	}
	warn_err(err, "%s: bpf_xdp_detach", ifname);
	return -1;
}

/* What the main thread reads for a snapshot. */
struct watch {
	int map_fd;
	struct xdp_drop_stats *vals;
	int ncpus;
};

static void watch_snapshot(void *arg)
{
	struct watch *w = arg;

	report("snapshot", w->map_fd, w->vals, w->ncpus, NULL);
}

int main(int argc, char **argv)
{
	struct watch watch;
	struct xdp_drop_stats *vals = NULL;
	struct bpf_object *obj = NULL;
	struct bpf_program *prog;
	struct bpf_map *map, *cfg_map;
	struct bpf_prog_info info = {};
	__u32 info_len = sizeof(info);
	char path[PATH_MAX];
	const char *reason = NULL;
	enum xdp_mode mode;
	sigset_t sigs;
	uint64_t t0, deadline;
	int ifindex, ncpus, prog_fd, map_fd, err;
	int ret = RXB_EXIT_FAIL;
	struct opts o;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);

	ifindex = opt_ifindex(o.ifname);

	if (o.prog_path) {
		if (access(o.prog_path, R_OK))
			usage_error("--prog '%s': %s", o.prog_path, strerror(errno));
		snprintf(path, sizeof(path), "%s", o.prog_path);
	} else {
		char dir[PATH_MAX - sizeof(DEFAULT_PROG_FILE) - 1];

		err = exe_dir(dir, sizeof(dir));
		if (err)
			die_err(err, "readlink /proc/self/exe");
		snprintf(path, sizeof(path), "%s/%s", dir, DEFAULT_PROG_FILE);
	}

	pin_cpu(o.cpu);

	/* Handle signals synchronously with sigtimedwait in the main loop;
	 * they stay pending (not fatal) while we load and attach. A closed
	 * stdout must not kill us before we detach. */
	block_signals(&sigs, 0);

	libbpf_set_print(libbpf_print);

	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		die_err(ncpus, "libbpf_num_possible_cpus");
	vals = calloc((size_t)ncpus, sizeof(*vals));
	if (!vals)
		die("calloc");

	obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		warn_err(0, "bpf_object__open_file %s: %s", path, lbstrerror(errno));
		goto out_close;
	}
	err = bpf_object__load(obj);
	if (err) {
		warn_err(0, "bpf_object__load %s: %s", path, lbstrerror(err));
		goto out_close;
	}
	prog = bpf_object__find_program_by_name(obj, XDP_DROP_PROG_NAME);
	map = bpf_object__find_map_by_name(obj, XDP_DROP_MAP_NAME);
	cfg_map = bpf_object__find_map_by_name(obj, XDP_DROP_CFG_NAME);
	if (!prog || !map || !cfg_map) {
		warn_err(ENOENT, "%s: program '%s' or map '%s'/'%s' missing", path,
			 XDP_DROP_PROG_NAME, XDP_DROP_MAP_NAME, XDP_DROP_CFG_NAME);
		goto out_close;
	}
	prog_fd = bpf_program__fd(prog);
	map_fd = bpf_map__fd(map);
	/* the test flow, before the program sees a frame */
	if (bpf_map_update_elem(bpf_map__fd(cfg_map), &(__u32){ 0 }, &o.cfg, BPF_ANY)) {
		warn_err(errno, "bpf_map_update_elem(%s)", XDP_DROP_CFG_NAME);
		goto out_close;
	}
	err = bpf_obj_get_info_by_fd(prog_fd, &info, &info_len);
	if (err) {
		warn_err(err, "bpf_obj_get_info_by_fd");
		goto out_close;
	}

	mode = o.mode == MODE_AUTO ? MODE_NATIVE : o.mode;
	err = attach(ifindex, prog_fd, mode);
	if (err && o.mode == MODE_AUTO && err != -EBUSY && err != -EEXIST) {
		mode = MODE_SKB;
		err = attach(ifindex, prog_fd, mode);
	}
	if (err) {
		json_printf("{\"event\":\"error\",\"kind\":\"unsupported\",\"errno\":%d,"
			    "\"reason\":", -err);
		{
			char msg[256];

			snprintf(msg, sizeof(msg), "%s XDP attach on %s refused: %s",
				 mode_names[mode], o.ifname, strerror(-err));
			json_str(msg);
		}
		json_printf("}");
		json_end();
		ret = RXB_EXIT_UNSUPPORTED;
		goto out_close;
	}

	/* Attached: every path from here on goes through detach. */
	t0 = mono_ns();
	deadline = t0 + (uint64_t)(o.duration_s * NS_PER_SEC);
	json_printf("{\"event\":\"ready\",\"tool\":\"%s\",\"ifname\":", TOOL_NAME);
	json_str(o.ifname);
	json_printf(",\"ifindex\":%d,\"mode\":\"%s\",\"prog_id\":%u,\"ncpus\":%d,"
		    "\"flow\":", ifindex, mode_names[mode], info.id, ncpus);
	if (o.cfg.filter) {
		json_printf("{\"proto\":\"udp\",\"dst_ip\":");
		json_str(o.dst_ip);
		json_printf(",\"dst_port\":%u}", ntohs(o.cfg.dport));
	} else {
		json_printf("null");
	}
	json_printf(",\"t_ns\":%" PRIu64 "}", t0);
	json_end();

	watch = (struct watch){ .map_fd = map_fd, .vals = vals, .ncpus = ncpus };
	reason = run_until_signal(&sigs, deadline, watch_snapshot, NULL, &watch);
	ret = strcmp(reason, "error") ? RXB_EXIT_OK : RXB_EXIT_FAIL;

	if (report("final", map_fd, vals, ncpus, reason))
		ret = RXB_EXIT_FAIL;
	if (detach(ifindex, o.ifname, prog_fd, mode))
		ret = RXB_EXIT_FAIL;

out_close:
	bpf_object__close(obj);
	free(vals);
	return ret;
}
