"""LaTeX tables (booktabs) from the summary CSV alone, through jinja2."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .aggregate import read_summary
from .util import atomic_write

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        block_start_string="((*", block_end_string="*))",
        variable_start_string="(((", variable_end_string=")))",
        comment_start_string="((#", comment_end_string="#))",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def tex_escape(s) -> str:
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                 ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"),
                 ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}")):
        s = s.replace(a, b)
    return s


def eth_rows(csv: str | Path) -> list[dict]:
    df = read_summary(csv)
    eth = df[df.layer == "eth"]
    rows = []
    for (stack, napi, cores, size), g in eth.groupby(["stack", "napi", "cores", "size"],
                                                     dropna=False, sort=True):
        ok = g[g.status == "ok"]
        bad = g[g.status != "ok"]
        rows.append({
            "stack": stack, "napi": napi, "cores": int(cores), "size": int(size),
            "n": len(ok),
            "rx": ok.rx_pps.median() / 1e6 if len(ok) else None,
            "offered": ok.offered_pps.median() / 1e6 if len(ok) else None,
            "gbps": ok.rx_gbps.median() if len(ok) else None,
            "generator_bound": bool(len(ok) and ok.generator_bound.astype(bool).any()),
            "status": "ok" if len(ok) else str(bad.status.iloc[0]),
            "reason": "" if len(ok) else str(bad.reason.iloc[0]),
        })
    return rows


def eth_table(csv: str | Path, out: str | Path) -> None:
    env = _env()
    env.filters["tex"] = tex_escape
    rows = eth_rows(csv)
    notes = sorted({r["reason"] for r in rows if r["status"] != "ok"})
    text = env.get_template("eth_table.tex.j2").render(rows=rows, notes=notes)
    atomic_write(out, text)
