#!/usr/bin/env python3
"""`snakemake --lint`, with the warnings workflow/LINT.md lists (and says why
they stay) allowed: exit 1 naming every warning not listed. Usage (from the
checkout): lint-check.py SNAKEMAKE [ARGS...]"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ROOT / "workflow" / "LINT.md"
HEADER = re.compile(r"Lints for (?:rule (\S+) \(line \d+, .+\)|snakefile (.+)):$")
ITEM = re.compile(r"    \* (.+?):?$")


def warnings(text: str) -> list[tuple[str, str]]:
    """(target, title) of every warning in snakemake --lint's text output."""
    out, target = [], None
    for line in text.splitlines():
        m = HEADER.match(line.rstrip())
        if m:
            target = (f"rule {m.group(1)}" if m.group(1) else
                      f"snakefile {Path(m.group(2)).resolve().relative_to(ROOT)}")
            continue
        m = ITEM.match(line.rstrip())
        if m and target:
            out.append((target, m.group(1).rstrip(":")))
    return out


def allowed(md: str) -> list[tuple[str, str]]:
    rows = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and cells[0] not in ("target", "---"):
            if not cells[2]:
                sys.exit(f"{ALLOWED}: the row for {cells[0]} / {cells[1]} gives no reason")
            rows.append((cells[0], cells[1].rstrip(":")))
    return rows


def main() -> int:
    p = subprocess.run([*sys.argv[1:], "--lint"], cwd=ROOT, capture_output=True, text=True)
    found = warnings(p.stdout + p.stderr)
    if p.returncode not in (0, 1) or (p.returncode == 1 and not found):
        sys.stderr.write(p.stdout + p.stderr)
        print(f"lint-check: snakemake --lint failed ({p.returncode})", file=sys.stderr)
        return 2
    rows = allowed(ALLOWED.read_text())
    new = [w for w in found if not any(t in ("*", w[0]) and lint == w[1] for t, lint in rows)]
    for t, lint in rows:
        if not any(t in ("*", w[0]) and lint == w[1] for w in found):
            print(f"lint-check: {t}: '{lint}' no longer occurs: remove its row from {ALLOWED.name}")
    for target, lint in new:
        print(f"lint-check: {target}: {lint} (not in workflow/{ALLOWED.name})", file=sys.stderr)
    print(f"lint-check: {len(found)} warning(s), {len(found) - len(new)} listed in "
          f"workflow/{ALLOWED.name}, {len(new)} not")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
