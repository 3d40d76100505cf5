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

_Static_assert(sizeof(struct io_uring_zcrx_rqe) == 16, "zcrx rqe ABI");
_Static_assert(sizeof(struct io_uring_zcrx_cqe) == 16, "zcrx cqe ABI");
_Static_assert(sizeof(struct io_uring_zcrx_offsets) == 32, "zcrx offsets ABI");
_Static_assert(sizeof(struct io_uring_zcrx_area_reg) == 48, "zcrx area ABI");
_Static_assert(sizeof(struct io_uring_zcrx_ifq_reg) == 96, "zcrx ifq ABI");
_Static_assert(sizeof(struct rxb_region_desc) == 64, "region desc ABI");

#endif
