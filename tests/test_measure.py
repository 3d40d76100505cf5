"""Parsing kernel counters (turning snapshots into a result: test_analysis.py)."""

import json

import pytest

from rxbench.measure import cpu_delta, parse_ethtool_stats, parse_link_json, parse_proc_stat
from rxbench.platforms.local import Placement

pytestmark = pytest.mark.unit

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


def test_napi_on_sender_has_no_receiver_only_cpu():
    place = Placement(generator=[0], application=[1], napi_mode="sender", napi=[0])
    assert place.receiver_only == {1}
    place = Placement(generator=[0], application=[0], napi_mode="sender", napi=[0])
    assert place.receiver_only == set()
