"""Figures from the summary CSV alone (PDF for the paper, PNG for the
README and the report)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .aggregate import read_summary  # noqa: E402

# one colour and marker per stack, the same in every figure; readable in grayscale
STYLE = {
    "xdp_drop": ("#000000", "o", "-"),
    "af_xdp": ("#0072B2", "s", "--"),
    "dpdk": ("#D55E00", "^", "-."),
    "af_packet": ("#009E73", "D", ":"),
}


def eth_rate(csv: str | Path, pdf: str | Path, png: str | Path) -> None:
    df = read_summary(csv)
    eth = df[(df.layer == "eth")]
    ok = eth[eth.status == "ok"]
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    if ok.empty:
        ax.text(0.5, 0.5, "no successful Ethernet cell", ha="center", va="center",
                transform=ax.transAxes)
    # frame sizes evenly spaced (RFC 2544's set is roughly geometric, with a
    # cluster at 1024..1518 that a log axis would crowd)
    sizes = sorted(int(x) for x in eth["size"].dropna().unique())
    pos = {size: i for i, size in enumerate(sizes)}
    groups = ok.groupby(["stack", "napi", "cores"], dropna=False)
    for (stack, napi, cores), g in groups:
        color, marker, ls = STYLE.get(stack, ("#777777", "x", "-"))
        mfc = color
        if napi == "sender":      # receive path shares the generator's CPU
            ls, mfc = (0, (4, 1, 1, 1)), "white"
        agg = g.groupby("size").agg(rx=("rx_pps", "median"), lo=("rx_pps", "min"),
                                    hi=("rx_pps", "max"), off=("offered_pps", "median"),
                                    gb=("generator_bound", "mean"), n=("rep", "count"))
        x = np.array([pos[int(v)] for v in agg.index])
        y = agg.rx.to_numpy() / 1e6
        err = [(agg.rx - agg.lo).to_numpy() / 1e6, (agg.hi - agg.rx).to_numpy() / 1e6]
        label = f"{stack} (napi={napi}, {cores} core{'s' if cores > 1 else ''})"
        ax.errorbar(x, y, yerr=err, color=color, marker=marker, linestyle=ls, capsize=3,
                    markersize=5, markerfacecolor=mfc, label=label)
        gb = agg.gb.to_numpy() >= 0.5
        ax.scatter(x[gb], y[gb], s=110, facecolors="none", edgecolors="#CC0000",
                   linewidths=1.2, zorder=5)
        ax.plot(x, agg.off.to_numpy() / 1e6, color=color, linestyle=(0, (1, 3)),
                linewidth=1, alpha=0.7)
    if not ok.empty:
        ax.plot([], [], color="#555555", linestyle=(0, (1, 3)), label="offered by generator")
        ax.scatter([], [], s=110, facecolors="none", edgecolors="#CC0000",
                   label="generator-bound point")
    if sizes:
        ax.set_xticks(range(len(sizes)), [str(x) for x in sizes])
        ax.set_xlim(-0.5, len(sizes) - 0.5)
    top = max(ok.rx_pps.max(), ok.offered_pps.max()) / 1e6 if not ok.empty else 1.0
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("frame size (bytes, FCS included)")
    ax.set_ylabel("received (Mpps)")
    ax.grid(True, alpha=0.3)
    # below the axes, so the legend never hides data
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
              frameon=False)
    n = int(ok.groupby(["stack", "napi", "cores", "size"]).rep.count().max()) if not ok.empty else 0
    kernel = str(ok.kernel.iloc[0]).split()[0] if not ok.empty else "?"
    platform = str(eth.platform.iloc[0]) if not eth.empty else "?"
    ax.set_title(f"Ethernet receive rate, platform {platform}, kernel {kernel}, "
                 f"median of n={n} (bars: min-max)", fontsize=8)
    fig.tight_layout()
    for out in (pdf, png):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)
    plt.close(fig)
