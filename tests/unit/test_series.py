"""The series decisions and reports (pure): harness/series/core.py and harness/series/series_report.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.model import Outcome, Verdict
from harness.series import series_report
from harness.series.core import (
    Cell,
    CompilerWarning,
    Mark,
    Quality,
    Row,
    Step,
    WarningLedger,
    breaks,
    changed_tests,
    changes,
    compiled_sources,
    exit_code,
    first_line,
    parse_warnings,
    problems,
)

PASS = Cell(Verdict.PASS, Outcome.OK)
FAIL = Cell(Verdict.FAIL, Outcome.NOT_OK)
SKIP = Cell(Verdict.SKIP, Outcome.SKIP, "no THP")
XFAIL = Cell(Verdict.XFAIL, Outcome.NOT_OK)
XPASS = Cell(Verdict.XPASS, Outcome.OK)
WARNED = Cell(Verdict.FAIL, Outcome.OK, "kernel reported: WARNING at mm/gup.c")
ERROR = Cell(Verdict.ERROR, Outcome.ERROR, "timed out")


def row(
    i: int, tests: dict[str, Cell] | None = None, build: Step = Step.OK, boot: Step = Step.OK, **kw: object
) -> Row:
    return Row(i, f"patch {i}" if i else "base", f"{i:040x}", tests=tests or {}, build=build, boot=boot, **kw)  # type: ignore[arg-type]


def test_quality_reads_the_outcome_and_kernel_reports() -> None:
    assert [c.quality for c in (PASS, FAIL, SKIP, XFAIL, XPASS, WARNED, ERROR)] == [
        Quality.GOOD,
        Quality.BAD,
        Quality.NEUTRAL,
        Quality.BAD,
        Quality.GOOD,
        Quality.BAD,
        Quality.BAD,
    ]


def test_changes_compare_with_the_last_row_that_had_a_value() -> None:
    rows = [
        row(0, {"a": PASS, "b": XFAIL, "c": PASS}),
        row(1, {"a": PASS, "b": XFAIL, "c": SKIP}),
        row(2, build=Step.FAILED, boot=Step.NOT_RUN),
        row(3, {"a": FAIL, "b": XPASS, "c": SKIP}),
        row(4, {"a": PASS, "b": XPASS, "c": SKIP}),
    ]
    got = [(c.row, c.column, c.mark) for c in changes(rows)]
    assert got == [
        (1, "c", Mark.CHANGED),
        (2, "build", Mark.BROKE),
        (3, "build", Mark.FIXED),
        (3, "a", Mark.BROKE),
        (3, "b", Mark.FIXED),
        (4, "a", Mark.FIXED),
    ]
    assert changed_tests(rows) == ["a", "b", "c"]
    assert [(p.row, p.column) for p in problems(rows)] == [(2, "build"), (3, "a")]
    assert exit_code(rows) == 1 and exit_code(rows[:2]) == 0


def test_a_test_still_broken_is_a_problem_of_every_row_until_fixed() -> None:
    rows = [row(0, {"a": PASS}), row(1, {"a": FAIL}), row(2, {"a": ERROR}), row(3, {"a": PASS})]
    assert [(p.row, p.text) for p in problems(rows)] == [
        (1, "broken by this patch: PASS -> FAIL"),
        (2, "still broken: PASS at base, ERROR here"),
    ]
    assert breaks(rows[1], rows) and breaks(rows[2], rows) and not breaks(rows[3], rows)


def test_a_kernel_warning_breaks_a_test_whose_outcome_stayed_ok() -> None:
    rows = [row(0, {"a": PASS}), row(1, {"a": WARNED})]
    assert [(c.column, c.mark) for c in changes(rows)] == [("a", Mark.BROKE)]
    assert exit_code(rows) == 1


def test_known_failures_at_base_are_not_the_series_fault() -> None:
    rows = [row(0, {"a": XFAIL, "b": FAIL}), row(1, {"a": XFAIL, "b": FAIL})]
    assert changes(rows) == [] and exit_code(rows) == 0


@pytest.mark.parametrize("step", ["apply", "build", "boot"])
def test_steps_that_fail_in_a_patch_row_are_problems(step: str) -> None:
    kw = (
        {"apply": Step.FAILED, "build": Step.NOT_RUN, "boot": Step.NOT_RUN}
        if step == "apply"
        else {"build": Step.FAILED, "boot": Step.NOT_RUN}
        if step == "build"
        else {"boot": Step.FAILED}
    )
    r = Row(
        1,
        "p",
        **kw,  # type: ignore[arg-type]
        apply_message="error: patch failed: mm/gup.c:10\nerror: mm/gup.c: patch does not apply",
    )
    (p,) = problems([row(0), r])
    assert p.column == step
    if step == "apply":
        assert p.text == "does not apply: error: patch failed: mm/gup.c:10"


def test_first_line_prefers_errors() -> None:
    assert first_line("Applying: x\nerror: patch failed: a:1\nhint: ...") == "error: patch failed: a:1"
    assert first_line("") == "(no message)"


# ---- warnings --------------------------------------------------------------------------------

KBUILD_LOG = """\
### make bzImage: make -C /src O=/b -j2
  CC      mm/gup.o
/home/ann/linux/mm/gup.c: In function 'pin':
/home/ann/linux/mm/gup.c:120:13: warning: unused variable 'x' [-Wunused-variable]
  120 |         int x;
      |             ^
  CC      io_uring/rsrc.o
In file included from /home/ann/linux/include/linux/mm.h:5,
../include/linux/mm.h:88:1: warning: 'y' defined but not used [-Wunused-function]
/home/ann/linux/include/linux/mm.h:88:1: warning: 'y' defined but not used [-Wunused-function]
vmlinux.o: warning: objtool: foo+0x1: call without frame pointer
  CC [M]  drivers/x.o
"""


def test_parse_warnings_from_a_kbuild_log() -> None:
    ws = parse_warnings(KBUILD_LOG, ["/home/ann/linux"])
    assert [str(w) for w in ws] == [
        "mm/gup.c:120: warning: unused variable 'x' [-Wunused-variable]",
        "include/linux/mm.h:88: warning: 'y' defined but not used [-Wunused-function]",
    ]
    assert compiled_sources(KBUILD_LOG) == {"mm/gup.c", "io_uring/rsrc.c", "drivers/x.c"}


def test_ledger_reports_only_warnings_new_in_touched_files() -> None:
    led = WarningLedger()
    old = CompilerWarning("mm/gup.c", "unused variable 'x' [-Wunused-variable]", 120)
    assert led.add([old], {"mm/gup.c"}, ()) == []  # base
    moved = CompilerWarning("mm/gup.c", old.text, 131)  # the patch moved it: not new
    extra = CompilerWarning("mm/gup.c", "unused variable 'z' [-Wunused-variable]", 140)
    other = CompilerWarning("mm/util.c", "something [-Wfoo]", 3)
    assert led.add([moved, extra, other], {"mm/gup.c", "mm/util.c"}, ("mm/gup.c",)) == [extra]
    # Not recompiled in the next row: what the file had is kept.
    assert led.add([], set(), ("README",)) == []
    # Fixed, then back: new again.
    assert led.add([], {"mm/gup.c"}, ("mm/gup.c",)) == []
    assert led.add([moved], {"mm/gup.c"}, ("mm/gup.c",)) == [moved]


# ---- reports ---------------------------------------------------------------------------------


def _rows() -> list[Row]:
    nasty = "mm: \x1b[31mred\x00 | pipes \udcff"
    return [
        row(0, {"cow.a": PASS, "cow.b": SKIP}),
        Row(
            1,
            nasty,
            "1" * 40,
            ("mm/gup.c",),
            build=Step.FAILED,
            build_error="mm/gup.c:1: error: \x07bell",
            note="x",
        ),
        row(
            2,
            {"cow.a": FAIL, "cow.b": SKIP},
            new_warnings=(CompilerWarning("mm/gup.c", "unused 'q' [-Wunused]", 5),),
        ),
    ]


def test_reports_are_valid_and_safe_with_console_bytes() -> None:
    rows = _rows()
    xml = series_report.junit(rows, True, {"kernel": "6.12 \x01"})
    root = ET.fromstring(xml)
    assert len(root.findall("testsuite")) == 3
    fails = [
        (s.get("name", "")[:5], c.get("name"))
        for s in root
        for c in s.findall("testcase")
        if c.find("failure") is not None
    ]
    assert fails == [("01 1 ", "build"), ("02 2 ", "cow.a")]
    table = series_report.table(rows, True, "t")
    assert "\x1b" not in table and "\x00" not in table and "\x07" not in table
    md = series_report.markdown(rows, True, "t", "6.12")
    assert "pipes" in md and "\\|" in md and md.count("\n| ") == 4
    rec = json.loads(series_report.record(rows, {"title": "t"}, True))
    assert rec["exit_code"] == 1 and rec["columns"] == ["cow.a"]
    assert rec["rows"][2]["new_warnings"] == ["mm/gup.c:5: warning: unused 'q' [-Wunused]"]


def test_matrix_cells() -> None:
    m = series_report.matrix(_rows(), with_apply=False)
    assert m.header == ("", "commit", "subject", "build", "boot", "t1")
    assert m.cells[1][3:] == ("FAILED (broke)", "-", "-")
    assert m.cells[2][3:] == ("ok +1w (fixed)", "ok", "FAIL (broke)")
    assert m.legend == (("t1", "cow.a"),)


def test_parse_checkpatch_as_the_kernel_prints_it() -> None:
    from harness.series.core import parse_checkpatch

    out = (
        "WARNING: Missing commit description - Add an appropriate one\n\n"
        "ERROR: Missing Signed-off-by: line(s)\n\n"
        "total: 1 errors, 1 warnings, 8 lines checked\n\n"
        "NOTE: For some of the reported defects, checkpatch may be able to\n"
        "      mechanically convert to the typical style using --fix or --fix-inplace.\n"
    )
    cp = parse_checkpatch(out)
    assert (cp.errors, cp.warnings, cp.checks, cp.ran, cp.cell) == (1, 1, 0, True, "1E 1W")
    assert cp.lines == (
        "WARNING: Missing commit description - Add an appropriate one",
        "ERROR: Missing Signed-off-by: line(s)",
    )
    strict = parse_checkpatch(
        "mm/gup.c:12: CHECK: Alignment should match open parenthesis\n"
        "total: 0 errors, 0 warnings, 2 checks, 20 lines checked\n"
    )
    assert (strict.checks, strict.cell, strict.lines) == (
        2,
        "2C",
        ("mm/gup.c:12: CHECK: Alignment should match open parenthesis",),
    )
    assert parse_checkpatch("total: 0 errors, 0 warnings, 3 lines checked\n").cell == "ok"
    broken = parse_checkpatch("Can't locate Foo.pm in @INC\n")
    assert not broken.ran and "no total" in broken.note and broken.cell == "-"
