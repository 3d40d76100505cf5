"""Numbers from the paper's own data files (paper/data/*.csv: the sender's
turn measured on the development machine), each with its source in the
file; their groups are computed here, from those files (not the summary)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from . import groups as G
from .claims import claim_tex, label_tex, med, msg_tex, ok_groups, pick
from .macros import Macros, plural, sig, tex_text
from .numbers_tcp import tcp_step_numbers

# The development machine's measurement of the sender's turn, with its
# source in the file: the sender of 16 sends per turn (as the committed
# reference set was measured), the same with CUBIC, and turns of 1 MiB
TURNS_CSV = Path(__file__).resolve().parents[3] / "paper" / "data" / "tcp_turns.csv"
TURNS_SENDERS = {"Old": "turn16", "Cubic": "turn16_cubic", "New": "turn1MiB"}


def turns_numbers(M: Macros, path: str | Path = TURNS_CSV) -> None:
    r"""\Turns<Sender>...: 1 to 2 connections per sender build, blocking
    server first (as numbers_tcp.tcp_step_numbers), at the smallest message
    (\Turns<Sender>...) and the largest (\Turns<Sender>Big...); \ifHaveTurns
    when the file has every sender's step."""
    df = _read_data_csv(path)
    lab = lambda r: label_tex(r, [], {})  # noqa
    have = bool(len(df))
    for pre, sender in TURNS_SENDERS.items():
        sub = df[df["sender"] == sender] if len(df) else df
        st = ok_groups(G.cell_stats(sub), "tcp") if len(sub) else sub
        msgs = sorted({G.norm(v) for v in st["msg"]} - {None}) if len(st) else []
        have &= tcp_step_numbers(M, f"Turns{pre}", st, lab, sub, conns=(1, 2))
        rule = sub["turn"].dropna().astype(str).unique() if "turn" in sub.columns else []
        M.add(f"Turns{pre}Rule", tex_text(rule[0]) if len(rule) == 1 else "n/a",
              "the sender's turn of a writable connection")
        big = pick(st, "msg", msgs[-1]) if len(msgs) > 1 else st.iloc[0:0]
        tcp_step_numbers(M, f"Turns{pre}Big", big, lab, sub, conns=(1, 2))
    M.flag("HaveTurns", have)
    _data_csv_source(M, "Turns", df)


def _data_csv_source(M: Macros, pre: str, df: pd.DataFrame) -> None:
    r"""\<pre>Reps (fewest ok repetitions of a point), \<pre>Dates (the first
    day) and \<pre>Machine (CPU and kernel) of a paper/data CSV's ok rows."""
    ok = df[df["status"] == "ok"] if len(df) else df
    M.add(f"{pre}Reps", int(ok.groupby(["sender", "stack", "conns", "msg"]).size().min())
          if len(ok) else 0, "repetitions per point")
    M.add(f"{pre}Dates", tex_text(f"{ok['started_at'].min()[:10]}") if len(ok) else "n/a")
    M.add(f"{pre}Machine", tex_text(", ".join(sorted(set(ok["cpu_model"].astype(str) + ", kernel "
                                                         + ok["kernel"].astype(str)))))
          if len(ok) else "n/a")


# This machine's measurement of the turn of large messages, with its source
# in the file: turns of up to 1 MiB against one message per turn
INTERLEAVE_CSV = Path(__file__).resolve().parents[3] / "paper" / "data" / "tcp_interleave.csv"
INTERLEAVE_SENDERS = {"Old": "turn1MiB", "New": "turn1msg"}


def _read_data_csv(path) -> pd.DataFrame:
    """A paper/data CSV: its leading '#' lines are its source (a kernel
    version holds '#' too, so only the leading ones)."""
    if not Path(path).exists():
        return pd.DataFrame()
    lines = Path(path).read_text().splitlines(keepends=True)
    body = "".join(line for i, line in enumerate(lines)
                   if not (line.startswith("#") and all(x.startswith("#") for x in lines[:i])))
    return pd.read_csv(io.StringIO(body))


def interleave_numbers(M: Macros, path: str | Path = INTERLEAVE_CSV) -> None:
    r"""\Ilv...: the largest message, one server, per sender build (turns of
    up to 1 MiB, one message per turn): median goodput at each connection
    count, the RPS IPIs per MB the sender's CPU took, and the interval test
    at the most connections; the smallest message's goodput, where one
    message per turn is not used. \ifHaveIlv when both builds have every
    point."""
    df = _read_data_csv(path)
    per: dict = {}
    for pre, sender in INTERLEAVE_SENDERS.items():
        sub = df[df["sender"] == sender] if len(df) else df
        st = ok_groups(G.cell_stats(sub), "tcp") if len(sub) else sub
        per[pre] = st
    msgs = sorted({G.norm(v) for v in df["msg"]} - {None}) if len(df) else []
    big = {k: pick(st, "msg", msgs[-1]) if msgs and len(st) else st.iloc[0:0]
           for k, st in per.items()}
    conns = sorted(set.intersection(*[{G.norm(v) for v in b["conns"]} for b in big.values()])
                   - {None}) if all(len(b) for b in big.values()) else []
    have = len(conns) > 1
    M.flag("HaveIlv", have)
    _data_csv_source(M, "Ilv", df)
    if not have:
        for k in ("Msg", "SmallMsg", "Conns", "Server", "Claim", "OldRule", "NewRule"):
            M.add(f"Ilv{k}", "n/a")
        for pre in INTERLEAVE_SENDERS:
            for k in ("Gbps", "Ipi", "SmallGbps", "AckKb"):
                M.add(f"Ilv{pre}{k}", "n/a")
        return
    server = big["New"].iloc[0]
    lab = lambda r: label_tex(r, [], {})  # noqa
    M.add("IlvMsg", msg_tex(msgs[-1]))
    M.add("IlvSmallMsg", msg_tex(msgs[0]) if len(msgs) > 1 else "n/a")
    M.add("IlvConns", ", ".join(str(c) for c in conns[:-1]) + f" and {conns[-1]}")
    M.add("IlvServer", lab(server))
    at = {pre: {c: pick(b, "conns", c).iloc[0] for c in conns} for pre, b in big.items()}
    for pre, sender in INTERLEAVE_SENDERS.items():
        M.add(f"Ilv{pre}Gbps", ", ".join(sig(at[pre][c]["rx_gbps_median"]) for c in conns),
              "median goodput per connection count")
        ipi = [med(at[pre][c], "sender_rps_ipis_per_mb") for c in conns]
        M.add(f"Ilv{pre}Ipi", ", ".join("n/a" if v is None else sig(v) for v in ipi),
              "RPS IPIs per MB on the sender's CPU")
        ack = [med(at[pre][c], "sender_bytes_per_ack") for c in conns]
        M.add(f"Ilv{pre}AckKb", ", ".join("n/a" if v is None else sig(v / 1e3) for v in ack),
              "kB sent per ACK that came back")
        small = pick(per[pre], "msg", msgs[0]) if len(msgs) > 1 else per[pre].iloc[0:0]
        M.add(f"Ilv{pre}SmallGbps", ", ".join(
            sig(pick(small, "conns", c).iloc[0]["rx_gbps_median"]) if len(pick(small, "conns", c))
            else "n/a" for c in conns) if len(small) else "n/a")
        rule = df[df["sender"] == sender]["turn"].dropna().astype(str).unique()
        M.add(f"Ilv{pre}Rule", tex_text(rule[0]) if len(rule) == 1 else "n/a")
    most = conns[-1]
    M.add("IlvClaim", claim_tex(f"with {plural(most, 'connection')}, one message per turn",
                                at["New"][most], "turns of up to 1\\,MiB", at["Old"][most],
                                "rx_gbps", "Gbit/s", verb="delivers more goodput than")[0])


