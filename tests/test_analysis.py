"""The analysis of a cell's two snapshots (rxbench.analysis): busy time
against the wall clock, steal apart, signed residuals, which drop stages nest,
the bottleneck classes; and the same rules on the committed reference cells."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from rxbench import cells
from rxbench.analysis import (DROP_STAGES, MissingCounter, analyse_eth, analyse_tcp,
                              classify_eth, classify_tcp, cpu_window, delta, processes,
                              reclassify, reclassify_cell, side_snapshot)
from rxbench.platforms.local import Placement
from rxbench.stacks import Generator, Receiver
from rxbench.stacks.eth import DpdkTxonly

pytestmark = pytest.mark.unit

HZ = 100
LINK0 = {"rx_packets": 0, "tx_packets": 0, "rx_dropped": 0, "tx_dropped": 0, "rx_errors": 0,
         "tx_errors": 0, "rx_missed_errors": 0}
CELL = cells.Cell("local", "eth", "xdp_drop", {"cores": 1, "size": 64, "napi": "receiver"}, 1)
PLACE = Placement(generator=[0], application=[1], napi_mode="receiver", napi=[1])
SHARED = Placement(generator=[0], application=[1], napi_mode="sender", napi=[0])
GEN, RX = Generator.__new__(Generator), Receiver.__new__(Receiver)


def ticks(user=0, system=0, idle=0, steal=0, softirq=0):
    return {"user": user, "nice": 0, "system": system, "idle": idle, "iowait": 0, "irq": 0,
            "softirq": softirq, "steal": steal, "guest": 0, "guest_nice": 0}


def counters(t_ns, cpu, link=None, procs=None, snmp=None, softnet=None):
    return {"event": "snapshot", "t0_ns": t_ns, "t1_ns": t_ns + 50_000, "clk_tck": HZ,
            "snapshot_ns": 50_000, "self_cpu_ns": t_ns // 1000, "cpu": cpu,
            "links": {"veth": {**LINK0, **(link or {})}}, "ethtool": {}, "errors": [],
            "softnet": softnet or [{"processed": 0, "dropped": 0, "time_squeeze": 0, "cpu": 0}],
            "snmp": snmp or {"TcpRetransSegs": 0}, "procs": procs or {}}


def snap(t, sent, got, cpu, rx_drops=0, tx_dropped=0, retries=0, gen_dt=0, rx_tool=None):
    """Both hosts are the same kernel here: the same CPU ticks on both sides."""
    return {"sender": {"counters": counters(t, cpu, {"tx_dropped": tx_dropped}),
                       "tool": {"t_ns": t + gen_dt, "packets": sent, "backpressure": retries}},
            "receiver": {"counters": counters(t, cpu, {"rx_dropped": rx_drops}),
                         "tool": {"t_ns": t + 1000, "packets": got, **(rx_tool or {})}}}


IDLE = {"0": ticks(idle=0), "1": ticks(idle=0)}


def test_busy_is_wall_minus_idle_steal_apart_and_tick_sums_are_checked():
    # 5 s window; CPU 1: 1 s idle, 0.5 s steal, the rest sampled as system
    a = counters(0, {"0": ticks(), "1": ticks()})
    b = counters(5_000_000_000, {"0": ticks(user=500), "1": ticks(system=350, idle=100, steal=50)})
    cpu, check = cpu_window(a, b, HZ)
    assert cpu["1"]["busy_s"] == pytest.approx(3.5) and cpu["1"]["steal_s"] == 0.5
    assert cpu["1"]["busy_frac"] == pytest.approx(0.7)
    assert check["ok"] is True and check["tick_ratio"]["1"] == 1.0
    # the B2 case: ticks add up to 0.62x the wall interval; busy_frac by the
    # tick sum would be 0.39 (1.16 / (1.16 + 1.96)), by the wall it is 0.61
    b = counters(5_030_000_000, {"0": ticks(user=503), "1": ticks(system=116, idle=196)})
    cpu, check = cpu_window(a, b, HZ)
    assert check["ok"] is False and check["deviating"] == ["1"]
    assert check["tick_ratio"]["1"] == pytest.approx(3.12 / 5.03, abs=1e-3)
    assert cpu["1"]["busy_frac"] == pytest.approx((5.03 - 1.96) / 5.03)
    # the review's example (af_xdp size=64 rep=1): 5.01 s busy ticks and 0.27 s
    # idle in a 5.055 s window; by the wall it is 0.947 busy: the tick sum is
    # 1.045x the wall, inside the tolerance; its 17.6 % loss classifies it
    b = counters(5_055_000_000, {"0": ticks(user=505), "1": ticks(system=501, idle=27)})
    cpu, check = cpu_window(a, b, HZ)
    assert cpu["1"]["busy_frac"] == pytest.approx((5.055 - 0.27) / 5.055) and check["ok"]


def test_delta_refuses_a_counter_read_at_one_end_only():
    assert delta({"x": 1, "y": 2}, {"x": 4, "y": 2}) == {"x": 3, "y": 0}
    with pytest.raises(MissingCounter, match="rx_queue_0_drops"):
        delta({}, {"rx_queue_0_drops": 12345})
    with pytest.raises(MissingCounter, match="gone"):
        delta({"gone": 1}, {})


def test_a_reader_error_fails_the_analysis():
    a, b = snap(0, 0, 0, IDLE), snap(1_000_000_000, 10, 10, IDLE)
    b["receiver"]["counters"]["errors"] = ["ethtool veth: No such device"]
    with pytest.raises(MissingCounter, match="No such device"):
        analyse_eth(CELL, a, b, PLACE, GEN, RX)


def test_rates_over_their_own_windows_and_the_residual_is_signed():
    # the generator's window is 10 ms shorter than the receiver's: counts over
    # their own windows say rx > offered, rates over them do not
    a = snap(0, 0, 0, IDLE)
    cpu = {"0": ticks(user=100), "1": ticks(system=50, idle=50)}
    b = snap(1_000_000_000, 990_000, 1_000_000, cpu, gen_dt=-10_000_000)
    r = analyse_eth(CELL, a, b, PLACE, GEN, RX)
    assert r["sent_packets"] < r["rx_packets"]
    assert r["offered_pps"] == pytest.approx(1_000_000) and r["drops"]["unaccounted"] == 0
    assert r["windows_s"]["generator"] == pytest.approx(0.99)
    # a stage that explains more than was lost shows as a negative residual
    b = snap(1_000_000_000, 1_000_000, 900_000, cpu, rx_drops=120_000)
    r = analyse_eth(CELL, a, b, PLACE, GEN, RX)
    assert r["drops"]["unaccounted"] == -20_000


class _Xsk(Receiver):
    def stage_drops(self, a, b):
        return {k: b[k] - a[k] for k in ("xsk_rx_dropped", "xsk_rx_ring_full")}


def test_xsk_stages_are_disjoint_and_nest_in_the_veth_drop_which_is_listed_once():
    rx = _Xsk.__new__(_Xsk)
    zero = {"xsk_rx_dropped": 0, "xsk_rx_ring_full": 0}
    a = snap(0, 0, 0, IDLE, rx_tool=zero)
    b = snap(1_000_000_000, 1_000_000, 700_000, IDLE, rx_drops=300_000,
             rx_tool={"xsk_rx_dropped": 200_000, "xsk_rx_ring_full": 100_000})
    r = analyse_eth(CELL, a, b, PLACE, GEN, rx)
    assert r["drops"]["unaccounted"] == 0        # 200 k + 100 k, inside the veth's 300 k
    assert "veth_rx_queue_drops" not in r["drops"]
    assert "receiver_rx_dropped" in DROP_STAGES["disjoint"]
    # the XSK stages alone (a receiver whose veth counter is not read) add up
    b = snap(1_000_000_000, 1_000_000, 700_000, IDLE, rx_drops=0,
             rx_tool={"xsk_rx_dropped": 200_000, "xsk_rx_ring_full": 100_000})
    assert analyse_eth(CELL, a, b, PLACE, GEN, rx)["drops"]["unaccounted"] == 0


def test_xdp_verdict_drops_counted_as_rx_dropped_by_virtio_net_are_received_not_lost():
    # the vm platform's xdp_drop cell (2026-12-02): virtio_net's rx_dropped
    # rose by the program's own drops (69,446 for 65,626 pps received over
    # ~1.06 s), so the loss came out negative; on veth they are apart
    from rxbench.stacks.eth import XdpDrop
    rx = XdpDrop.__new__(XdpDrop)
    other0, other1 = {"other": {"packets": 0}}, {"other": {"packets": 46}}
    a = snap(0, 0, 0, IDLE, rx_tool=other0)
    b = snap(1_000_000_000, 1_000_000, 980_000, IDLE, rx_drops=980_046 + 15_000,
             rx_tool=other1)
    r = analyse_eth(CELL, a, b, PLACE, GEN, rx, "virtio_net")
    assert r["drops"]["receiver_rx_dropped"] == 15_000
    assert r["drops"]["unaccounted"] == 5_000
    assert r["backpressure"]["receiver_rx_dropped_xdp_verdict"] == 980_046
    assert r["backpressure"]["receiver_rx_dropped_raw"] == 995_046
    # veth: the driver's rx_dropped is a loss as it stands
    r = analyse_eth(CELL, a, b, PLACE, GEN, rx, "veth")
    assert r["drops"]["receiver_rx_dropped"] == 995_046
    assert "receiver_rx_dropped_xdp_verdict" not in r["backpressure"]


def test_lossy_is_receiver_limited_whatever_the_cpus_say():
    # generator CPU saturated, receiver's not: 5 % loss -> receiver
    a = snap(0, 0, 0, IDLE)
    cpu = {"0": ticks(user=100), "1": ticks(system=60, idle=40)}
    b = snap(1_000_000_000, 1_000_000, 950_000, cpu, rx_drops=50_000)
    r = analyse_eth(CELL, a, b, PLACE, GEN, RX)
    assert r["bottleneck"] == "receiver" and r["generator_bound"] is False and r["lossy"]
    # lossless, generator saturated and not polling: the generator
    b = snap(1_000_000_000, 1_000_000, 999_000, cpu)
    r = analyse_eth(CELL, a, b, PLACE, GEN, RX)
    assert r["bottleneck"] == "generator" and r["generator_bound"] is True
    assert r["cpu_ns_per_pkt"] == pytest.approx(0.6e9 / 999_000)


class _Spinner(Generator):
    name = "spinner"                # any generator whose class says its core polls
    polls_core = DpdkTxonly.polls_core


def test_a_polling_generator_is_discounted_like_a_polling_receiver():
    assert DpdkTxonly.polls_core and not Generator.polls_core
    gen = _Spinner.__new__(_Spinner)
    a = snap(0, 0, 0, IDLE)
    cpu = {"0": ticks(user=100), "1": ticks(system=60, idle=40)}
    b = snap(1_000_000_000, 1_000_000, 1_000_000, cpu)
    r = analyse_eth(CELL, a, b, PLACE, gen, RX)
    assert r["bottleneck"] == "none" and r["generator_bound"] is True
    assert classify_eth(0.0, 0.0, {"0": 1.0, "1": 1.0}, [0], [1], [0], True, True)[
        "bottleneck"] == "shared_cpu"


def test_receive_path_on_the_generators_cpu_is_shared_cpu_not_generator_bound():
    a = snap(0, 0, 0, IDLE)
    cpu = {"0": ticks(user=100), "1": ticks(user=30, idle=70)}
    b = snap(1_000_000_000, 1_000_000, 1_000_000, cpu)
    r = analyse_eth(CELL, a, b, SHARED, GEN, RX)
    assert r["bottleneck"] == "shared_cpu" and r["generator_bound"] is False
    assert r["cpu_ns_per_pkt"] is None


def test_a_retrying_generators_refused_frames_make_the_cell_receiver_limited():
    # rxb-gen sends refused frames again: none lost, yet the receiver pushed back
    a = snap(0, 0, 0, IDLE)
    cpu = {"0": ticks(user=100), "1": ticks(system=60, idle=40)}
    b = snap(1_000_000_000, 1_000_000, 1_000_000, cpu, tx_dropped=300_000)
    r = analyse_eth(CELL, a, b, PLACE, GEN, RX)
    assert r["bottleneck"] == "receiver" and "sender_veth_refused" not in r["drops"]


def test_process_cpu_is_the_whole_tree_under_the_wrapper():
    def p(comm, root, ut, st, run):
        return {"comm": comm, "root": root, "ppid": 1, "utime": ut, "stime": st,
                "last_cpu": 0, "threads": 1, "run_ns": run}
    a = counters(0, IDLE, procs={"10": p("python3", 10, 5, 1, 10**8),
                                 "11": p("dpdk-testpmd", 10, 0, 0, 0),
                                 "99": p("napi/rxb-1", 0, 0, 0, 0)})
    b = counters(10**9, IDLE, procs={"10": p("python3", 10, 6, 1, 11 * 10**7),
                                     "11": p("dpdk-testpmd", 10, 95, 3, 98 * 10**7),
                                     "99": p("napi/rxb-1", 0, 0, 40, 4 * 10**8)})
    r = processes(a, b, HZ)
    assert r["tree:10"]["user_s"] == pytest.approx(0.96) and r["tree:10"]["sys_s"] == 0.03
    assert r["tree:10"]["comms"] == ["dpdk-testpmd", "python3"]
    assert r["tree:10"]["run_s"] == pytest.approx(0.99)
    assert r["napi/rxb-1"]["sys_s"] == 0.4


def test_tcp_counts_links_softnet_and_wall_busy():
    place = Placement(generator=[0], application=[1], napi_mode="receiver", napi=[1])
    cell = cells.Cell("local", "tcp", "epoll", {"conns": 1, "msg": 1024}, 1)
    sn = [{"processed": 0, "dropped": 0, "time_squeeze": 0, "cpu": 0},
          {"processed": 2**32 - 5, "dropped": 0, "time_squeeze": 0, "cpu": 1}]
    a = snap(0, 0, 0, IDLE)
    b = snap(10**9, 0, 0, {"0": ticks(user=100), "1": ticks(system=20, idle=10)})
    for s, soft, retr in ((a, sn, 0), (b, [dict(sn[0]), {**sn[1], "processed": 5, "dropped": 3}], 7)):
        for side in ("sender", "receiver"):
            s[side]["counters"]["softnet"] = soft
            s[side]["counters"]["snmp"] = {"TcpRetransSegs": retr, "IpInReceives": 1}
    r = analyse_tcp(cell, a, b, place, 10**9, 1.0, 10**9, 1.0)
    assert r["softnet"]["receiver"]["1"]["processed"] == 10      # across the u32 wrap
    assert r["drops"]["receiver_backlog_dropped"] == 3
    assert r["drops"]["sender_tcp_retrans_segs"] == 7
    # CPU 1: 0.1 s idle of a 1 s window: 0.9 busy (the tick sum, 0.3 s, is flagged)
    assert r["cpu"]["1"]["busy_frac"] == 0.9 and r["cpu_check"]["ok"] is False


def test_tcp_sender_path_is_per_byte_and_from_the_sender_s_side_only():
    place = Placement(generator=[0], application=[1], napi_mode="receiver", napi=[1])
    cell = cells.Cell("local", "tcp", "blocking", {"conns": 2, "msg": 1024}, 1)
    sirq = lambda hrt, rx: {"HRTIMER": {"0": hrt, "1": 7}, "NET_RX": {"0": rx, "1": 9},  # noqa
                            "TASKLET": {"0": 0, "1": 5}}
    proc = lambda v, i: {"5": {"comm": "rxb-tcp-send", "root": 5, "ppid": 1, "utime": 0,  # noqa
                               "stime": 0, "last_cpu": 0, "threads": 2, "run_ns": v * 10**8,
                               "vol_cs": v, "invol_cs": i}}
    tool = lambda t, sends, turns, full, waits, pace: {  # noqa
        "t_ns": t, "bytes": sends * 1024, "sends": sends, "turns": turns, "turns_full": full,
        "waits": waits, "per_conn": [{"bytes": 0, "pacing_Bps": p} for p in pace]}
    a = snap(0, 0, 0, IDLE)
    b = snap(10**9, 0, 0, {"0": ticks(system=60, softirq=40), "1": ticks(idle=100)})
    for s, n, hrt, rx, segs, acks, pkts, cs, t in (
            (a, 0, 100, 10, 0, 0, 0, (3, 4), tool(0, 0, 0, 0, 0, [10**8, 3 * 10**8])),
            (b, 1, 600, 1010, 1000, 250, 400, (5, 24),
             tool(10**9, 2000, 125, 25, 100, [3 * 10**8, 5 * 10**8]))):
        c = s["sender"]["counters"]
        c["softirqs"] = sirq(hrt, rx)
        c["procs"] = proc(*cs)
        c["snmp"] = {"TcpOutSegs": segs, "TcpInSegs": acks, "TcpExtTCPAutoCorking": 30 * n}
        c["links"]["veth"]["tx_packets"] = pkts
        c["softnet"] = [{"processed": 0, "dropped": 0, "time_squeeze": 0, "received_rps": 7 * n,
                         "cpu": 0},
                        {"processed": 0, "dropped": 0, "time_squeeze": 0, "received_rps": 99 * n,
                         "cpu": 1}]
        s["sender"]["tool"] = t
        s["receiver"]["counters"]["softirqs"] = sirq(0, 0)
    sent = 2000 * 1024                          # 2.048 MB in 1 s
    r = analyse_tcp(cell, a, b, place, sent, 1.0, sent, 1.0)
    p = r["sender_path"]
    assert p["bytes_per_segment"] == pytest.approx(sent / 1000)
    assert p["bytes_per_packet"] == pytest.approx(sent / 400)      # the veth's skbs
    assert p["bytes_per_ack"] == pytest.approx(sent / 250)
    assert p["bytes_per_send"] == 1024 and p["sends_per_turn"] == 16
    assert p["turns_full_frac"] == 0.2 and p["sends_per_wait"] == 20
    # CPU 0 (the sender's) only: 1 s busy, 0.4 s of it softirq; HRTIMER and
    # NET_RX runs on CPU 0 per MB sent, not CPU 1's
    assert p["cpu_ns_per_byte"] == pytest.approx(1e9 / sent)
    assert p["softirq_ns_per_byte"] == pytest.approx(0.4e9 / sent)
    # its own run time (schedstat: 0.2 s), not what else ran on CPU 0 (1 s)
    assert p["proc_ns_per_byte"] == pytest.approx(0.2e9 / sent)
    assert p["softirqs_per_mb"] == {"HRTIMER": pytest.approx(500 / 2.048),
                                    "NET_RX": pytest.approx(1000 / 2.048), "TASKLET": 0}
    assert p["cs_per_mb"] == {"vol_cs": pytest.approx(2 / 2.048),
                              "invol_cs": pytest.approx(20 / 2.048)}
    assert p["autocorked_per_mb"] == pytest.approx(30 / 2.048)
    # the RPS IPIs the sender's CPU took (CPU 1's are the server's)
    assert p["rps_ipis_per_mb"] == pytest.approx(7 / 2.048)
    # the pacing rates TCP computed: (4 + 8) / 2 x 10^8 B/s against 2.048 MB/s
    assert p["pacing_Bps"] == 6 * 10**8 and p["sent_over_pacing"] == pytest.approx(2.048 / 600)
    assert r["softirqs"]["sender"]["0"] == {"HRTIMER": 500, "NET_RX": 1000}
    assert r["processes"]["sender"]["tree:5"]["invol_cs"] == 20


def test_tcp_sender_path_without_the_tool_s_counters_leaves_them_out():
    # iperf3 (no tool snapshots), a reader without softirqs: the kernel's ratios only
    place = Placement(generator=[0], application=[1], napi_mode="receiver", napi=[1])
    cell = cells.Cell("local", "tcp", "iperf3", {"conns": 1, "msg": 1024}, 1)
    a = snap(0, 0, 0, IDLE)
    b = snap(10**9, 0, 0, {"0": ticks(system=100), "1": ticks(idle=100)})
    for s, segs in ((a, 0), (b, 500)):
        s["sender"]["tool"] = None
        s["sender"]["counters"]["snmp"] = {"TcpOutSegs": segs}
    p = analyse_tcp(cell, a, b, place, 10**6, 1.0, 10**6, 1.0)["sender_path"]
    assert p["bytes_per_segment"] == 2000 and p["bytes_per_ack"] is None
    assert p["softirqs_per_mb"] == {}
    assert not {"sends_per_turn", "bytes_per_send", "pacing_Bps", "cs_per_mb"} & set(p)


def test_softnet_counts_the_rps_ipis_a_cpu_took():
    from rxbench.analysis import softnet_delta
    row = lambda n: {"processed": n, "dropped": 0, "time_squeeze": 0, "received_rps": n // 2,  # noqa
                     "cpu": 0}
    d = softnet_delta({"softnet": [row(10)]}, {"softnet": [row(30)]})
    assert d["0"] == {"processed": 20, "dropped": 0, "time_squeeze": 0, "received_rps": 10}


# ---- the committed reference run ----

def reference_dir() -> Path | None:
    """The set the review's examples below come from (local-fc2-epyc:
    its cells carry the old classification they test against)."""
    d = ROOT / "results" / "reference" / "local-fc2-epyc"
    return d if (d / "eth").is_dir() else None


REF = reference_dir()
needs_ref = pytest.mark.skipif(REF is None, reason="the committed reference run is not here")


def ref_cell(rel: str) -> dict:
    return json.loads((REF / rel).read_text())


@needs_ref
def test_reference_lossy_af_xdp_cell_is_receiver_limited():
    # the review's B2/M2 example: 17.6 % lost, CPU 1 busy 5.01 s of 5.06 s,
    # labelled bottleneck=generator at the time
    res = ref_cell("eth/af_xdp/cores=1/size=64/rep=1.json")
    assert res["bottleneck"] == "generator"
    r = reclassify_cell(res)
    assert r["new"] == {"bottleneck": "receiver", "generator_bound": False}


@needs_ref
def test_reference_napi_sender_cells_are_shared_cpu():
    for rel in ("eth/xdp_drop/cores=1/size=64/napi=sender/rep=1.json",
                "eth/af_xdp/cores=1/size=1024/napi=sender/rep=2.json"):
        res = ref_cell(rel)
        assert res["generator_bound"] is True
        assert reclassify_cell(res)["new"] == {"bottleneck": "shared_cpu", "generator_bound": False}


@needs_ref
def test_reference_polling_generator_no_longer_makes_the_generator_the_bottleneck():
    # dpdk-txonly spins CPU 0 at 100 %; XDP_DROP at 1518 B lost < 1 % and its
    # CPU was not saturated: the receiver kept up (generator-bound), but the
    # spinning core says nothing about the generator either (bottleneck none)
    res = ref_cell("eth/xdp_drop/cores=1/size=1518/rep=2.json")
    assert res["generator"] == "dpdk-txonly" and res["bottleneck"] == "generator"
    assert res["cpu"]["0"]["busy_frac"] >= 0.95
    assert 1 - res["rx_pps"] / res["offered_pps"] < 0.01
    assert reclassify_cell(res)["new"] == {"bottleneck": "none", "generator_bound": True}


@needs_ref
def test_reference_polling_receiver_dpdk_lossy_is_receiver():
    res = ref_cell("eth/dpdk/cores=1/size=1024/rep=1.json")   # 70 % lost (B1)
    assert reclassify_cell(res)["new"]["bottleneck"] == "receiver"


@needs_ref
def test_reclassify_the_whole_reference_run():
    rows = reclassify(str(REF))
    eth = [r for r in rows.values() if r["layer"] == "eth"]
    assert len(eth) == 168
    # every committed eth cell ran dpdk-txonly, whose spinning core says nothing
    assert not any(r["new"]["bottleneck"] == "generator" for r in eth)
    assert sum(r["new"]["bottleneck"] == "shared_cpu" for r in eth) == 84   # every napi=sender cell
    assert sum(r["old"]["bottleneck"] == "generator" and r["new"]["bottleneck"] == "receiver"
               for r in eth) == 6                                         # the review's six
    out = subprocess.run([sys.executable, "-m", "rxbench.analysis", "reclassify", str(REF)],
                         capture_output=True, text=True, cwd=ROOT / "workflow", check=True).stdout
    assert "eth: 168 ok cells, 94 changed" in out
    bad = subprocess.run([sys.executable, "-m", "rxbench.analysis", "reclassify", "/nonexistent"],
                         capture_output=True, text=True, cwd=ROOT / "workflow")
    assert bad.returncode != 0 and "not a directory" in bad.stderr


def test_side_snapshot_takes_a_reader_event_and_refuses_anything_else():
    ev = counters(5, IDLE)
    assert side_snapshot(ev, {"t_ns": 1}, "veth") == {"counters": ev, "tool": {"t_ns": 1},
                                                      "ifname": "veth"}
    with pytest.raises(MissingCounter, match="not an rxb-counters snapshot"):
        side_snapshot({"event": "ready", "t_ns": 1}, None)


def test_the_tcp_bottleneck_rule():
    """One rule (analysis.classify_tcp) for the run and for reclassify: the
    server's own cores first, then a CPU shared with the sender, then the
    sender's own (the only generator-bound case)."""
    assert classify_tcp([1], [1], [0]) == {"bottleneck": "server", "generator_bound": False}
    assert classify_tcp([0, 1], [1], [0]) == {"bottleneck": "server", "generator_bound": False}
    assert classify_tcp([0], [0], [0]) == {"bottleneck": "server", "generator_bound": False}
    assert classify_tcp([], [0, 1], [1]) == {"bottleneck": "shared_cpu", "generator_bound": False}
    assert classify_tcp([0], [1], [0]) == {"bottleneck": "sender", "generator_bound": True}
    assert classify_tcp([], [1], [0]) == {"bottleneck": "none", "generator_bound": False}
