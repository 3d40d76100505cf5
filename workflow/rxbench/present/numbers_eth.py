"""The Ethernet layer's numbers: every successful group's medians, each
stack's best configuration per NAPI placement and wait class
(groups.best_config), the comparisons within each placement and class and
the like-with-like pairs (groups.WAIT_PAIRS), NDR and PDR. No number ranks
across placements or wait classes (tests/test_no_cross_class.py): the
ceiling (xdp_drop) is given as a number, never compared, and CPU per
packet at saturation is not compared (for a polling receiver it is 1/rate)."""

from __future__ import annotations

import math

from ..analysis import LOSSY
from . import groups as G
from . import look
from . import statsfile as SF
from .claims import (claim_tex, finite, label_tex, ndr_groups, ok_groups, pick,
                     saturation, variant_part)
from .macros import Macros, camel, plural, sig, tex_text, words

# what the two sides of each like-with-like pair (groups.WAIT_PAIRS) share
WAIT_WHY = {"Spin": "both spin on their core",
            "Busy": "both drive NAPI by preferred busy polling",
            "Sleep": "both sleep until the kernel wakes them"}
NAPI_TEXT = {"receiver": "NAPI on the receiver's core", "sender": "NAPI on the sender's CPU",
             "dedicated": "NAPI on a core of its own"}


def eth_numbers(M: Macros, gs: SF.GroupStats, nic=None) -> None:
    st = gs.st
    eth = ok_groups(st, "eth")
    sat = saturation(eth)
    M.flag("HaveEth", bool(len(sat)))
    M.flag("HaveEthRows", bool(len(st)) and bool((st["layer"] == "eth").any()))
    M.add("RxEthGroups", int((st["layer"] == "eth").sum()) if len(st) else 0)
    M.add("RxEthGenBoundGroups", int((sat["generator_bound_reps"] > 0).sum()) if len(sat) else 0,
          "eth groups generator-bound in >= 1 repetition")
    M.add("RxEthUnloadedGroups",
          sum(not G.overloaded(r) for _, r in sat.iterrows()) if len(sat) else 0,
          "eth groups whose receiver was not overloaded in most repetitions (lower bounds)")
    M.add("RxEthSatGroups", len(sat), "eth saturation groups that ran")
    M.add("RxEthStacks", ", ".join(label_tex({"stack": s}, [], {}, nic) for s in
                                   dict.fromkeys(sat["stack"])) if len(sat) else "none")
    variants = G.layer_variants(st, "eth") if len(st) else []
    defaults = gs.variant_defaults(variants)
    cores_vals = sorted({G.norm(v) for v in eth["cores"]} - {None}) if len(eth) else []
    # every successful group: \<Stack><Variant><Metric><Size>[Cores<N>] (medians)
    for _, r in eth.iterrows():
        rec = r.to_dict()
        is_ndr = G.norm(rec.get("search")) == "ndr"
        if G.load_target(rec.get("load")) is not None:
            continue                    # a paced group: cost_numbers says what it shows
        name = camel(rec["stack"]) + variant_part(
            rec, [v for v in variants if v != "search"] if is_ndr else variants, defaults)
        point = words(rec["size"]) + (f"Cores{words(rec['cores'])}"
                                      if len(cores_vals) > 1 and rec["cores"] != cores_vals[0]
                                      else "")
        if is_ndr:
            for m, tag in (("ndr_pps", "Ndr"), ("pdr_pps", "Pdr")):
                if finite(rec.get(f"{m}_median")):
                    M.add(f"{name}{tag}Mpps{point}", sig(rec[f"{m}_median"] / 1e6))
            if finite(rec.get("ndr_trials_median")):
                M.add(f"{name}NdrTrials{point}", f"{rec['ndr_trials_median']:.0f}")
            continue
        M.add(f"{name}Mpps{point}", sig(rec["rx_pps_median"] / 1e6))
        if finite(rec.get("rx_pps_med_lo")):
            M.add(f"{name}MppsLo{point}", sig(rec["rx_pps_med_lo"] / 1e6))
            M.add(f"{name}MppsHi{point}", sig(rec["rx_pps_med_hi"] / 1e6))
        if finite(rec.get("rx_gbps_median")):
            M.add(f"{name}Gbps{point}", sig(rec["rx_gbps_median"]))
        if rec.get("cpu_ns_per_pkt_n", 0):
            M.add(f"{name}NsPerPkt{point}", sig(rec["cpu_ns_per_pkt_median"]))

    c0 = cores_vals[0] if cores_vals else None
    M.add("EthCores", c0 if c0 is not None else "n/a", "receiver cores of the comparisons")
    M.add("EthCoresText", plural(c0, "receiver core") if c0 is not None else "n/a")
    M.add("RxBestRule", tex_text(G.BEST_RULE), "how each stack's best configuration is chosen")
    best = gs.best("eth")
    if len(best):
        best = pick(best, "cores", c0)
    M.flag("HaveBest", bool(len(best)))
    M.add("RxBestVariantWins", int((~best["best_is_default"].astype(bool)).sum()) if len(best)
          else 0, "points where a non-default configuration was shown better")
    M.add("RxBestPoints", len(best))
    sizes = sorted({G.norm(v) for v in best["size"]} - {None}) if len(best) else []
    small, large = (sizes[0], sizes[-1]) if sizes else (None, None)
    M.add("EthSmallSize", small if small is not None else "n/a", "bytes")
    M.add("EthLargeSize", large if large is not None else "n/a", "bytes")
    M.flag("HaveLarge", large is not None and large != small)
    lab = lambda rec: label_tex(rec, variants, defaults, nic)     # noqa: E731
    for tag, size in (("Small", small), ("Large", large)):
        at = pick(best, "size", size) if size is not None else best.iloc[0:0]
        ceil = at[at["stack"] == "xdp_drop"]
        users = at[at["stack"] != "xdp_drop"].sort_values("rx_pps_median", ascending=False)
        M.flag(f"HaveCeiling{tag}", bool(len(ceil)))
        M.flag(f"HaveUserEth{tag}", bool(len(users)))
        M.flag(f"HaveTwoUserEth{tag}", len(users) > 1)
        M.add(f"CeilingMpps{tag}", sig(ceil["rx_pps_median"].iloc[0] / 1e6) if len(ceil) else "n/a",
              "xdp_drop at its best")
        M.add(f"CeilingLabel{tag}", lab(ceil.iloc[0]) if len(ceil) else "n/a")
        # configurations never overloaded that received more than the chosen one
        above = [(r, float(r["best_unloaded_max"])) for _, r in at.iterrows()
                 if finite(r.get("best_unloaded_max"))
                 and float(r["best_unloaded_max"]) > float(r["rx_pps_median"])]
        M.flag(f"HaveEthUnloaded{tag}", bool(above))
        M.add(f"EthUnloaded{tag}", ", ".join(
            f"{label_tex(r, variants, defaults, nic, config=False)} {sig(v / 1e6)}"
            for r, v in above) or "n/a",
            "stacks whose not-overloaded configurations received more (lower bounds, Mpps)")
    # the headline, like with like: per NAPI placement and wait class (the
    # panels of the eth_best figure), the stacks' best configurations
    # within the panel compared with each other, never across panels
    n_comp, n_apart = 0, 0
    for tag, size in (("Small", small), ("Large", large)):
        at = pick(best, "size", size) if size is not None else best.iloc[0:0]
        at = at[at["stack"] != "xdp_drop"] if len(at) else at
        parts = []
        keys = [k for k in ("napi", "wait_class") if k in at.columns]
        for key, g in (at.groupby([at[k].map(G.norm) for k in keys], sort=False)
                       if len(at) and keys else []):
            key = key if isinstance(key, tuple) else (key,)
            kv = dict(zip(keys, key))
            where = ", ".join(filter(None, [NAPI_TEXT.get(kv.get("napi")),
                                            G.WAIT_CLASSES.get(kv.get("wait_class"), ("",))[0]]))
            g = g.sort_values("rx_pps_median", ascending=False)
            top = g.iloc[0]
            if len(g) == 1:
                parts.append(f"{where}: only {lab(top)} ran ({sig(top['rx_pps_median'] / 1e6)}\\,Mpps)")
                continue
            made = [claim_tex(lab(top), top, lab(r), r, "rx_pps", "Mpps", 1e6)
                    for _, r in g.iloc[1:].iterrows()]
            if tag == "Small":
                n_comp += len(made)
                n_apart += sum(bool(c and c.apart) for _, c in made)
            parts.append(f"{where}: " + "; ".join(t for t, _ in made))
        M.flag(f"HaveEthClass{tag}", bool(parts))
        M.add(f"EthClassClaims{tag}", ". ".join(p[:1].upper() + p[1:] for p in parts) or "n/a",
              "per NAPI placement and wait class, the stacks against each other")
    M.add("EthClassComparisons", n_comp, "within-panel comparisons at the smallest frame size")
    M.add("EthClassApart", n_apart, "of them with intervals apart (ranked)")
    # like against like: equal wait modes, the same placement, smallest frame
    for tag, ((sa, wa), (sb, wb)) in G.WAIT_PAIRS.items():
        a, b = gs.pair(tag, "a"), gs.pair(tag, "b")
        M.flag(f"HavePair{tag}", a is not None and b is not None)
        desc = (f"{label_tex({'stack': sa, **wa}, list(wa), {}, nic)} and "
                f"{label_tex({'stack': sb, **wb}, list(wb), {}, nic)}")
        M.add(f"EthPair{tag}Names", desc)
        M.add(f"EthPair{tag}Why", WAIT_WHY[tag])
        if a is not None and b is not None:
            nv = G.norm(a.get("napi"))
            text, _ = claim_tex(label_tex({"stack": sa, **wa}, list(wa), {}, nic), a,
                                label_tex({"stack": sb, **wb}, list(wb), {}, nic), b,
                                "rx_pps", "Mpps", 1e6)
            M.add(f"EthPair{tag}", f"with {NAPI_TEXT.get(nv, tex_text(f'napi={nv}'))}, {text}")
        else:
            M.add(f"EthPair{tag}", "n/a")
    # NDR and PDR (search=ndr cells) beside the maximum receive rate under overload
    ndr = pick(ndr_groups(eth), "cores", c0)
    M.flag("HaveNdr", bool(len(ndr)))
    M.add("RxNdrGroups", len(ndr))
    parts = []
    for _, r in ndr.sort_values(["size"], kind="stable").iterrows():
        if not finite(r.get("ndr_pps_median")):
            continue
        want = {k: G.norm(r.get(k)) for k in variants if k != "search" and G.norm(r.get(k)) is not None}
        s = G.match_variants(pick(sat, "size", G.norm(r["size"]))[lambda x: x["stack"] == r["stack"]],
                             want, variants, defaults, free=())
        trials = (f", {r['ndr_trials_median']:.0f} trials" if finite(r.get("ndr_trials_median"))
                  else "")
        over = (f"; maximum receive rate under overload {sig(s['rx_pps_median'].iloc[0] / 1e6)}"
                if len(s) else "")
        pdr = (f", PDR {sig(r['pdr_pps_median'] / 1e6)}" if finite(r.get("pdr_pps_median"))
               else "")
        parts.append(f"{lab(r)} at {G.norm(r['size'])}\\,B: NDR {sig(r['ndr_pps_median'] / 1e6)}"
                     f"{pdr}{over}\\,Mpps ({plural(int(r['n_ok']), 'search')}{trials})")
    M.add("NdrText", "; ".join(parts) or "n/a")
    M.add("NdrPdrLoss", ", ".join(f"{100 * v:g}" for v in gs.facts["pdr_loss_ratios"]) or "n/a",
          "the PDR goal's loss ratio (%)")
    cost_numbers(M, gs, nic)




def cost_numbers(M: Macros, gs: SF.GroupStats, nic=None) -> None:
    """CPU cost below saturation (eth load=<Mpps>, a paced generator): the
    share of the receive core busy at each offered rate. Compared by the
    interval test only within a wait class; receivers that poll or spin
    are given as numbers (their core is busy whatever arrives)."""
    st = gs.st
    eth = ok_groups(st, "eth")
    paced = G.paced(eth)
    paced = paced[paced["receiver_cpu_frac_n"] > 0] \
        if len(paced) and "receiver_cpu_frac_n" in paced.columns else paced.iloc[0:0]
    M.flag("HaveEthLoad", bool(len(paced)))
    M.add("EthLoadLossPct", f"{100 * LOSSY:g}", "a paced group losing more than this (%) is named")
    allp = G.paced(eth)
    M.add("EthLoadReps", int(allp["n_ok"].sum()) if len(allp) else 0, "paced repetitions that ran")
    M.add("EthLoadCpuDropped", int(allp["cpu_dropped_reps"].sum())
          if len(allp) and "cpu_dropped_reps" in allp.columns else 0,
          "... of which the receive CPUs' accounting failed (no busy share)")
    if not len(paced):
        for k in ("EthLoadSize", "EthLoadTargets", "EthLoadErr", "EthLoadNapi",
                  "EthLoadWoken", "EthLoadWokenClaims", "EthLoadPolling", "EthLoadLoss"):
            M.add(k, "n/a")
        M.flag("HaveEthLoadLoss", False)
        return
    variants = [v for v in G.layer_variants(st, "eth") if v not in ("load", "napi")]
    defaults = gs.variant_defaults(variants)
    lab = lambda r: label_tex(r.to_dict(), variants, defaults, nic)   # noqa: E731
    loads = sorted({G.load_target(v) for v in paced["load"]})
    sizes = sorted({G.norm(v) for v in paced["size"]})
    napis = sorted({str(G.norm(v)) for v in paced["napi"]}) if "napi" in paced.columns else []
    M.add("EthLoadSize", " and ".join(str(x) for x in sizes), "frame sizes of the paced cells (B)")
    M.add("EthLoadTargets", words_list([f"{x:g}" for x in loads]), "paced offered rates (Mpps)")
    M.add("EthLoadNapi", " and ".join(NAPI_TEXT.get(n, tex_text(f"napi={n}")) for n in napis))
    err = paced["load_error_pct_median"].abs().max() if "load_error_pct_median" in paced else None
    M.add("EthLoadErr", sig(err) if finite(err) else "n/a",
          "largest |offered/target - 1| of the paced groups' medians (%)")
    pct = lambda r: sig(100 * r["receiver_cpu_frac_median"])   # noqa: E731

    def where(size, napi, load):
        extra = [f"{size}\\,B"] if len(sizes) > 1 else []
        extra += [NAPI_TEXT.get(napi, tex_text(f"napi={napi}"))] if len(napis) > 1 else []
        return f"at {load:g}\\,Mpps" + (f" ({', '.join(extra)})" if extra else "")
    # compared only at one frame size, NAPI placement and load, within a wait class
    keyed = paced.assign(_size=paced["size"].map(G.norm),
                         _napi=paced["napi"].map(lambda v: str(G.norm(v))),
                         _load=paced["load"].map(G.load_target),
                         _rank=paced["stack"].map(look.rank))
    keyed = keyed.sort_values(["_size", "_napi", "_load", "_rank"], kind="stable")
    woken, claims, polling, lossy = [], [], [], []
    compared = False                   # did any pair have intervals to compare?
    for point, g in keyed.groupby(["_size", "_napi", "_load"], sort=False):
        cls = g["wait_class"].map(G.norm)
        rows = [r for _, r in g[cls == "woken"].iterrows()]
        if rows:
            woken.append(f"{where(*point)} " + ", ".join(f"{lab(r)} {pct(r)}\\,\\%" for r in rows))
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                text, c = claim_tex(lab(rows[i]), rows[i], lab(rows[j]), rows[j],
                                    "receiver_cpu_frac", "\\%", 0.01,
                                    verb="keeps more of its core busy than")
                compared |= all(math.isfinite(v) for v in (*c.ci_a, *c.ci_b))
                claims.append(f"{where(*point)} {text}")
        busy = g[cls.isin(("busy", "spin", "kernel"))]
        if len(busy):
            polling.append(f"{where(*point)} " + ", ".join(
                f"{lab(r)} {pct(r)}\\,\\%" for _, r in busy.iterrows()))
    for _, r in paced.iterrows():
        off, rx = r.get("offered_pps_median"), r.get("rx_pps_median")
        if finite(off) and finite(rx) and off > 0 and (off - rx) / off > LOSSY:
            lossy.append(f"{lab(r)} at {sig(G.load_target(r['load']))}\\,Mpps "
                         f"({sig(100 * (off - rx) / off)}\\,\\% lost)")
    M.add("EthLoadWoken", "; ".join(woken) or "n/a", "busy share of the receive core, woken class")
    if claims and not compared:
        # one sentence, not one per pair, when no pair has intervals
        claims = ["no pair is compared: at no load did two of them keep three "
                  "repetitions with a busy share"]
    M.add("EthLoadWokenClaims", "; ".join(claims) or "n/a")
    M.add("EthLoadPolling", "; ".join(polling) or "n/a", "busy share: polling, spinning, in-kernel")
    M.flag("HaveEthLoadLoss", bool(lossy))
    M.add("EthLoadLoss", "; ".join(lossy) or "none")


def words_list(items: list[str]) -> str:
    """a, b and c"""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
