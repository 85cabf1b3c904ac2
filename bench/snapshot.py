#!/usr/bin/env python3
"""Cold boots against restores from the snapshot cache, side by side in one run.

Rows (medians over --rounds, each a real `harness run` in a subprocess):
  first test   a fresh guest to the first test command: cold (--snapshot off) vs restored
  default run  the whole default run: cold vs from the cache vs the bare static-init floor
               (bench/boot.py's bare run: same kernel, busybox init, the static cow binaries)
  panic reboot the fault drill's reboot after its panic: cold vs restored
  repeat 5     `--repeat 5` of --filter: cold vs from the cache
  isolate      the default run with `--isolate program` vs the plain run, both from the cache
Usage: bench/snapshot.py [--kernel SPEC] [--rounds N] [--repeat-filter GLOB]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import boot as bootbench  # noqa: E402

from harness.kernels import kernel
from harness.suites import registry as suites  # noqa: E402
from harness.vm import snapshot


def run(args: list[str], out: Path) -> tuple[float, dict]:
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--out", str(out), "--out-reuse", "-q", *args],
        capture_output=True,
        check=False,
    )
    wall = time.monotonic() - t0
    fp = out / "fingerprint.json"
    return wall, (json.loads(fp.read_text()) if fp.is_file() else {})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default="debian:6.12")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--repeat-filter", default="cow.fork.*")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep the run dirs here (default: a temp dir)")
    a = ap.parse_args()
    k = kernel.resolve(a.kernel)
    kk = ["--kernel", a.kernel]
    rows: dict[str, list[float]] = {}

    def add(name: str, v: float) -> None:
        rows.setdefault(name, []).append(v)

    with tempfile.TemporaryDirectory() as tmp:
        t = a.keep or Path(tmp)
        t.mkdir(parents=True, exist_ok=True)
        bootbench.bare_initramfs(
            k, [p for p in suites.programs(["cow"]) if not p.guest_interp], t / "bare.cpio"
        )
        run(kk, t / "warm")  # saves the default run's snapshot (if not cached yet)
        run(kk + ["--suite", "faults", "--timeout", "20"], t / "warm-faults")
        accel = "tcg"
        for _ in range(a.rounds):
            add("default run: bare floor", bootbench.bare_run(k, t / "bare.cpio", accel, t)[1])
            w, fp = run(kk + ["--snapshot", "off"], t / "cold")
            add("default run: cold", w)
            add("first test: cold", fp["guest_to_first_test_s"])
            w, fp = run(kk, t / "cached")
            add("default run: cached", w)
            add(
                "snapshot MiB (default run)",
                float(next((e.size_bytes() for e in snapshot.entries() if e.key == fp["snapshot"]["key"]), 0))
                / 2**20,
            )
            add("first test: restored", fp["guest_to_first_test_s"])
            w, fp = run(kk + ["--isolate", "program"], t / "isolate")
            add("isolate program: cached", w)
            for how in ("off", "auto"):
                _, fp = run(
                    kk + ["--suite", "faults", "--timeout", "20", "--snapshot", how], t / f"faults-{how}"
                )
                add(
                    f"panic reboot: {'cold' if how == 'off' else 'restored'}",
                    max((r["reboot_s"] for r in fp.get("reboots", [])), default=float("nan")),
                )
            run(kk + ["--filter", a.repeat_filter], t / "warm-repeat")
            for how in ("off", "auto"):
                t0 = time.monotonic()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "harness.cli",
                        "run",
                        *kk,
                        "--filter",
                        a.repeat_filter,
                        "--repeat",
                        "5",
                        "--snapshot",
                        how,
                        "--out",
                        str(t / f"rep-{how}"),
                    ],
                    capture_output=True,
                    check=False,
                )
                add(f"repeat 5: {'cold' if how == 'off' else 'cached'}", time.monotonic() - t0)
    med = {n: statistics.median(v) for n, v in rows.items()}
    print(f"kernel {k.release}, accel {accel}, {a.rounds} round(s) (medians, seconds)")
    for n, v in med.items():
        print(f"  {n:28s} {v:8.2f}")

    def ratio(x: str, y: str, goal: str) -> None:
        print(f"  {x} / {y}: {med[x] / med[y]:.2f}x  (goal {goal})")

    ratio("first test: restored", "first test: cold", "restored <= 0.5 s")
    ratio("default run: cached", "default run: bare floor", "<= 0.9x")
    ratio("default run: cached", "default run: cold", "")
    ratio("panic reboot: restored", "panic reboot: cold", "restored <= 1 s")
    ratio("repeat 5: cached", "repeat 5: cold", "")
    ratio("isolate program: cached", "default run: cached", "<= 1.3x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
