"""The TCP layer's numbers: every successful group's medians, the servers
ranked only where not sender-bound, iperf3 only as a pair against our
pairs, touching every byte, the step from one connection count to the
next (with the sender's own cost), and CPU per byte at equal load."""

from __future__ import annotations

import pandas as pd

from . import groups as G
from . import statsfile as SF
from . import look
from .claims import claim_tex, finite, label_tex, med, msg_tex, ok_groups, pick, variant_part
from .macros import Macros, camel, msg_words, plural, sig, tex_text, words

# --- TCP ---------------------------------------------------------------------------

def tcp_numbers(M: Macros, gs: SF.GroupStats, nic=None) -> None:
    st = gs.st
    tcp = ok_groups(st, "tcp")
    M.flag("HaveTcp", bool(len(tcp)))
    M.flag("HaveTcpRows", bool(len(st)) and bool((st["layer"] == "tcp").any()))
    M.add("RxTcpGroups", int((st["layer"] == "tcp").sum()) if len(st) else 0)
    M.add("RxTcpStacks", ", ".join(label_tex({"stack": s}, [], {}, nic) for s in
                                   dict.fromkeys(tcp["stack"])) if len(tcp) else "none")
    M.add("RxPairLabel", tex_text(look.PAIR_LABEL))
    variants = G.layer_variants(st, "tcp") if len(st) else []
    defaults = gs.variant_defaults(variants)
    cores_vals = sorted({G.norm(v) for v in tcp["cores"]} - {None}) if len(tcp) else []
    for _, r in tcp.iterrows():
        rec = r.to_dict()
        name = camel(rec["stack"]) + variant_part(rec, variants, defaults)
        point = (f"Conns{words(rec['conns'])}Msg{msg_words(rec['msg'])}"
                 + (f"Cores{words(rec['cores'])}" if len(cores_vals) > 1
                    and rec["cores"] != cores_vals[0] else ""))
        M.add(f"{name}Gbps{point}", sig(rec["rx_gbps_median"]))
        if finite(rec.get("rx_gbps_med_lo")):
            M.add(f"{name}GbpsLo{point}", sig(rec["rx_gbps_med_lo"]))
            M.add(f"{name}GbpsHi{point}", sig(rec["rx_gbps_med_hi"]))
        if rec.get("cpu_ns_per_byte_n", 0):
            M.add(f"{name}NsPerByte{point}", sig(rec["cpu_ns_per_byte_median"]))
    lab = lambda rec: label_tex(rec, [v for v in variants if v != "touch"], defaults, nic)  # noqa
    c0 = cores_vals[0] if cores_vals else None
    sub = pick(tcp, "cores", c0) if c0 is not None else tcp
    if "load" in sub.columns:
        sub = sub[sub["load"].map(G.load_target).isna()]      # load=max: maximum goodput
    servers = sub[sub["stack"] != "iperf3"]
    M.add("RxTcpServerGroups", len(servers), "groups of our servers at full load")
    M.add("RxTcpSenderBound", int(servers.apply(G.sender_bound, axis=1).sum()) if len(servers)
          else 0, "... of which sender-bound in >= 1 repetition")
    # the point where most servers are not sender-bound (default touch
    # first, then the largest message, then the fewest connections)
    other = [v for v in variants if v not in ("touch", "cores", "load")]
    cand = G.match_variants(servers, {}, other, defaults, free=("touch",)) if len(servers) else servers
    points = {}
    for _, r in cand.iterrows():
        key = (G.norm(r["conns"]), G.norm(r["msg"]), G.norm(r.get("touch")))
        points.setdefault(key, []).append(r)
    tdef = defaults.get("touch")

    def rank_key(kv):
        (c, m, t), rs = kv
        free = sum(not G.sender_bound(r) for r in rs)
        return (-free, t != tdef and t is not None, -(m or 0), c or 0)
    ordered = sorted(points.items(), key=rank_key)
    conns = sorted({k[0] for k in points} - {None})
    msgs = sorted({k[1] for k in points} - {None})
    M.add("TcpConns", conns[0] if conns else "n/a")
    M.add("TcpConnsText", plural(conns[0], "connection") if conns else "n/a")
    M.add("TcpMsg", msg_tex(msgs[-1]) if msgs else "n/a")
    free, point = [], None
    if ordered:
        point, rs = ordered[0]
        free = sorted([r for r in rs if not G.sender_bound(r)],
                      key=lambda r: -float(r["rx_gbps_median"]))
        bound = [r for r in rs if G.sender_bound(r)]
    M.flag("HaveTcpServer", bool(len(servers)))
    M.flag("HaveTcpRank", len(free) > 1)
    M.flag("HaveTcpOneFree", len(free) == 1)
    if point:
        c, m, t = point
        M.add("TcpRankConnsText", plural(c, "connection"))
        M.add("TcpRankMsg", msg_tex(m))
        M.add("TcpRankTouch", "every byte read by the server" if t == 1 else
              "the payload not read by the server" if t == 0 else "")
        M.add("TcpRankFree", len(free))
        M.add("TcpRankBound", ", ".join(lab(r) for r in bound) or "none")
    else:
        for k in ("TcpRankConnsText", "TcpRankMsg", "TcpRankTouch", "TcpRankBound"):
            M.add(k, "n/a")
        M.add("TcpRankFree", 0)
    top = free[0] if free else None
    M.add("TcpTopServer", lab(top) if top is not None else "n/a",
          "highest median among the servers not sender-bound (not a ranking)")
    M.add("TcpTopGbps", sig(top["rx_gbps_median"]) if top is not None else "n/a")
    tested = [claim_tex(lab(top), top, lab(r), r, "rx_gbps", "Gbit/s",
                        verb="receives more than") for r in free[1:]]
    M.add("TcpClaims", "; ".join(t for t, _ in tested) or "n/a",
          "servers not sender-bound, by the interval test")
    M.add("TcpApartCount", sum(c.apart for _, c in tested),
          "other servers the top one was told apart from (interval test)")
    M.add("TcpOtherCount", len(tested))
    # pairs: ours (rxb-tcp-send + a server) against iperf3's (its client + server)
    M.flag("HaveIperf", bool((sub["stack"] == "iperf3").any()) if len(sub) else False)
    pair_text, has_pair = "n/a", False
    if conns and msgs:
        pc, pm = (point[0], point[1]) if point else (conns[0], msgs[-1])
        at = pick(pick(sub, "conns", pc), "msg", pm)
        ref = at[at["stack"] == "iperf3"]
        ours = G.match_variants(at[at["stack"] != "iperf3"], {}, other, defaults, free=())
        if "touch" in ours.columns:
            ours = ours[G.among(ours["touch"], [None, tdef])]
        ours = ours.sort_values("rx_gbps_median", ascending=False)
        if len(ref) and len(ours):
            has_pair = True
            o = ours.iloc[0]
            pair_text = (f"with {plural(pc, 'connection')} and {msg_tex(pm)} messages, "
                         + claim_tex(f"the pair \\texttt{{rxb-tcp-send}} + {lab(o)}", o,
                                     tex_text(look.PAIR_LABEL), ref.iloc[0], "rx_gbps", "Gbit/s",
                                     verb="delivers more goodput than")[0])
    M.flag("HaveTcpPair", has_pair)
    M.add("TcpPairClaim", pair_text, "pair against pair, never a server against a pair")
    # touching every byte: the top server, touched vs not, neither sender-bound
    touch_text = "n/a"
    if top is not None and "touch" in variants and point:
        c, m, t = point
        other_t = [r for r in points.get((c, m, 1 if t == 0 else 0), [])
                   if r["stack"] == top["stack"] and not G.sender_bound(r)]
        if other_t:
            a, b = (other_t[0], top) if t == 0 else (top, other_t[0])
            touch_text = claim_tex(f"{lab(top)} reading every byte", a, "not reading them", b,
                                   "rx_gbps", "Gbit/s", verb="receives more than")[0]
    M.flag("HaveTouch", touch_text != "n/a")
    M.add("TouchClaim", touch_text)
    step = G.match_variants(servers, {}, other, defaults, free=()) if len(servers) else servers
    if "touch" in step.columns:
        step = step[G.among(step["touch"], [None, tdef])]
    tcp_step_numbers(M, "TcpStep", step, lambda r: lab(r), st)
    tcp_load_numbers(M, gs, variants, defaults, nic)
    wait_nr_numbers(M, gs)


# the sender's side of a step, from the summary's sender_* columns
# (analysis.sender_path): macro suffix -> (column, digits)
STEP_SENDER = {"Ns": "sender_proc_ns_per_byte", "Pkt": "sender_bytes_per_packet",
               "Ack": "sender_bytes_per_ack", "Hrt": "sender_hrtimer_per_mb",
               "Turn": "sender_sends_per_turn"}


def tcp_step_numbers(M: Macros, pre: str, groups: pd.DataFrame, lab, rows: pd.DataFrame,
                      conns: tuple | None = None) -> bool:
    r"""From the fewest connections to the next (or `conns`), at the smallest
    message: each server's goodput ratio, the interval test for the first
    server, and for it what the sender spent per byte and per veth packet,
    where the cells measured it (sender_*: ratios per byte, not rates, hold
    on a shared machine). rows: rows or groups with a congestion_control
    column (the groups' hold their values joined by ", ").
    Macros \<pre>..., flags Have<pre> and Have<pre>Sender."""
    have = False
    both = pd.DataFrame()
    if len(groups):
        msgs = sorted({G.norm(v) for v in groups["msg"]} - {None})
        at = pick(groups, "msg", msgs[0]) if msgs else groups.iloc[0:0]
        cs = sorted({G.norm(v) for v in at["conns"]} - {None})
        ca, cb = conns or (tuple(cs[:2]) if len(cs) > 1 else (None, None))
        a, b = pick(at, "conns", ca), pick(at, "conns", cb)
        both = a[a["stack"].isin(set(b["stack"]))] if len(a) and len(b) else a.iloc[0:0]
        have = bool(len(both))
    M.flag(f"Have{pre}", have)
    M.flag(f"Have{pre}Sender", False)
    if not have:
        for k in ("Msg", "ConnsA", "ConnsB", "Ratios", "Claim", "NsClaim", "Cc"):
            M.add(f"{pre}{k}", "n/a")
        for k in STEP_SENDER:
            M.add(f"{pre}{k}A", "n/a")
            M.add(f"{pre}{k}B", "n/a")
        M.add(f"{pre}UsPktA", "n/a")
        M.add(f"{pre}UsPktB", "n/a")
        return False
    M.add(f"{pre}Msg", msg_tex(msgs[0]))
    M.add(f"{pre}ConnsA", plural(ca, "connection"))
    M.add(f"{pre}ConnsB", plural(cb, "connection"))
    ratios = []
    for _, ra in both.iterrows():
        rb = b[b["stack"] == ra["stack"]].iloc[0]
        ratios.append(f"{lab(ra)} {sig(rb['rx_gbps_median'] / ra['rx_gbps_median'], 2)}")
    M.add(f"{pre}Ratios", ", ".join(ratios), "median goodput at ConnsB over ConnsA, per server")
    ra = both.iloc[0]
    rb = b[b["stack"] == ra["stack"]].iloc[0]
    M.add(f"{pre}Claim", claim_tex(f"{lab(ra)} with {plural(ca, 'connection')}", ra,
                                   f"with {plural(cb, 'connection')}", rb, "rx_gbps", "Gbit/s",
                                   verb="receives more than")[0])
    ns = STEP_SENDER["Ns"]
    M.add(f"{pre}NsClaim", claim_tex(f"with {plural(cb, 'connection')}", rb,
                                     f"with {plural(ca, 'connection')}", ra, ns, "ns/B",
                                     verb="cost the sender more of its own CPU per byte than")[0]
          if med(ra, ns) is not None and med(rb, ns) is not None else "n/a",
          "the interval test on the sender's own CPU per byte")
    vals = {(k, x): med(r, col) for k, col in STEP_SENDER.items()
            for x, r in (("A", ra), ("B", rb))}
    for (k, x), v in vals.items():
        text = "n/a" if v is None else f"{v:.0f}" if k == "Turn" and v >= 10 else sig(v)
        M.add(f"{pre}{k}{x}", text)
    for x in "AB":
        ns, pkt = vals[("Ns", x)], vals[("Pkt", x)]
        M.add(f"{pre}UsPkt{x}", sig(ns * pkt / 1e3) if ns and pkt else "n/a",
              "the sender's own CPU per veth packet (us): median ns/B x median B/packet")
    r = rows[(rows["stack"] == ra["stack"]) & (rows["msg"].map(G.norm) == msgs[0])]
    cc = r["congestion_control"].dropna() if "congestion_control" in r.columns else []
    cc = {c for v in cc.astype(str) for c in v.split(", ")} if len(cc) else set()
    M.add(f"{pre}Cc", tex_text(", ".join(sorted(cc))) if cc else "n/a",
          "the sender's congestion control")
    M.flag(f"Have{pre}Sender", all(v is not None for v in vals.values()))
    return True


def tcp_load_numbers(M: Macros, gs: SF.GroupStats, variants, defaults, nic) -> None:
    """CPU per byte at equal load: servers (and iperf3's pair) at each
    goodput target the sender reached, by the interval test."""
    st = gs.subset("load_reached")
    ok = st[st["status"] == "ok"] if len(st) else st
    ok = ok[ok["cpu_ns_per_byte_n"] > 0] if len(ok) and "cpu_ns_per_byte_n" in ok.columns \
        else ok.iloc[0:0]
    load = gs.facts["load"]
    M.add("RxTcpLoadCells", load["cells"], "TCP cells of a rate-limited sender")
    M.add("RxTcpLoadReached", load["reached"],
          "... of which reached their target")
    M.flag("HaveTcpLoad", bool(len(ok)))
    lab = lambda rec: label_tex(rec, [v for v in variants if v not in ("touch", "load")],  # noqa
                                defaults, nic)
    parts = []
    if len(ok):
        cores = sorted({G.norm(v) for v in ok["cores"]} - {None})
        ok = pick(ok, "cores", cores[0]) if cores else ok
        if "touch" in ok.columns:
            ok = ok[G.among(ok["touch"], [None, defaults.get("touch")])]
        for (load, conns, msg), g in ok.groupby([ok["load"].map(G.load_target), "conns", "msg"],
                                                sort=True):
            # servers only: iperf3's CPU is its server's fed by its own client (a
            # pair), and no sentence ranks a sender-bound group
            g = g[(g["stack"] != "iperf3") & ~g.apply(G.sender_bound, axis=1)]
            g = g.sort_values("cpu_ns_per_byte_median")
            if len(g) < 2:
                continue
            head = (f"at {load:g}\\,Gbit/s with {plural(int(conns), 'connection')} and "
                    f"{msg_tex(int(msg))} messages, ")
            cl = [claim_tex(lab(g.iloc[-1]), g.iloc[-1], lab(g.iloc[0]), g.iloc[0],
                            "cpu_ns_per_byte", "ns/B",
                            verb="spends more CPU time per byte than")[0]]
            e = g[g["stack"] == "epoll"]
            u = g[g["stack"] == "uring_opt"]
            if len(e) and len(u) and {"epoll", "uring_opt"} != {g.iloc[0]["stack"],
                                                               g.iloc[-1]["stack"]}:
                cl.append(claim_tex(lab(u.iloc[0]), u.iloc[0], lab(e.iloc[0]), e.iloc[0],
                                    "cpu_ns_per_byte", "ns/B",
                                    verb="spends more CPU time per byte than")[0])
            parts.append(head + "; ".join(cl))
    M.add("TcpLoadClaims", "; ".join(parts) or "n/a")
    M.flag("HaveTcpLoadClaims", bool(parts))



def wait_nr_numbers(M: Macros, gs: SF.GroupStats) -> None:
    """uring_opt's batched wait (wait_nr > 1: the kernel wakes the loop
    once that many completions are pending, bounded in time) against
    wait_nr=1: CPU per byte at equal load (the cells that reached their
    target) and goodput with the sender at full speed, by the interval test,
    at each (load, conns, msg) where both ran and neither was sender-bound
    (the price, a wake-up up to its time bound later, is not measured)."""
    parts = []
    for subset, metric, unit, verb in (
            ("load_reached", "cpu_ns_per_byte", "ns/B", "spends more CPU time per byte than"),
            ("all", "rx_gbps", "Gbit/s", None)):
        st = gs.subset(subset)
        if not len(st) or "wait_nr" not in st.columns or f"{metric}_n" not in st.columns:
            continue
        u = st[(st["stack"] == "uring_opt") & (st["status"] == "ok") & (st[f"{metric}_n"] > 0)]
        if "touch" in u.columns:
            u = u[G.among(u["touch"], [None, gs.defaults.get("touch")])]
        loads = u["load"].map(G.load_target) if "load" in u.columns else pd.Series(None, index=u.index)
        u = u[loads.notna()] if subset == "load_reached" else u[loads.isna()]
        for (conns, msg), g in u.groupby(["conns", "msg"], sort=True):
            by_load = (g.groupby(g["load"].map(lambda v: str(G.norm(v))), sort=True)
                       if "load" in g.columns else [("max", g)])
            for load, h in by_load:
                ws = {int(G.norm(r["wait_nr"])): r for _, r in h.iterrows()
                      if G.norm(r.get("wait_nr")) is not None and not G.sender_bound(r)}
                if 1 not in ws or len(ws) < 2:
                    continue
                hi = max(ws)
                where = f"at {load}\\,Gbit/s" if subset == "load_reached" else "at full speed"
                head = f"{where} with {plural(int(conns), 'connection')}, "
                kw = {"verb": verb} if verb else {}
                text = claim_tex(f"wait\\_nr={hi}", ws[hi], "wait\\_nr=1", ws[1], metric, unit, **kw)[0]
                parts.append(head + text)
    M.flag("HaveWaitNr", bool(parts))
    M.add("WaitNrClaims", "; ".join(parts) or "n/a",
          "uring_opt's batched wait against wait_nr=1, by the interval test")
