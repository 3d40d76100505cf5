// SPDX-License-Identifier: GPL-2.0
/* Count every received frame (packets, bytes) per CPU, then drop it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xdp_drop.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_drop_stats);
} xdp_drop_stats SEC(".maps");

SEC("xdp")
int xdp_drop_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct xdp_drop_stats *st;

	st = bpf_map_lookup_elem(&xdp_drop_stats, &key);
	if (st) {
		/* Per-CPU slot: no other writer, plain increments are fine. */
		st->packets++;
		st->bytes += data_end - data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
