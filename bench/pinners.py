#!/usr/bin/env python3
"""What the long-term pinners cost a run: boot-to-first-test and whole-run time of one case
without them, with the RDMA setup (NIC, rdma_rxe and its modules, `rdma link add`), and with the
harness_pin module (built once per kernel and cached; loaded at boot), side by side.

Runs alternate (plain, rdma, pin, plain, ...) so machine noise hits all three. Prints medians and
ratios against the plain run. Usage: bench/pinners.py [--kernel SPEC] [--rounds N]
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

VARIANTS = {
    "plain": "cow.iouring-register-ok.base",  # no NIC, no RDMA, no pin module
    "rdma": "cow.rdma-rw.private.base",  # + virtio_net, rdma_rxe & deps, rxe0
    "pin": "cow.gup-pin-ro.exclusive.base",  # + harness_pin.ko (insmod at boot)
}


def one(kernel: str, case: str, out: Path) -> tuple[float, float]:
    t0 = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--kernel",
            kernel,
            "--filter",
            case,
            "--out",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(
            f"bench/pinners.py: {case} on {kernel} exited {r.returncode}: {r.stderr.strip()[-300:]}"
        )
    fp = json.loads((out / "fingerprint.json").read_text())
    return float(fp["boot_to_first_test_s"]), wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="debian:6.12")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    got: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-pinners-") as tmp:
        one(a.kernel, VARIANTS["pin"], Path(tmp) / "warm")  # builds and caches the module
        for i in range(a.rounds):
            for v, case in VARIANTS.items():
                got[v].append(one(a.kernel, case, Path(tmp) / f"{v}-{i}"))
                print(
                    f"round {i + 1}/{a.rounds} {v:5s}: first test at {got[v][-1][0]:.1f} s, "
                    f"run {got[v][-1][1]:.1f} s",
                    file=sys.stderr,
                )
    base_first = statistics.median(x for x, _ in got["plain"])
    base_wall = statistics.median(w for _, w in got["plain"])
    print(f"kernel {a.kernel}, {a.rounds} rounds, medians (ratio to plain):")
    for v in VARIANTS:
        first = statistics.median(x for x, _ in got[v])
        wall = statistics.median(w for _, w in got[v])
        print(
            f"  {v:5s}  boot to first test {first:5.1f} s ({first / base_first:.2f}x)   "
            f"whole run {wall:5.1f} s ({wall / base_wall:.2f}x, {wall - base_wall:+.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
