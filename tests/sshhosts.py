"""Two SSH "hosts" on this machine, for the ssh platform's tests (and the
vm and g5k engineers'): each a network namespace running Debian's OpenSSH
sshd with a host key and a user key generated for the test session and
thrown away, reachable from the root namespace over a management veth
(198.19.0.1/30 <-> 198.19.0.2/30 for the sender, 198.19.0.5/30 <->
198.19.0.6/30 for the receiver), joined by a separate test veth
(198.18.0.1/30 <-> 198.18.0.2/30). No default route anywhere in them.

Both "hosts" share this machine's filesystem and /run, so the platform's
remote paths are per host (keyed by the host's address): state records in
/run/rxbench/host-ADDRESS, builds in /var/tmp/rxbench-ADDRESS. Root's shell
start-up file is a stock Debian host's: sshd runs every command through
root's bash, which reads ~/.bashrc, and this machine's (pyenv init: about
180 process starts, 190 ms a channel) is not what a user's hosts have, so
each sshd sees Debian's /usr/share/base-files/dot.bashrc bound over
/root/.bashrc in a mount namespace of its own (nothing outside it changes).

    from sshhosts import ssh_hosts      # the session fixture
    def test_x(ssh_hosts): ssh_hosts.inventory_path, ssh_hosts.kill_sshd("receiver"), ...
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

SSHD = "/usr/sbin/sshd"
STOCK_BASHRC = Path("/usr/share/base-files/dot.bashrc")     # Debian's root ~/.bashrc
ROLES = {"sender": {"mgmt": ("198.19.0.1", "198.19.0.2"), "test_ip": "198.18.0.1", "cpus": [0]},
         "receiver": {"mgmt": ("198.19.0.5", "198.19.0.6"), "test_ip": "198.18.0.2",
                      "cpus": [1]}}
ALLOC_LOCK = "/run/rxbench/sshhosts.lock"     # shared with a debootstrap-check chroot


def _roles(k: int) -> dict:
    """The management addresses of the k-th pair of test hosts on this
    machine: 198.19.k.1/30 <-> .2 (sender), 198.19.k.5/30 <-> .6 (receiver)."""
    return {r: {**v, "mgmt": tuple(a.replace("198.19.0.", f"198.19.{k}.") for a in v["mgmt"])}
            for r, v in ROLES.items()}
TEST_IF = "rxbtest0"
MGMT_IF = "rxbmgmt0"


def why_no_ssh_hosts() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, sshd)"
    for tool in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not tool or not os.path.exists(tool):
            return "OpenSSH (openssh-server, openssh-client) is not installed"
    if len(os.sched_getaffinity(0)) < 2:
        return "needs 2 CPUs"
    return None


def _sh(*argv, check=True) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p.stdout


class SshHosts:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.roles = ROLES
        self.token = secrets.token_hex(3)
        self.netns = {r: f"rxbssh-{self.token}-{r[0]}" for r in ROLES}
        self.root_if = {r: f"rxbm{self.token}{r[0]}" for r in ROLES}
        self.sshd: dict[str, subprocess.Popen] = {}
        self.made_privsep = False
        self.key = tmp / "id_ed25519"
        self.hostkey = tmp / "host_ed25519"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rxbench-test", "-f", str(self.key))
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rxbench-test-host",
            "-f", str(self.hostkey))
        (tmp / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        os.chmod(tmp / "authorized_keys", 0o600)
        hostpub = Path(f"{self.hostkey}.pub").read_text().split()
        (tmp / "known_hosts").write_text("".join(
            f"{a} {hostpub[0]} {hostpub[1]}\n" for k in range(256)
            for a in (f"198.19.{k}.2", f"198.19.{k}.6")))

    # -- the hosts ----------------------------------------------------------------
    def up(self) -> "SshHosts":
        """Two hosts on the first free management block (198.19.0.x unless
        another session, e.g. another engineer's tests, holds it)."""
        import fcntl
        os.makedirs(os.path.dirname(ALLOC_LOCK), exist_ok=True)
        with open(ALLOC_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _sh("ip", "-4", "-o", "addr", "show")
            k = next(k for k in range(256) if f" 198.19.{k}.1/" not in used
                     and f" 198.19.{k}.5/" not in used)
            self.roles = _roles(k)
            self._up()
        return self

    def address(self, role: str) -> str:
        return self.roles[role]["mgmt"][1]

    def _up(self) -> None:
        for r, spec in self.roles.items():
            ns = self.netns[r]
            _sh("ip", "netns", "add", ns)
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            host_ip, ns_ip = spec["mgmt"]
            _sh("ip", "link", "add", self.root_if[r], "type", "veth", "peer", "name", MGMT_IF,
                "netns", ns)
            _sh("ip", "addr", "add", f"{host_ip}/30", "dev", self.root_if[r])
            _sh("ip", "link", "set", self.root_if[r], "up")
            _sh("ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", MGMT_IF)
            _sh("ip", "-n", ns, "link", "set", MGMT_IF, "up")
        s, rc = self.netns["sender"], self.netns["receiver"]
        _sh("ip", "link", "add", TEST_IF, "netns", s, "type", "veth", "peer", "name", TEST_IF,
            "netns", rc)
        for r in self.roles:
            ns = self.netns[r]
            _sh("ip", "-n", ns, "addr", "add", f"{self.roles[r]['test_ip']}/30", "dev", TEST_IF)
            _sh("ip", "-n", ns, "link", "set", TEST_IF, "mtu", "1500", "up")
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755)
            self.made_privsep = True
        for r in self.roles:
            self.start_sshd(r)
        self.inventory = {
            r: {"address": self.address(r), "port": 22, "user": "root", "key": str(self.key),
                "known_hosts": str(self.tmp / "known_hosts"), "test_interface": TEST_IF,
                "test_ip": self.roles[r]["test_ip"], "prefix": 30, "mtu": 1500,
                "cpus": self.roles[r]["cpus"], **({"napi_cpus": [1]} if r == "receiver" else {})}
            for r in ROLES}
        self.inventory["provenance"] = {"testbed": "tests/sshhosts.py: two netns running sshd"}
        self.inventory_path = self.write_inventory(self.inventory)

    def write_inventory(self, inv: dict, name: str = "inventory.yaml") -> Path:
        p = self.tmp / name
        p.write_text(yaml.safe_dump(inv))
        return p

    def sshd_config(self, role: str) -> Path:
        p = self.tmp / f"sshd_{role}.conf"
        p.write_text("\n".join([
            f"ListenAddress {self.address(role)}", "Port 22",
            f"HostKey {self.hostkey}", f"PidFile {self.tmp}/sshd_{role}.pid",
            f"AuthorizedKeysFile {self.tmp}/authorized_keys",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PrintMotd no",
            "MaxSessions 64", "MaxStartups 64:30:128", "LogLevel ERROR", ""]))
        return p

    def start_sshd(self, role: str) -> None:
        ns = self.netns[role]
        log = open(self.tmp / f"sshd_{role}.log", "a")
        home_rc = Path(os.path.expanduser("~root")) / ".bashrc"
        stock = (["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  f'mount --bind {STOCK_BASHRC} {home_rc} && exec "$@"', "sshd"]
                 if STOCK_BASHRC.is_file() and home_rc.is_file() else [])
        self.sshd[role] = subprocess.Popen(
            ["ip", "netns", "exec", ns, *stock, SSHD, "-D", "-e", "-f",
             str(self.sshd_config(role))],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        addr = self.address(role)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((addr, 22), timeout=0.5).close()
                return
            except OSError:
                if self.sshd[role].poll() is not None:
                    raise RuntimeError(f"sshd in {ns} exited: "
                                       f"{(self.tmp / f'sshd_{role}.log').read_text()[-500:]}")
                time.sleep(0.05)
        raise RuntimeError(f"sshd in {ns} does not answer on {addr}:22")

    def pids(self, role: str) -> list[int]:
        return [int(x) for x in _sh("ip", "netns", "pids", self.netns[role], check=False).split()]

    @staticmethod
    def comm(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return ""

    def kill_sshd(self, role: str) -> None:
        """Every sshd of the host: the listener and the sessions (what a
        crashed or rebooted host does to its connections)."""
        for pid in self.pids(role):
            if self.comm(pid) in ("sshd", "sshd-session"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.sshd[role].wait(5)

    def processes(self, role: str) -> list[str]:
        """What runs on the host besides its sshd."""
        return [f"{p}:{self.comm(p)}" for p in self.pids(role)
                if self.comm(p) not in ("sshd", "sshd-session", "")]

    def state_dir(self, role: str) -> Path:
        return Path(f"/run/rxbench/host-{self.address(role)}")

    def work_dir(self, role: str) -> Path:
        return Path(f"/var/tmp/rxbench-{self.address(role)}")

    def leftovers(self, wait: float = 5.0) -> dict:
        """What a run left on either host: processes, state records, XDP
        programs or permanent neighbours on the test link, changed sysfs,
        scratch directories; empty when both are clean."""
        deadline = time.monotonic() + wait
        while True:
            left = {}
            for r in self.roles:
                ns = self.netns[r]
                link = json.loads(_sh("ip", "-n", ns, "-j", "-d", "link", "show", "dev", TEST_IF))
                items = self.processes(r)
                items += [f"state {p.name}" for p in self.state_dir(r).glob("*")]
                if link and link[0].get("xdp"):
                    items.append(f"xdp on {TEST_IF}")
                neigh = _sh("ip", "-n", ns, "neigh", "show", "dev", TEST_IF, "nud", "permanent")
                items += [f"neighbour {n}" for n in neigh.splitlines() if n.strip()]
                threaded = _sh("ip", "netns", "exec", ns, "cat",
                               f"/sys/class/net/{TEST_IF}/threaded").strip()
                if threaded != "0" and self.has_napi(ns):
                    # veth without NAPI (no XDP program, no GRO) reads 1 after
                    # a threaded run and refuses 0 (EIO): inert then
                    items.append(f"threaded={threaded}")
                scratch = self.work_dir(r) / "scratch"
                items += [f"scratch {p.name}" for p in scratch.glob("*")] if scratch.exists() else []
                if items:
                    left[r] = items
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    @staticmethod
    def has_napi(ns: str) -> bool:
        """Threaded NAPI kthreads of the test link exist (threaded=1 means
        something only then; they are named napi/IFNAME-ID)."""
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if (d / "comm").read_text().startswith(f"napi/{TEST_IF}"[:15]):
                        return True
                except OSError:
                    continue
        return False

    def down(self) -> None:
        for r, p in self.sshd.items():
            if p.poll() is None:
                self.kill_sshd(r)
        for r in self.roles:
            ns = self.netns[r]
            for pid in self.pids(r):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "link", "del", self.root_if[r]], capture_output=True)
            shutil.rmtree(self.state_dir(r), ignore_errors=True)
            shutil.rmtree(self.work_dir(r), ignore_errors=True)
        if self.made_privsep:
            shutil.rmtree("/run/sshd", ignore_errors=True)


def sshd_in_namespaces() -> list[str]:
    """sshd processes in any network namespace other than ours (the hook's check)."""
    me = os.readlink("/proc/self/ns/net")
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() in ("sshd", "sshd-session") and \
                        os.readlink(d / "ns" / "net") != me:
                    found.append(d.name)
            except OSError:
                continue
    return found


@pytest.fixture(scope="session")
def ssh_hosts():
    why = why_no_ssh_hosts()
    if why:
        pytest.skip(why)
    tmp = Path(tempfile.mkdtemp(prefix="rxbench-sshhosts-"))
    hosts = SshHosts(tmp)
    try:
        yield hosts.up()
    finally:
        hosts.down()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not sshd_in_namespaces(), f"sshd left in namespaces: {sshd_in_namespaces()}"
