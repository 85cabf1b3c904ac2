"""From what came back from the guest to CaseResults (pure).

A program's KTAP gives the normal case. When things go wrong the kernel log decides:
the guest writes a `harness: ok N <id>` marker to /dev/kmsg after every case
(guest/run-test.sh), so after a panic or a hang the results that came before it are read back
from the console, the first case without a marker is the one that was running, and the cases
after it can run again in a fresh guest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness.judge import expect, kmsg, ktap
from harness.model import CaseResult, Expect, Expectation, Kernel, Outcome, TestNode, Verdict
from harness.suites import kselftest
from harness.suites.registry import Selected

CONSOLE_TAIL_CHARS = 8000  # of the console of a case that lost the guest (backtraces, panic)


def case_results(
    sel: Selected, root: TestNode, rules: expect.RuleSet, kernel: Kernel, program_error: str = ""
) -> list[CaseResult]:
    """Map one program's KTAP onto the ids it was asked to run."""
    if sel.program.runs_whole:  # ids come from the output itself
        return kselftest.case_results(
            sel.program.name, sel.program.id_prefix, sel.filters, root, rules, kernel, program_error
        )
    by_name: dict[str, TestNode] = {}
    for child in root.children:
        if child.name in sel.ids and child.name not in by_name:
            by_name[child.name] = child
        elif child.number is not None and 0 < child.number <= len(sel.ids):
            by_name.setdefault(sel.ids[child.number - 1], child)
    out = []
    for case_id in sel.ids:
        exp = expect.expectation_for(rules, case_id, kernel)
        node = by_name.get(case_id)
        if node is None:
            why = program_error or "the program did not report this case"
            out.append(CaseResult(case_id, sel.program.name, Outcome.ERROR, Verdict.ERROR, why, "", exp))
            continue
        reason = node.reason
        if node.outcome is Outcome.ERROR and program_error:
            reason = f"{reason}; {program_error}" if reason else program_error
        verdict, reason = expect.judge_case(node.outcome, exp, reason)
        out.append(
            CaseResult(
                case_id,
                sel.program.name,
                node.outcome,
                verdict,
                reason,
                "\n".join(node.diagnostics),
                exp,
            )
        )
    return out


def program_invalid(results: Sequence[CaseResult], why: str) -> list[CaseResult]:
    """Every case of a program whose KTAP cannot be trusted as a whole (ktap.plan_problem) is
    ERROR with that reason; what it reported for the case, if anything, is kept in the reason."""
    out = []
    for r in results:
        said = "" if r.outcome is Outcome.ERROR else f" (it reported {r.outcome.value} for this case)"
        out.append(dataclasses.replace(r, outcome=Outcome.ERROR, verdict=Verdict.ERROR, reason=why + said))
    return out


def not_run(
    sel: Selected, done: set[str], why: str, rules: expect.RuleSet, kernel: Kernel | None
) -> list[CaseResult]:
    out = []
    for case_id in sel.ids:
        if case_id in done:
            continue
        if sel.program.runs_whole and any(d.startswith(case_id + ".") for d in done):
            continue  # the program ran: its results are under its prefix
        exp = expect.expectation_for(rules, case_id, kernel) if kernel else Expectation(Expect.PASS)
        out.append(
            CaseResult(case_id, sel.program.name, Outcome.ERROR, Verdict.ERROR, why, "", exp, not_run=True)
        )
    return out


def _error(
    case_id: str, program: str, why: str, output: str, exp: Expectation, events: tuple[str, ...] = ()
) -> CaseResult:
    return CaseResult(case_id, program, Outcome.ERROR, Verdict.ERROR, why, output, exp, kernel_events=events)


def after_timeout(
    sel: Selected, results: list[CaseResult], limit_s: float
) -> tuple[list[CaseResult], list[str]]:
    """The guest killed the program at its limit. Cases it reported stand; the first one it
    did not report is the one that hung (ERROR); the ones after it never ran: run them again."""
    if sel.program.runs_whole:  # what it did not report is ERROR, no rerun
        why = f"timed out: still running after {limit_s:.0f}s, killed in the guest"
        return [
            dataclasses.replace(r, reason=f"{r.reason}; {why}" if r.reason else why)
            if r.outcome is Outcome.ERROR
            else r
            for r in results
        ], []
    reported = [r for r in results if r.outcome is not Outcome.ERROR]
    done = {r.id for r in reported}
    missing = [i for i in sel.ids if i not in done]
    if not missing:
        return reported, []
    hung = next(r for r in results if r.id == missing[0])
    why = f"timed out: still running after {limit_s:.0f}s, killed in the guest"
    return reported + [
        dataclasses.replace(hung, outcome=Outcome.ERROR, verdict=Verdict.ERROR, reason=why)
    ], missing[1:]


def _marker_outcome(m: kmsg.Marker) -> tuple[Outcome, str]:
    word, _, rest = m.directive.partition(" ")
    if word.upper() == "SKIP":
        return Outcome.SKIP, rest
    if word.upper() == "XFAIL":
        return Outcome.XFAIL, rest
    return (Outcome.OK if m.ok else Outcome.NOT_OK), ""


def after_guest_loss(
    sel: Selected,
    section: str,
    why: str,
    rules: expect.RuleSet,
    kernel: Kernel,
    fail_on_kernel_report: bool = True,
) -> tuple[list[CaseResult], list[str]]:
    """The guest died (panic, hang) while `sel` ran; `section` is the console from its start.

    Results come back from the markers on the console; the first case without one was running
    when the guest died: ERROR, with the kernel's report as its output. The ids after it are
    returned to be run again in a fresh guest."""
    marks = {m.case_id: m for m in kmsg.markers(section) if m.kind == "result"}
    slices = kmsg.slice_by_markers(section, sel.ids)
    out: list[CaseResult] = []
    for n, case_id in enumerate(sel.ids):
        exp = expect.expectation_for(rules, case_id, kernel)
        m = marks.get(case_id)
        if m is None:
            events = kmsg.scan(slices.get(case_id, ""))
            titles = tuple(e.title for e in events)
            reason = f"{why}: {titles[-1]}" if titles else why
            tail = slices.get(case_id, "")[-CONSOLE_TAIL_CHARS:]
            excerpt = "\n\n".join(
                [*(e.excerpt for e in events), "--- console while it ran (tail) ---\n" + tail]
            )
            out = with_kernel_reports(out, section, sel.ids, fail_on_kernel_report)
            out.append(_error(case_id, sel.program.name, reason, excerpt, exp, titles))
            return out, list(sel.ids[n + 1 :])
        outcome, reason = _marker_outcome(m)
        verdict, reason = expect.judge_case(outcome, exp, reason)
        note = "(recovered from the kernel log: the guest was lost later in this program)"
        out.append(CaseResult(case_id, sel.program.name, outcome, verdict, reason, note, exp))
    return with_kernel_reports(out, section, sel.ids, fail_on_kernel_report), []


def with_kernel_reports(
    results: Sequence[CaseResult],
    section: str,
    ids: Sequence[str],
    fail: bool = True,
    slices: dict[str, str] | None = None,
) -> list[CaseResult]:
    """Attach the kernel reports made during each case (sliced by the markers) to it. With
    `fail`, a case that would otherwise count as fine (PASS, XFAIL, SKIP) becomes FAIL.
    `slices` (case id → its log) replaces the marker slicing (kselftests: kselftest.slices)."""
    if slices is None:
        slices = kmsg.slice_by_markers(section, ids)
    out = []
    for r in results:
        events = kmsg.scan(slices.get(r.id, ""))
        if not events:
            out.append(r)
            continue
        titles = tuple(e.title for e in events)
        output = (
            r.output
            + "\n\n--- kernel reports during this case ---\n"
            + "\n\n".join(e.excerpt for e in events)
        )
        r = dataclasses.replace(r, output=output, kernel_events=titles)
        if fail and r.verdict in (Verdict.PASS, Verdict.XFAIL, Verdict.SKIP):
            r = dataclasses.replace(
                r,
                verdict=Verdict.FAIL,
                reason=f"kernel {events[0].kind}: {titles[0]}"
                + (f" (+{len(titles) - 1} more)" if len(titles) > 1 else ""),
            )
        out.append(r)
    return out


def judge_program(
    sel: Selected,
    stdout: str,
    program_error: str,
    section: str,
    rules: expect.RuleSet,
    kernel: Kernel,
    fail_on_kernel_report: bool = True,
    timed_out_after_s: float | None = None,
) -> tuple[list[CaseResult], list[str]]:
    """One program's run, judged: its KTAP (stdout) mapped onto the ids it was asked to run, a
    plan it broke, a timeout (the ids after the hung one are returned to run again), and the
    kernel reports its `section` of the console holds, per case. A local run (runner) and a
    LAVA job's log (lavacollect) judge a program alike through this."""
    prog = sel.program
    root = ktap.parse(stdout)
    results = case_results(sel, root, rules, kernel, program_error)
    broken = ktap.plan_problem(root, prog.planned(sel))
    if broken:
        results = program_invalid(results, broken)
    leftover: list[str] = []
    if timed_out_after_s is not None:
        results, leftover = after_timeout(sel, results, timed_out_after_s)
    slices = prog.log_slices(root, section)  # a kselftest's markers carry upstream's names
    return with_kernel_reports(results, section, sel.ids, fail_on_kernel_report, slices), leftover
