/* SPDX-License-Identifier: GPL-2.0 */
/* Layout shared by xdp_drop.bpf.c and rxb_xdp_drop.c (and tc_drop.bpf.c's
 * counters). */
#ifndef RXB_XDP_DROP_H
#define RXB_XDP_DROP_H

#include <linux/types.h>

#define XDP_DROP_PROG_NAME "xdp_drop_prog"
#define XDP_DROP_MAP_NAME  "xdp_drop_stats"
#define XDP_DROP_CFG_NAME  "xdp_drop_cfg"

/* Slots of the BPF_MAP_TYPE_PERCPU_ARRAY xdp_drop_stats: the test flow
 * and every other frame (both dropped, counted apart). */
enum { XDP_DROP_FLOW = 0, XDP_DROP_OTHER = 1, XDP_DROP_SLOTS = 2 };

/* One entry per CPU and slot. */
struct xdp_drop_stats {
	__u64 packets;
	__u64 bytes; /* data_end - data: L2 frame without FCS (linear part) */
};

/* The test flow: IPv4 UDP to daddr:dport (network byte order); filter 0:
 * every frame is the test flow. One entry of a BPF_MAP_TYPE_ARRAY. */
struct xdp_drop_cfg {
	__u32 daddr;
	__u16 dport;
	__u16 filter;
};

#endif
