"""The `harness run` options for nightly CI (several --kernel, -j, --repeat, --shard,
--baseline) and the `compare` and `report` commands. Kept out of cli.py so that the plain
single-kernel run stays as it was: `dispatch` hands it back to cli.py as a Plain run."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from harness.errors import HarnessError, InputError
from harness.model import Accel, Progress
from harness.report import compare, publish, resultset, terminal
from harness.run import matrix
from harness.run.runner import DEFAULT_EXPECTATIONS, RunRequest, list_cases
from harness.suites import registry as suites

MIN_MEMORY_MIB = 128  # below this no Debian kernel gets to our init


def host_memory_mib() -> int | None:
    """MemTotal of this host in MiB; None when /proc/meminfo cannot say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_numbers(a: argparse.Namespace, host_mib: int | None = None) -> None:
    """Refuse a number no run can use, before anything starts (one InputError line, exit 2):
    the options of `harness run` and of the commands that run it (bisect, series, build) that
    this namespace has. `host_mib` is the host's memory (default: MemTotal)."""
    v = vars(a)
    if v.get("cpus") is not None and a.cpus < 1:
        raise InputError(f"--cpus {a.cpus}: must be 1 or more")
    if v.get("memory") is not None:
        if a.memory < MIN_MEMORY_MIB:
            raise InputError(f"--memory {a.memory}: a guest needs at least {MIN_MEMORY_MIB} MiB")
        total = host_mib if host_mib is not None else host_memory_mib()
        if total is not None and a.memory > total:
            raise InputError(
                f"--memory {a.memory}: more than this host has ({total} MiB, MemTotal in /proc/meminfo)"
            )
    if v.get("timeout") is not None and not (math.isfinite(a.timeout) and a.timeout > 0):
        raise InputError(f"--timeout {a.timeout:g}: must be more than 0 seconds")
    if v.get("jobs") is not None and a.jobs < 1:
        raise InputError(f"-j {a.jobs}: must be 1 or more")
    if v.get("repeat") is not None and a.repeat < 1:
        raise InputError(f"--repeat {a.repeat}: must be 1 or more")
    if v.get("max_reboots") is not None and a.max_reboots < 0:
        raise InputError(f"--max-reboots {a.max_reboots}: must be 0 or more")
    if v.get("shard") is not None:
        matrix.parse_shard(a.shard)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("matrix and nightly CI")
    g.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="guests at once in a matrix (default: one per core, as memory allows)",
    )
    g.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run every case N times; cases whose verdicts differ are FLAKY",
    )
    g.add_argument(
        "--shard", metavar="I/N", help="only the I-th of N stable slices of the cases (hash of the id)"
    )
    g.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="compare with this earlier run (dir or results.jsonl) at the end; a regression exits 1",
    )


def add_each_run_arguments(
    p: argparse.ArgumentParser, suite_help: str = "", title: str = "each run (as for harness run)"
) -> argparse._ArgumentGroup:
    """The per-run options, one definition for every command that runs the suites (run, bisect,
    series); request_of turns them into a RunRequest."""
    r = p.add_argument_group(title)
    r.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME",
        help=suite_help or "cow, probes (repeatable; default both)",
    )
    r.add_argument("--expectations", type=Path, default=DEFAULT_EXPECTATIONS, metavar="FILE")
    r.add_argument("--accel", type=Accel, choices=list(Accel), default=Accel.AUTO)
    r.add_argument(
        "--memory",
        type=int,
        metavar="MIB",
        help="guest memory (default 1024; 5120 when *.hugetlb-1g or *.hugetlb-memfd-1g-shared cases are selected, "
        "6144 with *.hugetlb-memfd-1g-private, for their 1 GiB pages)",
    )
    r.add_argument("--cpus", type=int, default=2)
    r.add_argument("--append", default="", metavar="ARGS", help="extra kernel command line")
    r.add_argument(
        "--timeout", type=float, metavar="S", help="limit per test program (default: the program's own)"
    )
    r.add_argument(
        "--kernel-reports",
        choices=["fail", "report"],
        default="fail",
        help="a case during which the kernel WARNs/BUGs/... is FAIL (default) or only reported",
    )
    r.add_argument(
        "--max-reboots", type=int, default=3, metavar="N", help="fresh guests after panics/hangs (default 3)"
    )
    return r


def request_of(a: argparse.Namespace, default_suites: tuple[str, ...] = ()) -> RunRequest:
    """The RunRequest of the per-run options (add_each_run_arguments) and a --filter where the
    command has one; `harness run` adds its own options to it."""
    return RunRequest(
        suites=tuple(a.suite) or default_suites,
        filters=tuple(getattr(a, "filter", ()) or ()),
        expectations=a.expectations,
        accel=Accel(a.accel),
        memory_mib=a.memory,
        cpus=a.cpus,
        append=a.append,
        timeout_s=a.timeout,
        fail_on_kernel_report=a.kernel_reports == "fail",
        max_reboots=a.max_reboots,
    )


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    c = sub.add_parser("compare", help="what changed between two runs (regressions exit 1)")
    c.add_argument("old", type=Path, metavar="OLD", help="run dir, matrix run dir or results.jsonl")
    c.add_argument("new", type=Path, metavar="NEW", help="run dir, matrix run dir or results.jsonl")
    c.add_argument("--out", type=Path, metavar="DIR", help="also write compare.txt/.json/.html there")
    r = sub.add_parser("report", help="(re)write report.html and kcidb.json of a run dir")
    r.add_argument("run_dir", type=Path, metavar="DIR")


def cmd_compare(a: argparse.Namespace) -> int:
    c = compare.compare(resultset.load(a.old), resultset.load(a.new))
    print(compare.render_text(c), end="")
    if a.out is not None:
        try:
            a.out.mkdir(parents=True, exist_ok=True)
            publish.write_comparison(c, a.out)
        except OSError as e:
            raise InputError(f"--out {a.out}: {e.strerror}") from None
    return c.exit_code


def cmd_report(a: argparse.Namespace) -> int:
    rs = publish.write_run_reports(a.run_dir)
    print(
        f"{a.run_dir / 'report.html'}\n{a.run_dir / 'kcidb.json'}  ({len(rs.cases)} cases, {len(rs.kernels)} kernel(s))"
    )
    return 0


def write_reports(run_dir: Path, progress: Progress) -> None:
    """report.html and kcidb.json after a plain run; a failure here never changes the verdict."""
    try:
        publish.write_run_reports(run_dir)
    except (HarnessError, OSError) as e:
        progress(f"could not write report.html/kcidb.json: {e}")


def _shard_filters(req: RunRequest, shard: tuple[int, int]) -> tuple[str, ...]:
    selected = suites.select(suites.programs(list(req.suites)), list(req.filters))
    ids = matrix.shard_ids([i for s in selected for i in s.ids], shard)
    return tuple(suites.exact_glob(i) for i in ids)


@dataclasses.dataclass(frozen=True)
class Plain:
    """A one-kernel run for cli.py to execute as always: its request (with --shard applied)
    and what to do at its end (--baseline)."""

    request: RunRequest
    baseline: resultset.ResultSet | None = None

    def finish(self, run_dir: Path, exit_code: int) -> int:
        if self.baseline is None or exit_code not in (0, 1):
            return exit_code
        c = publish.compare_with_baseline(self.baseline, run_dir)
        print(compare.render_text(c), end="")
        return 1 if c.regressions else exit_code


def print_list(req: RunRequest, progress: Progress) -> None:
    """--list: each selected id with its expectation on the request's kernel."""
    for case_id, exp in list_cases(req, progress):
        print(f"{case_id:60s} {exp.expect}" + (f"  # {exp.reason}" if exp.reason else ""))


def dispatch(a: argparse.Namespace, req: RunRequest, progress: Progress) -> int | Plain:
    """Run a matrix (several kernels or --repeat) and return its exit code; for one kernel
    return the Plain run for cli.py (or 0 when --shard leaves it nothing to run)."""
    kernels = tuple(a.kernel or ())
    shard = matrix.parse_shard(a.shard) if a.shard else None
    baseline = publish.load_baseline(a.baseline) if a.baseline is not None else None
    if len(kernels) <= 1 and a.repeat == 1:
        if shard is not None:
            req = dataclasses.replace(req, filters=_shard_filters(req, shard))
            if not req.filters:
                print(f"shard {shard[0]}/{shard[1]}: no cases fall in this shard; nothing to run")
                return 0
        return Plain(req, baseline)
    if a.list:
        for k in kernels or (None,):
            r = dataclasses.replace(req, kernel=k)
            if shard is not None:
                r = dataclasses.replace(r, filters=_shard_filters(r, shard))
                if not r.filters:
                    continue
            print(f"# {k}")
            print_list(r, progress)
        return 0
    out = matrix.run_matrix(matrix.MatrixRequest(req, kernels, a.jobs, a.repeat, shard), progress)
    detail = terminal.detail_of(a.verbose, a.quiet)
    print(out.for_terminal(a.repeat, detail), end="")
    if detail != "quiet" or out.exit_code != 0:
        print(f"run dir: {out.run_dir}")
    return Plain(req, baseline).finish(out.run_dir, out.exit_code)
