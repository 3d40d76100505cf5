"""The zcrx refill ring's user side (native/rxb_zcrx_rq.h) against a
simulated kernel consumer on rings of 1-16 entries (native/test_zcrx_rq.c):
a buffer handed back while the ring is full is kept and reaches the kernel
later, in order, exactly once; nothing is visible before it is published.
Needs no root and no zcrx-capable kernel."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import NATIVE

pytestmark = pytest.mark.unit

TEST = NATIVE / "test-zcrx-rq"


@pytest.mark.skipif(not TEST.exists(), reason="native/build/test-zcrx-rq not built (make -C native)")
def test_refill_ring_full_loses_no_buffer_and_keeps_order():
    p = subprocess.run([str(TEST)], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    cases = [c for c in lines if "case" in c]
    assert {c["case"] for c in cases} == {"sequential", "threaded"}
    for c in cases:
        assert c["ok"], c
        assert c["consumed"] == c["pushed"] and c["mismatches"] == 0
        assert c["ring_full"] > 0 and c["pending_max"] > 0, "the full path did not run"
        assert c["pending_left"] == 0
    assert p.returncode == 0 and lines[-1] == {"summary": True, "ok": True}


@pytest.mark.skipif(not (NATIVE / "rxb-tcp-server").exists(), reason="rxb-tcp-server not built")
@pytest.mark.parametrize("value, why", [("3", "power of two"), ("65536", "65536"),
                                        ("0", "0")])
def test_refill_entries_must_be_a_power_of_two_in_range(value, why):
    p = subprocess.run([str(NATIVE / "rxb-tcp-server"), "--mode", "uring_zcrx", "--port", "9",
                        "--ifname", "lo", "--rxq", "0", "--duration", "1",
                        "--zcrx-rq-entries", value], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and why in p.stderr and p.stdout == ""
