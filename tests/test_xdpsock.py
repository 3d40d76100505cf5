"""rxbench.xdpsock: upstream xdpsock's periodic statistics behind the
JSON-lines protocol. A stand-in prints xdpsock's exact block format (Debian
has no xdpsock; where Nix provides it, the eth cells run the real one)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from rxbench import ROOT
from rxbench.xdpsock import Blocks, count

BLOCK = """
 sock0@rxb1r:0 rxdrop xdp-drv poll()
                   pps            pkts           1.00
rx                 1,917,220      9,586,100
tx                 0              0
rx dropped         10             12
rx invalid         0              0
tx invalid         0              0
rx queue full      0              3
fill ring empty    0              7
tx ring empty      0              0
"""


def test_counts_with_or_without_thousands_separators():
    assert count("9,586,100") == count("9586100") == 9586100


def test_a_block_is_complete_when_the_next_one_starts_or_output_ends():
    b = Blocks()
    for i, line in enumerate(BLOCK.splitlines()):
        b.feed(line, 1000 + i)
    assert b.snapshot("snapshot") is None          # not closed yet
    b.feed(" sock0@rxb1r:0 rxdrop xdp-drv poll()", 2000)
    snap = b.snapshot("snapshot")
    assert snap["packets"] == 9586100 and snap["rx_dropped"] == 12
    assert snap["rx_ring_full"] == 3 and snap["rx_fill_ring_empty"] == 7
    assert snap["t_ns"] == 1000 + 3                # when the rx row arrived


FAKE = textwrap.dedent('''
    import sys, time, signal
    mode = sys.argv[1]
    if mode == "memlock":
        print("ERROR: setrlimit(RLIMIT_MEMLOCK) \\"Operation not permitted\\"", flush=True)
        sys.exit(1)
    n = 0
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    while not stop:
        time.sleep(0.1)
        n += 100000
        print(f"\\n sock0@x:0 rxdrop xdp-drv\\n{'':18} pps pkts 0.10\\nrx {n} {n}\\ntx 0 0", flush=True)
    print(f"\\n sock0@x:0 rxdrop xdp-drv\\n{'':18} pps pkts 0.10\\nrx {n} {n}\\ntx 0 0", flush=True)
''')


def wrapper(tmp_path, mode, duration=30.0):
    fake = tmp_path / "fake_xdpsock.py"
    fake.write_text(FAKE)
    return subprocess.Popen([sys.executable, "-m", "rxbench.xdpsock", "--duration", str(duration),
                             "--", sys.executable, str(fake), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={"PYTHONPATH": str(ROOT / "workflow"), "PATH": "/usr/bin:/bin"})


def test_ready_snapshot_final(tmp_path):
    p = wrapper(tmp_path, "ok")
    ready = json.loads(p.stdout.readline())
    time.sleep(0.5)
    p.send_signal(signal.SIGUSR1)
    snap = json.loads(p.stdout.readline())
    p.send_signal(signal.SIGTERM)
    final = json.loads(p.stdout.readline())
    assert p.wait(10) == 0
    assert [ready["event"], snap["event"], final["event"]] == ["ready", "snapshot", "final"]
    assert ready["packets"] < snap["packets"] <= final["packets"]
    assert snap["t_ns"] > ready["t_ns"]


def test_memlock_refusal_is_unsupported(tmp_path):
    p = wrapper(tmp_path, "memlock")
    err = json.loads(p.stdout.readline())
    assert p.wait(10) == 3
    assert err["kind"] == "unsupported" and "RLIMIT_MEMLOCK" in err["reason"]


