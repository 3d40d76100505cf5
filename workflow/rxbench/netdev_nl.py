"""An interface's queues as the kernel's netdev netlink family tells them
(Documentation/netlink/specs/netdev.yaml, Linux >= 6.8; qstats >= 6.9):
each queue's NAPI instance, that NAPI's IRQ and kthread (threaded NAPI),
and per-queue packet counters (qstats) where the driver has them (virtio_net
since 6.10 keeps per-queue packets there, no longer in ethtool -S). The
standard library only: it runs on the test hosts as

    python3 -m rxbench.netdev_nl IFNAME     # one JSON line

{"queues": [{"id", "type", "napi_id"}], "napis": [{"id", "irq", "pid"}],
 "qstats": {"rx": {QUEUE: PACKETS}, "tx": {...}}, "error": ...}: a part the
kernel cannot give is left empty and the reason is in "error".
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
# netdev.yaml: commands and attributes
CMD_QUEUE_GET, CMD_NAPI_GET, CMD_QSTATS_GET = 10, 11, 12
QUEUE_ID, QUEUE_IFINDEX, QUEUE_TYPE, QUEUE_NAPI_ID = 1, 2, 3, 4
NAPI_IFINDEX, NAPI_ID, NAPI_IRQ, NAPI_PID = 1, 2, 3, 4
QSTATS_IFINDEX, QSTATS_QUEUE_TYPE, QSTATS_QUEUE_ID, QSTATS_SCOPE = 1, 2, 3, 4
QSTATS_RX_PACKETS, QSTATS_TX_PACKETS = 8, 10
QSTATS_SCOPE_QUEUE = 1
QUEUE_TYPES = {0: "rx", 1: "tx"}


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i + 4 <= len(data):
        n, kind = struct.unpack_from("HH", data, i)
        if n < 4:
            break
        out[kind & 0x3fff] = data[i + 4:i + n]
        i += (n + 3) & ~3
    return out


def _int(b: bytes) -> int:
    return int.from_bytes(b, sys.byteorder)


class Genl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.seq = 0

    def request(self, family: int, cmd: int, attrs: bytes, dump: bool) -> list[dict]:
        self.seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        body = struct.pack("BBH", cmd, 1, 0) + attrs
        self.sock.send(struct.pack("IHHII", 16 + len(body), family, flags, self.seq, 0) + body)
        out = []
        while True:
            data = self.sock.recv(1 << 20)
            i = 0
            while i + 16 <= len(data):
                n, kind, _flags, seq, _pid = struct.unpack_from("IHHII", data, i)
                if seq != self.seq:     # an earlier request's ACK, left unread
                    i += (n + 3) & ~3
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    err = struct.unpack_from("i", data, i + 16)[0]
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return out
                out.append(_attrs(data[i + 20:i + n]))
                i += (n + 3) & ~3
            if not dump and out:
                return out

    def family(self, name: str) -> int:
        reply = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                             _attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"), dump=False)
        return _int(reply[0][CTRL_ATTR_FAMILY_ID])


def probe(ifname: str) -> dict:
    out: dict = {"ifname": ifname, "queues": [], "napis": [], "qstats": {}, "error": []}
    try:
        ifindex = socket.if_nametoindex(ifname)
        nl = Genl()
        fam = nl.family("netdev")
    except OSError as e:
        out["error"].append(f"netdev netlink: {e}")
        return out
    u32 = lambda k, v: _attr(k, struct.pack("I", v))  # noqa: E731
    try:
        for a in nl.request(fam, CMD_QUEUE_GET, u32(QUEUE_IFINDEX, ifindex), dump=True):
            if QUEUE_IFINDEX in a and _int(a[QUEUE_IFINDEX]) != ifindex:
                continue
            out["queues"].append({"id": _int(a.get(QUEUE_ID, b"\0")),
                                  "type": QUEUE_TYPES.get(_int(a.get(QUEUE_TYPE, b"\0")), "?"),
                                  "napi_id": _int(a[QUEUE_NAPI_ID]) if QUEUE_NAPI_ID in a
                                  else None})
    except OSError as e:
        out["error"].append(f"queue-get: {e}")
    try:
        for a in nl.request(fam, CMD_NAPI_GET, u32(NAPI_IFINDEX, ifindex), dump=True):
            if NAPI_IFINDEX in a and _int(a[NAPI_IFINDEX]) != ifindex:
                continue
            out["napis"].append({"id": _int(a.get(NAPI_ID, b"\0")),
                                 "irq": _int(a[NAPI_IRQ]) if NAPI_IRQ in a else None,
                                 "pid": _int(a[NAPI_PID]) if NAPI_PID in a else None})
    except OSError as e:
        out["error"].append(f"napi-get: {e}")
    try:
        req = u32(QSTATS_IFINDEX, ifindex) + u32(QSTATS_SCOPE, QSTATS_SCOPE_QUEUE)
        for a in nl.request(fam, CMD_QSTATS_GET, req, dump=True):
            if _int(a.get(QSTATS_IFINDEX, b"\0")) != ifindex:
                continue
            kind = QUEUE_TYPES.get(_int(a.get(QSTATS_QUEUE_TYPE, b"\0")), "?")
            key = QSTATS_RX_PACKETS if kind == "rx" else QSTATS_TX_PACKETS
            if key in a:
                out["qstats"].setdefault(kind, {})[str(_int(a[QSTATS_QUEUE_ID]))] = _int(a[key])
    except OSError as e:
        out["error"].append(f"qstats-get: {e}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m rxbench.netdev_nl IFNAME", file=sys.stderr)
        return 2
    print(json.dumps(probe(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
