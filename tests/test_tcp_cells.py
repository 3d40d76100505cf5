"""TCP cells end to end on the local testbed, and the checks a TCP cell
makes: every byte the sender wrote reached the server, and with touch=1 the
server's byte sum equals the sender's (or the cell is failed, both sums in
the reason); a rate-limited sender holds its target to 1 %; device-less zcrx
is unsupported (with the errno and why) where the kernel lacks it."""

from __future__ import annotations

import json
import signal

import pytest

from conftest import needs_testbed, rxb_netns
from rxbench import RxbenchError, cells, config, runner
from rxbench.stacks.tcp import TcpServer, label

pytestmark = pytest.mark.unit


def run(tmp_path, state_dir, name: str, **over) -> dict:
    """Run one cell; its own namespaces and processes must be gone after
    (other engineers' runs share this machine: only ours are checked)."""
    cfg = config.resolve({"profile": "smoke", **over})
    out = tmp_path / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    assert runner.run_cell(str(out), cfg, str(out.with_suffix(".log"))) == 0
    res = json.loads(out.read_text())
    ours = {h["netns"] for h in res["provenance"]["hosts"].values() if "netns" in h}
    assert ours
    assert not ours & set(rxb_netns()), f"left behind: {ours & set(rxb_netns())}"
    assert not list((state_dir).glob("*.json")), "state records left"
    return res


def fake_cell(touch: int, load="max", stack="epoll"):
    cfg = config.resolve({"profile": "default"})
    path = f"results/local/tcp/{stack}/conns=1/msg=65536"
    if load != "max":
        path += f"/load={load}"
    if touch:
        path += "/touch=1"
    return TcpServer(cfg, cells.parse(path + "/rep=1.json", cfg), None, None)


def out_of(server: dict, sender: dict, **extra) -> dict:
    return {"counters": {"server_final": server, "sender_final": sender},
            "offered_gbps": 1.0, "rx_gbps": 1.0, "bottleneck": "none", **extra}


def test_touch_sums_that_differ_fail_the_cell_with_both_sums():
    srv = fake_cell(touch=1)
    with pytest.raises(RxbenchError) as e:
        srv.verify(out_of({"bytes": 100, "touch": 12345}, {"bytes": 100, "touch": 12346}))
    assert "12345" in str(e.value) and "12346" in str(e.value)
    with pytest.raises(RxbenchError, match="server received 99 bytes"):
        srv.verify(out_of({"bytes": 99, "touch": 1}, {"bytes": 100, "touch": 1}))
    with pytest.raises(RxbenchError, match="mismatch"):       # a server that did not touch
        srv.verify(out_of({"bytes": 100, "touch": None}, {"bytes": 100, "touch": 7}))
    ok = out_of({"bytes": 100, "touch": 7}, {"bytes": 100, "touch": 7})
    srv.verify(ok)
    assert ok["verified"]["touch"] == {"server": 7, "sender": 7}


def test_untouched_cell_checks_bytes_only():
    srv = fake_cell(touch=0)
    out = out_of({"bytes": 5, "touch": None}, {"bytes": 5, "touch": 99})
    srv.verify(out)
    assert "touch" not in out["verified"]


def test_rate_limited_cell_reports_how_close_the_sender_came():
    srv = fake_cell(touch=0, load=2)
    out = out_of({"bytes": 5}, {"bytes": 5}, offered_gbps=1.995, rx_gbps=1.99)
    srv.verify(out)
    assert out["load"]["reached"] and out["bottleneck"] == "rate"
    out = out_of({"bytes": 5}, {"bytes": 5}, offered_gbps=1.5, rx_gbps=1.5,
                 bottleneck="sender")
    srv.verify(out)
    assert not out["load"]["reached"] and out["bottleneck"] == "sender"


def test_labels_say_what_iperf3_and_nodev_zcrx_are():
    assert "sender+server" in label("iperf3", {})
    assert "copy fallback" in label("uring_zcrx", {"zcrx": "nodev"})
    assert label("uring_zcrx", {"zcrx": "device"}) == "uring_zcrx"


def test_recv_size_and_load_are_cell_variants():
    cfg = config.resolve({"profile": "default"})
    c = cells.parse("results/local/tcp/uring_opt/conns=8/msg=1024/load=2.5/recv=4096/rep=1.json",
                    cfg)
    assert c.params["recv"] == 4096 and c.params["msg"] == 1024 and c.params["load"] == 2.5
    with pytest.raises(cells.CellNameError):       # iperf3 has no receive size of ours
        cells.parse("results/local/tcp/iperf3/conns=8/msg=1024/recv=4096/rep=1.json", cfg)
    with pytest.raises(cells.CellNameError, match="load must be"):
        cells.parse("results/local/tcp/epoll/conns=8/msg=1024/load=fast/rep=1.json", cfg)


@needs_testbed
def test_touch_cell_passes_with_equal_sums(tmp_path, state_dir):
    res = run(tmp_path, state_dir, "local/tcp/epoll/conns=2/msg=65536/touch=1/recv=4096/rep=1.json",
              tcp={"epoll": {"touch": [0, 1]}, "variants": {"recv": [65536, 4096]}})
    assert res["status"] == "ok", res["reason"]
    v = res["verified"]
    assert v["touch"]["server"] == v["touch"]["sender"] and v["touch"]["server"] > 0
    assert v["bytes"]["server"] == v["bytes"]["sender"] > 0
    assert res["counters"]["server_final"]["touch"] == res["counters"]["sender_final"]["touch"]
    cmd = " ".join(res["provenance"]["commands"])
    assert "--recv-size 4096" in cmd and "--msg 65536" in cmd
    # the sender's veth steered to the sender's CPU; losses recorded per stage
    assert res["nic_setup"]["steer_sender"].startswith("rps_cpus=")
    for k in ("sender_tx_dropped", "receiver_rx_dropped", "sender_backlog_dropped",
              "receiver_backlog_dropped"):
        assert k in res["drops"]
    assert res["softnet"] and res["stack_label"] == "epoll"


@needs_testbed
def test_rate_limited_cell_holds_its_target(tmp_path, state_dir):
    """Median of 3 cells within 1 % of the target (a single cell can miss on
    a machine shared with other runs: the sender then gets no CPU)."""
    errs = []
    for rep in (1, 2, 3):
        res = run(tmp_path, state_dir,
                  f"local/tcp/uring_opt/conns=4/msg=65536/load=2/rep={rep}.json",
                  tcp={"variants": {"load": ["max", 2]}, "duration_s": 2})
        assert res["status"] == "ok", res["reason"]
        assert res["load"]["target_gbps"] == 2
        assert "--rate-gbps 2" in " ".join(res["provenance"]["commands"])
        errs.append(res["load"]["error_pct"])
    assert abs(sorted(errs)[1]) <= 1.0, errs


@needs_testbed
def test_nodev_zcrx_cell_is_unsupported_here_with_errno_and_why(tmp_path, state_dir):
    import os
    if int(os.uname().release.split(".")[0]) >= 7:
        pytest.skip("this kernel may have device-less zcrx: the vm platform test runs it")
    res = run(tmp_path, state_dir, "local/tcp/uring_zcrx/conns=1/msg=65536/zcrx=nodev/rep=1.json")
    assert res["status"] == "unsupported"
    assert "ZCRX_REG_NODEV" in res["reason"] or "IO_URING_QUERY_ZCRX" in res["reason"]
    assert ">= 7.1" in res["reason"] and "errno" in res["reason"]
