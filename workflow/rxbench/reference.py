"""Data sets: a campaign's own run (results/<platform>/, written by the
cells, ignored by git) and the committed reference runs
(results/reference/<platform>-<machine>/, never written by a campaign).

- `dataset(paper_data, platform)`: which summary the paper reads, for the
  config key `paper_data` (`run` or `reference/<name>`), and its label;
- `provenance(summary)`: machine, dates, commits and cell counts of a data
  set, from the summary's provenance columns (the paper's front page and
  figure captions, and a reference run's README);
- `promote(platform, machine)`: `make reference`, the one explicit way a
  finished run becomes a reference set (a copy: cells, logs, summary, bench
  output, and a README);
- `join(parts, name)`: one reference set from reference sets of the same
  commit that hold different cells (a campaign run one layer at a time, or
  the default campaign beside the ndr and cost profiles); it refuses sets
  from different commits or platforms, or with a cell in common.

    python -m rxbench reference --platform local --machine fc2-epyc
    python -m rxbench reference --join local-x-eth local-x-tcp --machine x
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from . import RxbenchError
from .util import atomic_write

REFERENCE = "reference"          # results/reference/: committed, never a platform
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class DatasetError(RxbenchError):
    pass


def dataset(paper_data: str, platform: str, results: str = "results") -> tuple[str, str, str]:
    """(summary CSV, name of the generated folder under paper/generated/, label)."""
    if paper_data == "run":
        return f"{results}/{platform}/summary.csv", platform, f"this checkout's run (results/{platform})"
    m = re.fullmatch(r"reference/([a-z][a-z0-9_.-]*)", paper_data or "")
    if not m:
        raise DatasetError(f"config key paper_data: {paper_data!r} is not allowed; allowed values: "
                           f"run, {', '.join('reference/' + n for n in names(results)) or 'reference/NAME'}")
    name = m.group(1)
    csv = Path(results) / REFERENCE / name / "summary.csv"
    if not csv.is_file():
        raise DatasetError(f"config key paper_data: {paper_data!r}: no {csv}; reference sets here: "
                           f"{', '.join(names(results)) or 'none'}")
    return csv.as_posix(), f"{REFERENCE}-{name}", f"reference set {paper_data}"


def names(results: str = "results") -> list[str]:
    base = Path(results) / REFERENCE
    return sorted(p.name for p in base.iterdir() if (p / "summary.csv").is_file()) \
        if base.is_dir() else []


def provenance(summary) -> dict:
    """Machine, dates, commits and counts of a summary (path or DataFrame)."""
    import pandas as pd
    from .aggregate import read_summary
    df = summary if isinstance(summary, pd.DataFrame) else read_summary(summary)

    def uniq(col):
        if col not in df.columns:
            return []
        return list(dict.fromkeys(str(v) for v in df[col].dropna()))

    started = sorted(str(v) for v in df["started_at"].dropna()) if "started_at" in df else []
    status = df["status"].astype(str).value_counts().to_dict() if len(df) else {}
    kernels = [k.split()[0] for k in uniq("kernel")]
    return {
        "platforms": uniq("platform"),
        "cpu_models": uniq("cpu_model"),
        "kernels": list(dict.fromkeys(kernels)),
        "nic_drivers": uniq("nic_driver"),
        "commits": uniq("git_rev"),
        "first": started[0][:19].replace("T", " ") if started else "unknown",
        "last": started[-1][:19].replace("T", " ") if started else "unknown",
        "cells": int(len(df)),
        "status": {k: int(status.get(k, 0)) for k in ("ok", "unsupported", "failed")},
        "layers": df["layer"].astype(str).value_counts(sort=False).to_dict() if len(df) else {},
    }


def machine_text(p: dict) -> str:
    """e.g. "AMD EPYC, kernel 6.18.44-fc-v509, NIC driver veth"."""
    return (f"{', '.join(p['cpu_models']) or 'unknown CPU'}, kernel "
            f"{', '.join(p['kernels']) or 'unknown'}, NIC driver {', '.join(p['nic_drivers']) or 'unknown'}")


def readme(name: str, p: dict, command: str, machine: str, note: str = "") -> str:
    commits = ", ".join(c[:7] for c in p["commits"]) or "unknown"
    s = p["status"]
    layers = ", ".join(f"{k}: {v}" for k, v in p["layers"].items())
    return f"""# Reference set `{name}`

A finished campaign, committed so that the paper can be rebuilt without a
testbed (`make paper`). A campaign never writes here: it writes
`results/<platform>/` (ignored by git); `make reference` copies a finished
run here.

| | |
|---|---|
| machine | {machine} |
| CPU, kernel, NIC (from the cells' provenance) | {machine_text(p)} |
| measured (UTC, first and last cell) | {p['first']} -- {p['last']} |
| commit that made it | {commits} |
| command | `{command}` |
| cells | {p['cells']} ({layers}): {s['ok']} ok, {s['unsupported']} unsupported, {s['failed']} failed |

Files: one `<layer>/<stack>/<k=v>/.../rep=<n>.json` per cell with its
`.log`, `summary.csv` (the aggregate the paper reads; its `path` column
names the cells where the campaign wrote them, `results/<platform>/...`),
`summary.log`, and `bench/` (raw output of `rxbench bench`) when there is one.
{note}"""


def campaign_cells(d: Path) -> list[Path]:
    """The campaign's cells of a run or reference set; the cells that
    `rxbench bench` ran are under bench/ and are not the campaign's."""
    return sorted(p for p in Path(d).rglob("rep=*.json")
                  if p.relative_to(d).parts[0] != "bench")


def promote(platform: str, machine: str, results: str = "results", command: str = "",
            replace: bool = False) -> Path:
    """Copy the finished run results/<platform>/ to results/reference/<platform>-<machine>/."""
    if platform == REFERENCE or not _NAME.match(platform):
        raise DatasetError(f"reference: platform {platform!r} is not a platform name")
    if not _NAME.match(machine or ""):
        raise DatasetError(f"reference: machine name {machine!r}: use lower-case letters, digits, "
                           "- and _ (e.g. MACHINE=fc2-epyc)")
    src = Path(results) / platform
    summary = src / "summary.csv"
    if not summary.is_file():
        raise DatasetError(f"reference: {summary} does not exist: run the campaign first "
                           "(snakemake --cores 1)")
    cells = campaign_cells(src)
    newer = [c for c in cells if c.stat().st_mtime > summary.stat().st_mtime]
    if not cells or newer:
        raise DatasetError(f"reference: {summary} is older than {len(newer)} of its cells (or has "
                           "none): finish the campaign first (snakemake --cores 1)")
    name = f"{platform}-{machine}"
    dst = Path(results) / REFERENCE / name
    if dst.exists() and not replace:
        raise DatasetError(f"reference: {dst} exists; pick another MACHINE name or remove it first")
    p = provenance(summary)
    if p["status"]["failed"]:
        raise DatasetError(f"reference: {summary} has {p['status']['failed']} failed cells: "
                           "rerun them before promoting the run")
    tmp = dst.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    atomic_write(tmp / "README.md", readme(name, p, command or "snakemake --cores 1", machine))
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst


def _set_dir(name: str, results: str) -> Path:
    d = Path(results) / REFERENCE / name
    if not (d / "summary.csv").is_file():
        raise DatasetError(f"reference --join: no {d / 'summary.csv'}; reference sets here: "
                           f"{', '.join(names(results)) or 'none'}")
    return d


def join(parts: list[str], name: str, results: str = "results", command: str = "") -> Path:
    """results/reference/<parts...>/ -> results/reference/<name>/: the cells
    each part's summary lists (its `path` column, results/<platform>/...),
    their logs, the summaries concatenated, each part's bench/ output, and a
    README naming the parts. Refused, with nothing written: fewer than two
    parts, a part whose cells come from more than one commit or whose commit
    differs from another part's (a set is one commit), different platforms,
    a cell in two parts, failed cells, or a name that exists."""
    import pandas as pd
    from .aggregate import read_summary
    if len(parts) < 2:
        raise DatasetError("reference --join: name two or more reference sets (one per layer)")
    if not _NAME.match(name or ""):
        raise DatasetError(f"reference --join: set name {name!r}: use lower-case letters, digits, - and _")
    dst = Path(results) / REFERENCE / name
    if dst.exists():
        raise DatasetError(f"reference --join: {dst} exists; pick another name or remove it first")
    dirs = [_set_dir(p, results) for p in parts]
    frames, commits, platforms, owner = [], {}, {}, {}
    for part, d in zip(parts, dirs):
        df = read_summary(d / "summary.csv")
        revs = sorted({str(v) for v in df.get("git_rev", pd.Series(dtype=str)).dropna()})
        if len(revs) != 1:
            raise DatasetError(f"reference --join: {part}: its cells come from "
                               f"{len(revs) or 'no'} commits ({', '.join(r[:7] for r in revs) or 'none'}); "
                               "a reference set is one commit")
        commits[part] = revs[0]
        platforms[part] = sorted({str(v) for v in df["platform"].dropna()})
        for cell in df["path"].dropna().astype(str):
            rel = "/".join(Path(cell).parts[2:])       # results/<platform>/<layer>/...
            if rel in owner:
                raise DatasetError(f"reference --join: cell {rel} is in both {owner[rel]} and "
                                   f"{part}: join sets of different cells")
            owner[rel] = part
        if (df["status"].astype(str) == "failed").any():
            raise DatasetError(f"reference --join: {part} has failed cells: rerun them first")
        frames.append(df)
    if len(set(commits.values())) != 1:
        raise DatasetError("reference --join: the sets come from different commits ("
                           + ", ".join(f"{p}: {c[:7]}" for p, c in commits.items())
                           + "): run both layers at one commit")
    if len({tuple(v) for v in platforms.values()}) != 1:
        raise DatasetError("reference --join: the sets come from different platforms ("
                           + ", ".join(f"{p}: {'/'.join(v)}" for p, v in platforms.items()) + ")")
    tmp = dst.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for d, df in zip(dirs, frames):
            for cell in df["path"].dropna().astype(str):
                rel = Path(*Path(cell).parts[2:])      # results/<platform>/<layer>/...
                for f in (rel, rel.with_suffix(".log")):     # the cell and its log
                    if (d / f).is_file():
                        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(d / f, tmp / f)
            if (d / "bench").is_dir():
                for b in sorted((d / "bench").iterdir()):
                    if (tmp / "bench" / b.name).exists():
                        raise DatasetError(f"reference --join: bench/{b.name} is in two sets")
                    (tmp / "bench").mkdir(parents=True, exist_ok=True)
                    (shutil.copytree if b.is_dir() else shutil.copy2)(b, tmp / "bench" / b.name)
        joined = pd.concat(frames, ignore_index=True, sort=False)
        joined.to_csv(tmp / "summary.csv", index=False)
        p = provenance(joined)
        note = ("\nJoined from " + ", ".join(f"`{x}`" for x in parts) + " (different cells, "
                f"commit {commits[parts[0]][:7]}) by `python -m rxbench reference --join "
                f"{' '.join(parts)} --machine {name}`; each part's README is kept as "
                "`README.<part>.md`.\n")
        for part, d in zip(parts, dirs):
            if (d / "README.md").is_file():
                shutil.copy2(d / "README.md", tmp / f"README.{part}.md")
        atomic_write(tmp / "README.md", readme(name, p, command or "see the parts' READMEs",
                                               name, note))
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst
