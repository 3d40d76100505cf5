"""The Snakemake pipeline end to end on the real local testbed: a real
XDP_DROP cell, rerun by target name, bad config refused, and teardown after
Ctrl-C, SIGTERM, a crashed tool and a SIGKILLed runner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (ROOT, copy_checkout, kill_group, leftovers, needs_testbed,
                      popen_snakemake, rxb_netns, snakemake, tree_hash, wait_for)
from conftest import snakemake as _snakemake

pytestmark = pytest.mark.unit

CELL = "results/local/eth/xdp_drop/cores=1/size=64/rep=1.json"
SMOKE = ["--cores", "1", "--config", "profile=smoke"]


def test_dry_run_lists_every_cell_of_the_sweep(tmp_path):
    from rxbench.cells import targets
    from rxbench.config import resolve
    p = snakemake(tmp_path, "-n", "--cores", "1", "--quiet", "rules")
    assert p.returncode == 0, p.stderr
    p = snakemake(tmp_path, "-n", "--cores", "1")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    for t in targets(resolve({})):
        assert f"output: {t}" in out, t


def test_bad_config_stops_before_anything_runs(tmp_path):
    p = snakemake(tmp_path, "--cores", "1", "--config", "eth={stacks: [xdp_drop, warp]}")
    assert p.returncode != 0
    msg = p.stdout + p.stderr
    assert "config key eth.stacks[1]: 'warp' is not allowed; allowed values: xdp_drop, af_xdp, xdpsock, dpdk, af_packet" in msg
    assert not (tmp_path / "results").exists() and not rxb_netns()
    p = snakemake(tmp_path, "--cores", "1", "--config", "eth={sizes: [2000]}")
    assert p.returncode != 0 and "eth.sizes[0]: 2000 is over the test link's MTU" in p.stderr


@needs_testbed
def test_smoke_run_end_to_end_then_rerun_one_cell(workdir):
    """In a copy of the checkout (as a user's clone has it, results/reference/
    included): a smoke run, a second run, a forced rerun of one cell, and a
    forced rerun asked of a reference cell; the reference sets stay
    byte-identical."""
    ref_root = ROOT / "results" / "reference"
    if not any(ref_root.glob("*/summary.csv")):
        pytest.skip("no committed reference set in results/reference/")
    workdir = copy_checkout(workdir / "checkout")
    ref = workdir / "results" / "reference"
    ref_before = tree_hash(ref)
    assert ref_before == tree_hash(ref_root)

    def snakemake(wd, *args):
        return _snakemake(wd, *args, snakefile=wd / "Snakefile")

    p = snakemake(workdir, *SMOKE)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((workdir / CELL).read_text())
    assert res["status"] == "ok", res["reason"]
    # real counters: the generator offered, the XDP program counted
    assert res["offered_pps"] > 10_000 and res["rx_pps"] > 10_000
    # the windows of the two snapshots differ by ms, so compare whole runs
    finals = res["counters"]
    assert 0 < finals["receiver_final"]["packets"] <= finals["generator_final"]["packets"]
    assert res["placement"]["napi"]["mode"] == "receiver"
    assert res["placement"]["napi"]["threads"], "threaded NAPI kthread not found/pinned"
    assert set(res["cpu"]) == {str(c) for c in range(os.cpu_count())}
    prov = res["provenance"]
    assert prov["nic_driver"] == "veth" and prov["kernel"].startswith(os.uname().release)
    assert any("rxb-xdp-drop" in c for c in prov["commands"])
    assert (workdir / CELL.replace(".json", ".log")).read_text().count("testbed down") == 1
    summary = (workdir / "results/local/summary.csv").read_text().splitlines()
    assert summary[0].startswith("platform,layer,stack,cores,size,conns,msg,napi,touch,rep,status")
    from rxbench.cells import targets
    from rxbench.config import resolve
    cells = targets(resolve({"profile": "smoke"}))
    assert len(summary) == 1 + len(cells)            # every stack once
    for cell in cells:
        r = json.loads((workdir / cell).read_text())
        if "/uring_zcrx/" in cell:     # veth cannot do zero-copy receive: said, with the errno
            assert r["status"] == "unsupported" and "EOPNOTSUPP" in r["reason"], r["reason"]
            continue
        if "/xdpsock/" in cell and not shutil.which("xdpsock"):   # Debian has none
            assert r["status"] == "unsupported" and "not installed" in r["reason"]
            continue
        assert r["status"] == "ok", (cell, r["reason"])
        if r["layer"] == "tcp":
            assert r["rx_gbps"] > 0.1 and r["cpu_ns_per_byte"] > 0
    for f in ("stats.csv", "set.json", "eth_rate.pdf", "eth_rate.png", "eth_table.tex"):
        assert (workdir / "paper/generated/local" / f).stat().st_size > 0
    assert "xdp\\_drop" in (workdir / "paper/generated/local/eth_table.tex").read_text()

    # a second run has nothing to do
    p = snakemake(workdir, *SMOKE)
    assert p.returncode == 0 and "Nothing to be done" in p.stdout + p.stderr

    # rerun one cell by its target name: that cell only, nothing else
    before = (workdir / "results/local/summary.csv").stat().st_mtime_ns
    p = snakemake(workdir, *SMOKE, "--force", CELL)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "localrule cell:" in out and "rule aggregate" not in out
    assert "1 of 1 steps (100%) done" in out
    assert (workdir / "results/local/summary.csv").stat().st_mtime_ns == before
    again = json.loads((workdir / CELL).read_text())
    assert again["status"] == "ok" and again["provenance"]["started_at"] != prov["started_at"]

    # a forced rerun of a reference cell is refused before anything runs or is deleted
    for name in sorted(p.name for p in ref.iterdir() if p.is_dir()):
        target = f"results/reference/{name}/{CELL.removeprefix('results/local/')}"
        if (workdir / target).exists():
            p = snakemake(workdir, *SMOKE, "--force", target)
            assert p.returncode != 0
            assert "results/reference/ holds the committed reference sets" in p.stderr, p.stderr[-2000:]
            assert "rule cell:" not in p.stdout + p.stderr
    p = snakemake(workdir, *SMOKE, "--force", "results/reference/eth/xdp_drop/cores=1/size=64/rep=1.json")
    assert p.returncode != 0 and "never written by a campaign" in p.stderr
    assert tree_hash(ref) == ref_before, "a run changed results/reference/"


def _start_and_wait_for_testbed(workdir, *extra):
    p = popen_snakemake(workdir, "--cores", "1", "--config", "profile=smoke", "duration_s=20",
                        "tcp={stacks: []}", *extra)
    wait_for(lambda: len(rxb_netns()) == 2 and _proc_running("rxb-gen"), 30,
             "the cell's testbed and generator")
    return p


def _proc_running(name: str) -> bool:
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


@needs_testbed
def test_ctrl_c_tears_down_and_writes_no_partial_result(workdir):
    p = _start_and_wait_for_testbed(workdir)
    kill_group(p, signal.SIGINT)          # what a terminal's Ctrl-C does
    out, _ = p.communicate(timeout=60)
    assert p.returncode != 0
    assert not leftovers(wait=10), out[-2000:]
    assert not (workdir / CELL).exists(), "an interrupted cell must not leave a result"


@needs_testbed
def test_sigterm_finishes_the_running_cell_then_stops(workdir):
    # snakemake's answer to SIGTERM: finish running jobs, start no new one
    p = _start_and_wait_for_testbed(workdir, "eth={stacks: [xdp_drop], sizes: [64, 128]}")
    os.kill(p.pid, signal.SIGTERM)
    out, _ = p.communicate(timeout=90)
    assert p.returncode != 0
    assert "Will exit after finishing currently running jobs" in out
    assert not leftovers(wait=10), out[-2000:]
    finished = list((workdir / "results").rglob("rep=1.json"))
    assert len(finished) == 1, finished               # the running one, no other
    done = json.loads(finished[0].read_text())        # and it is kept
    assert done["status"] == "ok" and done["duration_s"] > 15
    assert not (workdir / "results/local/summary.csv").exists()


@needs_testbed
def test_runner_sigterm_tears_down(workdir):
    """A runner told to stop (snakemake killed with SIGKILL sends it SIGTERM
    through the parent-death signal) tears down and writes nothing."""
    p = _start_and_wait_for_testbed(workdir)
    os.kill(p.pid, signal.SIGKILL)          # snakemake dies at once
    p.communicate(timeout=30)
    assert not leftovers(wait=15)
    assert not (workdir / CELL).exists()


@needs_testbed
def test_crashed_receiver_fails_the_cell_and_the_next_cell_runs(workdir):
    # two cells; the receiver of the first one is killed mid-measurement
    p = popen_snakemake(workdir, "--cores", "1", "--config", "profile=smoke",
                        "duration_s=4", "eth={stacks: [xdp_drop], sizes: [64, 128]}",
                        "tcp={stacks: []}")
    wait_for(lambda: _proc_running("rxb-gen"), 30, "the first cell's generator")
    time.sleep(0.5)
    subprocess.run(["pkill", "-KILL", "-x", "rxb-xdp-drop"], check=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out[-3000:]
    results = {p: json.loads(p.read_text()) for p in (workdir / "results").rglob("rep=1.json")}
    assert sorted(r["status"] for r in results.values()) == ["failed", "ok"]
    failed = next(p for p, r in results.items() if r["status"] == "failed")
    reason = results[failed]["reason"]
    assert "receiver (rxb-xdp-drop)" in reason and "-9" in reason, reason
    assert "rxb-xdp-drop" in failed.with_suffix(".log").read_text()
    summary = (workdir / "results/local/summary.csv").read_text()
    assert ",failed," in summary and ",ok," in summary


@needs_testbed
def test_sigkilled_runner_leaves_state_that_clean_removes(workdir, state_dir):
    p = _start_and_wait_for_testbed(workdir)
    runner = wait_for(lambda: subprocess.run(["pgrep", "-f", "-n", "rxbench cell"],
                                             capture_output=True, text=True).stdout.strip(),
                      10, "the cell runner")
    os.kill(int(runner), signal.SIGKILL)
    p.communicate(timeout=60)
    left = leftovers(state_dir, wait=0)
    assert left.get("netns") and left.get("state"), left     # SIGKILL: nothing could run
    env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow")}
    c = subprocess.run([sys.executable, "-m", "rxbench", "clean"], capture_output=True,
                       text=True, env=env)
    assert c.returncode == 0 and "removed netns rxb-" in c.stdout, c.stdout + c.stderr
    assert not leftovers(state_dir), "clean left something"


@needs_testbed
def test_unsupported_kernel_feature_is_written_and_campaign_goes_on(workdir, monkeypatch):
    from rxbench import cells, config, runner
    from rxbench.stacks.eth import XdpDrop
    monkeypatch.setattr(XdpDrop, "kernel_options", ("CONFIG_RXBENCH_NO_SUCH_OPTION",))
    cfg = config.resolve({"profile": "smoke"})
    out = workdir / CELL
    assert runner.run_cell(str(out), cfg, str(out.with_suffix(".log"))) == 0
    res = json.loads(out.read_text())
    assert res["status"] == "unsupported"
    assert "lacks CONFIG_RXBENCH_NO_SUCH_OPTION" in res["reason"]
    assert cells.parse(str(out), cfg).stack == "xdp_drop"


def _world_readable_copy() -> tuple[Path, dict]:
    """What `rxbench cell` needs without root, copied where uid 65534 can
    read it (a checkout in root's home is not: /root is 0700): the package,
    PyYAML (the only third-party module its import needs) and the resolved
    configuration as JSON; and an interpreter outside the checkout and its
    venv (the venv's python, and even pyenv's, may sit below /root)."""
    import tempfile

    import yaml
    from rxbench.config import resolve
    tmp = Path(tempfile.mkdtemp(prefix="rxbench-nonroot-"))
    shutil.copytree(ROOT / "workflow" / "rxbench", tmp / "rxbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(Path(yaml.__file__).parent, tmp / "yaml",
                    ignore=shutil.ignore_patterns("__pycache__", "_yaml*.so"))
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return tmp, resolve({"profile": "smoke"})


def test_not_root_is_one_clear_line(tmp_path):
    cell = ["-m", "rxbench", "cell"]
    if os.geteuid() != 0:
        cmd = [sys.executable, *cell, str(tmp_path / CELL)]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "workflow"), "RXBENCH_STATE_DIR": str(tmp_path)}
        out = tmp_path
    else:
        pkg, cfg = _world_readable_copy()
        try:
            python = next((p for p in ("/usr/bin/python3", os.path.realpath(sys.executable))
                           if subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                              "--clear-groups", p, "-c", "pass"],
                                             capture_output=True).returncode == 0), None)
            if python is None:
                pytest.skip("no Python interpreter that uid 65534 may run")
            out = pkg / "out"
            out.mkdir(mode=0o777)
            out.chmod(0o777)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   python, "-I", "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                   "from rxbench.cli import main; sys.exit(main())", str(pkg),
                   *cell[2:], str(out / CELL), "--config-json", json.dumps(cfg)]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RXBENCH_STATE_DIR": str(out)}
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/")
            assert not (out / "results").exists()
        finally:
            shutil.rmtree(pkg)
        assert p.returncode == 2, p.stderr
        assert p.stderr.strip() == ("rxbench: the local platform needs root (network namespaces, "
                                    "XDP): run snakemake as root")
        return
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/")
    assert p.returncode == 2
    assert p.stderr.strip() == ("rxbench: the local platform needs root (network namespaces, "
                                "XDP): run snakemake as root")
    assert not (out / "results").exists()
