"""The one file of pins (versions.yaml at the checkout's root), in one place.

Every reader goes through here: `load()` gives the pins, `file_record()` the
`{path, sha256}` every result's provenance carries. Nix cannot parse YAML, so
the flake reads versions.json, generated from versions.yaml:

    python -m rxbench.versions --write     # regenerate versions.json
    python -m rxbench.versions --check     # exit 1 if it is stale

tests/test_versions.py fails when versions.json, flake.lock, nix/*.nix, the
Debian package list, the vm image recipe or requirements.txt disagree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

import yaml

from . import ROOT, RxbenchError
from .util import atomic_write

VERSIONS_YAML = ROOT / "versions.yaml"
VERSIONS_JSON = ROOT / "versions.json"

REQUIRED = ("nixpkgs", "dpdk", "pktgen_dpdk", "bpf_examples", "xdp_tools", "liburing",
            "kernel", "debian", "python")


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise RxbenchError(f"{path}: cannot read the versions file: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise RxbenchError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RxbenchError(f"{path}: expected a mapping of pins at the top level")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise RxbenchError(f"{path}: missing pins: {', '.join(missing)}")
    return data


@lru_cache(maxsize=4)
def _load_cached(path: str) -> dict:
    return _read(Path(path))


def load(path: Path | None = None) -> dict:
    """The pins (a fresh copy: callers may not change the cached one)."""
    return json.loads(json.dumps(_load_cached(str(path or VERSIONS_YAML))))


def sha256(path: Path | None = None) -> str:
    return hashlib.sha256(Path(path or VERSIONS_YAML).read_bytes()).hexdigest()


def file_record(path: Path | None = None) -> dict:
    """{path (relative to the checkout when inside it), sha256} for provenance."""
    p = Path(path or VERSIONS_YAML)
    try:
        shown = str(p.resolve().relative_to(ROOT))
    except ValueError:
        shown = str(p)
    try:
        digest = sha256(p)
    except OSError as e:
        return {"path": shown, "sha256": None, "error": e.strerror}
    return {"path": shown, "sha256": digest}


def debian(role: str) -> dict:
    """The Debian suites and package versions of `role` ("host": `make
    setup`, "guest": the vm image recipe): {suite, packages, ...}."""
    section = load().get("debian", {})
    if role not in section:
        raise RxbenchError(f"{VERSIONS_YAML.name}: no debian.{role} section "
                           f"(have: {', '.join(sorted(section)) or 'none'})")
    return section[role]


def as_json(pins: dict) -> str:
    """versions.json's exact text: what the flake reads."""
    header = {"_generated": "from versions.yaml by `python -m rxbench.versions --write`; "
                            "do not edit"}
    return json.dumps({**header, **pins}, indent=2, sort_keys=True) + "\n"


def json_is_current(yaml_path: Path | None = None, json_path: Path | None = None) -> bool:
    jp = Path(json_path or VERSIONS_JSON)
    try:
        return jp.read_text() == as_json(_read(Path(yaml_path or VERSIONS_YAML)))
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rxbench.versions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="regenerate versions.json")
    g.add_argument("--check", action="store_true", help="exit 1 if versions.json is stale")
    args = ap.parse_args(argv)
    try:
        pins = _read(VERSIONS_YAML)
    except RxbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.write:
        atomic_write(VERSIONS_JSON, as_json(pins))
        print(f"wrote {VERSIONS_JSON}")
        return 0
    if args.check:
        if json_is_current():
            return 0
        print(f"error: {VERSIONS_JSON.name} is stale: run `python -m rxbench.versions --write`",
              file=sys.stderr)
        return 1
    print(json.dumps(file_record()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
