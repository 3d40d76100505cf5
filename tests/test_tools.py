"""`make tools` and where its results are taken: the vm guest image takes
Pktgen-DPDK from the tools cache (and is rebuilt when it changes), the
seed profile runs Pktgen-DPDK, and without the tools the stacks say which
command builds them. Unit tests: no root, no network."""

from __future__ import annotations

import re

from rxbench import ROOT
from rxbench.config import resolve
from rxbench.platforms import vm
import pytest

pytestmark = pytest.mark.unit


def test_make_tools_runs_the_build_script():
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^tools: .*\n\t.*workflow/scripts/build-tools\.sh", mk, re.M)
    script = (ROOT / "workflow" / "scripts" / "build-tools.sh").read_text()
    assert "replay-recipes.py xdpsock" in script and "replay-recipes.py pktgen" in script


def test_the_guest_image_takes_pktgen_from_the_tools_cache(tmp_path, monkeypatch):
    cfg = resolve({"profile": "seed"})
    monkeypatch.setenv("TOOLS_CACHE", str(tmp_path))
    assert vm.pktgen_dir() is None and vm.tool_dir("xdpsock") is None
    without = vm.image_hash(cfg)
    (tmp_path / "pktgen" / "bin").mkdir(parents=True)
    (tmp_path / "pktgen" / "bin" / "pktgen").write_bytes(b"build 1")
    assert vm.pktgen_dir() == tmp_path / "pktgen"
    one = vm.image_hash(cfg)
    (tmp_path / "pktgen" / "bin" / "pktgen").write_bytes(b"build 2")
    assert len({without, one, vm.image_hash(cfg)}) == 3
    assert "RXB_PKTGEN_DIR" in (ROOT / "vm" / "build-image.sh").read_text()


def test_the_seed_profile_runs_pktgen_dpdk():
    cfg = resolve({"profile": "seed"})
    assert cfg["platforms"]["vm"]["eth"]["generator"] == "pktgen-dpdk"


def test_missing_tools_name_the_command():
    from rxbench.stacks import eth
    src = (ROOT / "workflow" / "rxbench" / "stacks" / "eth.py").read_text()
    for cls in (eth.Xdpsock, eth.PktgenDpdk):
        start = src.index(f"class {cls.__name__}(")
        body = src[start:src.index("\nclass ", start + 1)]
        assert "`make tools`" in body, cls.__name__
