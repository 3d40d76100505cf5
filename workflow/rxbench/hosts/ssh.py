"""A host reached over SSH (OpenSSH): one master connection per host
(ControlMaster, ControlPersist, in a private control directory) that the
cells of a campaign reuse; BatchMode, ConnectTimeout and keep-alives, so a
lost host fails a command in seconds instead of hanging; optional
ProxyJump; a private known_hosts (accept-new) unless the inventory names
one. The far end runs hosts/remote.py (copied with native/ and built there
once per source hash): it reads counters in one round trip and releases
what a run recorded in the host's own state directory; tools start under
native/rxb-run (remote.py run where a build lacks it), bounded in time and
killed when their SSH channel closes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import shlex
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path

from .. import ROOT
from ..state import alive, pid_start
from ..util import CommandError
from .base import ConnectionLost, Host, HostError, parse_json

CONNECT_TIMEOUT_S = 5
ALIVE_INTERVAL_S = 2
ALIVE_COUNT = 3
CONTROL_PERSIST_S = 120
# what goes to a host: the native sources and the Python wrappers the stacks run there
DEPLOY_FILES = ["workflow/rxbench/__init__.py", "workflow/rxbench/stacks/__init__.py",
                "workflow/rxbench/stacks/testpmd.py",
                "workflow/rxbench/stacks/xdpsock.py", "workflow/rxbench/stacks/pktgen_dpdk.py",
                "workflow/rxbench/hosts/remote.py", "workflow/rxbench/netdev_nl.py"]
REMOTE_PY = "workflow/rxbench/hosts/remote.py"
RUN_TOOL = "rxb-run"                # native/: remote.py run's protocol, in C
BUILD_EXIT = 3
MISSING_EXIT = 42


def machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(p).read_text().strip()
        except OSError:
            continue
    return socket.gethostname()


def deploy_files() -> list[Path]:
    native = sorted(p for p in (ROOT / "native").iterdir()
                    if p.is_file() and (p.suffix in (".c", ".h") or p.name == "Makefile"))
    return native + [ROOT / f for f in DEPLOY_FILES]


def source_hash() -> str:
    h = hashlib.sha256()
    for p in deploy_files():
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def source_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in deploy_files():
            tar.add(p, arcname=str(p.relative_to(ROOT)))
    return buf.getvalue()


def control_dir() -> Path:
    """Master sockets (short paths: a socket path has ~100 bytes) and the
    private known_hosts."""
    d = Path(os.environ.get("RXBENCH_SSH_DIR", f"/run/rxbench/ssh-{os.getuid()}"))
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    return d


class RemoteRegistry:
    """The state record of one run on one host, in the host's own state
    directory: written there (over the connection) before each thing is
    created; the remote wrapper appends the pids of the tools it starts."""

    def __init__(self, host: "SshHost", token: str):
        self.host, self.token = host, token
        self.path = f"{host.state_dir}/{token}.json"
        self.pids_path = f"{host.state_dir}/{token}.pids"
        me = os.getpid()
        self.data = {"token": token, "owner": {"machine": machine_id(), "pid": me,
                                               "pid_start": pid_start(me),
                                               "checkout": str(ROOT)},
                     "created_at": time.time(), "pids": [], "xdp": [], "sysfs": [],
                     "features": [], "dirs": []}
        self.saved = False

    def add(self, kind: str, item) -> None:
        if item not in self.data.setdefault(kind, []):
            self.data[kind].append(item)
            self.save()

    def drop(self, kind: str) -> None:
        self.data[kind] = []
        self.save()

    def save(self) -> None:
        self.host.put_file(self.path, json.dumps(self.data).encode(), 0o600)
        self.saved = True


class _NotBuilt(Exception):
    pass


class SshHost(Host):
    """One inventory entry (address, port, user, key, jump, sudo,
    known_hosts, ...) as a Host. connect() opens (or reuses) the master
    connection, cleans what dead runs left, deploys/builds the native tools
    if this source hash is not built there yet, and reads the host's facts."""

    def __init__(self, role: str, spec: dict, log, token: str, ifname: str | None = None,
                 options: tuple[str, ...] = (), tools: tuple[str, ...] = ()):
        self.role, self.spec, self.log = role, spec, log
        self.address, self.port = spec["address"], int(spec.get("port", 22))
        self.user = spec.get("user", "root")
        self.key = f"{self.address}" if self.port == 22 else f"{self.address}-{self.port}"
        self.sudo = bool(spec.get("sudo", False))
        self.state_dir = spec.get("state_dir") or f"/run/rxbench/host-{self.key}"
        self.work_dir = spec.get("work_dir") or f"/var/tmp/rxbench-{self.key}"
        self.hash = source_hash()
        self.deploy_dir = f"{self.work_dir}/{self.hash}"
        self.ifname, self.options, self.tools = ifname, tuple(options), tuple(tools)
        self.registry = RemoteRegistry(self, token)
        self.hello: dict | None = None
        self.agent: subprocess.Popen | None = None
        self._buf = b""
        self.swept: list[str] = []
        self.connect_error: Exception | None = None
        cd = control_dir()
        ident = f"{self.user}@{self.address}:{self.port}:{spec.get('jump')}:{spec.get('key')}"
        self.control = str(cd / hashlib.sha1(ident.encode()).hexdigest()[:16])
        self.known_hosts = spec.get("known_hosts") or str(cd / "known_hosts")

    # -- ssh -------------------------------------------------------------------
    def ssh_argv(self, master: bool = False) -> list[str]:
        s = self.spec
        argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={s.get('connect_timeout', CONNECT_TIMEOUT_S)}",
                "-o", f"ServerAliveInterval={ALIVE_INTERVAL_S}",
                "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
                "-o", f"ControlPath={self.control}",
                "-o", "ControlMaster=yes" if master else "ControlMaster=no",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=" + ("yes" if s.get("known_hosts") else "accept-new"),
                "-o", "LogLevel=ERROR", "-p", str(self.port)]
        if master:
            argv += ["-o", f"ControlPersist={s.get('control_persist', CONTROL_PERSIST_S)}"]
        if s.get("key"):
            argv += ["-i", s["key"], "-o", "IdentitiesOnly=yes"]
        if s.get("jump"):
            argv += ["-J", s["jump"]]
        return argv + [f"{self.user}@{self.address}"]

    def remote_command(self, argv: list[str]) -> str:
        return ("sudo -n " if self.sudo else "") + shlex.join(argv)

    def master_alive(self) -> bool:
        return subprocess.run(self.ssh_argv()[:-1] + ["-O", "check", f"{self.user}@{self.address}"],
                              capture_output=True, timeout=10).returncode == 0

    def start_master(self) -> None:
        if os.path.exists(self.control) and self.master_alive():
            return
        # -f: the master goes to the background once authenticated; its
        # stderr goes to a file (a pipe would be held open by the master)
        errf = Path(self.control + ".err")
        with open(errf, "w") as err:
            p = subprocess.run(self.ssh_argv(master=True)[:-1] + ["-N", "-f",
                               f"{self.user}@{self.address}"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err,
                               timeout=CONNECT_TIMEOUT_S * 3 + 10, start_new_session=True)
        msg = errf.read_text().strip().splitlines()
        errf.unlink(missing_ok=True)
        if p.returncode != 0:
            raise ConnectionLost(f"{self.role} {self.user}@{self.address}:{self.port}: not "
                                 f"reachable over SSH: {msg[-1] if msg else f'ssh exit {p.returncode}'}")

    def stop_master(self) -> None:
        if os.path.exists(self.control):
            subprocess.run(self.ssh_argv()[:-1] + ["-O", "exit", f"{self.user}@{self.address}"],
                           capture_output=True, timeout=10)

    def _exec(self, command: str, *, timeout: float, input: bytes | None = None):
        try:
            return subprocess.run(self.ssh_argv() + ["--", command], capture_output=True,
                                  timeout=timeout, input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ConnectionLost(f"{self.role} {self.address}: no answer within {timeout:.0f} s "
                                 f"to: {command[:120]}") from None

    def _lost(self, p) -> ConnectionLost:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        return ConnectionLost(f"{self.role} {self.address}: connection lost"
                              + (f": {err[-1]}" if err else ""))

    # -- the agent: remote.py serve, one per host for the testbed's life ---------
    # -- the host's Python: `python3` on its PATH may be a wrapper (pyenv's
    # shim is a shell script: ~0.3 s a start here); the interpreter it runs
    # (the agent's sys.executable) is remembered beside the master socket
    # and used by name, falling back to python3 if it has gone
    def python(self) -> str:
        found = ((self.hello or {}).get("facts") or {}).get("python_executable")
        if found:
            return found
        try:
            return Path(self.control + ".python").read_text().strip() or "python3"
        except OSError:
            return "python3"

    def _remember_python(self) -> None:
        found = (self.hello.get("facts") or {}).get("python_executable")
        if not found:
            return
        f = Path(self.control + ".python")
        try:
            if not f.exists() or f.read_text().strip() != found:
                f.write_text(found + "\n")
        except OSError:
            pass

    def _start_agent(self):
        py = shlex.quote(f"{self.deploy_dir}/{REMOTE_PY}")
        known = self.python()
        run = (f"exec python3 {py} serve" if known == "python3" else
               f"if [ -x {shlex.quote(known)} ]; then exec {shlex.quote(known)} {py} serve; "
               f"else exec python3 {py} serve; fi")
        sh = (f"mkdir -p {shlex.quote(self.state_dir)} && chmod 700 {shlex.quote(self.state_dir)}"
              f" && test -f {shlex.quote(self.deploy_dir)}/build.json || exit {MISSING_EXIT}; "
              + run)
        self._buf = b""
        self.agent = subprocess.Popen(self.ssh_argv() + ["--", self.remote_command(["sh", "-c", sh])],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)

    def _agent_gone(self):
        p, self.agent = self.agent, None
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            rc = p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        err = p.stderr.read().decode(errors="replace").strip().splitlines()
        return rc, err

    def request(self, req: dict, timeout: float = 30) -> dict:
        """One request to the host's agent; its answer."""
        if self.agent is None:
            self.connect()
        deadline = time.monotonic() + timeout + 5
        ok = False
        try:
            self.agent.stdin.write((json.dumps(req) + "\n").encode())
            self.agent.stdin.flush()
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionLost(f"{self.role} {self.address}: no answer within "
                                         f"{timeout + 5:.0f} s to {req['op']} "
                                         f"{shlex.join(req.get('argv', []))[:100]}")
                r, _, _ = select.select([self.agent.stdout], [], [], min(left, 1.0))
                if r:
                    chunk = os.read(self.agent.stdout.fileno(), 1 << 20)
                    if not chunk:
                        rc, err = self._agent_gone()
                        if rc == MISSING_EXIT:
                            raise _NotBuilt()
                        raise ConnectionLost(f"{self.role} {self.address}: connection lost"
                                             + (f": {err[-1]}" if err else f" (ssh exit {rc})"))
                    self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            ok = True
        except (BrokenPipeError, OSError) as e:
            if self.agent is not None:
                rc, err = self._agent_gone()
                if rc == MISSING_EXIT:
                    raise _NotBuilt() from None
            raise ConnectionLost(f"{self.role} {self.address}: connection lost: {e}") from None
        finally:
            if not ok and self.agent is not None:
                self._agent_gone()    # interrupted mid-request: its answer would be stale
        return parse_json(line.decode(), f"{self.key}: agent")

    def run(self, argv, *, timeout=30, check=True, log=None) -> str:
        if log:
            log(f"$ [{self.key}] {shlex.join(argv)}")
        out = self.request({"op": "run", "argv": list(argv), "timeout": timeout}, timeout)
        if check and out["rc"] != 0:
            err = (out.get("stderr") or out.get("stdout") or "").strip().splitlines()
            raise CommandError(f"{self.key}: {shlex.join(argv)} failed ({out['rc']}): "
                               f"{err[-1] if err else 'no output'}")
        return out.get("stdout", "")

    def helper(self, op: str, timeout: float = 30, **kw):
        out = self.request({"op": op, **kw}, timeout)
        if out["rc"] != 0:
            raise HostError(f"{self.key}: remote {op} failed: {out.get('stderr')}")
        return out["result"]

    # -- connect, deploy, clean --------------------------------------------------
    def connect(self) -> dict:
        if self.hello is not None and self.agent is not None:
            return self.hello
        err, self.connect_error = self.connect_error, None
        if err is not None:
            raise err                 # the parallel first contact's (Testbed.connect)
        self.start_master()
        spec = {"state_dir": self.state_dir, "build_dir": self.deploy_dir,
                "ifname": self.ifname, "options": list(self.options), "tools": list(self.tools)}
        for attempt in (1, 2):
            self._start_agent()
            try:
                hello = self.helper("hello", spec=spec)
                break
            except _NotBuilt:
                if attempt == 2:
                    raise HostError(f"{self.role} {self.address}: the build in "
                                    f"{self.deploy_dir} vanished") from None
                self.deploy()
        first = self.hello is None
        self.hello = hello
        self._remember_python()
        if first:
            self.swept = self.sweep(hello.get("records", {}))
            if self.swept:       # the facts as the sweep left the host (a NIC given back)
                self.hello = self.helper("hello", spec=spec)
        return self.hello

    def deploy(self) -> None:
        """Copy native/ and the wrappers over and build them there, once per
        source hash; a failed build stops with the compiler's message."""
        d, tmp = shlex.quote(self.deploy_dir), shlex.quote(self.deploy_dir + ".tmp")
        self.log(f"[{self.key}] building the native tools in {self.deploy_dir} (source {self.hash})")
        # a host whose image carries the native tools built from these very
        # sources (the vm guests: /opt/rxbench/native) takes that build
        # instead of building again (minutes under TCG): every source file
        # the tarball has must be byte-identical there
        pre = self.spec.get("prebuilt_native")
        use_pre = ""
        if pre:
            q = shlex.quote(pre)
            use_pre = (f"if [ -d {q}/build ] && (cd {tmp}/native && for f in $(find . -type f); "
                       f"do cmp -s $f {q}/$f || exit 1; done); then "
                       f"cp -a {q}/build {tmp}/native/build; echo prebuilt {q} >{tmp}/build.log; el")
        sh = (f"set -e; rm -rf {tmp}; mkdir -p {tmp}; tar -C {tmp} -xzf -; "
              f"{use_pre}if ! make -C {tmp}/native >{tmp}/build.log 2>&1; then "
              f"grep -m3 -E 'error|Error|not found' {tmp}/build.log >&2 || tail -n 3 {tmp}/build.log >&2; "
              f"exit {BUILD_EXIT}; fi; "
              f"python3 {tmp}/{REMOTE_PY} buildinfo {tmp}/native/build > {tmp}/build.json; "
              f"rm -rf {d}; mv {tmp} {d}")
        t0 = time.monotonic()
        p = self._exec(self.remote_command(["sh", "-c", sh]), timeout=900, input=source_tarball())
        if p.returncode == 255:
            raise self._lost(p)
        if p.returncode != 0:
            err = " / ".join(p.stderr.decode(errors="replace").strip().splitlines()[-3:])
            raise HostError(f"{self.role} {self.address}: building native/ failed: "
                            f"{err or 'exit ' + str(p.returncode)}")
        self.log(f"[{self.key}] built in {time.monotonic() - t0:.1f} s"
                 + (f" (or taken from {pre} if its sources are these)" if pre else ""))

    def sweep(self, records: dict) -> list[str]:
        """Release what runs of this machine that are gone left on the host
        (the remote side is cleaned at the next contact); a record of a live
        run, or of another controller, is left alone."""
        mine = machine_id()
        dead = []
        for path, data in records.items():
            owner = data.get("owner", {})
            if path == self.registry.path:
                continue
            if owner.get("machine") == mine and alive(owner.get("pid", -1), owner.get("pid_start")):
                continue
            if owner and owner.get("machine") != mine:
                self.log(f"[{self.key}] state record {path} belongs to another controller "
                         f"({owner.get('machine')}): left alone")
                continue
            dead.append(path)
        if not dead:
            return []
        done = self.helper("release", paths=dead)
        for item in done:
            self.log(f"[{self.key}] removed a dead run's leftover: {item}")
        return done

    def release(self) -> list[str]:
        """Unconditional teardown of this run's record on the host."""
        if not self.registry.saved:
            return []
        done = self.helper("release", paths=[self.registry.path])
        self.registry.saved = False
        return done

    # -- tools -----------------------------------------------------------------
    def wrapper(self) -> list[str]:
        """The far end of a tool's channel: native/rxb-run where this build
        has it (remote.py run's Python start costs 110-370 ms, the more on
        a CPU a generator saturates; rxb-run's 7-13 ms, bench_run_start.py),
        else remote.py run (a build from before rxb-run): one protocol."""
        if RUN_TOOL in (self.build().get("tools") or {}):
            return [self.native(RUN_TOOL)]
        return [self.python(), f"{self.deploy_dir}/{REMOTE_PY}", "run"]

    def popen(self, argv, bound_s):
        self.connect()
        if not self.registry.saved:
            self.registry.save()      # the record exists before the tool does
        cmd = self.remote_command([*self.wrapper(), "--bound", f"{bound_s:.0f}", "--record",
                                   self.registry.pids_path, "--", *argv])
        return subprocess.Popen(self.ssh_argv() + ["--", cmd], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                bufsize=1, start_new_session=True)

    def on_event(self, tool, event):
        if event.get("event") == "spawned" and not tool.remote:
            tool.remote = event
            return True
        return False

    def pid(self, tool):
        return tool.remote.get("pid")

    def lost(self, returncode) -> str:
        return (f"the SSH connection to {self.role} {self.address} was lost"
                if returncode == 255 else "")

    def signal(self, tool, sig):
        # through the tool's channel: the wrapper sends it (no new connection)
        if tool.p is not None and tool.p.poll() is None:
            try:
                tool.p.stdin.write(f"{int(sig)}\n")
                tool.p.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass

    def kill(self, tool):
        if tool.p is None:
            return
        self.signal(tool, signal.SIGKILL)
        try:
            tool.p.stdin.close()      # the wrapper kills what is left when its stdin closes
        except (BrokenPipeError, OSError):
            pass
        try:
            tool.p.wait(5)
        except subprocess.TimeoutExpired:
            tool.p.kill()
            tool.p.wait()

    # -- files, facts ----------------------------------------------------------
    def gather(self, files=(), commands=None):
        out = self.helper("gather", spec={"files": list(files), "commands": commands or {}})
        return out["files"], out["outputs"]

    def put_file(self, path, data, mode=0o644):
        out = self.request({"op": "put", "path": path, "data": data.decode(), "mode": mode})
        if out["rc"] != 0:
            raise HostError(f"{self.key}: cannot write {path}: {out.get('stderr')}")

    def scratch(self, name):
        d = f"{self.work_dir}/scratch/{self.registry.token}-{name}"
        self.registry.add("dirs", d)
        self.run(["mkdir", "-p", d])
        return d

    def facts(self, ifname=None):
        return self.connect()["facts"]

    def build(self) -> dict:
        """What the last contact said about the build (no new connection:
        provenance is written after a lost host too)."""
        return (self.hello or {}).get("build") or {}

    def which(self, name):
        tools = self.connect()["facts"]["tools"]
        if name in tools:
            return tools[name]
        out = self.run(["sh", "-c", f"command -v {shlex.quote(name)}"], check=False).strip()
        return out or None

    def native(self, name):
        return f"{self.deploy_dir}/native/build/{name}"

    def python_module(self, module):
        return ["env", f"PYTHONPATH={self.deploy_dir}/workflow", self.python(), "-m", module]

    def kernel_options(self, options):
        kc = self.connect()["facts"]["kernel_config"]
        if not kc.get("source"):
            return {}
        have = kc["options"]
        missing = [o for o in options if o not in have]
        if missing:
            raise HostError(f"{self.key}: kernel option(s) {missing} were not asked for at connect")
        return {o: have[o] for o in options}

    def kthreads(self, prefix):
        return self.helper("kthreads", prefix=prefix)

    def close(self) -> None:
        """End the agent; the master persists (ControlPersist) for the next cell."""
        if self.agent is not None:
            self._agent_gone()
