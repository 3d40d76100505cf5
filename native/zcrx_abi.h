/* SPDX-License-Identifier: GPL-2.0 */
/*
 * io_uring zero-copy receive (zcrx, IORING_OP_RECV_ZC) ABI, for building
 * against headers that predate it (Debian 12: liburing 2.3, 6.1 uapi).
 * Values and layouts from the kernel's include/uapi/linux/io_uring.h
 * (Linux >= 6.15).  Include after <liburing.h>: when its io_uring.h already
 * has these definitions (liburing >= 2.10) they win and nothing here is used.
 *
 * The ifq id of a RECV_ZC request goes in sqe->zcrx_ifq_idx, which is the
 * same u32 as sqe->file_index (present in every header version): use that.
 */
#ifndef RXB_ZCRX_ABI_H
#define RXB_ZCRX_ABI_H

#include <stdint.h>

/* The kernel's struct io_uring_region_desc (Linux 6.13), under a name of our
 * own: the headers that have it give no macro to test for (its type
 * constant is an enum), so it cannot be guarded like the rest. */
struct rxb_region_desc {
	uint64_t user_addr;
	uint64_t size;
	uint32_t flags;
	uint32_t id;
	uint64_t mmap_offset;
	uint64_t __resv[4];
};
#define RXB_MEM_REGION_TYPE_USER 1 /* IORING_MEM_REGION_TYPE_USER */

#ifndef IORING_ZCRX_AREA_SHIFT
#define IORING_OP_RECV_ZC        58 /* enum io_uring_op */
#define IORING_REGISTER_ZCRX_IFQ 32 /* enum io_uring_register_op */

/* Bits of an area offset above this one carry the area id. */
#define IORING_ZCRX_AREA_SHIFT 48
#define IORING_ZCRX_AREA_MASK  (~(((uint64_t)1 << IORING_ZCRX_AREA_SHIFT) - 1))

/* One refill-ring entry: a buffer handed back to the kernel. */
struct io_uring_zcrx_rqe {
	uint64_t off;
	uint32_t len;
	uint32_t __pad;
};

/* Second half of a 32-byte CQE of a RECV_ZC request. */
struct io_uring_zcrx_cqe {
	uint64_t off;
	uint64_t __pad;
};

/* Where head, tail and the entries sit in the refill-ring region. */
struct io_uring_zcrx_offsets {
	uint32_t head;
	uint32_t tail;
	uint32_t rqes;
	uint32_t __resv2;
	uint64_t __resv[2];
};

struct io_uring_zcrx_area_reg {
	uint64_t addr;
	uint64_t len;
	uint64_t rq_area_token; /* out: OR'ed into refill offsets */
	uint32_t flags;
	uint32_t dmabuf_fd;
	uint64_t __resv2[2];
};

/* Argument of IORING_REGISTER_ZCRX_IFQ.  Linux 6.15 had __resv[4] where
 * later kernels have zcrx_id, rx_buf_len and __resv[3]: same size, and a
 * zeroed rx_buf_len means "kernel default" everywhere. */
struct io_uring_zcrx_ifq_reg {
	uint32_t if_idx;
	uint32_t if_rxq;
	uint32_t rq_entries;
	uint32_t flags;
	uint64_t area_ptr;   /* struct io_uring_zcrx_area_reg * */
	uint64_t region_ptr; /* struct io_uring_region_desc * */
	struct io_uring_zcrx_offsets offsets; /* out */
	uint32_t zcrx_id;                     /* out */
	uint32_t rx_buf_len;
	uint64_t __resv[3];
};
#endif /* !IORING_ZCRX_AREA_SHIFT */

/* ---- device-less zcrx, the query interface, zcrx control, copy stats ----
 * From the Linux 7.3 uapi (linux/io_uring.h, linux/io_uring/zcrx.h,
 * linux/io_uring/query.h).  Enums there give no macro to test, so these
 * carry names of our own and are used whatever the installed headers say. */
#define RXB_IORING_REGISTER_QUERY     35 /* IORING_REGISTER_QUERY */
#define RXB_IORING_REGISTER_ZCRX_CTRL 36 /* IORING_REGISTER_ZCRX_CTRL */

#define RXB_ZCRX_REG_NODEV 2U            /* enum zcrx_reg_flags: no net device, copy */
#define RXB_ZCRX_FEATURE_EVENT (1U << 1) /* enum zcrx_features: event_desc/stats */
#define RXB_ZCRX_CTRL_FLUSH_RQ 0U        /* enum zcrx_ctrl_op */
#define RXB_ZCRX_EVENT_DESC_FLAG_STATS 1U

#define RXB_IO_URING_QUERY_ZCRX       1  /* enum in linux/io_uring/query.h */
#define RXB_IO_URING_QUERY_ZCRX_EVENT 3

struct rxb_query_hdr {            /* struct io_uring_query_hdr */
	uint64_t next_entry;
	uint64_t query_data;
	uint32_t query_op;
	uint32_t size;
	int32_t result;
	uint32_t __resv[3];
};

struct rxb_query_zcrx {           /* struct io_uring_query_zcrx */
	uint64_t register_flags;      /* supported ZCRX_REG_* */
	uint64_t area_flags;
	uint32_t nr_ctrl_opcodes;
	uint32_t features;            /* ZCRX_FEATURE_* */
	uint32_t rq_hdr_size;         /* refill ring header */
	uint32_t rq_hdr_alignment;
	uint64_t __resv2;
};

struct rxb_query_zcrx_event {     /* struct io_uring_query_zcrx_event */
	uint32_t event_flags;
	uint32_t stats_size;          /* sizeof(struct zcrx_stats) */
	uint32_t stats_off_alignment;
	uint32_t __resv1;
	uint64_t __resv2[4];
};

struct rxb_zcrx_stats {           /* struct zcrx_stats, kernel-written */
	uint64_t copy_count;          /* copy-fallback CQEs */
	uint64_t copy_bytes;          /* bytes copied */
};

struct rxb_zcrx_event_desc {      /* struct zcrx_event_desc (ifq_reg.event_desc) */
	uint64_t user_data;
	uint32_t type_mask;
	uint32_t flags;               /* RXB_ZCRX_EVENT_DESC_FLAG_STATS */
	uint64_t stats_offset;        /* from the start of the refill region */
	uint64_t __resv2[9];
};

struct rxb_zcrx_ctrl {            /* struct zcrx_ctrl */
	uint32_t zcrx_id;
	uint32_t op;
	uint64_t __resv[2];
	uint64_t arg[6];              /* union { zc_export, zc_flush } */
};

/* 7.3 has event_desc where older headers have __resv[0]: same offset. */
#define RXB_ZCRX_IFQ_REG_EVENT_DESC_OFF 72

_Static_assert(sizeof(struct rxb_query_hdr) == 40, "query hdr ABI");
_Static_assert(sizeof(struct rxb_query_zcrx) == 40, "query zcrx ABI");
_Static_assert(sizeof(struct rxb_query_zcrx_event) == 48, "query zcrx event ABI");
_Static_assert(sizeof(struct rxb_zcrx_event_desc) == 96, "zcrx event desc ABI");
_Static_assert(sizeof(struct rxb_zcrx_ctrl) == 72, "zcrx ctrl ABI");
_Static_assert(__builtin_offsetof(struct io_uring_zcrx_ifq_reg, rx_buf_len) + 4 ==
	       RXB_ZCRX_IFQ_REG_EVENT_DESC_OFF, "zcrx ifq event_desc offset");

_Static_assert(sizeof(struct io_uring_zcrx_rqe) == 16, "zcrx rqe ABI");
_Static_assert(sizeof(struct io_uring_zcrx_cqe) == 16, "zcrx cqe ABI");
_Static_assert(sizeof(struct io_uring_zcrx_offsets) == 32, "zcrx offsets ABI");
_Static_assert(sizeof(struct io_uring_zcrx_area_reg) == 48, "zcrx area ABI");
_Static_assert(sizeof(struct io_uring_zcrx_ifq_reg) == 96, "zcrx ifq ABI");
_Static_assert(sizeof(struct rxb_region_desc) == 64, "region desc ABI");

#endif
