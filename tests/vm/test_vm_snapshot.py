"""vm tests: guests restored from a cached snapshot, in a private snapshot cache.

A cold run (--snapshot off) and a run restored from the cache give the same verdicts; two runs
restoring the same snapshot at once do not interfere; a corrupted snapshot falls back to a cold
boot (exit 0, the reason in fingerprint.json); the fault drill's panic is recovered by a restore.
A subset of the cases keeps the wall time modest: ext4-backed COW cases, the RDMA cases (the NIC
and rxe come up after the restore) and a Python probe (the 9p /usr share, mounted after it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kernels import TEST_KERNEL, TEST_KERNEL_OLD

pytestmark = pytest.mark.vm

FILTERS = [
    "--filter",
    "cow.fork.child-keeps-data.*",
    "--filter",
    "cow.rdma-ro.write.*",
    "--filter",
    "probe.perf-rb.*",
]


def run(out: Path, snapdir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "HARNESS_SNAPSHOT_DIR": str(snapdir)}
    p = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--out", str(out), "-q", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    fp = out / "fingerprint.json"
    return p, (json.loads(fp.read_text()) if fp.is_file() else {})


def verdicts(out: Path) -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("kernel", [TEST_KERNEL, TEST_KERNEL_OLD])
def test_restored_run_gives_the_cold_verdicts(tmp_path: Path, kernel: str) -> None:
    snaps = tmp_path / "snaps"
    cold, fp_cold = run(tmp_path / "cold", snaps, "--kernel", kernel, *FILTERS)  # boots cold, saves
    assert cold.returncode == 0, cold.stderr[-2000:]
    assert fp_cold["snapshot"]["guests"][0]["how"] == "cold" and fp_cold["snapshot"].get("saved")
    # Restored runs; on the default kernel two at once from the same snapshot (each its own
    # disks and secrets).
    n = 2 if kernel == TEST_KERNEL else 1
    env = {**os.environ, "HARNESS_SNAPSHOT_DIR": str(snaps)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "run",
                "--kernel",
                kernel,
                *FILTERS,
                "--out",
                str(tmp_path / f"restored{i}"),
                "-q",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-2000:]
    want = verdicts(tmp_path / "cold")
    for i in range(n):
        out = tmp_path / f"restored{i}"
        fp = json.loads((out / "fingerprint.json").read_text())
        assert [g["how"] for g in fp["snapshot"]["guests"]] == ["restore"]
        assert fp["snapshot"]["key"] == fp_cold["snapshot"]["key"]
        assert verdicts(out) == want
        assert fp["guest"]["scratch_fs"] == "ext4" and fp["guest"]["rdma"] == fp_cold["guest"]["rdma"]
        assert fp["guest"]["swap_devices"] == "1"
        # No secret in what is cached: the initramfs (the snapshot's RAM) has no nonce.
        assert b"HARNESS_NONCE=''" in (out / "initramfs.cpio").read_bytes()


def test_corrupted_snapshot_falls_back_to_a_cold_boot(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    args = ("--filter", "cow.fork.child-keeps-data.base")
    first, fp = run(tmp_path / "first", snaps, *args)
    assert first.returncode == 0 and fp["snapshot"].get("saved"), first.stderr[-2000:]
    vmstate = snaps / fp["snapshot"]["key"] / "vmstate"
    data = bytearray(vmstate.read_bytes())
    for off in range(0, len(data), len(data) // 64):  # same size, garbage throughout (header too)
        data[off : off + 512] = os.urandom(len(data[off : off + 512]))
    vmstate.write_bytes(bytes(data))
    again, fp2 = run(tmp_path / "again", snaps, *args)
    assert again.returncode == 0, again.stderr[-2000:]
    snap = fp2["snapshot"]
    assert "failed" in snap.get("fallback_reason", ""), snap
    assert snap["guests"][0]["how"] == "cold" and snap.get("saved") == fp["snapshot"]["key"]
    assert verdicts(tmp_path / "again") == {"cow.fork.child-keeps-data.base": "PASS"}


def test_fault_drill_recovers_by_restore(tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    p, fp = run(tmp_path / "faults", snaps, "--kernel", TEST_KERNEL, "--suite", "faults", "--timeout", "20")
    assert p.returncode == 1, p.stderr[-2000:]  # the drill's unexpected verdicts
    assert fp["reboots"] and all(r["restored"] for r in fp["reboots"]), fp["reboots"]
    assert verdicts(tmp_path / "faults")["fault.ok-after"] == "PASS"
