"""Bisect reports (pure): the step log, the final text and the JUnit record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from junit_xml import TestCase, TestSuite, to_xml_report_string

from harness.bisect.core import Answer, Decision, Policy, StepRecord, bad_runs, flaky, step_summary
from harness.safetext import xml_safe


def step_line(n: int, rec: StepRecord, policy: Policy) -> str:
    """One line of the step log: number, candidate, prepare and run time, decision, verdicts."""
    res = rec.result
    role = "" if rec.role == "step" else f" [{rec.role}]"
    if flaky(res, policy):
        role += f" [flaky: {bad_runs(res, policy)} of {len(res.runs)} runs bad, below {policy.threshold}]"
    return (
        f"{n:3d}  {rec.label:<36.36s} prep {res.prepare_s:6.1f}s  run {res.run_s:6.1f}s  "
        f"{rec.decision.value:<4s}{role}  {step_summary(res, policy)}"
    )


def step_log(records: Sequence[StepRecord], policy: Policy) -> str:
    head = (
        "  #  candidate                            build/fetch     tests     decision  "
        "verdicts of the named tests per run"
    )
    return "\n".join([head, *(step_line(i + 1, r, policy) for i, r in enumerate(records))]) + "\n"


def describe_policy(policy: Policy) -> str:
    what = "first good (the fix)" if policy.reverse else "first bad (the regression)"
    flaky = " (flaky when the rest are good)" if policy.runs > 1 else ""
    return (
        f"looking for the {what}; tests: {', '.join(policy.tests)}; judged on the "
        f"{policy.judge.value}; {policy.runs} run(s) per step, bad = {policy.threshold}+ bad run(s), "
        f"good = all good, else skipped{flaky}; boot failure = {'bad' if policy.bisect_boot else 'skip'}"
    )


def proof_lines(answer: Answer) -> list[str]:
    """The revert check and the no-op check of a found answer, as the summary says them."""
    out = []
    ver = answer.extra.get("verification")
    if ver:
        took = (
            f" (build {ver['prepare_s']:.0f}s + tests {ver['run_s']:.0f}s)"
            if ver.get("prepare_s") or ver.get("run_s")
            else ""
        )
        short = answer.first[0][:12]
        what = {
            "verified by revert": f"reverting {short} on top of {ver['onto'][:12]} brings the old "
            f"behaviour back: {ver['detail']}",
            "revert does not apply": f"{short} cannot be reverted on {ver['onto'][:12]}: {ver['detail']}; "
            "the answer is not verified",
            "revert does not restore": f"with {short} reverted on {ver['onto'][:12]} the tests are "
            f"{ver['detail']}; the answer is doubtful (confidence lowered)",
        }.get(ver["status"], f"{ver['detail']}; the answer is not verified")
        out.append(f"{ver['status']}: {what}{took}")
    if answer.extra.get("noop"):
        out.append(
            f"unreliable: the build of {answer.first[0][:12]} is byte-identical to its parent's "
            f"({answer.extra.get('build_hash', '')[:19]}): a comment-, docs- or other-arch-only "
            "change cannot change the kernel (confidence lowered)"
        )
    return out


def final_text(answer: Answer, records: Sequence[StepRecord], policy: Policy, total_s: float) -> str:
    lines = []
    term = "good" if policy.reverse else "bad"
    if answer.status == "found":
        lines.append(f"first {term}: {answer.first[0]}")
        extra = answer.extra
        if extra.get("subject"):
            lines.append(f"  subject: {extra['subject']}")
        if extra.get("author"):
            lines.append(f"  author:  {extra['author']}")
        files = list(extra.get("files", []))
        if files:
            shown = files[:20]
            lines.append(
                "  files:   "
                + "\n           ".join(shown)
                + (f"\n           ... and {len(files) - len(shown)} more" if len(files) > len(shown) else "")
            )
    elif answer.status == "ambiguous":
        lines.append(f"only skipped candidates left: the first {term} is one of:")
        labels = list(answer.extra.get("labels", answer.first))
        lines += [
            f"  {c}" + (f"  {lab}" if lab != c else "") for c, lab in zip(answer.first, labels, strict=False)
        ]
    else:
        lines.append(f"bisect stopped: {answer.message}")
    lines += proof_lines(answer)
    if answer.confidence is not None:
        lines.append(f"confidence: {answer.confidence.value:.2f} ({answer.confidence.text})")
    skips = sum(1 for r in records if r.decision is Decision.SKIP)
    runs = sum(len(r.result.runs) for r in records)
    prep = sum(r.result.prepare_s for r in records)
    tests = sum(r.result.run_s for r in records)
    lines.append(
        f"{len(records)} step(s) ({skips} skipped), {runs} run(s); build/fetch {prep:.0f}s + "
        f"tests {tests:.0f}s over all steps; {total_s:.0f}s in this invocation"
    )
    return "\n".join(lines) + "\n"


def junit(
    records: Sequence[StepRecord], answer: Answer | None, policy: Policy, properties: Mapping[str, str]
) -> str:
    """One testcase per step (skip steps are skipped) and one for the result: it fails when the
    bisect did not end with a single answer. Decisions are not failures: a bad step is data."""
    cases = []
    for i, r in enumerate(records):
        tc = TestCase(
            f"step {i + 1:02d} {r.label}",
            classname="bisect.step",
            elapsed_sec=r.result.prepare_s + r.result.run_s,
        )
        text = f"decision: {r.decision.value} ({r.role})\n{step_summary(r.result, policy)}\n"
        if r.decision is Decision.SKIP:
            tc.add_skipped_info(xml_safe(step_summary(r.result, policy))[:300] or "skip", xml_safe(text))
        else:
            tc.stdout = xml_safe(text)
        cases.append(tc)
    res = TestCase("result", classname="bisect")
    if answer is None:
        res.add_error_info("bisect not finished (interrupted); rerun the same command to continue")
    elif answer.status != "found":
        msg = answer.message or f"{answer.status}: {', '.join(answer.first)}"
        res.add_failure_info(xml_safe(msg)[:500], xml_safe(msg), answer.status)
    else:
        res.stdout = xml_safe(
            f"first {'good' if policy.reverse else 'bad'}: {answer.first[0]}\n"
            + (f"confidence {answer.confidence.value}\n" if answer.confidence else "")
        )
    cases.append(res)
    props: dict[str, Any] = {k: xml_safe(" ".join(v.split())) for k, v in properties.items()}
    xml: str = to_xml_report_string([TestSuite("harness bisect", cases, properties=props)])
    return xml
