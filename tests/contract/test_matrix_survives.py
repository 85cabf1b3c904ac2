"""A matrix keeps every case of every job: a job killed mid-run has its missing cases
filled as ERROR with the reason, and one job's torn files cost only that job."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.judge import expect
from harness.report import resultset
from harness.run import matrix
from harness.run.matrix import JobResult
from harness.suites import registry as suites
from tests.helpers.results_data import RUN_61, RUN_612
from tests.unit.test_matrix import _matrix_dir


def _selected(run: Path) -> list[suites.Selected]:
    """The cases of a recorded run, as the matrix selected them."""
    by_prog: dict[str, list[str]] = {}
    for line in (run / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        by_prog.setdefault(rec["program"], []).append(rec["id"])
    return [
        suites.Selected(suites.Program(p, "cow", Path("/x"), f"cow_tests/{p}"), tuple(ids))
        for p, ids in by_prog.items()
    ]


def _testcases(top: Path) -> list[tuple[str, str, str]]:
    out = []
    for suite in ET.parse(top / "junit.xml").getroot().iter("testsuite"):
        for tc in suite.iter("testcase"):
            err = tc.find("error")
            out.append(
                (
                    suite.get("name", "").split()[0],
                    tc.get("name", ""),
                    err.get("message", "") if err is not None else "",
                )
            )
    return out


def test_a_job_killed_mid_run_has_every_case_reported(tmp_path: Path) -> None:
    req, jobs, top = _matrix_dir(tmp_path, {("debian:6.12", 1): RUN_612, ("debian:6.1.0-56", 1): RUN_61})
    killed = jobs[0].request.out
    assert killed is not None
    lines = (killed / "results.jsonl").read_text().splitlines()
    (killed / "results.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])  # SIGKILL mid-write
    (killed / "fingerprint.json").unlink()
    results = {
        ("debian:6.12", 1): JobResult(-9, "job process died (exit -9)", 10.0),
        ("debian:6.1.0-56", 1): JobResult(0, "", 30.0),
    }
    selected = _selected(RUN_612)
    for j in jobs:
        res = results[(j.label, j.repeat)]
        matrix._fill_missing(j, selected, f"not run: {res.error}", expect.RuleSet(), {})
    out = matrix.finish(req, top, ["debian:6.12", "debian:6.1.0-56"], jobs, results, False, 41.0, 2)
    assert out.exit_code == 2
    cases = _testcases(top)
    mine = [c for c in cases if c[0] == "debian:6.12"]
    assert sorted(c[1] for c in mine) == sorted(i for s in selected for i in s.ids)  # each once
    assert sum(1 for c in mine if "not run: job process died (exit -9)" in c[2]) == len(lines) - 5
    assert len([c for c in cases if c[0] == "debian:6.1.0-56"]) == 28


def test_torn_files_of_one_job_cost_the_others_nothing(tmp_path: Path) -> None:
    req, jobs, top = _matrix_dir(tmp_path, {("debian:6.12", 1): RUN_612, ("debian:6.1.0-56", 1): RUN_61})
    broken = jobs[1].request.out
    assert broken is not None
    lines = (broken / "results.jsonl").read_text().splitlines()
    lines[3] = lines[3][:30]  # a corrupt line in the middle
    (broken / "results.jsonl").write_text("\n".join(lines) + "\n")
    (broken / "fingerprint.json").write_text('{"kernel": {"rele')  # torn
    results = {(j.label, j.repeat): JobResult(0, "", 30.0) for j in jobs}
    out = matrix.finish(req, top, ["debian:6.12", "debian:6.1.0-56"], jobs, results, False, 41.0, 2)
    assert out.exit_code == 2
    assert "1 unreadable line(s)" in out.summary and "is not JSON (torn?)" in out.summary
    rs = resultset.load(top)
    assert len(rs.of_kernel("debian:6.12")) == 28 and len(rs.of_kernel("debian:6.1.0-56")) == 27
    assert (top / "report.html").is_file() and (top / "kcidb.json").is_file()
