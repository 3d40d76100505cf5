"""The g5k platform against a local Grid'5000 API (tests/g5k_api.py) over
real HTTP: reservation by name, waiting, deployment with retries, the test
link from the reference API, release on failure, on a signal and from the
record; every job a test makes is released (the server says none is left)."""

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
from rxbench.config import resolve
from rxbench.platforms import g5k
from rxbench.platforms.g5k_api import G5kError

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from g5k_api import Server  # noqa: E402

USER = "alice"


def _log(msg):
    print(msg, flush=True)


@pytest.fixture
def env(tmp_path, monkeypatch):
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
    with Server() as srv:
        pcfg = {"site": "lille", "cluster": "chiclet", "api_url": srv.url,
                "credentials": str(creds), "ssh_key": str(key), "gateway": None,
                "poll_s": 0.05, "progress_s": 0, "api_timeout_s": 1,
                "api_connect_timeout_s": 1, "api_retries": 1,
                "check_environment": False, "walltime": "0:30", "start_timeout_s": 10}
        yield srv, pcfg, tmp_path
        lease.down("g5k", _log)
        assert srv.live_jobs() == [], "a test left a job running"


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
    inv = g5k.lease_up(_cfg(pcfg), rec, _log)
    (job,) = srv.live_jobs()
    assert job["name"] == g5k.job_name(g5k.settings(_cfg(pcfg)), USER)
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
    g5k.lease_down(rec, _log)
    assert srv.live_jobs() == []


def test_a_job_is_reused_by_name(env):
    srv, pcfg, tmp = env
    name = g5k.job_name(g5k.settings(_cfg(pcfg)), USER)
    uid = srv.add_job(name, USER, state="running")
    srv.add_job(name, "bob", state="running")           # another user's: not ours
    rec = _record(tmp)
    inv = g5k.lease_up(_cfg(pcfg), rec, _log)
    assert inv["provenance"]["job"] == uid and not _posts(srv, "/jobs")
    g5k.lease_down(rec, _log)
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
    g5k.lease_up(_cfg(pcfg), rec, _log)
    deps = [r[2]["nodes"] for r in _posts(srv, "/deployments")]
    assert deps[1:] == [["chiclet-1.lille.grid5000.fr"]]
    assert rec.get("deployed")["attempts"] == 2
    g5k.lease_down(rec, _log)


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
    with pytest.raises(g5k.Refused, match="management BMC"):
        g5k.choose_port(doc, {"test_interface": "bmc"})


def test_one_cabled_port_needs_the_opt_in_and_then_warns(tmp_path):
    from g5k_api import adapters
    doc = {"uid": "hydra-1", "network_adapters": adapters("172.16.0.9", second_port=False,
                                                          driver="mlx5_core")}
    with pytest.raises(g5k.Refused, match="no cabled second port.*allow_shared_port"):
        g5k.choose_port(doc, {})
    port = g5k.choose_port(doc, {"allow_shared_port": True})
    assert port["shared"] and port["ifname"] == "eth0"
    p = {**g5k.DEFAULTS, "environment": "x", "ssh_key": "/k"}

    class Job:
        uid, assigned_nodes, attributes = 7, ["hydra-1.lyon.grid5000.fr",
                                              "hydra-2.lyon.grid5000.fr"], {}

    class A:
        site, url, user = "lyon", "u", "alice"
    inv = g5k.inventory(p, A, Job, [doc, doc], [port, port], "/kh")
    assert "shares the port that carries SSH" in inv["provenance"]["warning"]
    assert inv["provenance"]["rate_limit_mbps"] == 1000


def test_a_shared_port_is_refused_while_generators_cannot_bound_their_rate(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(lease, "STATE_DIR", tmp_path / "state")
    creds = tmp_path / "c.yaml"
    creds.write_text("username: alice\npassword: x\n")
    with Server(cluster="hydra", site="lyon", second_port=False) as srv:
        uid = srv.add_job("j", USER)
        api = g5k.Api({"site": "lyon", "api_url": srv.url, "credentials": str(creds),
                       "api_timeout_s": 2})
        nodes = srv.jobs[uid]["assigned_nodes"]
        p = {**g5k.DEFAULTS, "allow_shared_port": True}
        assert not g5k.rate_bound_supported()
        with pytest.raises(g5k.Refused, match="cannot bound their rate: refused"):
            g5k.choose_links(api, nodes, p, _log)
        monkeypatch.setattr("rxbench.stacks.base.RATE_BOUND", True, raising=False)
        docs, ports = g5k.choose_links(api, nodes, p, _log)
        assert all(x["shared"] for x in ports)
        with pytest.raises(g5k.Refused, match="hydra-1 .hydra. has no cabled second port"):
            g5k.choose_links(api, nodes, g5k.DEFAULTS, _log)


def test_api_errors_and_timeouts_are_one_clear_line(env):
    srv, pcfg, tmp = env
    api = g5k.Api({**pcfg})
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
    name = g5k.job_name(g5k.settings(_cfg(pcfg)), USER)
    threading.Timer(0.3, lambda: srv.add_job(name, USER, state="waiting")).start()
    rec = _record(tmp)
    g5k.lease_up(_cfg(pcfg), rec, _log)
    assert len(srv.jobs) == 1
    g5k.lease_down(rec, _log)


class _StandInSsh:
    """Stands in for the core engineer's SshTestbed (not on main yet) in the
    wrapper's tests only: records what the g5k testbed hands it."""

    made: list = []

    def __init__(self, cfg, log, inventory, queues=1):
        self.inventory, self.queues, self.entered, self.exited = inventory, queues, 0, 0
        self.sender = "the sender side"
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
    tb.commands = ["x"]
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
    with pytest.raises(g5k.JobEnded, match="job .* is error after the cell: walltime reached"):
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
    with pytest.raises(g5k.JobEnded, match="before the cell: killed by an administrator"):
        g5k.G5kTestbed(_cfg(pcfg), _log)
    g5k.stop_path().unlink()


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


def test_walltime_is_computed_from_the_campaign(env):
    srv, pcfg, tmp = env
    over = {"platform": "g5k", "profile": "smoke",
            "platforms": {"g5k": {"site": "lille", "cluster": "chiclet"}}}
    cfg = resolve(over)
    from rxbench.cells import expand
    cells = expand(cfg)
    want = 1200 + sum(cfg["warmup_s"] + (cfg["duration_s"] if c.layer == "eth"
                                         else cfg["tcp"]["duration_s"]) + 20 for c in cells)
    want = int(-(-want // 60) * 60)
    assert g5k.walltime_s(cfg) == want
    assert g5k.walltime(cfg) == f"{want // 3600}:{want % 3600 // 60:02d}"
    # a cell's runner sees only its layer: the walltime is still the campaign's
    cell_cfg = {k: cfg[k] for k in ("profile", "platform", "warmup_s", "timeout_s",
                                    "platforms", "eth", "duration_s")}
    assert g5k.walltime_s(cell_cfg) == want


def test_oar_properties_and_kavlan_resources():
    p = {**g5k.DEFAULTS, "site": "lille", "cluster": "chiclet", "walltime": "2:00",
         "properties": {"eth_count": 2, "eth_rate": 25}}
    cfg = {"platforms": {"g5k": p}}
    spec = g5k.job_spec(cfg, "n")
    assert spec["properties"] == "(cluster='chiclet') and (eth_count>=2) and (eth_rate>=25)"
    assert spec["resources"] == "nodes=2,walltime=2:00" and spec["types"] == ["deploy"]
    cfg["platforms"]["g5k"] = {**p, "kavlan": True, "exotic": True,
                               "reservation": "2026-12-24 19:00:00"}
    spec = g5k.job_spec(cfg, "n")
    assert spec["resources"].startswith("{type='kavlan-local'}/vlan=1+{(cluster='chiclet')")
    assert "properties" not in spec and spec["types"] == ["deploy", "exotic"]
    assert spec["reservation"] == "2026-12-24 19:00:00"


def test_release_by_name_frees_a_job_no_record_knows(env):
    srv, pcfg, tmp = env
    name = g5k.job_name(g5k.settings(_cfg(pcfg)), USER)
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
    assert g5k.job_spec(cfg, "n")["properties"] == \
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
    facts = g5k.check_environment(inv, {"expect_os": os_id, "kernel_min": "3.0",
                                        "environment": "test"}, _log)
    assert facts["sender"]["kernel"] == os.uname().release
    assert facts["receiver"]["mac"] == "00:00:00:00:00:00" and facts["sender"]["os"] == os_id
    with pytest.raises(G5kError, match="older than kernel_min 99.1"):
        g5k.check_environment(inv, {"kernel_min": "99.1", "environment": "test"}, _log)
    with pytest.raises(G5kError, match="deployed OS is .* expected plan9"):
        g5k.check_environment(inv, {"expect_os": "plan9", "environment": "test"}, _log)
    bad = {**side, "test_interface": "nosuchif0"}
    with pytest.raises(G5kError, match="does not answer as expected over SSH"):
        g5k.check_environment({"sender": bad, "receiver": bad}, {"environment": "t"}, _log)


def test_kavlan_reserves_a_vlan_and_puts_both_test_ports_in_it(env):
    srv, pcfg, tmp = env
    rec = _record(tmp)
    inv = g5k.lease_up(_cfg(pcfg, kavlan=True), rec, _log)
    (job,) = srv.live_jobs()
    assert job["resources"] == ("{type='kavlan-local'}/vlan=1+{(cluster='chiclet')}/"
                                "nodes=2,walltime=0:30") and job["properties"] is None
    assert srv.vlans == {"4": ["chiclet-1-eth1.lille.grid5000.fr",
                               "chiclet-2-eth1.lille.grid5000.fr"]}
    assert inv["provenance"]["nics"]["chiclet-2"]["kavlan"] is True
    assert inv["provenance"]["kavlan"] == "4"
    g5k.lease_down(rec, _log)


def test_a_job_the_api_would_not_delete_is_kept_for_release(env):
    srv, pcfg, tmp = env
    rec = _record(tmp)
    inv = g5k.lease_up(_cfg(pcfg), rec, _log)
    uid = inv["provenance"]["job"]
    srv.fault("DELETE", r"/jobs/\d+$", "500", count=1000)
    srv.fault("GET", r"/jobs/\d+$", "500", count=1000)
    with pytest.raises(G5kError, match=f"could not delete job {uid}.*oardel {uid}"):
        g5k.lease_down(rec, _log)
    assert g5k.unreleased_path(uid).exists() and [j["uid"] for j in srv.live_jobs()] == [uid]
    srv.faults.clear()
    assert g5k.release(_log) == [f"job {uid} at lille"]
    assert not g5k.unreleased_path(uid).exists() and srv.live_jobs() == []


def test_transient_500s_and_a_hang_during_the_waits_are_retried(env):
    srv, pcfg, tmp = env
    srv.fault("GET", r"/jobs/\d+$", "500", count=1)
    srv.fault("GET", r"/jobs/\d+$", "hang", count=1, hang_s=2)
    srv.fault("GET", r"/deployments/", "500", count=1)
    rec = _record(tmp)
    try:
        inv = g5k.lease_up(_cfg(pcfg, api_outage_s=10), rec, _log)
        assert inv["provenance"]["job"] in srv.jobs
        assert all(f["count"] == 0 for f in srv.faults)
    finally:
        g5k.lease_down(rec, _log)


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
