"""numbers.tex from stats.csv (and set.json beside it) alone: the data set,
its counts and context, what the text may name, the seed comparison, and
each layer's numbers (numbers_eth.py, numbers_tcp.py, numbers_data.py).
Every comparative clause goes through one interval test (claims.claim_tex
on groups.compare_stats)."""

from __future__ import annotations

import math
import re

from .. import stats as S
from ..util import atomic_write
from . import figdata
from . import groups as G
from . import statsfile as SF
from .claims import saturation
from .macros import Macros, camel, sig, tex_text
from .numbers_data import interleave_numbers, turns_numbers
from .numbers_eth import eth_numbers
from .numbers_tcp import tcp_numbers

def numbers(gs: SF.GroupStats, gendir: str | None = None, dataset: str | None = None) -> Macros:
    """Every macro of numbers.tex, from the group statistics alone."""
    from ..reference import machine_text
    st = gs.st
    M = Macros()
    ctx = gs.context()
    platform = ctx["platform"]
    csv = gs.facts["summary"]
    M.add("RxPlatform", tex_text(platform))
    # which data set this is, from the summary's provenance columns: the
    # front page and every figure caption say it
    prov = gs.provenance
    M.add("RxDataSet", tex_text(dataset or csv), "the data set shown")
    M.add("RxDataCsv", tex_text(csv))
    M.add("RxMachine", tex_text(machine_text(prov)))
    M.add("RxDates", tex_text(prov["first"] + " -- " + prov["last"] + " UTC"
                              if prov["first"] != prov["last"] else prov["first"] + " UTC"),
          "first and last cell")
    M.add("RxCommit", tex_text(", ".join(c[:12] for c in prov["commits"]) or "unknown"),
          "the rxbench revision(s) that measured it")
    M.add("RxGenDir", gendir or f"generated/{platform}", "figures and tables of this platform")
    M.add("RxKernel", tex_text(ctx["kernel"]))
    M.add("RxCpuModel", tex_text(ctx["cpu_model"]))
    M.add("RxNicDriver", tex_text(ctx["nic_driver"]))
    note = ctx["line_note"]
    M.add("RxLineNote", tex_text(note[:1].upper() + note[1:]), "a sentence")
    M.add("RxCells", prov["cells"], "cell repetitions in the summary")
    M.add("RxCellsOk", prov["status"]["ok"])
    M.add("RxCellsUnsupported", prov["status"]["unsupported"])
    M.add("RxCellsFailed", prov["status"]["failed"])
    M.add("RxGroups", len(st), "cell groups (all repetitions of one parameter point)")
    not_ok = int((st["status"] != "ok").sum()) if len(st) else 0
    M.add("RxGroupsNotOk", not_ok)
    M.add("RxNoisyGroups", int(st["noisy"].sum()) if len(st) else 0)
    M.add("RxNoisyCV", f"{100 * S.NOISY_CV:g}", "CV threshold (%) of a noisy group")
    M.add("RxConfidence", f"{100 * S.CONFIDENCE:g}", "confidence level (%) of the intervals")
    M.add("RxTLevel", f"{(1 + S.CONFIDENCE) / 2:g}", "the t quantile of a two-sided interval")
    M.add("RxReps", ctx["n_text"].replace("n = ", "").replace("-", "--"),
          "successful repetitions per group")
    dur = gs.facts["duration_ok"]
    if dur and dur["max"] > 1.05 * dur["min"]:
        M.add("RxDuration", f"{sig(dur['min'])}--{sig(dur['max'])}", "measured intervals (s)")
    else:
        M.add("RxDuration", sig(dur["median"]) if dur else "n/a", "measured interval (s)")
    gb, sat = G.runner_thresholds()
    M.flag("HaveThresholds", gb is not None)
    M.add("RxGenBoundPct", f"{100 * gb:g}" if gb else "n/a",
          "received >= this % of offered: maybe generator-bound")
    M.add("RxSaturatedPct", f"{100 * sat:g}" if sat else "n/a", "a CPU this % busy is saturated")
    M.flag("HaveNotOk", not_ok > 0)
    M.flag("HaveNoisy", bool(len(st) and st["noisy"].any()))
    M.flag("HaveLineRate", ctx["line_rate_gbps"] is not None)
    planned = figdata.plan(gs)
    for name in figdata.FAMILY_NAMES:
        M.flag("Fig" + camel(name), name in planned)

    nic = ctx["nic_driver"]
    M.flag("HaveTcg", gs.tcg())
    M.add("RxTcgNote", tex_text(G.TCG_NOTE[:1].upper() + G.TCG_NOTE[1:]), "a sentence")
    eth_numbers(M, gs, nic)
    tcp_numbers(M, gs, nic)
    turns_numbers(M)
    interleave_numbers(M)
    text_claims(M, gs)
    testbed_numbers(M, gs)
    return M


def testbed_numbers(M: Macros, gs: SF.GroupStats) -> None:
    """The testbed's own facts from the data: the CPU round trip between
    the generator's and the receiver's CPUs, the generator's measured
    maximum (what it put on the link into XDP_DROP, at the default NAPI
    placement), what the intervals are at the n used, which AF_XDP binds
    and zcrx modes ran or were refused (with the first reason), and whether
    the set has rate-controlled Ethernet cells."""
    cpus = gs.facts.get("cpus") or 0
    M.add("RxCpus", cpus if cpus else "n/a", "CPUs of the machine the cells measured")
    M.add("RxCpusText", f"{cpus} virtual CPU{'s' if cpus != 1 else ''}" if cpus
          else "virtual CPUs", "e.g. 2 virtual CPUs")
    pp = gs.facts.get("pingpong")
    M.flag("HavePingpong", bool(pp))
    M.add("RxPingpong", f"{pp['min']:.0f}--{pp['max']:.0f}" if pp else "n/a",
          "cache-line round trip between generator and receiver CPUs (ns), range over cells")
    M.add("RxPingpongMedian", f"{pp['median']:.0f}" if pp else "n/a")
    ctx = gs.context("eth") if gs.facts["context"].get("eth") else gs.context()
    M.add("RxIntervalText", tex_text(S.interval_text(ctx["n_min"], ctx["n_max"])),
          "what the intervals are at the n used")
    st = gs.st
    eth = st[(st["layer"] == "eth") & (st["status"] == "ok")] if len(st) else st
    sat = saturation(eth)
    dflt = gs.defaults.get("napi")
    x = sat[sat["stack"] == "xdp_drop"] if len(sat) else sat
    if "napi" in x.columns and len(x):
        x = x[x["napi"].map(G.norm).isin([dflt, None])]
    x = x[x["offered_pps_n"] > 0] if "offered_pps_n" in x.columns else x.iloc[0:0]
    M.flag("HaveGenMax", bool(len(x)))
    if len(x):
        x = x.sort_values("size")
        M.add("GenMaxText", ", ".join(f"{sig(r['offered_pps_median'] / 1e6)}\\,Mpps at "
                                      f"{G.norm(r['size'])}\\,B" for _, r in x.iterrows()),
              "the generator's rate into XDP_DROP per frame size")
        lo, hi = x["offered_pps_median"].min(), x["offered_pps_median"].max()
        M.add("GenMaxRange", f"{sig(lo / 1e6)}--{sig(hi / 1e6)}", "Mpps")
    else:
        M.add("GenMaxText", "n/a")
        M.add("GenMaxRange", "n/a")
    # zero-copy: what ran
    ax = st[(st["layer"] == "eth") & (st["stack"] == "af_xdp")] if len(st) else st
    binds = sorted({str(G.norm(v)) for v in ax.get("bind", []) if G.norm(v) is not None})
    ran = ax[ax["n_ok"] > 0] if len(ax) else ax
    M.add("AfXdpBinds", ", ".join(f"\\texttt{{{tex_text(b)}}}" for b in binds) or "none",
          "af_xdp bind modes in this data set")
    M.flag("AfXdpZeroCopyRan", bool(len(ran)) and "bind" in ran.columns
           and bool((ran["bind"].map(G.norm) == "zerocopy").any()))
    M.flag("HaveAfXdp", bool(len(ran)))
    z = st[st["stack"] == "uring_zcrx"] if len(st) else st
    zr = z[z["n_ok"] > 0] if len(z) else z
    M.flag("HaveZcrxCells", bool(len(z)))
    M.flag("ZcrxRan", bool(len(zr)))
    reasons = []
    for _, r in z.iterrows():
        why = str(r.get("reason") or "").strip()
        mode = G.norm(r.get("zcrx"))
        if why and G.norm(r.get("n_ok")) == 0:
            # one reason per repetition; the per-cell interface names differ
            first = re.split(r";\s*(?=unsupported:|failed:)", why)[0]
            first = re.sub(r"\s*\(rxb[0-9a-f]+r?\b[^)]*\)", "", first)
            text = f"{mode}: {first}" if mode else first
            if text not in reasons:
                reasons.append(text)
    M.add("ZcrxReasons", tex_text("; ".join(reasons[:2])) or "n/a",
          "why zcrx cells did not run (first reasons)")


def text_claims(M: Macros, gs: SF.GroupStats) -> None:
    """What the text may name: the platforms of the code's registry and of
    this data set, the flake only where flake.nix exists, and how this data
    set's dpdk and af_xdp (each at its best) compare with the seed's (its
    table beside ours), by the interval test."""
    from .. import ROOT, tables
    from ..platforms import PLATFORMS
    M.add("RxRegisteredPlatforms", ", ".join(f"\\texttt{{{tex_text(p)}}}" for p in PLATFORMS),
          "platforms in workflow/rxbench/platforms PLATFORMS")
    M.add("RxDataPlatforms", ", ".join(f"\\texttt{{{tex_text(p)}}}"
                                       for p in gs.provenance["platforms"]))
    M.flag("HaveFlake", (ROOT / "flake.nix").is_file())
    st = gs.st
    zcrx = st[st["stack"].astype(str) == "uring_zcrx"] if len(st) else st
    # also when the data set has no uring_zcrx cell at all (e.g. an Ethernet-only profile)
    M.flag("ZcrxNotRun", not (zcrx["n_ok"] > 0).any() if len(zcrx) else True)
    M.flag("ZcrxTried", bool(len(zcrx)))
    rows = [r for r in tables.seed_rows(gs) if r["dpdk"] is not None and r["af_xdp"] is not None]
    M.flag("HaveSeedComparison", bool(rows))
    M.add("SeedSizesShared", len(rows), "frame sizes both the seed and this data set measured")
    M.add("SeedDpdkAboveAfXdp", sum(r["seed_dpdk"] > r["seed_af_xdp"] for r in rows),
          "sizes where the seed's DPDK beat its AF_XDP")
    comps = [G.compare_stats(r["af_xdp"], r["dpdk"], "rx_pps") for r in rows]
    M.add("OursAfXdpAboveDpdk", sum(c.apart and c.order == ">" for c in comps),
          "sizes where our af_xdp (at its best) received more than dpdk, intervals apart")
    M.add("OursDpdkAboveAfXdp", sum(c.apart and c.order == "<" for c in comps),
          "sizes where our dpdk (at its best) received more than af_xdp, intervals apart")
    known = [all(math.isfinite(v) for v in (*c.ci_a, *c.ci_b)) for c in comps]
    M.add("OursNotToldApart", sum(k and not c.apart and not c.bound
                                  for c, k in zip(comps, known)),
          "sizes where the two are not told apart (intervals overlap)")
    M.add("OursNotRanked", sum(k and c.bound for c, k in zip(comps, known)),
          "sizes where the lower one received all it was offered (a lower bound)")
    M.add("OursNotCompared", sum(not k for k in known),
          "sizes without an interval (fewer than three repetitions)")


def write_numbers(stats_csv, out, gendir=None, dataset=None) -> None:
    """stats.csv (and set.json beside it) -> numbers.tex."""
    gs = SF.read(stats_csv)
    atomic_write(out, numbers(gs, gendir, dataset).render(gs.facts["summary"]))


