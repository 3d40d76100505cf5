// SPDX-License-Identifier: GPL-2.0
/*
 * rxb-pingpong: round-trip time of one cache line bounced between two CPUs.
 *
 *   rxb-pingpong --cpus A,B [--rounds N]
 *
 * Two threads, pinned to A and B, take turns incrementing one shared
 * counter (A writes odd values, B even ones, each spinning until the other
 * has written).  Prints one JSON line:
 *   {"event":"final","cpus":[A,B],"rounds":N,"ns_per_round_trip":X,"elapsed_ns":T}
 *
 * Why: on a virtual machine the host decides where vCPUs run; when two
 * vCPUs land on cores that share less cache the generator -> receiver hand
 * over through the veth ring gets slower, and packet rates move with it.
 * Each cell records this probe, so such shifts can be told from the stacks'.
 */
#include "common.h"

#include <getopt.h>
#include <inttypes.h>
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>

#define TOOL_NAME "rxb-pingpong"
#define DEFAULT_ROUNDS 200000U
#define MAX_ROUNDS 100000000U

static struct {
	alignas(64) volatile uint64_t turn;
} line;

struct side {
	int cpu;
	uint64_t first; /* value this side waits for before its first write */
	unsigned int rounds;
};

static void *bounce(void *arg)
{
	const struct side *s = arg;
	uint64_t want = s->first;
	unsigned int i;

	pin_cpu(s->cpu);
	for (i = 0; i < s->rounds; i++) {
		while (__atomic_load_n(&line.turn, __ATOMIC_ACQUIRE) != want)
			__builtin_ia32_pause();
		__atomic_store_n(&line.turn, want + 1, __ATOMIC_RELEASE);
		want += 2;
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s --cpus A,B [--rounds N]\n"
		"Round-trip time of a cache line bounced between CPUs A and B.\n"
		"  -c, --cpus A,B   the two CPUs (required, different)\n"
		"  -n, --rounds N   round trips, 1..%u (default %u)\n",
		TOOL_NAME, MAX_ROUNDS, DEFAULT_ROUNDS);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "rounds", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int cpus[2], c;
	unsigned int ncpus = 0, rounds = DEFAULT_ROUNDS;
	struct side a, b;
	pthread_t ta, tb;
	uint64_t t0, t1;

	rxb_tool = TOOL_NAME;
	while ((c = opt_next(argc, argv, ":c:n:h", longopts, usage)) != -1) {
		switch (c) {
		case 'c':
			opt_cpu_list(optarg, cpus, 2, &ncpus);
			break;
		case 'n':
			rounds = opt_uint("rounds", optarg, 1, MAX_ROUNDS);
			break;
		}
	}
	if (ncpus != 2 || cpus[0] == cpus[1])
		usage_error("--cpus: want two different CPUs, e.g. --cpus 0,1");

	a = (struct side){ .cpu = cpus[0], .first = 0, .rounds = rounds };
	b = (struct side){ .cpu = cpus[1], .first = 1, .rounds = rounds };
	t0 = mono_ns();
	if ((errno = pthread_create(&ta, NULL, bounce, &a)) ||
	    (errno = pthread_create(&tb, NULL, bounce, &b)))
		die("pthread_create");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	t1 = mono_ns();
	json_printf("{\"event\":\"final\",\"cpus\":[%d,%d],\"rounds\":%u,"
		    "\"ns_per_round_trip\":%.1f,\"elapsed_ns\":%" PRIu64 "}",
		    cpus[0], cpus[1], rounds, (double)(t1 - t0) / rounds, t1 - t0);
	json_end();
	return RXB_EXIT_OK;
}
