"""Cell JSONs -> results/{platform}/summary.csv (docs/results.md): one row per cell
repetition; figures and tables read only this file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .result import load_result
from .util import atomic_write

COLUMNS = ["platform", "layer", "stack", "cores", "size", "conns", "msg", "napi", "touch",
           "rep", "status", "reason", "offered_pps", "rx_pps", "rx_gbps", "offered_gbps",
           "generator_bound", "bottleneck", "saturated_cpus", "cpu_ns_per_pkt",
           "cpu_ns_per_byte", "duration_s", "sent_packets", "rx_packets", "sent_bytes",
           "rx_bytes", "kernel", "cpu_model", "nic_driver", "git_rev", "started_at", "path"]

# sender_path fields that become summary columns (sender_<name>)
SENDER_PATH = ("cpu_ns_per_byte", "proc_ns_per_byte", "bytes_per_packet", "bytes_per_ack", "bytes_per_segment",
               "sends_per_turn", "rps_ipis_per_mb")


def row(data: dict, path: str) -> dict:
    r = {k: data.get(k) for k in ("platform", "layer", "stack", "rep", "status", "reason",
                                   "offered_pps", "rx_pps", "rx_gbps", "offered_gbps",
                                   "generator_bound", "bottleneck", "cpu_ns_per_pkt",
                                   "cpu_ns_per_byte", "duration_s", "sent_packets",
                                   "rx_packets", "sent_bytes", "rx_bytes", "generator")}
    r.update(data.get("params", {}))
    sat = data.get("saturated_cpus")
    r["saturated_cpus"] = " ".join(map(str, sat)) if sat else ""
    for k, v in (data.get("drops") or {}).items():
        r[f"drops_{k}"] = v
    for cpu, v in (data.get("cpu") or {}).items():
        r[f"cpu{cpu}_busy_s"] = v.get("busy_s")
    # [tcp] the sender's cost per byte and what it bought (analysis.sender_path)
    sp = data.get("sender_path") or {}
    for k in SENDER_PATH:
        if sp.get(k) is not None:
            r[f"sender_{k}"] = sp[k]
    if (sp.get("softirqs_per_mb") or {}).get("HRTIMER") is not None:
        r["sender_hrtimer_per_mb"] = sp["softirqs_per_mb"]["HRTIMER"]
    # [tcp] a rate-limited sender: did it reach its goodput target (the cell's
    # own verdict, stacks/tcp.py; the presenting side reads only this column)
    if isinstance(data.get("load"), dict) and data["load"].get("reached") is not None:
        r["load_reached"] = bool(data["load"]["reached"])
    # [eth] a paced generator: the receive CPUs' busy share at that load and
    # how far the offered rate was from the target
    # [eth] did the receive CPUs' accounting agree with the wall clock
    # (analysis.cpu_window's check; steal on a virtual CPU breaks it)?
    chk = (data.get("cpu_check") or {}).get("receiver")
    place = data.get("placement") or {}
    if isinstance(chk, dict) and place and data.get("layer") == "eth":
        receive = {str(c) for c in place.get("application", [])} | \
            {str(c) for c in (place.get("napi") or {}).get("cpus", [])}
        r["receiver_cpu_ok"] = not (receive & {str(c) for c in chk.get("deviating", [])})
    if data.get("receiver_cpu_frac") is not None:
        r["receiver_cpu_frac"] = data["receiver_cpu_frac"]
    if isinstance(data.get("load"), dict) and data["load"].get("error_pct") is not None:
        r["load_error_pct"] = data["load"]["error_pct"]
    if data.get("congestion_control"):
        r["congestion_control"] = data["congestion_control"]
    r["pingpong_ns"] = (data.get("host_probe") or {}).get("pingpong_ns")
    # [eth] the probe inside the measured interval and the steady-state check
    r["pingpong_during_ns"] = (data.get("host_probe_during") or {}).get("pingpong_ns")
    steady = data.get("steady_state") or {}
    r["steady"] = steady.get("steady")
    r["steady_drift"] = steady.get("drift")
    ndr = data.get("ndr") or {}
    if ndr:
        r.update({"ndr_pps": ndr.get("ndr_pps"), "pdr_pps": ndr.get("pdr_pps"),
                  "ndr_trials": ndr.get("trials"), "pdr_loss_ratio": ndr.get("pdr_loss_ratio")})
    prov = data.get("provenance", {})
    # [vm] the guests' accelerator (tcg: rates say nothing about the stacks)
    plat = prov.get("platform") if isinstance(prov.get("platform"), dict) else {}
    accel = data.get("accel") or plat.get("accel")
    if accel:
        r["accel"] = accel
    r.update({"kernel": prov.get("kernel"), "cpu_model": prov.get("cpu_model"),
              "nic_driver": prov.get("nic_driver"), "git_rev": prov.get("git_rev"),
              "started_at": prov.get("started_at"), "path": path})
    return r


def summarize(paths: list[str]) -> pd.DataFrame:
    rows = [row(load_result(p), str(p)) for p in paths]
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    extra = sorted(c for c in df.columns if c not in COLUMNS)
    df = df[COLUMNS + extra]
    return df.sort_values(["layer", "stack", "cores", "size", "conns", "msg", "napi", "touch",
                           "rep"],
                          na_position="first", kind="stable").reset_index(drop=True)


def write_summary(paths: list[str], out: str | Path) -> pd.DataFrame:
    df = summarize(paths)
    atomic_write(out, df.to_csv(index=False))
    return df


def read_summary(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)
