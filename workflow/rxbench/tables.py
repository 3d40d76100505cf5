"""LaTeX tables (booktabs, jinja2 templates in templates/) from the group
statistics alone (stats.csv and set.json, rxbench/present/statsfile.py):

- eth_table: one row per Ethernet saturation cell group: the maximum
  receive rate under overload (Mpps) as median [95 % bootstrap interval of
  the median], CV, offered Mpps, Gbit/s, n (a longtable);
- best_table: each stack's best configuration per frame size (the rule of
  groups.best_config), its median [interval] and why it was chosen;
- ndr_table: NDR and PDR (search=ndr cells, MLRsearch) beside the maximum
  receive rate under overload of the same configuration;
- tcp_table: goodput (Gbit/s) median [95 % bootstrap interval], one row per
  server, variant, cores and connection count, one column per message size
  (a longtable);
- env_table: the environment from the summary's provenance columns
  (platform, kernel, CPU, NIC driver, git revision, tool versions when
  present), as set.json holds them.

Every cell group appears: a group without a successful repetition is "n/a"
with its status and reason as a numbered footnote. Marks: g =
generator-bound in at least one repetition, * = noisy (CV > 5 %).
Each longtable carries its caption as \\providecommand'ed macro
(\\EthTableCaption, \\TcpTableCaption): the paper may define its own first.

    python -m rxbench.paper table eth --stats paper/generated/local/stats.csv \
        --out paper/generated/local/eth_table.tex
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import jinja2
import pandas as pd

from . import stats as S
from .present import groups as G
from .present import statsfile as SF
from .present import look
from .present.macros import tex_escape
from .util import atomic_write

TEMPLATES = Path(__file__).parent / "templates"
NA = "n/a"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        block_start_string="((*", block_end_string="*))",
        variable_start_string="(((", variable_end_string=")))",
        comment_start_string="((#", comment_end_string="#))",
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["tex"] = tex_escape
    return env


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def fmt(x, digits: int = 3) -> str:
    """Fixed decimals; "--" when there is no value."""
    x = G.norm(x)
    return f"{x:.{digits}f}" if _finite(x) else "--"


def stack_tex(stack, nic=None) -> str:
    """A stack as the tables name it: \\texttt{af\\_xdp}; DPDK on veth and
    iperf3 (a sender+server pair) by what they are (look.label)."""
    lab = look.label(str(stack), nic)
    return f"\\texttt{{{tex_escape(stack)}}}" if lab == str(stack) else tex_escape(lab)


def _nic(gs: SF.GroupStats) -> str | None:
    return gs.context()["nic_driver"]


def tcg_note(gs: SF.GroupStats) -> str:
    """The TCG caveat as a table footnote (empty when no row ran under TCG)."""
    return (tex_escape(G.TCG_NOTE[:1].upper() + G.TCG_NOTE[1:]) + "." if gs.tcg() else "")


def fmt_ci(mean, lo, hi, digits: int = 3) -> str:
    m = fmt(mean, digits)
    if _finite(G.norm(lo)) and _finite(G.norm(hi)):
        return f"{m} [{fmt(lo, digits)}, {fmt(hi, digits)}]"
    return m


class Notes:
    """Numbered footnotes for the reasons of n/a and partial groups."""

    def __init__(self):
        self.items: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return f"$^{{{self.items.index(text) + 1}}}$"


def _value(v) -> str:
    v = G.norm(v)
    return "" if v is None else tex_escape(v)


def _header(k: str) -> str:
    return {"napi": "NAPI", "touch": "Touch"}.get(k, tex_escape(k.replace("_", " ").capitalize()))


def _n(rec, notes: Notes) -> str:
    n_ok, n_reps = int(rec["n_ok"]), int(rec["n_reps"])
    if n_ok == n_reps or not n_ok:
        return str(n_ok)
    return f"{n_ok}/{n_reps}" + notes.mark(rec["reason"] or "some repetitions not ok")


# --- Ethernet -----------------------------------------------------------------

def eth_rows(gs: SF.GroupStats) -> tuple[list[str], list[dict], list[str]]:
    """(variant columns, rows, footnotes) of the Ethernet table; a row per
    cell group, every group included."""
    st = gs.st
    nic = _nic(gs)
    eth = st[st["layer"] == "eth"] if len(st) else st
    if "search" in eth.columns:       # NDR cells: in the NDR table
        eth = eth[G.among(eth["search"], [None, "saturation"])]
    variants = [v for v in (G.layer_variants(st, "eth") if len(st) else []) if v != "search"]
    defaults = gs.variant_defaults(variants)
    notes = Notes()
    rows = []
    prev = None
    for _, r in eth.iterrows():
        rec = r.to_dict()
        row = {"stack": stack_tex(rec["stack"], nic), "first": rec["stack"] != prev,
               "variants": [_config(rec, variants, defaults)] if variants else [],
               "cores": _value(rec.get("cores")), "size": _value(rec.get("size"))}
        prev = rec["stack"]
        if rec["status"] == "ok":
            rx = fmt_ci(rec["rx_pps_median"] / 1e6, rec["rx_pps_med_lo"] / 1e6,
                        rec["rx_pps_med_hi"] / 1e6)
            if rec.get("generator_bound_reps", 0):
                rx += "$^{g}$"
            elif not G.overloaded(rec):
                rx += "$^{u}$"
            cv = G.norm(rec.get("rx_pps_cv"))
            row.update(
                rx=rx,
                cv=(f"{100 * cv:.1f}" + ("$^{*}$" if rec["noisy"] else "")) if _finite(cv)
                else "--",
                offered=fmt(G.norm(rec.get("offered_pps_median", float("nan"))) / 1e6
                            if _finite(G.norm(rec.get("offered_pps_median"))) else None),
                gbps=fmt(rec.get("rx_gbps_median"), 2),
                n=_n(rec, notes))
        else:
            row.update(rx=NA + notes.mark(f"{rec['status']}: {_reason(rec)}"),
                       cv="--", offered="--", gbps="--", n="0")
        rows.append(row)
    return (["Configuration"] if variants else []), rows, notes.items


# names with a random token that the local testbed gives its namespaces and
# interfaces (rxb-1a2b3c4d-s, rxb1a2b3c4dr, napi/rxb...): one reason, not one per run
_RANDOM_NAME = re.compile(r"\brxb-?[0-9a-f]{6,}(?:-[a-z]+|[a-z])?\b")


def normalize_reason(text: str) -> str:
    """A reason without the run's random names, so equal reasons are equal."""
    return _RANDOM_NAME.sub("the test interface", str(text))


def _reason(rec) -> str:
    # "unsupported: why" -> "why" (the status is said once, before it); the
    # repetitions' reasons once each, without random names
    text = str(rec.get("reason") or "")
    prefix = f"{rec['status']}: "
    parts = [normalize_reason(p[len(prefix):] if p.startswith(prefix) else p)
             for p in text.split("; ")]
    return "; ".join(dict.fromkeys(p for p in parts if p)) or "no reason recorded"


def _gb_rule() -> str:
    """How the runner decides generator-bound, for the footnote."""
    gb, sat = G.runner_thresholds()
    if gb is None:
        return "received nearly all that was offered with no receiver-only CPU saturated"
    return (f"received $\\geq$ {100 * gb:g}\\,\\% of offered with no receiver-only CPU "
            f"saturated ($\\geq$ {100 * sat:g}\\,\\% busy)")


def eth_table(gs: SF.GroupStats, out: str | Path) -> None:
    variants, rows, notes = eth_rows(gs)
    text = _env().get_template("eth_table.tex.j2").render(
        rows=rows, variants=variants, notes=notes, gb_rule=_gb_rule(),
        tcg=tcg_note(gs),
        noisy=f"{100 * S.NOISY_CV:g}", ncols=len(variants) + 8)
    atomic_write(out, text)


def _config(rec, variants, defaults) -> str:
    parts = [f"{k}={G.norm(rec.get(k))}" for k in variants if k != "search"
             and G.norm(rec.get(k)) is not None and G.norm(rec.get(k)) != defaults.get(k)]
    return tex_escape(", ".join(parts)) if parts else "default"


def best_rows(gs: SF.GroupStats) -> tuple[list[dict], object]:
    """(rows, fewest cores) of the best-configuration table: per stack and
    frame size at the fewest cores, the configuration groups.best_config
    chose, its median [interval], n, candidates and the rule's note."""
    st = gs.st
    nic = _nic(gs)
    variants = G.layer_variants(st, "eth") if len(st) else []
    defaults = gs.variant_defaults(variants)
    best = gs.best("eth")
    cores = sorted({G.norm(v) for v in best["cores"]} - {None}) if len(best) else []
    if cores:
        best = best[best["cores"].map(G.norm) == cores[0]]
    if len(best):
        best = best.assign(_r=best["stack"].map(look.rank),
                           _s=best["size"].map(G.norm)).sort_values(["_r", "_s"], kind="stable")
    rows, prev = [], None
    for _, r in best.iterrows():
        rec = r.to_dict()
        rows.append({"stack": stack_tex(rec["stack"], nic), "first": rec["stack"] != prev,
                     "config": _config(rec, variants, defaults), "size": _value(rec["size"]),
                     "rx": fmt_ci(rec["rx_pps_median"] / 1e6, rec["rx_pps_med_lo"] / 1e6,
                                  rec["rx_pps_med_hi"] / 1e6),
                     "n": int(rec["n_ok"]), "note": rec["best_rule_note"],
                     "candidates": int(rec["best_candidates"])})
        prev = rec["stack"]
    return rows, (cores[0] if cores else None)


def best_table(gs: SF.GroupStats, out: str | Path) -> None:
    rows, cores = best_rows(gs)
    text = _env().get_template("best_table.tex.j2").render(
        rows=rows, rule=G.BEST_RULE, tcg=tcg_note(gs),
        cores_text=(f"{cores} receiver core{'s' if cores != 1 else ''}" if cores is not None
                    else "no core count"))
    atomic_write(out, text)
    # the supplement: best.csv beside it, one row per chosen group (every column of stats.csv)
    best = gs.best("eth")
    atomic_write(Path(out).with_name("best.csv"), best.to_csv(index=False))


def ndr_rows(gs: SF.GroupStats) -> list[dict]:
    """Per NDR group (search=ndr): NDR and PDR (medians over its searches),
    trials per search, and the same configuration's maximum receive rate
    under overload (median [interval]) where its saturation cells ran."""
    st = gs.st
    nic = _nic(gs)
    if not len(st) or "search" not in st.columns:
        return []
    eth = st[(st["layer"] == "eth") & (st["status"] == "ok")]
    variants = G.layer_variants(st, "eth")
    defaults = gs.variant_defaults(variants)
    ndr = eth[eth["search"].map(G.norm) == "ndr"]
    sat = eth[G.among(eth["search"], [None, "saturation"])]
    rows = []
    for _, r in ndr.iterrows():
        rec = r.to_dict()
        same = sat[(sat["stack"] == rec["stack"])]
        for k in ("cores", "size", *[v for v in variants if v != "search"]):
            vals = same[k].map(G.norm)
            same = same[vals == G.norm(rec.get(k))] if G.norm(rec.get(k)) is not None \
                else same[vals.isna()]
        s = same.iloc[0].to_dict() if len(same) else None
        mpps = lambda x: fmt(G.norm(x) / 1e6) if _finite(G.norm(x)) else "--"   # noqa: E731
        rows.append({"stack": stack_tex(rec["stack"], nic),
                     "config": _config(rec, variants, defaults), "size": _value(rec["size"]),
                     "ndr": mpps(rec.get("ndr_pps_median")), "pdr": mpps(rec.get("pdr_pps_median")),
                     "sat": fmt_ci(s["rx_pps_median"] / 1e6, s["rx_pps_med_lo"] / 1e6,
                                   s["rx_pps_med_hi"] / 1e6) if s else "--",
                     "trials": fmt(rec.get("ndr_trials_median"), 0), "n": int(rec["n_ok"])})
    return rows


def ndr_table(gs: SF.GroupStats, out: str | Path) -> None:
    text = _env().get_template("ndr_table.tex.j2").render(rows=ndr_rows(gs),
                                                          tcg=tcg_note(gs))
    atomic_write(out, text)


def cost_rows(gs: SF.GroupStats) -> list[dict]:
    """Per rate-controlled Ethernet group (eth load=<Mpps>): its wait class,
    the target, what was offered and received, the receive cores' busy
    share (median [interval]) and the CPU time per packet."""
    st = gs.st
    nic = _nic(gs)
    eth = st[(st["layer"] == "eth") & (st["status"] == "ok")] if len(st) else st
    paced = G.paced(eth)
    if not len(paced):
        return []
    variants = [v for v in G.layer_variants(st, "eth") if v != "load"]
    defaults = gs.variant_defaults(variants)
    paced = paced.assign(_load=paced["load"].map(G.load_target),
                         _rank=paced["stack"].map(look.rank))
    rows = []
    for _, r in paced.sort_values(["size", "_load", "_rank"], kind="stable").iterrows():
        rec = r.to_dict()
        cls = G.norm(rec.get("wait_class"))
        mpps = lambda x: fmt(G.norm(x) / 1e6) if _finite(G.norm(x)) else "--"   # noqa: E731
        frac = [G.norm(rec.get(f"receiver_cpu_frac_{k}")) for k in ("median", "med_lo", "med_hi")]
        rows.append({"stack": stack_tex(rec["stack"], nic),
                     "config": _config(rec, variants, defaults),
                     "cls": G.WAIT_CLASSES[cls][0] if cls in G.WAIT_CLASSES else "in the kernel"
                     if cls == "kernel" else "--",
                     "size": _value(rec["size"]), "target": fmt(rec["_load"]),
                     "offered": mpps(rec.get("offered_pps_median")),
                     "rx": mpps(rec.get("rx_pps_median")),
                     "busy": fmt_ci(*(100 * x if _finite(x) else x for x in frac), digits=1)
                     if _finite(frac[0]) else "--",
                     "ns": fmt(rec.get("cpu_ns_per_pkt_median"), 0)
                     if _finite(G.norm(rec.get("cpu_ns_per_pkt_median"))) else "--",
                     "n": int(rec["n_ok"])})
    return rows


def cost_table(gs: SF.GroupStats, out: str | Path) -> None:
    text = _env().get_template("cost_table.tex.j2").render(rows=cost_rows(gs), tcg=tcg_note(gs))
    atomic_write(out, text)


# --- TCP ----------------------------------------------------------------------

def tcp_rows(gs: SF.GroupStats) -> tuple[list[str], list, list[dict], list[str]]:
    """(row-key headers, message sizes, rows, footnotes): a row per server,
    variant, cores and connection count; a column per message size."""
    st = gs.st
    nic = _nic(gs)
    tcp = st[st["layer"] == "tcp"] if len(st) else st
    variants = [v for v in (G.layer_variants(st, "tcp") if len(st) else []) if v != "cores"]
    defaults = gs.variant_defaults(variants)
    has_cores = len(tcp) and len({G.norm(v) for v in tcp["cores"]} - {None}) > 1
    keys = (["cores"] if has_cores else []) + ["conns"]
    msgs = sorted({G.norm(v) for v in tcp["msg"]} - {None}) if len(tcp) else []
    notes = Notes()
    grouped: dict[tuple, dict] = {}
    for _, r in tcp.iterrows():
        rec = r.to_dict()
        k = (rec["stack"], _config(rec, variants, defaults), *(G.norm(rec.get(c)) for c in keys))
        grouped.setdefault(k, {})[G.norm(rec["msg"])] = rec
    rows = []
    prev = None
    for k, by_msg in grouped.items():
        stack, cfg, *kv = k
        cells, ns = [], []
        for m in msgs:
            rec = by_msg.get(m)
            if rec is None:
                cells.append("")
                continue
            if rec["status"] == "ok":
                c = fmt_ci(rec.get("rx_gbps_median"), rec.get("rx_gbps_med_lo"),
                           rec.get("rx_gbps_med_hi"), 2)
                if rec.get("noisy"):
                    c += "$^{*}$"
                if rec.get("generator_bound_reps", 0):
                    c += "$^{g}$"
                ns.append(_n(rec, notes))
            else:
                c = NA + notes.mark(f"{rec['status']}: {_reason(rec)}")
                ns.append("0")
            cells.append(c)
        uniq = sorted(set(ns), key=ns.index)
        rows.append({"stack": stack_tex(stack, nic), "first": stack != prev,
                     "keys": [cfg, *(_value(v) for v in kv)], "cells": cells,
                     "n": uniq[0] if len(uniq) == 1 else ", ".join(uniq)})
        prev = stack
    return ["Configuration"] + [_header(c) for c in keys], msgs, rows, notes.items


def _msg_header(m) -> str:
    return f"{m // 1024}\\,KiB" if m >= 1024 and m % 1024 == 0 else f"{m}\\,B"


def tcp_table(gs: SF.GroupStats, out: str | Path) -> None:
    keys, msgs, rows, notes = tcp_rows(gs)
    text = _env().get_template("tcp_table.tex.j2").render(
        rows=rows, keys=keys, msgs=[_msg_header(m) for m in msgs], notes=notes,
        tcg=tcg_note(gs), pair=tex_escape(look.PAIR_LABEL),
        noisy=f"{100 * S.NOISY_CV:g}", ncols=len(keys) + len(msgs) + 2)
    atomic_write(out, text)


# --- environment ----------------------------------------------------------------



def _counted(counts, f=str, wrap="{}") -> str:
    """The distinct values of a column ([value, cells] in order of
    appearance, set.json; f applied, then escaped and put in wrap), with
    how many cells had each when there are several."""
    merged: dict[str, int] = {}
    for v, n in counts:
        merged[f(v)] = merged.get(f(v), 0) + n
    if not merged:
        return "unknown"
    if len(merged) == 1:
        return wrap.format(tex_escape(next(iter(merged))))
    return "; ".join(f"{wrap.format(tex_escape(v))} ({c} cell{'s' if c != 1 else ''})"
                     for v, c in merged.items())


def _short_rev(rev) -> str:
    rev = str(rev)
    m = re.match(r"^([0-9a-f]{12})[0-9a-f]{28}(.*)$", rev)
    return m.group(1) + m.group(2) if m else rev


def env_rows(gs: SF.GroupStats) -> list[tuple[str, str]]:
    f = gs.facts
    env, prov = f["env"], gs.provenance
    rows = [("Platform", _counted(env["platform"])),
            ("Kernel", _counted(env["kernel"])),
            ("CPU", _counted(env["cpu_model"])),
            ("NIC driver", _counted(env["nic_driver"])),
            ("rxbench revision", _counted(env["git_rev"], _short_rev, r"\texttt{{{}}}"))]
    if env["accel"]:
        rows.append(("Guest accelerator", _counted(env["accel"])
                     + (" (" + tex_escape(G.TCG_NOTE) + ")" if gs.tcg() else "")))
    if env["generator"]:
        rows.append(("Generator", _counted(env["generator"], tex_escape)))
    pp = f["pingpong"]
    if pp:
        rows.append(("Generator--receiver CPU round trip",
                     f"{pp['min']:.0f}--{pp['max']:.0f}\\,ns (median {pp['median']:.0f})"))
    for c, counts in f["versions"]:
        m = SF.VERSION_COLUMN.match(c)
        rows.append((tex_escape(m.group("a") or m.group("b")) + " version", _counted(counts)))
    status = prov["status"]
    layers = ", ".join(f"{tex_escape(lay)}: {n}" for lay, n in prov["layers"].items())
    rows.append(("Cells (repetitions)", f"{prov['cells']} ({layers}): {status['ok']} ok, "
                 f"{status['unsupported']} unsupported, "
                 f"{status['failed']} failed"))
    ctx = gs.context()
    rows.append(("Repetitions per cell group", ctx["n_text"].replace("n = ", "")))
    d = f["duration_ok"]
    if d:
        rows.append(("Measured interval", f"{d['min']:.2f}--{d['max']:.2f}\\,s"
                     if d["max"] - d["min"] > 0.05 else f"{d['median']:.2f}\\,s"))
    if prov["first"] != "unknown":
        rows.append(("Run (UTC)", f"{prov['first'][:16]} -- {prov['last'][:16]}"))
    return rows


def env_table(gs: SF.GroupStats, out: str | Path) -> None:
    text = _env().get_template("env_table.tex.j2").render(rows=env_rows(gs))
    atomic_write(out, text)


# --- the seed's numbers beside ours ----------------------------------------------

SEED_CSV = Path(__file__).resolve().parents[2] / "paper" / "data" / "seed_vm_table.csv"


def seed_rows(gs: SF.GroupStats, seed_csv: str | Path = SEED_CSV) -> list[dict]:
    """Per frame size of the seed's table: its DPDK and AF_XDP rates (Mpps)
    and ours like with like: the seed's receivers both spin (DPDK's
    poll-mode lcore, xdpsock -r without -p), so ours are each stack's best
    configuration (groups.best_config) in the spinning class, at the one NAPI
    placement where both ran (the default first), fewest cores, and
    xdp_drop at that placement; None where this summary has no such group."""
    seed = pd.read_csv(seed_csv, comment="#")
    best = gs.best("eth")
    if len(best):
        cores = sorted({G.norm(v) for v in best["cores"]} - {None})
        best = best[best["cores"].map(G.norm) == cores[0]] if cores else best
    if len(best) and "wait_class" in best.columns and "napi" in best.columns:
        spin = best[best["wait_class"].map(G.norm) == "spin"]
        both = [nv for nv in dict.fromkeys(spin["napi"].map(G.norm))
                if {"dpdk", "af_xdp"} <= set(spin[spin["napi"].map(G.norm) == nv]["stack"])]
        both.sort(key=lambda v: v != gs.defaults.get("napi"))
        nv = both[0] if both else None
        at = best[best["napi"].map(G.norm) == nv]
        best = at[(at["wait_class"].map(G.norm) == "spin") | (at["stack"] == "xdp_drop")]
    rows = []
    for _, r in seed.iterrows():
        size = int(r["size"])
        row = {"size": size, "seed_dpdk": r["dpdk_pps"] / 1e6, "seed_af_xdp": r["af_xdp_pps"] / 1e6}
        for stack in ("dpdk", "af_xdp", "xdp_drop"):
            g = best[(best["stack"] == stack) & (best["size"].map(G.norm) == size)] \
                if len(best) else best
            row[stack] = g.iloc[0].to_dict() if len(g) else None
        rows.append(row)
    return rows


def seed_table(gs: SF.GroupStats, out: str | Path) -> None:
    def ours(rec):
        if rec is None:
            return "--"
        return fmt_ci(rec["rx_pps_median"] / 1e6, rec["rx_pps_med_lo"] / 1e6,
                      rec["rx_pps_med_hi"] / 1e6)
    lines = ["% Generated by rxbench (workflow/rxbench/tables.py seed_table) from the summary",
             "% and paper/data/seed_vm_table.csv (the seed's numbers, with their source); do not edit.",
             r"\begin{tabular}{@{}r rr lll@{}}", r"\toprule",
             r" & \multicolumn{2}{c}{seed: QEMU, virtio-net} & \multicolumn{3}{c}{this data set} \\",
             r"\cmidrule(lr){2-3}\cmidrule(l){4-6}",
             r"Size (B) & DPDK & AF\_XDP & \texttt{dpdk}$^{a}$ & \texttt{af\_xdp} & \texttt{xdp\_drop} \\",
             r"\midrule"]
    for r in seed_rows(gs):
        lines.append(f"{r['size']} & {r['seed_dpdk']:.3f} & {r['seed_af_xdp']:.3f} & "
                     f"{ours(r['dpdk'])} & {ours(r['af_xdp'])} & {ours(r['xdp_drop'])} \\\\")
    lines += [r"\bottomrule"]
    if look.label("dpdk", _nic(gs)) != "dpdk":
        lines.append(r"\multicolumn{6}{@{}l}{\footnotesize $^{a}$ "
                     + tex_escape(look.label("dpdk", "veth")) + r": no kernel bypass.}\\")
    tcg = tcg_note(gs)
    if tcg:
        lines.append(r"\multicolumn{6}{@{}p{0.9\linewidth}@{}}{\footnotesize " + tcg + r"}\\")
    lines += [r"\end{tabular}", ""]
    atomic_write(out, "\n".join(lines))


# --- what each platform can show, and what ran on it ---------------------------------

def platform_rows(gs: SF.GroupStats) -> list[dict]:
    """Per platform of the code's registry (rxbench.platforms.PLATFORMS):
    what it is (the first sentence of its module's docstring), how the
    configuration runs the Ethernet layer there (config.yaml's defaults
    merged with platforms.<name>.eth: generator, DPDK's driver, the AF_XDP
    bind), and what ran on it in this data set (cells and how many were ok,
    per layer; the guests' acceleration). Nothing here is typed by hand."""
    import yaml
    from .config import CONFIG
    from .platforms import PLATFORMS, module
    cfg = yaml.safe_load(Path(CONFIG).read_text())
    prov = gs.provenance
    env = gs.facts.get("env", {})
    rows = []
    for name in PLATFORMS:
        mod = module(name)
        doc = " ".join((mod.__doc__ or "").split())
        what = re.split(r"(?<=[.:])\s", doc.split(": ", 1)[1] if ": " in doc[:40] else doc)[0]
        # its gist: no parentheses, up to the first semicolon
        what = re.sub(r"\s*\([^()]*\)", "", what).split(";")[0].rstrip(".") + "."
        eth = dict(cfg.get("eth", {}))
        over = (cfg.get("platforms", {}).get(name) or {}).get("eth", {})
        for k, v in over.items():
            eth[k] = {**eth.get(k, {}), **v} if isinstance(v, dict) else v
        dpdk = ", ".join(str(x) for x in eth.get("dpdk", {}).get("pmd", []))
        bind = ", ".join(str(x) for x in eth.get("af_xdp", {}).get("bind", []))
        here = name in prov["platforms"]
        if here:
            layers = ", ".join(f"{k} {v}" for k, v in prov["layers"].items())
            st = prov["status"]
            accel = ", ".join(str(a) for a, _ in env.get("accel", []))
            ran = (f"{layers} cells; {st['ok']} ok, {st['unsupported']} unsupported, "
                   f"{st['failed']} failed" + (f"; guests under {accel}" if accel else ""))
        else:
            ran = "not in this data set"
        rows.append({"platform": name, "what": what, "generator": eth.get("generator"),
                     "dpdk": dpdk, "bind": bind, "ran": ran,
                     # the platform module's own statement of its limits and where it ran
                     "can": getattr(mod, "CAN_SHOW", ""), "cannot": getattr(mod, "CANNOT_SHOW", ""),
                     "exercised": getattr(mod, "EXERCISED", "")})
    return rows


def _booktabs(out, who: str, source: str, spec: str, header: str, body: list[str]) -> None:
    """A generated booktabs tabular: a provenance comment, the header, the rows."""
    lines = [f"% Generated by rxbench (workflow/rxbench/tables.py {who}) from", f"% {source}; do not edit.",
             r"\begin{tabular}{@{}" + spec + "@{}}", r"\toprule", header + r" \\", r"\midrule",
             *body, r"\bottomrule", r"\end{tabular}", ""]
    atomic_write(out, "\n".join(lines))


def platforms_table(gs: SF.GroupStats, out: str | Path) -> None:
    body = [" & ".join([r"\texttt{" + tex_escape(r["platform"]) + "}",
                        tex_escape(f"{r['what']} Generator {r['generator']}; DPDK driver "
                                   f"{r['dpdk']}; AF_XDP bind {r['bind']}."),
                        tex_escape(r["can"]), tex_escape(r["cannot"]),
                        tex_escape(r["exercised"]), tex_escape(r["ran"])]) + r" \\"
            for r in platform_rows(gs)]
    _booktabs(out, "platforms_table", "the platforms' code, config/config.yaml and stats.csv/set.json",
              r"@{}l p{0.19\linewidth} p{0.19\linewidth} p{0.15\linewidth} p{0.14\linewidth} "
              r"p{0.11\linewidth}@{}",
              r"Platform & What it is & Can show & Cannot show & Where it has run & "
              r"In this data set", body)


# --- published numbers beside ours --------------------------------------------------

ANCHORS_CSV = Path(__file__).resolve().parents[2] / "paper" / "data" / "anchors.csv"


def _ours(gs: SF.GroupStats, spec) -> str:
    """This data set's number for an anchor row's `ours` (stack@class): the
    highest median among the stack's best configurations in that wait class
    at the smallest frame size (Ethernet, Mpps, with its NAPI placement), or
    the stack's highest median goodput with the sender at full speed (tcp,
    Gbit/s); "--" where the set has none."""
    spec = G.norm(spec)
    if not spec or "@" not in str(spec):
        return "--"
    stack, cls = str(spec).split("@", 1)
    st = gs.st
    if cls == "tcp":
        g = st[(st["layer"] == "tcp") & (st["stack"] == stack) & (st["status"] == "ok")] \
            if len(st) else st
        if "load" in g.columns:
            g = g[g["load"].map(G.load_target).isna()]
        g = g[g["rx_gbps_n"] > 0] if "rx_gbps_n" in g.columns else g.iloc[0:0]
        if not len(g):
            return "--"
        r = g.sort_values("rx_gbps_median").iloc[-1]
        return f"{r['rx_gbps_median']:.3g}\\,Gbit/s ({int(G.norm(r['conns']))} conn.)"
    best = gs.best("eth")
    if not len(best) or "wait_class" not in best.columns:
        return "--"
    g = best[(best["stack"] == stack) & (best["wait_class"].map(G.norm) == cls)]
    if not len(g):
        return "--"
    g = g[g["size"].map(G.norm) == min(G.norm(v) for v in g["size"])]
    # a maximum under overload before a lower bound, then the highest median
    g = g.assign(_o=g["overloaded"].map(G.to_bool))
    r = g.sort_values(["_o", "rx_pps_median"]).iloc[-1]
    where = {"receiver": "NAPI on rx core", "sender": "NAPI on tx CPU"}.get(G.norm(r.get("napi")), "")
    bound = "" if G.to_bool(r.get("overloaded")) else ", lower bound"
    return (f"{r['rx_pps_median'] / 1e6:.3g}\\,Mpps ({int(G.norm(r['size']))}\\,B"
            f"{', ' + where if where else ''}{bound})")


def anchor_rows(gs: SF.GroupStats, anchors_csv: str | Path = ANCHORS_CSV) -> list[dict]:
    a = pd.read_csv(anchors_csv, comment="#", dtype=str, keep_default_na=False)
    return [{**r, "here": _ours(gs, r["ours"])} for r in a.to_dict("records")]


def anchors_table(gs: SF.GroupStats, out: str | Path) -> None:
    body = [f"{tex_escape(r['metric'])}~\\cite{{{r['cite']}}} & "
            f"{tex_escape(r['value'])}\\,{tex_escape(r['unit'])} & "
            f"{tex_escape(r['hardware'])} & {tex_escape(r['software'])} & {r['here']} \\\\"
            for r in anchor_rows(gs)]
    _booktabs(out, "anchors_table", "paper/data/anchors.csv (published numbers, with their sources) "
              "and stats.csv",
              r"p{0.26\linewidth}p{0.11\linewidth}p{0.18\linewidth}p{0.11\linewidth}"
              r"p{0.17\linewidth}",
              r"Published measurement & Value & Hardware & Software & Here", body)


TABLES = {"eth": eth_table, "tcp": tcp_table, "env": env_table, "seed": seed_table,
          "best": best_table, "ndr": ndr_table, "cost": cost_table, "anchors": anchors_table,
          "platforms": platforms_table}
