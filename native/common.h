/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers shared by the rxb native tools. */
#ifndef RXB_COMMON_H
#define RXB_COMMON_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes shared by all tools. */
enum {
	RXB_EXIT_OK = 0,
	RXB_EXIT_FAIL = 1,        /* unexpected runtime failure */
	RXB_EXIT_USAGE = 2,       /* bad arguments / unknown interface */
	RXB_EXIT_UNSUPPORTED = 3, /* kernel/driver refused the requested mode */
};

#define NS_PER_SEC 1000000000ULL
#define ARRAY_SIZE(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Tool name used as the prefix of every diagnostic ("rxb-xdp-drop"). */
extern const char *rxb_tool;

#define RXB_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* "TOOL: <fmt...>: strerror(errno)" on stderr, exit RXB_EXIT_FAIL.
 * Convention: fmt is "<where>: <why>", e.g. die("bpf_object__load %s", path). */
__attribute__((noreturn)) RXB_PRINTF(1, 2) void die(const char *fmt, ...);
/* Same, with an explicit error number (positive or negative errno). */
__attribute__((noreturn)) RXB_PRINTF(2, 3) void die_err(int err, const char *fmt, ...);
/* "TOOL: <fmt...>" (one line) on stderr, exit RXB_EXIT_USAGE. */
__attribute__((noreturn)) RXB_PRINTF(1, 2) void usage_error(const char *fmt, ...);
/* "TOOL: <fmt...>" on stderr (err != 0 appends ": strerror(err)"), no exit. */
RXB_PRINTF(2, 3) void warn_err(int err, const char *fmt, ...);

/* Strict parsers: whole string must be consumed, no sign for unsigned,
 * range-checked; return 0 on success, -1 (errno = EINVAL/ERANGE) on error. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);
int parse_uint(const char *s, unsigned int max, unsigned int *out);
int parse_double(const char *s, double *out); /* finite values only */

/* Option helpers shared by the tools' getopt loops (exit RXB_EXIT_USAGE on
 * a bad value): --duration (seconds, 0 < d <= max), --cpu (a CPU number). */
double opt_duration(const char *arg, double max);
int opt_cpu(const char *arg);
/* --cpus "1,3,0": up to max CPU numbers into cpus[], their count into *n.
 * Every item must be a CPU this process may run on; no empty items. */
void opt_cpu_list(const char *arg, int *cpus, unsigned int max, unsigned int *n);
/* An unsigned option value in min..max, or an option value that must be one
 * of names[0..n-1] (returns its index: keep names[] in enum order). */
unsigned int opt_uint(const char *name, const char *arg, unsigned int min, unsigned int max);
int opt_enum(const char *name, const char *arg, const char *const names[], int n);
/* The ':' (missing argument) and unknown-option cases of a getopt loop. */
__attribute__((noreturn)) void getopt_fail(int c, char *const argv[]);
/* One getopt_long step with the tail every tool shares: 'h' (--help) prints
 * usage(stdout) and exits RXB_EXIT_OK; a missing argument or an unknown
 * option is a one-line usage error (getopt_fail).  Returns the next option
 * of optstring (which starts with ':', or "+:"), or -1 at the end, where an
 * argument left over is an error ("unexpected argument") unless optstring
 * starts with '+' (options end at the first operand: the caller's). */
int opt_next(int argc, char *const argv[], const char *optstring, const struct option *longopts,
	     void (*usage)(FILE *f));
/* Pin the calling thread to one CPU (cpu < 0: do nothing). */
void pin_cpu(int cpu);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mono_ns(void);

/* --ifname -> ifindex (exit RXB_EXIT_USAGE if too long or unknown). */
int opt_ifindex(const char *ifname);

/* Main-thread signals: block SIGUSR1, SIGINT, SIGTERM, SIGHUP and extra
 * (0: none) for sigtimedwait, returning the set in *sigs; ignore SIGPIPE.
 * Call before any thread exists so that every thread inherits the mask. */
void block_signals(sigset_t *sigs, int extra);
/* Wait for one of sigs (blocked) until mono_ns() >= deadline_ns.  Returns the
 * signal number, 0 once the deadline has passed, -1 (errno set) on error. */
int wait_signal_until(const sigset_t *sigs, uint64_t deadline_ns);
/* The main thread's part of a run: wait for sigs (block_signals) until
 * deadline_ns.  SIGUSR1 calls snapshot(arg) (NULL: nothing); SIGUSR2 (a
 * worker's wake-up, when it is in sigs) calls wake(arg), which returns NULL
 * to go on or why the run ends.  Returns that reason, or "duration" once
 * the deadline has passed, "signal" for SIGINT/SIGTERM/SIGHUP, "error"
 * when sigtimedwait fails (said on stderr). */
const char *run_until_signal(const sigset_t *sigs, uint64_t deadline_ns,
			     void (*snapshot)(void *arg), const char *(*wake)(void *arg),
			     void *arg);

/* JSON-lines output on stdout: build one line with json_printf/json_str,
 * terminate it with json_end() (newline + fflush). */
RXB_PRINTF(1, 2) void json_printf(const char *fmt, ...);
void json_str(const char *s); /* quoted + escaped JSON string */
void json_end(void);

/* Traffic safety: the name of an interface that carries an IPv4 default
 * route in this network namespace (only_if: that interface only; NULL: any)
 * into out (IFNAMSIZ bytes); returns 1 if there is one, 0 if none, -1 if
 * /proc/net/route cannot be read (treat as "there may be one"). */
int default_route_dev(const char *only_if, char *out);

/* Directory of the running executable (via /proc/self/exe), no trailing '/'.
 * Returns 0 or -errno. */
int exe_dir(char *buf, size_t len);

#endif
