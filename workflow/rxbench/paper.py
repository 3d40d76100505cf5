"""Everything after the summary CSV, one subcommand per Snakemake rule
(workflow/rules/aggregate.smk, paper.smk; Snakemake is the one
orchestrator): the group statistics first, read from the summary once;
figures, tables and numbers from them alone; then the PDF.

  python -m rxbench.paper stats   --csv SUMMARY --out paper/generated/SET/stats.csv
  python -m rxbench.paper plan    --stats STATS --out paper/generated/SET/figures.txt
  python -m rxbench.paper figure eth_rate --stats STATS --pdf F.pdf --png F.png
  python -m rxbench.paper tables [eth tcp env seed best ndr] --stats STATS --dir D
  python -m rxbench.paper numbers --stats STATS --out paper/generated/numbers.tex
  python -m rxbench.paper pdf     [--paper-dir paper]          # latexmk

stats writes stats.csv and set.json beside it (rxbench/present/statsfile.py);
STATS is that stats.csv. numbers.tex holds one \\newcommand per number the
text quotes (and \\if switches for what the data has), so the text cannot
disagree with the data (rxbench/present/numbers.py). It also defines
\\RxGenDir, the folder of the data set's figures and tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import RxbenchError
from .util import atomic_write


# --- the PDF --------------------------------------------------------------------

def build_pdf(paper_dir: str | Path = "paper", log=None,
              source_dir: str | Path | None = None) -> Path:
    """latexmk: source_dir/paper.tex (default: in paper_dir) -> paper_dir/paper.pdf.
    It runs in paper_dir, where generated/ is (aux files go to build/, see
    paper/latexmkrc), so a workflow run with `snakemake -d ELSEWHERE` builds
    its own paper from the checkout's sources."""
    if not shutil.which("latexmk"):
        raise RxbenchError("latexmk is not installed (Debian: latexmk texlive-latex-base "
                           "texlive-latex-recommended; see workflow/envs/debian-packages.txt)")
    paper_dir = Path(paper_dir)
    src = Path(source_dir or paper_dir).resolve()
    env = dict(os.environ)
    for var in ("TEXINPUTS", "BIBINPUTS"):
        # this folder's generated/ first, then the sources, then TeX's defaults ("")
        env[var] = os.pathsep.join([".", str(src), env.get(var, "")])
    cmd = ["latexmk", "-r", str(src / "latexmkrc"), str(src / "paper.tex")]
    p = subprocess.run(cmd, cwd=paper_dir, capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=600)
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-25:])
        raise RxbenchError(f"latexmk failed in {paper_dir} ({p.returncode}); "
                           f"the LaTeX log is {paper_dir}/build/paper.log:\n{tail}")
    pdf = paper_dir / "paper.pdf"
    os.utime(pdf)       # newer than its inputs even when latexmk found nothing to redo
    return pdf


# --- command line -----------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    # each subcommand imports what it needs: a table or the numbers do not
    # pay for matplotlib, nor anything after the stats for the bootstrap
    from .present.figdata import FAMILY_NAMES
    from .tables import TABLES
    ap = argparse.ArgumentParser(prog="python -m rxbench.paper", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("stats", help="the summary -> stats.csv (groups, verdicts) and set.json")
    a.add_argument("--csv", required=True, help="the summary CSV")
    a.add_argument("--out", required=True)
    a = sub.add_parser("plan", help="the figure families the data supports, one a line")
    a.add_argument("--stats", required=True)
    a.add_argument("--out", required=True)
    a = sub.add_parser("figure", help="one figure family -> PDF and PNG")
    a.add_argument("name", choices=list(FAMILY_NAMES))
    a.add_argument("--stats", required=True)
    a.add_argument("--pdf", required=True)
    a.add_argument("--png", required=True)
    a = sub.add_parser("tables", help="LaTeX tables (default: every one), DIR/<name>_table.tex")
    a.add_argument("names", nargs="*", metavar="NAME", help=f"{', '.join(TABLES)} (default: all)")
    a.add_argument("--stats", required=True)
    a.add_argument("--dir", required=True)
    a = sub.add_parser("numbers", help="numbers.tex: the macros the paper's text quotes")
    a.add_argument("--stats", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--gendir", help="the data set's generated folder, relative to paper/ "
                                    "(default generated/PLATFORM)")
    a.add_argument("--dataset", help="the data set's name for the front page and captions "
                                     "(default: the summary's path)")
    a = sub.add_parser("pdf", help="latexmk: paper/paper.tex -> paper/paper.pdf")
    a.add_argument("--paper-dir", default="paper", help="where generated/ is and the PDF goes")
    a.add_argument("--source-dir", help="where paper.tex, refs.bib and latexmkrc are "
                                        "(default: --paper-dir)")
    a.add_argument("--log")
    args = ap.parse_args(argv)
    try:
        from .present import figdata, statsfile
        if args.cmd == "stats":
            statsfile.write(args.csv, args.out)
        elif args.cmd == "plan":
            names = figdata.plan(statsfile.read(args.stats))
            atomic_write(args.out, "".join(f"{n}\n" for n in names))
            print(f"figures: {', '.join(names) or 'none'}")
        elif args.cmd == "figure":
            from . import plots
            plots.figure(args.name, statsfile.read(args.stats), args.pdf, args.png)
        elif args.cmd == "tables":
            unknown = [n for n in args.names if n not in TABLES]
            if unknown:
                raise ValueError(f"no table {', '.join(unknown)}; known: {', '.join(TABLES)}")
            gs = statsfile.read(args.stats)
            for name in args.names or TABLES:
                TABLES[name](gs, Path(args.dir) / f"{name}_table.tex")
        elif args.cmd == "numbers":
            from .present import numbers
            numbers.write_numbers(args.stats, args.out, args.gendir, args.dataset)
        elif args.cmd == "pdf":
            print(build_pdf(args.paper_dir, args.log, args.source_dir))
        return 0
    except (RxbenchError, FileNotFoundError, ValueError) as e:
        print(f"rxbench.paper: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
