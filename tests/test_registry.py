"""A stack is one module: a throwaway one, written here and registered at
test time, is accepted by the configuration's schema, named and expanded by
the cells, measured by the runner and named, ordered and drawn for the
presenting side, with no other file edited."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from conftest import needs_testbed, rxb_netns
from rxbench import cells
from rxbench.config import ConfigError, resolve
from rxbench.stacks import registry

pytestmark = pytest.mark.unit

TOY = '''
"""A throwaway stack: XDP_DROP under another name, with a variant of its own."""
from rxbench.stacks.eth import XdpDrop
from rxbench.stacks.registry import Needs, Stack, Style, Variant


class ToyDrop(XdpDrop):
    name = "toy_drop"


STACKS = [Stack("toy_drop", "eth", ToyDrop, order=15, style=Style("#123456", "x", "--"),
                label="toy XDP_DROP",
                variants=(Variant("flavour", {"enum": ["plain", "fancy"]}, ("plain",),
                                  "how it drops"),),
                needs=Needs(programs=("toy-helper",), kernel=("CONFIG_BPF_SYSCALL",),
                            native=("rxb-xdp-drop", "xdp_drop.bpf.o")))]
'''


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy_stack.py"
    path.write_text(textwrap.dedent(TOY))
    spec = importlib.util.spec_from_file_location("toy_stack", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert registry.find("toy_drop") is None
    registry.register_module(mod)
    yield mod
    registry.forget("toy_drop")


def _cfg(**eth):
    return resolve({"profile": "smoke", "eth": {"stacks": ["xdp_drop", "toy_drop"], **eth}},
                   ncpus=2)


def test_unknown_until_registered():
    with pytest.raises(ConfigError, match="'toy_drop' is not allowed"):
        _cfg()


def test_the_schema_takes_its_name_and_its_variant_section(toy):
    cfg = _cfg(toy_drop={"flavour": ["plain", "fancy"]})
    assert cfg["eth"]["stacks"] == ["xdp_drop", "toy_drop"]
    with pytest.raises(ConfigError) as e:
        _cfg(toy_drop={"flavour": ["spicy"]})
    assert "eth.toy_drop.flavour[0]" in str(e.value) and "plain, fancy" in str(e.value)
    with pytest.raises(ConfigError, match="unknown key"):
        _cfg(toy_drop={"colour": ["red"]})


def test_cells_expand_and_name_it(toy):
    cfg = _cfg(toy_drop={"flavour": ["plain", "fancy"]})
    toys = [t for t in cells.targets(cfg) if "/toy_drop/" in t]
    sizes = len(cfg["eth"]["sizes"]) * len(cfg["eth"]["variants"]["napi"])
    assert len(toys) == 2 * sizes * cfg["reps"]
    # the default (the first value) stays out of the path, the other is a level
    assert any(t.endswith("/size=64/rep=1.json") for t in toys)
    fancy = [t for t in toys if "/flavour=fancy/" in t]
    assert len(fancy) == sizes * cfg["reps"]
    c = cells.parse(fancy[0], cfg)
    assert c.stack == "toy_drop" and c.params["flavour"] == "fancy"
    # a config that names no values sweeps the stack's declared default
    plain = _cfg()
    assert {cells.parse(t, plain).params["flavour"]
            for t in cells.targets(plain) if "/toy_drop/" in t} == {"plain"}


def test_the_presenting_side_and_the_platforms_see_it(toy):
    from rxbench.platforms import ssh
    assert registry.label("toy_drop") == "toy XDP_DROP"
    assert registry.order("eth").index("toy_drop") == registry.order("eth").index("xdp_drop") + 1
    assert registry.rank("xdp_drop") < registry.rank("toy_drop") < registry.rank("af_xdp")
    assert registry.style("toy_drop").colour == "#123456"
    assert "toy-helper" in ssh.host_programs()
    from rxbench.stacks import RECEIVERS
    assert RECEIVERS["toy_drop"] is toy.ToyDrop


@needs_testbed
def test_the_runner_measures_it(toy, tmp_path, state_dir):
    # measure_eth, not run_cell: run_cell's clean() would remove other
    # sessions' test namespaces on this shared machine
    from rxbench.runner import measure_eth
    from rxbench.util import Log
    cfg = _cfg(toy_drop={"flavour": ["plain", "fancy"]}, generator="rxb-gen")
    cfg["duration_s"] = 1
    cell = cells.parse("results/local/eth/toy_drop/cores=1/size=1518/flavour=fancy/rep=1.json",
                       cfg)
    rec = measure_eth(cfg, cell, Log(tmp_path / "log"))
    assert rec.status == "ok", rec.reason
    assert rec.fields["rx_pps"] > 0 and rec.generator == "rxb-gen"
    assert "rxb-xdp-drop" in rec.tools and any("rxb-xdp-drop" in c for c in rec.commands)
    assert not {rec.hosts["sender"]["netns"], rec.hosts["receiver"]["netns"]} & set(rxb_netns())
