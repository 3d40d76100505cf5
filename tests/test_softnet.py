"""/proc/net/softnet_stat parsing (rxbench.softnet) on the kernel's format,
and the live file of this machine."""

from __future__ import annotations

from rxbench import softnet

TEXT = ("00149646 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 "
        "00000000 00000000 00000000 00000000 00000000 00000000\n"
        "0015ef1c 00000003 00000002 00000000 00000000 00000000 00000000 00000000 00000000 "
        "00027377 00000000 00000000 00000001 00000000 00000000\n")


def test_fields_by_the_cpu_column():
    s = softnet.parse(TEXT)
    assert s["0"] == {"processed": 0x149646, "dropped": 0, "time_squeeze": 1,
                      "received_rps": 0, "flow_limit_count": 0}
    assert s["1"]["processed"] == 0x15ef1c and s["1"]["dropped"] == 3
    assert s["1"]["received_rps"] == 0x27377


def test_delta_survives_32_bit_wrap():
    a = {"0": {"processed": 0xfffffff0, "dropped": 1}}
    b = {"0": {"processed": 0x10, "dropped": 4}}
    assert softnet.delta(a, b) == {"0": {"processed": 0x20, "dropped": 3}}


def test_reads_this_machine():
    s = softnet.read()
    assert s and all("processed" in v and "dropped" in v for v in s.values())
