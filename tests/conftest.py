"""Shared fixtures. Integration tests need root and the kernel features of
the local testbed; they skip with the reason when those are absent."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

# the sshd-in-namespaces hosts: one session fixture for every module that uses it
pytest_plugins = ["sshhosts"]

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
NATIVE = ROOT / "native" / "build"
TOOL_NAMES = ("rxb-gen", "rxb-xdp-drop", "rxb-counters", "rxb-af-xdp", "rxb-af-packet", "trafgen",
              "dpdk-testpmd", "rxb-tcp-server", "rxb-tcp-send", "iperf3")
XDP_PROG_NAMES = ("xdp_drop_prog", "xsk_def_prog")


def _why_no_testbed() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, XDP)"
    for tool in ("rxb-gen", "rxb-xdp-drop", "xdp_drop.bpf.o"):
        if not (NATIVE / tool).exists():
            return f"native tool {tool} not built (make -C native)"
    for cmd in ("ip", "ethtool", "setpriv", "taskset"):
        if subprocess.run(["which", cmd], capture_output=True).returncode:
            return f"{cmd} is not installed"
    if len(os.sched_getaffinity(0)) < 2:
        return "needs 2 CPUs (generator and receiver)"
    return None


NO_TESTBED = _why_no_testbed()
needs_testbed = pytest.mark.skipif(NO_TESTBED is not None, reason=NO_TESTBED or "")


# -- tiers (markers registered in pytest.ini) ---------------------------------------
# A test's tier is the closest one declared: its own mark, else its class's,
# else its module's `pytestmark`; raised by what the test itself says it
# needs (a file of unit tests may hold a test that needs the testbed):
TIERS = ("unit", "integration", "guests")
INTEGRATION_FIXTURES = {"state_dir", "workdir", "ssh_hosts", "sshd"}


def _implied_tier(item) -> str | None:
    """integration for a test that needs root: needs_testbed, a fixture of
    the local testbed or the sshd hosts, or a skip whose reason is that it
    needs root."""
    if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    for m in item.iter_markers("skipif"):
        if m is needs_testbed.mark or str(m.kwargs.get("reason", "")).startswith("needs root"):
            return "integration"
    return None


def _declared_tier(item) -> str:
    for node in reversed(item.listchain()):
        found = sorted({m.name for m in node.own_markers if m.name in TIERS})
        if len(found) > 1:
            raise pytest.UsageError(f"{item.nodeid}: more than one tier ({', '.join(found)}) "
                                    f"on {node.nodeid or 'the session'}")
        if found:
            return found[0]
    raise pytest.UsageError(
        f"{item.nodeid}: no tier marker; give its module a `pytestmark = pytest.mark.unit` "
        f"(or integration, guests: see pytest.ini), or the test its own")


# unit tests that take seconds each (PDF builds, snakemake runs, waits that
# are the behaviour under test), left out of `make check`; a test may as
# well carry @pytest.mark.slow itself
SLOW_TESTS = {
    "tests/test_paper.py": {"test_paper_builds", "test_numbers_match_the_csv"},
    "tests/test_figures.py": {"test_every_planned_figure_is_drawn", "test_plan_follows_the_data"},
    "tests/test_pipeline.py": {"test_dry_run_lists_every_cell_of_the_sweep",
                               "test_bad_config_stops_before_anything_runs"},
    "tests/test_zcrx_rq.py": {"test_refill_ring_full_loses_no_buffer_and_keeps_order"},
    "tests/test_g5k.py": {"test_a_job_the_api_would_not_delete_is_kept_for_release",
                          "test_snakemake_plans_the_g5k_campaign_from_the_example"},
    "tests/test_rxb_run.py": {"test_the_bound_terms_then_kills_5_s_later"},
    "tests/test_xdpsock.py": {"test_ready_snapshot_final_while_traffic_flows",
                              "test_without_traffic_in_poll_mode_it_is_killed_after_the_grace",
                              "test_its_duration_alone_does_not_end_it_without_traffic"},
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Every test ends up with exactly one tier mark (before -m selects):
    a test without one stops the collection."""
    tiers = {}
    for item in items:
        if getattr(item, "originalname", None) in SLOW_TESTS.get(item.nodeid.split("::")[0], ()):
            item.add_marker("slow")
        declared, implied = _declared_tier(item), _implied_tier(item)
        tiers[item] = max(filter(None, (declared, implied)), key=TIERS.index)
    for item, tier in tiers.items():
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in TIERS]
        item.add_marker(tier)


def rxb_netns() -> list[str]:
    """The local testbed's namespaces (other platforms' are checked by their
    own tests: another engineer's guest namespace is not this test's leftover)."""
    from rxbench.state import LOCAL_NETNS
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if LOCAL_NETNS.match(line.split()[0])]


def rxb_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,comm="], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        pid, comm = line.split(None, 1)
        if comm.strip() in TOOL_NAMES or comm.strip().startswith("napi/rxb"):
            found.append(f"{pid}:{comm.strip()}")
    return found


def xdp_programs() -> list[str]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    try:
        progs = json.loads(out or "[]")
    except ValueError:
        return []
    return [f"{p['id']}:{p.get('name')}" for p in progs if p.get("name") in XDP_PROG_NAMES]


def dpdk_runtime_dirs() -> list[str]:
    return sorted(str(p) for p in Path("/var/run/dpdk").glob("rxb-*"))


@contextmanager
def no_cell_running(timeout: float = 300.0):
    """The machine's testbed lock, held while leftovers are looked for: the
    check looks machine-wide (process names, namespaces, XDP programs), and
    a cell of another checkout's campaign holds that lock for as long as
    its tools run. Re-entrant in a process that holds it already; after
    `timeout` the check goes on without it (a process that keeps the lock
    that long is itself a leftover to look at)."""
    from rxbench import state
    with ExitStack() as held:
        try:
            held.enter_context(state.testbed_lock(timeout=timeout))
        except state.LockTimeout:
            pass
        yield


def leftovers(state_dir: Path | None = None, wait: float = 3.0) -> dict:
    """What the project left on this machine; empty when all is clean.
    BPF programs are freed asynchronously, so allow a short grace period."""
    with no_cell_running():
        return _leftovers(state_dir, wait)


def _leftovers(state_dir: Path | None, wait: float) -> dict:
    deadline = time.monotonic() + wait
    while True:
        left = {"netns": rxb_netns(), "processes": rxb_processes(), "xdp": xdp_programs(),
                "dpdk": dpdk_runtime_dirs()}
        if state_dir is not None:
            left["state"] = sorted(p.name for p in Path(state_dir).glob("*.json"))
        left = {k: v for k, v in left.items() if v}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


TESTS_LOCK = Path("/run/rxbench/tests.lock")     # shared with a debootstrap-check chroot


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    """A private state dir; integration tests of several checkouts on one
    machine run one at a time (their leftover checks look machine-wide)."""
    import fcntl
    d = tmp_path / "state"
    monkeypatch.setenv("RXBENCH_STATE_DIR", str(d))
    TESTS_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(TESTS_LOCK, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield d


@pytest.fixture
def workdir(tmp_path, state_dir):
    """A working directory for snakemake runs, so tests never touch the
    checkout's results/."""
    wd = tmp_path / "wd"
    wd.mkdir()
    # the machine is shared: another checkout's live run (it holds the
    # testbed lock) ends within minutes; what stays is a leftover
    deadline = time.monotonic() + 600
    while leftovers(wait=0) and time.monotonic() < deadline:
        time.sleep(2)
    assert not leftovers(), f"state left by an earlier test or run: {leftovers()}"
    yield wd
    left = leftovers(state_dir)
    if left:
        subprocess.run([sys.executable, "-m", "rxbench", "clean"], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "workflow")})
    assert not left, f"left behind: {left}"


def snakemake(workdir: Path, *args, timeout: float = 300, snakefile: Path | None = None,
              **kw) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "-s", str(snakefile or ROOT / "Snakefile"), "-d", str(workdir),
                           *args], capture_output=True, text=True, timeout=timeout, **kw)


def copy_checkout(dst: Path) -> Path:
    """The checkout as a fresh clone of this working tree has it (tracked and
    untracked files git does not ignore, so results/reference/ and no run of
    ours), plus the built native tools: a user's checkout to run snakemake in."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "-c", "-o",
                            "--exclude-standard"], capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    if NATIVE.is_dir():
        shutil.copytree(NATIVE, dst / "native" / "build", dirs_exist_ok=True)
    return dst


def tree_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes below root."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() or p.is_symlink():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def popen_snakemake(workdir: Path, *args) -> subprocess.Popen:
    """Snakemake in a process group of its own, as a shell runs a foreground job."""
    return subprocess.Popen([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for(pred, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill_group(p: subprocess.Popen, sig=signal.SIGINT) -> None:
    os.killpg(p.pid, sig)


def left_by(tb) -> list[str]:
    """The network namespaces of this testbed still present after it went
    down (the machine is shared: other sessions' namespaces are not ours)."""
    present = set(rxb_netns())
    return [ns for ns in (tb.sender.netns, tb.receiver.netns) if ns in present]
