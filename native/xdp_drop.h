/* SPDX-License-Identifier: GPL-2.0 */
/* Layout shared by xdp_drop.bpf.c and rxb_xdp_drop.c. */
#ifndef RXB_XDP_DROP_H
#define RXB_XDP_DROP_H

#include <linux/types.h>

#define XDP_DROP_PROG_NAME "xdp_drop_prog"
#define XDP_DROP_MAP_NAME  "xdp_drop_stats"

/* One entry per CPU in a single-slot BPF_MAP_TYPE_PERCPU_ARRAY. */
struct xdp_drop_stats {
	__u64 packets;
	__u64 bytes; /* data_end - data: L2 frame without FCS (linear part) */
};

#endif
