"""For tests: the steps of the paper's Snakemake rules (workflow/rules/
aggregate.smk, paper.smk) in-process, from a summary CSV into a folder laid
out as the rules lay it out (generated/<name>/, generated/numbers.tex).
The rules remain the one orchestrator; this saves the tests a process per
step."""

from __future__ import annotations

from pathlib import Path

from rxbench import plots, tables
from rxbench.present import figdata
from rxbench.present import statsfile as SF
from rxbench.present.numbers import write_numbers


def build(csv, paper_dir, name: str = "test", figures: bool = True,
          dataset: str | None = None) -> SF.GroupStats:
    """stats, tables, numbers (and the planned figures) of csv under
    paper_dir/generated/name; the group statistics, read back."""
    gen = Path(paper_dir) / "generated" / name
    SF.write(csv, gen / "stats.csv")
    gs = SF.read(gen / "stats.csv")
    for t, f in tables.TABLES.items():
        f(gs, gen / f"{t}_table.tex")
    write_numbers(gen / "stats.csv", Path(paper_dir) / "generated" / "numbers.tex",
                  f"generated/{name}", dataset)
    if figures:
        for fam in figdata.plan(gs):
            plots.figure(fam, gs, gen / f"{fam}.pdf", gen / f"{fam}.png")
    return gs
