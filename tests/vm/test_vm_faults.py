"""vm test: the fault drill on a real kernel. A hung test, a kernel report, a guest that stops
answering, a kernel panic: every case is reported, none twice, and the run goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.kernels import TEST_KERNEL

pytestmark = pytest.mark.vm

IDS = [
    "fault.ok-before",
    "fault.hang-userspace",
    "fault.kernel-report",
    "fault.kernel-warn",
    "fault.cpu-hog",
    "fault.panic",
    "fault.ok-after",
]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    out = tmp_path_factory.mktemp("faults")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--kernel",
            TEST_KERNEL,
            "--suite",
            "faults",
            "--timeout",
            "20",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return p.returncode, out, p.stderr


def records(out: Path) -> dict[str, dict[str, Any]]:
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == IDS, "each case exactly once, in order: nothing lost"
    return {r["id"]: r for r in recs}


def test_exit_code_says_unexpected(drill: tuple[int, Path, str]) -> None:
    rc, _, stderr = drill
    assert rc == 1, stderr[-3000:]


def test_cases_around_the_faults_pass(drill: tuple[int, Path, str]) -> None:
    r = records(drill[1])
    assert r["fault.ok-before"]["verdict"] == "PASS"
    assert r["fault.ok-after"]["verdict"] == "PASS"  # ran in a fresh guest after the panic


def test_hung_test_is_killed_and_the_rest_runs(drill: tuple[int, Path, str]) -> None:
    r = records(drill[1])["fault.hang-userspace"]
    assert r["verdict"] == "ERROR" and "timed out" in r["reason"]


def test_kernel_report_fails_the_case_that_caused_it(drill: tuple[int, Path, str]) -> None:
    r = records(drill[1])
    hung = r["fault.kernel-report"]
    assert hung["outcome"] == "ok"  # the test itself passed...
    assert hung["verdict"] == "FAIL"  # ...but the kernel reported a hung task while it ran
    assert any("blocked for more than" in t for t in hung["kernel_events"])
    assert "blocked for more than" in hung["output"]
    warn = r["fault.kernel-warn"]
    assert warn["outcome"] == "ok" and warn["verdict"] == "FAIL"
    assert [t.split(" at ")[0] for t in warn["kernel_events"]] == [warn["kernel_events"][0].split(" at ")[0]]
    assert (
        warn["kernel_events"][0].startswith("WARNING: CPU:")
        and "harness_warn_write" in warn["kernel_events"][0]
    )
    # Its own diagnostics (the taint change among them) come back only if its program finished;
    # when the CPU hog later lost the guest, the result came back from the kernel-log marker.
    assert "kernel taint changed during this case" in warn["output"] or warn["output"].startswith(
        "(recovered from the kernel log"
    )
    # Reports stay with the case that caused them (the CPU hog may earn an RCU stall report).
    assert all(
        not r[i]["kernel_events"] for i in ("fault.ok-before", "fault.hang-userspace", "fault.ok-after")
    )


def test_unresponsive_guest_gets_backtraces_and_a_reboot(drill: tuple[int, Path, str]) -> None:
    r = records(drill[1])["fault.cpu-hog"]
    assert r["verdict"] == "ERROR"
    assert "stopped responding" in r["reason"]
    assert "backtrace" in r["output"].lower()  # sysrq-l (or the NMI) output, from the console
    assert all(t.startswith("rcu: INFO") for t in r["kernel_events"])  # starved RCU, if anything


def test_panic_is_the_faulting_case_with_its_report(drill: tuple[int, Path, str]) -> None:
    r = records(drill[1])["fault.panic"]
    assert r["verdict"] == "ERROR" and "died" in r["reason"]
    assert r["kernel_events"] == ["Kernel panic - not syncing: sysrq triggered crash"]
    assert "sysrq_handle_crash" in r["output"]


def test_reports_are_complete_and_valid(drill: tuple[int, Path, str]) -> None:
    out = drill[1]
    root = ET.parse(out / "junit.xml").getroot()
    assert [c.get("name") for c in root.iter("testcase")] == IDS
    fp = json.loads((out / "fingerprint.json").read_text())
    assert [x["why"] for x in fp["reboots"]] == [
        "the guest stopped responding",
        "the guest died (QEMU exited)",
    ]
    assert (out / "console.log").stat().st_size > 0
