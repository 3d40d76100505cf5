"""Figures from the group statistics alone (stats.csv and set.json,
rxbench/present/statsfile.py): one function per figure family, each
writing a PDF (for the paper) and a PNG (for the report).

Every figure plots, per cell group, the median over repetitions with error
bars = the 95 % bootstrap interval of the median (rxbench/stats.py; none with
fewer than three repetitions), and states the platform, kernel, NIC driver
and number of repetitions in a footer (and, for guests under TCG, that
absolute rates say nothing about the stacks). Saturation cells are named
for what they measure: the maximum receive rate under overload. The same stack has the same colour, marker and hatch everywhere;
a variant (e.g. napi=sender) keeps its stack's colour and marker and
changes the fill and line style, so lines stay apart in grayscale.

    python -m rxbench.paper figure eth_rate --stats paper/generated/local/stats.csv \
        --pdf paper/generated/local/eth_rate.pdf --png paper/generated/local/eth_rate.png

FAMILIES lists the figures; plan() (present/figdata.py, with the data
bookkeeping every figure uses) says which of them the data supports (e.g.
eth_cores only when more than one core count was measured).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as pe  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import stats as S  # noqa: E402
from .present import groups as G  # noqa: E402
from .present import statsfile as SF  # noqa: E402
from .present import look  # noqa: E402
from .present.figdata import FAMILY_NAMES, Data  # noqa: E402

plt.rcParams.update({
    "pdf.fonttype": 42, "ps.fonttype": 42,      # embedded TrueType: searchable text
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "savefig.dpi": 150,
})

REFERENCE = "iperf3"
GB_RING = "#CC0000"
TOUCH_TITLE = {0: "payload not read by the server (touch=0)",
               1: "payload read by the server (touch=1)"}


style = look.style


def _series(g: pd.DataFrame, x: str, metric: str, scale: float, pos: dict):
    g = g[g["status"] == "ok"]
    g = g[g[f"{metric}_n"] > 0] if f"{metric}_n" in g.columns else g.iloc[0:0]
    g = g.sort_values(x)
    xs = np.array([pos[G.norm(v)] for v in g[x]], dtype=float)
    mean = g[f"{metric}_median"].to_numpy(dtype=float) / scale
    lo = g[f"{metric}_med_lo"].to_numpy(dtype=float) / scale
    hi = g[f"{metric}_med_hi"].to_numpy(dtype=float) / scale
    err = np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)])
    gb = (g["generator_bound_reps"].to_numpy(dtype=float) > 0) if len(g) else np.array([], bool)
    return xs, mean, err, gb, g


AUX_LABELS = ("offered by", "generator-bound", "sender-bound", "line rate", "XDP_DROP in",
              "generator's maximum", "filled:", "hollow:", "x: closed")


def _finish(fig, ax_or_axes, d: Data, pdf, png, extra=(), ci=True) -> None:
    """Legend and footer below the axes (the legend never covers data),
    then PDF and PNG."""
    axes = list(np.ravel(ax_or_axes)) if isinstance(ax_or_axes, (list, tuple, np.ndarray)) \
        else [ax_or_axes]
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    # stacks first (in plotting order), then the markers' explanations
    order = sorted(range(len(labels)), key=lambda i: (labels[i].startswith(AUX_LABELS), i))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    c = d.ctx
    foot = [f"platform {c['platform']}, kernel {c['kernel']}, NIC driver {c['nic_driver']}; "
            f"{c['n_text']} repetitions per point"
            + (f"; median, error bars: {S.interval_text(c['n_min'], c['n_max'])}"
               if ci else "")] + list(extra)
    if d.tcg:
        foot.append(G.TCG_NOTE[:1].upper() + G.TCG_NOTE[1:])
    foot = [w for line in foot for w in textwrap.wrap(line, 118, subsequent_indent="  ")]
    text = fig.text(0.01, 0.01, "\n".join(foot), fontsize=6.5, va="bottom", ha="left",
                    color="#333333")
    fig.canvas.draw()
    inv = fig.transFigure.inverted()
    y = inv.transform(text.get_window_extent())[1][1] + 0.01
    if labels:
        # as many columns as fit the canvas: a legend is never cut off
        for ncol in range(min(3, len(labels)), 0, -1):
            leg = fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False,
                             bbox_to_anchor=(0.5, y), columnspacing=1.2, handlelength=2.6)
            fig.canvas.draw()
            box = inv.transform(leg.get_window_extent())
            if (box[0][0] >= 0 and box[1][0] <= 1) or ncol == 1:
                break
            leg.remove()
        y = inv.transform(leg.get_window_extent())[1][1] + 0.005
    fig.tight_layout(rect=(0, y, 1, 1))
    for out in (pdf, png):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)
    plt.close(fig)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _size_axis(ax, sizes):
    # frame sizes evenly spaced: RFC 2544's set is roughly geometric with a
    # cluster at 1024..1518 that a log axis would crowd
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_xlabel("frame size (bytes, FCS included)")


def _bytes_label(m: int) -> str:
    return f"{m // 1024} KiB" if m % 1024 == 0 and m >= 1024 else f"{m} B"


def _ring(ax, xs, ys, gb, first: list, text: str = "generator-bound (>= 1 rep.)") -> None:
    if gb.any():
        ax.scatter(xs[gb], ys[gb], s=95, facecolors="none", edgecolors=GB_RING,
                   linewidths=1.1, zorder=5, label=text if not first else None)
        first.append(True)


# --- Ethernet -----------------------------------------------------------------

def _eth_cores(d: Data):
    cores = d.values("cores")
    return cores[0] if cores else None


def eth_rate(gs, pdf, png) -> None:
    """Received Mpps vs frame size at the smallest core count: a line per
    stack and variant, the generator's offered rate dotted in the stack's
    colour, XDP_DROP (in-kernel, the ceiling) in black, generator-bound
    points ringed, the line rate when the summary has one."""
    _eth_vs_size(gs, pdf, png, metric="rx_pps", scale=1e6,
                 ylabel="maximum receive rate\nunder overload (Mpps)",
                 title="Maximum receive rate under overload, every configuration")


def eth_gbps(gs, pdf, png) -> None:
    """Received Gbit/s (frame bits, FCS included) vs frame size."""
    _eth_vs_size(gs, pdf, png, metric="rx_gbps", scale=1.0,
                 ylabel="received under overload\n(Gbit/s, frame bits)",
                 title="Received bit rate under overload")


def _eth_vs_size(gs, pdf, png, metric, scale, ylabel, title) -> None:
    d = Data(gs, "eth")
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    cores = _eth_cores(d)
    sub = d.st[d.st["cores"].map(G.norm) == cores] if cores is not None else d.st.iloc[0:0]
    sub = d.saturation(sub)
    sizes = sorted({G.norm(v) for v in sub["size"] if G.norm(v) is not None}) if len(sub) else []
    pos = {s: i for i, s in enumerate(sizes)}
    top = 0.0
    rings: list = []
    drawn = False
    for stack, combo, g in d.lines(sub):
        xs, y, err, gb, ok = _series(g, "size", metric, scale, pos)
        if not len(xs):
            continue
        drawn = True
        st = d.line_style(stack, combo)
        label = d.label(stack, combo) + (" (ceiling)" if stack == "xdp_drop"
                                         and d.is_default(combo) else "")
        ax.errorbar(xs, y, yerr=err, capsize=2.5, linewidth=1.3, label=label, **st)
        _ring(ax, xs, y, gb, rings)
        top = max(top, np.nanmax(y + err[1]))
        if metric == "rx_pps" and "offered_pps_mean" in ok.columns:
            off = ok["offered_pps_mean"].to_numpy(dtype=float) / scale
            ax.plot(xs, off, color=st["color"], linestyle=(0, (1, 2.5)), linewidth=0.9,
                    alpha=0.8)
            top = max(top, np.nanmax(off))
    if drawn and metric == "rx_pps":
        ax.plot([], [], color="#555555", linestyle=(0, (1, 2.5)), linewidth=0.9,
                label="offered by the generator (stack's colour)")
    line = d.ctx["line_rate_gbps"]
    if line and sizes:
        xs = np.arange(len(sizes))
        if metric == "rx_pps":     # + 20 B preamble and inter-frame gap per frame
            ys = np.array([line * 1e9 / ((s + 20) * 8) for s in sizes]) / scale
        else:
            ys = np.full(len(sizes), line * np.array(sizes) / (np.array(sizes) + 20))
        ax.plot(xs, ys, color="#000000", linestyle=(0, (8, 2, 2, 2)), linewidth=1,
                label=f"line rate ({line:g} Gbit/s)")
        # the axis follows the data: a line rate far above it leaves the top
        top = max([top] + [y for y in ys if y <= 1.6 * top or not top])
    if not drawn:
        _empty(ax, "no successful Ethernet cell")
    if sizes:
        _size_axis(ax, sizes)
    ax.set_ylim(0, (top or 1.0) * 1.12)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}, {cores or '?'} receiver core{'s' if cores != 1 else ''}")
    extra = []
    if metric == "rx_gbps":
        extra.append(d.ctx["line_note"])
    _finish(fig, ax, d, pdf, png, extra + d.missing(sub))


def eth_cores(gs, pdf, png) -> None:
    """Received Mpps vs receiver cores at the smallest frame size."""
    d = Data(gs, "eth")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sizes = d.values("size")
    size = sizes[0] if sizes else None
    sub = d.saturation(d.st[d.st["size"].map(G.norm) == size] if size is not None
                       else d.st.iloc[0:0])
    cores = sorted({G.norm(v) for v in sub["cores"] if G.norm(v) is not None}) if len(sub) else []
    pos = {c: i for i, c in enumerate(cores)}
    top, rings, drawn = 0.0, [], False
    for stack, combo, g in d.lines(sub):
        xs, y, err, gb, _ = _series(g, "cores", "rx_pps", 1e6, pos)
        if not len(xs):
            continue
        drawn = True
        ax.errorbar(xs, y, yerr=err, capsize=2.5, linewidth=1.3,
                    label=d.label(stack, combo), **d.line_style(stack, combo))
        _ring(ax, xs, y, gb, rings)
        top = max(top, np.nanmax(y + err[1]))
    if not drawn:
        _empty(ax, "no successful Ethernet cell")
    ax.set_xticks(range(len(cores)), [str(c) for c in cores])
    ax.set_xlim(-0.5, max(len(cores), 1) - 0.5)
    ax.set_xlabel("receiver cores")
    ax.set_ylabel("maximum receive rate under overload (Mpps)")
    ax.set_ylim(0, (top or 1.0) * 1.12)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Maximum receive rate under overload vs cores, {size} B frames")
    _finish(fig, ax, d, pdf, png, d.missing(sub))


def _bars(ax, d: Data, sub, x: str, metric: str, scale: float, skip=(), xlabel=None,
          fmt=str) -> bool:
    xs_all = sorted({G.norm(v) for v in sub[x] if G.norm(v) is not None}) if len(sub) else []
    pos = {v: i for i, v in enumerate(xs_all)}
    lines = [(s, c, g) for s, c, g in d.lines(sub, skip)
             if f"{metric}_n" in g.columns and (g[f"{metric}_n"] > 0).any()]
    if not lines:
        return False
    width = 0.8 / len(lines)
    for j, (stack, combo, g) in enumerate(lines):
        xs, y, err, _, _ = _series(g, x, metric, scale, pos)
        color, _, hatch = style(stack)
        st = d.line_style(stack, combo, skip)
        plain = st["fillstyle"] == "full"
        bars = ax.bar(xs - 0.4 + width * (j + 0.5), y, width * 0.92, yerr=err, capsize=2,
                      color=color if plain else "white",
                      edgecolor=color if not plain else "white", hatch=hatch, linewidth=0.8,
                      error_kw={"elinewidth": 0.9, "ecolor": "#111111"},
                      label=d.label(stack, combo, skip))
        # a white halo keeps the error bar visible over a dark bar
        if bars.errorbar is not None:
            for art in [*bars.errorbar.lines[1], *bars.errorbar.lines[2]]:
                art.set_path_effects([pe.Stroke(linewidth=2.4, foreground="white"),
                                      pe.Normal()])
    ax.set_xticks(range(len(xs_all)), [fmt(v) for v in xs_all])
    ax.set_xlim(-0.5, len(xs_all) - 0.5)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.grid(True, axis="y", alpha=0.3)
    return True


def eth_cpu(gs, pdf, png) -> None:
    """CPU time of the receive side's cores per received packet (ns), per
    stack and frame size, where the receive side has CPUs of its own."""
    d = Data(gs, "eth")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    cores = _eth_cores(d)
    sub = d.st[d.st["cores"].map(G.norm) == cores] if cores is not None else d.st.iloc[0:0]
    sub = d.saturation(sub)
    if not _bars(ax, d, sub, "size", "cpu_ns_per_pkt", 1.0,
                 xlabel="frame size (bytes, FCS included)"):
        _empty(ax, "no CPU cost measured")
    ax.set_ylabel("receive-side CPU time per packet (ns)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Ethernet CPU cost per packet, {cores or '?'} receiver "
                 f"core{'s' if cores != 1 else ''}")
    _finish(fig, ax, d, pdf, png, [
        "only where the receive side (application and NAPI) has CPUs of its own, "
        "not shared with the generator"])


NAPI_TITLE = {"receiver": "NAPI on the receiver's core", "sender": "NAPI on the sender's CPU",
              "dedicated": "NAPI on a core of its own"}


def eth_best(gs, pdf, png) -> None:
    """The headline, like with like: a panel per NAPI placement (row) and
    wait class (column, groups.WAIT_CLASSES), each stack's best
    configuration within that panel (groups.best_config: within one
    placement and class) against frame size: received Mpps (median, bootstrap
    interval), its offered rate dotted in the stack's colour (the gap is the
    loss), XDP_DROP at the same placement as the receive path's ceiling and
    the generator's own maximum (what it put on the link into XDP_DROP) as a
    grey line. Filled: the receiver was overloaded (its maximum); hollow: it
    was not (a lower bound); x: closed loop (the receiver's pace clocked the
    sender on a shared CPU). No panel is compared with another."""
    d = Data(gs, "eth")
    cores = _eth_cores(d)
    best = d.gs.best("eth")
    best = best[best["cores"].map(G.norm) == cores] if len(best) else best
    sizes = sorted({G.norm(v) for v in best["size"]} - {None}) if len(best) else []
    pos = {s: i for i, s in enumerate(sizes)}
    has_napi = len(best) and "napi" in best.columns
    napis = [v for v in d.values("napi") if has_napi and (best["napi"].map(G.norm) == v).any()] \
        if has_napi else [None]
    napis.sort(key=lambda v: (v != d.defaults.get("napi"), str(v)))
    classes = [c for c in G.WAIT_CLASSES if c != "kernel" and len(best)
               and (best["wait_class"].map(G.norm) == c).any()] or [None]
    fig, axes = plt.subplots(len(napis or [None]), len(classes), squeeze=False,
                             figsize=(6.6, 1.9 + 1.75 * len(napis or [None])), sharey=True)
    top, marks, rings = 0.0, set(), []
    for i, nv in enumerate(napis or [None]):
        row = best[best["napi"].map(G.norm) == nv] if nv is not None and len(best) else best
        ref = row[row["stack"] == "xdp_drop"] if len(row) else row
        for j, wc in enumerate(classes):
            ax = axes[i][j]
            g = row[row["wait_class"].map(G.norm) == wc] if wc is not None else row
            if len(ref):
                xs, y, _, _, okr = _series(ref, "size", "rx_pps", 1e6, pos)
                ax.plot(xs, y, color="#000000", linewidth=0.9, marker="o", markersize=2.5,
                        label="XDP_DROP in the kernel (ceiling)")
                if "offered_pps_median" in okr.columns:
                    off = okr["offered_pps_median"].to_numpy(dtype=float) / 1e6
                    ax.plot(xs, off, color="#888888", linewidth=2.2, alpha=0.6, zorder=1,
                            label="generator's maximum (its rate into XDP_DROP)")
                    top = max(top, np.nanmax(off))
                top = max(top, np.nanmax(y))
            stacks = sorted(dict.fromkeys(g["stack"]), key=look.rank) if len(g) else []
            for stack in stacks:
                if stack == "xdp_drop":
                    continue
                xs, y, err, gb, ok = _series(g[g["stack"] == stack], "size", "rx_pps", 1e6, pos)
                if not len(xs):
                    continue
                color, marker, _ = style(stack)
                ax.errorbar(xs, y, yerr=err, capsize=2, linewidth=1.2, color=color,
                            marker=None, label=look.label(stack, d.ctx["nic_driver"]))
                over = ok["overloaded"].map(G.to_bool).to_numpy(bool)
                loop = ok["closed_loop"].map(G.to_bool).to_numpy(bool)
                ax.scatter(xs[over], y[over], s=22, color=color, marker=marker, zorder=4)
                ax.scatter(xs[~over], y[~over], s=22, facecolors="white", edgecolors=color,
                           marker=marker, zorder=4)
                if loop.any():
                    ax.scatter(xs[loop], y[loop], s=40, color="#111111", marker="x",
                               linewidths=0.9, zorder=5)
                    marks.add("loop")
                if (~over).any():
                    marks.add("bound")
                if "offered_pps_median" in ok.columns:
                    off = ok["offered_pps_median"].to_numpy(dtype=float) / 1e6
                    ax.plot(xs, off, color=color, linestyle=(0, (1, 2)), linewidth=0.9)
                    marks.add("offered")
                    top = max(top, np.nanmax(off))
                _ring(ax, xs, y, gb, rings)
                top = max(top, np.nanmax(y + err[1]))
            if not len(g):
                tried = d.st[(d.st["wait_class"].map(G.norm) == wc)
                             & (d.st["napi"].map(G.norm) == nv)] if "napi" in d.st.columns \
                    else d.st.iloc[0:0]
                _empty(ax, "refused on this platform\n(see the text)" if len(tried)
                       else "not in this data set")
            if sizes:
                _size_axis(ax, sizes)
            if i < len(napis) - 1:
                ax.set_xlabel("")
            if i == 0:
                ax.set_title(G.WAIT_CLASSES[wc][0] if wc else "", fontsize=7.5)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=6.5)
            if ax.get_xticklabels():
                for t in ax.get_xticklabels():
                    t.set_rotation(45)
        axes[i][0].set_ylabel(f"{NAPI_TITLE.get(nv, f'napi={nv}')}\nreceived (Mpps)",
                              fontsize=7)
    for ax in np.ravel(axes):
        ax.set_ylim(0, (top or 1.0) * 1.1)
    # the markers' meaning, once
    ax0 = axes[0][0]
    if "offered" in marks:
        ax0.plot([], [], color="#555555", linestyle=(0, (1, 2)), linewidth=0.9,
                 label="offered by the generator (stack's colour; the gap is the loss)")
    ax0.scatter([], [], s=22, color="#555555", marker="o", label="filled: receiver overloaded")
    if "bound" in marks:
        ax0.scatter([], [], s=22, facecolors="white", edgecolors="#555555", marker="o",
                    label="hollow: not overloaded (a lower bound)")
    if "loop" in marks:
        ax0.scatter([], [], s=40, color="#111111", marker="x",
                    label="x: closed loop (receiver paced the sender)")
    _finish(fig, list(np.ravel(axes)), d, pdf, png, [
        f"{cores or '?'} receiver core{'s' if cores != 1 else ''}; each stack's best configuration "
        "within the panel's NAPI placement and wait class (one stated rule, the paper's Method); "
        "panels are not compared with each other"])


def eth_ndr(gs, pdf, png) -> None:
    """NDR and PDR (MLRsearch, search=ndr cells) per stack, beside the same
    configuration's maximum receive rate under overload; a panel per frame
    size."""
    d = Data(gs, "eth")
    ok = d.ok()
    ndr = ok[ok["search"].map(G.norm) == "ndr"] if "search" in ok.columns else ok.iloc[0:0]
    cores = sorted({G.norm(v) for v in ndr["cores"]} - {None}) if len(ndr) else []
    ndr = ndr[ndr["cores"].map(G.norm) == cores[0]] if cores else ndr
    sizes = sorted({G.norm(v) for v in ndr["size"]} - {None}) if len(ndr) else []
    fig, axes = plt.subplots(1, max(len(sizes), 1), figsize=(6.4, 4.0), squeeze=False)
    axes = axes[0]
    sat = d.saturation(ok)
    keys = [v for v in d.variants if v != "search"]
    top = 0.0
    for ax, size in zip(axes, sizes or [None]):
        g = ndr[ndr["size"].map(G.norm) == size] if size is not None else ndr
        lines = d.lines(g, skip=("search",))
        for j, (stack, combo, row) in enumerate(lines):
            r = row.iloc[0]
            same = sat[(sat["stack"] == stack) & (sat["size"].map(G.norm) == size)
                       & (sat["cores"].map(G.norm) == G.norm(r["cores"]))]
            for k in keys:
                v = G.norm(r.get(k))
                same = same[same[k].map(G.norm) == v] if v is not None else same[same[k].isna()]
            color, _, hatch = style(stack)
            vals = [(r.get("ndr_pps_median"), "NDR (zero loss)", color, ""),
                    (r.get("pdr_pps_median"), "PDR", "white", hatch)]
            for i, (v, lab, fc, h) in enumerate(vals):
                if G.norm(v) is not None:
                    ax.bar(j + (i - 1) * 0.27, float(v) / 1e6, 0.25, color=fc, edgecolor=color,
                           hatch=h, label=lab if j == 0 else None)
                    top = max(top, float(v) / 1e6)
            if len(same):
                s = same.iloc[0]
                m = float(s["rx_pps_median"]) / 1e6
                lo, hi = s.get("rx_pps_med_lo"), s.get("rx_pps_med_hi")
                err = (np.array([[m - float(lo) / 1e6], [float(hi) / 1e6 - m]])
                       if G.norm(lo) is not None and G.norm(hi) is not None else None)
                ax.bar(j + 0.27, m, 0.25, color="#dddddd", edgecolor=color, yerr=err, capsize=2,
                       label="maximum receive rate under overload" if j == 0 else None)
                top = max(top, m + (err[1][0] if err is not None else 0))
        ax.set_xticks(range(len(lines)),
                      [textwrap.fill(d.label(s, c, ("search",)), 14, break_long_words=False,
                                     break_on_hyphens=False) for s, c, _ in lines],
                      fontsize=6.5)
        ax.set_title(f"{size} B frames" if size is not None else "", fontsize=7.5)
        ax.grid(True, axis="y", alpha=0.3)
        if not lines:
            _empty(ax, "no NDR cell")
    for ax in axes:
        ax.set_ylim(0, (top or 1.0) * 1.15)
    axes[0].set_ylabel("Mpps")
    fig.suptitle("NDR and PDR (MLRsearch) beside the maximum receive rate under overload",
                 fontsize=8)
    _finish(fig, list(axes), d, pdf, png, [
        "NDR/PDR: the conditional throughput MLRsearch found per search (median over searches); "
        "grey: the saturation cells' median with its bootstrap interval"])


# --- TCP ----------------------------------------------------------------------

def _touch_panels(d: Data):
    if "touch" in d.variants:
        vals = d.values("touch")
        default = d.defaults.get("touch")
        vals.sort(key=lambda v: v != default)
        return vals or [None]
    return [None]


def _touch_slice(d: Data, sub, t):
    """A touch panel's groups; the reference (iperf3) has no touch variant
    of its own, so it appears in every panel with what it has."""
    if t is None:
        return sub
    same = sub["touch"].map(G.norm) == t
    ref = sub["stack"] == REFERENCE
    has_ref = (same & ref).any()
    return sub[same | (ref & ~has_ref)]


def _tcp_lines(gs, pdf, png, x: str, fixed: str, pick, xlabel: str, fmt, title: str) -> None:
    d = Data(gs, "tcp")
    panels = _touch_panels(d)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4, 4.2), sharey=True, squeeze=False)
    axes = axes[0]
    vals = d.values(fixed)
    fixed_v = pick(vals) if vals else None
    sub = d.st[d.st[fixed].map(G.norm) == fixed_v] if fixed_v is not None else d.st.iloc[0:0]
    sub, cores = d.at_min(d.max_load(sub), "cores")
    rings: list = []
    xs_all = sorted({G.norm(v) for v in sub[x] if G.norm(v) is not None}) if len(sub) else []
    pos = {v: i for i, v in enumerate(xs_all)}
    top = 0.0
    skip = ("touch",)
    for ax, t in zip(axes, panels):
        drawn = False
        for stack, combo, g in d.lines(_touch_slice(d, sub, t), skip):
            xs, y, err, gb, _ = _series(g, x, "rx_gbps", 1.0, pos)
            if not len(xs):
                continue
            drawn = True
            st = d.line_style(stack, combo, skip)
            label = d.label(stack, combo, skip)
            if d.variant_index(combo, skip) == 0 and look.tcp_linestyle(stack) is not None:
                st["linestyle"] = look.tcp_linestyle(stack)
            if stack == REFERENCE:
                st.update(markersize=8)
            ax.errorbar(xs, y, yerr=err, capsize=2.5, linewidth=1.3, label=label, **st)
            _ring(ax, xs, y, gb, rings, "sender-bound (>= 1 rep.): not ranked")
            top = max(top, np.nanmax(y + err[1]))
        if not drawn:
            _empty(ax, "no successful TCP cell")
        ax.set_xticks(range(len(xs_all)), [fmt(v) for v in xs_all])
        ax.set_xlim(-0.5, max(len(xs_all), 1) - 0.5)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if t is not None:
            ax.set_title(TOUCH_TITLE.get(t, f"touch={t}"), fontsize=7.5)
    axes[0].set_ylabel("goodput (Gbit/s)")
    axes[0].set_ylim(0, (top or 1.0) * 1.12)
    fixed_text = (f"{fixed_v} connection{'s' if fixed_v != 1 else ''}" if fixed == "conns"
                  else f"{_bytes_label(fixed_v)} messages" if fixed_v else "")
    fig.suptitle(f"{title}, {fixed_text}" + (f", {cores} server core{'s' if cores != 1 else ''}"
                                             if cores is not None else ""), fontsize=8)
    pair = ([f"{look.PAIR_LABEL}: iperf3's own client and server, compared only as a pair"]
            if (sub["stack"] == REFERENCE).any() else [])
    _finish(fig, axes, d, pdf, png, pair + d.missing(sub, skip))


def tcp_msg(gs, pdf, png) -> None:
    """TCP goodput vs message size, at the smallest connection count; one
    line per server, iperf3 as the reference; touched and untouched payload
    side by side."""
    _tcp_lines(gs, pdf, png, "msg", "conns", min, "message size (bytes per send)",
               _bytes_label, "TCP goodput vs message size")


def tcp_conns(gs, pdf, png) -> None:
    """TCP goodput vs connections, at the largest message size."""
    _tcp_lines(gs, pdf, png, "conns", "msg", max, "concurrent connections", str,
               "TCP goodput vs connections")


def tcp_cpu(gs, pdf, png) -> None:
    """Receive-side CPU time per received byte (ns) per server and message
    size, at the smallest connection count."""
    d = Data(gs, "tcp")
    panels = _touch_panels(d)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4, 4.0), sharey=True, squeeze=False)
    axes = axes[0]
    conns = d.values("conns")
    c = conns[0] if conns else None
    sub = d.st[d.st["conns"].map(G.norm) == c] if c is not None else d.st.iloc[0:0]
    sub, _ = d.at_min(d.max_load(sub), "cores")
    for ax, t in zip(axes, panels):
        if not _bars(ax, d, _touch_slice(d, sub, t), "msg", "cpu_ns_per_byte", 1.0,
                     skip=("touch",), xlabel="message size (bytes per send)", fmt=_bytes_label):
            _empty(ax, "no CPU cost measured")
        if t is not None:
            ax.set_title(TOUCH_TITLE.get(t, f"touch={t}"), fontsize=7.5)
    axes[0].set_ylabel("receive-side CPU time per byte (ns)")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(f"TCP CPU cost per byte, {c} connection{'s' if c != 1 else ''}", fontsize=8)
    _finish(fig, axes, d, pdf, png, d.missing(sub, ("touch",)))


def tcp_load(gs, pdf, png) -> None:
    """CPU per byte at equal load: the server cores' CPU time per received
    byte (ns) vs the sender's goodput target, only cells whose sender
    reached its target (the cells' own load_reached); a panel per connection count."""
    d = Data(gs, "tcp")
    st = d.gs.subset("load_reached")
    st = st[st["status"] == "ok"] if len(st) else st
    if len(st) and "touch" in st.columns:
        st = st[G.among(st["touch"], [None, d.defaults.get("touch")])]
    st, cores = d.at_min(st, "cores")
    conns = sorted({G.norm(v) for v in st["conns"]} - {None})[:3] if len(st) else []
    fig, axes = plt.subplots(1, max(len(conns), 1), figsize=(6.4, 4.0), sharey=True,
                             squeeze=False)
    axes = axes[0]
    loads = sorted({G.load_target(v) for v in st["load"]} - {None}) if len(st) else []
    pos = {v: i for i, v in enumerate(loads)}
    rings: list = []
    for ax, c in zip(axes, conns or [None]):
        sub = st[st["conns"].map(G.norm) == c] if c is not None else st.iloc[0:0]
        if len(sub):
            sub = sub.assign(_load=sub["load"].map(G.load_target))
            msgs = sorted({G.norm(v) for v in sub["msg"]} - {None})
            sub = sub[sub["msg"].map(G.norm) == msgs[-1]]
        drawn = False
        for stack, combo, g in d.lines(sub, skip=("touch", "load")):
            xs, y, err, gb, _ = _series(g, "_load", "cpu_ns_per_byte", 1.0, pos)
            if not len(xs):
                continue
            drawn = True
            st_ = d.line_style(stack, combo, ("touch", "load"))
            if look.tcp_linestyle(stack) is not None and \
                    d.variant_index(combo, ("touch", "load")) == 0:
                st_["linestyle"] = look.tcp_linestyle(stack)
            ax.errorbar(xs, y, yerr=err, capsize=2.5, linewidth=1.3,
                        label=d.label(stack, combo, ("touch", "load")), **st_)
            _ring(ax, xs, y, gb, rings, "sender-bound (>= 1 rep.): not ranked")
        if not drawn:
            _empty(ax, "no cell reached its goodput target")
        ax.set_xticks(range(len(loads)), [f"{v:g}" for v in loads])
        ax.set_xlim(-0.5, max(len(loads), 1) - 0.5)
        ax.set_xlabel("sender's goodput target (Gbit/s)")
        ax.grid(True, alpha=0.3)
        if c is not None:
            ax.set_title(f"{c} connection{'s' if c != 1 else ''}", fontsize=7.5)
    axes[0].set_ylabel("server CPU time per byte (ns)")
    axes[0].set_ylim(bottom=0)
    fig.suptitle("TCP CPU cost per byte at equal load", fontsize=8)
    missed = d.gs.facts["load"]["missed_tcp"]
    _finish(fig, list(axes), d, pdf, png, [
        "only cells whose sender reached its goodput target (each cell's own verdict)"
        + (f"; {missed} cell(s) of a rate-limited sender missed it: not shown" if missed else ""),
        f"{look.PAIR_LABEL}: the CPU of iperf3's server, compared only as a pair"])


# name -> (function, report category); which of them the data supports:
# figdata.plan
FAMILIES = {
    "eth_best": (eth_best, "Ethernet"),
    "eth_rate": (eth_rate, "Ethernet"),
    "eth_ndr": (eth_ndr, "Ethernet"),
    "eth_gbps": (eth_gbps, "Ethernet"),
    "eth_cores": (eth_cores, "Ethernet"),
    "eth_cpu": (eth_cpu, "Ethernet"),
    "tcp_msg": (tcp_msg, "TCP"),
    "tcp_conns": (tcp_conns, "TCP"),
    "tcp_cpu": (tcp_cpu, "TCP"),
    "tcp_load": (tcp_load, "TCP"),
}
assert tuple(FAMILIES) == FAMILY_NAMES


def figure(name: str, gs: SF.GroupStats, pdf, png) -> None:
    if name not in FAMILIES:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(FAMILIES)}")
    FAMILIES[name][0](gs, pdf, png)


def outside_canvas(fig, tol_px: float = 1.0) -> list[str]:
    """The texts of a drawn figure (legend entries, titles, axis and tick
    labels, footer) that fall outside its canvas, each as a short
    description; [] when everything is inside (tests/test_figure_canvas.py)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    w, h = fig.bbox.width, fig.bbox.height
    out = []

    def check(artist, what):
        if not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            return
        b = artist.get_window_extent(r)
        if b.x0 < -tol_px or b.y0 < -tol_px or b.x1 > w + tol_px or b.y1 > h + tol_px:
            out.append(f"{what} {getattr(artist, 'get_text', lambda: '')()!r} at "
                       f"({b.x0:.0f}, {b.y0:.0f})-({b.x1:.0f}, {b.y1:.0f}) of {w:.0f}x{h:.0f}")

    for leg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        check(leg, "legend")
        for t in leg.get_texts():
            check(t, "legend entry")
    for t in fig.texts:
        check(t, "text")
    def shown(ticks, lim, i):
        lo, hi = sorted(lim)
        return [t for t in ticks if lo - 1e-9 <= t.get_position()[i] <= hi + 1e-9]

    for ax in fig.axes:
        # tick labels outside the view limits exist but are not drawn
        for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts,
                  *shown(ax.get_xticklabels(), ax.get_xlim(), 0),
                  *shown(ax.get_yticklabels(), ax.get_ylim(), 1)):
            check(t, "label")
    return out
