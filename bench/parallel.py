#!/usr/bin/env python3
"""Matrix throughput: the same work with -j 1 and with -j 2 (or -j N), as a ratio.

The work is a kernel matrix (default debian:6.12 and debian:6.1.0-56) over a --filter'ed slice of
the suites, each (kernel, repeat) booting its own guest. Rounds alternate (-j 1, -j N, -j 1, ...)
so machine noise hits both. Throughput = cases judged per wall-clock second; the figure printed
is the median throughput of -j N over that of -j 1.

Usage: bench/parallel.py [--kernel SPEC]... [--filter GLOB]... [--jobs N] [--repeat N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KERNELS = ["debian:6.12", "debian:6.1.0-56"]
DEFAULT_FILTERS = ["cow.vmsplice.unmap-in-child.*", "cow.unshare.*"]


def one(jobs: int, a: argparse.Namespace, out: Path) -> tuple[float, int, int]:
    argv = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--out",
        str(out),
        "-j",
        str(jobs),
        "--repeat",
        str(a.repeat),
    ]
    for k in a.kernel or DEFAULT_KERNELS:
        argv += ["--kernel", k]
    for f in a.filter or DEFAULT_FILTERS:
        argv += ["--filter", f]
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode not in (0, 1):
        sys.exit(f"bench: harness run -j {jobs} exited {p.returncode}:\n{p.stderr[-3000:]}")
    runs = sum(
        1 for line in (out / "results.jsonl").read_text().splitlines() for _ in json.loads(line)["verdicts"]
    )
    return wall, runs, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", action="append")
    ap.add_argument("--filter", action="append")
    ap.add_argument("--jobs", type=int, default=2, help="the parallel side (default 2)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    walls: dict[int, list[float]] = {1: [], a.jobs: []}
    cases = 0
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        for r in range(a.rounds):
            for jobs in (1, a.jobs):
                wall, cases, rc = one(jobs, a, Path(tmp) / f"r{r}-j{jobs}")
                walls[jobs].append(wall)
                print(
                    f"round {r + 1}: -j {jobs}: {cases} case runs in {wall:.1f} s "
                    f"({cases / wall:.2f} cases/s, exit {rc})",
                    flush=True,
                )
    med = {j: statistics.median(w) for j, w in walls.items()}
    print(f"median wall: -j 1 {med[1]:.1f} s, -j {a.jobs} {med[a.jobs]:.1f} s")
    print(f"throughput -j {a.jobs} / -j 1: {med[1] / med[a.jobs]:.2f}x  ({cases} case runs per matrix)")


if __name__ == "__main__":
    main()
