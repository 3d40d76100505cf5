/* rxb-memlock-shim.so: preloaded into upstream xdpsock by rxbench.stacks.xdpsock
 * (workflow/rxbench/stacks/xdpsock.py) only where root cannot raise RLIMIT_MEMLOCK
 * (no CAP_SYS_RESOURCE) and the limit does not matter: kernel >= 5.11
 * charges BPF memory to the memory cgroup, and CAP_IPC_LOCK exempts the
 * AF_XDP UMEM from it. xdpsock insists on setrlimit(RLIMIT_MEMLOCK,
 * unlimited) and exits when it is refused; this turns only that refusal
 * (EPERM, RLIMIT_MEMLOCK) into success, says so on stderr, and leaves the
 * limit as it is. Built by `make tools` (workflow/scripts/build-tools.sh). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

typedef int (*setrlimit_fn)(__rlimit_resource_t, const struct rlimit *);

static int forgive(__rlimit_resource_t res, const struct rlimit *rl, const char *name)
{
	setrlimit_fn real = (setrlimit_fn)dlsym(RTLD_NEXT, name);
	int ret = real ? real(res, rl) : (errno = ENOSYS, -1);

	if (ret != 0 && errno == EPERM && res == RLIMIT_MEMLOCK) {
		fprintf(stderr, "rxb-memlock-shim: setrlimit(RLIMIT_MEMLOCK) refused (no "
			"CAP_SYS_RESOURCE); the current limit is kept\n");
		return 0;
	}
	return ret;
}

int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
	return forgive(res, rl, "setrlimit");
}

int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl)
{
	return forgive(res, (const struct rlimit *)rl, "setrlimit64");
}
