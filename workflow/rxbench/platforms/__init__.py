"""Platforms: where cells run. Each gives a Testbed whose up() yields a
sender and a receiver joined by a test link, and whose down() leaves
nothing behind. `local` is the embedded default; vm, ssh and g5k plug in
here with the same interface (vm and g5k: a campaign lease brings the hosts
up, the ssh platform's SshTestbed runs the cells on them)."""

from .base import PreflightError, TestbedError
from .local import LocalTestbed
from .ssh import SshTestbed


def _g5k(cfg: dict, log, **kw):
    from .g5k import G5kTestbed      # python-grid5000 only where it is used
    return G5kTestbed(cfg, log, **kw)


def _vm(cfg: dict, log, **kw):
    from .vm import VmTestbed
    return VmTestbed(cfg, log, **kw)


PLATFORMS = {"local": LocalTestbed, "ssh": SshTestbed, "g5k": _g5k, "vm": _vm}


def testbed(cfg: dict, log, **kw):
    return PLATFORMS[cfg["platform"]](cfg, log, **kw)


__all__ = ["PLATFORMS", "PreflightError", "TestbedError", "testbed", "LocalTestbed", "SshTestbed"]
