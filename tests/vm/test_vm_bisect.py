"""vm test: `harness bisect --kernels` over real Debian packages finds a real behaviour change.

cow.unshare.odirect-write.base: an O_DIRECT write from a COW-shared page does not unshare it on
6.1 (FOLL_GET; the test reports not ok, expected there: XFAIL) and does from 6.4 on (FOLL_PIN,
6.12: ok). Over [6.1.0-56, 6.12.100, 6.12.117] the first kernel where it is ok is 6.12.100: a
fix, so --reverse; without it the endpoint check must refuse the list. And the same change found
by plain `git bisect run` with `harness run --bisect-exit`. Five boots under TCG: about two and a
half minutes (plus a ~100 MB download of 6.12.100 the first time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

TEST = "cow.unshare.odirect-write.base"
KERNELS = "debian:6.1.0-56,debian:6.12.100,debian:6.12.117"


def bisect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "bisect", *args], capture_output=True, text=True, timeout=900
    )


def test_swapped_endpoints_are_refused(tmp_path: Path) -> None:
    # Without --reverse the old end must be good; 6.1 is "bad" (not ok) here: refused, exit 2.
    p = bisect("--kernels", KERNELS, "--test", TEST, "--out", str(tmp_path / "b"))
    assert p.returncode == 2, p.stderr[-2000:]
    assert "harness: error: the first kernel debian:6.1.0-56 should be good but is bad" in p.stderr
    assert "--reverse" in p.stderr
    state = json.loads((tmp_path / "b" / "bisect.json").read_text())
    assert len(state["steps"]) == 1  # stopped after the first boot
    assert state["steps"][0]["runs"][0]["cases"][0]["outcome"] == "not_ok"
    assert state["answer"]["status"] == "endpoint-failed"


def test_finds_the_first_kernel_with_foll_pin_for_odirect(tmp_path: Path) -> None:
    out, junit = tmp_path / "b", tmp_path / "bisect.xml"
    p = bisect("--kernels", KERNELS, "--test", TEST, "--reverse", "--out", str(out), "--junit", str(junit))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "first good: debian:6.12.100+deb12" in p.stdout
    assert "confidence: 1.00 (exact" in p.stdout

    state = json.loads((out / "bisect.json").read_text())
    assert state["answer"]["status"] == "found" and state["answer"]["first"] == ["debian:6.12.100+deb12"]
    steps = [(s["candidate"], s["role"], s["decision"]) for s in state["steps"]]
    assert steps == [
        ("debian:6.1.0-56", "old endpoint", "bad"),
        ("debian:6.12.117+deb12", "new endpoint", "good"),
        ("debian:6.12.100+deb12", "step", "good"),
    ]
    # The raw observations are kept: the outcome and what the run's verdict was.
    first = state["steps"][0]["runs"][0]
    assert first["cases"] == [
        {"id": TEST, "outcome": "not_ok", "verdict": "XFAIL", "reason": first["cases"][0]["reason"]}
    ]
    for s in state["steps"]:
        run_dir = Path(s["runs"][0]["run_dir"])
        assert (run_dir / "junit.xml").is_file() and (run_dir / "results.jsonl").is_file()
        ids = {json.loads(line)["id"] for line in (run_dir / "results.jsonl").read_text().splitlines()}
        assert ids == {TEST}  # only the named test ran
    log = (out / "steps.txt").read_text()
    assert f"{TEST}=not_ok(XFAIL)" in log and f"{TEST}=ok" in log

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert [c.get("name") for c in suite.findall("testcase")] == [
        "step 01 debian:6.1.0-56",
        "step 02 debian:6.12.117+deb12",
        "step 03 debian:6.12.100+deb12",
        "result",
    ]
    assert suite.find("testcase[@name='result']/failure") is None
    props = {e.get("name"): e.get("value") for e in suite.iter("property")}
    assert props["bisect.first"] == "debian:6.12.100+deb12" and props["bisect.reverse"] == "true"

    # The same command again resumes a finished bisect: nothing boots, same answer.
    again = bisect("--kernels", KERNELS, "--test", TEST, "--reverse", "--out", str(out))
    assert again.returncode == 0 and "resuming" in again.stderr and "booting" not in again.stderr
    assert "first good: debian:6.12.100+deb12" in again.stdout


def test_harness_run_exit_codes_under_plain_git_bisect_run(tmp_path: Path) -> None:
    """`git bisect run harness run ... --bisect-exit` in a repository whose commits each name a
    kernel: git tests the middle commit (one boot) and names the first fixed one."""
    repo = tmp_path / "r"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "LC_ALL": "C",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
        ).stdout

    repo.mkdir()
    git("init", "-q", "-b", "master")
    for k in ("debian:6.1.0-56", "debian:6.12.100+deb12", "debian:6.12.117+deb12"):
        (repo / "KERNEL").write_text(k + "\n")
        git("add", "KERNEL")
        git("commit", "-q", "-m", f"use {k}")
    fix = git("rev-parse", "HEAD~1").strip()
    git("bisect", "start", "--term-old=broken", "--term-new=fixed", "HEAD", "HEAD~2")
    script = (
        f'exec "{sys.executable}" -m harness.cli run --kernel "$(cat KERNEL)" --filter {TEST} '
        f'--bisect-exit --bisect-reverse --out "{tmp_path}/runs/$(git rev-parse --short HEAD)"'
    )
    p = subprocess.run(
        ["git", "-C", str(repo), "bisect", "run", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert f"{fix} is the first fixed commit" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]
    assert "bisect-exit: 1 (good)" in p.stdout  # good on 6.12.100 = exit 1 = "fixed" with --bisect-reverse
