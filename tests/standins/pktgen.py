"""A stand-in for Pktgen-DPDK 24.10.3 where rxbench.stacks.pktgen_dpdk cares:

- without a terminal on stdin it exits at once ("scrn_create: tcgetattr
  failed"), as 24.10.3 does;
- it runs the -f command file; `start 0` starts "sending": opackets grows
  by 1000 every 10 ms;
- the EAL telemetry socket <runtime-dir>/dpdk_telemetry.v2 (SOCK_SEQPACKET,
  the version greeting, `/ethdev/stats,0`: null for its first 0.5 s, before
  the EAL has probed the port, as the real one answers then); --file-prefix P puts it in
  $FAKE_DPDK_RUNTIME/P;
- `quit` on its terminal ends it; $FAKE_PKTGEN_NO_PORT=1: "No Ethernet
  ports found" and exit, as with a vdev that cannot attach.
"""

import json
import os
import socket
import sys
import threading
import time


def main():
    if not os.isatty(0):
        print("scrn_create: tcgetattr failed", flush=True)
        sys.exit(1)
    args = sys.argv[1:]
    prefix = args[args.index("--file-prefix") + 1]
    cmds = open(args[args.index("-f") + 1]).read().split("\n") if "-f" in args else []
    if os.environ.get("FAKE_PKTGEN_NO_PORT"):
        print("EAL: No Ethernet ports found - bye", flush=True)
        sys.exit(1)
    born = time.monotonic()
    rundir = os.path.join(os.environ["FAKE_DPDK_RUNTIME"], prefix)
    os.makedirs(rundir, exist_ok=True)
    t0 = [None]
    if "start 0" in cmds:
        t0[0] = time.monotonic()

    def opackets():
        return 0 if t0[0] is None else int((time.monotonic() - t0[0]) * 100) * 1000

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(os.path.join(rundir, "dpdk_telemetry.v2"))
    srv.listen(1)

    def serve():
        while True:
            c, _ = srv.accept()
            c.send(json.dumps({"version": "DPDK 24.11.8", "pid": os.getpid(),
                               "max_output_len": 16384}).encode())
            while True:
                q = c.recv(1024)
                if not q:
                    break
                n = opackets()
                if time.monotonic() - born < 0.5:    # the port is not probed yet: null
                    c.send(json.dumps({"/ethdev/stats": None}).encode())
                    continue
                c.send(json.dumps({"/ethdev/stats": {"ipackets": 0, "opackets": n, "ibytes": 0,
                                                     "obytes": n * 60, "imissed": 0, "ierrors": 0,
                                                     "oerrors": 0, "rx_nombuf": 0}}).encode())

    threading.Thread(target=serve, daemon=True).start()
    print("Pktgen:/> ", end="", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break


if __name__ == "__main__":
    main()
