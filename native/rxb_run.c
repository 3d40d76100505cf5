// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-run: the far end of an SSH host's tool (hosts/ssh.py SshHost.popen),
 * the protocol of `remote.py run` without a Python start per tool (110-370
 * ms, the more on a CPU a generator saturates; the tool's first line comes
 * 7-13 ms after rxb-run starts: tests/bench_run_start.py).
 *
 *   rxb-run --bound S --record FILE -- ARGV...
 *
 * starts ARGV in a session of its own (stdin /dev/null, stdout and stderr
 * ours, the signals remote.py resets back to their defaults), prints
 * {"event": "spawned", "pid": P, "start": T} (T: field 22 of /proc/P/stat,
 * what state.pid_start compares) and appends "P T" to FILE (the host's
 * state record, read by `remote.py release`); both before ARGV is executed,
 * so the spawned line is the first line out and the record exists before
 * the tool does anything.  Then, in one poll loop:
 *   stdin      a signal number a line, sent to the tool; other lines are
 *              ignored; when stdin closes (the SSH channel is gone) TERM the
 *              tool's group, KILL it 2 s later (or once the tool has ended)
 *   bound      after S seconds TERM the group, KILL it 5 s later
 *   SIGINT, SIGTERM, SIGHUP, SIGQUIT to rxb-run: as a closed stdin
 * and once the tool has ended, KILL what it left in its group and exit
 * with its status (128 + N for death by signal N, as remote.py).  The tool
 * gets SIGKILL if rxb-run itself is killed (PR_SET_PDEATHSIG).
 *
 * Exit: the tool's status; 127 if ARGV cannot be executed (one line on
 * stderr, after the spawned line); 1 on a failure of rxb-run itself (the
 * tool's group killed first); 2 on bad arguments (nothing started).
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOOL_NAME       "rxb-run"
#define MAX_BOUND_S     (365.0 * 24 * 3600)
#define GRACE_STDIN_NS  (2 * NS_PER_SEC) /* remote.py GRACE_STDIN */
#define GRACE_BOUND_NS  (5 * NS_PER_SEC) /* remote.py GRACE_BOUND */
#define EXEC_FAILED     127
#define LINE_MAX_LEN    64

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* what remote.py's _reset_signals (and subprocess's restore_signals) reset */
static const int reset_sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGPIPE, SIGXFSZ };
/* rxb-run's own: the tool's end, and requests to stop it */
static const int own_sigs[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT };

struct opts {
	double bound_s;
	const char *record;
	char **argv;
};

static struct {
	pid_t pid;                 /* the tool, leader of its own group */
	uint64_t kill_at;          /* 0: no KILL pending */
	char line[LINE_MAX_LEN];   /* the stdin line being read */
	size_t len;
	bool overlong;             /* discard until the next newline */
} g;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --bound SECS --record FILE -- COMMAND [ARG...]\n"
		"Run COMMAND in a session of its own, bounded in time and killed with its\n"
		"process group when stdin closes (the far end of an SSH host's tool).\n"
		"\n"
		"  -b, --bound SECS   TERM the tool's group after SECS (0..%.0f), KILL it\n"
		"                     %llu s later\n"
		"  -r, --record FILE  append \"PID START\" of the tool to FILE\n"
		"  -h, --help         show this help\n"
		"\n"
		"Prints {\"event\": \"spawned\", \"pid\", \"start\"} first; stdin: a signal number\n"
		"a line, sent to the tool; stdin closed or SIGINT/SIGTERM/SIGHUP/SIGQUIT:\n"
		"TERM the group, KILL it %llu s later.\n"
		"Exit: the tool's status (128+N if killed by signal N), 127 the command\n"
		"cannot be run, 1 failure, 2 bad arguments.\n",
		TOOL_NAME, MAX_BOUND_S, (unsigned long long)(GRACE_BOUND_NS / NS_PER_SEC),
		(unsigned long long)(GRACE_STDIN_NS / NS_PER_SEC));
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "bound", required_argument, NULL, 'b' },
		{ "record", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_bound = false;
	int c;

	*o = (struct opts){ 0 };
	/* '+': options end at the command (its own options are its own) */
	while ((c = opt_next(argc, argv, "+:b:r:h", longopts, usage)) != -1) {
		switch (c) {
		case 'b':
			if (parse_double(optarg, &o->bound_s) || o->bound_s < 0 ||
			    o->bound_s > MAX_BOUND_S)
				usage_error("--bound: invalid value '%s' (want seconds, 0..%.0f)", optarg,
					    MAX_BOUND_S);
			have_bound = true;
			break;
		case 'r':
			if (!*optarg)
				usage_error("--record: empty file name");
			o->record = optarg;
			break;
		}
	}
	if (!have_bound)
		usage_error("--bound is required");
	if (!o->record)
		usage_error("--record is required");
	if (optind >= argc)
		usage_error("no command given (after --)");
	o->argv = argv + optind;
}

/* Field 22 of /proc/PID/stat (starttime), after the parenthesised comm. */
static long long pid_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p += 2; /* field 3 */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	return strtoll(p, NULL, 10);
}

static void kill_group(int sig)
{
	if (killpg(g.pid, sig) && errno != ESRCH && errno != EPERM)
		warn_err(errno, "killpg %d", (int)g.pid);
}

/* TERM the tool's group now, KILL it after grace (the earlier of two). */
static void stop(uint64_t grace_ns)
{
	uint64_t at = mono_ns() + grace_ns;

	kill_group(SIGTERM);
	if (!g.kill_at || at < g.kill_at)
		g.kill_at = at;
}

/* A failure of ours after the tool exists: it does not outlive us. */
__attribute__((noreturn)) static void fail(const char *what)
{
	int err = errno;

	kill_group(SIGKILL);
	die_err(err, "%s", what);
}

/* In the child: every descriptor above stderr closed at exec (subprocess's
 * close_fds), close_range where the kernel has CLOSE_RANGE_CLOEXEC. */
static void cloexec_from_3(void)
{
	struct dirent *d;
	DIR *dir;

#ifdef SYS_close_range
	if (!syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC))
		return;
#endif
	dir = opendir("/proc/self/fd");
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		int fd = atoi(d->d_name);

		if (fd > 2 && fd != dirfd(dir))
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(dir);
}

/* The child: its own session, default signals, stdin /dev/null; it waits
 * for the parent's go (a byte on go_fd; EOF: the parent is gone, give up)
 * and executes argv, reporting a failed exec's errno on err_fd. */
__attribute__((noreturn)) static void child(char **argv, pid_t parent, int devnull, int go_fd,
					    int err_fd)
{
	sigset_t none;
	char go = 0;
	int err;

	setsid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(EXEC_FAILED);
	for (int k = 0; k < ARRAY_SIZE(reset_sigs); k++)
		signal(reset_sigs[k], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(devnull, STDIN_FILENO) < 0)
		goto out;
	while (read(go_fd, &go, 1) < 0) {
		if (errno != EINTR)
			goto out;
	}
	cloexec_from_3();
	if (go != 'g')
		_exit(EXEC_FAILED); /* the parent is gone before its go */
	execvp(argv[0], argv);
out:
	err = errno;
	if (write(err_fd, &err, sizeof(err)) < 0) {
		/* nothing left to tell it with */
	}
	_exit(EXEC_FAILED);
}

/* The tool's status once it has ended (the zombie kept: its pid still names
 * the group for the last KILL); -1 while it runs. */
static int tool_status(void)
{
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)g.pid, &si, WEXITED | WNOHANG | WNOWAIT)) {
		if (errno == EINTR)
			return -1;
		fail("waitid");
	}
	if (si.si_pid != g.pid)
		return -1;
	return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

/* One stdin line: a signal number (ASCII digits, surrounding white space
 * ignored) is sent to the tool; anything else, or a number that is no
 * signal, is ignored. */
static void on_line(char *s)
{
	unsigned int sig = 0;
	char *end;

	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r')))
		*--end = '\0';
	if (!*s)
		return;
	for (char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return;
		sig = sig * 10 + (unsigned int)(*p - '0'); /* decimal, as int() reads it */
		if (sig > 1000)
			return;
	}
	if (kill(g.pid, (int)sig) && errno != ESRCH && errno != EINVAL)
		warn_err(errno, "kill %d %u", (int)g.pid, sig);
}

/* Read what stdin has; returns false once it has closed. */
static bool on_stdin(void)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	for (ssize_t k = 0; k < n; k++) {
		if (buf[k] == '\n') {
			g.line[g.len] = '\0';
			if (!g.overlong)
				on_line(g.line);
			g.len = 0;
			g.overlong = false;
		} else if (g.len < sizeof(g.line) - 1) {
			g.line[g.len++] = buf[k];
		} else {
			g.overlong = true;
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	int devnull, go[2], err[2], sfd, rec, status, exec_err;
	pid_t me = getpid();
	struct pollfd fds[2];
	bool stdin_open = true, bound_hit = false;
	uint64_t bound_at;
	long long start;
	char line[64];
	sigset_t sigs;
	struct opts o;
	ssize_t n;

	rxb_tool = TOOL_NAME;
	parse_args(argc, argv, &o);
	rec = open(o.record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (rec < 0)
		usage_error("--record %s: %s", o.record, strerror(errno));
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0)
		die("open /dev/null");
	if (pipe2(go, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		die("pipe2");
	sigemptyset(&sigs);
	for (int k = 0; k < ARRAY_SIZE(own_sigs); k++)
		sigaddset(&sigs, own_sigs[k]);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL))
		die("sigprocmask");
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die("signalfd");
	signal(SIGPIPE, SIG_IGN); /* stdout is the SSH channel: it may be gone */

	fflush(stdout);
	g.pid = fork();
	if (g.pid < 0)
		die("fork");
	if (g.pid == 0)
		child(o.argv, me, devnull, go[0], err[1]);
	close(go[0]);
	close(err[1]);
	close(devnull);

	/* the child exists, held: its start time is fixed (fork), record it */
	start = pid_start(g.pid);
	if (start < 0)
		snprintf(line, sizeof(line), "%d None\n", (int)g.pid);
	else
		snprintf(line, sizeof(line), "%d %lld\n", (int)g.pid, start);
	if (write(rec, line, strlen(line)) != (ssize_t)strlen(line))
		fail("write --record");
	close(rec);
	if (start < 0)
		printf("{\"event\": \"spawned\", \"pid\": %d, \"start\": null}\n", (int)g.pid);
	else
		printf("{\"event\": \"spawned\", \"pid\": %d, \"start\": %lld}\n", (int)g.pid, start);
	fflush(stdout);
	if (write(go[1], "g", 1) != 1)
		fail("write to the child");
	close(go[1]);
	/* EOF once the exec has happened (close-on-exec), an errno if it failed */
	while ((n = read(err[0], &exec_err, sizeof(exec_err))) < 0 && errno == EINTR)
		;
	close(err[0]);
	if (n == (ssize_t)sizeof(exec_err)) {
		warn_err(exec_err, "cannot run '%s'", o.argv[0]);
		waitpid(g.pid, NULL, 0);
		return EXEC_FAILED;
	}
	bound_at = mono_ns() + (uint64_t)(o.bound_s * NS_PER_SEC);

	for (;;) {
		struct signalfd_siginfo si;
		uint64_t now, next;
		struct timespec ts;
		nfds_t nfds = 0;
		int r;

		status = tool_status();
		if (status >= 0)
			break;
		now = mono_ns();
		if (!bound_hit && now >= bound_at) {
			bound_hit = true;
			fprintf(stderr, "rxbench: tool overstayed its bound of %.0f s: terminated\n",
				o.bound_s);
			stop(GRACE_BOUND_NS);
		}
		if (g.kill_at && now >= g.kill_at) {
			kill_group(SIGKILL);
			g.kill_at = 0;
		}
		next = bound_hit ? 0 : bound_at;
		if (g.kill_at && (!next || g.kill_at < next))
			next = g.kill_at;
		if (next) {
			uint64_t left = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(left / NS_PER_SEC);
			ts.tv_nsec = (long)(left % NS_PER_SEC);
		}
		fds[nfds++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		if (stdin_open)
			fds[nfds++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		r = ppoll(fds, nfds, next ? &ts : NULL, NULL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			fail("ppoll");
		}
		if (fds[0].revents) {
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo != SIGCHLD && tool_status() < 0)
					stop(GRACE_STDIN_NS);
			}
		}
		/* a line after the tool's end is not sent (its pid may be a zombie's) */
		if (stdin_open && nfds > 1 && fds[1].revents && tool_status() < 0 && !on_stdin()) {
			stdin_open = false;
			stop(GRACE_STDIN_NS);
		}
	}
	kill_group(SIGKILL); /* what the tool left in its group */
	waitpid(g.pid, NULL, 0);
	return status;
}
