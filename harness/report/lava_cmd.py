"""`harness lava`: write a job (default), run it here with lava-run, submit it to a LAVA server
and wait, or collect a job's log into a judged run dir.

    harness lava --kernel SPEC --out BUNDLE [--filter GLOB] [--suite NAME] [--url-base URL]
    harness lava run BUNDLE --out RUN_DIR            lava-run here, then collect
    harness lava submit BUNDLE --url URL --token-file F --out RUN_DIR
    harness lava collect LOG_OR_DIR [--out RUN_DIR] [--plan BUNDLE/plan.json]

`run` and `submit` leave the job's log in RUN_DIR/lava/ (lava-run.log, or job.log from the
server) and collect it into RUN_DIR, exactly as `collect` does with a log given by hand.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import InputError, ToolMissing
from harness.report import lavabundle, lavacollect, lavalog, lavasubmit, terminal
from harness.report.lava import PROGRAM
from harness.run import rundir
from harness.run.runner import DEFAULT_EXPECTATIONS, RunOutcome

Progress = Callable[[str], None]
ACTIONS = ("collect", "run", "submit")


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lv = sub.add_parser(
        "lava",
        help="LAVA: write a job for a lab (default); run it with lava-run, submit it "
        "to a server, or collect its log into a judged run dir",
    )
    lv.add_argument(
        "action",
        nargs="?",
        choices=ACTIONS,
        metavar="{collect,run,submit}",
        help="collect LOG_OR_DIR | run BUNDLE | submit BUNDLE (none: write a job into --out)",
    )
    lv.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="collect: a job log or the dir holding it; run/submit: the dir `harness lava` wrote",
    )
    lv.add_argument(
        "--kernel",
        metavar="SPEC",
        action="append",
        help="as for run (default debian:6.12); repeat it, or debian:lines, for one job per kernel in --out/LABEL/",
    )
    lv.add_argument(
        "--suite", action="append", default=[], metavar="NAME", help="as for run (default cow and probes)"
    )
    lv.add_argument("--filter", action="append", default=[], metavar="GLOB", help="only these case ids")
    lv.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="writing a job: where job.yaml and the artefacts go; run/submit/collect: the run dir",
    )
    lv.add_argument(
        "--out-reuse", action="store_true", help="the run dir may hold an earlier run: replace it"
    )
    lv.add_argument(
        "--url-base",
        default="",
        metavar="URL",
        help="where the lab will fetch the job's files from (default: file:// paths into --out)",
    )
    lv.add_argument("--memory", type=int, metavar="MIB", help="guest memory (default as for run)")
    lv.add_argument("--cpus", type=int, default=2)
    lv.add_argument("--url", metavar="URL", help="submit: the LAVA server (https://lava.example.org)")
    lv.add_argument("--token-file", type=Path, metavar="FILE", help="submit: a file holding the API token")
    lv.add_argument(
        "--poll", type=float, default=30.0, metavar="S", help="submit: seconds between status checks"
    )
    lv.add_argument(
        "--timeout",
        type=float,
        default=6 * 3600.0,
        metavar="S",
        help="run/submit: give up waiting for the job after S seconds",
    )
    lv.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="collect: the job's plan.json, for a log in which the guest never printed it",
    )
    lv.add_argument("--expectations", type=Path, default=DEFAULT_EXPECTATIONS, metavar="FILE")
    lv.add_argument("--kernel-reports", choices=["fail", "report"], default="fail")


def cmd_lava(a: argparse.Namespace, progress: Progress) -> int:
    if a.action is None:
        return _write_job(a, progress)
    if a.path is None:
        raise InputError(f"harness lava {a.action}: give the {'log' if a.action == 'collect' else 'job dir'}")
    if a.action == "collect":
        return _collect(a, a.path, None, progress)
    bundle = a.path
    if not (bundle / "job.yaml").is_file():
        raise InputError(f"{bundle}: no job.yaml (write one with `harness lava --out {bundle}`)")
    if a.out is None:
        raise InputError(f"harness lava {a.action}: give --out RUN_DIR")
    if a.action == "submit" and (not a.url or a.token_file is None):
        raise InputError("harness lava submit: give --url and --token-file")
    found = rundir.earlier_run(a.out) if a.out.is_dir() else ""
    if found and not a.out_reuse:  # said now, not after the job
        raise InputError(
            f"--out {a.out}: already holds a run ({found}); give a new directory, or --out-reuse"
        )
    logs = a.out / "lava"
    logs.mkdir(parents=True, exist_ok=True)
    if a.action == "run":
        run_local(bundle, logs, a.timeout, progress)
    else:
        lavasubmit.submit_and_wait(
            bundle / "job.yaml", a.url, a.token_file, logs, a.poll, a.timeout, progress
        )
    plan = bundle / "plan.json"
    return _collect(a, logs, plan if plan.is_file() else None, progress)


def _write_job(a: argparse.Namespace, progress: Progress) -> int:
    if a.out is None:
        raise InputError("harness lava: give --out DIR (where the job and its artefacts go)")
    from harness import cli  # imports this module: only here

    expanded = cli._expand_kernel_sets(a.kernel)
    specs: list[str | None] = list(expanded) if expanded else [None]
    for spec in specs:
        # One job per kernel (a line's fan-out): each in a dir of its own, under --url-base/LABEL.
        label = bundle_label(spec) if len(specs) > 1 else ""
        out = a.out / label if label else a.out
        base = f"{a.url_base.rstrip('/')}/{label}" if a.url_base and label else a.url_base
        job = lavabundle.build(spec, out, tuple(a.filter), base, a.memory, a.cpus, progress, tuple(a.suite))
        print(job)
    if len(specs) == 1:
        print(
            f"run it here: harness lava run {a.out} --out RUN_DIR   "
            f"(lava-run --job-id 1 --output-dir OUT --device {a.out / 'device.yaml'} {job})"
        )
    return 0


def bundle_label(spec: str | None) -> str:
    """The directory of one kernel's job in a fan-out (pure): debian:6.12.118+deb12 -> debian-6.12.118+deb12."""
    return (spec or "default").replace(":", "-").replace("/", "_")[-60:]


def _collect(a: argparse.Namespace, source: Path, plan: Path | None, progress: Progress) -> int:
    req = lavacollect.CollectRequest(
        source=source,
        out=a.out,
        expectations=a.expectations,
        plan=a.plan or plan,
        fail_on_kernel_report=a.kernel_reports == "fail",
        out_reuse=a.out_reuse,
    )
    out = lavacollect.collect(req, progress)
    _print_outcome(out)
    return out.exit_code


def _print_outcome(out: RunOutcome) -> None:
    print(terminal.run_summary(out.results, "normal"))
    if out.crosscheck:
        print(out.crosscheck)
    print(f"\nrun dir: {out.run_dir}")


def run_local(bundle: Path, logs: Path, timeout_s: float, progress: Progress) -> Path:
    """The job under Debian's lava-run on this machine; its log (stdout and stderr, JSON lines)
    into logs/lava-run.log. Progress: each program as the guest starts it."""
    exe = shutil.which("lava-run")
    if exe is None:
        raise ToolMissing("lava-run not found: run ci/setup.sh (apt-get install lava-dispatcher)")
    log = logs / "lava-run.log"
    argv = [
        exe,
        "--job-id",
        "1",
        "--output-dir",
        str(logs / "output"),
        "--device",
        str(bundle / "device.yaml"),
        str(bundle / "job.yaml"),
    ]
    t0 = time.monotonic()
    progress(f"lava-run {bundle / 'job.yaml'} (log: {log})")
    with open(log, "wb") as f:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert p.stdout is not None
        try:
            for raw in p.stdout:
                f.write(raw)
                if PROGRAM.encode() in raw:
                    _say_program(raw, t0, progress)
                if time.monotonic() - t0 > timeout_s:
                    p.kill()
                    progress(f"lava-run still running after {timeout_s:.0f}s: killed")
                    break
        finally:
            rc = p.wait()
    progress(f"lava-run exited {rc} after {time.monotonic() - t0:.0f}s")
    return log


def _say_program(raw: bytes, t0: float, progress: Progress) -> None:
    rec = lavalog.parse_job_log(raw.decode("utf-8", "replace"))
    for c in rec.console:
        if c.text.strip().startswith(PROGRAM):
            progress(f"[{time.monotonic() - t0:7.1f}s] {c.text.strip()[2:][:120]}")
