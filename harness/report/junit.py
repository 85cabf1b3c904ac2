"""Report writers: JUnit XML and a terminal summary (pure), and the results.jsonl appender.

Test output comes from a guest console: it can hold NULs, escape sequences and bytes that were
not UTF-8 (decoded with errors="surrogateescape", so they arrive as lone surrogates). XML 1.0
cannot carry most of those, and a JUnit file that does not parse loses every verdict in it, so
every string is made XML-safe here before junit-xml sees it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from harness.errors import InputError, ReportWriteError
from harness.model import CaseResult, Verdict
from harness.reportio import fsync_dir
from harness.safetext import (
    one_line,
    terminal_line,
    xml_safe,
)

# Verdict order in counts and the final line, and the word each has there.
_VERDICT_WORDS = (
    (Verdict.PASS, "passed"),
    (Verdict.FAIL, "failed"),
    (Verdict.SKIP, "skipped"),
    (Verdict.XFAIL, "xfail"),
    (Verdict.XPASS, "xpass"),
    (Verdict.ERROR, "error"),
)
# Counted only when present, so a run without --repeat reports exactly as before.
_REPEAT_WORDS = ((Verdict.FLAKY, "flaky"),)
_EMPTY_SUITE = "harness"


# ---- JUnit -----------------------------------------------------------------------------


def junit_xml(results: Sequence[CaseResult], properties: Mapping[str, str]) -> str:
    """JUnit XML: one testsuite per program (first-seen order), the run properties on each.

    FAIL, XPASS and FLAKY are failures, ERROR an error (a skip no `expect: skip` rule explains
    is one too: expect.judge), SKIP skipped; XFAIL passes with a
    system-out saying it was an expected failure and why. With no results at all, one empty
    suite still carries the properties, so the run's environment is on record.
    """
    return junit_xml_groups([("", results, properties)])


def junit_xml_groups(groups: Sequence[tuple[str, Sequence[CaseResult], Mapping[str, str]]]) -> str:
    """JUnit XML for several runs in one file (a kernel matrix): each group is (prefix,
    results, properties); its suites are named "<prefix> <program>" and carry its properties."""
    suites = []
    for prefix, results, properties in groups:
        props = {one_line(k): one_line(v) for k, v in properties.items()}
        by_program: dict[str, list[Any]] = {}
        for r in results:
            by_program.setdefault(r.program, []).append(_test_case(r, prefix))
        if not by_program:
            by_program[_EMPTY_SUITE] = []
        suites += [
            TestSuite(one_line(f"{prefix} {program}" if prefix else program), cases, properties=dict(props))
            for program, cases in by_program.items()
        ]
    xml: str = to_xml_report_string(suites)
    return xml


def _test_case(r: CaseResult, prefix: str = "") -> Any:
    classname = f"{prefix} {r.program}" if prefix else r.program
    case = TestCase(one_line(r.id), classname=one_line(classname), elapsed_sec=r.duration_s)
    output = xml_safe(r.output) or None
    if r.verdict in (Verdict.FAIL, Verdict.XPASS, Verdict.FLAKY):
        case.add_failure_info(_message(r), output, r.verdict.value)
    elif r.verdict is Verdict.ERROR:
        case.add_error_info(_message(r), output, r.verdict.value)
    elif r.verdict is Verdict.SKIP:
        case.add_skipped_info(one_line(r.reason) or "skipped", output)
    elif r.verdict is Verdict.XFAIL:
        case.stdout = xml_safe(_xfail_note(r) + (r.output and "\n" + r.output))
    else:
        case.stdout = output
    return case


def _message(r: CaseResult) -> str:
    """ "FAIL: reason (expected pass: why)" - always non-empty, or junit-xml drops the element."""
    text = f"{r.verdict.value}: {r.reason}" if r.reason else r.verdict.value
    exp = r.expectation
    if exp.reason:
        text += f" (expected {exp.expect}: {exp.reason})"
    return one_line(text)


def _xfail_note(r: CaseResult) -> str:
    exp = r.expectation
    lines = [f"XFAIL: {r.reason}" if r.reason else "XFAIL", f"expected: {exp.expect}"]
    lines += [
        f"{label}: {value}"
        for label, value in (("why", exp.reason), ("commit", exp.commit), ("rule", exp.source))
        if value
    ]
    return "\n".join(lines) + "\n"


# ---- terminal summary ----------------------------------------------------------------------


def summary_table(results: Sequence[CaseResult]) -> str:
    """One line per non-PASS case, then the counts; ends with "harness: N passed, ...".

    The last line is prefixed: a bare "N passed, N failed" line is read by our CI as a test
    runner's summary.
    """
    lines = _case_lines([r for r in results if r.verdict is not Verdict.PASS])
    counts = Counter(r.verdict for r in results)
    if lines:
        lines.append("")
    lines += count_lines(counts)
    return "\n".join(lines) + "\n"


def count_lines(counts: Mapping[Verdict, int]) -> list[str]:
    """The "verdicts: PASS=..." and "harness: N passed, ..." lines for these counts."""
    words = _VERDICT_WORDS + tuple(w for w in _REPEAT_WORDS if counts.get(w[0]))
    return [
        "verdicts: " + "  ".join(f"{v.value}={counts.get(v, 0)}" for v, _ in words),
        "harness: " + ", ".join(f"{counts.get(v, 0)} {word}" for v, word in words),
    ]


def _case_lines(results: Sequence[CaseResult]) -> list[str]:
    ids = [terminal_line(r.id) for r in results]
    width = min(max((len(i) for i in ids), default=0), 72)
    lines = []
    for r, case_id in zip(results, ids, strict=False):
        reason = terminal_line(r.reason)
        lines.append(f"{r.verdict.value:<5}  {case_id:<{width}}  {reason}".rstrip())
    return lines


# ---- results.jsonl -------------------------------------------------------------------------


def result_record(r: CaseResult) -> dict[str, Any]:
    """A JSON-serializable record of one result (one line of results.jsonl)."""
    exp = r.expectation
    return {
        "id": r.id,
        "program": r.program,
        "outcome": r.outcome.value,
        "verdict": r.verdict.value,
        "reason": r.reason,
        "output": r.output,
        "duration_s": r.duration_s,
        "kernel_events": list(r.kernel_events),
        "expectation": {
            "expect": exp.expect,
            "reason": exp.reason,
            "commit": exp.commit,
            "source": exp.source,
        },
    }


class ResultsLog:
    """results.jsonl, appended and fsynced as each test ends so a crash loses no finished
    result. A write that fails (a full disk) is cut back off, so the file never holds a torn
    line before a later one, and raises ReportWriteError."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._dir_synced = False

    def drop_torn_line(self) -> None:
        """Cut a last line a dead writer left without its newline, so that an append after it
        does not make it a corrupt line in the middle."""
        try:
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ReportWriteError(f"cannot repair {self.path}: {e.strerror or e}") from None

    def append(self, r: CaseResult) -> None:
        # ensure_ascii (the default) writes lone surrogates from surrogateescape'd output as
        # \udcXX escapes: the line stays ASCII and json.loads gives the same string back.
        line = (json.dumps(result_record(r)) + "\n").encode("ascii")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ReportWriteError(f"cannot write {self.path}: {e.strerror or e}") from None
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as e:
                try:
                    os.ftruncate(fd, start)
                except OSError:
                    pass
                raise ReportWriteError(f"cannot append to {self.path}: {e.strerror or e}") from None
        finally:
            os.close(fd)
        if not self._dir_synced:  # the file's own entry must survive a crash too
            fsync_dir(self.path.parent)
            self._dir_synced = True


def read_results_lenient(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The readable records of a results.jsonl and how many lines were not (torn by a writer
    that died, or corrupt): for combining several runs, where one broken file must not cost
    the others their report. A missing file has no records."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError:
        return [], 1
    records, bad = [], 0
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            records.append(record)
        else:
            bad += 1
    return records, bad


def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of a results.jsonl. A torn last line (no newline: the writer died) is
    dropped; any other undecodable line is an InputError naming file:line."""
    try:
        text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):  # the final piece after the last newline
                break
            raise InputError(f"{path}:{number}: not a JSON result record: {e}") from e
        records.append(record)
    return records
