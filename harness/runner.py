"""runner.execute(RunRequest) → RunOutcome: the whole `harness run` pipeline.

resolve kernel → build payload and initramfs → boot → run each program → parse KTAP → judge →
append results as they come. JUnit and the summary are written in a finally path, so a guest
that dies, a harness error or Ctrl-C still leaves a complete report: every selected case that
did not come back is an ERROR that says why.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__, disks, expect, image, ktap, machine, qemu, report, suites
from .errors import HarnessError, InputError, TransportError
from .kernel import resolve as resolve_kernel
from .model import CaseResult, Expectation, Kernel, Outcome, TestNode, Verdict
from .paths import REPO_ROOT
from .transport import Transport

Progress = Callable[[str], None]
DEFAULT_EXPECTATIONS = REPO_ROOT / "expectations.yaml"
HUGEPAGES_2M = 16  # cow cases on hugetlb need 2 free pages each at a time


@dataclass(frozen=True)
class RunRequest:
    kernel: str | None = None
    suites: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    expectations: Path = DEFAULT_EXPECTATIONS
    junit: Path | None = None
    out: Path | None = None
    accel: str = "auto"
    transport: str = "console"  # console | ssh
    memory_mib: int = 1024
    cpus: int = 2
    append: str = ""


@dataclass
class RunOutcome:
    run_dir: Path
    results: list[CaseResult] = field(default_factory=list)
    exit_code: int = 0
    error: str = ""
    summary: str = ""


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


def make_run_dir(out: Path | None, kernel_spec: str | None) -> Path:
    if out is None:
        tag = (kernel_spec or "default").replace("/", "_").replace(":", "-")[-40:]
        out = Path("harness-runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(f"--out {out}: not a writable directory ({e.strerror})") from None
    return out.resolve()


def case_results(sel: suites.Selected, root: TestNode, rules: expect.RuleSet, kernel: Kernel,
                 program_error: str = "") -> list[CaseResult]:
    """Map one program's KTAP onto the ids it was asked to run (pure)."""
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
        out.append(CaseResult(
            case_id, sel.program.name, node.outcome, expect.judge(node.outcome, exp),
            reason, "\n".join(node.diagnostics), exp,
        ))
    return out


def not_run(sel: suites.Selected, done: set[str], why: str, rules: expect.RuleSet,
            kernel: Kernel | None) -> list[CaseResult]:
    out = []
    for case_id in sel.ids:
        if case_id in done:
            continue
        exp = expect.expectation_for(rules, case_id, kernel) if kernel else Expectation("pass")
        out.append(CaseResult(case_id, sel.program.name, Outcome.ERROR, Verdict.ERROR, why, "", exp))
    return out


# Guest state recorded in the fingerprint. Shell builtins only (read, echo, test): every fork
# costs ~10 ms under TCG.
GUEST_FACTS = (
    "f() { v=; read -r v < $2 2>/dev/null; echo $1=$v; }; "
    "f kernel /proc/sys/kernel/osrelease; f cpus_online /sys/devices/system/cpu/online; "
    "f thp_enabled /sys/kernel/mm/transparent_hugepage/enabled; "
    "f thp_defrag /sys/kernel/mm/transparent_hugepage/defrag; "
    # proc_dointvec sysctls answer EOF to a read at a non-zero offset, and busybox's read
    # builtin reads a byte at a time: those need cat.
    "echo nr_hugepages=$(cat /proc/sys/vm/nr_hugepages); f memtotal /proc/meminfo; "
    "f perf_event_paranoid /proc/sys/kernel/perf_event_paranoid; "
    "n=0; while read -r l; do n=$((n+1)); done < /proc/swaps; echo swap_devices=$((n-1)); "
    "d=no; e=no; while read -r _ mnt fs _; do [ $fs = debugfs ] && d=yes; "
    "[ $mnt = /mnt/ext4 ] && e=$fs; done < /proc/mounts; echo debugfs=$d; echo scratch_fs=$e; "
    "f hugepages_free /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages; "
    "test -e /sys/kernel/debug/gup_test && echo gup_test=yes || echo gup_test=no"
)


def guest_facts(text: str) -> dict[str, str]:
    facts = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            facts[k.strip()] = v.strip()
    return facts


class _Run:
    """State of one run, so the finally path can report whatever was reached."""

    def __init__(self, req: RunRequest, progress: Progress) -> None:
        self.req, self.progress = req, progress
        self.t0 = time.monotonic()
        check_junit_path(req.junit)
        self.outcome = RunOutcome(make_run_dir(req.out, req.kernel))
        self.rules = expect.load(req.expectations)
        self.kernel: Kernel | None = None
        self.selected: list[suites.Selected] = []
        self.log = report.ResultsLog(self.outcome.run_dir / "results.jsonl")
        self.fingerprint: dict[str, object] = {
            "harness": __version__, "host": platform.uname()._asdict(),
            "python": platform.python_version(), "request": {
                "kernel": req.kernel, "suites": list(req.suites), "filters": list(req.filters),
                "accel": req.accel, "transport": req.transport,
                "memory_mib": req.memory_mib, "cpus": req.cpus},
        }
        self.done: set[str] = set()

    def say(self, msg: str) -> None:
        self.progress(f"[{time.monotonic() - self.t0:7.1f}s] {msg}")

    def record(self, results: list[CaseResult]) -> None:
        for r in results:
            self.log.append(r)
            self.outcome.results.append(r)
            self.done.add(r.id)

    def prepare(self) -> list[suites.Selected]:
        image.require_qemu()  # fail fast: before building tests, fetching a kernel, writing an initramfs
        progs = suites.programs(list(self.req.suites))
        self.selected = suites.select(progs, list(self.req.filters))
        self.kernel = resolve_kernel(self.req.kernel, self.say)
        k = self.kernel
        self.fingerprint["kernel"] = {"spec": k.spec, "release": k.release, "version": str(k.version),
                                      "origin": k.origin, "bzimage": str(k.bzimage)}
        if k.config_path:
            shutil.copyfile(k.config_path, self.outcome.run_dir / "kernel-config")
        return self.selected

    def boot(self) -> machine.Machine:
        assert self.kernel is not None
        rd = self.outcome.run_dir
        files = suites.payload_files(self.selected)
        needs_python = any(s.program.interpreter for s in self.selected)
        ssh = self.req.transport == "ssh"
        keys = None
        if ssh:
            from . import sshtransport

            keys = sshtransport.make_keys(rd)
        # The guest environment the suites are written for (cow_tests/README.md): an ext4 scratch
        # disk, swap, and reserved 2 MiB hugetlb pages.
        drives = disks.make(rd)
        opts = image.GuestOptions(
            nonce=secrets.token_hex(8), share_usr=needs_python or ssh, net=ssh, disk=True,
            hugepages=HUGEPAGES_2M, authorized_key=keys.authorized_line if keys else "",
            host_key=keys.host_key_bytes if keys else b"")
        img = image.build(self.kernel, image.Payload(files), opts, rd / "initramfs.cpio")
        spec = machine.MachineSpec(kernel=self.kernel, image=img, run_dir=rd, accel=self.req.accel,
                                   memory_mib=self.req.memory_mib, cpus=self.req.cpus,
                                   append=self.req.append, drives=drives)
        m = machine.boot(spec, self.say)
        self.fingerprint["machine"] = {
            "accel": m.accel, "accel_note": m.accel_note, "qemu": qemu.version(m.qspec.qemu),
            "boot_s": round(m.boot_s, 2), "modules_loaded": list(img.modules_loaded),
            "modules_missing": list(img.modules_missing)}
        self.say(f"guest ready under {m.accel.upper()} in {m.boot_s:.1f}s")
        self.transport: Transport = m.console
        if keys is not None:
            from . import sshtransport

            self.transport = sshtransport.connect(m, keys, 60.0)
        return m

    def run_all(self) -> None:
        assert self.kernel is not None
        t = self.transport
        facts = t.run(GUEST_FACTS, 60.0)
        self.fingerprint["guest"] = guest_facts(facts.text())
        self.fingerprint["boot_to_first_test_s"] = round(time.monotonic() - self.t0, 2)
        outdir = self.outcome.run_dir / "output"
        outdir.mkdir(exist_ok=True)
        for sel in self.selected:
            self.say(f"running {sel.program.name} ({len(sel.ids)} cases)")
            t1 = time.monotonic()
            r = t.run(sel.program.guest_argv(list(sel.ids)), sel.program.timeout_s)
            dt = time.monotonic() - t1
            (outdir / f"{sel.program.name}.ktap").write_bytes(r.stdout)
            (outdir / f"{sel.program.name}.stderr").write_bytes(r.stderr)
            err = "" if r.rc in (0, 1) else f"program exited {r.rc}: {r.stderr.decode(errors='replace').strip()[:300]}"
            results = case_results(sel, ktap.parse(r.stdout.decode("utf-8", "surrogateescape")),
                                   self.rules, self.kernel, err)
            per_case = dt / max(1, len(results))
            results = [CaseResult(x.id, x.program, x.outcome, x.verdict, x.reason, x.output,
                                  x.expectation, per_case) for x in results]
            self.record(results)
            bad = sum(1 for x in results if x.verdict.unexpected)
            self.say(f"  {sel.program.name}: {len(results)} cases in {dt:.1f}s, {bad} unexpected")
        # The whole kernel log, whatever the console loglevel let through during the run.
        # Compressed: the serial console moves ~80 KB/s under TCG.
        log = t.run("dmesg | gzip -1", 60.0).stdout
        (self.outcome.run_dir / "dmesg.log").write_bytes(gzip.decompress(log) if log else b"")

    def finish(self, why_missing: str) -> None:
        rd = self.outcome.run_dir
        disks.remove(rd)
        for sel in self.selected:
            self.record(not_run(sel, self.done, why_missing, self.rules, self.kernel))
        props = {"harness.version": __version__}
        k = self.fingerprint.get("kernel")
        if isinstance(k, dict):
            props.update({f"kernel.{a}": str(b) for a, b in k.items()})
        mach = self.fingerprint.get("machine")
        if isinstance(mach, dict):
            props.update({"accel": str(mach["accel"]), "qemu": str(mach["qemu"])})
        xml = report.junit_xml(self.outcome.results, props)
        (rd / "junit.xml").write_text(xml)
        if self.req.junit is not None:
            try:
                self.req.junit.write_text(xml)
            except OSError as e:  # the run dir copy above is already on disk
                self.outcome.error = f"--junit {self.req.junit}: {e.strerror} (junit.xml is in the run dir)"
        self.fingerprint["total_s"] = round(time.monotonic() - self.t0, 2)
        (rd / "fingerprint.json").write_text(json.dumps(self.fingerprint, indent=2) + "\n")
        self.outcome.summary = report.summary_table(self.outcome.results)
        (rd / "summary.txt").write_text(self.outcome.summary + "\n")


def execute(req: RunRequest, progress: Progress = lambda s: None) -> RunOutcome:
    run = _Run(req, progress)
    m: machine.Machine | None = None
    why = "not run: the harness stopped before this case"
    try:
        run.prepare()
        m = run.boot()
        run.run_all()
    except KeyboardInterrupt:
        why = "not run: interrupted (Ctrl-C)"
        run.outcome.error = "interrupted"
        run.outcome.exit_code = 130
    except TransportError as e:
        why = f"not run: guest lost ({e})"
        run.outcome.error = str(e)
        run.outcome.exit_code = 2
    except HarnessError as e:
        why = f"not run: {e}"
        run.outcome.error = str(e)
        run.outcome.exit_code = e.exit_code
        if not run.selected:
            raise
    finally:
        if m is not None:
            # After Ctrl-C or a lost guest the agent may never read a poweroff: kill QEMU.
            m.shutdown() if run.outcome.exit_code == 0 else m.kill()
        if run.selected:
            run.finish(why)
    if run.outcome.exit_code == 0 and any(r.verdict.unexpected for r in run.outcome.results):
        run.outcome.exit_code = 1
    return run.outcome


def list_cases(req: RunRequest, progress: Progress = lambda s: None) -> list[tuple[str, Expectation]]:
    """Ids selected by the request with their expectation on the chosen kernel."""
    rules = expect.load(req.expectations)
    selected = suites.select(suites.programs(list(req.suites)), list(req.filters))
    k = resolve_kernel(req.kernel, progress)
    return [(i, expect.expectation_for(rules, i, k)) for s in selected for i in s.ids]


