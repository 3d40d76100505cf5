"""What the g5k platform reads from its configuration section
(platforms.g5k), and the facts about Grid'5000 it relies on: OAR's job
states as the REST API spells them, the sites' time zone for advance
reservations, and the walltime a campaign needs. Pure: no API, no I/O, so
the configuration check (rxbench.config) can use it before anything runs."""

from __future__ import annotations

import datetime as dt
import math
import re
from zoneinfo import ZoneInfo

from .api import G5kError

KIND = "g5k"

# OAR's job states as the REST API gives them: it lower-cases OAR's own
# names (toLaunch -> tolaunch); see the API's OAR::Job#state.
RUNNING = "running"
PENDING = ("waiting", "hold", "tolaunch", "toackreservation", "launching", "resuming",
           "suspended")
ENDED = ("finishing", "terminated", "error", "toerror")

# OAR reads an advance reservation's date in the site's local time; every
# site is in France except Luxembourg (same offsets)
SITE_TZ = {"luxembourg": "Europe/Luxembourg"}
DEFAULT_TZ = "Europe/Paris"
OAR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

SENDER_IP, RECEIVER_IP, PREFIX = "198.18.0.1", "198.18.0.2", 30

# platforms.g5k keys and their defaults (config/g5k.yaml explains each)
DEFAULTS = {
    "nodes": 2, "walltime": "auto", "reservation": None, "queue": None, "exotic": False,
    "job_name": None, "properties": {}, "extra_properties": None,
    "start_timeout_s": 3600, "poll_s": 10, "progress_s": 60,
    "environment": "debian12-min", "expect_os": None, "kernel_min": None,
    "deploy_retries": 2, "deploy_timeout_s": 1800, "check_environment": True,
    "ssh_key": "~/.ssh/id_rsa", "gateway": "access.grid5000.fr", "gateway_user": None,
    "test_interface": None, "nic_driver": None, "kavlan": False,
    "sender_cpus": [0], "receiver_cpus": [1], "napi_cpus": None, "mtu": 1500,
    "cell_overhead_s": 20, "setup_s": 1200, "api_outage_s": 300,
}


def settings(cfg: dict) -> dict:
    """platforms.g5k over the defaults. The walltime must be a duration by
    now: rxbench.config.resolve sizes `auto` from the whole campaign
    before any cell runs (a cell's own configuration holds one layer)."""
    p = {**DEFAULTS, **(cfg.get("platforms", {}).get(KIND) or {})}
    for k in ("site", "cluster"):
        if not p.get(k):
            raise G5kError(f"config key platforms.g5k.{k} is required for platform g5k "
                           f"(copy config/g5k.yaml)")
    if p["walltime"] == "auto":
        raise G5kError("config key platforms.g5k.walltime: still 'auto'; the campaign's "
                       "configuration (rxbench.config.resolve) sizes it before a cell runs")
    return p


def site_tz(site: str) -> ZoneInfo:
    return ZoneInfo(SITE_TZ.get(site, DEFAULT_TZ))


def reservation_problem(value) -> str | None:
    """Why `value` is not an OAR reservation date ('YYYY-MM-DD HH:MM:SS',
    the site's local time), or None."""
    s = str(value)
    if not OAR_DATE.match(s):
        hint = " (a space, not 'T', between date and time)" if "T" in s else ""
        return (f"{s!r} is not in OAR's format 'YYYY-MM-DD HH:MM:SS' (the site's local "
                f"time, Europe/Paris){hint}")
    try:
        dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S")
    except ValueError as e:
        return f"{s!r} is not a date ({e})"
    return None


def reservation_ts(p: dict) -> float | None:
    """The reservation's start as a Unix time: OAR reads the date in the
    site's local time zone, not UTC."""
    if not p.get("reservation"):
        return None
    why = reservation_problem(p["reservation"])
    if why:
        raise G5kError(f"config key platforms.g5k.reservation: {why}")
    d = dt.datetime.strptime(str(p["reservation"]), "%Y-%m-%d %H:%M:%S")
    return d.replace(tzinfo=site_tz(p["site"])).timestamp()


def local_time(site: str, ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, site_tz(site)).strftime("%Y-%m-%d %H:%M %Z")


def walltime_s(p: dict, cell_seconds: list[float]) -> int:
    """setup_s + each cell's (warm-up + measured interval) + cell_overhead_s,
    rounded up to a minute."""
    total = float(p.get("setup_s", DEFAULTS["setup_s"]))
    overhead = float(p.get("cell_overhead_s", DEFAULTS["cell_overhead_s"]))
    total += sum(s + overhead for s in cell_seconds)
    return int(math.ceil(total / 60.0) * 60)


def hours_minutes(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"
