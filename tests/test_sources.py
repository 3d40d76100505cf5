"""workflow/scripts/sources.py: the pinned upstream trees, NAR-hashed as Nix
hashes them, from a local mirror (RXB_SOURCES) or GitHub; a tree that is not
the pinned one is refused. Unit tests on trees made here; the mirror tests
skip without RXB_SOURCES (CI has none)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
import sources  # noqa: E402

pytestmark = pytest.mark.unit

NIX = shutil.which("nix")
MIRROR = os.environ.get("RXB_SOURCES")


def tree(d: Path) -> Path:
    (d / "sub" / "empty").mkdir(parents=True)
    (d / "a.txt").write_text("hello\n")
    (d / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (d / "sub" / "run.sh").chmod(0o755)
    (d / "link").symlink_to("a.txt")
    return d


def test_nar_of_one_regular_file_is_nix_s_format():
    import base64
    import hashlib
    import tempfile

    def s(b: bytes) -> bytes:
        return len(b).to_bytes(8, "little") + b + b"\0" * (-len(b) % 8)

    with tempfile.TemporaryDirectory() as t:
        f = Path(t) / "f"
        f.write_bytes(b"abc")
        f.chmod(0o644)
        nar = b"".join(s(x) for x in (b"nix-archive-1", b"(", b"type", b"regular", b"contents", b"abc", b")"))
        want = "sha256-" + base64.b64encode(hashlib.sha256(nar).digest()).decode()
        assert sources.nar_hash(f) == want


@pytest.mark.skipif(NIX is None, reason="nix is not installed (Debian: nix-bin): no reference hasher")
def test_nar_hash_equals_nix_hash_path(tmp_path):
    d = tree(tmp_path / "t")
    ref = subprocess.run([NIX, "--extra-experimental-features", "nix-command", "hash", "path", str(d)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert sources.nar_hash(d) == ref


def mirror_with(tmp_path: Path, owner: str, repo: str, rev: str, src: Path) -> Path:
    m = tmp_path / "mirror"
    (m / owner / repo).mkdir(parents=True)
    with tarfile.open(m / owner / repo / f"{rev}.tar.gz", "w:gz") as tf:
        tf.add(src, arcname=f"{repo}-{rev}")
    return m


def test_fetch_from_a_mirror_checks_the_hash(tmp_path, monkeypatch):
    src = tree(tmp_path / "src")
    good = sources.nar_hash(src)
    m = mirror_with(tmp_path, "o", "r", "v1", src)
    monkeypatch.setenv("RXB_SOURCES", str(m))
    monkeypatch.delenv("RXB_UNVERIFIED", raising=False)
    table = {"r": {"owner": "o", "repo": "r", "rev": "v1", "hash": good}}
    rec = sources.fetch("r", tmp_path / "out", table)
    assert rec["verified"] and sources.nar_hash(tmp_path / "out") == good
    assert (tmp_path / "out" / "sub" / "run.sh").stat().st_mode & 0o100


def test_a_tree_that_is_not_the_pinned_one_is_refused_and_removed(tmp_path, monkeypatch):
    src = tree(tmp_path / "src")
    m = mirror_with(tmp_path, "o", "r", "v1", src)
    monkeypatch.setenv("RXB_SOURCES", str(m))
    monkeypatch.delenv("RXB_UNVERIFIED", raising=False)
    wrong = "sha256-" + "A" * 43 + "="
    table = {"r": {"owner": "o", "repo": "r", "rev": "v1", "hash": wrong}}
    with pytest.raises(sources.SourceError, match=r"NAR hash sha256-.*pins sha256-AAAA"):
        sources.fetch("r", tmp_path / "out", table)
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("RXB_UNVERIFIED", "r")
    rec = sources.fetch("r", tmp_path / "out", table)
    assert rec["verified"] is False and rec["got"] == sources.nar_hash(src)


def test_a_mirror_without_the_tree_names_what_it_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv("RXB_SOURCES", str(tmp_path))
    table = {"r": {"owner": "o", "repo": "r", "rev": "v1", "hash": "sha256-x"}}
    with pytest.raises(sources.SourceError, match="has no o/r/v1.tar.gz"):
        sources.fetch("r", tmp_path / "out", table)


def test_submodules_are_fetched_checked_and_put_in_place(tmp_path, monkeypatch):
    outer, inner = tmp_path / "outer", tmp_path / "inner"
    (outer / "lib" / "dep").mkdir(parents=True)          # an empty gitlink directory
    (outer / "main.c").write_text("int main;\n")
    (inner / "src").mkdir(parents=True)
    (inner / "src" / "dep.c").write_text("int dep;\n")
    m = mirror_with(tmp_path, "o", "outer", "v1", outer)
    (m / "o" / "inner").mkdir()
    with tarfile.open(m / "o" / "inner" / "c0ffee.tar.gz", "w:gz") as tf:
        tf.add(inner, arcname="inner-c0ffee")
    monkeypatch.setenv("RXB_SOURCES", str(m))
    table = {"outer": {"owner": "o", "repo": "outer", "rev": "v1", "hash": sources.nar_hash(outer),
                       "submodules": {"lib/dep": {}}},
             "outer.lib/dep": {"owner": "o", "repo": "inner", "rev": "c0ffee",
                               "hash": sources.nar_hash(inner)}}
    recs = sources.fetch_tree("outer", tmp_path / "out", table)
    assert [r["name"] for r in recs] == ["outer", "outer.lib/dep"]
    assert (tmp_path / "out" / "lib" / "dep" / "src" / "dep.c").read_text() == "int dep;\n"


def test_versions_yaml_pins_every_submodule_bpf_examples_records():
    p = sources.pins()
    assert p["bpf_examples.lib/libbpf"]["rev"] == "20c0a9e3d7e7d4aeb283eae982543c9cacc29477"
    assert p["bpf_examples.lib/xdp-tools"]["hash"] == p["xdp_tools"]["hash"]
    assert p["xdp_tools.lib/libbpf"]["rev"] == "09b9e83102eb8ab9e540d36b4559c55f3bcdb95d"
    for name, pin in p.items():
        assert pin["hash"].startswith("sha256-") and len(pin["hash"]) == 51, name


@pytest.mark.skipif(not MIRROR, reason="RXB_SOURCES is not set: no local mirror of the pinned trees")
def test_the_mirror_holds_the_pinned_bpf_examples_with_its_submodules(tmp_path):
    try:
        recs = sources.fetch_tree("bpf_examples", tmp_path / "bpf", sources.pins())
    except sources.SourceError as e:
        pytest.skip(f"the mirror lacks a tree: {e}")
    assert all(r["verified"] for r in recs)
    assert (tmp_path / "bpf" / "lib" / "xdp-tools" / "lib" / "libbpf" / "src" / "libbpf.c").exists()
