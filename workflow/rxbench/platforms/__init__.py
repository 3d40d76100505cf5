"""Platforms: where cells run. Each gives a Testbed whose up() yields a
sender and a receiver joined by a test link, and whose down() leaves
nothing behind. `local` is the embedded default; vm, ssh and g5k plug in
here with the same interface."""

from .local import LocalTestbed

PLATFORMS = {"local": LocalTestbed}


def testbed(cfg: dict, log, **kw):
    return PLATFORMS[cfg["platform"]](cfg, log, **kw)
