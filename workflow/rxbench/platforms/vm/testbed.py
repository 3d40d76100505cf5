"""The vm platform's cells: the ssh platform's testbed on the lease's guests."""

from __future__ import annotations

from ..base import LeasedTestbed
from .common import ROLES
from .guests import health

GUEST_NATIVE_DIR = "/opt/rxbench/native"     # vm/build-image.sh builds native/ there
# the runner's extra time per remote step (TestbedBase.slack_s), by accelerator:
# under TCG here an rxb-counters start over SSH took 6-15 s, a tool's ready 3-5 s
SLACK_S = {"kvm": 10.0, "tcg": 60.0}


def ssh_inventory(inventory: dict) -> dict:
    """The lease's inventory as the ssh platform takes it: each guest takes
    the image's own build of native/ when its sources are the checkout's."""
    inv = {k: v for k, v in inventory.items()}
    for role in ROLES:
        inv[role] = {**inventory[role], "prebuilt_native": GUEST_NATIVE_DIR}
    return inv


class VmTestbed(LeasedTestbed):
    """The vm platform's cells: the lease (lease_up in lease.py, once per campaign)
    gives the guests' inventory, each cell health-checks both guests (SSH
    answers, test NIC up with its address, clock) and then runs on the ssh
    platform's SshTestbed like on any two hosts. Provenance: the lease's
    (accel, guest kernel, QEMU command lines, ...) at the top of
    provenance.platform, as for g5k."""

    name = "vm"

    def __init__(self, cfg: dict, log, **kw):
        from ... import lease as _lease
        from ..ssh import SshTestbed
        self.cfg, self.log = cfg, log
        self.inventory = _lease.ensure("vm", cfg, log)
        self.health: dict = {}
        self.inner = SshTestbed(cfg, log, ssh_inventory(self.inventory), **kw)
        # under TCG a process start or a snapshot over SSH takes seconds
        accel = self.inventory.get("provenance", {}).get("accel")
        self.slack_s = SLACK_S.get(accel, SLACK_S["tcg"])

    def connect(self) -> None:
        """Both guests reached (each one's first contact sweeps what dead
        cells left there: a NIC a SIGKILLed DPDK cell kept bound to vfio-pci
        is given back to virtio-net), then health-checked."""
        self.inner.connect()
        self.health = health(self.inventory, self.log)

    def provenance(self) -> dict:
        out = self.inner.provenance()
        out["name"] = self.name
        out["health"] = self.health
        return out


def clean_guests(cfg: dict, log) -> list[str]:
    """`rxbench clean` for the vm platform: a dead lease is released by
    lease.clean (its guests with it); the guests of a live lease of this
    checkout are swept like any ssh hosts (what killed cells left there: a
    NIC still bound to DPDK, tools, XDP programs)."""
    from ... import lease as _lease
    from ..ssh import clean_hosts
    data = _lease._load(_lease.state_path("vm"))
    if not data or data.get("status") != "ready" or not data.get("inventory"):
        return []
    return clean_hosts({**cfg, "inventory": ssh_inventory(data["inventory"])}, log)
