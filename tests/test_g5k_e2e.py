"""The g5k smoke campaign end to end: snakemake -> a cell's runner -> the
g5k lease (reservation, deployment, test link, environment check) against
the local API server (tests/g5k_api.py) -> the ssh platform on two
namespace "nodes" running sshd (tests/sshhosts.py, the core engineer's
harness) -> results -> release when snakemake is gone. The mock API's nodes
carry the namespace hosts' management addresses in their reference
documents, so the inventory reaches them as it reaches real nodes.

Needs root and sshd (the ssh_hosts fixture skips with the reason otherwise)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from g5k_api import Server  # noqa: E402
from sshhosts import TEST_IF  # noqa: E402 (the ssh_hosts fixture: conftest)

pytestmark = pytest.mark.integration


def test_g5k_smoke_campaign_from_reservation_to_release(tmp_path, ssh_hosts):
    from conftest import snakemake
    creds = tmp_path / "g5k.yaml"
    creds.write_text("username: alice\npassword: secret\n")
    os_id = subprocess.run(["sh", "-c", '. /etc/os-release; echo "$ID $VERSION_ID"'],
                           capture_output=True, text=True).stdout.strip()
    # the fixture's hosts (the first free block: another session may hold 198.19.0.x)
    roles = ssh_hosts.roles
    mgmt = (roles["sender"]["mgmt"][1], roles["receiver"]["mgmt"][1])
    state = tmp_path / "state"
    with Server(mgmt_ips=mgmt, test_ifname=TEST_IF, layout="netns") as srv:
        conf = tmp_path / "my-g5k.yaml"
        conf.write_text(yaml.safe_dump({
            "platform": "g5k", "profile": "smoke",
            # over SSH the counter readers start in seconds: room for them
            "warmup_s": 1, "duration_s": 4,
            "eth": {"stacks": ["xdp_drop"]}, "tcp": {"stacks": ["epoll"], "duration_s": 3},
            "platforms": {"g5k": {
                "site": "lille", "cluster": "chiclet", "api_url": srv.url,
                "credentials": str(creds), "ssh_key": str(ssh_hosts.key), "gateway": None,
                "poll_s": 0.1, "progress_s": 0, "walltime": "0:30", "expect_os": os_id,
                "sender_cpus": roles["sender"]["cpus"],
                "receiver_cpus": roles["receiver"]["cpus"]}}}))
        env = {**os.environ, "RXBENCH_STATE_DIR": str(state)}
        work = tmp_path / "work"
        work.mkdir()
        p = snakemake(work, "results/g5k/summary.csv", "--cores", "1",
                      "--configfile", str(conf), timeout=900, env=env)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        cells = sorted(glob.glob(str(work / "results/g5k/*/*/**/rep=1.json"), recursive=True))
        assert len(cells) == 2
        for c in cells:
            r = json.loads(Path(c).read_text())
            assert r["status"] in ("ok", "unsupported"), (c, r["reason"])
            plat = r["provenance"].get("platform", {})
            assert plat.get("site") == "lille" and plat.get("job") == min(srv.jobs)
        # snakemake is gone: the lease owner deletes the job
        end = time.monotonic() + 30
        while srv.live_jobs() and time.monotonic() < end:
            time.sleep(0.2)
        assert srv.live_jobs() == [] and len(srv.jobs) == 1
        assert len([r for r in srv.requests if r[0] == "POST" and
                    r[1].endswith("/deployments")]) == 1
