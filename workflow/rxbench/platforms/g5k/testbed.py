"""The testbed a g5k cell's runner gets: the ssh platform's testbed on the
lease's nodes (lease.py brings them up once per campaign), which checks
that the job still runs around every cell."""

from __future__ import annotations

import os
from pathlib import Path

from ... import lease as _lease
from ...state import alive, pid_start
from ...util import atomic_write_json
from ..base import LeasedTestbed
from .api import Api, G5kError
from .lease import JobEnded, api_cfg, release_unreleased, start_wait_s, why
from .settings import KIND, RUNNING, settings


def ready_s(p: dict) -> float:
    """How long a cell waits for the lease: the job's start (after its
    reservation date), every deployment attempt, the checks."""
    return start_wait_s(p) + float(p["deploy_timeout_s"]) * (p["deploy_retries"] + 1) + 600


def _campaign() -> list:
    pp = os.getppid()
    return [pp, pid_start(pp)]


def stop_path() -> Path:
    return _lease.STATE_DIR / f"g5k-stopped-{_lease._checkout_id()}.json"


class G5kTestbed(LeasedTestbed):
    """The ssh platform's testbed on the lease's nodes, which checks that
    the job still runs around every cell: a job that ended early makes the
    cell failed with the reason, and the campaign's later cells stop the
    campaign (exit non-zero: snakemake stops scheduling) without reserving
    again."""

    name = KIND

    def __init__(self, cfg: dict, log, **kw):
        self.cfg, self.log = cfg, log
        stopped = _lease._load(stop_path())
        if stopped:
            who = stopped.get("campaign") or [None, None]
            if who[0] and alive(who[0], who[1]):
                raise SystemExit(f"rxbench: g5k campaign stopped: {stopped['reason']}")
            stop_path().unlink(missing_ok=True)
        try:
            from ..ssh import SshTestbed      # the ssh platform runs the cells
        except ImportError:
            raise G5kError("the g5k platform runs its cells through the ssh platform "
                           "(rxbench/platforms/ssh.py), which this checkout does not have; "
                           "nothing was reserved") from None
        p = settings(cfg)
        log(f"g5k: the nodes' lease (reservation, deployment; progress in "
            f"{_lease.state_path(KIND).with_suffix('.log')})")
        self.inventory = _lease.ensure(KIND, cfg, log, ready_s=ready_s(p))
        self.api = Api(api_cfg(p))
        self.job = self.inventory["provenance"]["job"]
        self._check("before the cell")
        self.inner = SshTestbed(cfg, log, self.inventory, **kw)

    def _check(self, when: str) -> None:
        try:
            attrs = self.api.job(self.job).attributes
        except G5kError as e:
            self.log(f"g5k: could not check job {self.job} {when}: {e}")
            return
        if attrs.get("state") != RUNNING:
            reason = (f"Grid'5000 job {self.job} is {attrs.get('state')} {when}"
                      f"{why(attrs)} (walltime or an administrator ended it)")
            atomic_write_json(stop_path(), {"reason": reason, "campaign": _campaign()})
            _lease.down(KIND, self.log)
            raise JobEnded(reason)

    def __exit__(self, *exc):
        try:
            self.inner.__exit__(*exc)
        finally:
            self._check("after the cell")
        return False


def release(log) -> list[str]:
    """`rxbench g5k release`: this checkout's lease (its owner, or its record
    after a SIGKILL), then any job whose deletion failed earlier."""
    done = []
    try:
        if _lease.down(KIND, log):
            done.append("the g5k lease of this checkout")
    finally:
        stop_path().unlink(missing_ok=True)
    return done + release_unreleased(log)
