"""Small helpers: running commands, atomic writes, logging."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import RxbenchError


class CommandError(RxbenchError):
    pass


def run(cmd: list[str], *, check: bool = True, timeout: float = 30, log=None) -> str:
    """Run a short command, return stdout; raise CommandError naming the
    command and its stderr when it fails and check is set."""
    if log:
        log(f"$ {shlex.join(cmd)}")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CommandError(f"{cmd[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"{shlex.join(cmd)}: timed out after {timeout} s") from None
    if check and p.returncode != 0:
        err = (p.stderr or p.stdout).strip().splitlines()
        raise CommandError(f"{shlex.join(cmd)} failed ({p.returncode}): "
                           f"{err[-1] if err else 'no output'}")
    return p.stdout


def atomic_write(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename, so a
    reader never sees a partial file and a crash leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)     # mkstemp makes 0600: results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


class Log:
    """Timestamped lines to a file (the cell's .log) and, optionally, stderr."""

    def __init__(self, path: str | Path | None = None, echo: bool = False):
        self.t0 = time.monotonic()
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", buffering=1) if path else None
        self.echo = echo

    def __call__(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:8.3f}] {msg}"
        if self.f:
            self.f.write(line + "\n")
        if self.echo or not self.f:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.f:
            self.f.close()
            self.f = None
