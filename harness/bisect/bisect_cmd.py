"""`harness bisect` and `harness run --bisect-exit`: the command line, the real step oracle
(prepare a kernel → runner.execute with only the named tests, N times → what they said) and
the expansion of --kernels ranges.

The decisions are harness/bisect/core.py (pure), the loop and its state harness/bisect/bisect_loop.py, git
harness/bisect/bisect_git.py, builds harness/kernels/kbuild.py. A bisect dir holds:

    bisect.json       the state and the record: request, every step's runs, the answer
    steps.txt         the step log (candidate, build/fetch time, run time, decision, verdicts)
    summary.txt       the answer, its confidence and the totals
    junit.xml         one testcase per step and one for the result
    git-bisect.log    (git) `git bisect log` of our worktree, for `git bisect replay`
    steps/NN/rK/      an ordinary run dir per step and run
    steps/revert/rK/  (git) the revert check: the culprit reverted on the new end
    worktree/ build/  (git) our worktree of the user's repository and its kept build dir
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bisect import bisect_report
from harness.bisect.bisect_git import GitSpace
from harness.bisect.bisect_loop import Bisect, ListSpace, Space, default_dir
from harness.bisect.core import (
    CaseObs,
    Decision,
    Judge,
    Policy,
    RunObs,
    Status,
    StepResult,
    decide,
    settled,
    step_summary,
)
from harness.errors import BuildError, HarnessError, InputError
from harness.kernels import debian, kbuild
from harness.kernels import kernel as kernels
from harness.model import Progress
from harness.run import runopts
from harness.run.runner import RunOutcome, RunRequest, execute, guest_results
from harness.suites import registry as suites
from harness.suites.registry import exact_glob

# ---- one step: prepare the kernel, run the named tests N times ----------------------------


def observe(out: RunOutcome, tests: Sequence[str]) -> RunObs:
    """What one run says about the named tests (runner.guest_results: a guest that never ran
    them is a boot failure, a run stopped before booting a HarnessError that stops the bisect)."""
    real = guest_results(out, tests)
    if real is None:
        return RunObs(boot_failed=True, detail=out.error, run_dir=str(out.run_dir))
    cases = tuple(CaseObs(r.id, r.outcome.value, r.verdict.value, r.reason) for r in real)
    return RunObs(cases, run_dir=str(out.run_dir))


@dataclass(frozen=True)
class RunOracle:
    """The real oracle: `prepare` turns a candidate into a kernel spec (fetch or build; a
    BuildError or an InputError there is a build failure), then the named tests run."""

    base: RunRequest
    policy: Policy
    prepare: Callable[[str], str]
    progress: Progress
    fingerprint: Callable[[str], str] | None = None  # kernel spec -> "vmlinux:<sha256>" of the build

    def __call__(self, cand: str, step_dir: Path) -> StepResult:
        t0 = time.monotonic()
        try:
            spec = self.prepare(cand)
        except (BuildError, InputError) as e:
            return StepResult(Status.BUILD_FAILED, (), str(e), time.monotonic() - t0)
        prep_s = time.monotonic() - t0
        build_hash = self.fingerprint(spec) if self.fingerprint else ""
        runs: list[RunObs] = []
        filters = tuple(exact_glob(t) for t in self.policy.tests)
        for k in range(1, self.policy.runs + 1):
            req = dataclasses.replace(
                self.base, kernel=spec, filters=filters, junit=None, out=step_dir / f"r{k}", out_reuse=True
            )  # a resumed step redoes it
            t1 = time.monotonic()
            out = execute(req, lambda s: self.progress(f"      {s}"))
            runs.append(dataclasses.replace(observe(out, self.policy.tests), seconds=time.monotonic() - t1))
            if settled(runs, self.policy):
                break
        status = Status.RAN if any(not r.boot_failed for r in runs) else Status.BOOT_FAILED
        detail = "" if status is Status.RAN else runs[-1].detail
        return StepResult(status, tuple(runs), detail, prep_s, sum(r.seconds for r in runs), build_hash)


# ---- kernels: lists and ranges of Debian packages ------------------------------------------


def packages_between(
    kernels: Sequence[debian.AvailableKernel], first: debian.AvailableKernel, last: debian.AvailableKernel
) -> list[debian.AvailableKernel]:
    """The kernel packages from `first` to `last` (both included), same flavour, in upstream
    version order across every suite (pure). One package per Debian source version (the
    host release's build when Debian built the same source twice, +deb12 and +deb13); packages whose modules the
    archive does not have are left out (they cannot run what needs a disk or 9p, so their
    verdicts would not be about the kernel)."""
    if first.key() > last.key():
        raise InputError(
            f"--kernels {first.spec}..{last.spec}: the range goes backwards "
            "(write the older kernel first; --reverse is for finding a fix)"
        )
    if first.flavour != last.flavour:
        raise InputError(f"--kernels {first.spec}..{last.spec}: the two ends are different flavours")

    def same_source(k: debian.AvailableKernel) -> str:  # 6.12.118-1~deb12u1 and 6.12.118-1: one build
        return k.deb_version.split("~")[0].split("+")[0]

    one: dict[str, debian.AvailableKernel] = {}
    for k in kernels:
        if k.flavour != first.flavour or not k.modules or not first.key() <= k.key() <= last.key():
            continue
        if same_source(k) not in one or k.key() > one[same_source(k)].key():
            one[same_source(k)] = k
    for end in (first, last):
        one[same_source(end)] = end
    return sorted(one.values(), key=lambda k: k.key())


def expand_kernels(text: str, kernels: Sequence[debian.AvailableKernel] | None = None) -> list[str]:
    """`debian:A..debian:B` (every package the harness's apt state knows in between, across
    suites), a comma list, or both mixed; lines and versions (`debian:6.12`, `debian:6.12.100`)
    become the concrete package, paths become absolute."""
    known: list[debian.AvailableKernel] = []

    def all_kernels() -> list[debian.AvailableKernel]:
        if not known:
            known.extend(kernels if kernels is not None else debian.with_cached(debian.available()))
        return known

    out: list[str] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        if ".." in item:
            a, b = (x.strip() for x in item.split("..", 1))
            if not (a.startswith("debian:") and b.startswith("debian:")):
                raise InputError(f"--kernels {item}: a range needs debian: specs at both ends")
            ka = debian.select(a.removeprefix("debian:"), all_kernels())
            kb = debian.select(b.removeprefix("debian:"), all_kernels())
            out += [k.spec for k in packages_between(all_kernels(), ka, kb)]
        elif item.startswith("debian:"):
            out.append(debian.select(item.removeprefix("debian:"), all_kernels()).spec)
        else:
            out.append(str(Path(item).expanduser().resolve()))
    return out


def _fetch(spec: str, progress: Progress) -> str:
    kernels.resolve(spec, progress)  # downloads into the cache, so the step's run finds it there
    return spec


# ---- the command ----------------------------------------------------------------------------


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bisect", help="find the kernel or commit that changed a test's behaviour")
    w = p.add_argument_group("what to bisect (one of)")
    w.add_argument(
        "--kernels",
        metavar="LIST",
        help="old to new: debian:A..debian:B (packages apt knows in between) and/or a comma list of specs",
    )
    w.add_argument("--src", type=Path, metavar="TREE", help="a kernel git tree (with --good and --bad)")
    w.add_argument("--good", metavar="REV", help="a revision where the tests are good")
    w.add_argument("--bad", metavar="REV", help="a revision where they are bad")
    p.add_argument(
        "--test",
        action="append",
        default=[],
        metavar="ID",
        required=True,
        help="a test id that decides (repeatable; bad if any is bad)",
    )
    d = p.add_argument_group("deciding")
    d.add_argument("--runs", type=int, default=1, metavar="N", help="runs per step (default 1)")
    d.add_argument(
        "--bad-threshold",
        type=int,
        metavar="K",
        help="bad runs that make a step bad (default: max(2, N/6) for --runs N > 1; fewer bad "
        "runs among good ones: skipped as flaky)",
    )
    d.add_argument(
        "--judge",
        choices=[j.value for j in Judge],
        default="outcome",
        help="outcome: the test's own ok/not ok (default; version-independent); verdict: against expectations.yaml",
    )
    d.add_argument(
        "--reverse", action="store_true", help="find the first good one (the fix) instead of the first bad"
    )
    d.add_argument(
        "--check-endpoints",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="first check that the good end is good and the bad end is bad (default on)",
    )
    d.add_argument(
        "--bisect-boot", action="store_true", help="a kernel that does not boot is bad (default: skip)"
    )
    d.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="(--src) do not revert the culprit on the bad end and test again (default: do)",
    )
    o = p.add_argument_group("output and state")
    o.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="bisect dir (default ./harness-bisect/<what>-<hash>); rerun to resume",
    )
    o.add_argument("--restart", action="store_true", help="discard the saved state in the bisect dir")
    o.add_argument("--junit", type=Path, metavar="FILE", help="also write the JUnit record here")
    b = p.add_argument_group("building (--src)")
    b.add_argument(
        "--fragment",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="config fragment (repeatable; default kernels/lean.config + kernels/cow.config)",
    )
    b.add_argument(
        "--base", default=None, metavar="BASE", help="tinyconfig|defconfig|allnoconfig or a config file"
    )
    b.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N")
    runopts.add_each_run_arguments(p)


def _check_tests(tests: Sequence[str], suite_names: Sequence[str]) -> None:
    progs = suites.programs(list(suite_names))
    known = {i for p in progs for i in suites.list_ids(p)}
    for t in tests:
        if t not in known and not t.startswith("kselftest."):  # those ids exist only after a run
            raise InputError(f"--test {t}: no such test id (harness run --list shows them)")


def cmd_bisect(a: argparse.Namespace, progress: Progress) -> int:
    policy = Policy(tuple(a.test), a.runs, a.bad_threshold, Judge(a.judge), a.bisect_boot, a.reverse)
    if policy.problems():
        raise InputError(policy.problems()[0])
    if bool(a.kernels) == bool(a.src):
        raise InputError("name what to bisect: --kernels LIST, or --src TREE with --good and --bad")
    _check_tests(policy.tests, a.suite)
    base = runopts.request_of(a)
    info: dict[str, Any] = {"request": {"argv": sys.argv[1:], "cwd": os.getcwd()}}
    space: Space
    fingerprint: Callable[[str], str] | None = None
    if a.kernels:
        if a.good or a.bad or a.fragment or a.base:
            raise InputError("--good/--bad/--fragment/--base go with --src, not --kernels")
        if not a.verify:
            raise InputError("--no-verify goes with --src: a list of kernels has no commit to revert")
        space = ListSpace(expand_kernels(a.kernels))
        bisect_dir = (a.out or default_dir(space, policy, {})).resolve()

        def prepare(cand: str) -> str:
            return _fetch(cand, lambda s: progress(f"      {s}"))

    else:
        if not (a.good and a.bad):
            raise InputError("--src needs --good REV and --bad REV")

        frags = tuple(f.resolve() for f in a.fragment) or kbuild.DEFAULT_FRAGMENTS
        base_cfg = a.base or kbuild.DEFAULT_BASE
        # Now, not at the first step: there a bad input would count as a commit that does not build.
        kbuild.check_config_inputs(frags, base_cfg)
        info["identity"] = {
            "fragments": [f"{f.name}:{hashlib.sha256(f.read_bytes()).hexdigest()[:12]}" for f in frags],
            "base": base_cfg,
        }
        git_space = GitSpace(a.src, a.good, a.bad, policy)
        bisect_dir = (a.out or default_dir(git_space, policy, info["identity"])).resolve()
        git_space.use_dir(bisect_dir)
        space = git_space
        build_dir, wt = bisect_dir / "build", bisect_dir / "worktree"

        def prepare(cand: str) -> str:
            # One kept build dir for the whole bisect: after the first build, each step
            # recompiles only what the checkout changed (git touches only those files).
            # Reproducible (fixed timestamp, version, user, host): a commit that cannot change
            # the kernel builds byte-identical to its parent, which the no-op check looks for.
            res = kbuild.build(
                kbuild.BuildRequest(wt, frags, base_cfg, build_dir, a.jobs, reproducible=True),
                lambda s: progress(f"      {s}"),
            )
            return str(res.build_dir)

        fingerprint = kbuild.fingerprint

    progress(f"bisect dir: {bisect_dir}")
    progress(bisect_report.describe_policy(policy))
    oracle = RunOracle(base, policy, prepare, progress, fingerprint)
    b = Bisect(
        space,
        oracle,
        policy,
        bisect_dir,
        a.check_endpoints,
        progress,
        a.junit,
        a.restart,
        info,
        verify=a.verify,
    )
    out = b.run()
    print(out.text, end="")
    print(f"bisect dir: {bisect_dir}")
    if out.answer is not None and out.answer.status == "endpoint-failed":
        print(f"harness: error: {out.answer.message}", file=sys.stderr)
    return out.exit_code


# ---- harness run --bisect-exit --------------------------------------------------------------

GIT_GOOD, GIT_BAD, GIT_SKIP, GIT_ABORT = 0, 1, 125, 128


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("under git bisect run")
    g.add_argument(
        "--bisect-exit",
        action="store_true",
        help="exit 0 good, 1 bad, 125 skip (build/boot failure), 128 abort (harness problem), "
        "judging only the --filter cases",
    )
    g.add_argument(
        "--bisect-judge",
        choices=[j.value for j in Judge],
        default="outcome",
        help="with --bisect-exit: the test's own ok/not ok (default) or the verdict",
    )
    g.add_argument(
        "--bisect-reverse",
        action="store_true",
        help="with --bisect-exit: exit 1 when good (for git bisect start --term-old=broken --term-new=fixed)",
    )


def bisect_exit_code(decision: Decision, reverse: bool) -> int:
    if decision is Decision.SKIP:
        return GIT_SKIP
    good = decision is Decision.GOOD
    return GIT_GOOD if good != reverse else GIT_BAD


def git_abort(msg: str) -> int:
    """The one error line and exit code of a `--bisect-exit` run that cannot decide anything:
    128 stops git bisect run (2 would mark the commit bad)."""
    print(f"harness: error: {msg} (--bisect-exit: exit {GIT_ABORT}, git bisect run stops)", file=sys.stderr)
    return GIT_ABORT


def run_for_git_bisect(a: argparse.Namespace, req: RunRequest, progress: Progress) -> int:
    """`harness run ... --bisect-exit`: one run, its exit code in git bisect run's terms. Only
    what the commit decides maps to 0/1/125; a problem of the harness or of the command line is
    128, which makes git bisect run stop instead of marking every commit."""
    abort = git_abort

    if len(a.kernel or ()) > 1 or a.repeat != 1 or a.shard or a.baseline or a.list:
        return abort("--bisect-exit takes one --kernel and no --repeat/--shard/--baseline/--list")
    if not req.filters:
        return abort("--bisect-exit needs --filter for the cases that decide")
    try:
        kernels.resolve(req.kernel, progress)  # a tree is built here: a commit that does not build is skip
    except (BuildError, InputError) as e:
        print(f"harness: kernel not usable: {e}", file=sys.stderr)
        print(f"bisect-exit: {GIT_SKIP} (skip: kernel not built or not bootable)")
        return GIT_SKIP
    try:
        out = execute(req, progress)
    except HarnessError as e:
        return abort(str(e))
    if out.exit_code in (130, 143):  # Ctrl-C or SIGTERM: no verdict for git
        return out.exit_code
    print(out.summary)
    print(f"run dir: {out.run_dir}")
    tests = tuple(dict.fromkeys(r.id for r in out.results))
    policy = Policy(tests, judge=Judge(a.bisect_judge))
    try:
        obs = observe(out, tests)
    except HarnessError as e:
        return abort(str(e))
    step = StepResult(Status.BOOT_FAILED if obs.boot_failed else Status.RAN, (obs,), obs.detail)
    d = decide(step, policy)
    code = bisect_exit_code(d, a.bisect_reverse)
    print(f"bisect-exit: {code} ({d.value}): {step_summary(step, policy)[:500]}")
    return code
