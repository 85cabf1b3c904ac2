"""harness.run.matrix without QEMU: shards, -j, the plan, the combined report from recorded runs,
and the process scheduler with stand-in jobs (tests/helpers/fake_jobs.py)."""

from __future__ import annotations

import fnmatch
import json
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.report import resultset
from harness.run import matrix
from harness.run.matrix import Job, JobResult, MatrixRequest
from harness.run.runner import RunRequest
from harness.suites import registry
from tests.helpers import fake_jobs
from tests.helpers.paths import DATA
from tests.helpers.results_data import RUN_61, RUN_612, edited_copy, set_verdict

GOLDEN_IDS = DATA / "golden" / "case_ids"


def all_ids() -> list[str]:
    return [
        json.loads(line)["id"] for d in (RUN_612,) for line in (d / "results.jsonl").read_text().splitlines()
    ] + [f"cow.synthetic.case-{n}" for n in range(400)]


@pytest.mark.parametrize("text, want", [("1/4", (1, 4)), (" 4 / 4 ", (4, 4)), ("1/1", (1, 1))])
def test_shard_specs(text: str, want: tuple[int, int]) -> None:
    assert matrix.parse_shard(text) == want


@pytest.mark.parametrize("text", ["0/4", "5/4", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard_specs(text: str) -> None:
    with pytest.raises(InputError, match="--shard"):
        matrix.parse_shard(text)


def test_shards_partition_the_cases_stably() -> None:
    ids = all_ids()
    parts = [matrix.shard_ids(ids, (i, 4)) for i in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(ids)  # every case in exactly one shard
    assert all(80 <= len(p) <= 140 for p in parts), [len(p) for p in parts]  # roughly even
    # The same id lands in the same shard on every host and in every process (no salted
    # hash()): values pinned when this was written; a change here reshuffles every CI's shards.
    for case_id, shards in PINNED.items():
        assert [matrix.shard_of(case_id, n) for n in (2, 3, 4, 7)] == shards, case_id


PINNED = {
    "cow.fork.child-keeps-data.base": [2, 1, 2, 4],
    "cow.unshare.vmsplice.thp": [1, 1, 3, 2],
    "probe.pfnmap.vvar.proc-self-mem": [2, 1, 4, 1],
}


def test_exact_globs_match_only_their_id() -> None:
    for case_id in ["cow.fork.a", "odd[1]*?.id", "x?y"]:
        g = registry.exact_glob(case_id)
        assert fnmatch.fnmatchcase(case_id, g)
        assert not fnmatch.fnmatchcase(case_id + "x", g)
    assert not fnmatch.fnmatchcase("xay", registry.exact_glob("x?y"))


@pytest.mark.parametrize(
    "cores, mem_mib, guest_mib, want",
    [
        (2, 22000, 1024, 2),  # this machine: the cores decide
        (16, 4000, 1024, 2),  # a big CPU, little memory: memory decides
        (1, 22000, 1024, 1),
        (4, 100, 1024, 1),  # never below one
    ],
)
def test_default_jobs(cores: int, mem_mib: int, guest_mib: int, want: int) -> None:
    assert matrix.default_jobs(cores, mem_mib, guest_mib) == want


def test_plan_runs_kernels_side_by_side_and_gives_each_its_own_dir(tmp_path: Path) -> None:
    req = MatrixRequest(
        RunRequest(junit=tmp_path / "j.xml", filters=("x",)), ("debian:6.12", "debian:6.1.0-56"), 2, 2
    )
    jobs = matrix.plan(req, tmp_path, ("a", "b"))
    assert [(j.label, j.repeat) for j in jobs] == [
        ("debian:6.12", 1),
        ("debian:6.1.0-56", 1),
        ("debian:6.12", 2),
        ("debian:6.1.0-56", 2),
    ]
    assert [j.request.out for j in jobs][:2] == [
        tmp_path / "debian-6.12" / "r1",
        tmp_path / "debian-6.1.0-56" / "r1",
    ]
    assert all(j.request.junit is None and j.request.filters == ("a", "b") for j in jobs)
    assert jobs[0].request.kernel == "debian:6.12"
    # labels that make the same directory name still get their own
    clash = matrix.plan(MatrixRequest(RunRequest(), ("a:b", "a-b")), tmp_path, ())
    assert len({j.request.out for j in clash}) == 2


# ---- the combined report ----------------------------------------------------------------------


def _matrix_dir(
    tmp_path: Path, runs: dict[tuple[str, int], Path], repeat: int = 1
) -> tuple[MatrixRequest, list[Job], Path]:
    top = tmp_path / "top"
    labels = list(dict.fromkeys(k for k, _ in runs))
    req = MatrixRequest(RunRequest(out=top, junit=tmp_path / "combined.xml"), tuple(labels), 2, repeat)
    jobs = matrix.plan(req, top, ())
    for j in jobs:
        assert j.request.out is not None
        shutil.copytree(runs[(j.label, j.repeat)], j.request.out)
    return req, jobs, top


def test_finish_writes_the_combined_reports(tmp_path: Path) -> None:
    req, jobs, top = _matrix_dir(tmp_path, {("debian:6.12", 1): RUN_612, ("debian:6.1.0-56", 1): RUN_61})
    results = {(j.label, j.repeat): JobResult(0, "", 30.0) for j in jobs}
    out = matrix.finish(req, top, ["debian:6.12", "debian:6.1.0-56"], jobs, results, False, 41.0, 2)
    assert out.exit_code == 0
    rs = resultset.load(top)
    assert rs.kernels == ("debian:6.12", "debian:6.1.0-56") and len(rs.cases) == 56
    m = json.loads((top / "matrix.json").read_text())
    assert (
        m["cases"] == 28
        and m["jobs"] == 2
        and [k["runs"][0]["dir"] for k in m["kernels"]] == ["debian-6.12/r1", "debian-6.1.0-56/r1"]
    )
    # each kernel's package, for `compare` to pair the 6.1 line with itself when it moves on
    assert [(k["release"], k["version"]) for k in m["kernels"]] == [
        ("6.12.117+deb12-amd64", "6.12.117"),
        ("6.1.0-56-amd64", "6.1.192"),
    ]
    root = ET.parse(top / "junit.xml").getroot()
    suites = [s.get("name") for s in root.iter("testsuite")]
    assert "debian:6.12 cow_unshare" in suites and "debian:6.1.0-56 cow_vmsplice" in suites
    assert len(list(root.iter("testcase"))) == 56
    assert (tmp_path / "combined.xml").read_text() == (top / "junit.xml").read_text()
    summary = (top / "summary.txt").read_text()
    assert "debian:6.1.0-56  6.1.0-56-amd64 (6.1.192)" in summary
    assert summary.rstrip().endswith("harness: 43 passed, 0 failed, 9 skipped, 4 xfail, 0 xpass, 0 error")
    assert "<html" in (top / "report.html").read_text()
    assert json.loads((top / "kcidb.json").read_text())["version"] == {"major": 4, "minor": 0}


def test_a_case_that_differs_between_repeats_is_flaky_and_fails_the_run(tmp_path: Path) -> None:
    bad = edited_copy(
        RUN_612,
        tmp_path / "bad",
        lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", "Leak from parent into child"),
    )
    req, jobs, top = _matrix_dir(
        tmp_path,
        {("debian:6.12", 1): RUN_612, ("debian:6.12", 2): bad, ("debian:6.12", 3): RUN_612},
        repeat=3,
    )
    results = {(j.label, j.repeat): JobResult(0 if j.repeat != 2 else 1, "", 30.0) for j in jobs}
    out = matrix.finish(req, top, ["debian:6.12"], jobs, results, False, 90.0)
    assert out.exit_code == 1
    c = resultset.load(top).by_key()[("debian:6.12", "cow.unshare.vmsplice.base")]
    assert c.verdict.value == "FLAKY" and c.rate_text() == "2/3"
    assert "FLAKY 2/3 debian:6.12" in out.summary and "1 flaky" in out.summary
    failure = next(
        tc
        for tc in ET.parse(top / "junit.xml").getroot().iter("testcase")
        if tc.get("name") == "cow.unshare.vmsplice.base"
    ).find("failure")
    assert failure is not None and failure.get("type") == "FLAKY"


def test_the_terminal_groups_the_skips_and_shows_each_kernels_count(tmp_path: Path) -> None:
    bad = edited_copy(
        RUN_612,
        tmp_path / "bad",
        lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", "Leak\x1b[2J from parent"),
    )
    req, jobs, top = _matrix_dir(tmp_path, {("debian:6.12", 1): bad, ("debian:6.1.0-56", 1): RUN_61})
    results = {(j.label, j.repeat): JobResult(0 if j.label != "debian:6.12" else 1, "", 30.0) for j in jobs}
    out = matrix.finish(req, top, ["debian:6.12", "debian:6.1.0-56"], jobs, results, False, 41.0, 2)
    text = out.for_terminal(1, "normal")
    blocks = [b.splitlines() for b in text.split("\n\n")]
    assert [b[0].split()[0] for b in blocks] == ["kernel", "FAIL", "2", "verdicts:"]
    assert blocks[1][0] == "FAIL   debian:6.12  cow.unshare.vmsplice.base  Leak\\x1b[2J from parent"
    xfail = blocks[2].index(
        "2 XFAIL  hugetlb COW reuse decided by mapcount: the page vmspliced before the unmap "
        "is written in place, the pipe yields the new data  (cow.vmsplice.unmap-in-child.hugetlb-2m)"
    )
    assert blocks[2][xfail + 1].split() == ["on", "debian:6.1.0-56", "1,", "debian:6.12", "1"]  # oldest first
    assert out.for_terminal(1, "verbose") == out.summary == (top / "summary.txt").read_text()
    quiet = out.for_terminal(1, "quiet").splitlines()
    assert quiet[0].startswith("FAIL ") and quiet[-1].startswith("harness: 42 passed, 1 failed")
    assert not any(line.startswith(("kernel ", "verdicts:")) or "SKIP " in line for line in quiet)


def test_an_infrastructure_error_in_one_job_is_exit_2(tmp_path: Path) -> None:
    req, jobs, top = _matrix_dir(tmp_path, {("debian:6.12", 1): RUN_612, ("debian:6.1.0-56", 1): RUN_61})
    results = {
        ("debian:6.12", 1): JobResult(0, "", 1.0),
        ("debian:6.1.0-56", 1): JobResult(2, "guest lost", 1.0),
    }
    out = matrix.finish(req, top, ["debian:6.12", "debian:6.1.0-56"], jobs, results, False, 2.0)
    assert out.exit_code == 2 and "debian:6.1.0-56 run 1: guest lost" in out.summary


# ---- the scheduler with stand-in jobs -----------------------------------------------------------


def _jobs(tmp_path: Path, n: int, sleep_s: float) -> list[Job]:
    return [Job(f"k{i}", 1, RunRequest(out=tmp_path / f"k{i}", timeout_s=sleep_s)) for i in range(n)]


def test_the_scheduler_runs_at_most_width_jobs_at_once(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 4, 1.0)
    sched = matrix.Scheduler(jobs, 2, lambda s: None, fake_jobs.sleepy)
    sched.run()
    assert all(r.exit_code == 0 for r in sched.results.values()) and len(sched.results) == 4
    spans = [tuple(map(float, (j.request.out / "span").read_text().split())) for j in jobs]  # type: ignore[operator]
    for t in [s for s, _ in spans]:  # at any start, at most 2 jobs are running
        assert sum(1 for a, b in spans if a <= t < b) <= 2
    assert max(b for _, b in spans) - min(a for a, _ in spans) >= 1.9  # 4 x 1 s on 2 slots


def test_a_job_process_that_dies_is_reported(tmp_path: Path) -> None:
    sched = matrix.Scheduler(_jobs(tmp_path, 1, 0.0), 1, lambda s: None, fake_jobs.dies)
    sched.run()
    (res,) = sched.results.values()
    assert res.exit_code == 3 and "died" in res.error


def test_interrupt_forwards_one_sigint_and_waits_for_the_reports(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, 3, 0.0)
    sched = matrix.Scheduler(jobs, 2, lambda s: None, fake_jobs.interruptible)

    def stop_when_started() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all((j.request.out / "started").exists() for j in jobs[:2]):  # type: ignore[operator]
            time.sleep(0.05)
        sched.interrupt()

    t = threading.Thread(target=stop_when_started)
    for job in list(sched.pending)[:2]:
        sched.pending.popleft()
        sched.start(job)
    t.start()
    t.join(60)
    assert not sched.running and not sched.pending  # the third never started
    assert {k: r.exit_code for k, r in sched.results.items()} == {("k0", 1): 130, ("k1", 1): 130}
    for j in jobs[:2]:
        assert "interrupted" in (j.request.out / "results.jsonl").read_text()  # type: ignore[operator]
