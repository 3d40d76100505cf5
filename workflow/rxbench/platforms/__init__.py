"""Platforms: where cells run. Each gives a Testbed whose up() yields a
sender and a receiver joined by a test link, and whose down() leaves
nothing behind. `local` is the embedded default; vm, ssh and g5k plug in
here with the same interface (vm and g5k: a campaign lease brings the hosts
up, the ssh platform's SshTestbed runs the cells on them).

This is the platform registry: a platform's name maps to its module, which
is imported when the platform is first used (python-grid5000, QEMU probing
only where they are used); everything that picks a platform by name (the
runner's testbed(), the lease's owner: lease.py) goes through it."""

from __future__ import annotations

import importlib

from .base import PreflightError, TestbedError
from .local import LocalTestbed
from .ssh import SshTestbed

# platform -> (its module, its testbed class there)
PLATFORMS = {"local": (".local", "LocalTestbed"), "ssh": (".ssh", "SshTestbed"),
             "vm": (".vm", "VmTestbed"), "g5k": (".g5k", "G5kTestbed")}


def module(kind: str):
    """The module of platform `kind` (ValueError naming the known ones)."""
    if kind not in PLATFORMS:
        raise ValueError(f"unknown platform {kind!r}; known: {', '.join(PLATFORMS)}")
    return importlib.import_module(PLATFORMS[kind][0], __name__)


def testbed(cfg: dict, log, **kw):
    kind = cfg["platform"]
    return getattr(module(kind), PLATFORMS[kind][1])(cfg, log, **kw)


def lease_platform(kind: str, name: str | None = None):
    """The module whose lease_up/lease_down bring up and release a lease of
    `kind` (lease.py); name: another module that provides them instead (a
    test's stand-in platform)."""
    mod = importlib.import_module(name) if name else module(kind)
    for fn in ("lease_up", "lease_down"):
        if not hasattr(mod, fn):
            raise TestbedError(f"platform {kind} ({mod.__name__}) has no {fn}()")
    return mod


__all__ = ["PLATFORMS", "PreflightError", "TestbedError", "testbed", "module", "lease_platform",
           "LocalTestbed", "SshTestbed"]
