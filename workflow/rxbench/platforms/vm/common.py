"""What every part of the vm platform shares: the guests' roles, test
addresses, MACs and SSH ports, the platform's error, and SSH to a guest."""

from __future__ import annotations

import ipaddress

from ... import RxbenchError
from ...util import run

ROLES = ("sender", "receiver")
TEST_IPS = {"sender": "198.18.0.1", "receiver": "198.18.0.2"}
TEST_PREFIX = 30
MGMT_NET = ipaddress.ip_network("198.19.0.0/16")
SSH_PORTS = {"sender": 2201, "receiver": 2202}
# guest NIC MACs (locally administered, QEMU's prefix); the guests' init
# names the NICs by them: mgmt0 (management), test0 (the test link)
TEST_MACS = {"sender": "52:54:00:18:00:01", "receiver": "52:54:00:18:00:02"}
MGMT_MACS = {"sender": "52:54:00:19:00:01", "receiver": "52:54:00:19:00:02"}
TEST_IF = "test0"


class VmError(RxbenchError):
    pass


def ssh_argv(inv: dict, command: str, timeout: int = 5) -> list[str]:
    return ["ssh", "-i", inv["key"], "-p", str(inv["port"]), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={timeout}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={inv['known_hosts']}", "-o", "LogLevel=ERROR",
            f"{inv['user']}@{inv['address']}", command]


def ssh(inv: dict, command: str, timeout: float = 30, check: bool = True, log=None) -> str:
    return run(ssh_argv(inv, command), timeout=timeout, check=check, log=log)

