"""Parsing kernel counters, and turning two snapshots into a result."""

import json

import pytest

from rxbench import cells
from rxbench.measure import cpu_delta, parse_ethtool_stats, parse_link_json, parse_proc_stat
from rxbench.platforms.local import Placement
from rxbench.analysis import analyse
from rxbench.stacks import Generator, Receiver

STAT_A = """cpu  10 0 10 100 0 0 0 0 0 0
cpu0 5 0 5 50 0 0 0 0 0 0
cpu1 5 0 5 50 0 0 0 0 0 0
intr 12345
"""
STAT_B = """cpu  10 0 10 100 0 0 0 0 0 0
cpu0 105 0 5 50 0 0 0 0 0 0
cpu1 5 0 55 90 0 0 10 0 0 0
"""


def test_proc_stat_and_cpu_delta():
    a, b = parse_proc_stat(STAT_A), parse_proc_stat(STAT_B)
    assert set(a) == {"0", "1"} and a["0"][:4] == [5, 0, 5, 50]
    d = cpu_delta(a, b, hz=100)
    assert d["0"]["busy_s"] == 1.0 and d["0"]["user_s"] == 1.0 and d["0"]["busy_frac"] == 1.0
    assert d["1"]["sys_s"] == 0.5 and d["1"]["softirq_s"] == 0.1
    assert d["1"]["busy_s"] == pytest.approx(0.6) and d["1"]["busy_frac"] == 0.6


def test_link_json_and_ethtool():
    link = json.dumps([{"ifname": "x", "stats64": {
        "rx": {"bytes": 1, "packets": 2, "dropped": 3, "missed": 4},
        "tx": {"bytes": 5, "packets": 6, "dropped": 7}}}])
    assert parse_link_json(link) == {"rx_bytes": 1, "rx_packets": 2, "rx_dropped": 3,
                                     "rx_missed": 4, "tx_bytes": 5, "tx_packets": 6,
                                     "tx_dropped": 7}
    text = "NIC statistics:\n     peer_ifindex: 3\n     rx_queue_0_xdp_packets: 42\n" \
           "     rx_queue_0_drops: 1\n     weird: n/a\n"
    assert parse_ethtool_stats(text) == {"peer_ifindex": 3, "rx_queue_0_xdp_packets": 42,
                                         "rx_queue_0_drops": 1}


def snap(t, sent, got, stat, rx_drops=0, tx_dropped=0, retries=0):
    return {"stat": parse_proc_stat(stat),
            "gen": {"t_ns": t, "packets": sent, "backpressure": retries},
            "rx": {"t_ns": t + 1000, "packets": got},
            "links": {"sender": {"tx_dropped": tx_dropped},
                      "receiver": {"rx_dropped": rx_drops},
                      "receiver_ethtool": {"rx_queue_0_drops": 0,
                                           "rx_queue_0_xdp_drops": got}},
            "procs": {"generator": {"user_s": 0, "sys_s": 0, "last_cpu": 0}}}


CELL = cells.Cell("local", "eth", "xdp_drop", {"cores": 1, "size": 64, "napi": "receiver"}, 1)
PLACE = Placement(generator=[0], application=[1], napi_mode="receiver", napi=[1])
GEN, RX = Generator.__new__(Generator), Receiver.__new__(Receiver)


def test_analyse_receiver_bound_and_losses():
    # 2 s; 4 M offered, 3 M received, 0.5 M dropped at the receiver; CPU1 saturated
    a = snap(0, 0, 0, STAT_A)
    busy = STAT_A.replace("cpu1 5 0 5 50", "cpu1 5 0 205 50").replace("cpu0 5 0 5 50",
                                                                       "cpu0 55 0 5 200")
    b = snap(2_000_000_000, 4_000_000, 3_000_000, busy, rx_drops=500_000, tx_dropped=7,
             retries=9)
    r = analyse(CELL, a, b, PLACE, GEN, RX)
    assert r["offered_pps"] == 2_000_000 and r["rx_pps"] == 1_500_000
    assert r["rx_gbps"] == pytest.approx(1.5e6 * 64 * 8 / 1e9)
    assert r["drops"]["receiver_rx_dropped"] == 500_000
    assert r["drops"]["unaccounted"] == 500_000       # 4 M - 3 M - 0.5 M
    assert r["backpressure"] == {"sender_tx_dropped": 7, "sender_tx_errors": 0,
                                 "generator_retries": 9}
    assert r["saturated_cpus"] == [1] and r["bottleneck"] == "receiver"
    assert r["generator_bound"] is False
    assert r["cpu_ns_per_pkt"] == pytest.approx(2.0 * 1e9 / 3_000_000)


def test_analyse_flags_generator_bound_when_lossless_and_receiver_idle():
    a = snap(0, 0, 0, STAT_A)
    b = snap(1_000_000_000, 1_000_000, 999_000, STAT_B)   # CPU1 at 60 %
    r = analyse(CELL, a, b, PLACE, GEN, RX)
    assert r["generator_bound"] is True and r["bottleneck"] == "generator"
    # the receive path on the generator's CPU: its cost cannot be told apart
    shared = Placement(generator=[0], application=[1], napi_mode="sender", napi=[0])
    assert analyse(CELL, a, b, shared, GEN, RX)["cpu_ns_per_pkt"] is None


def test_analyse_lossless_but_receiver_saturated_is_not_generator_bound():
    # veth pushes back on the sender: loss-free, yet the receiver set the rate
    a = snap(0, 0, 0, STAT_A)
    busy = STAT_A.replace("cpu1 5 0 5 50", "cpu1 5 0 105 50")
    b = snap(1_000_000_000, 1_000_000, 1_000_000, busy)
    r = analyse(CELL, a, b, PLACE, GEN, RX)
    assert r["generator_bound"] is False and r["bottleneck"] == "receiver"


def test_napi_on_sender_has_no_receiver_only_cpu():
    place = Placement(generator=[0], application=[1], napi_mode="sender", napi=[0])
    assert place.receiver_only == {1}
    place = Placement(generator=[0], application=[0], napi_mode="sender", napi=[0])
    assert place.receiver_only == set()


class _NoRetryGen(Generator):
    retries_refused = False


class _Poller(Receiver):
    def polls(self) -> bool:
        return True


def test_frames_a_non_retrying_generator_lost_at_the_sender_are_a_drop_stage():
    # dpdk-txonly: 4 M counted as sent, 1 M refused by the sender's veth, 0.5 M
    # dropped at the receiver: all of offered - received is explained
    a = snap(0, 0, 0, STAT_A)
    b = snap(2_000_000_000, 4_000_000, 2_500_000, STAT_B, rx_drops=500_000,
             tx_dropped=1_000_000)
    r = analyse(CELL, a, b, PLACE, _NoRetryGen.__new__(_NoRetryGen), RX)
    assert r["drops"]["sender_veth_refused"] == 1_000_000
    assert r["drops"]["unaccounted"] == 0
    # the same counter is back-pressure for a generator that sends again
    r = analyse(CELL, a, b, PLACE, GEN, RX)
    assert "sender_veth_refused" not in r["drops"] and r["drops"]["unaccounted"] == 1_000_000


def test_a_polling_receivers_busy_core_does_not_make_it_the_bottleneck():
    # napi=sender: the receive path shares the generator's CPU; the DPDK lcore
    # spins on CPU 1 at 100 % whatever the load; loss-free -> generator-bound
    place = Placement(generator=[0], application=[1], napi_mode="sender", napi=[0])
    a = snap(0, 0, 0, STAT_A)
    busy = STAT_A.replace("cpu1 5 0 5 50", "cpu1 105 0 5 50").replace("cpu0 5 0 5 50",
                                                                       "cpu0 105 0 5 50")
    b = snap(1_000_000_000, 1_000_000, 1_000_000, busy)
    assert analyse(CELL, a, b, place, GEN, _Poller.__new__(_Poller))["generator_bound"] is True
    assert analyse(CELL, a, b, place, GEN, RX)["generator_bound"] is False
