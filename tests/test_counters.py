"""rxb-counters, for real: one snapshot holds every counter between two
CLOCK_MONOTONIC stamps, process trees include the real tool under a wrapper,
the network counters are those of the namespace it runs in, bad input is one
line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import NATIVE

TOOL = NATIVE / "rxb-counters"
pytestmark = pytest.mark.skipif(not TOOL.exists(), reason="rxb-counters not built (make -C native)")
pytestmark = [pytestmark, pytest.mark.unit]


def run_reader(args: list[str], snapshots: int, prefix: list[str] = (), gap: float = 0.1):
    p = subprocess.Popen([*prefix, str(TOOL), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(p.stdout.readline())
        for _ in range(snapshots):
            p.send_signal(signal.SIGUSR1)
            time.sleep(gap)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    events = [ready] + [json.loads(line) for line in out.splitlines()]
    return p.returncode, events, err


def test_snapshot_reads_everything_stamped_and_finds_the_real_tool_under_a_wrapper():
    # a wrapper (sh) whose child does the work, like rxbench.stacks.testpmd over testpmd
    tree = subprocess.Popen(["sh", "-c", "sleep 30 & (while :; do :; done) & wait"])
    try:
        time.sleep(0.3)
        rc, ev, err = run_reader(["--pid", str(tree.pid), "--ifname", "lo", "--duration", "20"],
                                 snapshots=2, gap=1.0)
    finally:
        subprocess.run(["pkill", "-P", str(tree.pid)])
        tree.kill()
        tree.wait()
    assert rc == 0, err
    assert [e["event"] for e in ev] == ["ready", "snapshot", "snapshot", "final"]
    assert ev[0]["clk_tck"] > 0 and ev[0]["pids"] == [tree.pid]
    a, b = ev[1], ev[2]
    assert a["t0_ns"] <= a["t1_ns"] < b["t0_ns"] <= b["t1_ns"]
    assert a["snapshot_ns"] == a["t1_ns"] - a["t0_ns"] and b["self_cpu_ns"] >= a["self_cpu_ns"] > 0
    assert a["errors"] == []
    cpus = set(map(str, os.sched_getaffinity(0)))
    assert cpus <= set(a["cpu"])
    assert set(a["cpu"]["0"]) >= {"user", "system", "idle", "iowait", "steal", "guest"}
    assert a["links"]["lo"]["rx_packets"] >= 0 and "tx_dropped" in a["links"]["lo"]
    assert {"processed", "dropped", "time_squeeze"} <= set(a["softnet"][0])
    assert {"processed", "received_rps"} <= set(a["softnet"][0])
    # /proc/softirqs: every CPU, counts that only grow (TIMER runs on a live CPU)
    assert cpus <= set(a["softirqs"]["NET_RX"]) and "HRTIMER" in a["softirqs"]
    assert all(b["softirqs"][k][c] >= v for k, per in a["softirqs"].items()
               for c, v in per.items())
    assert sum(b["softirqs"]["TIMER"].values()) > sum(a["softirqs"]["TIMER"].values())
    assert "TcpRetransSegs" in a["snmp"] and "TcpExtTCPOFODrop" in a["snmp"]
    assert a["snmp"]["TcpMaxConn"] == -1            # signed, as nstat shows it
    procs = b["procs"]
    assert procs[str(tree.pid)]["comm"] == "sh"
    comms = {p["comm"] for p in procs.values()}
    assert "sleep" in comms                          # children of the wrapper
    busy = [pid for pid, p in procs.items() if p["ppid"] == tree.pid and p["comm"] == "sh"]
    assert len(busy) == 1, procs                     # the spinning subshell
    # it spins: its CPU time grows between snapshots 1 s apart (by less than
    # 1 s when the machine's CPUs are shared)
    assert procs[busy[0]]["run_ns"] - a["procs"][busy[0]]["run_ns"] > 0.02e9
    assert procs[busy[0]]["utime"] + procs[busy[0]]["stime"] > 0
    assert all(p["root"] == tree.pid for p in procs.values())
    # context switches from each thread's status: sleep went to sleep itself
    sleeper = next(p for p in procs.values() if p["comm"] == "sleep")
    assert sleeper["vol_cs"] >= 1 and sleeper["invol_cs"] >= 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace and a veth)")
def test_counters_are_the_namespace_s_and_ethtool_is_read_by_ioctl():
    ns, a, b = f"rxb-ctest-{os.getpid()}", f"rxbc{os.getpid() % 10000}a", f"rxbc{os.getpid() % 10000}b"
    sh = lambda *c: subprocess.run(c, check=True, capture_output=True)  # noqa: E731
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", ns)
        sh("ip", "link", "set", b, "netns", ns)
        for dev in (a, b, "lo"):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "addr", "add", "198.18.0.1/30", "dev", a)
        sh("ip", "-n", ns, "addr", "add", "198.18.0.2/30", "dev", b)
        # outside the namespace the interface does not exist: one line, exit 2
        r = subprocess.run([str(TOOL), "--ifname", a], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and a in r.stderr
        rc, ev, err = run_reader(["--ifname", a, "--ifname", b, "--comm-prefix", "napi/",
                                  "--rt-priority", "1"],
                                 snapshots=1, prefix=["ip", "netns", "exec", ns])
        assert rc == 0, err
        assert ev[0]["ifnames"][a]["ethtool_stats"] > 0 and ev[0]["sched"] == "fifo"
        snap = ev[1]
        assert "peer_ifindex" in snap["ethtool"][a] and "rx_queue_0_drops" in snap["ethtool"][a]
        assert set(snap["links"]) == {a, b}
        # the namespace's own TCP counters: nothing was ever opened there
        assert snap["snmp"]["TcpActiveOpens"] == 0
        assert all(p["root"] == 0 and p["comm"].startswith("napi/")
                   for p in snap["procs"].values())
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.parametrize("args, what", [
    (["--pid", "0"], "--pid"),
    (["--pid", "999999999"], "--pid"),
    (["--ifname", "no-such-if0"], "no-such-if0"),
    (["--duration", "0"], "--duration"),
    (["--comm-prefix", ""], "--comm-prefix"),
    (["--rt-priority", "100"], "--rt-priority"),
    (["--bogus"], "--bogus"),
])
def test_bad_input_is_one_line_and_exit_2(args, what):
    r = subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and what in r.stderr and r.stderr.startswith("rxb-counters: ")


def test_napi_prefix_is_the_kernels_15_character_thread_name():
    from rxbench.runner import napi_prefix
    assert napi_prefix("rxbf207df34r") == "napi/rxbf207df3"


def test_a_reader_given_a_gone_tool_blames_the_tool():
    """The race of the seed run on vm: the counters reader was started with
    the pid of a tool that had just exited, and the cell failed with the
    reader's "--pid N: no such process". The window names the tool that
    exited, with its own last error, and leaves alive tools alone."""
    from rxbench.proc import Tool, ToolExited
    from rxbench.runner import exited_tool

    lines = []
    alive = Tool("receiver", ["sleep", "30"], lines.append, name="sleep").start()
    gone = Tool("generator", ["sh", "-c", "echo 'rxb-gen: sendto: link down' >&2; exit 3"],
                lines.append, name="rxb-gen").start()
    try:
        gone.p.wait(10)
        reader = Tool("sender-counters", [str(TOOL), "--pid", str(gone.p.pid)], lines.append,
                      name="rxb-counters").start()
        with pytest.raises(Exception) as reader_err:
            reader.wait_event("ready", 10)
        assert "no such process" in str(reader_err.value)
        blamed = exited_tool((gone, alive), 2.0)
        assert isinstance(blamed, ToolExited) and blamed.tool is gone
        assert "status 3" in str(blamed) and "link down" in str(blamed)
        assert exited_tool((None, alive), 0.2) is None
    finally:
        alive.p.kill()
        alive.p.wait()
