"""A platform for the lease tests: its "resource" is a real process."""

import os
import signal
import subprocess
import time

from rxbench.state import alive, pid_start


def lease_up(cfg, record, log):
    if cfg.get("fail"):
        raise RuntimeError("the dummy platform was told to fail")
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    record.add("pids", [p.pid, pid_start(p.pid)])
    time.sleep(cfg.get("up_s", 0))
    return {"sender": {"address": "198.19.0.2"}, "pid": p.pid}


def lease_down(record, log):
    for pid, start in record.get("pids", []):
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)
    log("dummy released")
