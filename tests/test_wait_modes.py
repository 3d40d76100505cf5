"""Each stack at its best: a receiver that would spin on its NAPI core is
refused with the reason, busy polling gets its sysfs knobs."""

from __future__ import annotations

import pytest

from conftest import left_by, needs_testbed
from rxbench import cells
from rxbench.config import resolve
from rxbench.platforms.local import LocalTestbed
from rxbench.stacks import RECEIVERS, Unsupported
from rxbench.util import Log, run

pytestmark = pytest.mark.unit


def receiver(tmp_path, stack, napi, **variant):
    cfg = resolve({"profile": "smoke"})
    cell = cells.Cell("local", "eth", stack, {"cores": 1, "size": 64, "napi": napi, **variant}, 1)
    tb = LocalTestbed(cfg, Log(tmp_path / "log"))      # not up: probe() needs no testbed
    return RECEIVERS[stack](cfg, cell, tb, tb.cpus(1, napi)), tb


@pytest.mark.parametrize("stack,variant", [("af_xdp", {"wait": "spin"}),
                                           ("dpdk", {"busy_budget": 0})])
def test_spinning_on_the_napi_core_is_refused_with_the_reason(tmp_path, stack, variant):
    rx, _ = receiver(tmp_path, stack, "receiver", **variant)
    try:
        rx.probe()
    except Unsupported as e:
        if "not installed" in str(e) or "CONFIG_" in str(e):
            pytest.skip(str(e))
        assert "misconfigured" in str(e) and "starves the NAPI kthread" in str(e)
    else:
        pytest.fail("a spinning receiver on the NAPI core was not refused")


@pytest.mark.parametrize("stack,variant", [("af_xdp", {"wait": "spin"}),
                                           ("af_xdp", {"wait": "poll"}),
                                           ("af_xdp", {"wait": "busy_poll"}),
                                           ("dpdk", {"busy_budget": 0})])
def test_the_same_variants_run_where_napi_has_its_own_core(tmp_path, stack, variant):
    rx, _ = receiver(tmp_path, stack, "sender", **variant)
    try:
        rx.probe()
    except Unsupported as e:
        assert "misconfigured" not in str(e)
        pytest.skip(str(e))


@needs_testbed
def test_busy_poll_sets_the_napi_knobs(tmp_path):
    rx, tb = receiver(tmp_path, "af_xdp", "receiver", wait="busy_poll")
    with tb:
        setup = rx.prepare()
        assert setup == {"busy_poll": {"napi_defer_hard_irqs": 2, "gro_flush_timeout": 200000}}
        path = f"/sys/class/net/{tb.receiver.ifname}/napi_defer_hard_irqs"
        assert tb.receiver.host.run(["cat", path]).strip() == "2"
    assert not left_by(tb)
