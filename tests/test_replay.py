"""workflow/scripts/replay-recipes.py: the flake's recipes read with stub
inputs (nix-instantiate, no nixpkgs) and their phases replayed on Debian.
The recipe-reading tests need nix-instantiate; the builds need the pinned
sources (RXB_SOURCES, a local mirror) and skip without them, with the
reason (CI has none)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "replay-recipes.py"
spec = importlib.util.spec_from_file_location("replay_recipes", SCRIPT)
R = importlib.util.module_from_spec(spec)
spec.loader.exec_module(R)

NEEDS_NIX = pytest.mark.skipif(shutil.which("nix-instantiate") is None,
                               reason="nix-instantiate is not installed (Debian: nix-bin)")
MIRROR = os.environ.get("RXB_SOURCES")


@NEEDS_NIX
def test_xdpsock_recipe_provides_its_submodules_and_required_libraries():
    d = R.eval_recipe("nix/xdpsock.nix")
    inputs = d["nativeBuildInputs"] + d["buildInputs"]
    # ./configure: "libcap support: missing - this is required"; libmnl too
    assert {"libcap", "libmnl", "m4", "bpftools", "elfutils", "zlib"} <= set(inputs)
    assert d["env"]["FORCE_SUBMODULE_LIBBPF"] == "1"
    post = d["attrs"]["postUnpack"]
    fetched = {m.group(1, 2, 3) for m in R._FETCH.finditer(post)}
    assert fetched == {("libbpf", "libbpf", "20c0a9e3d7e7d4aeb283eae982543c9cacc29477"),
                       ("xdp-project", "xdp-tools", "v1.5.6"),
                       ("libbpf", "libbpf", "09b9e83102eb8ab9e540d36b4559c55f3bcdb95d")}
    assert "lib/xdp-tools/lib/libbpf" in post


@NEEDS_NIX
@pytest.mark.parametrize("recipe", ["nix/xdpsock.nix", "nix/rxbench-native.nix"])
def test_every_input_of_the_recipes_has_a_debian_stand_in_and_every_fetch_a_pin(recipe):
    import sources
    d = R.eval_recipe(recipe)
    assert set(d["nativeBuildInputs"] + d["buildInputs"]) <= set(R.INPUTS)
    table = sources.pins()
    for value in d["attrs"].values():
        for m in R._FETCH.finditer(value):
            name = R.pin_for(*m.group(1, 2, 3), table)
            assert table[name]["hash"] == m.group(4)


def test_kernel_fragment_and_config_parsing():
    frag = R.fragment(ROOT / "kernels" / "rxbench.config")
    assert frag["IO_URING_ZCRX"] == "y" and frag["NET_PKTGEN"] == "m"
    got = R.config_values("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_D=\"x\"\n")
    assert got == {"A": "y", "B": "n", "C": "m", "D": '"x"'}


def test_a_replay_without_its_source_is_skipped_not_passed(tmp_path):
    env = {**os.environ, "RXB_SOURCES": str(tmp_path)}
    p = subprocess.run(["python3", str(SCRIPT), "xdpsock", "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, env=env, timeout=120)
    if shutil.which("nix-instantiate") is None:
        assert "replay xdpsock: skip" in p.stdout and "nix-instantiate" in p.stdout
    else:
        assert "replay xdpsock: skip" in p.stdout and "has no xdp-project/bpf-examples" in p.stdout
    assert p.returncode == 0
    assert "not replayed: nixpkgs' DPDK recipe" in p.stdout


@NEEDS_NIX
@pytest.mark.skipif(not MIRROR, reason="RXB_SOURCES is not set: no local mirror of the pinned trees")
def test_xdpsock_recipe_replays_from_the_pinned_sources(tmp_path):
    """The check of issue 22: nix/xdpsock.nix's own phases build xdpsock."""
    missing = R.missing_debian(sorted({p for i in R.INPUTS for p in R.INPUTS[i]
                                       if i not in ("libbpf", "xdp-tools", "xdp-tools.lib", "liburing")}))
    if missing:
        pytest.skip(f"Debian packages for the recipe's inputs not installed: {missing} (make tools)")
    p = subprocess.run(["python3", str(SCRIPT), "xdpsock", "--work", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    if "replay xdpsock: skip" in p.stdout:
        pytest.skip(p.stdout.splitlines()[0])
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "xdpsock" / "out" / "bin" / "xdpsock").exists()
    assert (tmp_path / "xdpsock" / "out" / "lib" / "bpf" / "xdpsock_kern.o").exists()
