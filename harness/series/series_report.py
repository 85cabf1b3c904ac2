"""`harness series` reports (pure): the matrix as a terminal table and as markdown, JUnit with
one suite per row, and the JSON record.

Rows are the base and each patch; columns are apply (patch emails only), build, boot, and every
test whose verdict changed somewhere in the series. A cell is the verdict, with "(broke)" or
"(fixed)" when it went bad or good relative to the row before. Test ids are long, so the
columns are numbered t1, t2... and a legend names them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from harness.safetext import TERMINAL_UNSAFE, escape_char, one_line, xml_safe
from harness.series.core import (
    Change,
    Mark,
    Problem,
    Row,
    Step,
    changed_tests,
    changes,
    exit_code,
    failing,
    first_line,
    patch_state,
    problems,
)

CHECK_CONTEXT = "harness-series"  # the patchwork check context

_STEP_WORD = {Step.OK: "ok", Step.FAILED: "FAILED", Step.NOT_RUN: "-"}


@dataclasses.dataclass(frozen=True)
class Matrix:
    header: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    legend: tuple[tuple[str, str], ...]  # (t1, test id)
    problems: tuple[Problem, ...]


def _tag(mark: Mark | None) -> str:
    return f" ({mark.value})" if mark in (Mark.BROKE, Mark.FIXED) else ""


def matrix(rows: Sequence[Row], with_apply: bool) -> Matrix:
    tests = changed_tests(rows)
    marks: dict[tuple[int, str], Mark] = {(c.row, c.column): c.mark for c in changes(rows)}
    legend = tuple((f"t{i + 1}", tid) for i, tid in enumerate(tests))
    with_cp = any(r.checkpatch is not None and r.checkpatch.ran for r in rows)
    with_w1 = any(r.w1_after is not None for r in rows)
    header = (
        "",
        "commit",
        "subject",
        *(["apply"] if with_apply else []),
        *(["checkpatch"] if with_cp else []),
        "build",
        *(["W=1"] if with_w1 else []),
        "boot",
        *(k for k, _ in legend),
    )
    body = []
    for r in rows:
        build = _STEP_WORD[r.build] + (f" +{len(r.new_warnings)}w" if r.new_warnings else "")
        cells = [r.label, r.short or "-", r.subject]
        if with_apply:
            cells.append(("-" if r.index == 0 else _STEP_WORD[r.apply]) + _tag(marks.get((r.index, "apply"))))
        if with_cp:
            cells.append(r.checkpatch.cell if r.checkpatch is not None else "-")
        cells.append(build + _tag(marks.get((r.index, "build"))))
        if with_w1:
            cells.append(r.w1_cell)
        cells.append(_STEP_WORD[r.boot] + _tag(marks.get((r.index, "boot"))))
        for tid in tests:
            cell = r.tests.get(tid)
            cells.append("-" if cell is None else cell.verdict.value + _tag(marks.get((r.index, tid))))
        body.append(tuple(cells))
    return Matrix(header, tuple(body), legend, tuple(problems(rows)))


def _footer(rows: Sequence[Row], m: Matrix) -> list[str]:
    lines = [f"{k} = {tid}" for k, tid in m.legend]
    if not m.legend:
        lines.append("no test changed its verdict across the series")
    notes = {r.checkpatch.note for r in rows if r.checkpatch is not None and r.checkpatch.note}
    lines += [f"checkpatch: {n}" for n in sorted(notes)]
    for r in rows:
        for w in r.new_warnings:
            lines.append(f"new warning in {r.label}: {w}")
        for w in r.w1_new:
            lines.append(f"new W=1 warning in {r.label}: {w}")
        if r.checkpatch is not None:
            lines += [f"checkpatch {r.label}: {ln}" for ln in r.checkpatch.lines]
        if r.note:
            lines.append(f"{r.label}: {r.note}")
    return lines


def _problem_line(p: Problem, strict: bool) -> str:
    soft = " (reported; fails the series with --strict)" if p.soft and not strict else ""
    return f"patch {p.row}: {p.column}: {p.text}{soft}"


def table(
    rows: Sequence[Row], with_apply: bool, title: str = "", subject_width: int = 40, strict: bool = False
) -> str:
    m = matrix(rows, with_apply)
    body = [list(c) for c in m.cells]
    for c in body:
        c[2] = c[2] if len(c[2]) <= subject_width else c[2][: subject_width - 3] + "..."
    grid = [[*m.header, "build+run"], *([*c, _times(r)] for c, r in zip(body, rows, strict=False))]
    grid = [[one_line(v, TERMINAL_UNSAFE) for v in r] for r in grid]
    widths = [max(len(r[i]) for r in grid) for i in range(len(grid[0]))]
    lines = [f"series: {title}"] if title else []
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in grid]
    lines += _footer(rows, m)
    lines += [f"problem: {_problem_line(p, strict)}" for p in m.problems]
    verdict = (
        f"{len(m.problems)} problem(s) in {len({p.row for p in m.problems})} patch(es)"
        if m.problems
        else "no patch broke the build, the boot or a test"
    )
    if m.problems and not failing(m.problems, strict):
        verdict += " (none fails the series without --strict)"
    lines.append(f"series: {max(len(rows) - 1, 0)} patch(es); {verdict}")
    # Subjects, warnings and errors come from the patches and the compiler: no escape sequence
    # of theirs reaches the terminal.
    return "\n".join(TERMINAL_UNSAFE.sub(escape_char, ln) for ln in lines) + "\n"


def _times(r: Row) -> str:
    return f"{r.build_s:.0f}s+{r.run_s:.0f}s" if r.build is not Step.NOT_RUN else "-"


def _md(text: str) -> str:
    return one_line(text).replace("|", "\\|")


def markdown(
    rows: Sequence[Row], with_apply: bool, title: str = "", kernel: str = "", strict: bool = False
) -> str:
    """To paste under a cover letter."""
    m = matrix(rows, with_apply)
    out = [f"### harness series: {_md(title)}" if title else "### harness series", ""]
    if kernel:
        out += [f"Tested on {kernel}.", ""]
    out.append("| " + " | ".join(_md(h) or "#" for h in m.header) + " |")
    out.append("|" + "|".join("---" for _ in m.header) + "|")
    for c in m.cells:
        out.append("| " + " | ".join(_md(v) for v in c) + " |")
    out.append("")
    out += [f"- {line}" for line in _footer(rows, m)]
    if m.problems:
        out += ["", "Problems:", ""]
        out += [f"- {_md(_problem_line(p, strict))}" for p in m.problems]
    else:
        out += ["", "No patch broke the build, the boot or a test."]
    return "\n".join(out) + "\n"


def _suite_name(r: Row) -> str:
    return one_line(f"{r.index:02d} {r.label} {r.short or '-'} {r.subject}")


def junit(rows: Sequence[Row], with_apply: bool, properties: Mapping[str, str], strict: bool = False) -> str:
    """One suite per row. A failure is a problem of that row (series.problems; checkpatch errors
    only with --strict); in the base row, a build or boot failure is an error, and tests are
    only recorded."""
    probs = {(p.row, p.column): p for p in failing(problems(rows), strict)}
    suites = []
    for r in rows:
        cases = []
        steps = [("apply", r.apply, r.apply_message)] if with_apply and r.index else []
        steps += [("build", r.build, r.build_error), ("boot", r.boot, r.boot_error)]
        for name, step, err in steps:
            tc = TestCase(
                name, classname=_suite_name(r), elapsed_sec={"build": r.build_s, "boot": 0.0}.get(name, 0.0)
            )
            if name == "build" and r.warnings:
                tc.stdout = xml_safe(
                    "\n".join(
                        ["new warnings:", *map(str, r.new_warnings)]
                        if r.new_warnings
                        else [f"{len(r.warnings)} warning(s), none new in the files this patch touched"]
                    )
                )
            if step is Step.NOT_RUN:
                tc.add_skipped_info(one_line(r.note or "not run"))
            elif (r.index, name) in probs:
                tc.add_failure_info(one_line(probs[(r.index, name)].text), xml_safe(err) or None, name)
            elif step is Step.FAILED:
                tc.add_error_info(one_line(f"{name} failed: {first_line(err)}"), xml_safe(err) or None, name)
            cases.append(tc)
        cp = r.checkpatch
        if cp is not None:
            tc = TestCase("checkpatch", classname=_suite_name(r))
            text = xml_safe(
                "\n".join(
                    [f"{cp.errors} error(s), {cp.warnings} warning(s), {cp.checks} check(s)", *cp.lines]
                )
                if cp.ran
                else cp.note
            )
            if (r.index, "checkpatch") in probs:
                tc.add_failure_info(one_line(probs[(r.index, "checkpatch")].text), text, "checkpatch")
            elif not cp.ran:
                tc.add_skipped_info(one_line(cp.note))
            else:
                tc.stdout = text
            cases.append(tc)
        for tid, cell in r.tests.items():
            tc = TestCase(one_line(tid), classname=_suite_name(r))
            if (r.index, tid) in probs:
                tc.add_failure_info(one_line(probs[(r.index, tid)].text), None, cell.verdict.value)
            elif cell.verdict.value == "SKIP":
                tc.add_skipped_info(one_line(cell.reason) or "skipped")
            else:
                tc.stdout = f"verdict: {cell.verdict.value}" + (
                    f" ({xml_safe(cell.reason)})" if cell.reason else ""
                )
            cases.append(tc)
        props = {one_line(k): one_line(v) for k, v in {**properties, "commit": r.commit}.items()}
        suites.append(TestSuite(_suite_name(r), cases, properties=props))
    xml: str = to_xml_report_string(suites)
    return xml


def row_record(r: Row) -> dict[str, Any]:
    d = dataclasses.asdict(r)
    for k in ("apply", "build", "boot"):
        d[k] = getattr(r, k).value
    d["tests"] = {
        tid: {
            "verdict": c.verdict.value,
            "outcome": c.outcome.value,
            "quality": c.quality.value,
            "reason": c.reason,
        }
        for tid, c in r.tests.items()
    }
    d["warnings"] = [str(w) for w in r.warnings]
    d["new_warnings"] = [str(w) for w in r.new_warnings]
    d["w1_new"] = [str(w) for w in r.w1_new]
    d["label"] = r.label
    return d


def change_record(c: Change) -> dict[str, Any]:
    return {
        "row": c.row,
        "column": c.column,
        "mark": c.mark.value or "same",
        "before": c.before,
        "after": c.after,
    }


def checks(rows: Sequence[Row], strict: bool = False, url_base: str | None = None) -> list[dict[str, Any]]:
    """One check per patch in the shape patchwork's checks API takes (state, target_url,
    context, description), plus which patch it is for, so a CI job can post them as they are."""
    probs = problems(rows)
    out = []
    for r in rows[1:]:
        state, desc = patch_state(r, probs, strict)
        url = f"{url_base.rstrip('/')}/rows/{r.index:02d}/" if url_base else None
        out.append(
            {
                "patch": r.index,
                "commit": r.commit,
                "subject": r.subject,
                "state": state,
                "context": CHECK_CONTEXT,
                "description": one_line(desc)[:250],
                "target_url": url,
            }
        )
    return out


def record(
    rows: Sequence[Row],
    info: Mapping[str, Any],
    finished: bool,
    strict: bool = False,
    url_base: str | None = None,
) -> str:
    """series.json: the request, every row so far, the changes, the problems, a patchwork check
    per patch and the exit code."""
    probs = problems(rows)
    data = {
        **info,
        "finished": finished,
        "rows": [row_record(r) for r in rows],
        "columns": changed_tests(rows),
        "changes": [change_record(c) for c in changes(rows)],
        "problems": [dataclasses.asdict(p) for p in probs],
        "checks": checks(rows, strict, url_base),
        "exit_code": exit_code(rows, strict),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
