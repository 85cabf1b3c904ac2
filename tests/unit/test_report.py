"""harness.report: JUnit XML (golden + parsed back), the summary table, results.jsonl."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import safetext
from harness.errors import InputError
from harness.model import CaseResult, Expect, Expectation, Outcome, Verdict
from harness.report import junit as report
from tests.helpers.paths import DATA

GOLDEN = DATA / "golden"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"

PASS_EXP = Expectation(Expect.PASS)
GAP = Expectation(
    Expect.FAIL,
    reason="R/O pin of a shared zeropage is not COW-broken before 6.5",
    commit="0123456789ab",
    source="kernels/expectations.yaml:14",
)
PROPERTIES = {"kernel.release": "6.12.117+deb12-cloud-amd64", "accel": "tcg", "qemu": "8.2.2"}


def case(
    id: str,
    verdict: Verdict,
    outcome: Outcome = Outcome.OK,
    reason: str = "",
    output: str = "",
    program: str = "cow",
    expectation: Expectation = PASS_EXP,
    duration_s: float = 0.25,
) -> CaseResult:
    return CaseResult(id, program, outcome, verdict, reason, output, expectation, duration_s)


BASIC = [
    case("cow.fork.base", Verdict.PASS, output="[RUN] Basic COW after fork() ... with base page"),
    case(
        "cow.fork.thp",
        Verdict.FAIL,
        Outcome.NOT_OK,
        "Leak from parent into child",
        "[RUN] Basic COW after fork() ... with THP\nnot ok 3 Leak from parent into child",
    ),
    case(
        "cow.ro-pin.zeropage",
        Verdict.XFAIL,
        Outcome.NOT_OK,
        "Leak from child into parent",
        "[RUN] R/O longterm GUP pin ... with shared zeropage",
        expectation=GAP,
        duration_s=1.5,
    ),
    case("cow.ro-pin.huge-zeropage", Verdict.XPASS, Outcome.OK, "", "", expectation=GAP),
    case("cow.fork.swap", Verdict.SKIP, Outcome.SKIP, "MADV_PAGEOUT did not work, is swap enabled?"),
    case(
        "gup_longterm.memfd",
        Verdict.ERROR,
        Outcome.ERROR,
        "missing: output ended before result 7",
        "[RUN] R/W longterm GUP pin ... with memfd",
        program="gup_longterm",
        duration_s=30.0,
    ),
    case("gup_longterm.tmpfile", Verdict.PASS, program="gup_longterm"),
]


def parse_xml(text: str) -> ET.Element:
    return ET.fromstring(text.encode("utf-8"))


def suites(root: ET.Element) -> dict[str, ET.Element]:
    return {s.get("name", ""): s for s in root.findall("testsuite")}


# ---- JUnit ---------------------------------------------------------------------------------


def test_golden_junit_basic() -> None:
    path = GOLDEN / "junit_basic.xml"
    got = report.junit_xml(BASIC, PROPERTIES)
    if REGEN:
        path.write_text(got, encoding="utf-8", newline="")
    assert got == path.read_text(encoding="utf-8"), "run with HARNESS_REGEN_GOLDEN=1 if intended"


def test_junit_one_suite_per_program_with_counts() -> None:
    root = parse_xml(report.junit_xml(BASIC, PROPERTIES))
    by_name = suites(root)
    assert list(by_name) == ["cow", "gup_longterm"]
    cow, gup = by_name["cow"], by_name["gup_longterm"]
    assert (cow.get("tests"), cow.get("failures"), cow.get("errors"), cow.get("skipped")) == (
        "5",
        "2",
        "0",
        "1",
    )
    assert (gup.get("tests"), gup.get("failures"), gup.get("errors")) == ("2", "0", "1")
    assert len(root.findall(".//failure")) == 2  # FAIL and XPASS
    assert len(root.findall(".//error")) == 1
    assert len(root.findall(".//skipped")) == 1
    names = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert names[0] == ("cow", "cow.fork.base")
    assert names[-1] == ("gup_longterm", "gup_longterm.tmpfile")
    error_case = gup.find("testcase[@name='gup_longterm.memfd']")
    assert error_case is not None and error_case.get("time") == "30.000000"


def test_junit_failure_carries_verdict_reason_and_output() -> None:
    root = parse_xml(report.junit_xml(BASIC, PROPERTIES))
    failure = root.find(".//testcase[@name='cow.fork.thp']/failure")
    assert failure is not None
    assert failure.get("message") == "FAIL: Leak from parent into child"
    assert failure.text is not None and "not ok 3 Leak from parent into child" in failure.text
    xpass = root.find(".//testcase[@name='cow.ro-pin.huge-zeropage']/failure")
    assert xpass is not None
    assert xpass.get("type") == "XPASS"
    assert xpass.get("message", "").startswith("XPASS (expected fail: R/O pin of a shared zeropage")


def test_junit_an_unexpected_skip_is_an_error_an_explained_one_skipped() -> None:
    from harness.judge import expect

    mthp = Expectation(
        Expect.SKIP,
        reason="anonymous mTHP came in 6.8",
        commit="3485b88390b0 (6.8)",
        source="expectations.yaml:200",
    )
    results = []
    for cid, exp, why in (
        ("cow.fork.swapped", PASS_EXP, "MADV_PAGEOUT did not swap: is swap on?"),
        ("cow.fork.mthp-64k", mthp, "no hugepages-64kB: this kernel has no mTHP"),
    ):
        verdict, reason = expect.judge_case(Outcome.SKIP, exp, why)
        results.append(case(cid, verdict, Outcome.SKIP, reason, expectation=exp))
    root = parse_xml(report.junit_xml(results, PROPERTIES))
    error = root.find(".//testcase[@name='cow.fork.swapped']/error")
    assert error is not None and error.get("type") == "ERROR"
    assert (
        error.get("message")
        == "ERROR: skipped, and no expectation says why: MADV_PAGEOUT did not swap: is swap on?"
    )
    skipped = root.find(".//testcase[@name='cow.fork.mthp-64k']/skipped")
    assert skipped is not None and skipped.get("message") == "no hugepages-64kB: this kernel has no mTHP"
    assert (
        report.summary_table(results).splitlines()[-1]
        == "harness: 0 passed, 0 failed, 1 skipped, 0 xfail, 0 xpass, 1 error"
    )


def test_junit_xfail_passes_with_note() -> None:
    root = parse_xml(report.junit_xml(BASIC, PROPERTIES))
    tc = root.find(".//testcase[@name='cow.ro-pin.zeropage']")
    assert tc is not None
    assert tc.find("failure") is None and tc.find("error") is None and tc.find("skipped") is None
    out = tc.findtext("system-out") or ""
    assert out.startswith("XFAIL: Leak from child into parent\nexpected: fail\n")
    assert "why: R/O pin of a shared zeropage is not COW-broken before 6.5" in out
    assert "commit: 0123456789ab" in out
    assert out.endswith("[RUN] R/O longterm GUP pin ... with shared zeropage")


def test_junit_properties_on_every_suite() -> None:
    root = parse_xml(report.junit_xml(BASIC, PROPERTIES))
    for suite in root.findall("testsuite"):
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props == PROPERTIES


def test_junit_without_results_keeps_properties() -> None:
    root = parse_xml(report.junit_xml([], {"accel": "kvm"}))
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "0"
    assert [p.get("value") for p in suite.iter("property")] == ["kvm"]


HOSTILE = [
    "NUL\x00 and BEL\x07 and ESC\x1b[31m red",
    b"invalid utf-8 \xff\xfe\x80 end".decode("utf-8", errors="surrogateescape"),
    b"invalid utf-8 \xff\xfe\x80 end".decode("utf-8", errors="replace"),
    "lone high surrogate \ud800 and non-chars \ufffe\uffff",
    "form feed \x0c vertical tab \x0b, CRLF\r\n, C1 \x85\x9b, emoji \U0001f600, ]]> <&>\"'",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_junit_is_valid_xml_whatever_the_output(text: str) -> None:
    results = [
        case("cow." + text, Verdict.FAIL, Outcome.NOT_OK, text, text, program="prog" + text),
        case("cow.x", Verdict.ERROR, Outcome.ERROR, text, text),
        case("cow.y", Verdict.SKIP, Outcome.SKIP, text, text),
        case("cow.z", Verdict.XFAIL, Outcome.XFAIL, text, text, expectation=GAP),
        case("cow.w", Verdict.PASS, Outcome.OK, text, text),
    ]
    root = parse_xml(report.junit_xml(results, {"uname" + text: text}))
    assert sum(int(s.get("tests", "0")) for s in root.findall("testsuite")) == 5
    assert len(root.findall(".//failure")) == 1
    assert len(root.findall(".//error")) == 1
    assert len(root.findall(".//skipped")) == 1


def test_xml_safe_keeps_evidence_of_bad_bytes() -> None:
    raw = b"a\x00b\xffc".decode("utf-8", errors="surrogateescape")
    assert safetext.xml_safe(raw) == "a\\x00b\\xffc"
    assert safetext.xml_safe("x\ud800y\ufffez\ufffd") == "x\ufffdy\ufffdz\ufffd"
    assert safetext.xml_safe("tab\tline\r\nnext") == "tab\tline\nnext"


# ---- summary table -------------------------------------------------------------------------


def test_summary_table_lists_non_pass_cases_and_counts() -> None:
    table = report.summary_table(BASIC)
    lines = table.splitlines()
    assert not any("cow.fork.base" in line for line in lines)  # PASS cases are not listed
    listed = [line.split()[:2] for line in lines[:5]]
    assert listed == [
        ["FAIL", "cow.fork.thp"],
        ["XFAIL", "cow.ro-pin.zeropage"],
        ["XPASS", "cow.ro-pin.huge-zeropage"],
        ["SKIP", "cow.fork.swap"],
        ["ERROR", "gup_longterm.memfd"],
    ]
    assert "MADV_PAGEOUT did not work, is swap enabled?" in lines[3]
    assert "verdicts: PASS=2  FAIL=1  SKIP=1  XFAIL=1  XPASS=1  ERROR=1" in lines
    assert lines[-1] == "harness: 2 passed, 1 failed, 1 skipped, 1 xfail, 1 xpass, 1 error"


def test_summary_table_never_prints_a_bare_runner_summary() -> None:
    for results in (BASIC, [], [case("a", Verdict.PASS)]):
        for line in report.summary_table(results).splitlines():
            assert not re.match(r"^\s*\d+ passed, \d+ failed", line), line


def test_summary_table_neutralises_control_characters() -> None:
    bad = case("cow.a", Verdict.FAIL, reason="\x1b[2Jcleared\nsecond line")
    table = report.summary_table([bad])
    assert "\x1b" not in table
    assert "\\x1b[2Jcleared second line" in table.splitlines()[0]


# ---- results.jsonl -------------------------------------------------------------------------


def test_result_record_is_json_and_complete() -> None:
    rec = report.result_record(BASIC[2])
    assert json.loads(json.dumps(rec)) == rec
    assert rec["verdict"] == "XFAIL" and rec["outcome"] == "not_ok"
    assert rec["expectation"]["source"] == "kernels/expectations.yaml:14"
    assert rec["duration_s"] == 1.5


def test_results_log_appends_one_line_per_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "results.jsonl"
    log = report.ResultsLog(path)
    for r in BASIC[:3]:
        log.append(r)
    assert len(synced) == 4  # each record, and the directory once (its entry for the file)
    assert path.read_text().count("\n") == 3
    assert report.read_results(path) == [report.result_record(r) for r in BASIC[:3]]


def test_results_log_round_trips_undecodable_output(tmp_path: Path) -> None:
    output = b"\xff\x00raw".decode("utf-8", errors="surrogateescape")
    path = tmp_path / "results.jsonl"
    report.ResultsLog(path).append(case("cow.raw", Verdict.PASS, output=output))
    path.read_bytes().decode("ascii")  # stays plain ASCII on disk
    (rec,) = report.read_results(path)
    assert rec["output"].encode("utf-8", errors="surrogateescape") == b"\xff\x00raw"


def test_read_results_drops_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    report.ResultsLog(path).append(BASIC[0])
    with open(path, "a") as f:
        f.write('{"id": "cow.half-writ')
    assert [r["id"] for r in report.read_results(path)] == ["cow.fork.base"]


def test_read_results_rejects_corrupt_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(InputError, match=r"results.jsonl:2:"):
        report.read_results(path)
