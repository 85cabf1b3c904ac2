"""The report survives: a full disk, SIGTERM, a second Ctrl-C while the reports are
written, a reused or shared --out. The pipeline's stages are stubbed: what is tested is
runner.execute's finally path and the files it leaves."""

from __future__ import annotations

import errno
import json
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import signals
from harness.errors import InputError
from harness.model import CaseResult, Expect, Expectation, Outcome, Verdict
from harness.report import junit as report
from harness.run import rundir, runner
from tests.unit.test_runner_mapping import IDS, K612, SEL


def _result(case_id: str) -> CaseResult:
    return CaseResult(
        case_id, SEL.program.name, Outcome.OK, Verdict.PASS, "", "fine", Expectation(Expect.PASS)
    )


def stub(monkeypatch: pytest.MonkeyPatch, run_all: Callable[[runner._Run], None]) -> None:
    def prepare(self: runner._Run) -> list[Any]:
        self.selected, self.kernel = [SEL], K612
        return self.selected

    monkeypatch.setattr(runner._Run, "prepare", prepare)
    monkeypatch.setattr(runner._Run, "build_guest", lambda self: None)
    monkeypatch.setattr(runner._Run, "boot", lambda self: None)
    monkeypatch.setattr(runner._Run, "run_all", run_all)


def disk_full_under(monkeypatch: pytest.MonkeyPatch, prefixes: list[str]) -> None:
    """os.write fails with ENOSPC on every file whose path starts with one of `prefixes`
    (a list the test may change while the run goes on)."""
    real = os.write

    def write(fd: int, data: bytes) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if any(target.startswith(p) for p in prefixes):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


def junit_ids(path: Path) -> list[str]:
    return [tc.get("name", "") for tc in ET.parse(path).getroot().iter("testcase")]


def test_results_log_full_mid_run_still_leaves_every_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    full: list[str] = []
    disk_full_under(monkeypatch, full)

    def run_all(self: runner._Run) -> None:
        self.record([_result(IDS[0])])
        full.append(str(out / "results.jsonl"))
        self.record([_result(IDS[1])])

    stub(monkeypatch, run_all)
    o = runner.execute(runner.RunRequest(out=out))
    assert o.exit_code == 2 and "No space left on device" in o.error
    assert junit_ids(out / "junit.xml") == list(IDS)  # every case exactly once
    verdicts = {r.id: r.verdict for r in o.results}
    assert verdicts == {IDS[0]: Verdict.PASS, IDS[1]: Verdict.PASS, IDS[2]: Verdict.ERROR}
    assert [r["id"] for r in report.read_results(out / "results.jsonl")] == [IDS[0]]  # no torn line
    assert (out / "summary.txt").is_file() and json.loads((out / "fingerprint.json").read_text())


@pytest.mark.parametrize("with_junit", [True, False])
def test_a_full_run_dir_sends_the_junit_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_junit: bool
) -> None:
    out, junit = tmp_path / "run", tmp_path / "ci" / "junit.xml"
    full: list[str] = []
    disk_full_under(monkeypatch, full)

    def run_all(self: runner._Run) -> None:
        self.record([_result(IDS[0])])
        full.append(str(out) + "/")

    stub(monkeypatch, run_all)
    o = runner.execute(runner.RunRequest(out=out, junit=junit if with_junit else None))
    assert o.exit_code == 2
    assert not (out / "junit.xml").exists()
    where = junit if with_junit else tmp_path / "run.junit.xml"
    assert junit_ids(where) == list(IDS)
    if not with_junit:
        assert "written to" in o.error and (tmp_path / "run.summary.txt").is_file()


def test_an_os_error_from_any_stage_is_exit_2_with_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_all(self: runner._Run) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "initramfs.cpio")

    stub(monkeypatch, run_all)
    o = runner.execute(runner.RunRequest(out=tmp_path / "run"))
    assert o.exit_code == 2 and "initramfs.cpio: No space left on device" in o.error
    assert junit_ids(tmp_path / "run" / "junit.xml") == list(IDS)


def test_sigterm_is_ctrl_c_with_its_own_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run_all(self: runner._Run) -> None:
        self.record([_result(IDS[0])])
        os.kill(os.getpid(), signal.SIGTERM)

    stub(monkeypatch, run_all)
    with signals.sigterm_as_interrupt():
        o = runner.execute(runner.RunRequest(out=tmp_path / "run"))
    assert o.exit_code == 143 and o.error == "terminated"
    reasons = {r.id: r.reason for r in o.results}
    assert reasons[IDS[1]] == "not run: terminated (SIGTERM)"
    assert junit_ids(tmp_path / "run" / "junit.xml") == list(IDS)
    with pytest.raises(signals.Terminated):
        runner.guest_results(o)


def test_a_second_ctrl_c_while_the_reports_are_written_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_all(self: runner._Run) -> None:
        raise KeyboardInterrupt

    real_junit = report.junit_xml

    def junit_xml(*args: object) -> str:
        os.kill(os.getpid(), signal.SIGINT)  # the impatient second Ctrl-C, mid-finish
        return real_junit(*args)  # type: ignore[arg-type]

    stub(monkeypatch, run_all)
    monkeypatch.setattr(report, "junit_xml", junit_xml)
    o = runner.execute(runner.RunRequest(out=tmp_path / "run"))
    assert o.exit_code == 130
    assert junit_ids(tmp_path / "run" / "junit.xml") == list(IDS)
    assert (tmp_path / "run" / "summary.txt").is_file()


# ---- --out ----------------------------------------------------------------------------------------


def test_an_out_dir_with_an_earlier_run_is_refused_unless_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub(monkeypatch, lambda self: self.record([_result(i) for i in IDS]))
    out = tmp_path / "run"
    assert runner.execute(runner.RunRequest(out=out)).exit_code == 0
    (out / "output").mkdir(exist_ok=True)
    (out / "output" / "old.ktap").write_text("old")
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(InputError, match="already holds a run .results.jsonl.*--out-reuse"):
        runner.execute(runner.RunRequest(out=out))
    assert runner.execute(runner.RunRequest(out=out, out_reuse=True)).exit_code == 0
    assert len(report.read_results(out / "results.jsonl")) == len(IDS)  # not 2 x: no FLAKY 1/2
    assert not (out / "output" / "old.ktap").exists() and (out / "mine.txt").read_text() == "the user's"


def test_an_out_dir_in_use_is_refused_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    lock = rundir.RunDirLock(rundir.make_run_dir(out, None))
    try:
        with pytest.raises(InputError, match=f"another harness run .pid {os.getpid()}. is using it"):
            rundir.claim(out, None, reuse=True)
    finally:
        lock.release()
    rundir.claim(out, None, reuse=False)[1].release()


def test_default_run_dirs_are_never_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    a, b = rundir.make_run_dir(None, "debian:6.12"), rundir.make_run_dir(None, "debian:6.12")
    assert a != b


# ---- bisect ---------------------------------------------------------------------------------------


def test_sigterm_stops_a_bisect_like_ctrl_c_with_143(tmp_path: Path) -> None:
    from tests.helpers.bisect_fakes import TableOracle
    from tests.unit.test_bisect_loop import bisect, table

    class Cancelled(TableOracle):
        def __call__(self, cand: str, step_dir: Path):  # type: ignore[no-untyped-def]
            if len(self.calls) == 2:
                raise signals.Terminated()  # what SIGTERM raises under signals.sigterm_as_interrupt
            return super().__call__(cand, step_dir)

    out = bisect(tmp_path, Cancelled(table("debian:6.1.0-52")), junit=tmp_path / "j.xml").run()
    assert out.exit_code == 143 and out.answer is None
    assert ET.parse(tmp_path / "j.xml").getroot().tag == "testsuites"
    assert "rerun the same command" in (tmp_path / "b" / "summary.txt").read_text()
