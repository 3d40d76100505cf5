"""numbers.tex and the paper PDF (rxbench.paper): the macros equal the CSV's
values, the text quotes no hand-typed number, and the paper builds from an
Ethernet-only, a TCP-only and a mixed summary."""

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import synthetic
from rxbench import paper

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
    assert paper.words(64) == "SixtyFour"
    assert paper.words(1518) == "OneThousandFiveHundredEighteen"
    assert paper.camel("xdp_drop") == "XdpDrop" and paper.camel("iperf3") == "IperfThree"
    assert paper.msg_words(65536) == "SixtyFourKiB"
    assert paper.sig(1.78807) == "1.79" and paper.sig(0.48123) == "0.481"
    assert paper.sig(2087.4) == "2087"


def test_numbers_match_the_csv(both, tmp_path):
    out = tmp_path / "numbers.tex"
    paper.write_numbers(both, out)
    defs, flags = macros(out)
    df = pd.read_csv(both)
    ok = df[df.status == "ok"]

    def mean(sel, col, scale=1.0):
        return paper.sig(ok[sel][col].mean() / scale)

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
    assert defs["BestUserStack"] == r"\texttt{" + best + "}"
    assert defs["RxCells"] == str(len(df))
    assert defs["RxCellsUnsupported"] == str(int((df.status == "unsupported").sum()))
    assert defs["RxGenDir"] == "generated/local"
    assert flags["HaveEth"] and flags["HaveTcp"] and flags["HaveTouch"] and flags["HaveIperf"]
    assert flags["FigTcpConns"] and not flags["FigEthCores"]
    assert flags["HaveNotOk"]                                  # uring_zcrx is unsupported


def test_numbers_without_tcp_rows(tmp_path):
    csv = synthetic.write(tmp_path / "eth.csv", synthetic.eth_rows())
    defs, flags = macros(_numbers(csv, tmp_path))
    assert not flags["HaveTcp"] and not flags["HaveTcpRows"] and defs["BestTcpServer"] == "n/a"
    assert flags["HaveEth"] and flags["HaveNapiSender"]


def _numbers(csv, tmp_path):
    out = tmp_path / "numbers.tex"
    paper.write_numbers(csv, out)
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
                          r"|Touch)[A-Za-z]*)", tex))
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
    return {"eth_only": eth, "tcp_only": tcp, "mixed": eth + tcp, "all_unsupported": bad,
            "no_xdp_drop": no_ceiling}


@pytest.mark.skipif(not shutil.which("latexmk"), reason="latexmk is not installed "
                    "(Debian: latexmk texlive-latex-base texlive-latex-recommended, listed "
                    "in workflow/envs/debian-packages.txt)")
@pytest.mark.parametrize("kind", ["eth_only", "tcp_only", "mixed", "all_unsupported",
                                  "no_xdp_drop"])
def test_paper_builds(kind, tmp_path):
    # as `snakemake -d ELSEWHERE` does: generated files and PDF out of the checkout
    d = tmp_path / "paper"
    csv = synthetic.write(tmp_path / "summary.csv", _summaries(tmp_path)[kind])
    paper.build_all(csv, d, pdf=True, source_dir=PAPER)
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
