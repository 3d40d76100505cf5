// SPDX-License-Identifier: GPL-2.0
#include "common.h"

#include <getopt.h>
#include <net/if.h>
#include <sched.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *rxb_tool = "rxb";

static void vmsg(int err, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", rxb_tool);
	vfprintf(stderr, fmt, ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err < 0 ? -err : err));
	fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vmsg(err ? err : EIO, fmt, ap);
	va_end(ap);
	exit(RXB_EXIT_FAIL);
}

void die_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(err ? err : EIO, fmt, ap);
	va_end(ap);
	exit(RXB_EXIT_FAIL);
}

void warn_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(err, fmt, ap);
	va_end(ap);
}

void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(0, fmt, ap);
	va_end(ap);
	exit(RXB_EXIT_USAGE);
}

int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull silently accepts leading whitespace and '-'. */
	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ' || *s == '\t') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -1;
	if (*end) {
		errno = EINVAL;
		return -1;
	}
	if (v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

int parse_uint(const char *s, unsigned int max, unsigned int *out)
{
	uint64_t v;

	if (parse_u64(s, max, &v))
		return -1;
	*out = (unsigned int)v;
	return 0;
}

int parse_double(const char *s, double *out)
{
	double v;
	char *end;

	if (!s || !*s) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtod(s, &end);
	if (errno)
		return -1;
	if (*end || end == s || !isfinite(v)) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

int opt_ifindex(const char *ifname)
{
	int ifindex;

	if (strlen(ifname) >= IF_NAMESIZE)
		usage_error("--ifname '%s': name too long", ifname);
	ifindex = (int)if_nametoindex(ifname);
	if (!ifindex)
		usage_error("--ifname '%s': no such interface (%s)", ifname, strerror(errno));
	return ifindex;
}

void block_signals(sigset_t *sigs, int extra)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGUSR1);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGHUP);
	if (extra)
		sigaddset(sigs, extra);
	if (sigprocmask(SIG_BLOCK, sigs, NULL))
		die("sigprocmask");
	signal(SIGPIPE, SIG_IGN);
}

int wait_signal_until(const sigset_t *sigs, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = mono_ns(), left;
		struct timespec ts;
		int sig;

		if (now >= deadline_ns)
			return 0;
		left = deadline_ns - now;
		ts.tv_sec = (time_t)(left / NS_PER_SEC);
		ts.tv_nsec = (long)(left % NS_PER_SEC);
		sig = sigtimedwait(sigs, NULL, &ts);
		if (sig > 0)
			return sig;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
}

const char *run_until_signal(const sigset_t *sigs, uint64_t deadline_ns,
			     void (*snapshot)(void *arg), const char *(*wake)(void *arg),
			     void *arg)
{
	const char *reason = NULL;

	while (!reason) {
		int sig = wait_signal_until(sigs, deadline_ns);

		if (sig == 0) {
			reason = "duration";
		} else if (sig == SIGUSR1) {
			if (snapshot)
				snapshot(arg);
		} else if (sig == SIGUSR2) {
			if (wake)
				reason = wake(arg);
		} else if (sig > 0) {
			reason = "signal";
		} else {
			warn_err(errno, "sigtimedwait");
			reason = "error";
		}
	}
	return reason;
}

void json_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

void json_end(void)
{
	putchar('\n');
	fflush(stdout);
}

int default_route_dev(const char *only_if, char *out)
{
	char line[256], ifname[16];
	unsigned long dst, gw, mask;
	unsigned int flags;
	FILE *f = fopen("/proc/net/route", "re");

	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		/* Iface Destination Gateway Flags RefCnt Use Metric Mask ... (hex) */
		if (sscanf(line, "%15s %lx %lx %x %*d %*d %*d %lx", ifname, &dst, &gw, &flags,
			   &mask) != 5)
			continue;
		if (dst != 0 || mask != 0)
			continue;
		if (only_if && strcmp(only_if, ifname))
			continue;
		snprintf(out, 16, "%s", ifname);
		fclose(f);
		return 1;
	}
	fclose(f);
	return 0;
}

int exe_dir(char *buf, size_t len)
{
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", buf, len - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	if (slash == buf)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

double opt_duration(const char *arg, double max)
{
	double d;

	if (parse_double(arg, &d) || d <= 0 || d > max)
		usage_error("--duration: invalid value '%s' (want seconds, > 0, <= %g)", arg, max);
	return d;
}

int opt_cpu(const char *arg)
{
	unsigned int cpu;

	if (parse_uint(arg, CPU_SETSIZE - 1, &cpu))
		usage_error("--cpu: invalid value '%s' (want a CPU number)", arg);
	return (int)cpu;
}

void opt_cpu_list(const char *arg, int *cpus, unsigned int max, unsigned int *n)
{
	char *copy, *tok, *next;
	cpu_set_t allowed;
	unsigned int cpu;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		die("sched_getaffinity");
	copy = strdup(arg);
	if (!copy)
		die("strdup");
	*n = 0;
	/* strtok_r would skip empty items ("1,,2"): split by hand. */
	for (tok = copy; tok; tok = next) {
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		if (*n == max)
			usage_error("--cpus '%s': more than %u entries", arg, max);
		if (parse_uint(tok, CPU_SETSIZE - 1, &cpu))
			usage_error("--cpus: invalid CPU '%s' in '%s' (want a comma list of CPU numbers)",
				    tok, arg);
		if (!CPU_ISSET(cpu, &allowed))
			usage_error("--cpus: CPU %u is not available to this process", cpu);
		cpus[(*n)++] = (int)cpu;
	}
	free(copy);
}

void getopt_fail(int c, char *const argv[])
{
	if (c == ':')
		usage_error("option '%s' requires an argument", argv[optind - 1]);
	if (optopt)
		usage_error("unknown option '-%c'", optopt);
	usage_error("unknown option '%s'", argv[optind - 1]);
}

int opt_next(int argc, char *const argv[], const char *optstring, const struct option *longopts,
	     void (*usage)(FILE *f))
{
	int c;

	opterr = 0;
	c = getopt_long(argc, argv, optstring, longopts, NULL);
	switch (c) {
	case 'h':
		usage(stdout);
		exit(RXB_EXIT_OK);
	case ':':
	case '?':
		getopt_fail(c, argv);
	case -1:
		if (optstring[0] != '+' && optind < argc)
			usage_error("unexpected argument '%s'", argv[optind]);
		break;
	default:
		break;
	}
	return c;
}

void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		usage_error("--cpu %d: sched_setaffinity: %s", cpu, strerror(errno));
}

unsigned int opt_uint(const char *name, const char *arg, unsigned int min, unsigned int max)
{
	unsigned int v;

	if (parse_uint(arg, max, &v) || v < min)
		usage_error("--%s: invalid value '%s' (want %u..%u)", name, arg, min, max);
	return v;
}

int opt_enum(const char *name, const char *arg, const char *const names[], int n)
{
	char want[256] = "";
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(arg, names[i]))
			return i;
	for (i = 0; i < n; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
			 i ? (i == n - 1 ? " or " : ", ") : "", names[i]);
	usage_error("--%s: invalid value '%s' (want %s)", name, arg, want);
}
