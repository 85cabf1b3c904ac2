"""Run the real `harness` CLI in a child Python that reports its own peak RSS when it exits
(VmHWM of /proc/self/status: the harness alone, not QEMU). For the hostile-guest drill
(test_vm_hostile). Not getrusage's ru_maxrss: Linux carries that across execve, so a child forked
from a big pytest process reports the parent's size (512 MiB in a whole CI run)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_WRAPPER = (
    "import atexit, runpy, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
    "    return -1\n"
    "atexit.register(lambda: print(f'harness-peak-rss-kib={hwm()}', file=sys.stderr, flush=True))\n"
    "sys.argv = ['harness'] + sys.argv[1:]\n"
    "runpy.run_module('harness.cli', run_name='__main__')\n"
)
_RSS = re.compile(r"harness-peak-rss-kib=(\d+)")


@dataclass
class Measured:
    rc: int
    stdout: str
    stderr: str
    peak_rss_mib: float
    wall_s: float


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )


def finish(p: subprocess.Popen[str], t0: float, timeout_s: float = 600) -> Measured:
    out, err = p.communicate(timeout=timeout_s)
    m = _RSS.search(err)
    return Measured(p.returncode, out, err, int(m.group(1)) / 1024 if m else -1.0, time.monotonic() - t0)


def run(*args: str, timeout_s: float = 600) -> Measured:
    t0 = time.monotonic()
    return finish(start(*args), t0, timeout_s)


def report_line(name: str, m: Measured, out: Path) -> str:
    """One line for the drill's record: exit code, peak RSS, wall time and the run dir."""
    return f"{name}: exit {m.rc}, peak RSS {m.peak_rss_mib:.0f} MiB, {m.wall_s:.0f} s, run dir {out}"
