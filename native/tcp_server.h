/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rxb-tcp-server's parts.  rxb_tcp_server.c has the options, listeners,
 * reports and main; each receive path is a struct server_mode in a file of
 * its own (tcp_server_blocking.c, tcp_server_epoll.c, tcp_server_uring.c,
 * tcp_server_uring_opt.c, tcp_server_zcrx.c), the io_uring ones on the ring
 * code of tcp_server_ring.c.  This header is what they share.
 */
#ifndef RXB_TCP_SERVER_H
#define RXB_TCP_SERVER_H

#include "common.h"
#include "rxb_tcp_common.h"

#include <pthread.h>
#include <stdalign.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>
#include "rxb_zcrx_rq.h"

#define TOOL_NAME          "rxb-tcp-server"
#define DEFAULT_ADDR       "0.0.0.0"
#define DEFAULT_BUF        (64U << 10)
#define MAX_BUF            (16U << 20)
#define DEFAULT_RING_BUFS  256U         /* uring_opt provided buffers per loop */
#define MAX_WAIT_NR        4096U        /* uring_opt --wait-nr */
#define DEFAULT_WAIT_US    5000U        /* uring_opt --wait-us with --wait-nr > 1 */
#define MAX_RING_BUFS      32768U       /* kernel limit of a buffer ring */
#define MAX_RING_MEM       (1ULL << 30) /* ring bufs x buf, per loop */
#define MAX_LOOPS          256U
#define POLL_TIMEOUT_MS    100          /* bounds how late a thread sees stop */
#define MAX_RQ_ENTRIES     32768U       /* kernel limit of a refill ring */

enum mode { MODE_BLOCKING, MODE_EPOLL, MODE_EPOLL_ET, MODE_URING, MODE_URING_OPT, MODE_URING_ZCRX,
	    MODE_COUNT };
extern const char *const mode_names[MODE_COUNT];

struct opts {
	int mode;
	const char *addr_str;
	struct in_addr addr;
	unsigned int port;
	int cpus[MAX_LOOPS];
	unsigned int ncpus;
	bool touch;
	double duration_s;
	unsigned int buf;
	unsigned int ring_bufs;
	unsigned int wait_nr;   /* uring_opt: completions per wait */
	unsigned int wait_us;   /* ... its bound */
	const char *ifname;
	int rxq;                /* -1: not given */
	unsigned int rq_entries; /* uring_zcrx refill entries, 0: one per area page */
	bool nodev;             /* uring_zcrx device-less (ZCRX_REG_NODEV): copy fallback */
};

struct ctrs {
	uint64_t bytes;    /* payload bytes received */
	uint64_t recvs;    /* recv calls / completions that returned data */
	uint64_t accepted;
	uint64_t closed;   /* connections the peer ended (EOF or error) */
	uint64_t errors;   /* receive/accept errors (a reset connection counts) */
	uint64_t rearms;   /* multishot requests that ended and were re-armed */
	uint64_t waits;    /* epoll_wait / io_uring waits of the event loops */
	uint64_t enobufs;  /* of which for lack of buffers (ENOBUFS, zcrx ENOSPC/ENOMEM) */
	uint64_t touch;    /* byte sum of what was received (--touch) */
};

/* One connection.  blocking: owned by its thread (c, buf); epoll, uring,
 * uring_zcrx: owned by its loop (buf for uring only). */
struct conn {
	struct conn *prev, *next;
	struct loop *loop;
	int fd;
	pthread_t tid;
	alignas(CACHELINE) struct ctrs c; /* blocking only */
	alignas(CACHELINE) uint8_t buf[];
};

/* What only one mode's loops have. */
struct epoll_loop {
	int epfd;
	uint8_t *buf;
};

struct opt_loop {               /* uring_opt's provided-buffer ring */
	struct io_uring_buf_ring *br;
	size_t br_len;
	uint8_t *bufs;
	size_t bufs_len;
	unsigned int br_mask;
	unsigned int br_pending; /* buffers re-added, not yet published */
};

struct zc_loop {                /* uring_zcrx */
	uint8_t *area;
	size_t area_len;
	void *rq_mem;
	size_t rq_len;
	struct zrq rq;          /* refill ring + entries waiting for room */
	uint32_t rq_entries;
	uint64_t refill_full;   /* buffers that found the ring full (kept, retried) */
	uint32_t refill_pending_max;
	uint32_t zcrx_id;
	/* device-less zcrx */
	uint64_t flushes;       /* ZCRX_CTRL_FLUSH_RQ calls */
	uint64_t flush_errors;
	const struct rxb_zcrx_stats *stats; /* in the refill region, kernel-written */
	char stats_why[96];     /* why there are no copy counters */
};

/* One event loop (epoll, io_uring) or, for blocking, one CPU slot whose
 * counters collect its ended connection threads (under the blocking lock). */
struct loop {
	alignas(CACHELINE) struct ctrs c;
	alignas(CACHELINE) unsigned int idx;
	int cpu;                /* -1: not pinned */
	int lfd;                /* its listener (-1: shares run.lfd) */
	pthread_t tid;
	bool started;
	int err;                /* set by the thread before it exits on error */
	char err_what[160];
	bool err_seen;
	struct conn *conns;     /* open connections (not blocking) */
	/* io_uring (uring, uring_opt, uring_zcrx) */
	struct io_uring ring;
	bool ring_ok;
	unsigned int inflight;  /* requests submitted, final CQE not yet seen */
	bool drained;           /* inflight reached 0 after cancel: safe to free */
	union {
		struct epoll_loop ep;
		struct opt_loop opt;
		struct zc_loop zc;
	};
};

/* A receive path: rxb_tcp_server.c's main calls these in this order. */
struct server_mode {
	bool nonblock;          /* non-blocking listeners */
	bool one_listener;      /* one listener for every loop (else, with several
				 * loops, an SO_REUSEPORT listener each) */
	bool one_thread;        /* one unpinned thread on loop 0 for every loop
				 * (blocking's acceptor), else a pinned thread per loop */
	void (*prepare)(void);             /* once the listeners are open (NULL: none) */
	void (*setup)(struct loop *l);     /* each loop, before any thread (NULL: none) */
	void *(*thread)(void *loop);
	void (*collect)(struct ctrs *per); /* counters per loop (NULL: the loops' own) */
	void (*ready)(void);    /* ready-line fields after "ring_flags" (NULL:
				 * READY_NO_RING_BUFS) */
	void (*report)(void);   /* snapshot/final fields after "touch" (NULL: none) */
	bool (*stopped)(void);  /* after the join: false if threads still use the
				 * loops, which are then left to exit() (NULL: true) */
	void (*free_loop)(struct loop *l); /* once the kernel is done with the
					    * loop's memory (NULL: nothing) */
};

extern const struct server_mode mode_blocking, mode_epoll, mode_uring, mode_uring_opt,
	mode_uring_zcrx;

/* The ready line's uring_opt fields of every other mode. */
#define READY_NO_RING_BUFS ",\"ring_bufs\":null,\"fixed_files\":null,\"wait_nr\":null," \
			   "\"wait_us\":null"

extern struct server_run {
	struct opts o;
	const struct server_mode *m;
	struct loop *loops;
	unsigned int nloops;
	int lfd;                /* one listener for every loop, else -1 */
	int stop;               /* __atomic, set by main */
	pthread_t main_tid;
	unsigned int ring_flags; /* io_uring setup flags in use */
	unsigned int nslots;     /* uring_opt fixed-file table size */
	int ifindex;
} run;

static inline bool stopping(void)
{
	return __atomic_load_n(&run.stop, __ATOMIC_RELAXED);
}

/* A loop cannot go on: record why and wake the main thread (SIGUSR2). */
RXB_PRINTF(3, 4) void loop_fail(struct loop *l, int err, const char *fmt, ...);
/* Add a batch's counts d to a loop's published counters dst. */
void ctrs_publish(struct ctrs *dst, const struct ctrs *d);
/* Add published counters c to sum. */
void ctrs_read(struct ctrs *sum, const struct ctrs *c);
/* {"event":"error","kind":"unsupported",...} for what the kernel refused. */
RXB_PRINTF(3, 4) void report_unsupported(const char *feature, int err, const char *fmt, ...);

static inline void conn_link(struct conn **head, struct conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static inline void conn_unlink(struct conn **head, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* An accepted socket as a connection of loop l (buf: the size of its
 * receive buffer), linked into the loop's list; NULL without memory (the
 * socket closed, counted in d as closed and as an error). */
struct conn *conn_new(struct loop *l, int fd, size_t buf, struct ctrs *d);
/* Close a loop's connection (the peer ended it; error: on an error). */
void conn_close(struct loop *l, struct conn *c, struct ctrs *d, bool error);

/* Received data at p[0..n): count it, and read it all with --touch. */
static inline void account(struct ctrs *d, const void *p, size_t n)
{
	d->bytes += n;
	d->recvs++;
	if (run.o.touch)
		d->touch += bytesum(p, n);
}

/* ---- io_uring (tcp_server_ring.c) ----------------------------------------- */

/* user_data: the request kind in the top byte, a conn pointer or a fixed
 * file slot below. */
enum { TAG_ACCEPT = 1, TAG_RECV, TAG_CLOSE, TAG_CANCEL };
#define UD(tag, v)   (((uint64_t)(tag) << 56) | (uint64_t)(v))
#define UD_TAG(ud)   ((unsigned int)((ud) >> 56))
#define UD_VAL(ud)   ((ud) & ((1ULL << 56) - 1))

/* What a ring mode does on its ring. */
struct ring_ops {
	/* queue the accept; d: count it as a re-arm (NULL: the first) */
	void (*arm_accept)(struct loop *l, struct ctrs *d);
	/* an accepted socket (a file descriptor, or a fixed-file slot) */
	void (*new_conn)(struct loop *l, int fd, struct ctrs *d);
	void (*cqe)(struct loop *l, struct io_uring_cqe *cqe, struct ctrs *d);
	void (*end_batch)(struct loop *l); /* after each batch of CQEs (NULL: none) */
};

/* Create a loop's ring (main thread) with setup flags want.  A
 * SINGLE_ISSUER ring is created disabled, so that main can register
 * resources, and enabled by its loop thread (ring_loop), which becomes its
 * only submitter.  COOP_TASKRUN is optional: dropped (with a note) if
 * refused.  Exit 3 if the kernel refuses the ring. */
void ring_create(struct loop *l, unsigned int want);
/* Exit 3 unless the kernel knows every opcode in ops[]. */
void require_opcodes(struct io_uring *ring, const int *ops, const char *const *names, int n);
/* Exit 3: io_uring_setup refused flags. */
__attribute__((noreturn)) void ring_setup_fail(const char *feature, int err, unsigned int flags);
/* "SINGLE_ISSUER|DEFER_TASKRUN|..." */
const char *ring_flag_names(unsigned int flags, char *buf, size_t len);
/* An SQE, submitting what is queued when the SQ is full (NULL: the loop
 * failed and the run stops). */
struct io_uring_sqe *get_sqe(struct loop *l);
/* A ring loop's thread: enable a SINGLE_ISSUER ring, arm the accept, reap
 * completions until stop, then cancel what is in flight and wait (at most
 * DRAIN_TIMEOUT_NS) for the last completions, so that no buffer is freed
 * while the kernel may still write to it. */
void ring_loop(struct loop *l, const struct ring_ops *ops);
/* Queue a multishot accept (direct: into the registered file table, else
 * a file descriptor), counted in d as a re-arm (NULL: the first). */
void arm_multishot_accept(struct loop *l, struct ctrs *d, bool direct);
/* An accept's CQE (single-shot or multishot): count it, hand the socket to
 * ops->new_conn, re-arm the accept once the request has ended (no
 * IORING_CQE_F_MORE) unless stopping. */
void ring_accept_cqe(struct loop *l, const struct io_uring_cqe *cqe, struct ctrs *d,
		     const struct ring_ops *ops);
/* Cleanup: exit the ring; true if the kernel is done with the loop's
 * memory (drained, or never started; no ring: true). */
bool ring_release(struct loop *l);

/* A receive that ended with res but left the connection fine: re-arm. */
static inline bool recv_ended_ok(int res)
{
	return res > 0 || res == -ENOBUFS || res == -EAGAIN || res == -EINTR ||
	       res == -ENOSPC || res == -ENOMEM;
}

/* What follows a multishot receive's CQE (its data already taken). */
enum ms_next {
	MS_GOES_ON,     /* IORING_CQE_F_MORE, or stopping: nothing to do */
	MS_REARM,       /* the multishot stopped, the connection is fine (counted in rearms) */
	MS_EOF,         /* the peer closed: close */
	MS_ERROR,       /* an error: close */
};

static inline enum ms_next ms_recv_next(const struct io_uring_cqe *cqe, struct ctrs *d)
{
	if ((cqe->flags & IORING_CQE_F_MORE) || stopping())
		return MS_GOES_ON;
	if (cqe->res == 0)
		return MS_EOF;
	if (recv_ended_ok(cqe->res)) {
		d->rearms++;
		return MS_REARM;
	}
	return MS_ERROR;
}

#endif
