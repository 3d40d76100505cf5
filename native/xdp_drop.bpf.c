// SPDX-License-Identifier: GPL-2.0
/* Drop every received frame; count the test flow (IPv4 UDP to the
 * configured address and port) and everything else apart, per CPU. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "xdp_drop.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDP_DROP_SLOTS);
	__type(key, __u32);
	__type(value, struct xdp_drop_stats);
} xdp_drop_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_drop_cfg);
} xdp_drop_cfg SEC(".maps");

static __always_inline int test_flow(void *data, void *data_end,
				     const struct xdp_drop_cfg *cfg)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;

	if (!cfg->filter)
		return 1;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5 || ip->protocol != IPPROTO_UDP ||
	    ip->daddr != cfg->daddr || (ip->frag_off & bpf_htons(0x1fff)))
		return 0;   /* a later fragment has no UDP header */
	udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return 0;
	return udp->dest == cfg->dport;
}

SEC("xdp")
int xdp_drop_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct xdp_drop_cfg *cfg;
	struct xdp_drop_stats *st;

	cfg = bpf_map_lookup_elem(&xdp_drop_cfg, &key);
	if (!cfg)
		return XDP_DROP;
	key = test_flow(data, data_end, cfg) ? XDP_DROP_FLOW : XDP_DROP_OTHER;
	st = bpf_map_lookup_elem(&xdp_drop_stats, &key);
	if (st) {
		/* Per-CPU slot: no other writer, plain increments are fine. */
		st->packets++;
		st->bytes += data_end - data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
