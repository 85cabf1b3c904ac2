"""vm test: the hostile-guest drill. A guest that sends a KTAP plan bomb, a gzip
bomb, 64 MiB of output, bytes that are not UTF-8, terminal escapes and fence-breaking
backticks; a run dir on a disk that fills; SIGTERM mid-run; two runs into one --out. Each ends
with a valid JUnit holding every case exactly once, no traceback, and the harness process
(QEMU not counted) under PEAK_RSS_MIB. What each item did is written to the session's record:
pytest -s shows the `drill:` lines (exit code, peak RSS, wall time, run dir)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import harness_rss
from tests.helpers.kernels import TEST_KERNEL

pytestmark = pytest.mark.vm

IDS = [
    "hostile.flood-64m",
    "hostile.gzip-bomb",
    "hostile.plan-bomb",
    "hostile.bad-utf8",
    "hostile.escapes",
    "hostile.fence",
]
# The harness keeps at most 16 MiB of a program's stdout (limits.py) and holds a few copies of
# it while decoding and parsing; measured 96 MiB for the whole drill (2026-12-05, TCG).
PEAK_RSS_MIB = 256
_RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _args(out: Path, *more: str) -> list[str]:
    return ["run", "--kernel", TEST_KERNEL, "--suite", "hostile", "--out", str(out), *more]


def _check(m: harness_rss.Measured, junit: Path, ids: list[str] = IDS) -> ET.Element:
    assert "Traceback" not in m.stderr and "Traceback" not in m.stdout, m.stderr[-3000:]
    assert 0 < m.peak_rss_mib < PEAK_RSS_MIB, m.peak_rss_mib
    root = ET.parse(junit).getroot()
    assert sorted(tc.get("name", "") for tc in root.iter("testcase")) == sorted(ids)  # each once
    print(f"drill: exit {m.rc}, peak RSS {m.peak_rss_mib:.0f} MiB, {m.wall_s:.0f} s: {junit}")
    return root


def test_a_hostile_guest_is_reported_and_bounded(tmp_path: Path) -> None:
    out = tmp_path / "hostile"
    m = harness_rss.run(*_args(out))
    assert m.rc == 1, m.stderr[-3000:]
    root = _check(m, out / "junit.xml")
    recs = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert list(recs) == IDS
    assert "KTAP plan 1..50000000" in recs["hostile.plan-bomb"]["reason"]
    assert "ratio cap" in recs["hostile.gzip-bomb"]["reason"]
    flood = recs["hostile.flood-64m"]
    assert flood["verdict"] == "PASS" and "dropped here" in flood["output"]  # head, tail, a note
    assert len(flood["output"]) < 70_000
    assert "\udcff" in recs["hostile.bad-utf8"]["reason"]  # the byte itself, kept in JSON's escape
    junit_reasons = " ".join(e.get("message", "") for e in root.iter("error"))
    assert "bytes \\xff\\xfe\\xc3( here" in junit_reasons  # and visible in the JUnit
    for text in (m.stdout, (out / "summary.txt").read_text()):
        assert not _RAW_CONTROL.search(text.replace("\n", "").replace("\t", ""))
        assert not any(line.startswith("```") for line in text.splitlines())
    assert (out / "console.log").stat().st_size < 64 << 20
    for name in ("report.html", "kcidb.json"):
        assert (out / name).stat().st_size > 0


def _mount_tmpfs(path: Path, size_mib: int) -> bool:
    path.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_a_full_disk_leaves_a_valid_junit(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, 24):  # the guest image fits, the flood's 16 MiB of output does not
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        junit = tmp_path / "ci" / "junit.xml"
        m = harness_rss.run(*_args(mnt / "run", "--junit", str(junit)))
        assert m.rc == 2, m.stderr[-3000:]
        assert "No space left on device" in m.stderr
        _check(m, junit)
        assert not list(mnt.glob("run/scratch-*.img"))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_sigterm_mid_run_and_a_second_run_into_the_same_out(tmp_path: Path) -> None:
    out = tmp_path / "term"
    t0 = time.monotonic()
    p = harness_rss.start(*_args(out))
    deadline = time.monotonic() + 300
    while not (out / "output" / "flood.ktap").exists() and time.monotonic() < deadline:
        time.sleep(0.5)  # the first program came back: the guest is mid-run
    # Meanwhile a second run into the same --out is refused at once (the lock), exit 2.
    second = harness_rss.run(*_args(out))
    assert second.rc == 2 and "another harness run" in second.stderr and "Traceback" not in second.stderr
    p.send_signal(signal.SIGTERM)
    m = harness_rss.finish(p, t0)
    assert m.rc == 143, m.stderr[-3000:]
    root = _check(m, out / "junit.xml")
    reasons = [e.get("message", "") for e in root.iter("error")]
    assert any("terminated (SIGTERM)" in r for r in reasons)
    assert not list(out.glob("scratch-*.img"))
    assert not subprocess.run(["pgrep", "-f", f"qemu-system.*{out}"], capture_output=True).stdout
    # Afterwards: refused without --out-reuse; with it, the dir holds this run only.
    again = harness_rss.run(*_args(out, "--filter", "hostile.plan-bomb"))
    assert again.rc == 2 and "already holds a run" in again.stderr
    reuse = harness_rss.run(*_args(out, "--filter", "hostile.plan-bomb", "--out-reuse"))
    assert reuse.rc == 1, reuse.stderr[-3000:]
    _check(reuse, out / "junit.xml", ["hostile.plan-bomb"])
    assert len((out / "results.jsonl").read_text().splitlines()) == 1
    assert not (out / "output" / "flood.ktap").exists()
    shutil.rmtree(out, ignore_errors=True)
