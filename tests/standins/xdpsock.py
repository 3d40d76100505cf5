"""A stand-in for upstream xdpsock (bpf-examples AF_XDP-example/xdpsock.c)
in rxdrop mode, behaving as its source does where rxbench.stacks.xdpsock cares:

- the same statistics block every -n seconds (" sock0@IF:0 rxdrop xdp-drv
  poll() ", the pps/pkts header, rx, tx and with -x the XDP_STATISTICS rows);
- SIGINT/SIGTERM only set a flag, installed after the socket exists; in -p
  mode the receive loop `continue`s when poll() (1 s) times out, before it
  checks the flag, so without traffic it never ends; -d is checked by the
  statistics thread, which only sets the same flag;
- it attaches an XDP program to -i IF (here: the object in
  $FAKE_XDPSOCK_PROG, section "xdp", by `ip link`) and detaches it when it
  ends normally, as xsk_socket__delete does; SIGKILLed, it leaves it;
- $FAKE_XDPSOCK_MEMLOCK=fail: the refusal to raise RLIMIT_MEMLOCK, as
  printed on a host whose root lacks CAP_SYS_RESOURCE.

Packets come from an AF_PACKET socket on IF (the XDP program passes them),
or, with no -i (unit tests without root), from a feeder thread that writes
one byte every 10 ms to a socketpair for $FAKE_XDPSOCK_TRAFFIC_S seconds.
"""

import getopt
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time


def block(ifname, poll, rx, dt, extra):
    lines = [f"\n sock0@{ifname}:0 rxdrop xdp-drv {'poll() ' if poll else ''}",
             f"{'':18} {'pps':14} {'pkts':14} {dt:<14.2f}",
             f"{'rx':18} {0:<14} {rx:<14}", f"{'tx':18} {0:<14} {0:<14}"]
    if extra:
        lines += [f"{k:18} {0:<14} {0:<14}" for k in
                  ("rx dropped", "rx invalid", "tx invalid", "rx queue full",
                   "fill ring empty", "tx ring empty")]
    print("\n".join(lines), flush=True)


def main():
    opts, _ = getopt.getopt(sys.argv[1:], "rtli:q:pSNn:w:O:czf:muMd:b:C:s:P:VJ:K:G:H:T:yW:U:xQaI:BR")
    o = dict(opts)
    ifname, poll, extra = o.get("-i", "fake"), "-p" in o, "-x" in o
    interval, duration = int(o.get("-n", 1)), int(o.get("-d", 0))
    if os.environ.get("FAKE_XDPSOCK_MEMLOCK") == "fail":
        print('ERROR: setrlimit(RLIMIT_MEMLOCK) "Operation not permitted"', file=sys.stderr)
        sys.exit(1)
    prog = os.environ.get("FAKE_XDPSOCK_PROG")
    if "-i" in o:
        if prog:
            subprocess.run(["ip", "link", "set", "dev", ifname, "xdpdrv", "obj", prog,
                            "sec", "xdp"], check=True)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        sock.bind((ifname, 0))
    else:
        sock, feed = socket.socketpair()
        stop_feed = time.monotonic() + float(os.environ.get("FAKE_XDPSOCK_TRAFFIC_S", "0"))

        def feeder():
            while time.monotonic() < stop_feed:
                feed.send(b"x")
                time.sleep(0.01)
        threading.Thread(target=feeder, daemon=True).start()
    sock.setblocking(False)
    state = {"rx": 0, "done": False}
    signal.signal(signal.SIGINT, lambda *a: state.update(done=True))
    signal.signal(signal.SIGTERM, lambda *a: state.update(done=True))
    start = prev = time.monotonic()

    def poller():
        nonlocal prev
        while not state["done"]:
            time.sleep(interval)
            now = time.monotonic()
            block(ifname, poll, state["rx"], now - prev, extra)
            prev = now
            if duration and now - start >= duration:
                state["done"] = True
    t = threading.Thread(target=poller, daemon=True)
    t.start()
    while True:
        if poll:
            ready, _, _ = select.select([sock], [], [], 1.0)
            if not ready:
                continue
        else:
            time.sleep(0.001)
        for _ in range(64):
            try:
                sock.recv(2048)
            except BlockingIOError:
                break
            state["rx"] += 1
        if state["done"]:
            break
    t.join()
    block(ifname, poll, state["rx"], time.monotonic() - prev, extra)
    if "-i" in o and prog:
        subprocess.run(["ip", "link", "set", "dev", ifname, "xdpdrv", "off"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
