"""numbers.tex and the paper PDF (rxbench/paper.py, rxbench/present/): the macros equal the CSV's
values, the text quotes no hand-typed number, and the paper builds from an
Ethernet-only, a TCP-only and a mixed summary."""

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import generated
import synthetic
from rxbench import paper
from rxbench.present import claims, numbers_data
from rxbench.present import groups as G
from rxbench.present import statsfile as SF
from rxbench.present import macros as MX
from rxbench.present.numbers import write_numbers

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "paper"
NEWCOMMAND = re.compile(r"^\\newcommand\{\\([A-Za-z]+)\}\{(.*)\}", re.M)
NEWIF = re.compile(r"^\\newif\\if([A-Za-z]+)\\\1(true|false)", re.M)


def macros(path) -> tuple[dict, dict]:
    text = Path(path).read_text()
    return (dict(NEWCOMMAND.findall(text)),
            {k: v == "true" for k, v in NEWIF.findall(text)})


@pytest.fixture
def both(tmp_path):
    rows = synthetic.eth_rows(sizes=(64, 512, 1518)) + synthetic.tcp_rows(conns=(1, 8),
                                                                         msgs=(1024, 65536))
    return synthetic.write(tmp_path / "summary.csv", rows)


def test_macro_names():
    assert MX.words(64) == "SixtyFour"
    assert MX.words(1518) == "OneThousandFiveHundredEighteen"
    assert MX.camel("xdp_drop") == "XdpDrop" and MX.camel("iperf3") == "IperfThree"
    assert MX.msg_words(65536) == "SixtyFourKiB"
    assert MX.sig(1.78807) == "1.79" and MX.sig(0.48123) == "0.481"
    assert MX.sig(2087.4) == "2087"


def test_numbers_match_the_csv(both, tmp_path):
    out = tmp_path / "numbers.tex"
    _write_numbers(both, out)
    defs, flags = macros(out)
    df = pd.read_csv(both)
    ok = df[df.status == "ok"]

    def mean(sel, col, scale=1.0):       # the macros quote medians
        return MX.sig(ok[sel][col].median() / scale)

    eth = ok.layer == "eth"
    xdp64 = eth & (ok["stack"] == "xdp_drop") & (ok["size"] == 64) & (ok.napi == "receiver")
    assert defs["XdpDropMppsSixtyFour"] == mean(xdp64, "rx_pps", 1e6)
    assert defs["CeilingMppsSmall"] == defs["XdpDropMppsSixtyFour"]
    snd = eth & (ok["stack"] == "af_xdp") & (ok["size"] == 1518) & (ok.napi == "sender")
    assert defs["AfXdpNapiSenderMppsOneThousandFiveHundredEighteen"] == mean(snd, "rx_pps", 1e6)
    assert defs["AfPacketNsPerPktSixtyFour"] == mean(
        eth & (ok["stack"] == "af_packet") & (ok["size"] == 64) & (ok.napi == "receiver"),
        "cpu_ns_per_pkt")
    tcp = ((ok.layer == "tcp") & (ok["stack"] == "epoll") & (ok.conns == 1)
           & (ok.msg == 65536) & (ok.touch == 0))
    assert defs["EpollGbpsConnsOneMsgSixtyFourKiB"] == mean(tcp, "rx_gbps")
    # the comparisons: which stack is best follows the data
    users = {s: ok[eth & (ok["stack"] == s) & (ok["size"] == 64) & (ok.napi == "receiver")]
             .rx_pps.mean() for s in ("af_xdp", "af_packet")}
    best = max(users, key=users.get).replace("_", r"\_")
    # within one placement and wait class, the higher median is named first
    assert (r"NAPI on the receiver's core, woken by the kernel: \texttt{" + best + "}"
            in defs["EthClassClaimsSmall"])
    assert defs["RxCells"] == str(len(df))
    assert defs["RxCellsUnsupported"] == str(int((df.status == "unsupported").sum()))
    assert defs["RxGenDir"] == "generated/local"
    assert flags["HaveEth"] and flags["HaveTcp"] and flags["HaveTouch"] and flags["HaveIperf"]
    assert flags["FigTcpConns"] and not flags["FigEthCores"]
    assert flags["HaveNotOk"]                                  # uring_zcrx is unsupported


def test_numbers_without_tcp_rows(tmp_path):
    csv = synthetic.write(tmp_path / "eth.csv", synthetic.eth_rows())
    defs, flags = macros(_numbers(csv, tmp_path))
    assert not flags["HaveTcp"] and not flags["HaveTcpRows"] and defs["TcpTopServer"] == "n/a"
    assert flags["HaveEth"] and flags["HaveEthClassSmall"] and "napi=sender" in defs["EthClassClaimsSmall"]


def _write_numbers(csv, out):
    """numbers.tex of a summary, through its group statistics (as the rules)."""
    stats = Path(out).parent / Path(csv).stem / "stats.csv"
    SF.write(csv, stats)
    write_numbers(stats, out)


def _numbers(csv, tmp_path):
    out = tmp_path / "numbers.tex"
    _write_numbers(csv, out)
    return out


# tokens with digits the text may contain: names, not measurements
ALLOWED = re.compile(r"RFC~2544|Debian~12|Grid'5000|iperf3|TPACKET\\_V3|IPv4|n-1")


def test_the_text_has_no_hand_typed_numbers():
    tex = (PAPER / "paper.tex").read_text()
    body = tex.split(r"\begin{document}", 1)[1]
    body = re.sub(r"(?<!\\)%.*", "", body)                                 # comments
    body = re.sub(r"\\begin\{verbatim\}.*?\\end\{verbatim\}", "", body, flags=re.S)
    body = re.sub(r"\\(path|ref|label|cite|input|includegraphics|fig|texttt)\{[^}]*\}", "", body)
    body = re.sub(r"\[[^\]]*\]", "", body)                                  # options
    body = ALLOWED.sub("", body)
    numbers = re.findall(r".{0,30}\d.{0,30}", body)
    assert not numbers, f"hand-typed numbers in paper.tex: {numbers}"


def test_every_macro_the_text_uses_is_generated(both, tmp_path):
    defs, flags = macros(_numbers(both, tmp_path))
    tex = (PAPER / "paper.tex").read_text()
    own = set(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}", tex))
    used = set(re.findall(r"\\((?:Rx|Eth|Tcp|Best|Worst|Ceiling|Napi|Cheapest|Dearest|Iperf"
                          r"|Touch|Top|Ndr|Seed|Ours|Turns)[A-Za-z]*)", tex))
    missing = {m for m in used - own - set(defs) if not m.startswith(("if",))}
    assert not missing, f"paper.tex uses macros numbers.tex does not define: {missing}"
    ifs = set(re.findall(r"\\if([A-Z][A-Za-z]+)", tex))
    assert ifs <= set(flags), f"undefined \\if switches: {ifs - set(flags)}"


def _summaries(tmp_path):
    eth = synthetic.eth_rows(sizes=(64, 1518))
    tcp = synthetic.tcp_rows(conns=(1, 8), msgs=(1024, 65536))
    bad = [dict(r, status="unsupported", reason="no XDP support in this kernel", rx_pps="",
                offered_pps="", rx_gbps="") for r in synthetic.eth_rows(sizes=(64,))]
    no_ceiling = synthetic.eth_rows(stacks=("af_xdp", "af_packet"), sizes=(64,), napi=("sender",))
    # every family and table, from guests under TCG (one build for both)
    full = [dict(r, platform="vm", accel="tcg") for r in
            [dict(r, search="saturation") for r in eth] + synthetic.ndr_rows()
            + [dict(r, load="max") for r in tcp] + synthetic.load_rows()]
    return {"eth_only": eth, "tcp_only": tcp, "mixed": eth + tcp, "all_unsupported": bad,
            "no_xdp_drop": no_ceiling, "ndr_load_tcg": full}


@pytest.mark.skipif(not shutil.which("latexmk"), reason="latexmk is not installed "
                    "(Debian: latexmk texlive-latex-base texlive-latex-recommended, listed "
                    "in workflow/envs/debian-packages.txt)")
@pytest.mark.parametrize("kind", ["eth_only", "tcp_only", "mixed", "all_unsupported",
                                  "no_xdp_drop", "ndr_load_tcg"])
def test_paper_builds(kind, tmp_path):
    # as `snakemake -d ELSEWHERE` does: generated files and PDF out of the checkout
    d = tmp_path / "paper"
    csv = synthetic.write(tmp_path / "summary.csv", _summaries(tmp_path)[kind])
    generated.build(csv, d)
    paper.build_pdf(d, source_dir=PAPER)
    pdf = d / "paper.pdf"
    assert pdf.read_bytes()[:4] == b"%PDF"
    log = (d / "build" / "paper.log").read_text(errors="replace")
    assert str(PAPER / "generated") not in log, "read generated files of the checkout"
    assert not re.search(r"(Reference|Citation) `[^']*' on page \d+ undefined", log)
    overfull = [float(x) for x in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide", log)]
    assert max(overfull, default=0) < 1.0, f"something is wider than the page: {overfull}"
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                              text=True).stdout
        # a quoted number the data lacks would print as "n/a" in the text
        prose = text.split("References")[0]
        assert not re.search(r"n/a\s*(Mpps|Gbit|%|ns|times|bytes)", prose), prose
        assert "??" not in text
        flat = re.sub(r"\s+", " ", text)
        if kind == "ndr_load_tcg":
            # every figure caption says what TCG numbers are worth
            caps = re.findall(r"Figure \d+: (.*?)(?=Figure \d+:|$)", flat)   # provenance is in the footers
            assert len(caps) >= 6 and all("say nothing about the stacks" in c for c in caps), caps
            assert "NDR" in flat and "at equal load" in flat and "This data set has no NDR" not in flat


# --- the gating logic: the text claims only what the interval test supports -------

def _eth_two(tmp_path, a_vals, b_vals, name="g.csv"):
    """af_xdp and af_packet at 64 B, one NAPI placement, given rates."""
    rows = []
    for stack, vals in (("af_xdp", a_vals), ("af_packet", b_vals)):
        for rep, v in enumerate(vals, 1):
            r = synthetic._base("eth", stack, rep,
                                f"results/local/eth/{stack}/cores=1/size=64/rep={rep}.json")
            r.update(cores=1, size=64, napi="receiver", rx_pps=v, offered_pps=2e6,
                     rx_gbps=v * 512 / 1e9, generator_bound=False)
            rows.append(r)
    return synthetic.write(tmp_path / name, rows)


def test_claim_tex_says_only_what_the_intervals_support():
    a = {"rx_pps_median": 2e6, "rx_pps_med_lo": 1.9e6, "rx_pps_med_hi": 2.1e6}
    b = {"rx_pps_median": 1e6, "rx_pps_med_lo": 0.9e6, "rx_pps_med_hi": 1.1e6}
    c = {"rx_pps_median": 1.95e6, "rx_pps_med_lo": 1.0e6, "rx_pps_med_hi": 2.5e6}
    n1 = {"rx_pps_median": 1.0e6, "rx_pps_med_lo": float("nan"), "rx_pps_med_hi": float("nan")}
    text, cmp = claims.claim_tex("A", a, "B", b, "rx_pps", "Mpps", 1e6)
    assert cmp.apart and text.startswith("A receives more than B (medians 2.00 vs 1.00")
    # the order follows the data, not the argument order
    assert claims.claim_tex("B", b, "A", a, "rx_pps", "Mpps", 1e6)[0].startswith("A receives more than B")
    text, cmp = claims.claim_tex("A", a, "C", c, "rx_pps", "Mpps", 1e6)
    assert not cmp.apart and "not told apart" in text and "more than" not in text
    text, _ = claims.claim_tex("A", a, "D", n1, "rx_pps", "Mpps", 1e6)
    assert "not compared" in text and "more than" not in text


def test_a_claim_is_withheld_when_the_intervals_overlap(tmp_path):
    overlap = _eth_two(tmp_path, [1.5e6, 1.9e6, 1.6e6, 2.0e6, 1.7e6],
                       [1.4e6, 1.55e6, 1.8e6, 1.45e6, 1.6e6])
    defs, _ = macros(_numbers(overlap, tmp_path))
    assert "not told apart" in defs["EthClassClaimsSmall"]
    assert "more than" not in defs["EthClassClaimsSmall"]
    assert "not told apart" in defs["EthPairSleep"]
    apart = _eth_two(tmp_path, [2.0e6, 2.01e6, 1.99e6, 2.02e6, 2.0e6],
                     [1.0e6, 1.01e6, 0.99e6, 1.0e6, 1.02e6], "apart.csv")
    out = tmp_path / "n2.tex"
    _write_numbers(apart, out)
    defs, _ = macros(out)
    assert (r"\texttt{af\_xdp} receives more than \texttt{af\_packet}"
            in defs["EthClassClaimsSmall"])
    # with fewer than three repetitions nothing is compared
    few = _eth_two(tmp_path, [2.0e6, 2.1e6], [1.0e6, 1.1e6], "few.csv")
    out = tmp_path / "n3.tex"
    _write_numbers(few, out)
    assert "not compared" in macros(out)[0]["EthClassClaimsSmall"]


def _tcp(tmp_path, bound=(), name="t.csv"):
    """Our servers at 1 and 8 connections, 64 KiB, five reps; uring_opt the
    fastest; the (stack, conns) pairs in `bound` sender-bound."""
    rows = []
    for s_i, stack in enumerate(("blocking", "epoll", "uring_opt", "iperf3")):
        for c in (1, 8):
            for rep in range(1, 6):
                r = synthetic._base("tcp", stack, rep,
                                    f"results/local/tcp/{stack}/conns={c}/msg=65536/rep={rep}.json")
                g = (10 + 3 * s_i) * (1 + 0.001 * rep)
                r.update(conns=c, msg=65536, touch=0 if stack != "iperf3" else "", rx_gbps=g,
                         cpu_ns_per_byte=0.5, generator_bound=(stack, c) in bound)
                rows.append(r)
    return synthetic.write(tmp_path / name, rows)


def test_a_sender_bound_cell_is_never_ranked(tmp_path):
    free = _tcp(tmp_path)
    defs, flags = macros(_numbers(free, tmp_path))
    assert flags["HaveTcpRank"] and defs["TcpTopServer"] == r"\texttt{uring\_opt}"
    assert r"\texttt{uring\_opt} receives more than \texttt{blocking}" in defs["TcpClaims"]
    # uring_opt sender-bound everywhere: it is in no ranking sentence
    csv = _tcp(tmp_path, bound={("uring_opt", 1), ("uring_opt", 8)}, name="b.csv")
    out = tmp_path / "b.tex"
    _write_numbers(csv, out)
    defs, flags = macros(out)
    assert "uring" not in defs["TcpClaims"] and "uring" not in defs["TcpTopServer"]
    assert r"\texttt{uring\_opt}" in defs["TcpRankBound"]
    assert defs["TcpTopServer"] == r"\texttt{epoll}"
    # the point is chosen where most servers are free: 8 connections here
    csv = _tcp(tmp_path, bound={("uring_opt", 1), ("epoll", 1)}, name="c.csv")
    out = tmp_path / "c.tex"
    _write_numbers(csv, out)
    defs, flags = macros(out)
    assert defs["TcpRankConnsText"] == "8 connections" and r"uring\_opt" in defs["TcpTopServer"]
    # every server sender-bound: nothing ranked
    every = {(s, c) for s in ("blocking", "epoll", "uring_opt") for c in (1, 8)}
    csv = _tcp(tmp_path, bound=every, name="d.csv")
    out = tmp_path / "d.tex"
    _write_numbers(csv, out)
    defs, flags = macros(out)
    assert not flags["HaveTcpRank"] and defs["TcpClaims"] == "n/a"


def test_iperf3_is_compared_as_a_pair_only(tmp_path):
    defs, flags = macros(_numbers(_tcp(tmp_path), tmp_path))
    assert flags["HaveTcpPair"]
    assert defs["TcpPairClaim"].count("iperf3 (sender+server pair)") == 1
    assert r"the pair \texttt{rxb-tcp-send} + " in defs["TcpPairClaim"]
    assert "iperf" not in defs["TcpClaims"] and "PctOfIperf" not in "".join(defs)
    tex = (PAPER / "paper.tex").read_text()
    assert "of the reference" not in tex and "PctOfIperf" not in tex


def test_cpu_per_byte_at_equal_load_from_cells_that_reached_it(tmp_path):
    rows = synthetic.load_rows(ns_per_byte={"epoll": 1.0, "uring_opt": 0.6, "iperf3": 0.1},
                               miss=(("uring_opt", 3),))
    defs, flags = macros(_numbers(synthetic.write(tmp_path / "l.csv", rows), tmp_path))
    assert flags["HaveTcpLoad"] and flags["HaveTcpLoadClaims"]
    claims = defs["TcpLoadClaims"]
    assert "at 1\\,Gbit/s" in claims and "at 3\\,Gbit/s" not in claims
    assert (r"\texttt{epoll} spends more CPU time per byte than \texttt{uring\_opt}"
            in claims)
    # iperf3 is a pair: never ranked against a server, however cheap its server
    assert "iperf3" not in claims
    # uring_opt missed its 3 Gbit/s target: not shown, so at 3 Gbit/s only epoll
    # is left and nothing is compared
    assert defs["RxTcpLoadReached"] == str(len(rows) - 5)


def _step_rows(sender: bool, gbps=((1, 1.4), (2, 0.6))) -> list[dict]:
    """blocking and epoll at 1 and 2 connections, 1 KiB, three reps; the
    sender's per-byte columns when `sender`."""
    rows = []
    for stack in ("blocking", "epoll"):
        for c, g in gbps:
            for rep in range(1, 4):
                r = synthetic._base("tcp", stack, rep,
                                    f"results/local/tcp/{stack}/conns={c}/msg=1024/rep={rep}.json")
                r.update(conns=c, msg=1024, touch=0, rx_gbps=g * (1 + 0.01 * rep),
                         cpu_ns_per_byte=1.0, generator_bound=True)
                if sender:
                    r.update(sender_proc_ns_per_byte=4.0 * c + rep * 0.01,
                             sender_bytes_per_packet=8000.0 / c, sender_bytes_per_ack=16000 / c,
                             sender_hrtimer_per_mb=85.0 * c, sender_sends_per_turn=16,
                             congestion_control="bbr")
                rows.append(r)
    return rows


def test_one_to_two_connections_with_the_sender_s_side_per_byte(tmp_path):
    csv = synthetic.write(tmp_path / "s.csv", _step_rows(True))
    defs, flags = macros(_numbers(csv, tmp_path))
    assert flags["HaveTcpStep"] and flags["HaveTcpStepSender"]
    assert defs["TcpStepConnsA"] == "1 connection" and defs["TcpStepConnsB"] == "2 connections"
    assert defs["TcpStepMsg"] == r"1\,KiB"
    # medians: 0.612 / 1.428 per server; the interval test on blocking's two groups
    assert defs["TcpStepRatios"] == r"\texttt{blocking} 0.43, \texttt{epoll} 0.43"
    assert defs["TcpStepClaim"].startswith(r"\texttt{blocking} with 1 connection receives more "
                                           "than with 2 connections (medians 1.43 vs 0.612")
    assert (defs["TcpStepNsA"], defs["TcpStepNsB"]) == ("4.02", "8.02")
    assert defs["TcpStepNsClaim"].startswith("with 2 connections cost the sender more of its "
                                             "own CPU per byte than with 1 connection (medians "
                                             "8.02 vs 4.02")
    assert (defs["TcpStepPktA"], defs["TcpStepPktB"]) == ("8000", "4000")
    # per packet: median ns/B x median B/packet
    assert (defs["TcpStepUsPktA"], defs["TcpStepUsPktB"]) == ("32.2", "32.1")
    assert defs["TcpStepHrtB"] == "170" and defs["TcpStepTurnA"] == "16"
    assert defs["TcpStepCc"] == "bbr"


def test_one_to_two_connections_from_cells_without_the_sender_s_counters(tmp_path):
    # the committed reference set's cells have no sender_* columns: the
    # goodput step only; no second connection count: no step at all
    defs, flags = macros(_numbers(synthetic.write(tmp_path / "s.csv", _step_rows(False)),
                                  tmp_path))
    assert flags["HaveTcpStep"] and not flags["HaveTcpStepSender"]
    assert defs["TcpStepNsA"] == "n/a" and defs["TcpStepCc"] == "n/a"
    one = [r for r in _step_rows(False) if r["conns"] == 1]
    defs, flags = macros(_numbers(synthetic.write(tmp_path / "o.csv", one), tmp_path))
    assert not flags["HaveTcpStep"] and defs["TcpStepRatios"] == "n/a"


def test_the_turns_measurement_needs_every_sender_s_step(tmp_path):
    rows = []
    for sender, g2 in (("turn16", 0.6), ("turn16_cubic", 1.3), ("turn1MiB", 1.35)):
        rows += [dict(r, sender=sender, turn="1 MiB" if "MiB" in sender else "16 sends")
                 for r in _step_rows(True, ((1, 1.4), (2, g2)))]
    path = synthetic.write(tmp_path / "turns.csv", rows)
    # the source on top; the rows' kernel versions hold '#' ("#1 SMP")
    path.write_text("# how it was measured\n# by whom\n" + path.read_text())
    M = MX.Macros()
    numbers_data.turns_numbers(M, path)
    assert M.flags["HaveTurns"] and M.defs["TurnsReps"] == "3"
    assert "receives more than" in M.defs["TurnsOldClaim"]
    assert M.defs["TurnsNewRatios"] == r"\texttt{blocking} 0.96, \texttt{epoll} 0.96"
    assert not M.flags["HaveTurnsOldBig"]           # one message size only
    assert M.defs["TurnsOldRule"] == "16 sends" and M.defs["TurnsNewRule"] == "1 MiB"
    # without the CUBIC control the paragraph is left out
    path = synthetic.write(tmp_path / "t2.csv", [r for r in rows if r["sender"] != "turn16_cubic"])
    M = MX.Macros()
    numbers_data.turns_numbers(M, path)
    assert not M.flags["HaveTurns"] and M.defs["TurnsCubicClaim"] == "n/a"
    M = MX.Macros()
    numbers_data.turns_numbers(M, tmp_path / "missing.csv")
    assert not M.flags["HaveTurns"] and M.defs["TurnsReps"] == "0"


def _interleave_rows(sender: str, gbps: dict, ipi: float) -> list[dict]:
    rows = []
    for msg in (1024, 65536):
        for c, g in gbps.items():
            for rep in range(1, 4):
                r = synthetic._base("tcp", "epoll", rep,
                                    f"results/local/tcp/epoll/conns={c}/msg={msg}/rep={rep}.json")
                r.update(sender=sender, turn="up to 1 MiB per turn" if sender == "turn1MiB"
                         else "one message per turn from 16 KiB messages",
                         conns=c, msg=msg, touch=0, cpu_ns_per_byte=0.4,
                         rx_gbps=(g if msg == 65536 else 5.0) * (1 + 0.01 * rep),
                         sender_rps_ipis_per_mb=ipi * (1 + 0.01 * rep))
                rows.append(r)
    return rows


def test_the_interleave_measurement_compares_the_two_turns_of_large_messages(tmp_path):
    rows = (_interleave_rows("turn1MiB", {1: 10.0, 8: 10.5}, 13.7)
            + _interleave_rows("turn1msg", {1: 10.0, 8: 29.0}, 3.6))
    path = synthetic.write(tmp_path / "ilv.csv", rows)
    path.write_text("# how it was measured\n" + path.read_text())
    M = MX.Macros()
    numbers_data.interleave_numbers(M, path)
    assert M.flags["HaveIlv"] and M.defs["IlvReps"] == "3"
    assert M.defs["IlvMsg"] == r"64\,KiB" and M.defs["IlvSmallMsg"] == r"1\,KiB"
    assert M.defs["IlvConns"] == "1 and 8" and M.defs["IlvServer"] == r"\texttt{epoll}"
    assert M.defs["IlvOldGbps"] == "10.2, 10.7" and M.defs["IlvNewGbps"] == "10.2, 29.6"
    assert M.defs["IlvOldIpi"] == "14.0, 14.0" and M.defs["IlvNewIpi"].split(", ")[-1] == "3.67"
    assert M.defs["IlvClaim"].startswith("with 8 connections, one message per turn delivers "
                                         "more goodput than turns of up to 1\\,MiB")
    assert M.defs["IlvOldRule"] == "up to 1 MiB per turn"
    assert M.defs["IlvNewSmallGbps"] == "5.10, 5.10"
    # one build only: no paragraph
    path = synthetic.write(tmp_path / "one.csv", [r for r in rows if r["sender"] == "turn1msg"])
    M = MX.Macros()
    numbers_data.interleave_numbers(M, path)
    assert not M.flags["HaveIlv"] and M.defs["IlvClaim"] == "n/a"
    M = MX.Macros()
    numbers_data.interleave_numbers(M, tmp_path / "missing.csv")
    assert not M.flags["HaveIlv"]


def test_uring_opt_batched_wait_is_compared_with_wait_nr_1(tmp_path):
    rows = []
    for w, gbps in ((1, [20.0, 20.2, 19.9, 20.1, 20.0]), (8, [24.0, 24.1, 23.9, 24.2, 24.0])):
        for rep, g in enumerate(gbps, 1):
            level = "/wait_nr=8" if w == 8 else ""
            r = synthetic._base("tcp", "uring_opt", rep,
                                f"results/local/tcp/uring_opt/conns=8/msg=65536{level}/rep={rep}.json")
            r.update(conns=8, msg=65536, touch=0, wait_nr=w, rx_gbps=g, cpu_ns_per_byte=0.3,
                     generator_bound=False)
            rows.append(r)
    defs, flags = macros(_numbers(synthetic.write(tmp_path / "w.csv", rows), tmp_path))
    assert flags["HaveWaitNr"]
    assert defs["WaitNrClaims"].startswith("at full speed with 8 connections, wait\\_nr=8 receives "
                                           "more than wait\\_nr=1")


# --- CPU cost below saturation: rate-controlled Ethernet cells ----------------------

def _paced(tmp_path, busy: dict, rx_share=None, name="paced.csv"):
    """eth load=0.2 cells at 64 B, NAPI on the receiver's core: per stack
    (af_xdp's wait as a variant) the receive core's busy share per rep."""
    rows = []
    for (stack, wait), vals in busy.items():
        for rep, v in enumerate(vals, 1):
            var = f"/wait={wait}" if wait else ""
            r = synthetic._base("eth", stack, rep, f"results/local/eth/{stack}/cores=1/size=64/"
                                f"load=0.2{var}/rep={rep}.json")
            rx = 2e5 * (rx_share or {}).get(stack, 1.0)
            r.update(cores=1, size=64, napi="receiver", load=0.2, offered_pps=2.0001e5,
                     rx_pps=rx, rx_gbps=rx * 512 / 1e9, generator_bound=True,
                     receiver_cpu_frac=v, load_error_pct=0.005,
                     cpu_ns_per_pkt=v * 1e9 / rx, generator="rxb-gen",
                     **({"wait": wait} if wait else {}))
            rows.append(r)
    return synthetic.write(tmp_path / name, rows)


def test_cost_below_saturation_compares_only_within_the_woken_class(tmp_path):
    csv = _paced(tmp_path, {("af_xdp", "poll"): [0.20, 0.21, 0.205, 0.20, 0.21],
                            ("af_packet", None): [0.40, 0.41, 0.39, 0.40, 0.42],
                            ("af_xdp", "busy_poll"): [0.99, 1.0, 1.0, 0.995, 1.0]},
                 rx_share={"af_packet": 0.9})
    gs = generated.build(csv, tmp_path, figures=False)
    defs, flags = macros(tmp_path / "generated" / "numbers.tex")
    assert flags["HaveEthLoad"]
    claim = defs["EthLoadWokenClaims"]
    assert r"\texttt{af\_packet} keeps more of its core busy than \texttt{af\_xdp}" in claim
    # the busy-polling receiver is given as a number, never ranked against the woken ones
    assert "busy\\_poll" in defs["EthLoadPolling"] and "busy" not in claim.replace("busy than", "")
    assert defs["EthLoadTargets"] == "0.2" and defs["EthLoadErr"] == "0.00500"
    assert flags["HaveEthLoadLoss"] and r"\texttt{af\_packet}" in defs["EthLoadLoss"]
    # paced groups are no saturation group: not in the headline's best configurations
    assert not len(G.saturation(gs.st[gs.st["layer"] == "eth"]))
    assert gs.best("eth").empty
    table = (tmp_path / "generated" / "test" / "cost_table.tex").read_text()
    assert table.count(r"\\") >= 4 and "woken by the kernel" in table and "busy polling" in table
    # overlapping intervals: not told apart, no order
    same = _paced(tmp_path, {("af_xdp", "poll"): [0.2, 0.3, 0.25, 0.22, 0.28],
                             ("af_packet", None): [0.21, 0.29, 0.24, 0.27, 0.23]}, name="same.csv")
    out = tmp_path / "same.tex"
    _write_numbers(same, out)
    d2, _ = macros(out)
    assert "not told apart" in d2["EthLoadWokenClaims"] and "busier" not in d2["EthLoadWokenClaims"]
    # repetitions without a busy share (the CPU accounting failed) give no interval
    few = _paced(tmp_path, {("af_xdp", "poll"): [0.2, 0.21], ("af_packet", None): [0.4, 0.41]},
                 name="few.csv")
    out = tmp_path / "few.tex"
    _write_numbers(few, out)
    d3, _ = macros(out)
    assert d3["EthLoadWokenClaims"].startswith("no pair is compared")


def test_tex_text_prints_comparison_signs():
    # OT1 prints a bare ">" as an inverted question mark ("needs Linux >= 7.1")
    assert MX.tex_text("Linux >= 7.1, a < b | c") == \
        r"Linux \textgreater{}= 7.1, a \textless{} b \textbar{} c"
