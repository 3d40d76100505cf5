"""rxb-run, for real: the far end of an SSH host's tool. What it shares
with `remote.py run` (the spawned line, the record, signals from stdin, the
group killed when stdin closes or the bound expires, the tool's status) is
checked on both, so the two stay one protocol; the rest (bad input, a
command that cannot run, signals to the wrapper itself) on rxb-run."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import NATIVE, ROOT

TOOL = NATIVE / "rxb-run"
REMOTE_PY = ROOT / "workflow" / "rxbench" / "hosts" / "remote.py"
WRAPPERS = {"rxb-run": [str(TOOL)], "remote.py": [sys.executable, str(REMOTE_PY), "run"]}
pytestmark = pytest.mark.skipif(not TOOL.exists(), reason="rxb-run not built (make -C native)")
pytestmark = [pytestmark, pytest.mark.unit]

# a tool that leaves a grandchild in its group and says its pid
GRANDCHILD = ["sh", "-c", "sleep 300 & echo $!; wait"]
# the same, deaf to TERM (the grandchild inherits the ignored TERM)
GRANDCHILD_DEAF = ["sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait"]


class Run:
    """A wrapper started with its stdin a pipe (as an SSH channel gives it),
    its stdout read line by line as it comes."""

    def __init__(self, wrapper: list[str], record, argv: list[str], bound: float = 30,
                 preexec_fn=None):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen([*wrapper, "--bound", f"{bound:g}", "--record", str(record),
                                   "--", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1,
                                  preexec_fn=preexec_fn)
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        self.spawned: dict | None = None
        self.threads = [threading.Thread(target=self._pump, args=(self.p.stdout, self._out),
                                         daemon=True),
                        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append),
                                         daemon=True)]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def _out(self, line: str) -> None:
        if line.startswith('{"event": "spawned"') and self.spawned is None:
            self.spawned = json.loads(line)
        self.lines.put(line)

    def line(self, timeout: float = 10) -> str:
        """The tool's next line (the spawned line checked and skipped)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line within {timeout} s; stderr: {self.err}") from None
            if line.startswith('{"event": "spawned"'):
                # the exact line remote.py prints (json.dumps' separators)
                assert line == json.dumps(json.loads(line)), line
                continue
            return line

    def eof(self, timeout: float = 5) -> bool:
        """stdout has nothing more (the wrapper and its tool have closed it)."""
        for t in self.threads[:1]:
            t.join(timeout)
        return self.lines.empty() and not self.threads[0].is_alive()

    def send(self, text: str) -> None:
        self.p.stdin.write(text)
        self.p.stdin.flush()

    def wait(self, timeout: float = 15) -> tuple[int, float]:
        """The wrapper's status and how long it ran; its output read to the end."""
        rc = self.p.wait(timeout)
        took = time.monotonic() - self.t0
        for t in self.threads:
            t.join(5)
        return rc, took

    def close(self):
        """Whatever a failed test left: the wrapper, and every process of the
        tool's group (found by group and start time, not by a reused pid)."""
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if not self.spawned:
            return
        pgid, start = self.spawned["pid"], self.spawned["start"]
        for d in os.listdir("/proc"):
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and int(fields[19]) >= start:
                try:
                    os.kill(int(d), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(params=sorted(WRAPPERS))
def wrapper(request):
    return WRAPPERS[request.param]


@pytest.fixture
def run(tmp_path):
    started = []

    def start(wrapper, argv, **kw):
        r = Run(wrapper, tmp_path / "rec.pids", argv, **kw)
        started.append(r)
        return r
    yield start
    for r in started:
        r.close()


def gone(pid: int) -> bool:
    """No such process, or only its zombie (reaped by whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pid: int, timeout: float = 3) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_spawned_line_and_record(wrapper, run, tmp_path):
    rec = tmp_path / "rec.pids"
    rec.write_text("1 2\n")                     # another tool's: appended to, not replaced
    r = run(wrapper, ["sh", "-c", "echo $$ $(cut -d' ' -f22 /proc/$$/stat); exit 3"])
    pid, start = map(int, r.line().split())
    rc, _ = r.wait()
    assert rc == 3
    assert r.spawned == {"event": "spawned", "pid": pid, "start": start}
    assert r.eof()                              # nothing else on stdout
    assert rec.read_text() == f"1 2\n{pid} {start}\n"


def test_the_spawned_line_comes_first(wrapper, run, tmp_path):
    """Before the tool runs at all: a tool quick to print must not come
    first (remote.py once printed it after the exec, and a busy host let
    rxb-counters' ready line through before it: a tool without a pid)."""
    for _ in range(10):
        r = run(wrapper, ["echo", "first"])
        first = r.lines.get(timeout=10)
        assert json.loads(first)["event"] == "spawned", first
        assert r.lines.get(timeout=10) == "first"
        assert r.wait()[0] == 0


def test_signals_from_stdin_reach_the_tool(wrapper, run):
    r = run(wrapper, ["sh", "-c", "trap 'echo usr1' USR1; echo ready; "
                      "while :; do sleep 0.05; done"])
    assert r.line() == "ready"
    r.send("hello\n\n 99999999999999999999 \n")  # not a signal: ignored
    r.send(f" {int(signal.SIGUSR1)} \n")
    assert r.line() == "usr1"
    r.send(f"{int(signal.SIGUSR1)}\n")
    assert r.line() == "usr1"
    r.send(f"{int(signal.SIGTERM)}\n")
    assert r.wait()[0] == 128 + signal.SIGTERM


def test_stdin_closed_terms_the_group_grandchild_too(wrapper, run):
    r = run(wrapper, GRANDCHILD)
    grandchild = int(r.line())
    t0 = time.monotonic()
    r.p.stdin.close()
    rc, _ = r.wait()
    assert rc == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 1.5
    assert wait_gone(grandchild), f"grandchild {grandchild} survived"


def test_stdin_closed_kills_a_deaf_group_2_s_later(wrapper, run):
    r = run(wrapper, GRANDCHILD_DEAF)
    grandchild = int(r.line())
    t0 = time.monotonic()
    r.p.stdin.close()
    rc, _ = r.wait()
    took = time.monotonic() - t0
    assert rc == 128 + signal.SIGKILL
    assert 1.9 < took < 3.5, took
    assert wait_gone(grandchild), f"grandchild {grandchild} survived"


def test_the_bound_terms_then_kills_5_s_later(wrapper, run):
    r = run(wrapper, ["sh", "-c", "trap 'echo term' TERM; sleep 300 & echo $!; "
                      "while :; do sleep 0.05; done"], bound=1)
    grandchild = int(r.line())
    assert r.line() == "term"                   # the bound's TERM, to the whole group
    termed = time.monotonic() - r.t0
    assert wait_gone(grandchild), "the group's TERM missed the grandchild"
    rc, took = r.wait()
    assert rc == 128 + signal.SIGKILL
    assert 0.9 < termed < 2.0, termed
    assert 5.8 < took < 8.0, took
    assert "rxbench: tool overstayed its bound of 1 s: terminated" in r.err


def test_what_the_tool_leaves_in_its_group_dies_with_it(wrapper, run):
    r = run(wrapper, ["sh", "-c", "sleep 300 & echo $!; exit 4"])
    grandchild = int(r.line())
    assert r.wait()[0] == 4
    assert wait_gone(grandchild), f"grandchild {grandchild} survived the tool"


@pytest.mark.parametrize("script, rc", [("exit 0", 0), ("exit 3", 3), ("exit 255", 255),
                                        ("kill -USR2 $$", 128 + signal.SIGUSR2),
                                        ("kill -KILL $$", 128 + signal.SIGKILL)])
def test_the_exit_status_is_the_tool_s(wrapper, run, script, rc):
    r = run(wrapper, ["sh", "-c", script])
    assert r.wait()[0] == rc


def test_the_tool_starts_with_default_signals(wrapper, run):
    """Whatever the wrapper inherited (ignored, blocked), the tool starts with
    the signals remote.py resets at their defaults and nothing blocked."""
    reset = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE)

    def deaf():
        for s in reset:
            signal.signal(s, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGQUIT})
    r = run(wrapper, ["grep", "^Sig[IB]", "/proc/self/status"], preexec_fn=deaf)
    masks = dict(r.line().split(":\t") for _ in range(2))
    assert r.wait()[0] == 0
    ign = int(masks["SigIgn"], 16)
    assert not [s for s in reset if ign & (1 << (s - 1))], masks
    assert int(masks["SigBlk"], 16) == 0, masks


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_rxb_run_stops_the_group(run, sig):
    r = run(WRAPPERS["rxb-run"], GRANDCHILD)
    grandchild = int(r.line())
    tool = r.spawned["pid"]
    r.p.send_signal(sig)
    rc, _ = r.wait()
    assert rc == 128 + signal.SIGTERM            # the tool's own death, by our TERM
    assert gone(tool) and wait_gone(grandchild)


def test_the_tool_dies_with_a_killed_rxb_run(run):
    """SIGKILL leaves rxb-run no say: the tool's parent-death signal kills it."""
    r = run(WRAPPERS["rxb-run"], ["sleep", "300"])
    tool = json.loads(r.lines.get(timeout=10))["pid"]
    assert not gone(tool)
    r.p.kill()
    r.p.wait()
    assert wait_gone(tool), f"the tool {tool} outlived its killed wrapper"


@pytest.mark.parametrize("name, prog", [("rxb-run", "rxb-run"), ("remote.py", "rxbench")])
def test_a_command_that_cannot_run_is_one_line_and_127(run, name, prog):
    r = run(WRAPPERS[name], ["/nonexistent/tool", "-x"])
    rc, _ = r.wait()
    assert rc == 127
    assert r.err == [f"{prog}: cannot run '/nonexistent/tool': No such file or directory"]
    assert r.lines.get(timeout=5).startswith('{"event": "spawned"') and r.eof()


@pytest.mark.parametrize("args, what", [
    ([], "--bound is required"),
    (["--record", "R", "--", "true"], "--bound is required"),
    (["--bound", "1", "--", "true"], "--record is required"),
    (["--bound", "x", "--record", "R", "--", "true"], "--bound: invalid value 'x'"),
    (["--bound", "-1", "--record", "R", "--", "true"], "--bound: invalid value '-1'"),
    (["--bound", "nan", "--record", "R", "--", "true"], "--bound: invalid value 'nan'"),
    (["--bound", "1", "--record", "R"], "no command given"),
    (["--bound", "1", "--record", "R", "--"], "no command given"),
    (["--bound", "1", "--record", "/nonexistent/dir/rec", "--", "true"],
     "--record /nonexistent/dir/rec: No such file or directory"),
    (["--bound", "1", "--record", "", "--", "true"], "--record: empty file name"),
    (["--frob", "--bound", "1", "--record", "R", "--", "true"], "unknown option '--frob'"),
    (["--bound"], "option '--bound' requires an argument"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, what):
    rec = tmp_path / "rec.pids"
    args = [str(rec) if a == "R" else a for a in args]
    p = subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 2, p
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rxb-run: ") and what in lines[0], lines
    assert not rec.exists()                     # nothing started, nothing recorded
