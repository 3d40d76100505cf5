"""The far end of SshHost: a small stdlib-only helper copied to each host
with the native sources and run there by python3. One invocation per round
trip; every subcommand prints one JSON document (or, for `run`, the tool's
own JSON lines).

  remote.py run --bound S --record FILE -- ARGV...
      start ARGV in a session of its own, print {"event": "spawned", "pid",
      "start"} and append "pid start" to FILE (the host's state record);
      read signal numbers from stdin, one a line, and send them to the
      tool; when stdin closes (the SSH channel is gone: the controller died
      or the connection was lost) TERM the tool's group, KILL it 2 s later;
      after S seconds TERM it, KILL it 5 s later (timeout --kill-after=5 S),
      so no tool outlives its bound on this host whatever the controller does.
      native/rxb-run is the same protocol in C (no Python start per tool:
      SshHost uses it where the build has it); this one is the fallback.
  remote.py hello JSON    facts, the state records present, the build's record
  remote.py gather JSON   {"files": [...], "commands": {name: argv}} -> contents/outputs
  remote.py release FILE... kill recorded processes, give NICs handed to a
                          user-space driver back to their kernel driver (named,
                          addressed, hugepages as before), detach XDP, restore
                          sysfs values and features, remove scratch, drop FILE
  remote.py kthreads PREFIX  kernel threads whose name starts with PREFIX
"""

import glob
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

GRACE_STDIN = 2.0
GRACE_BOUND = 5.0


def pid_start(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[19])


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _out(argv, timeout=10):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, "", str(e)


# -- run ------------------------------------------------------------------
def _kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reset_signals():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def cmd_run(args):
    bound, record = float(args[args.index("--bound") + 1]), args[args.index("--record") + 1]
    argv = args[args.index("--") + 1:]

    def spawned():
        # in the child, before exec: the record and the spawned line come
        # before the tool can write its first line (as rxb-run); printed
        # after Popen returned they raced the tool's "ready" on a busy host
        _reset_signals()
        pid = os.getpid()
        start = pid_start(pid)
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{pid} {start}\n".encode())
        os.close(fd)
        os.write(1, (json.dumps({"event": "spawned", "pid": pid, "start": start}) + "\n").encode())

    sys.stdout.flush()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                             preexec_fn=spawned)
    except (OSError, subprocess.SubprocessError) as e:
        sys.stderr.write(f"rxbench: cannot run '{argv[0]}': {getattr(e, 'strerror', None) or e}\n")
        return 127
    ended = threading.Event()

    def stop(grace):
        _kill_group(p.pid, signal.SIGTERM)
        if not ended.wait(grace):
            _kill_group(p.pid, signal.SIGKILL)

    def from_stdin():
        for line in sys.stdin:
            line = line.strip()
            if line.isdigit() and not ended.is_set():
                try:
                    os.kill(p.pid, int(line))
                except (OSError, OverflowError, ValueError):
                    pass            # gone, or no signal: this thread must go on
        if not ended.is_set():         # the channel is gone
            stop(GRACE_STDIN)

    def watchdog():
        if not ended.wait(bound):
            sys.stderr.write(f"rxbench: tool overstayed its bound of {bound:.0f} s: terminated\n")
            stop(GRACE_BOUND)

    for fn in (from_stdin, watchdog):
        threading.Thread(target=fn, daemon=True).start()
    rc = p.wait()
    ended.set()
    _kill_group(p.pid, signal.SIGKILL)   # anything the tool left in its group
    return 128 - rc if rc < 0 else rc


# -- facts ----------------------------------------------------------------
def kernel_config(options):
    rel = os.uname().release
    for path in ("/proc/config.gz", f"/boot/config-{rel}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                conf = dict(line.strip().split("=", 1) for line in f
                            if line.startswith("CONFIG_") and "=" in line)
            return {"source": path, "options": {o: conf.get(o, "n") for o in options}}
        except OSError:
            continue
    return {"source": None, "options": {}}


def cpu_facts():
    model = "unknown"
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    cpus = {}
    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*")):
        n = d.rsplit("cpu", 1)[1]
        cpus[n] = {k: (_read(f"{d}/{path}") or "n/a").strip() for k, path in (
            ("governor", "cpufreq/scaling_governor"), ("min_khz", "cpufreq/scaling_min_freq"),
            ("max_khz", "cpufreq/scaling_max_freq"), ("smt_siblings", "topology/thread_siblings_list"))}
    return {"cpu_model": model, "ncpus": len(cpus), "cpus": cpus,
            "isolated": (_read("/sys/devices/system/cpu/isolated") or "").strip(),
            "smt": (_read("/sys/devices/system/cpu/smt/active") or "n/a").strip()}


def nic_facts(ifname):
    if not ifname:
        return {}
    base = f"/sys/class/net/{ifname}"
    if not os.path.exists(base):
        return {"exists": False}
    out = {"exists": True}
    for k in ("operstate", "speed", "mtu", "address"):
        out[k] = (_read(f"{base}/{k}") or "").strip()
    rc, info, _ = _out(["ethtool", "-i", ifname])
    for line in info.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            if k.strip() in ("driver", "version", "firmware-version", "bus-info"):
                out[k.strip().replace("-", "_")] = v.strip()
    rc, ch, _ = _out(["ethtool", "-l", ifname])
    cur = ch.split("Current hardware settings:")[-1] if "Current" in ch else ""
    for line in cur.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            if k.strip() in ("RX", "TX", "Combined"):
                out[f"channels_{k.strip().lower()}"] = v.strip()
    out["queues_rx"] = len(glob.glob(f"{base}/queues/rx-*"))
    irqs = {}
    for line in (_read("/proc/interrupts") or "").splitlines():
        if ifname in line:
            irq = line.split(":", 1)[0].strip()
            irqs[irq] = (_read(f"/proc/irq/{irq}/smp_affinity_list") or "").strip()
    out["irq_affinity"] = irqs
    rc, addrs, _ = _out(["ip", "-j", "addr", "show", "dev", ifname])
    try:
        out["addresses"] = [a["local"] for i in json.loads(addrs or "[]")
                            for a in i.get("addr_info", [])]
    except ValueError:
        out["addresses"] = []
    return out


def cmd_hello(spec):
    u = os.uname()
    facts = {"hostname": u.nodename, "kernel": f"{u.release} {u.version}",
             "release": u.release, "cmdline": (_read("/proc/cmdline") or "").strip(),
             "euid": os.geteuid(), "python": sys.version.split()[0],
             "python_executable": sys.executable,
             "kernel_config": kernel_config(spec.get("options", [])), **cpu_facts(),
             "nic": nic_facts(spec.get("ifname")),
             "tools": {t: shutil.which(t) for t in spec.get("tools", [])},
             "ssh_connection": os.environ.get("SSH_CONNECTION", "")}
    rc, routes, _ = _out(["ip", "-j", "route", "show", "default"])
    try:
        facts["default_routes"] = [r.get("dev", "") for r in json.loads(routes or "[]")]
    except ValueError:
        facts["default_routes"] = []
    rc, v, _ = _out(["ip", "-j", "route", "get", facts["ssh_connection"].split()[0]]) \
        if facts["ssh_connection"] else (1, "", "")
    try:
        facts["ssh_dev"] = json.loads(v)[0].get("dev", "") if rc == 0 else ""
    except (ValueError, IndexError):
        facts["ssh_dev"] = ""
    records = {}
    for f in sorted(glob.glob(os.path.join(spec["state_dir"], "*.json"))):
        try:
            with open(f) as fh:
                records[f] = json.load(fh)
        except (OSError, ValueError):
            records[f] = {}
    build = None
    try:
        with open(os.path.join(spec["build_dir"], "build.json")) as f:
            build = json.load(f)
    except (OSError, ValueError):
        pass
    return {"facts": facts, "records": records, "build": build}


def cmd_gather(spec):
    files = {p: _read(p) for p in spec.get("files", [])}
    outputs = {}
    for name, argv in spec.get("commands", {}).items():
        rc, out, _ = _out(argv)
        outputs[name] = out
    return {"files": files, "outputs": outputs}


def cmd_kthreads(prefix):
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            line = (_read(f"/proc/{d}/status") or "").split("\n", 1)[0]
            name = line.split(None, 1)[1].strip() if "\t" in line else ""
            if name.startswith(prefix):
                found.append({"pid": int(d), "name": name})
    return found


HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"


def _write(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def restore_nic(rec):
    """Undo a user-space driver binding (stacks/eth.py Dpdk.bind): the PCI
    device back to its kernel driver, its interface found by MAC, renamed,
    MTU, addresses and link state as recorded; the hugepages as they were.
    Idempotent: a NIC already back is only re-checked."""
    done = []
    pci, drv = rec["pci"], rec["driver"]
    dev = f"/sys/bus/pci/devices/{pci}"
    if not os.path.exists(dev):
        return [f"nic {pci}: no such PCI device"]
    cur = os.path.basename(os.path.realpath(f"{dev}/driver")) \
        if os.path.exists(f"{dev}/driver") else None
    _write(f"{dev}/driver_override", "\n")
    if cur != drv:
        if cur:
            _write(f"{dev}/driver/unbind", pci)
        if not _write("/sys/bus/pci/drivers_probe", pci):
            _write(f"/sys/bus/pci/drivers/{drv}/bind", pci)
        done.append(f"nic {pci} {cur or 'unbound'} -> {drv}")
    name = None
    for _ in range(100):           # the kernel driver's probe creates the interface
        for d in glob.glob("/sys/class/net/*"):
            if (_read(f"{d}/address") or "").strip() == rec["mac"]:
                name = os.path.basename(d)
                break
        if name:
            break
        time.sleep(0.1)
    if name is None:
        return done + [f"nic {pci}: no interface with {rec['mac']} after rebinding to {drv}"]
    ifn = rec["ifname"]
    if name != ifn:
        _out(["ip", "link", "set", "dev", name, "down"])
        _out(["ip", "link", "set", "dev", name, "name", ifn])
        done.append(f"nic {pci}: {name} renamed {ifn}")
    _out(["ip", "link", "set", "dev", ifn, "mtu", str(rec["mtu"])])
    for a in rec.get("addresses", []):
        _out(["ip", "addr", "replace", a, "dev", ifn])
    _out(["ip", "link", "set", "dev", ifn, "up"])
    if rec.get("hugepages") is not None and _write(HUGEPAGES, str(rec["hugepages"])):
        done.append(f"hugepages {rec['hugepages']}")
    return done + [f"nic {ifn} ({pci}) on {drv}, {', '.join(rec.get('addresses', [])) or 'no address'}"]


def release(data, record_path):
    done = []
    pidfile = record_path[:-len(".json")] + ".pids"
    pids = [list(p) for p in data.get("pids", [])]
    for line in (_read(pidfile) or "").splitlines():
        pid, start = line.split()
        pids.append([int(pid), None if start == "None" else int(start)])
    # first, while the tools (and their XDP programs, i.e. veth's NAPI) may still be there
    for path, old in reversed(data.get("sysfs", [])):
        try:
            with open(path, "w") as f:
                f.write(old)
            done.append(f"sysfs {path}={old}")
        except OSError:
            pass
    for ifname, feature, old in reversed(data.get("features", [])):
        _out(["ethtool", "-K", ifname, feature, old])
        done.append(f"feature {ifname} {feature} {old}")
    for pid, start in pids:
        s = pid_start(pid)
        if s is not None and (start is None or s == start):
            _kill_group(pid, signal.SIGKILL)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            done.append(f"process {pid}")
    # the tools are dead: a NIC DPDK had goes back to the kernel
    for rec in reversed(data.get("nic_bind", [])):
        done += restore_nic(rec)
    for ifname, how, old in reversed(data.get("rxfh", [])):   # rxbench.queues.steer
        if how == "combined" and old:
            _out(["ethtool", "-L", ifname, "combined", str(old)])
        elif how == "equal":
            _out(["ethtool", "-X", ifname, "default"])
        done.append(f"rss {ifname} {how} restored")
    for ifname in data.get("xdp", []):
        for mode in ("xdp", "xdpgeneric"):
            _out(["ip", "link", "set", "dev", ifname, mode, "off"])
        done.append(f"xdp {ifname}")
    for ifname in data.get("clsact", []):       # af_packet's drop after the tap
        _out(["tc", "qdisc", "del", "dev", ifname, "clsact"])
        done.append(f"clsact {ifname}")
    for ifname, ip in data.get("neigh", []):
        _out(["ip", "neigh", "del", ip, "dev", ifname])
        done.append(f"neighbour {ip} on {ifname}")
    for d in data.get("dirs", []):
        if os.path.isdir(d):
            shutil.rmtree(d, ignore_errors=True)
            done.append(f"directory {d}")
    for f in (pidfile, record_path):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    return done


def cmd_release(paths):
    done = []
    for p in paths:
        try:
            with open(p) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        done += release(data, p)
    return done


def cmd_buildinfo(build):
    """The compiler and the sha256 of every tool a build made."""
    import hashlib
    tools = {}
    for f in sorted(os.listdir(build)):
        path = os.path.join(build, f)
        if os.path.isfile(path) and (os.access(path, os.X_OK) or f.endswith(".bpf.o")) \
                and not f.endswith((".o", ".d")) or f.endswith(".bpf.o"):
            with open(path, "rb") as fh:
                tools[f] = hashlib.sha256(fh.read()).hexdigest()
    cc = _out(["cc", "--version"])[1].splitlines()
    clang = _out(["clang", "--version"])[1].splitlines()
    return {"cc": cc[0] if cc else "", "clang": clang[0] if clang else "", "tools": tools,
            "built_at": time.time()}


def cmd_serve():
    """Requests on stdin, one JSON line each; a JSON line answers each. The
    controller keeps this open for a cell: a command costs a line each way
    instead of an SSH channel and a process start. Exits when stdin closes."""
    for line in sys.stdin:
        try:
            req = json.loads(line)
            op = req["op"]
            if op == "run":
                try:
                    p = subprocess.run(req["argv"], capture_output=True, text=True,
                                       timeout=req.get("timeout", 30),
                                       input=req.get("input"),
                                       stdin=None if req.get("input") is not None
                                       else subprocess.DEVNULL)
                    out = {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
                except FileNotFoundError:
                    out = {"rc": 127, "stdout": "", "stderr": f"{req['argv'][0]}: command not found"}
                except subprocess.TimeoutExpired:
                    out = {"rc": 124, "stdout": "", "stderr": f"timed out after {req.get('timeout')} s"}
            elif op == "put":
                tmp = req["path"] + ".tmp"
                with open(tmp, "w") as f:
                    f.write(req["data"])
                os.chmod(tmp, req.get("mode", 0o644))
                os.replace(tmp, req["path"])
                out = {"rc": 0}
            elif op == "hello":
                out = {"rc": 0, "result": cmd_hello(req["spec"])}
            elif op == "gather":
                out = {"rc": 0, "result": cmd_gather(req["spec"])}
            elif op == "kthreads":
                out = {"rc": 0, "result": cmd_kthreads(req["prefix"])}
            elif op == "release":
                out = {"rc": 0, "result": cmd_release(req["paths"])}
            else:
                out = {"rc": 2, "stderr": f"unknown op {op}"}
        except Exception as e:      # answer, whatever went wrong
            out = {"rc": 1, "stderr": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    return 0


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "serve":
        return cmd_serve()
    if cmd == "buildinfo":
        out = cmd_buildinfo(args[0])
    elif cmd == "run":
        return cmd_run(args)
    elif cmd == "hello":
        out = cmd_hello(json.loads(args[0]))
    elif cmd == "gather":
        out = cmd_gather(json.loads(args[0]))
    elif cmd == "kthreads":
        out = cmd_kthreads(args[0])
    elif cmd == "release":
        out = cmd_release(args)
    else:
        sys.stderr.write(f"remote.py: unknown command {cmd}\n")
        return 2
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
