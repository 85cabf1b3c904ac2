"""runner.execute(RunRequest) → RunOutcome: the whole `harness run` pipeline.

resolve kernel → build payload and initramfs → boot → run each program → parse KTAP → judge →
append results as they come. JUnit and the summary are written in a finally path, so a guest
that dies, a harness error or Ctrl-C still leaves a complete report: every selected case that
did not come back is an ERROR that says why.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from harness import limits, reportio, signals
from harness.errors import CommandTimeout, HarnessError, InputError, ReportWriteError, TransportError
from harness.judge import expect, outcomes
from harness.kernels.kernel import resolve as resolve_kernel
from harness.model import Accel, CaseResult, Expectation, Kernel, Progress, TransportKind
from harness.paths import REPO_ROOT
from harness.report import junit as report
from harness.run.fingerprint import Fingerprint
from harness.run.guestboot import FreshGuests
from harness.run.guestfacts import GUEST_FACTS, guest_facts, hugepages_1g_shortfall
from harness.run.rundir import RunDir
from harness.run.session import Guest, GuestSession
from harness.suites import crosscheck
from harness.suites import registry as suites
from harness.vm import hugepages, image, machine, sshtransport, userspace
from harness.vm.image import GUEST_DIR
from harness.vm.transport import CommandResult, Transport

DEFAULT_EXPECTATIONS = REPO_ROOT / "expectations.yaml"
HUGEPAGES_2M = 16  # cow cases on hugetlb need 2 free pages each at a time


class Stage(StrEnum):
    """Where a run is (RunOutcome.stage): a bisect tells a kernel that does not boot (BOOT, or
    RUN without a result) from a broken harness (the stages before)."""

    NONE = ""
    PREPARE = "prepare"  # select the cases, resolve the kernel
    BUILD_GUEST = "build_guest"  # payload, initramfs, disks, machine spec
    BOOT = "boot"
    RUN = "run"
    DONE = "done"


# The pipeline: each stage and the _Run method that does it, in order.
PIPELINE = (
    (Stage.PREPARE, "prepare"),
    (Stage.BUILD_GUEST, "build_guest"),
    (Stage.BOOT, "boot"),
    (Stage.RUN, "run_all"),
)


@dataclass(frozen=True)
class RunRequest:
    kernel: str | None = None
    suites: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    expectations: Path = DEFAULT_EXPECTATIONS
    junit: Path | None = None
    out: Path | None = None
    accel: Accel = Accel.AUTO
    transport: TransportKind = TransportKind.CONSOLE
    memory_mib: int | None = None  # None: 1024, or what the selected cases' 1 GiB pages take
    cpus: int = 2
    append: str = ""
    timeout_s: float | None = None  # per program; None: the program's own default
    fail_on_kernel_report: bool = True  # a case that made the kernel WARN/BUG/... is FAIL
    max_reboots: int = 3
    # Who takes cow_gup's long-term pins: gup_test where the kernel has it, else the harness_pin
    # module (auto); or that one only (gup_test | module: the cross-check runs both).
    pinner: str = "auto"
    out_reuse: bool = False  # --out may hold an earlier run: its files are removed first
    # auto: restore fresh guests from a cached snapshot of the booted guest, and save one on a
    # cold boot (harness/vm/snapshot.py); off: every fresh guest is a cold boot, nothing cached.
    snapshot: str = "auto"
    isolate: str = "none"  # none | program | case: every program (case) after the first gets a fresh guest
    userspace: str = "host"  # the guest's /usr: host (over 9p) | image (harness/vm/userspace.py)


@dataclass
class RunOutcome:
    run_dir: Path
    results: list[CaseResult] = field(default_factory=list)
    exit_code: int = 0
    error: str = ""
    summary: str = ""
    crosscheck: str = ""  # our cases vs the upstream selftests' (harness/suites/crosscheck.py), if both ran
    stage: Stage = field(default_factory=lambda: Stage.NONE)  # where the run was when it ended
    # The run ended on bad input (an unknown kernel, an archive that cannot be reached...):
    # the CLI prints the one error line, not the table of cases that were not run.
    bad_input: bool = False


def guest_results(out: RunOutcome, ids: Collection[str] | None = None) -> list[CaseResult] | None:
    """The cases (of `ids`, default all) the guest really ran, without the "not run" fill-ins;
    None when it ran none of them because the kernel did not boot or was lost first (for
    bisect and series, a boot failure). Ctrl-C is re-raised; a run that stopped before booting
    is the harness's problem, not the kernel's: a HarnessError."""
    if out.exit_code == signals.EXIT_SIGTERM:
        raise signals.Terminated()
    if out.exit_code == signals.EXIT_SIGINT:
        raise KeyboardInterrupt
    real = [r for r in out.results if not r.not_run and (ids is None or r.id in ids)]
    if not real and out.exit_code == 2:
        if out.stage in (Stage.BOOT, Stage.RUN):
            return None
        raise HarnessError(f"the run in {out.run_dir} stopped before booting: {out.error}")
    return real


def check_junit_path(junit: Path | None) -> None:
    """Refuse an unwritable --junit before the run, not after it."""
    if junit is None:
        return
    try:
        junit.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--junit {junit}: cannot create its directory ({e.strerror})") from None
    if junit.is_dir() or not os.access(junit.parent, os.W_OK):
        raise InputError(f"--junit {junit}: not a writable file path")


def bounded(r: CaseResult) -> CaseResult:
    """A result as it may be stored: output, reason and kernel report titles within limits.py
    (head and tail kept, what was dropped said in place)."""
    events = r.kernel_events
    if len(events) > limits.MAX_KERNEL_EVENTS:
        events = (
            *events[: limits.MAX_KERNEL_EVENTS - 1],
            f"(+{len(events) - limits.MAX_KERNEL_EVENTS + 1} more kernel reports)",
        )
    events = tuple(limits.head_tail(e, limits.MAX_REASON_CHARS) for e in events)
    out = limits.head_tail(r.output, limits.MAX_CASE_OUTPUT_CHARS)
    reason = limits.head_tail(r.reason, limits.MAX_REASON_CHARS)
    if (out, reason, events) == (r.output, r.reason, r.kernel_events):
        return r
    return dataclasses.replace(r, output=out, reason=reason, kernel_events=events)


class _Run:
    """One run: the selected cases, their results as they come, and the stages that get them.

    The files are the RunDir's, the guest the GuestSession's, what it ran on the Fingerprint's."""

    def __init__(self, req: RunRequest, progress: Progress) -> None:
        self.req, self.progress = req, progress
        self.t0 = time.monotonic()
        check_junit_path(req.junit)
        self.dir = RunDir.claim(req.out, req.kernel, req.out_reuse)
        self.outcome = RunOutcome(self.dir.path)
        try:
            self.rules = expect.load(req.expectations)
        except BaseException:
            self.dir.release()
            raise
        self.kernel: Kernel | None = None
        self.selected: list[suites.Selected] = []
        self.all_ids: dict[str, list[str]] = {}
        self.memory = hugepages.GuestMemory(req.memory_mib or hugepages.DEFAULT_MEMORY_MIB)
        self.fingerprint = Fingerprint.start(
            {
                "kernel": req.kernel,
                "suites": list(req.suites),
                "filters": list(req.filters),
                "accel": str(req.accel),
                "transport": str(req.transport),
                "memory_mib": req.memory_mib,
                "cpus": req.cpus,
            }
        )
        self.done: set[str] = set()
        self.isolated: list[dict[str, object]] = []
        self.t_guest = self.t0  # when the first guest was asked for
        self.session: GuestSession | None = None
        self.fresh: FreshGuests | None = None

    def say(self, msg: str) -> None:
        self.progress(f"[{time.monotonic() - self.t0:7.1f}s] {msg}")

    def record(self, results: list[CaseResult]) -> None:
        """Results into the run (JUnit's source) first, then results.jsonl: a log that cannot
        be written (ReportWriteError, the run stops) loses them from neither report."""
        kept = [bounded(r) for r in results]
        self.outcome.results += kept
        self.done.update(r.id for r in kept)
        for r in kept:
            self.dir.results.append(r)

    # ---- the stages ---------------------------------------------------------------------

    def prepare(self) -> None:
        image.require_qemu()  # fail fast: before building tests, fetching a kernel, writing an initramfs
        progs = suites.programs(list(self.req.suites), self.req.kernel)
        selected = suites.select(progs, list(self.req.filters))
        # Before self.selected: a --memory too small for the cases is one error line, no report.
        self.memory = hugepages.plan((i for s in selected for i in s.ids), self.req.memory_mib)
        self.selected = selected
        self.all_ids = {p.name: suites.list_ids(p) for p in progs}
        self.kernel = resolve_kernel(self.req.kernel, self.say)
        self.fingerprint = self.fingerprint.with_kernel(self.kernel)
        if self.kernel.config_path:
            self.dir.keep_kernel_config(self.kernel.config_path)

    def build_guest(self) -> None:
        """The initramfs, disks and machine spec, made once; every (re)boot uses them."""
        assert self.kernel is not None
        rd = self.dir.path
        files = suites.payload_files(self.selected)
        files.update(suites.kernel_payload(self.kernel, self.selected, self.say, self.req.pinner))
        files["run-test.sh"] = GUEST_DIR / "run-test.sh"
        needs_python = any(s.program.needs_usr for s in self.selected)
        rdma = any(s.program.needs_rdma for s in self.selected)  # rxe on eth0; iproute2 from /usr
        pci_ram_bar = any(s.program.needs_pci_ram_bar for s in self.selected)
        keys = sshtransport.make_keys(rd) if self.req.transport == TransportKind.SSH else None
        # The guest environment the suites are written for (cow_tests/README.md): an ext4 scratch
        # disk, swap, and reserved 2 MiB hugetlb pages.
        drives = self.dir.make_disks()
        usr, ro_drives = self.guest_usr(needs_python or keys is not None or rdma)
        opts = image.GuestOptions(
            nonce=secrets.token_hex(8),
            share_usr=usr == "host",
            usr_image=usr == "image",
            net=keys is not None,
            disk=True,
            rdma=rdma,
            hugepages=HUGEPAGES_2M,
            authorized_key=keys.authorized_line if keys else "",
            host_key=keys.host_key_bytes if keys else b"",
            pinner=self.req.pinner,
            handshake=True,
            pci_ram_bar=pci_ram_bar,
        )
        img = image.build(self.kernel, image.Payload(files), opts, rd / "initramfs.cpio")
        spec = machine.MachineSpec(
            kernel=self.kernel,
            image=img,
            run_dir=rd,
            accel=self.req.accel,
            memory_mib=self.memory.memory_mib,
            cpus=self.req.cpus,
            append=self.req.append,
            kernel_args=self.memory.kernel_args,
            drives=drives,
            ro_drives=ro_drives,
        )
        self.fingerprint = self.fingerprint.with_machine(
            modules_loaded=list(img.modules_loaded),
            modules_missing=list(img.modules_missing),
            memory_mib=self.memory.memory_mib,
            hugepages_1g_asked=self.memory.hugepages_1g,
            kernel_args=list(self.memory.kernel_args),
        )
        if img.modules_missing and self.kernel.modules_dir is None:
            # Debian 6.19/7.0/7.1 as of 2026-12: linux-binary-X is in the archive, its modules not.
            self.say(
                f"warning: {self.kernel.release} has no modules here, so no "
                f"{', '.join(img.modules_missing)}: the cases that need the scratch disks or "
                "the /usr share cannot run and are reported as unexpected"
            )
        self.fresh = FreshGuests(spec, self.req.snapshot, self.say)
        connect = None
        if keys is not None:
            ssh_keys = keys

            def connect(g: Guest) -> Transport:
                assert isinstance(g, machine.Machine)
                return sshtransport.connect(g, ssh_keys, 60.0)

        self.session = GuestSession(self.fresh, self.say, self.req.max_reboots, connect)

    def guest_usr(self, needed: bool) -> tuple[str, tuple[Path, ...]]:
        """Where the guest's /usr comes from ("host", "image" or "" when no case needs one), and
        the read-only disks that takes; the fingerprint records which userspace ran."""
        if not needed:
            self.fingerprint = self.fingerprint.with_(userspace={"kind": "none"})
            return "", ()
        if self.req.userspace == "image":
            us = userspace.ensure(self.say)
            self.fingerprint = self.fingerprint.with_(userspace=us.fingerprint())
            return "image", (us.image,)
        self.fingerprint = self.fingerprint.with_(
            userspace={"kind": "host-9p", "python": self.fingerprint.python}
        )
        return "host", ()

    def boot(self) -> None:
        self.t_guest = time.monotonic()
        self.guests.boot()
        self.fingerprint = self.fingerprint.with_machine(**self.guests.first)

    @property
    def guests(self) -> GuestSession:
        if self.session is None:
            raise HarnessError("internal: the guest was asked for before it was built")
        return self.session

    def run_all(self) -> None:
        facts = guest_facts(self.guests.transport.run(GUEST_FACTS, 60.0).text())
        self.fingerprint = self.fingerprint.with_(
            guest=facts,
            boot_to_first_test_s=round(time.monotonic() - self.t0, 2),
            # From the start of the first guest (booted or restored) to the first test command.
            guest_to_first_test_s=round(time.monotonic() - self.t_guest, 2),
        )
        short = hugepages_1g_shortfall(self.memory.hugepages_1g, facts)
        if short:
            self.say(short)
        queue = deque(self.selected)
        if self.req.isolate == "case":  # one case per guest (a program that runs whole stays whole)
            queue = deque(c for s in self.selected for c in s.program.per_case(s))
        while queue:
            sel = queue.popleft()
            if self.req.isolate in ("program", "case") and self.guests.used:
                # A pristine guest for every program: no THP knob, hugetlb page or pin of the
                # program before (restored from the snapshot; cold with --snapshot off).
                s = self.guests.replace()
                self.isolated.append(
                    {
                        "program": sel.program.name,
                        "cases": len(sel.ids),
                        "s": s,
                        "restored": self.guests.guest.restored,
                    }
                )
            self.guests.used = True
            leftover = self.run_program(sel)
            if leftover:
                queue.appendleft(suites.Selected(sel.program, tuple(leftover)))
        # The whole kernel log, whatever the console loglevel let through during the run.
        # Compressed: the serial console moves ~80 KB/s under TCG.
        self.dir.save_dmesg(self.guests.transport.run("dmesg | gzip -1", 60.0).stdout)

    def run_program(self, sel: suites.Selected) -> list[str]:
        """Run one program (or what is left of it); record its results; return the ids that
        must run again (after a hang or a lost guest)."""
        assert self.kernel is not None
        prog = sel.program
        limit = self.req.timeout_s or prog.timeout_s
        self.say(f"running {prog.name} ({'whole program' if prog.runs_whole else f'{len(sel.ids)} cases'})")
        off, t1 = self.guests.guest.log_offset(), time.monotonic()
        # No ids means "every case" to a program: shorter, and the common case.
        ids = [] if list(sel.ids) == self.all_ids.get(prog.name) else list(sel.ids)
        argv = ["/harness/run-test.sh", prog.name, *prog.guest_argv(ids)]
        timed_out = False
        try:
            r = self.guests.transport.run(argv, limit)
        except CommandTimeout as e:
            r = e.partial if isinstance(e.partial, CommandResult) else CommandResult(137, b"", b"")
            timed_out = True
        except TransportError as e:  # QEMU died (panic) or the guest stopped answering
            return self.lost_guest(sel, off, e, time.monotonic() - t1)
        dt = time.monotonic() - t1
        self.dir.save_output(prog.name, r)
        err = (
            ""
            if r.rc in (0, 1)
            else f"program exited {r.rc}: {r.stderr.decode(errors='replace').strip()[:300]}"
        )
        if r.note:  # output over the limits: say so where cases went missing, and here
            self.say(f"  {prog.name}: the harness cut its output: {r.note}")
            err = f"{err}; " if err else ""
            err += f"the harness cut the program's output: {r.note}"
        section = self.guests.console_section(off, prog.name)
        results, leftover = outcomes.judge_program(
            sel,
            r.stdout.decode("utf-8", "surrogateescape"),
            err,
            section,
            self.rules,
            self.kernel,
            self.req.fail_on_kernel_report,
            limit if timed_out else None,
        )
        self.record([dataclasses.replace(x, duration_s=dt / max(1, len(results))) for x in results])
        bad = sum(1 for x in results if x.verdict.unexpected)
        self.say(
            f"  {prog.name}: {len(results)} cases in {dt:.1f}s, {bad} unexpected"
            + (f"; timed out, {len(leftover)} to run again" if timed_out else "")
        )
        return leftover

    def lost_guest(self, sel: suites.Selected, offset: int, err: TransportError, dt: float) -> list[str]:
        assert self.kernel is not None
        why = self.guests.lose(err)
        section = self.guests.guest.log_since(offset)
        self.dir.save_lost_console(sel.program.name, section)
        results, leftover = outcomes.after_guest_loss(
            sel, section, why, self.rules, self.kernel, self.req.fail_on_kernel_report
        )
        self.record(results)
        self.say(
            f"  {sel.program.name}: {why} after {dt:.1f}s; {len(results)} cases reported, "
            f"{len(leftover)} to run again"
        )
        self.guests.reboot(why)
        return leftover

    # ---- the end, whatever stopped the run ------------------------------------------------

    def finish(self, why_missing: str) -> None:
        """Every report, whatever stopped the run: JUnit first (the scratch images go before it,
        which frees 512 MiB on a full disk). A write that fails is said in outcome.error (exit
        2) and the other reports are still written; a JUnit the run dir cannot take goes to
        --junit, then beside the run dir, then to the temp dir."""
        errors: list[str] = []
        try:
            self.dir.remove_disks()
        except OSError as e:
            errors.append(f"cannot remove the scratch images: {e.strerror or e}")
        missing = [
            bounded(r)
            for sel in self.selected
            for r in outcomes.not_run(sel, self.done, why_missing, self.rules, self.kernel)
        ]
        self.outcome.results += missing
        self.done.update(r.id for r in missing)
        xml = report.junit_xml(self.outcome.results, self.fingerprint.junit_properties())
        self.outcome.summary = report.summary_table(self.outcome.results)
        errors += self.dir.write_junit(xml, self.outcome.summary + "\n", self.req.junit)
        for r in missing:
            try:
                self.dir.results.append(r)
            except ReportWriteError as e:
                errors.append(str(e))
                break
        self.fingerprint = self.fingerprint.with_(
            snapshot=self.fresh.info if self.fresh is not None else None,
            isolated=tuple(self.isolated) or None,
            reboots=tuple(self.session.reboots if self.session is not None else ()),
            total_s=round(time.monotonic() - self.t0, 2),
        )
        for name, text in (
            ("fingerprint.json", json.dumps(self.fingerprint.to_json(), indent=2) + "\n"),
            ("summary.txt", self.outcome.summary + "\n"),
        ):
            try:
                self.dir.write(name, text)
            except ReportWriteError as e:
                errors.append(str(e))
        if errors:
            first = self.outcome.error
            self.outcome.error = "; ".join(([first] if first else []) + errors)
            if self.outcome.exit_code in (0, 1):
                self.outcome.exit_code = 2


def execute(req: RunRequest, progress: Progress = lambda s: None) -> RunOutcome:
    run = _Run(req, progress)
    try:
        return _execute(run)
    finally:
        run.dir.release()


def _execute(run: _Run) -> RunOutcome:
    why = "not run: the harness stopped before this case"
    try:
        for stage, step in PIPELINE:
            run.outcome.stage = stage
            getattr(run, step)()
        run.outcome.stage = Stage.DONE
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (signals.Terminated)
        code = signals.exit_code(e)
        why = f"not run: {signals.reason(code)}"
        run.outcome.error = signals.reason(code).split(" ")[0]
        run.outcome.exit_code = code
    except TransportError as e:
        why = f"not run: guest lost ({e})"
        run.outcome.error = str(e)
        run.outcome.exit_code = 2
    except (HarnessError, OSError) as e:
        if isinstance(e, OSError):  # a disk or file the harness needs failed under it
            e = ReportWriteError(f"{e.filename or 'I/O'}: {e.strerror or e}")
        why = f"not run: {e}"
        run.outcome.error = str(e)
        run.outcome.exit_code = e.exit_code
        run.outcome.bad_input = isinstance(e, InputError) and run.outcome.stage == Stage.PREPARE
        if not run.selected:
            raise e from None
    finally:
        # A second Ctrl-C or SIGTERM while QEMU is stopped and the reports are written is only
        # noted: cutting them short would lose the JUnit.
        with signals.held() as seen:
            if run.session is not None:
                run.session.close(clean=run.outcome.exit_code == 0)
            if run.selected:
                run.finish(why)
            elif run.outcome.stage:
                run.dir.remove_disks()
        if seen and run.outcome.exit_code in (0, 1, 2):
            run.outcome.exit_code = signals.EXIT_SIGTERM if signal.SIGTERM in seen else signals.EXIT_SIGINT
            run.outcome.error = run.outcome.error or signals.reason(run.outcome.exit_code)
    if run.outcome.exit_code == 0 and any(r.verdict.unexpected for r in run.outcome.results):
        run.outcome.exit_code = 1
    cross_check(run.outcome, run.kernel, run.fingerprint.guest)
    return run.outcome


def cross_check(
    out: RunOutcome, kernel: Kernel | None = None, guest: Mapping[str, str] | None = None
) -> None:
    """Our verdicts against upstream's where both suites cover a case, and our two kinds of
    long-term pin (RDMA, gup) against each other; a disagreement is exit 1."""
    texts, shown, disagree = [], [], False
    if crosscheck.applies(out.results):
        # The guest facts say which filesystems /tmp and the scratch dir are (some pairings need them).
        pairs = crosscheck.pairs(out.results, dict(guest) if guest is not None else None)
        texts.append(crosscheck.table(pairs))
        shown.append(texts[-1])
        disagree = bool(crosscheck.disagreements(pairs))
    pp = crosscheck.pinner_pairs(out.results, kernel.version.as_tuple() if kernel is not None else ())
    if pp:
        pinner = (guest or {}).get("pinner", "?")
        texts.append(crosscheck.pinner_table(pp, pinner))
        bad = [p for p in pp if p.status == "DISAGREE"]
        # On the terminal: the count, and the pairs that disagree (the table is in crosscheck.txt).
        shown.append(
            "\n".join(
                [
                    *(
                        f"DISAGREE  {p.rdma.id} ({p.rdma.verdict.value})  <->  {p.gup.id} "
                        f"({p.gup.verdict.value})"
                        for p in bad
                    ),
                    crosscheck.pinner_summary(pp),
                ]
            )
        )
        disagree = disagree or bool(bad)
    if not texts:
        return
    out.crosscheck = "\n\n".join(shown)
    try:
        reportio.write_text(out.run_dir / "crosscheck.txt", "\n\n".join(texts) + "\n")
    except ReportWriteError as e:
        out.error = f"{out.error}; {e}" if out.error else str(e)
    if disagree and out.exit_code == 0:
        out.exit_code = 1


def list_cases(req: RunRequest, progress: Progress = lambda s: None) -> list[tuple[str, Expectation]]:
    """Ids selected by the request with their expectation on the chosen kernel."""
    rules = expect.load(req.expectations)
    selected = suites.select(suites.programs(list(req.suites), req.kernel), list(req.filters))
    k = resolve_kernel(req.kernel, progress)
    # A kselftest's ids exist only after it ran: listed as its prefix glob.
    return [
        (i + ".*" if s.program.kind == "kselftest" else i, expect.expectation_for(rules, i, k))
        for s in selected
        for i in s.ids
    ]
