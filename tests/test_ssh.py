"""The ssh platform for real: two namespace "hosts" running OpenSSH's sshd
(tests/sshhosts.py), the smoke campaign over SSH, Ctrl-C and a lost
receiver mid-cell, and the traffic-safety refusals of pre-flight."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT, kill_group, popen_snakemake, snakemake, wait_for
from sshhosts import TEST_IF

pytestmark = pytest.mark.unit

CELL = "results/ssh/eth/xdp_drop/cores=1/size=64/rep=1.json"


@pytest.fixture
def workdir(tmp_path, state_dir, ssh_hosts):
    """A working directory for snakemake, and afterwards nothing left on
    either host nor in the controller's own state. (The local leftovers
    check of conftest's workdir is machine-wide: on a shared machine it
    sees other checkouts' live local runs; the ssh hosts are this test's own.)"""
    wd = tmp_path / "wd"
    wd.mkdir()
    assert not ssh_hosts.leftovers(wait=0), ssh_hosts.leftovers(wait=0)
    yield wd
    left = ssh_hosts.leftovers()
    mine = sorted(p.name for p in state_dir.glob("*.json"))
    assert not left and not mine, f"left behind: {left} {mine}"


def ssh_config(inventory, *extra) -> list[str]:
    return ["--cores", "1", "--config", "platform=ssh", f"inventory={inventory}",
            "profile=smoke", *extra]


def test_inventory_errors_are_one_line_each(tmp_path):
    from rxbench.platforms.ssh import InventoryError, load_inventory
    good = {"address": "198.19.0.2", "test_interface": "eth1", "test_ip": "198.18.0.1",
            "cpus": [0]}
    bad = {"sender": {**good, "test_ip": "10.0.0.1"},
           "receiver": {**good, "test_ip": "198.18.0.2", "cpus": "one", "colour": "red"}}
    p = tmp_path / "inv.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(InventoryError) as e:
        load_inventory(p)
    lines = str(e.value).splitlines()
    assert any(line.startswith("inventory receiver.cpus: 'one'") for line in lines), lines
    assert any("receiver" in line and "'colour' was unexpected" in line for line in lines), lines
    bad["receiver"] = {**good, "test_ip": "198.18.0.2"}
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(InventoryError, match=r"sender.test_ip: 10.0.0.1 is not in 198.18.0.0/15"):
        load_inventory(p)
    p.write_text("sender: [")
    with pytest.raises(InventoryError, match="not YAML"):
        load_inventory(p)


def _assert_hosts_clean(hosts):
    left = hosts.leftovers()
    assert not left, f"left on the hosts: {left}"


def test_ssh_smoke_campaign_runs_every_stack(ssh_hosts, workdir):
    t0 = time.monotonic()
    p = snakemake(workdir, *ssh_config(ssh_hosts.inventory_path), timeout=1500)
    assert p.returncode == 0, p.stderr[-3000:]
    from rxbench.cells import targets
    from rxbench.config import resolve
    cells = targets(resolve({"profile": "smoke", "platform": "ssh",
                             "inventory": str(ssh_hosts.inventory_path)}))
    assert cells and all(c.startswith("results/ssh/") for c in cells)
    for cell in cells:
        r = json.loads((workdir / cell).read_text())
        if "/uring_zcrx/" in cell:
            assert r["status"] == "unsupported" and "EOPNOTSUPP" in r["reason"], r["reason"]
            continue
        if "/xdpsock/" in cell and not shutil.which("xdpsock"):
            assert r["status"] == "unsupported" and "not installed" in r["reason"]
            continue
        assert r["status"] == "ok", (cell, r["reason"])
        if r["layer"] == "tcp":
            assert r["rx_gbps"] > 0.05 and r["cpu_ns_per_byte"] > 0
        else:
            assert r["offered_pps"] > 10_000 and r["rx_pps"] > 10_000
        prov = r["provenance"]
        hosts = prov["platform"]["hosts"]
        assert set(hosts) == {"sender", "receiver"}
        for role in hosts:
            h = hosts[role]
            assert h["address"] == ssh_hosts.address(role)
            assert h["kernel"].startswith(os.uname().release) and h["cmdline"]
            assert h["nic"]["driver"] == "veth" and h["nic"]["queues_rx"] >= 1
            assert h["build"]["cc"] and set(h["cpus"]) >= {"0", "1"}
        assert prov["platform"]["inventory"] == ssh_hosts.inventory["provenance"]
        tools = prov["versions"]["tools"]
        assert all(len(t["sha256"]) == 64 for t in tools.values()
                   if t["path"].startswith("/var/tmp/rxbench-")), tools
        assert r["provenance"]["hosts"]["receiver"]["address"] == ssh_hosts.address("receiver")
    summary = (workdir / "results/ssh/summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(cells)
    print(f"ssh smoke: {len(cells)} cells in {time.monotonic() - t0:.0f} s")
    _assert_hosts_clean(ssh_hosts)


def _remote_tool(hosts, role: str, name: str):
    return lambda: [p for p in hosts.processes(role) if p.endswith(":" + name)]


def _parent(pid: int) -> tuple[int, str]:
    """The parent of a host's process (the hosts share our /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        return ppid, f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def test_a_cell_s_tools_start_under_rxb_run(ssh_hosts, workdir):
    """Every tool of a cell (generator, receiver, both counters readers) is
    the child of native/rxb-run, none of a Python remote.py run."""
    want = {"sender": {"rxb-gen", "rxb-counters"}, "receiver": {"rxb-xdp-drop", "rxb-counters"}}
    p = popen_snakemake(workdir, *ssh_config(ssh_hosts.inventory_path, "duration_s=4"), "--", CELL)
    try:
        def all_up():
            procs = {r: {int(x.split(":")[0]): x.split(":", 1)[1]
                         for x in ssh_hosts.processes(r)} for r in want}
            tools = {r: {pid: c for pid, c in procs[r].items() if c in want[r]} for r in want}
            if all(set(tools[r].values()) == want[r] for r in want):
                try:
                    return {f"{r} {c}": _parent(pid) for r in want for pid, c in tools[r].items()}
                except OSError:       # one has just ended
                    return None
            return None
        parents = wait_for(all_up, 120, "the cell's four tools", step=0.02)
        out, _ = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            kill_group(p, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, out[-3000:]
    for tool, (_, cmd) in parents.items():
        assert cmd.split()[0].endswith("/native/build/rxb-run") and " -- " in cmd, (tool, cmd)
    assert json.loads((workdir / CELL).read_text())["status"] == "ok"
    _assert_hosts_clean(ssh_hosts)


def test_a_build_without_rxb_run_starts_tools_under_remote_py(ssh_hosts, state_dir):
    """A deploy from before rxb-run (its build record lists no rxb-run)
    falls back to remote.py run: same protocol, same tool, same cleanup."""
    from rxbench.hosts.ssh import RUN_TOOL, SshHost
    from rxbench.hosts.tool import Tool
    lines = []
    host = SshHost("sender", ssh_hosts.inventory["sender"], lines.append, "fa11bac0")
    try:
        host.connect()
        build = host.build()["tools"]
        assert RUN_TOOL in build
        seen = {}
        for wrapper in ("rxb-run", "remote.py"):
            if wrapper == "remote.py":
                del build[RUN_TOOL]
            t = Tool("counters", [host.native("rxb-counters"), "--duration", "20"], lines.append,
                     host=host, bound_s=30).start()
            try:
                t.wait_event("ready", 20)
                assert t.pid and t.remote["start"] > 0
                seen[wrapper] = _parent(t.pid)[1]
                assert t.snapshot()["event"] == "snapshot"
            finally:
                assert t.stop() == 0
        assert seen["rxb-run"].startswith(f"{host.deploy_dir}/native/build/rxb-run --bound 30 "), seen
        assert f" {host.deploy_dir}/workflow/rxbench/hosts/remote.py run --bound 30 " in \
            seen["remote.py"], seen
    finally:
        host.release()
        host.close()
    _assert_hosts_clean(ssh_hosts)


def test_sigint_mid_cell_leaves_nothing_on_either_host(ssh_hosts, workdir):
    p = popen_snakemake(workdir, *ssh_config(ssh_hosts.inventory_path, "duration_s=20",
                                             "timeout_s=60"), "--", CELL)
    try:
        wait_for(_remote_tool(ssh_hosts, "sender", "rxb-gen"), 120, "the generator on the sender")
        time.sleep(1.0)
        kill_group(p, signal.SIGINT)
        p.wait(60)
    finally:
        if p.poll() is None:
            kill_group(p, signal.SIGKILL)
            p.wait()
    assert not (workdir / CELL).exists()
    _assert_hosts_clean(ssh_hosts)


def test_receiver_sshd_killed_mid_cell_fails_the_cell_and_is_cleaned(ssh_hosts, workdir):
    timeout_s = 40
    p = popen_snakemake(workdir, *ssh_config(ssh_hosts.inventory_path, "duration_s=15",
                                             f"timeout_s={timeout_s}"), "--", CELL)
    try:
        wait_for(_remote_tool(ssh_hosts, "sender", "rxb-gen"), 120, "the generator on the sender")
        killed = time.monotonic()
        ssh_hosts.kill_sshd("receiver")
        p.wait(timeout_s + 30)
        took = time.monotonic() - killed
    finally:
        if p.poll() is None:
            kill_group(p, signal.SIGKILL)
            p.wait()
        if ssh_hosts.sshd["receiver"].poll() is not None:
            ssh_hosts.start_sshd("receiver")
    res = json.loads((workdir / CELL).read_text())
    assert res["status"] == "failed", res
    rcv = ssh_hosts.address("receiver")
    assert f"receiver {rcv}" in res["reason"] or "receiver (" in res["reason"], res["reason"]
    assert took < timeout_s, f"the cell took {took:.0f} s to fail"
    # the tools died with their channels, on both hosts, without a controller's help
    wait_for(lambda: not ssh_hosts.processes("receiver"), 15, "the receiver's tools to end")
    assert not ssh_hosts.processes("sender")
    # the record stays on the receiver until the next contact cleans it
    assert list(ssh_hosts.state_dir("receiver").glob("*.json"))
    c = subprocess.run([sys.executable, "-m", "rxbench", "clean", "--config", "platform=ssh",
                        f"inventory={ssh_hosts.inventory_path}"], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")},
                       timeout=120)
    assert c.returncode == 0, c.stderr
    assert rcv in c.stdout, c.stdout
    _assert_hosts_clean(ssh_hosts)


def test_unsafe_test_interface_is_refused_before_anything_runs(ssh_hosts, workdir):
    ns = ssh_hosts.netns["receiver"]
    subprocess.run(["ip", "-n", ns, "route", "add", "default", "via", "198.18.0.1", "dev",
                    TEST_IF], check=True)
    try:
        p = snakemake(workdir, *ssh_config(ssh_hosts.inventory_path), "--", CELL, timeout=300)
    finally:
        subprocess.run(["ip", "-n", ns, "route", "del", "default"], check=True)
    msg = p.stdout + p.stderr
    assert p.returncode != 0
    assert (f"receiver {ssh_hosts.address('receiver')}: test interface {TEST_IF} carries the "
            f"default route") in msg, msg[-2000:]
    assert not (workdir / CELL).exists()
    _assert_hosts_clean(ssh_hosts)
    # the interface of the SSH session itself, named as the test interface
    inv = json.loads(json.dumps(ssh_hosts.inventory))
    inv["sender"]["test_interface"] = "rxbmgmt0"
    bad = ssh_hosts.write_inventory(inv, "inventory-mgmt.yaml")
    p = snakemake(workdir, *ssh_config(bad), "--", CELL, timeout=300)
    msg = p.stdout + p.stderr
    assert p.returncode != 0
    assert (f"sender {ssh_hosts.address('sender')}: test interface rxbmgmt0 carries this SSH "
            f"session") in msg, msg[-2000:]
    assert not (workdir / CELL).exists()
    _assert_hosts_clean(ssh_hosts)
