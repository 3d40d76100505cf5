"""Cell names: the path rules of docs/results.md, "Cell names"."""

import pytest

from rxbench import cells
from rxbench.config import resolve

pytestmark = pytest.mark.unit

CFG = resolve({}, ncpus=2)


def test_default_cell_has_the_short_contract_name():
    c = cells.Cell("local", "eth", "af_xdp", {"cores": 1, "size": 64, "napi": "receiver"}, 1)
    assert c.path(cells.variant_defaults(CFG, "eth", c.stack)) == \
        "results/local/eth/af_xdp/cores=1/size=64/rep=1.json"


def test_non_default_variant_is_a_level():
    c = cells.Cell("local", "eth", "xdp_drop", {"cores": 1, "size": 64, "napi": "sender"}, 2)
    assert c.path(cells.variant_defaults(CFG, "eth", c.stack)) == \
        "results/local/eth/xdp_drop/cores=1/size=64/napi=sender/rep=2.json"


def _own(cfg, stack) -> int:
    n = 1
    for k in cells.STACK_VARIANTS.get(("eth", stack), ()):
        n *= len(cfg["eth"].get(stack, {}).get(k, [None]))
    return n


def test_every_expanded_cell_parses_back_to_itself():
    ts = cells.targets(CFG)
    eth = [t for t in ts if "/eth/" in t]
    # each stack's own variants multiply its cells (af_xdp: wait, dpdk: busy_budget)
    own = sum(_own(CFG, s) for s in CFG["eth"]["stacks"])
    assert len(eth) == own * len(CFG["eth"]["sizes"]) \
        * len(CFG["eth"]["cores"]) * len(CFG["eth"]["variants"]["napi"]) * CFG["reps"]
    # each TCP stack: the product of its own variant lists (touch, wait_nr,
    # zcrx, ...: config tcp.<stack>), times the layer's variants and sweeps
    tcp = CFG["tcp"]
    layer = 1
    for values in tcp["variants"].values():
        layer *= len(values)
    per_stack = 0
    for s in tcp["stacks"]:
        n = 1
        for values in (tcp.get(s) or {}).values():
            n *= len(values)
        per_stack += n
    assert len(ts) - len(eth) == per_stack * layer * len(tcp["conns"]) * len(tcp["msgs"]) \
        * CFG["reps"]
    assert len(ts) == len(set(ts))
    for t, c in zip(ts, cells.expand(CFG)):
        assert cells.parse(t, CFG) == c
        assert cells.parse(t, CFG).params == c.params


WAITS = resolve({"eth": {"stacks": ["af_xdp", "dpdk"], "sizes": [64],
                         "af_xdp": {"wait": ["poll", "spin", "busy_poll"], "batch": [64, 256]},
                         "dpdk": {"busy_budget": [0, 64]}}}, ncpus=2)


def test_stack_variants_multiply_only_their_stack_and_name_non_defaults():
    ts = cells.targets(WAITS)
    napi = len(WAITS["eth"]["variants"]["napi"])
    af_xdp = [t for t in ts if "/af_xdp/" in t]
    dpdk = [t for t in ts if "/dpdk/" in t]
    assert len(af_xdp) == 3 * 2 * napi * WAITS["reps"]
    assert len(dpdk) == 2 * napi * WAITS["reps"]
    assert "results/local/eth/af_xdp/cores=1/size=64/rep=1.json" in ts
    assert "results/local/eth/af_xdp/cores=1/size=64/napi=sender/wait=busy_poll/batch=256/" \
           "rep=1.json" in ts
    assert "results/local/eth/dpdk/cores=1/size=64/busy_budget=64/rep=1.json" in ts
    for t, c in zip(ts, cells.expand(WAITS)):
        assert cells.parse(t, WAITS).params == c.params


def test_a_stack_variant_belongs_to_its_stack():
    c = cells.parse("results/local/eth/af_xdp/cores=1/size=64/wait=spin/rep=1.json", WAITS)
    assert c.params == {"cores": 1, "size": 64, "napi": "receiver", "search": "saturation", "bind": "copy",
                        "wait": "spin", "batch": 64}
    with pytest.raises(cells.CellNameError, match="unknown key 'wait'.*af_packet"):
        cells.parse("results/local/eth/af_packet/cores=1/size=64/wait=spin/rep=1.json", WAITS)
    with pytest.raises(cells.CellNameError, match="canonical"):
        cells.parse("results/local/eth/af_xdp/cores=1/size=64/batch=256/wait=spin/rep=1.json",
                    WAITS)


def test_parse_fills_default_variants_and_accepts_absolute_paths():
    c = cells.parse("/somewhere/results/local/eth/af_xdp/cores=1/size=64/rep=3.json", CFG)
    assert (c.stack, c.params, c.rep) == ("af_xdp", {"cores": 1, "size": 64,
                                                     "napi": "receiver", "search": "saturation",
                                                     "bind": "copy", "wait": "poll",
                                                     "batch": 64}, 3)


@pytest.mark.parametrize("path, msg", [
    ("results/local/eth/x/cores=1/size=64/napi=receiver/rep=1.json", "canonical"),
    ("results/local/eth/x/size=64/cores=1/rep=1.json", "canonical"),
    ("results/local/eth/x/cores=1/size=64/color=red/rep=1.json", "unknown key 'color'"),
    ("results/local/eth/af_xdp/cores=1/size=64/wait=poll/rep=1.json", "canonical"),
    ("results/local/eth/af_xdp/cores=1/size=64/batch=many/rep=1.json", "positive integer"),
    ("results/local/eth/x/cores=1/rep=1.json", "missing key 'size'"),
    ("results/local/eth/x/cores=1/size=64/rep=0.json", "rep=N.json"),
    ("results/local/eth/x/cores=one/size=64/rep=1.json", "positive integer"),
    ("results/local/ip/x/cores=1/size=64/rep=1.json", "unknown layer"),
    ("results/local/eth/x/cores=1/cores=2/size=64/rep=1.json", "given twice"),
])
def test_bad_names_are_refused(path, msg):
    with pytest.raises(cells.CellNameError, match=msg):
        cells.parse(path, CFG)


def test_tcp_cells_name_touch_and_the_epoll_trigger_only_when_not_default():
    ts = cells.targets(CFG)
    assert "results/local/tcp/epoll/conns=8/msg=65536/rep=1.json" in ts
    assert "results/local/tcp/epoll/conns=8/msg=65536/touch=1/rep=1.json" in ts
    assert "results/local/tcp/iperf3/conns=8/msg=65536/rep=1.json" in ts
    assert not any("/iperf3/" in t and "touch=" in t for t in ts)
    c = cells.parse("results/local/tcp/epoll/conns=8/msg=1024/touch=1/rep=2.json", CFG)
    assert c.params == {"conns": 8, "msg": 1024, "cores": 1, "napi": "receiver", "load": "max",
                        "touch": 1, "trigger": "level", "recv": 65536}
    with pytest.raises(cells.CellNameError, match="unknown key 'touch'"):
        cells.parse("results/local/tcp/iperf3/conns=8/msg=1024/touch=1/rep=2.json", CFG)


def test_ndr_cells_are_a_search_variant_beside_the_saturation_cells():
    from rxbench.config import resolve
    cfg = resolve({"profile": "ndr"})
    t = cells.targets(cfg)
    # only the NDR cells run (eth.only): the saturation cells are the
    # default campaign's, whose names they keep
    assert "results/local/eth/xdp_drop/cores=1/size=64/rep=1.json" not in t
    assert "results/local/eth/xdp_drop/cores=1/size=64/search=ndr/rep=1.json" in t
    assert all("search=ndr" in x for x in t)
    # without the restriction both run, by the same names
    both = cells.targets(resolve({"profile": "ndr",
                                  "eth": {"only": {"search": ["saturation", "ndr"]}}}))
    assert "results/local/eth/xdp_drop/cores=1/size=64/rep=1.json" in both
    c = cells.parse("results/local/eth/af_packet/cores=1/size=1518/search=ndr/rep=1.json", cfg)
    assert c.params["search"] == "ndr"
    # the default campaign has no NDR cells and its cell names did not change
    assert not [x for x in cells.targets(resolve({})) if "search=" in x]


def test_cost_profile_runs_only_paced_cells_named_beside_the_default_ones():
    from rxbench.config import ConfigError, resolve
    cfg = resolve({"profile": "cost"})
    t = cells.targets(cfg)
    assert t and all("/load=0.05/" in x or "/load=0.2/" in x for x in t)
    assert "results/local/eth/af_xdp/cores=1/size=64/load=0.2/wait=busy_poll/rep=5.json" in t
    assert not set(t) & set(cells.targets(resolve({})))      # joinable with the default's
    c = cells.parse("results/local/eth/xdp_drop/cores=1/size=64/load=0.05/rep=1.json", cfg)
    assert c.params["load"] == 0.05 and cells.load_target(c.params) == 0.05
    with pytest.raises(cells.CellNameError, match="offered rate in Mpps"):
        cells.parse("results/local/eth/xdp_drop/cores=1/size=64/load=fast/rep=1.json", cfg)
    # an NDR search paces its own trials: no load target beside it
    both = resolve({"profile": "cost", "eth": {"only": {"load": ["max", 0.2]},
                                               "variants": {"search": ["saturation", "ndr"]}}})
    assert not [x for x in cells.targets(both) if "search=ndr" in x and "load=" in x]
    with pytest.raises(cells.CellNameError, match="search=ndr sets its own trial loads"):
        cells.parse("results/local/eth/xdp_drop/cores=1/size=64/search=ndr/load=0.2/rep=1.json", both)
    # `only` names a variant the campaign lists, with values it lists
    with pytest.raises(ConfigError, match=r"eth.only.load\[0\]: 0.3 is not among"):
        resolve({"profile": "cost", "eth": {"only": {"load": [0.3]}}})
    with pytest.raises(ConfigError, match="eth.only.colour: colour is not a variant"):
        resolve({"profile": "cost", "eth": {"only": {"colour": ["red"]}}})
