"""Platforms: where cells run. Each gives a Testbed whose up() yields a
sender and a receiver joined by a test link, and whose down() leaves
nothing behind. `local` is the embedded default; vm, ssh and g5k plug in
here with the same interface."""

from .local import LocalTestbed


def _g5k(cfg: dict, log, **kw):
    from .g5k import G5kTestbed      # python-grid5000 only where it is used
    return G5kTestbed(cfg, log, **kw)


PLATFORMS = {"local": LocalTestbed, "g5k": _g5k}


def testbed(cfg: dict, log, **kw):
    return PLATFORMS[cfg["platform"]](cfg, log, **kw)
