"""`harness lava collect SOURCE`: a LAVA job's log turned into an ordinary run dir, judged.

SOURCE is a job log (lava-run's stdout saved to a file, or a LAVA server's log from
`lavacli jobs logs --raw ID`), or a directory holding one (job.log or lava-run.log, as
`harness lava submit` and `harness lava run` leave it). The guest printed its plan (kernel,
programs, ids), its facts, every program's KTAP and stderr and its dmesg in frames
(harness/lava.py); each program is judged as a local run judges it (outcomes.judge_program:
expectations.yaml for the kernel that ran, kernel reports attributed per case by the
run-test.sh markers), and the run dir gets results.jsonl, junit.xml, summary.txt,
fingerprint.json, console.log, dmesg.log, output/, report.html and kcidb.json through the same
writers as `harness run`.

What a LAVA job cannot do that a local run does: rerun the cases after a hung or lost one in a
fresh guest. Those are ERROR, "not run", saying why.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__, limits, reportio
from harness.errors import HarnessError, InputError
from harness.judge import expect, outcomes
from harness.kernels.kernel import resolve as resolve_kernel
from harness.model import CaseResult, Kernel, Outcome
from harness.report import junit as report
from harness.report import lavalog, publish
from harness.run import rundir
from harness.run.guestfacts import guest_facts
from harness.run.runner import DEFAULT_EXPECTATIONS, RunOutcome, Stage, bounded, cross_check
from harness.suites import registry as suites

Progress = Callable[[str], None]
MAX_LOG_BYTES = 512 * limits.MIB
LOG_NAMES = ("job.log", "lava-run.log")
MONITOR = "harness-cow"  # the LAVA monitor's name (lava.Job.suite)


@dataclass(frozen=True)
class CollectRequest:
    source: Path
    out: Path | None = None
    expectations: Path = DEFAULT_EXPECTATIONS
    plan: Path | None = None  # the bundle's plan.json, when the guest never printed its own
    fail_on_kernel_report: bool = True
    out_reuse: bool = False


def find_log(source: Path) -> Path:
    if source.is_file():
        return source
    if not source.is_dir():
        raise InputError(f"{source}: no such file or directory")
    for name in LOG_NAMES:
        if (source / name).is_file():
            return source / name
    raise InputError(
        f"{source}: holds no LAVA job log ({' or '.join(LOG_NAMES)}); give the log file "
        "(lava-run's stdout, or `lavacli jobs logs --raw ID`)"
    )


def read_log(path: Path) -> lavalog.JobLog:
    try:
        size = path.stat().st_size
        if size > MAX_LOG_BYTES:
            raise InputError(
                f"{path}: {size} bytes, more than a LAVA job log of ours can be ({MAX_LOG_BYTES >> 20} MiB)"
            )
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    log = lavalog.parse_job_log(text)
    if not log.records:
        raise InputError(f"{path}: not a LAVA job log (no log records in it)")
    return log


def _plan(log: lavalog.JobLog, fr: dict[str, lavalog.Frame], plan_file: Path | None) -> dict[str, Any]:
    text = None
    if plan_file is not None:
        try:
            text = plan_file.read_text()
        except OSError as e:
            raise InputError(f"--plan {plan_file}: {e.strerror}") from None
    elif "plan" in fr and fr["plan"].data is not None:
        text = fr["plan"].data.decode("utf-8", "replace")
    if text is None:
        why = fr["plan"].problem if "plan" in fr else "the guest never printed it"
        raise InputError(
            f"no harness plan in the job log ({why}; LAVA job result: "
            f"{log.job_result or 'not in the log'}); give the job's plan.json with --plan"
        )
    try:
        plan = json.loads(text)
    except ValueError:
        raise InputError("the job's plan is not JSON") from None
    if (
        not isinstance(plan, dict)
        or plan.get("format") != 1
        or not isinstance(plan.get("programs"), list)
        or not isinstance(plan.get("kernel"), dict)
    ):
        raise InputError("the job's plan is not one this harness writes (format 1)")
    return plan


def _kernel(plan: dict[str, Any], progress: Progress) -> Kernel:
    """The kernel the job was made for, resolved here for its version and config (expectations)."""
    want = str(plan["kernel"].get("release", ""))
    spec = str(plan["kernel"].get("spec", ""))
    tried = []
    for s in (spec, f"debian:{want.removesuffix('-amd64')}" if want.endswith("-amd64") else ""):
        if not s or s in tried:
            continue
        tried.append(s)
        try:
            k = resolve_kernel(s, progress)
        except HarnessError:
            continue
        if k.release == want:
            return k
    raise InputError(
        f"the job ran kernel {want or '?'}, which cannot be resolved here (tried {', '.join(tried) or 'nothing'})"
    )


def _selected(plan: dict[str, Any]) -> list[suites.Selected]:
    """The plan's programs and ids, checked against this harness's own lists (the plan came
    through the guest's console: an id we do not have is refused, not judged)."""
    known = {p.name: p for p in suites.programs(list(suites.SUITES))}
    out = []
    for entry in plan["programs"][:1000]:
        if (
            not isinstance(entry, dict)
            or entry.get("name") not in known
            or not isinstance(entry.get("ids"), list)
        ):
            raise InputError(f"the job's plan names a program this harness does not have: {str(entry)[:100]}")
        prog = known[str(entry["name"])]
        ids = [str(i) for i in entry["ids"]]
        unknown = set(ids) - set(suites.list_ids(prog))
        if unknown:
            raise InputError(
                f"the job's plan names ids {prog.name} does not have: {', '.join(sorted(unknown)[:5])}"
            )
        out.append(suites.Selected(prog, tuple(ids)))
    return out


def _text(fr: dict[str, lavalog.Frame], name: str) -> tuple[str | None, str]:
    f = fr.get(name)
    if f is None:
        return None, "not on the console"
    if f.data is None:
        return None, f.problem
    return f.data.decode("utf-8", "surrogateescape"), f.note


def judge(
    log: lavalog.JobLog,
    selected: list[suites.Selected],
    kernel: Kernel,
    rules: expect.RuleSet,
    fail_on_kernel_report: bool = True,
    outputs: Callable[[str, str, str], None] = lambda n, o, e: None,
) -> tuple[list[CaseResult], list[str]]:
    """Every selected case judged from the log (pure but for `outputs`, which is given each
    program's name, stdout and stderr). Returns the results and notes on what was read how."""
    fr = lavalog.frames(log.console)
    secs = lavalog.sections(log.console)
    results: list[CaseResult] = []
    notes: list[str] = []
    lost = ""
    for sel in selected:
        name = sel.program.name
        sec = secs.get(name)
        if lost or sec is None:
            why = lost or (
                "not run: the LAVA job never started this program (job result: "
                f"{log.job_result or 'not in the log'})"
            )
            results += outcomes.not_run(sel, set(), why, rules, kernel)
            continue
        section = log.console_text(sec.start, sec.end)
        if sec.rc is None:
            gone = "the guest was lost during this program in the LAVA job (the console ends inside it)"
            got, leftover = outcomes.after_guest_loss(
                sel, section, gone, rules, kernel, fail_on_kernel_report
            )
            results += got
            lost = "not run: the guest was lost earlier in the LAVA job"
            results += outcomes.not_run(
                suites.Selected(sel.program, tuple(leftover)), set(), lost, rules, kernel
            )
            outputs(name, section, "")
            continue
        stdout, how = _text(fr, f"out-{name}")
        if stdout is None:
            notes.append(f"{name}: its framed output is {how}: judged from the KTAP lines on the console")
            stdout = lavalog.plain_ktap(log.console[sec.start + 1 : sec.end - 1])
        elif how:
            notes.append(f"{name}: {how}")
        stderr = _text(fr, f"err-{name}")[0] or ""
        err = "" if sec.rc in (0, 1) else f"program exited {sec.rc}: {stderr.strip()[:300]}"
        timed_out = sec.rc == 137  # timeout -s KILL (or the OOM killer): the program was killed
        got, leftover = outcomes.judge_program(
            sel,
            stdout,
            err,
            section,
            rules,
            kernel,
            fail_on_kernel_report,
            sel.program.timeout_s if timed_out else None,
        )
        dt = (sec.seconds or 0.0) / max(1, len(got))
        results += [dataclasses.replace(r, duration_s=dt) for r in got]
        if leftover:
            results += outcomes.not_run(
                suites.Selected(sel.program, tuple(leftover)),
                set(),
                "not run: a case before it hung, and a LAVA job cannot rerun the rest",
                rules,
                kernel,
            )
        outputs(name, stdout, stderr)
    return results, notes


# What LAVA's monitor pattern (lava.RESULT_PATTERN) makes of each KTAP outcome.
_MONITOR_READS = {Outcome.OK: "pass", Outcome.XFAIL: "pass", Outcome.NOT_OK: "fail", Outcome.SKIP: "skip"}


def monitor_differences(results: list[CaseResult], lava_said: dict[str, str]) -> list[str]:
    """The cases whose LAVA result (from the live KTAP lines on the console) is not what our
    outcome (from the framed KTAP) says it should be: a sign of a console that garbled a line,
    or of a monitor pattern that no longer reads our KTAP. Cases LAVA has no result for are not
    counted (a program that never printed its line is ERROR on our side already)."""
    out = []
    for r in results:
        want, got = _MONITOR_READS.get(r.outcome), lava_said.get(r.id)
        if want is not None and got is not None and got != want:
            out.append(f"{r.id}: LAVA {got}, KTAP {r.outcome.value}")
    return out


def collect(req: CollectRequest, progress: Progress = lambda s: None) -> RunOutcome:
    path = find_log(req.source)
    log = read_log(path)
    fr = lavalog.frames(log.console)
    plan = _plan(log, fr, req.plan)
    rules = expect.load(req.expectations)
    kernel = _kernel(plan, progress)
    selected = _selected(plan)
    facts_text, _ = _text(fr, "facts")
    facts = guest_facts(facts_text or "")
    if facts.get("kernel") and facts["kernel"] != kernel.release:
        raise InputError(f"the job was made for {kernel.release} but the guest ran {facts['kernel'][:100]}")
    run_dir, lock = rundir.claim(req.out, f"lava-{kernel.release}", req.out_reuse)
    try:
        return _write(run_dir, path, log, fr, plan, selected, kernel, rules, facts, req, progress)
    finally:
        lock.release()


def _write(
    rd: Path,
    path: Path,
    log: lavalog.JobLog,
    fr: dict[str, lavalog.Frame],
    plan: dict[str, Any],
    selected: list[suites.Selected],
    kernel: Kernel,
    rules: expect.RuleSet,
    facts: dict[str, str],
    req: CollectRequest,
    progress: Progress,
) -> RunOutcome:
    (rd / "output").mkdir(exist_ok=True)

    def outputs(name: str, stdout: str, stderr: str) -> None:
        reportio.write_text(rd / "output" / f"{name}.ktap", stdout)
        reportio.write_text(rd / "output" / f"{name}.stderr", stderr)

    results, notes = judge(log, selected, kernel, rules, req.fail_on_kernel_report, outputs)
    results = [bounded(r) for r in results]
    for n in notes:
        progress(n)
    reportio.write_text(rd / "console.log", log.console_text())
    dmesg, _ = _text(fr, "dmesg")
    if dmesg is not None:
        reportio.write_text(rd / "dmesg.log", dmesg)
    rlog = report.ResultsLog(rd / "results.jsonl")
    for r in results:
        rlog.append(r)
    lava_said = lavalog.lava_verdicts(log.results, MONITOR)
    differ = monitor_differences(results, lava_said)
    if differ:
        progress(
            f"LAVA's own monitor read {len(differ)} case(s) otherwise than the framed KTAP: "
            f"{', '.join(differ[:5])} (see fingerprint.json lava.monitor_differs)"
        )
    fingerprint: dict[str, object] = {
        "harness": str(plan.get("harness", "?"))[:40],
        "collected_by": __version__,
        "request": {"lava_log": str(path)},
        "kernel": {**plan["kernel"], "bzimage": "(in the LAVA job)"},
        "machine": {
            "accel": "lava",
            "memory_mib": plan.get("memory_mib"),
            "hugepages_1g_asked": plan.get("hugepages_1g", 0),
        },
        "guest": facts,
        "userspace": plan.get("userspace", {"kind": "?"}),
        "lava": {
            "job_result": log.job_result,
            "records": log.records,
            "errors": log.errors[:5],
            "monitor_results": len(lava_said),
            "monitor_differs": differ[:50],
            "notes": notes,
        },
    }
    props = {
        "harness.version": __version__,
        "accel": "lava",
        "lava.job_result": log.job_result or "?",
        **{f"kernel.{a}": str(b) for a, b in plan["kernel"].items()},
    }
    reportio.write_text(rd / "junit.xml", report.junit_xml(results, props))
    summary = report.summary_table(results)
    reportio.write_text(rd / "summary.txt", summary + "\n")
    reportio.write_text(rd / "fingerprint.json", json.dumps(fingerprint, indent=2) + "\n")
    publish.write_run_reports(rd, f"harness LAVA job on {kernel.release}")
    out = RunOutcome(rd, results, summary=summary, stage=Stage.DONE)
    out.exit_code = 1 if any(r.verdict.unexpected for r in results) else 0
    cross_check(out, kernel, facts)
    return out
