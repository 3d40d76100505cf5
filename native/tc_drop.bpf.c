// SPDX-License-Identifier: GPL-2.0
/* tc ingress (cls_bpf, direct action): drop every frame. The AF_PACKET
 * receiver's frames end here, right after the taps that fed its socket
 * (__netif_receive_skb_core delivers to taps before tc ingress), so IP,
 * UDP and ICMP never see them. This kernel has no act_gact or
 * cls_matchall, so `matchall action drop` is not available. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_drop_prog(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
