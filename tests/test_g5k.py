"""The g5k platform against a local Grid'5000 API (tests/g5k_api.py) over
real HTTP: reservation by name, waiting, deployment with retries, the test
link from the reference API, KaVLAN, release on failure, on a signal and
from the record; every job a test makes is released (the server says none
is left). The server's documents have the real API's structure: lower-case
job states, a fragged job ending in error, KaVLAN's per-node answer, the
reference API's network_adapters of an i40e, an mlx5, a one-port and a
slow-second-port cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rxbench import lease, state
from rxbench.config import ConfigError, resolve
from rxbench.platforms import g5k
from rxbench.platforms.g5k import lease as L
from rxbench.platforms.g5k import nodes as N
from rxbench.platforms.g5k import settings as S
from rxbench.platforms.g5k.api import Api, G5kError

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from g5k_api import Server  # noqa: E402

USER = "alice"


def _log(msg):
    print(msg, flush=True)


def _env(tmp_path, monkeypatch, cluster):
    """A private state dir, credentials, an SSH key pair, and the server;
    at the end, no job may be left running on it."""
    monkeypatch.setattr(lease, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(state, "STATE_DIR", tmp_path / "state")
    monkeypatch.setenv("RXBENCH_STATE_DIR", str(tmp_path / "state"))
    creds = tmp_path / "g5k.yaml"
    creds.write_text(f"username: {USER}\npassword: secret\n")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL)
    with Server(cluster=cluster) as srv:
        pcfg = {"site": "lille", "cluster": cluster, "api_url": srv.url,
                "credentials": str(creds), "ssh_key": str(key), "gateway": None,
                "poll_s": 0.05, "progress_s": 0, "api_timeout_s": 1,
                "api_connect_timeout_s": 1, "api_retries": 1,
                "check_environment": False, "walltime": "0:30", "start_timeout_s": 10}
        yield srv, pcfg, tmp_path
        lease.down("g5k", _log)
        assert srv.live_jobs() == [], "a test left a job running"


@pytest.fixture
def env(tmp_path, monkeypatch):
    yield from _env(tmp_path, monkeypatch, "chiclet")


@pytest.fixture
def env_chuc(tmp_path, monkeypatch):
    yield from _env(tmp_path, monkeypatch, "chuc")


def _cfg(pcfg, **over):
    return {"profile": "smoke", "platform": "g5k", "warmup_s": 0.5, "timeout_s": 30,
            "duration_s": 1, "platforms": {"g5k": {**pcfg, **over}}}


def _record(tmp_path):
    path = tmp_path / "record.json"
    return lease.LeaseRecord(path, {"resources": {}})


def _posts(srv, path):
    return [r for r in srv.requests if r[0] == "POST" and r[1].endswith(path)]


def test_lease_up_reserves_deploys_and_builds_the_inventory(env):
    srv, pcfg, tmp = env
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg), rec, _log)
    (job,) = srv.live_jobs()
    assert job["name"] == L.job_name(S.settings(_cfg(pcfg)), USER)
    assert job["user"] == USER and job["types"] == ["deploy"]
    assert job["properties"] == "(cluster='chiclet')"
    assert job["resources"] == "nodes=2,walltime=0:30"
    (dep,) = _posts(srv, "/deployments")
    assert dep[2]["environment"] == "debian12-min"
    assert dep[2]["key"] == Path(pcfg["ssh_key"] + ".pub").read_text().strip()
    # the management addresses from the reference API, the second port for tests
    assert inv["sender"]["address"] == "198.19.7.2" and inv["receiver"]["address"] == "198.19.7.6"
    assert inv["sender"]["test_interface"] == "eth1" == inv["receiver"]["test_interface"]
    assert inv["sender"]["test_ip"] == "198.18.0.1" and inv["receiver"]["test_ip"] == "198.18.0.2"
    prov = inv["provenance"]
    assert prov["site"] == "lille" and prov["cluster"] == "chiclet" and prov["job"] == job["uid"]
    assert prov["nodes"] == {"sender": "chiclet-1.lille.grid5000.fr",
                             "receiver": "chiclet-2.lille.grid5000.fr"}
    assert prov["nics"]["chiclet-1"]["driver"] == "i40e" and prov["ssh_ports"]["chiclet-1"] == "eth0"
    assert "warning" not in prov
    L.lease_down(rec, _log)
    assert srv.live_jobs() == []


def test_a_job_is_reused_by_name(env):
    srv, pcfg, tmp = env
    name = L.job_name(S.settings(_cfg(pcfg)), USER)
    uid = srv.add_job(name, USER, state="running")
    srv.add_job(name, "bob", state="running")           # another user's: not ours
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg), rec, _log)
    assert inv["provenance"]["job"] == uid and not _posts(srv, "/jobs")
    L.lease_down(rec, _log)
    live = srv.live_jobs()
    assert [j["user"] for j in live] == ["bob"]
    srv.jobs[live[0]["uid"]]["state"] = "terminated"


def test_a_job_that_never_starts_times_out_and_is_released(env):
    srv, pcfg, tmp = env
    srv.start_after_s = None
    with pytest.raises(lease.LeaseError, match=r"did not start within 0 s \(state waiting\)"):
        lease.ensure("g5k", _cfg(pcfg, start_timeout_s=0.3), _log, watch_pid=os.getpid(),
                     ready_s=60)
    assert len(srv.jobs) == 1 and srv.live_jobs() == []


def test_a_deployment_failing_on_one_node_is_retried_then_stops_naming_it(env):
    srv, pcfg, tmp = env
    srv.fail_nodes = {"chiclet-2": 10}
    with pytest.raises(lease.LeaseError, match="kadeploy failed on chiclet-2 3 times"):
        lease.ensure("g5k", _cfg(pcfg, deploy_retries=2), _log, watch_pid=os.getpid(),
                     ready_s=60)
    deps = [r[2]["nodes"] for r in _posts(srv, "/deployments")]
    assert deps == [["chiclet-1.lille.grid5000.fr", "chiclet-2.lille.grid5000.fr"],
                    ["chiclet-2.lille.grid5000.fr"], ["chiclet-2.lille.grid5000.fr"]]
    assert srv.live_jobs() == []
    # the per-attempt documents are in the owner's log
    logtext = lease.state_path("g5k").with_suffix(".log").read_text()
    assert logtext.count('"state": "KO"') == 3


def test_a_node_that_fails_once_is_redeployed_alone(env):
    srv, pcfg, tmp = env
    srv.fail_nodes = {"chiclet-1": 1}
    rec = _record(tmp)
    L.lease_up(_cfg(pcfg), rec, _log)
    deps = [r[2]["nodes"] for r in _posts(srv, "/deployments")]
    assert deps[1:] == [["chiclet-1.lille.grid5000.fr"]]
    assert rec.get("deployed")["attempts"] == 2
    L.lease_down(rec, _log)


def _wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["sigint", "campaign_killed"])
def test_interrupted_during_deployment_releases_the_job(env, how):
    srv, pcfg, tmp = env
    srv.deploy_s = 60
    campaign = subprocess.Popen(["sleep", "120"])
    out = {}

    def ensure():
        try:
            lease.ensure("g5k", _cfg(pcfg), _log, watch_pid=campaign.pid, ready_s=60)
        except lease.LeaseError as e:
            out["error"] = str(e)

    t = threading.Thread(target=ensure)
    t.start()
    try:
        assert _wait(lambda: srv.deployments), "no deployment started"
        if how == "sigint":
            os.kill(lease._load(lease.state_path("g5k"))["owner_pid"], signal.SIGINT)
        else:
            campaign.kill()
        t.join(30)
        assert not t.is_alive()
        want = "SIGINT during deployment" if how == "sigint" else "campaign ended during"
        assert want in out["error"]
        assert srv.live_jobs() == []
    finally:
        campaign.kill()
        campaign.wait()


def test_the_ssh_port_is_refused_as_test_port(env):
    srv, pcfg, tmp = env
    with pytest.raises(lease.LeaseError, match="eth0 carries the node's address and SSH"):
        lease.ensure("g5k", _cfg(pcfg, test_interface="eth0"), _log, watch_pid=os.getpid(),
                     ready_s=60)
    assert not _posts(srv, "/deployments")      # refused before deploying
    doc = srv.nodes["chiclet-1"]
    with pytest.raises(N.Refused, match="management BMC"):
        N.choose_port(doc, {"test_interface": "bmc"})


def _doc(cluster, i=1, **kw):
    from g5k_api import adapters
    return {"uid": f"{cluster}-{i}", "network_adapters": adapters(cluster, i, "172.16.0.9", **kw)}


def test_one_cabled_port_is_refused_with_the_true_reason():
    """hydra: its only cabled port carries SSH; never used for tests (there
    is no opt-in any more: the old allow_shared_port was refused anyway)."""
    with pytest.raises(N.Refused, match=r"hydra-1 \(hydra\) has no cabled second port: its "
                                        r"only cabled port enP2p1s0f0np0 \(mlx5_core, 10 Gbit/s\) "
                                        r"carries the node's address and SSH"):
        N.choose_port(_doc("hydra"), S.DEFAULTS)


def test_an_mlx5_cluster_gets_its_driver_from_the_reference_api(env_chuc):
    """chuc (ConnectX-5, mlx5_core): the example's settings lease it; the
    test port, its kernel name and its driver come from the reference API,
    and the port is marked bifurcated (DPDK's mlx5 PMD needs no vfio-pci)."""
    srv, pcfg, tmp = env_chuc
    from rxbench.config import _load_yaml
    example = _load_yaml(TESTS.parent / "config" / "g5k.yaml")["platforms"]["g5k"]
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg, properties=example["properties"],
                          nic_driver=example["nic_driver"]), rec, _log)
    assert inv["receiver"]["test_interface"] == "ens15f1np1"
    nic = inv["provenance"]["nics"]["chuc-2"]
    assert nic["driver"] == "mlx5_core" and nic["bifurcated"] is True
    assert inv["provenance"]["ssh_ports"]["chuc-1"] == "ens15f0np0"
    L.lease_down(rec, _log)


def test_a_driver_filter_that_excludes_the_port_says_so():
    """The old message blamed a missing second port and SSH; the true
    reason is the driver."""
    with pytest.raises(N.Refused, match=r"chuc-1: its cabled test port\(s\) ens15f1np1 "
                                        r"\(mlx5_core, 25 Gbit/s\) do not have driver i40e"):
        N.choose_port(_doc("chuc"), {**S.DEFAULTS, "nic_driver": "i40e"})


def test_the_test_ports_own_rate_is_checked_against_eth_rate():
    """OAR's eth_rate is the node's fastest port (here eno1, 25G, SSH): the
    test port eno2 runs at 10G and is refused for eth_rate>=25."""
    p = {**S.DEFAULTS, "properties": {"eth_count": 2, "eth_rate": 25}}
    with pytest.raises(N.Refused, match=r"test port eno2 runs at 10 Gbit/s, below the eth_rate "
                                        r">= 25 .*fastest port: here eno1, 25 Gbit/s"):
        N.choose_port(_doc("slowtwo"), p)
    port = N.choose_port(_doc("slowtwo"), {**p, "properties": {"eth_rate": ">=10"}})
    assert port["ifname"] == "eno2" and port["rate"] == 10_000_000_000
    assert N.needed_rate({"properties": {"eth_rate": "25"}}) == 25.0


def _oar_eth(doc):
    """eth_count and eth_rate as OAR's resource properties derive them from
    the reference API: the node's mountable Ethernet ports, the fastest one's
    rate in Gbit/s."""
    eth = [a for a in doc["network_adapters"] if not a.get("management")
           and a.get("interface") == "Ethernet" and (a.get("mountable") or a.get("mounted"))]
    return len(eth), max(a["rate"] for a in eth) // 1_000_000_000


@pytest.mark.parametrize("cluster", ["chiclet", "chuc"])
def test_the_examples_properties_can_be_scheduled(cluster):
    """The example's OAR properties select the recommended clusters' nodes
    (as OAR has eth_count and eth_rate), and the chosen port satisfies them."""
    from rxbench.config import _load_yaml
    p = _load_yaml(TESTS.parent / "config" / "g5k.yaml")["platforms"]["g5k"]
    count, rate = _oar_eth(_doc(cluster))
    assert count >= p["properties"]["eth_count"] and rate >= p["properties"]["eth_rate"]
    port = N.choose_port(_doc(cluster), {**S.DEFAULTS, **p})
    assert port["rate"] >= p["properties"]["eth_rate"] * 1e9
    # the one-port cluster cannot be scheduled by them: OAR has 1 and 10 there
    assert _oar_eth(_doc("hydra")) == (1, 10)
    assert "hydra" not in "".join(l for l in (TESTS.parent / "config" / "g5k.yaml")
                                  .read_text().splitlines() if not l.lstrip().startswith("#"))


def test_api_errors_and_timeouts_are_one_clear_line(env):
    srv, pcfg, tmp = env
    api = Api({**pcfg})
    srv.fault("GET", r"/jobs$", "500", count=1)
    assert api.jobs() == []                       # one 500 is retried
    srv.fault("GET", r"/jobs$", "500", count=5)
    with pytest.raises(G5kError, match=r"list jobs .http://127\.0\.0\.1:\d+/stable.: "
                                       r"HTTP 500 on each of 2 tries$"):
        api.jobs()
    srv.faults.clear()
    srv.fault("GET", r"/jobs$", "hang", count=5, hang_s=3)
    t0 = time.monotonic()
    with pytest.raises(G5kError, match="no answer within 1 s"):
        api.jobs()
    assert time.monotonic() - t0 < 5


def test_a_submission_that_times_out_is_found_by_name(env):
    srv, pcfg, tmp = env
    srv.fault("POST", r"/jobs$", "hang", count=1, hang_s=2)
    # the server makes the job although the client gave up: emulate by
    # creating it while the POST hangs
    name = L.job_name(S.settings(_cfg(pcfg)), USER)
    threading.Timer(0.3, lambda: srv.add_job(name, USER, state="waiting")).start()
    rec = _record(tmp)
    L.lease_up(_cfg(pcfg), rec, _log)
    assert len(srv.jobs) == 1
    L.lease_down(rec, _log)


class _StandInSsh:
    """Stands in for the core engineer's SshTestbed (not on main yet) in the
    wrapper's tests only: records what the g5k testbed hands it."""

    made: list = []

    def __init__(self, cfg, log, inventory, queues=1):
        self.inventory, self.queues, self.entered, self.exited = inventory, queues, 0, 0
        self.sender = "the sender side"
        self.commands: list = []
        _StandInSsh.made.append(self)

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        self.exited += 1
        return False


@pytest.fixture
def ssh_standin(monkeypatch):
    import types
    mod = types.ModuleType("rxbench.platforms.ssh")
    mod.SshTestbed = _StandInSsh
    monkeypatch.setitem(sys.modules, "rxbench.platforms.ssh", mod)
    _StandInSsh.made = []
    return _StandInSsh


def test_without_the_ssh_platform_nothing_is_reserved(env, monkeypatch):
    srv, pcfg, tmp = env
    monkeypatch.setitem(sys.modules, "rxbench.platforms.ssh", None)
    with pytest.raises(G5kError, match="through the ssh platform.*nothing was reserved"):
        g5k.G5kTestbed(_cfg(pcfg), _log)
    assert srv.jobs == {}


def test_the_testbed_hands_the_inventory_to_the_ssh_platform(env, ssh_standin):
    srv, pcfg, tmp = env
    from rxbench.platforms import testbed
    tb = testbed(_cfg(pcfg), _log, queues=2)
    inner = ssh_standin.made[0]
    assert inner.queues == 2 and inner.inventory["receiver"]["address"] == "198.19.7.6"
    tb.commands.append("x")         # a cell's command log is the inner testbed's
    assert inner.commands == ["x"] and tb.sender == "the sender side"
    with tb:
        pass
    assert (inner.entered, inner.exited) == (1, 1)
    tb2 = testbed(_cfg(pcfg), _log)                   # the next cell: the same job
    assert ssh_standin.made[1].inventory == inner.inventory and len(srv.jobs) == 1


def test_a_job_that_ends_early_fails_the_cell_and_stops_the_campaign(env, ssh_standin):
    srv, pcfg, tmp = env
    cfg = _cfg(pcfg)
    tb = g5k.G5kTestbed(cfg, _log)
    uid = tb.job
    srv.end_job(uid, "error", "walltime reached")
    with pytest.raises(L.JobEnded, match="job .* is error after the cell: WALLTIME walltime reached"):
        with tb:
            pass                                       # the cell's measurement
    assert not lease.state_path("g5k").exists()        # the lease is released
    with pytest.raises(SystemExit, match="g5k campaign stopped: .*walltime reached"):
        g5k.G5kTestbed(cfg, _log)
    assert len(srv.jobs) == 1                          # nothing reserved again


def test_a_job_ended_before_a_cell_fails_that_cell(env, ssh_standin):
    srv, pcfg, tmp = env
    inv = lease.ensure("g5k", _cfg(pcfg), _log, ready_s=60)
    srv.end_job(inv["provenance"]["job"], "terminated", "killed by an administrator")
    with pytest.raises(L.JobEnded, match="before the cell: SEND_KILL_JOB killed by an administrator"):
        g5k.G5kTestbed(_cfg(pcfg), _log)
    g5k.testbed.stop_path().unlink()


def test_release_cli_frees_what_a_killed_owner_left(env):
    srv, pcfg, tmp = env
    inv = lease.ensure("g5k", _cfg(pcfg), _log, watch_pid=os.getpid(), ready_s=60)
    owner = lease._load(lease.state_path("g5k"))["owner_pid"]
    os.kill(owner, signal.SIGKILL)
    assert _wait(lambda: lease._running(owner, None) is False)
    assert [j["uid"] for j in srv.live_jobs()] == [inv["provenance"]["job"]]
    p = subprocess.run([sys.executable, "-m", "rxbench", "g5k", "release"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(TESTS.parent / "workflow")})
    assert p.returncode == 0, p.stderr
    assert "released" in p.stdout
    assert srv.live_jobs() == []


def test_walltime_is_sized_from_the_campaign_when_the_config_is_resolved():
    over = {"platform": "g5k", "profile": "smoke",
            "platforms": {"g5k": {"site": "lille", "cluster": "chiclet"}}}
    cfg = resolve(over)
    from rxbench.cells import expand
    cells = expand(cfg)
    want = 1200 + sum(cfg["warmup_s"] + (cfg["duration_s"] if c.layer == "eth"
                                         else cfg["tcp"]["duration_s"]) + 20 for c in cells)
    want = int(-(-want // 60) * 60)
    assert cfg["platforms"]["g5k"]["walltime"] == f"{want // 3600}:{want % 3600 // 60:02d}"
    # a cell's runner sees only its layer: the walltime travels in platforms.g5k
    cell_cfg = {k: cfg[k] for k in ("profile", "platform", "warmup_s", "timeout_s",
                                    "platforms", "eth", "duration_s")}
    assert L.job_spec(S.settings(cell_cfg), "n")["resources"] == \
        f"nodes=2,walltime={cfg['platforms']['g5k']['walltime']}"
    with pytest.raises(G5kError, match="walltime: still 'auto'"):
        S.settings({"platforms": {"g5k": {"site": "s", "cluster": "c"}}})


def test_the_platform_never_imports_config_or_cells():
    """platforms/g5k reads only platforms.g5k (no re-resolving of the
    configuration, no upward import)."""
    import ast
    for f in (TESTS.parent / "workflow" / "rxbench" / "platforms" / "g5k").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
                assert not {"config", "cells"} & set(names), (f.name, names)
                assert not (node.module or "").startswith(("config", "cells")), f.name


def test_the_walltime_docs_are_the_commands_output():
    """docs/g5k-walltime.md is generated: regenerate it with the command
    its first line names when the campaign's shape changes."""
    p = subprocess.run([sys.executable, "-m", "rxbench", "g5k", "walltime", "--docs",
                        "--configfile", str(TESTS.parent / "config" / "g5k.yaml")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(TESTS.parent / "workflow")})
    assert p.returncode == 0, p.stderr
    doc = (TESTS.parent / "docs" / "g5k-walltime.md").read_text()
    assert doc == p.stdout, "docs/g5k-walltime.md is stale: regenerate it"
    assert "| default |" in doc and "5:45" not in doc


def test_oar_properties_and_kavlan_resources():
    p = {**S.DEFAULTS, "site": "lille", "cluster": "chiclet", "walltime": "2:00",
         "properties": {"eth_count": 2, "eth_rate": 25}}
    spec = L.job_spec(p, "n")
    assert spec["properties"] == "(cluster='chiclet') and (eth_count>=2) and (eth_rate>=25)"
    assert spec["resources"] == "nodes=2,walltime=2:00" and spec["types"] == ["deploy"]
    spec = L.job_spec({**p, "kavlan": True, "exotic": True,
                       "reservation": "2099-12-24 19:00:00"}, "n")
    assert spec["resources"].startswith("{type='kavlan-local'}/vlan=1+{(cluster='chiclet')")
    assert "properties" not in spec and spec["types"] == ["deploy", "exotic"]
    assert spec["reservation"] == "2099-12-24 19:00:00"


def test_a_reservation_is_the_sites_local_time():
    """OAR reads the date in Europe/Paris: 19:00 on 24 December is 18:00
    UTC (winter), 19:00 on 24 June is 17:00 UTC (summer)."""
    import datetime as dt
    utc = dt.timezone.utc
    ts = S.reservation_ts({"site": "lille", "reservation": "2026-12-24 19:00:00"})
    assert ts == dt.datetime(2026, 12, 24, 18, 0, tzinfo=utc).timestamp()
    ts = S.reservation_ts({"site": "nancy", "reservation": "2026-06-24 19:00:00"})
    assert ts == dt.datetime(2026, 6, 24, 17, 0, tzinfo=utc).timestamp()
    with pytest.raises(G5kError, match="reservation: 2020-01-01 10:00:00 .* is in the past"):
        L.job_spec({**S.DEFAULTS, "site": "lille", "cluster": "c", "walltime": "1:00",
                    "reservation": "2020-01-01 10:00:00"}, "n")


@pytest.mark.parametrize("value,why", [
    ("2026-12-24T19:00:00", r"not in OAR's format 'YYYY-MM-DD HH:MM:SS' .*Europe/Paris.* "
                            r"\(a space, not 'T', between date and time\)"),
    ("2026-12-24 19:00", "not in OAR's format"),
    ("2026-02-30 19:00:00", "is not a date"),
])
def test_a_reservation_not_in_oars_format_is_refused_before_anything_runs(value, why):
    over = {"platform": "g5k", "profile": "smoke",
            "platforms": {"g5k": {"site": "lille", "cluster": "chiclet", "reservation": value}}}
    with pytest.raises(ConfigError, match=f"config key platforms.g5k.reservation: .*{why}"):
        resolve(over)


def test_a_reservation_with_t_stops_the_dry_run(tmp_path):
    from conftest import snakemake
    p = snakemake(tmp_path, "-n", "--cores", "1", "--configfile",
                  str(TESTS.parent / "config" / "g5k.yaml"), "--config", "profile=smoke",
                  "platforms={g5k: {site: lille, cluster: chiclet, "
                  "reservation: '2026-12-24T19:00:00'}}")
    assert p.returncode != 0
    assert "config key platforms.g5k.reservation" in p.stdout + p.stderr


def test_release_by_name_frees_a_job_no_record_knows(env):
    srv, pcfg, tmp = env
    name = L.job_name(S.settings(_cfg(pcfg)), USER)
    uid = srv.add_job(name, USER, state="running")
    import yaml
    conf = tmp / "my-g5k.yaml"
    conf.write_text(yaml.safe_dump({"platforms": {"g5k": pcfg}}))
    p = subprocess.run([sys.executable, "-m", "rxbench", "g5k", "release", "--by-name",
                        "--configfile", str(conf)], capture_output=True, text=True,
                       timeout=60, env={**os.environ,
                                        "PYTHONPATH": str(TESTS.parent / "workflow")})
    assert p.returncode == 0, p.stderr
    assert f"released job {uid} ({name}) at lille" in p.stdout
    assert srv.live_jobs() == []


def test_the_example_config_validates_and_sizes_the_campaign():
    from rxbench.config import _load_yaml
    example = _load_yaml(TESTS.parent / "config" / "g5k.yaml")
    cfg = resolve({**example, "profile": "smoke"})
    assert cfg["platform"] == "g5k" and cfg["platforms"]["g5k"]["cluster"] == "chiclet"
    assert L.job_spec(S.settings(cfg), "n")["properties"] == \
        "(cluster='chiclet') and (eth_count>=2) and (eth_rate>=25)"
    from rxbench.config import ConfigError
    with pytest.raises(ConfigError, match=r"platforms\.g5k: unknown key\(s\) clusterr"):
        resolve({**example, "platforms": {"g5k": {**example["platforms"]["g5k"],
                                                  "clusterr": "x"}}})


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on 127.0.0.1 (a random port) that lets our test key in as root."""
    import socket
    if os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs root and /usr/sbin/sshd")
    d = tmp_path / "sshd"
    d.mkdir(mode=0o700)
    key = d / "client"
    hostkey = d / "host"
    for k in (key, hostkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)],
                       check=True, stdin=subprocess.DEVNULL)
    (d / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = d / "sshd_config"
    conf.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n"
                    f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n"
                    f"PermitRootLogin prohibit-password\nPidFile {d}/pid\nUsePAM no\n"
                    "StrictModes no\n")   # its files are under /tmp (sticky, world-writable)
    # sshd's privilege-separation directory (Debian's ssh service makes it;
    # a CI machine that never started the service has none): made if
    # missing and left, as another sshd of the run may be using it
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(conf)],
                         stderr=open(d / "log", "w"))
    try:
        assert _wait(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10), \
            (d / "log").read_text()[-500:]
        yield {"address": "127.0.0.1", "port": port, "user": "root", "key": str(key),
               "jump": None, "known_hosts": str(d / "known_hosts")}
    finally:
        p.terminate()
        p.wait(10)


def test_the_deployed_environment_is_checked_over_ssh(sshd):
    side = {**sshd, "test_interface": "lo"}
    inv = {"sender": side, "receiver": side}
    os_id = subprocess.run(["sh", "-c", '. /etc/os-release; echo "$ID $VERSION_ID"'],
                           capture_output=True, text=True).stdout.strip()
    facts = N.check_environment(inv, {"expect_os": os_id, "kernel_min": "3.0",
                                        "environment": "test"}, _log)
    assert facts["sender"]["kernel"] == os.uname().release
    assert facts["receiver"]["mac"] == "00:00:00:00:00:00" and facts["sender"]["os"] == os_id
    with pytest.raises(G5kError, match="older than kernel_min 99.1"):
        N.check_environment(inv, {"kernel_min": "99.1", "environment": "test"}, _log)
    with pytest.raises(G5kError, match="deployed OS is .* expected plan9"):
        N.check_environment(inv, {"expect_os": "plan9", "environment": "test"}, _log)
    # the reference API's driver is checked on the deployed node (lo has none)
    with pytest.raises(G5kError, match="test interface lo has driver .none., the reference "
                                       "API says i40e"):
        N.check_environment(inv, {"environment": "t"}, _log, drivers={"receiver": "i40e"})
    bad = {**side, "test_interface": "nosuchif0"}
    with pytest.raises(G5kError, match="does not answer as expected over SSH"):
        N.check_environment({"sender": bad, "receiver": bad}, {"environment": "t"}, _log)


def test_kavlan_reserves_a_vlan_and_puts_both_test_ports_in_it(env):
    srv, pcfg, tmp = env
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg, kavlan=True), rec, _log)
    (job,) = srv.live_jobs()
    assert job["resources"] == ("{type='kavlan-local'}/vlan=1+{(cluster='chiclet')}/"
                                "nodes=2,walltime=0:30") and job["properties"] is None
    assert srv.vlans == {"4": ["chiclet-1-eth1.lille.grid5000.fr",
                               "chiclet-2-eth1.lille.grid5000.fr"]}
    assert inv["provenance"]["nics"]["chiclet-2"]["kavlan"] is True
    assert inv["provenance"]["kavlan"] == "4"
    L.lease_down(rec, _log)


def test_a_failed_vlan_move_stops_the_lease_naming_the_node(env):
    """KaVLAN answers per name; a failure stops the lease (job released)
    with the node named, before anything is deployed."""
    srv, pcfg, tmp = env
    srv.kavlan_fail = {"chiclet-2-eth1.lille.grid5000.fr"}
    with pytest.raises(lease.LeaseError, match=r"KaVLAN could not move chiclet-2's test port "
                                               r"chiclet-2-eth1.lille.grid5000.fr into VLAN 4: "
                                               r"failure: Unknown node"):
        lease.ensure("g5k", _cfg(pcfg, kavlan=True), _log, watch_pid=os.getpid(), ready_s=60)
    assert not _posts(srv, "/deployments") and srv.live_jobs() == []


def test_kavlan_on_a_port_the_reference_api_says_it_cannot_move_is_refused(env_chuc):
    srv, pcfg, tmp = env_chuc
    with pytest.raises(lease.LeaseError, match=r"chuc-1: test port\(s\) ens15f1np1 .* have "
                                               r"kavlan: false in the reference API"):
        lease.ensure("g5k", _cfg(pcfg, kavlan=True), _log, watch_pid=os.getpid(), ready_s=60)
    assert not _posts(srv, "/vlans/4/nodes") and srv.live_jobs() == []


def test_job_states_are_the_apis_lower_case_ones(env):
    """A job in tolaunch is ours and pending (reused, not submitted again:
    a state filter would have missed it, the API capitalises it to
    Tolaunch); toerror is an end."""
    srv, pcfg, tmp = env
    name = L.job_name(S.settings(_cfg(pcfg)), USER)
    uid = srv.add_job(name, USER, state="tolaunch")
    srv.jobs[uid]["created"] = time.monotonic()        # the clock starts it
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg), rec, _log)
    assert inv["provenance"]["job"] == uid and not _posts(srv, "/jobs")
    L.lease_down(rec, _log)
    assert "tolaunch" in S.PENDING and "toerror" in S.ENDED
    uid = srv.add_job("other", USER, state="toerror")
    with L.Watch(rec) as w:
        with pytest.raises(L.JobEnded, match=f"job {uid} toerror before it ran"):
            L.wait_running(Api(pcfg), Api(pcfg).job(uid), S.settings(_cfg(pcfg)), _log, w)


def test_a_deleted_job_ends_in_error_as_oar_frags_it(env):
    """DELETE answers 202 with an empty body; the job goes to error with
    FRAG_JOB_REQUEST ... SWITCH_INTO_ERROR_STATE; release_by_name stops."""
    srv, pcfg, tmp = env
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg), rec, _log)
    uid = inv["provenance"]["job"]
    L.lease_down(rec, _log)
    doc = Api(pcfg).job(uid).attributes
    assert doc["state"] == "error"
    assert [e["type"] for e in doc["events"]] == ["FRAG_JOB_REQUEST", "SEND_KILL_JOB",
                                                  "SWITCH_INTO_ERROR_STATE"]
    assert L.release_by_name(_cfg(pcfg), _log) == []


def test_a_job_the_api_would_not_delete_is_kept_for_release(env):
    srv, pcfg, tmp = env
    rec = _record(tmp)
    inv = L.lease_up(_cfg(pcfg), rec, _log)
    uid = inv["provenance"]["job"]
    srv.fault("DELETE", r"/jobs/\d+$", "500", count=1000)
    srv.fault("GET", r"/jobs/\d+$", "500", count=1000)
    with pytest.raises(G5kError, match=f"could not delete job {uid}.*oardel {uid}"):
        L.lease_down(rec, _log)
    assert L.unreleased_path(uid).exists() and [j["uid"] for j in srv.live_jobs()] == [uid]
    srv.faults.clear()
    assert g5k.release(_log) == [f"job {uid} at lille"]
    assert not L.unreleased_path(uid).exists() and srv.live_jobs() == []


def test_transient_500s_and_a_hang_during_the_waits_are_retried(env):
    srv, pcfg, tmp = env
    srv.fault("GET", r"/jobs/\d+$", "500", count=1)
    srv.fault("GET", r"/jobs/\d+$", "hang", count=1, hang_s=2)
    srv.fault("GET", r"/deployments/", "500", count=1)
    rec = _record(tmp)
    try:
        inv = L.lease_up(_cfg(pcfg, api_outage_s=10), rec, _log)
        assert inv["provenance"]["job"] in srv.jobs
        assert all(f["count"] == 0 for f in srv.faults)
    finally:
        L.lease_down(rec, _log)


def test_a_long_api_outage_ends_the_wait_and_the_job_is_released(env):
    srv, pcfg, tmp = env
    srv.start_after_s = None
    srv.fault("GET", r"/jobs/\d+$", "500", count=10_000)
    with pytest.raises(lease.LeaseError, match=r"GET job \d+ .*: HTTP 500 on each of 2 tries "
                                               r".the API has not answered for"):
        lease.ensure("g5k", _cfg(pcfg, api_outage_s=1), _log, watch_pid=os.getpid(),
                     ready_s=60)
    srv.faults.clear()
    assert srv.live_jobs() == []


def test_snakemake_plans_the_g5k_campaign_from_the_example(tmp_path):
    from conftest import snakemake
    p = snakemake(tmp_path, "-n", "--cores", "1", "--configfile",
                  str(TESTS.parent / "config" / "g5k.yaml"), "--config", "profile=smoke")
    assert p.returncode == 0, p.stderr[-2000:]
    planned = [line.split()[-1] for line in p.stdout.splitlines()
               if line.strip().startswith("output: results/")]
    cells = [c for c in planned if c.endswith(".json")]
    from rxbench.cells import targets
    from rxbench.config import _load_yaml
    want = targets(resolve({**_load_yaml(TESTS.parent / "config" / "g5k.yaml"),
                            "profile": "smoke"}))
    assert sorted(cells) == sorted(want) and all(c.startswith("results/g5k/") for c in cells)
