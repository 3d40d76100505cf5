#!/usr/bin/env python3
"""The pinned upstream sources (versions.yaml), fetched and checked.

    sources.py fetch NAME... [--into DIR]   unpack each verified tree into DIR/NAME
    sources.py hash PATH                    the NAR hash (SRI) of a tree, as Nix computes it
    sources.py list                         the pins this script knows, with their hashes

NAME is a key of versions.yaml with owner/repo/rev/hash (bpf_examples,
pktgen_dpdk, dpdk, xdp_tools, liburing) or a submodule pin of one of them
(bpf_examples.lib/libbpf ...). A tree is taken from `$RXB_SOURCES/OWNER/
REPO/REV.tar.gz` (or an unpacked `$RXB_SOURCES/OWNER/REPO/REV/`) when
RXB_SOURCES is set, else from GitHub's archive of REV (cached under
$XDG_CACHE_HOME/rxbench/sources). Either way the tree, its top directory
stripped as fetchFromGitHub strips it, must have versions.yaml's NAR hash:
the hash Nix's fetchFromGitHub checks, so the Debian path builds exactly
the bytes the flake builds. A mismatch stops with one line naming both
hashes; `RXB_UNVERIFIED=NAME[,NAME]` lets a named tree through with a
warning (for a mirror known to lack files, said in the build's record).

With `fetch bpf_examples` the submodules the tree records (lib/libbpf,
lib/xdp-tools and xdp-tools' own lib/libbpf) are fetched and checked the
same way and put in place, as nix/xdpsock.nix's postUnpack does.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "versions.yaml"


class SourceError(Exception):
    """A source that cannot be had or does not match its pin."""


# --- NAR: Nix's archive format, hashed ---------------------------------------

def _nar_str(h, data: bytes) -> None:
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)
    h.update(b"\0" * (-len(data) % 8))


def _nar_node(h, path: Path) -> None:
    st = path.lstat()
    _nar_str(h, b"(")
    if stat.S_ISLNK(st.st_mode):
        for s in (b"type", b"symlink", b"target", os.fsencode(os.readlink(path))):
            _nar_str(h, s)
    elif stat.S_ISDIR(st.st_mode):
        _nar_str(h, b"type")
        _nar_str(h, b"directory")
        for name in sorted(os.listdir(path), key=os.fsencode):
            _nar_str(h, b"entry")
            _nar_str(h, b"(")
            _nar_str(h, b"name")
            _nar_str(h, os.fsencode(name))
            _nar_str(h, b"node")
            _nar_node(h, path / name)
            _nar_str(h, b")")
    elif stat.S_ISREG(st.st_mode):
        _nar_str(h, b"type")
        _nar_str(h, b"regular")
        if st.st_mode & stat.S_IXUSR:
            _nar_str(h, b"executable")
            _nar_str(h, b"")
        _nar_str(h, b"contents")
        size = st.st_size
        h.update(size.to_bytes(8, "little"))
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0" * (-size % 8))
    else:
        raise SourceError(f"{path}: not a file, directory or symlink (NAR cannot hold it)")
    _nar_str(h, b")")


def nar_hash(path: Path) -> str:
    """The SRI sha256 of `path` serialised as a NAR (`nix hash path`)."""
    h = hashlib.sha256()
    _nar_str(h, b"nix-archive-1")
    _nar_node(h, Path(path))
    return "sha256-" + base64.b64encode(h.digest()).decode()


# --- pins ----------------------------------------------------------------------

def pins(path: Path = VERSIONS) -> dict[str, dict]:
    """Every fetchable pin of versions.yaml by name, submodules as
    `parent.path` (a submodule pin may name another pin with `same_as`)."""
    data = yaml.safe_load(path.read_text())
    out: dict[str, dict] = {}
    for name, pin in data.items():
        if isinstance(pin, dict) and {"owner", "repo", "rev", "hash"} <= pin.keys():
            out[name] = pin
    for name, pin in list(out.items()):
        for sub, spin in (pin.get("submodules") or {}).items():
            if "same_as" in spin:
                if spin["same_as"] not in out:
                    raise SourceError(f"versions.yaml: {name}.submodules.{sub}: no pin {spin['same_as']!r}")
                spin = {**out[spin["same_as"]], **{k: v for k, v in spin.items() if k != "same_as"}}
            out[f"{name}.{sub}"] = spin
    return out


# --- fetching --------------------------------------------------------------------

def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rxbench" / "sources"


def locate(pin: dict) -> Path:
    """The local tarball or tree of `pin`: in RXB_SOURCES when set, else
    GitHub's archive downloaded into the cache."""
    owner, repo, rev = pin["owner"], pin["repo"], pin["rev"]
    mirror = os.environ.get("RXB_SOURCES")
    if mirror:
        for cand in (Path(mirror) / owner / repo / f"{rev}.tar.gz", Path(mirror) / owner / repo / rev):
            if cand.exists():
                return cand
        raise SourceError(f"RXB_SOURCES={mirror} has no {owner}/{repo}/{rev}.tar.gz "
                          f"(nor an unpacked {owner}/{repo}/{rev}/)")
    dest = _cache() / owner / repo / f"{rev}.tar.gz"
    if not dest.exists():
        url = f"https://github.com/{owner}/{repo}/archive/{rev}.tar.gz"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise SourceError(f"cannot fetch {url}: {e} (no network? set RXB_SOURCES=DIR to a "
                              f"local mirror holding {owner}/{repo}/{rev}.tar.gz)") from None
        tmp.rename(dest)
    return dest


def unpack(src: Path, dest: Path) -> None:
    """`src` (tarball or tree) into `dest`, the tarball's one top directory
    stripped (as fetchzip does)."""
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True)
        return
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        try:
            with tarfile.open(src) as tf:
                tf.extractall(tmp, filter="tar") if hasattr(tarfile, "data_filter") else tf.extractall(tmp)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise SourceError(f"{src}: not a readable tarball ({e})") from None
        tops = os.listdir(tmp)
        if len(tops) != 1:
            raise SourceError(f"{src}: expected one top directory, found {len(tops)}")
        os.rename(os.path.join(tmp, tops[0]), dest)


def fetch(name: str, dest: Path, table: dict[str, dict] | None = None) -> dict:
    """Unpack pin `name` into `dest` (which must not exist) and check its
    NAR hash; returns {"name", "rev", "hash", "verified", "from"}."""
    table = table or pins()
    if name not in table:
        raise SourceError(f"no pin {name!r} in versions.yaml (known: {', '.join(sorted(table))})")
    pin = table[name]
    src = locate(pin)
    dest = Path(dest)
    if dest.exists():
        raise SourceError(f"{dest} exists already")
    dest.parent.mkdir(parents=True, exist_ok=True)
    unpack(src, dest)
    got = nar_hash(dest)
    record = {"name": name, "rev": pin["rev"], "hash": pin["hash"], "from": str(src), "verified": True}
    if got != pin["hash"]:
        allowed = {s.strip() for s in os.environ.get("RXB_UNVERIFIED", "").split(",") if s.strip()}
        if name not in allowed:
            shutil.rmtree(dest)
            raise SourceError(f"{name} ({pin['owner']}/{pin['repo']} {pin['rev']}) from {src}: "
                              f"NAR hash {got}, versions.yaml pins {pin['hash']}")
        print(f"sources: WARNING: {name} from {src} is NOT the pinned tree (NAR hash {got}, "
              f"pinned {pin['hash']}); let through by RXB_UNVERIFIED", file=sys.stderr)
        record.update(verified=False, got=got)
    return record


def fetch_tree(name: str, dest: Path, table: dict[str, dict] | None = None) -> list[dict]:
    """Pin `name` and its submodules (recursively), each verified on its
    own, assembled into `dest` as a recursive git clone would have it."""
    table = table or pins()
    records = [fetch(name, dest, table)]
    for sub, spin in (table[name].get("submodules") or {}).items():
        target = Path(dest) / sub
        if target.exists():
            if any(target.iterdir()):
                raise SourceError(f"{name}: submodule path {sub} is not empty in the tree")
            target.rmdir()
        inner = spin.get("same_as")
        if inner:
            records += fetch_tree(inner, target, table)
        else:
            records.append(fetch(f"{name}.{sub}", target, table))
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sources.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("names", nargs="+")
    f.add_argument("--into", type=Path, default=Path("."))
    h = sub.add_parser("hash")
    h.add_argument("path", type=Path)
    sub.add_parser("list")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "hash":
            print(nar_hash(a.path))
        elif a.cmd == "list":
            for name, pin in pins().items():
                print(f"{name}\t{pin['owner']}/{pin['repo']}\t{pin['rev']}\t{pin['hash']}")
        else:
            for name in a.names:
                for r in fetch_tree(name, a.into / name):
                    print(f"sources: {r['name']} {r['rev']} "
                          f"{'verified' if r['verified'] else 'UNVERIFIED'} ({r['from']})")
    except SourceError as e:
        print(f"sources: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
