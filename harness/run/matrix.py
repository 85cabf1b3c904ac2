"""Kernel matrices: `harness run --kernel A --kernel B [-j N] [--repeat N] [--shard I/N]`.

One runner.execute per (kernel, repeat), each in its own process with its own QEMU and its own
run directory (<top>/<kernel>/r<k>/, a complete ordinary run dir), at most N at a time. The
top directory then gets the combined results.jsonl (one line per kernel and case, with every
run's verdict), junit.xml (one suite per kernel and program), summary.txt, matrix.json,
report.html and kcidb.json.

Processes, not threads: a run owns signal-driven state (Ctrl-C turns into a complete report,
QEMU is killed in a finally path) and pexpect children. Each job runs in its own process group
so a terminal's Ctrl-C reaches only this parent, which forwards exactly one SIGINT to each
running job and waits for their reports; a second SIGINT in a job could cut its report short.

The default -j is what the host allows: one guest per core (a TCG guest keeps about one host
core busy; measured in bench/parallel.py) and no more guests than fit in the available memory
with 512 MiB of QEMU overhead each (a guest's size is what its cases take: harness/vm/hugepages.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from harness import __version__, reportio, safetext
from harness.errors import HarnessError, InputError
from harness.judge import expect, outcomes
from harness.kernels.kernel import DEFAULT_KERNEL
from harness.kernels.kernel import resolve as resolve_kernel
from harness.model import CaseResult, Expect, Expectation, Outcome, Progress, Verdict
from harness.report import junit as report
from harness.report import publish, resultset, terminal
from harness.run import rundir
from harness.run.fingerprint import Fingerprint
from harness.run.runner import RunRequest, check_junit_path, execute
from harness.suites import registry as suites
from harness.vm import hugepages

QEMU_OVERHEAD_MIB = 512  # per guest on top of -m: QEMU itself, TCG's translation cache
INTERRUPT_GRACE_S = 120.0  # for a job to write its report after Ctrl-C before it is killed


@dataclass(frozen=True)
class MatrixRequest:
    base: RunRequest  # kernel ignored; out = the top directory; junit = the combined JUnit
    kernels: tuple[str, ...] = ()  # specs; () = the default kernel
    jobs: int | None = None  # None: default_jobs()
    repeat: int = 1
    shard: tuple[int, int] | None = None  # (I, N), 1-based


@dataclass(frozen=True)
class Job:
    label: str  # the kernel spec, as asked
    repeat: int  # 1-based
    request: RunRequest


@dataclass
class JobResult:
    exit_code: int = -1  # -1: never started
    error: str = ""
    elapsed_s: float = 0.0


@dataclass
class MatrixOutcome:
    run_dir: Path
    exit_code: int = 0
    summary: str = ""  # summary.txt, and the error line below if there is one
    results: resultset.ResultSet | None = None
    jobs: dict[tuple[str, int], JobResult] = field(default_factory=dict)
    error: str = ""  # the combined --junit could not be written

    def for_terminal(self, repeat: int, detail: str) -> str:
        """The end of the run as the terminal shows it (terminal_text), with the error line."""
        text = (
            self.summary if self.results is None else terminal_text(self.results, self.jobs, repeat, detail)
        )
        return text + (f"harness: error: {self.error}\n" if self.error else "")


# ---- pure helpers ---------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise InputError(f"--shard {text}: want I/N with 1 <= I <= N (e.g. 2/4)")
    return int(m.group(1)), int(m.group(2))


def shard_of(case_id: str, n: int) -> int:
    """The shard (1..n) a case belongs to: a hash of its id, the same on every host and run
    (Python's hash() is salted per process, so not that)."""
    return int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "big") % n + 1


def shard_ids(ids: list[str], shard: tuple[int, int]) -> list[str]:
    i, n = shard
    return [c for c in ids if shard_of(c, n) == i]


def default_jobs(cores: int, available_mib: int, guest_mib: int) -> int:
    by_memory = available_mib // (guest_mib + QEMU_OVERHEAD_MIB)
    return max(1, min(cores, by_memory))


def host_default_jobs(guest_mib: int) -> int:
    available = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) // 1024
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return default_jobs(cores, available or guest_mib + QEMU_OVERHEAD_MIB, guest_mib)


def dir_tag(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "-", label.replace(":", "-")).strip("-")[-40:] or "kernel"


def plan(req: MatrixRequest, top: Path, filters: tuple[str, ...]) -> list[Job]:
    """Jobs in start order: repeat-major, so -j 2 runs two different kernels side by side."""
    labels = list(req.kernels) or [DEFAULT_KERNEL]
    tags: dict[str, str] = {}
    for label in labels:
        tag = dir_tag(label)
        while tag in tags.values():
            tag += "_"
        tags[label] = tag
    return [
        Job(
            label,
            r,
            dataclasses.replace(
                req.base, kernel=label, filters=filters, junit=None, out=top / tags[label] / f"r{r}"
            ),
        )
        for r in range(1, req.repeat + 1)
        for label in labels
    ]


def case_result(c: resultset.CaseSummary) -> CaseResult:
    """A summary as a CaseResult, for the JUnit writer."""
    outcome = Outcome.ERROR if c.verdict is Verdict.ERROR else Outcome.OK
    return CaseResult(
        c.id,
        c.program,
        outcome,
        c.verdict,
        c.reason,
        c.output,
        Expectation(Expect(c.expect), c.expect_reason, c.expect_commit),
        c.duration_s,
        c.kernel_events,
    )


def kernel_table(rs: resultset.ResultSet, jobs: dict[tuple[str, int], JobResult], repeat: int) -> list[str]:
    """One line per kernel, oldest upstream first (like report.html): its release and counts."""
    order = [
        Verdict.PASS,
        Verdict.FAIL,
        Verdict.SKIP,
        Verdict.XFAIL,
        Verdict.XPASS,
        Verdict.ERROR,
        Verdict.FLAKY,
    ]
    width = max((len(k) for k in rs.kernels), default=6)
    lines = [f"{'kernel':<{width}}  {'release':<34} " + " ".join(f"{v.value:>5}" for v in order) + "  runs"]
    for k in rs.kernels_by_version():
        fp = rs.fingerprints.get(k, {})
        kinfo = fp.get("kernel") if isinstance(fp.get("kernel"), dict) else {}
        release = safetext.terminal_line(
            f"{kinfo.get('release', '?')} ({kinfo.get('version', '?')})" if kinfo else "?"
        )
        counts = Counter(c.verdict for c in rs.of_kernel(k))
        runs = [jobs[(k, r)] for r in range(1, repeat + 1) if (k, r) in jobs]
        codes = ",".join(str(j.exit_code) for j in runs)
        lines.append(
            f"{safetext.terminal_line(k):<{width}}  {release:<34} "
            + " ".join(f"{counts[v]:>5}" for v in order)
            + f"  exit {codes}"
        )
    return lines


def summary_text(rs: resultset.ResultSet, jobs: dict[tuple[str, int], JobResult], repeat: int) -> str:
    """summary.txt (and `harness run -v`): the kernel table, every non-PASS case one per line,
    the jobs' errors, the counts."""
    lines = kernel_table(rs, jobs, repeat)
    width = max((len(k) for k in rs.kernels), default=6)
    bad = [c for c in rs.cases if c.verdict is not Verdict.PASS]
    if bad:
        lines.append("")
        idw = min(max(len(c.id) for c in bad), 64)
        for c in bad:
            rate = f" {c.rate_text()}" if c.rate_text() else ""
            lines.append(
                f"{c.verdict.value + rate:<9} {safetext.terminal_line(c.kernel):<{width}}  "
                f"{safetext.terminal_line(c.id):<{idw}}  {safetext.terminal_line(c.reason)[:150]}".rstrip()
            )
    errors = [safetext.terminal_line(f"{k} run {r}: {j.error}") for (k, r), j in jobs.items() if j.error]
    if errors:
        lines += ["", *errors]
    lines.append("")
    lines += report.count_lines(Counter(c.verdict for c in rs.cases))
    return "\n".join(lines) + "\n"


def terminal_text(
    rs: resultset.ResultSet, jobs: dict[tuple[str, int], JobResult], repeat: int, detail: str = "normal"
) -> str:
    """What `harness run` shows at the end of a matrix, at a terminal.DETAILS detail: the kernel
    table, the unexpected cases with their output, the jobs' errors, the SKIPs and XFAILs
    grouped by reason with each kernel's count, the counts. verbose: summary.txt; quiet: the
    unexpected cases, the errors and the final line."""
    if detail == "verbose":
        return summary_text(rs, jobs, repeat)
    cases = [c for k in rs.kernels_by_version() for c in rs.of_kernel(k)]
    unexpected = [
        line
        for c in cases
        if c.verdict.unexpected
        for line in terminal.unexpected_lines(case_result(c), c.kernel, c.rate_text())
    ]
    errors = [safetext.terminal_line(f"{k} run {r}: {j.error}") for (k, r), j in jobs.items() if j.error]
    counts = report.count_lines(Counter(c.verdict for c in rs.cases))
    if detail == "quiet":
        blocks = [unexpected, errors, counts[-1:]]
    else:
        groups = terminal.group_expected([(c.kernel, case_result(c)) for c in cases])
        blocks = [
            kernel_table(rs, jobs, repeat),
            unexpected,
            errors,
            terminal.group_lines(groups, by_kernel=len(rs.kernels) > 1),
            counts,
        ]
    return "\n\n".join("\n".join(b) for b in blocks if b) + "\n"


# ---- the jobs --------------------------------------------------------------------------------


def _job_main(job: Job, conn: multiprocessing.connection.Connection) -> None:
    """A job process: one ordinary run, reported back as (exit code, error)."""
    os.setpgrp()  # see the module doc: Ctrl-C comes from the parent, once
    tag = f"[{job.label} #{job.repeat}]"

    def say(msg: str) -> None:
        print(safetext.terminal_line(f"{tag} {msg}"), file=sys.stderr, flush=True)

    t0 = time.monotonic()
    try:
        out = execute(job.request, say)
        code, error = out.exit_code, out.error
    except HarnessError as e:
        code, error = e.exit_code, str(e)
    except KeyboardInterrupt:
        code, error = 130, "interrupted"
    except Exception as e:  # a harness bug: keep the traceback, report the job as broken
        traceback.print_exc()
        code, error = 2, f"internal error: {e!r}"
    try:
        if job.request.out is not None and (job.request.out / "results.jsonl").exists():
            publish.write_run_reports(job.request.out, f"{job.label} run {job.repeat}")
    except (HarnessError, OSError) as e:
        say(f"could not write report.html/kcidb.json: {e}")
    conn.send((code, error, time.monotonic() - t0))
    conn.close()


JobTarget = Callable[[Job, multiprocessing.connection.Connection], None]


class Scheduler:
    """Runs jobs in processes, `width` at a time. `target` is the job's main (a module-level
    function: the processes are spawned, not forked)."""

    def __init__(
        self, jobs: list[Job], width: int, progress: Progress, target: JobTarget = _job_main
    ) -> None:
        self.target = target
        self.pending = deque(jobs)
        self.width = width
        self.progress = progress
        self.running: dict[int, tuple[Job, Any, multiprocessing.connection.Connection]] = {}
        self.results: dict[tuple[str, int], JobResult] = {}
        self.ctx = multiprocessing.get_context("spawn")

    def start(self, job: Job) -> None:
        parent, child = self.ctx.Pipe(duplex=False)
        p = self.ctx.Process(target=self.target, args=(job, child), name=f"harness-{job.label}-{job.repeat}")
        p.start()
        child.close()
        self.running[p.sentinel] = (job, p, parent)
        self.progress(f"[matrix] started {job.label} run {job.repeat} (pid {p.pid}) -> {job.request.out}")

    def reap(self, sentinel: int) -> None:
        job, p, conn = self.running.pop(sentinel)
        p.join()
        res = JobResult(p.exitcode if p.exitcode is not None else -1, f"job process died (exit {p.exitcode})")
        if conn.poll():
            try:
                code, error, elapsed = conn.recv()
                res = JobResult(code, error, round(elapsed, 2))
            except (EOFError, OSError):
                pass
        conn.close()
        self.results[(job.label, job.repeat)] = res
        self.progress(
            f"[matrix] {job.label} run {job.repeat}: exit {res.exit_code} in {res.elapsed_s:.1f}s"
            + (f" ({res.error})" if res.error else "")
        )

    def run(self) -> None:
        while self.pending or self.running:
            while self.pending and len(self.running) < self.width:
                self.start(self.pending.popleft())
            for s in multiprocessing.connection.wait(list(self.running), timeout=5.0):
                self.reap(s)  # type: ignore[arg-type]  # sentinels are ints

    def interrupt(self) -> None:
        """Forward one SIGINT to every running job, wait for their reports, kill stragglers."""
        self.pending.clear()
        for _, p, _ in self.running.values():
            if p.pid:
                os.kill(p.pid, signal.SIGINT)
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        while self.running and time.monotonic() < deadline:
            for s in multiprocessing.connection.wait(list(self.running), timeout=1.0):
                self.reap(s)  # type: ignore[arg-type]  # sentinels are ints
        for s, (_, p, _) in list(self.running.items()):
            p.kill()
            self.reap(s)


def _fill_missing(
    job: Job, selected: list[suites.Selected], why: str, rules: expect.RuleSet, kernels: dict[str, Any]
) -> None:
    """Every case a job did not report (it never started, or its process died before or in the
    middle of the run: OOM, SIGKILL) becomes an ERROR saying why, in its own results.jsonl."""
    out = job.request.out
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    log = report.ResultsLog(out / "results.jsonl")
    records, _ = report.read_results_lenient(log.path)
    done = {r["id"] for r in records}
    missing = [r for sel in selected for r in outcomes.not_run(sel, done, why, rules, kernels.get(job.label))]
    if missing:
        log.drop_torn_line()
        for r in missing:
            log.append(r)


# ---- the matrix run ---------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # a CI cancel: same path as Ctrl-C


def run_matrix(req: MatrixRequest, progress: Progress = lambda s: None) -> MatrixOutcome:
    if req.repeat < 1:
        raise InputError(f"--repeat {req.repeat}: must be 1 or more")
    dupes = [k for k, n in Counter(req.kernels).items() if n > 1]
    if dupes:
        raise InputError(f"--kernel {dupes[0]}: given more than once (use --repeat to run it again)")
    check_junit_path(req.base.junit)
    rules = expect.load(req.base.expectations)
    selected = suites.select(
        suites.programs(list(req.base.suites)), list(req.base.filters)
    )  # builds the C tests once
    ids = [i for s in selected for i in s.ids]
    filters = req.base.filters
    if req.shard is not None:
        ids = shard_ids(ids, req.shard)
        filters = tuple(suites.exact_glob(i) for i in ids)
        selected = [suites.Selected(s.program, tuple(i for i in s.ids if i in set(ids))) for s in selected]
        selected = [s for s in selected if s.ids]
        progress(f"[matrix] shard {req.shard[0]}/{req.shard[1]}: {len(ids)} cases")
    # The guests' real size (1 GiB hugetlb pages make it 5 GiB): the default -j counts it, and a
    # --memory too small for them is refused here, once, not by every job.
    guest = hugepages.plan(ids, req.base.memory_mib)
    labels = list(req.kernels) or [DEFAULT_KERNEL]
    # Locked for the whole matrix; an earlier run's results (which its jobs would read back as
    # extra repeats) refused unless --out-reuse.
    top, lock = rundir.claim(
        req.base.out,
        "matrix-" + "+".join(dir_tag(k) for k in labels),
        req.base.out_reuse,
        tuple(dir_tag(k) for k in labels),
    )
    try:
        return _run_matrix(req, top, labels, rules, selected, ids, filters, guest, progress)
    finally:
        lock.release()


def _run_matrix(
    req: MatrixRequest,
    top: Path,
    labels: list[str],
    rules: expect.RuleSet,
    selected: list[suites.Selected],
    ids: list[str],
    filters: tuple[str, ...],
    guest: hugepages.GuestMemory,
    progress: Progress,
) -> MatrixOutcome:
    kernels: dict[str, Any] = {}
    for label in labels:  # fetched here once, not by two jobs racing on one cache entry
        try:
            kernels[label] = resolve_kernel(label, progress)
        except HarnessError as e:
            progress(f"[matrix] {label}: {e} (its runs will say so)")
    jobs = plan(req, top, filters) if ids else []
    width = min(req.jobs or host_default_jobs(guest.memory_mib), max(1, len(jobs)))
    progress(
        f"[matrix] {len(labels)} kernel(s) x {req.repeat} run(s), {len(ids)} cases each, "
        f"{width} at a time ({guest.memory_mib} MiB guests) -> {top}"
    )
    t0 = time.monotonic()
    sched = Scheduler(jobs, width, progress)
    interrupted = False
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sched.run()
    except KeyboardInterrupt:
        interrupted = True
        progress("[matrix] interrupted: stopping the running guests, writing what came back")
        sched.interrupt()
    finally:
        signal.signal(signal.SIGTERM, old_term)
    for job in jobs:
        res = sched.results.setdefault((job.label, job.repeat), JobResult(-1, "not started: interrupted"))
        why = "not run: interrupted (Ctrl-C)" if res.exit_code in (-1, 130) else f"not run: {res.error}"
        try:
            _fill_missing(job, selected, why, rules, kernels)
        except HarnessError as e:  # a full disk: the job's error says so, the others go on
            res.error = f"{res.error}; {e}" if res.error else str(e)
    return finish(req, top, labels, jobs, sched.results, interrupted, time.monotonic() - t0, width)


def _job_problem(res: JobResult, note: str) -> None:
    """A job's files were damaged: said in its error, and the matrix exits 2 for it."""
    res.error = f"{res.error}; {note}" if res.error else note
    if res.exit_code in (0, 1):
        res.exit_code = 2


def finish(
    req: MatrixRequest,
    top: Path,
    labels: list[str],
    jobs: list[Job],
    results: dict[tuple[str, int], JobResult],
    interrupted: bool,
    elapsed_s: float,
    width: int = 1,
) -> MatrixOutcome:
    records: list[dict[str, Any]] = []
    fingerprints: dict[str, dict[str, Any]] = {}
    good_fps: dict[str, str] = {}
    entries = []
    for label in labels:
        mine = [j for j in jobs if j.label == label]
        runs = []
        for j in mine:
            out = j.request.out
            assert out is not None
            # One job's torn or corrupt files cost it those lines, not the others their report.
            mine_records, bad = report.read_results_lenient(out / "results.jsonl")
            records += [{**r, "kernel": label} for r in mine_records]
            res = results.setdefault((label, j.repeat), JobResult())
            if bad:
                _job_problem(res, f"{bad} unreadable line(s) in {out / 'results.jsonl'} skipped")
            fp = out / "fingerprint.json"
            if label not in fingerprints and fp.is_file():
                try:
                    fprint = json.loads(fp.read_bytes().decode("utf-8", "replace"))
                    if not isinstance(fprint, dict):
                        raise ValueError("not an object")
                    fingerprints[label] = fprint
                    good_fps[label] = str(fp.relative_to(top))
                except ValueError:
                    _job_problem(res, f"{fp} is not JSON (torn?)")
            runs.append(
                {
                    "dir": str(out.relative_to(top)),
                    "exit_code": res.exit_code,
                    "error": res.error,
                    "elapsed_s": res.elapsed_s,
                }
            )
        fp_rel = good_fps.get(label, "")  # a torn one is not named: `compare` would refuse the dir
        kinfo = fingerprints.get(label, {}).get("kernel")
        kinfo = kinfo if isinstance(kinfo, dict) else {}
        # which package this label was tonight: `compare` pairs kernels of one line by it
        entries.append(
            {
                "label": label,
                "fingerprint": fp_rel,
                "release": kinfo.get("release"),
                "version": kinfo.get("version"),
                "runs": runs,
            }
        )
    cases = resultset.summarize(records, where=str(top))
    rs = resultset.ResultSet(str(top), tuple(cases), tuple(labels), fingerprints)
    with open(top / "results.jsonl", "w", encoding="ascii") as f:
        for c in cases:
            f.write(json.dumps(resultset.summary_record(c)) + "\n")
    groups = []
    for label in labels:
        props = Fingerprint.from_json(fingerprints.get(label, {})).junit_properties(spec=label)
        groups.append((label, [case_result(c) for c in rs.of_kernel(label)], props))
    xml = report.junit_xml_groups(groups)
    reportio.write_text(top / "junit.xml", xml)
    error = ""
    if req.base.junit is not None:
        try:
            reportio.write_text(req.base.junit, xml)
        except OSError as e:
            error = f"--junit {req.base.junit}: {e.strerror} (junit.xml is in the run dir)"
    matrix = {
        "harness": __version__,
        "kernels": entries,
        "repeat": req.repeat,
        "jobs": width,
        "shard": f"{req.shard[0]}/{req.shard[1]}" if req.shard else None,
        "filters": list(req.base.filters),
        "cases": len({c.id for c in cases}),
        "interrupted": interrupted,
        "total_s": round(elapsed_s, 2),
    }
    reportio.write_text(top / resultset.MATRIX_FILE, json.dumps(matrix, indent=2) + "\n")
    summary = summary_text(rs, results, req.repeat)
    reportio.write_text(top / "summary.txt", summary)
    errors = {
        label: "; ".join(
            f"run {r}: {res.error}" for (k, r), res in sorted(results.items()) if k == label and res.error
        )
        for label in labels
    }
    publish.write_run_reports(top, f"harness matrix {top.name}", errors, rs)
    codes = [r.exit_code for r in results.values()]
    if interrupted or 130 in codes:
        code = 130
    elif any(c not in (0, 1) for c in codes):
        code = 2
    elif any(c.verdict.unexpected for c in cases):
        code = 1
    else:
        code = 0
    outcome = MatrixOutcome(top, code, summary, rs, dict(results), error)
    if error:
        outcome.summary += f"harness: error: {error}\n"
    return outcome
