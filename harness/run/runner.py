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
import platform
import secrets
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__, limits, reportio, signals
from harness.errors import (
    CommandTimeout,
    GuestUnresponsive,
    HarnessError,
    InputError,
    MachineError,
    ReportWriteError,
    TransportError,
)
from harness.judge import expect, ktap, outcomes
from harness.kernels.kernel import resolve as resolve_kernel
from harness.model import CaseResult, Expectation, Kernel
from harness.paths import REPO_ROOT
from harness.report import junit as report
from harness.run import rundir
from harness.suites import registry as suites
from harness.vm import disks, hugepages, image, machine, qemu, snapshot
from harness.vm.image import GUEST_DIR
from harness.vm.transport import CommandResult, Transport

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


@dataclass
class RunOutcome:
    run_dir: Path
    results: list[CaseResult] = field(default_factory=list)
    exit_code: int = 0
    error: str = ""
    summary: str = ""
    crosscheck: str = ""  # our cases vs the upstream selftests' (harness/suites/crosscheck.py), if both ran
    # The stage the run was in when it ended: prepare | build_guest | boot | run | done. A bisect
    # tells a kernel that does not boot (boot, or run without a result) from a broken harness.
    stage: str = ""
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
    real = [r for r in out.results if not r.reason.startswith("not run") and (ids is None or r.id in ids)]
    if not real and out.exit_code == 2:
        if out.stage in ("boot", "run"):
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


make_run_dir = rundir.make_run_dir  # matrix and series import it from here


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


def dmesg_text(log: bytes) -> bytes:
    """dmesg.log from the guest's gzip'd dmesg: bounded as program output is; what is not gzip
    (a broken guest) is kept as a note, never a traceback."""
    if not log:
        return b""
    try:
        data, note = limits.gunzip(log)
    except limits.DecompressError as e:
        return (
            f"[harness: the guest's dmesg did not come back as gzip ({e}); {len(log)} bytes came]\n".encode()
        )
    return data + (f"\n[harness: {note}]\n".encode() if note else b"")


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
    "d=no; e=no; t=no; while read -r _ mnt fs _; do [ $fs = debugfs ] && d=yes; "
    "[ $mnt = /mnt/ext4 ] && e=$fs; [ $mnt = /tmp ] && t=$fs; done < /proc/mounts; "
    "echo debugfs=$d; echo scratch_fs=$e; echo tmp_fs=$t; "
    "f hugepages_free /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages; "
    # The boot-time 1 GiB pool (empty: the kernel or CPU has no 1 GiB pages).
    "f hugepages_1g /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages; "
    "f hugepages_1g_free /sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages; "
    "test -e /sys/kernel/debug/gup_test && echo gup_test=yes || echo gup_test=no; "
    "test -e /sys/kernel/debug/harness_pin && echo harness_pin=yes || echo harness_pin=no; "
    "f harness_pin_why /harness/modules/harness_pin.ko.why; f pinner /etc/harness/pinner; "
    "f rdma_why /run/harness-rdma.why; test -e /sys/class/infiniband/rxe0 && echo rdma=rxe0 || echo rdma=none; "
    # The taint every case starts from (harness_pin, loaded at boot, is O and E): a case is only
    # blamed for a change from this.
    "echo tainted=$(cat /proc/sys/kernel/tainted)"
)


def guest_facts(text: str) -> dict[str, str]:
    facts = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            facts[k.strip()] = v.strip()
    return facts


def hugepages_1g_shortfall(asked: int, guest: dict[str, str]) -> str:
    """A note when the kernel reserved fewer 1 GiB pages than asked ("" when it has them all):
    the hugetlb-1g cases then SKIP, and this says why before they do."""
    got = guest.get("hugepages_1g", "")
    if not asked or (got.isdigit() and int(got) >= asked):
        return ""
    return (
        f"the kernel reserved {got or 'no'} of {asked} boot-time 1 GiB hugetlb pages "
        f"(dmesg: HugeTLB); the hugetlb-1g cases will SKIP"
    )


class _Run:
    """State of one run, so the finally path can report whatever was reached."""

    def __init__(self, req: RunRequest, progress: Progress) -> None:
        self.req, self.progress = req, progress
        self.t0 = time.monotonic()
        check_junit_path(req.junit)
        run_dir, self.lock = rundir.claim(req.out, req.kernel, req.out_reuse)
        self.outcome = RunOutcome(run_dir)
        try:
            self.rules = expect.load(req.expectations)
        except BaseException:
            self.lock.release()
            raise
        self.kernel: Kernel | None = None
        self.selected: list[suites.Selected] = []
        self.memory = hugepages.GuestMemory(req.memory_mib or hugepages.DEFAULT_MEMORY_MIB)
        self.log = report.ResultsLog(self.outcome.run_dir / "results.jsonl")
        self.fingerprint: dict[str, object] = {
            "harness": __version__,
            "host": platform.uname()._asdict(),
            "python": platform.python_version(),
            "request": {
                "kernel": req.kernel,
                "suites": list(req.suites),
                "filters": list(req.filters),
                "accel": req.accel,
                "transport": req.transport,
                "memory_mib": req.memory_mib,
                "cpus": req.cpus,
            },
        }
        self.done: set[str] = set()
        self.reboots: list[dict[str, object]] = []
        self.all_ids: dict[str, list[str]] = {}
        self.t_guest = self.t0  # when the first guest was asked for
        self.used = False  # a test program ran in the current guest
        self._keys: dict[str, str] = {}  # snapshot cache key per accelerator

    def say(self, msg: str) -> None:
        self.progress(f"[{time.monotonic() - self.t0:7.1f}s] {msg}")

    def record(self, results: list[CaseResult]) -> None:
        """Results into the run (JUnit's source) first, then results.jsonl: a log that cannot
        be written (ReportWriteError, the run stops) loses them from neither report."""
        kept = [bounded(r) for r in results]
        self.outcome.results += kept
        self.done.update(r.id for r in kept)
        for r in kept:
            self.log.append(r)

    def prepare(self) -> list[suites.Selected]:
        image.require_qemu()  # fail fast: before building tests, fetching a kernel, writing an initramfs
        progs = suites.programs(list(self.req.suites), self.req.kernel)
        selected = suites.select(progs, list(self.req.filters))
        # Before self.selected: a --memory too small for the cases is one error line, no report.
        self.memory = hugepages.plan((i for s in selected for i in s.ids), self.req.memory_mib)
        self.selected = selected
        self.all_ids = {p.name: suites.list_ids(p) for p in progs}
        self.kernel = resolve_kernel(self.req.kernel, self.say)
        k = self.kernel
        self.fingerprint["kernel"] = {
            "spec": k.spec,
            "release": k.release,
            "version": str(k.version),
            "origin": k.origin,
            "bzimage": str(k.bzimage),
        }
        if k.config_path:
            shutil.copyfile(k.config_path, self.outcome.run_dir / "kernel-config")
        return self.selected

    def build_guest(self) -> None:
        """The initramfs, disks and machine spec, made once; every (re)boot uses them."""
        assert self.kernel is not None
        rd = self.outcome.run_dir
        files = suites.payload_files(self.selected)
        files.update(suites.kernel_payload(self.kernel, self.selected, self.say, self.req.pinner))
        files["run-test.sh"] = GUEST_DIR / "run-test.sh"
        needs_python = any(s.program.needs_usr for s in self.selected)
        rdma = any(s.program.needs_rdma for s in self.selected)  # rxe on eth0; iproute2 from /usr
        pci_ram_bar = any(s.program.needs_pci_ram_bar for s in self.selected)
        ssh = self.req.transport == "ssh"
        self.keys = None
        if ssh:
            from harness.vm import sshtransport

            self.keys = sshtransport.make_keys(rd)
        # The guest environment the suites are written for (cow_tests/README.md): an ext4 scratch
        # disk, swap, and reserved 2 MiB hugetlb pages.
        drives = disks.make(rd)
        opts = image.GuestOptions(
            nonce=secrets.token_hex(8),
            share_usr=needs_python or ssh or rdma,
            net=ssh,
            disk=True,
            rdma=rdma,
            hugepages=HUGEPAGES_2M,
            authorized_key=self.keys.authorized_line if self.keys else "",
            host_key=self.keys.host_key_bytes if self.keys else b"",
            pinner=self.req.pinner,
            handshake=True,
            pci_ram_bar=pci_ram_bar,
        )
        img = image.build(self.kernel, image.Payload(files), opts, rd / "initramfs.cpio")
        self.spec = machine.MachineSpec(
            kernel=self.kernel,
            image=img,
            run_dir=rd,
            accel=self.req.accel,
            memory_mib=self.memory.memory_mib,
            cpus=self.req.cpus,
            append=self.req.append,
            kernel_args=self.memory.kernel_args,
            drives=drives,
        )
        self.fingerprint["machine"] = {
            "modules_loaded": list(img.modules_loaded),
            "modules_missing": list(img.modules_missing),
            "memory_mib": self.memory.memory_mib,
            "hugepages_1g_asked": self.memory.hugepages_1g,
            "kernel_args": list(self.memory.kernel_args),
        }
        if img.modules_missing and self.kernel.modules_dir is None:
            # Debian 6.19/7.0/7.1 as of 2026-12: linux-binary-X is in the archive, its modules not.
            self.say(
                f"warning: {self.kernel.release} has no modules here, so no "
                f"{', '.join(img.modules_missing)}: the cases that need the scratch disks or "
                "the /usr share cannot run and are reported as unexpected"
            )

    def boot(self) -> machine.Machine:
        m = self._fresh_guest()
        self.machine = m
        self.used = False  # no test program has run in it yet
        info = self.fingerprint["machine"]
        assert isinstance(info, dict)
        if "accel" not in info:
            info.update(
                {
                    "accel": m.accel,
                    "accel_note": m.accel_note,
                    "qemu": qemu.version(m.qspec.qemu),
                    "boot_s": round(m.boot_s, 2),
                }
            )
        self.say(
            f"guest ready under {m.accel.upper()} in {m.boot_s:.2f}s"
            + (" (restored from a snapshot)" if m.restored else "")
        )
        self.transport: Transport = m.console
        if self.keys is not None:
            from harness.vm import sshtransport

            self.transport = sshtransport.connect(m, self.keys, 60.0)
            m.drain_in_background()
        return m

    # ---- fresh guests: restored from the snapshot cache, or booted cold (and then saved) ----

    def _snap_info(self) -> dict[str, object]:
        info = self.fingerprint.setdefault("snapshot", {"mode": self.req.snapshot, "guests": []})
        assert isinstance(info, dict)
        return info

    def _snap_key(self, accel: str) -> str:
        """The cache key for this run's guest under `accel` (computed once per accelerator)."""
        cache = self._keys
        if accel not in cache:
            qspec = machine.qemu_spec(self.spec, accel, image.require_qemu())
            argv = qemu.argv(qspec)
            norm = snapshot.normalized_argv(
                argv, qspec.kernel, qspec.initrd, qspec.monitor_socket, qspec.drives, qspec.ssh_port
            )
            cache[accel], _ = snapshot.snapshot_key(
                kernel=qspec.kernel,
                initrd=qspec.initrd,
                argv=norm,
                qemu_version=qemu.version(qspec.qemu),
                qemu_bin=qspec.qemu,
                accel=accel,
            )
        return cache[accel]

    def _fresh_guest(self) -> machine.Machine:
        info = self._snap_info()
        guests = info["guests"]
        assert isinstance(guests, list)
        t0 = time.monotonic()
        if self.req.snapshot == "off":
            m = self._cold(None)
            guests.append({"how": "cold", "s": round(time.monotonic() - t0, 2)})
            return m
        plan, _ = machine.accel_plan(self.spec.accel)
        key = self._snap_key(plan[0])
        info["key"] = key
        entry, why = snapshot.lookup(key)
        if entry is not None:
            try:
                for src, dst in zip((entry.path / n for n in snapshot.DISKS), self.spec.drives, strict=False):
                    snapshot.copy_sparse(src, dst)
                m = machine.restore(self.spec, entry.vmstate, plan[0], self.say)
                guests.append({"how": "restore", "s": round(time.monotonic() - t0, 2), "key": key})
                return m
            except (MachineError, OSError) as e:
                why = f"restore from {key} failed: {e}"
        if why:
            snapshot.discard(key)  # damaged: a cold boot saves a good one in its place
            self.say(f"{why}; booting cold")
            info["fallback_reason"] = why
        saver = self._saver() if snapshot.writable() else None
        try:
            m = self._cold(saver)
        except MachineError as e:
            if saver is None or not saver.reached:
                raise
            # It reached its snapshot point and broke in the save (the migration, the `cont`
            # after it): the guest itself boots; once more without saving.
            info["save_error"] = f"the guest broke while being saved: {e}"
            self.say(f"the guest broke while being saved ({e}); booting cold without a snapshot")
            m = self._cold(None)
        guests.append({"how": "cold", "s": round(time.monotonic() - t0, 2), **({"why": why} if why else {})})
        return m

    def _cold(self, at_point: machine.AtPoint | None) -> machine.Machine:
        if getattr(self, "machine", None) is not None:
            disks.make(self.outcome.run_dir)  # the lost guest's disks are dirty
        return machine.boot(self.spec, self.say, at_point)

    def _saver(self) -> machine.AtPoint:
        def save(qspec: qemu.QemuSpec, point_uptime: float) -> None:
            info = self._snap_info()
            key = self._snap_key(qspec.accel)
            info["key"] = key
            if snapshot.lookup(key)[0] is not None:
                return  # another run saved it meanwhile
            t0 = time.monotonic()
            w = snapshot.Writer(key)
            try:
                fd = w.vmstate_fd()
                try:
                    machine.save_at_point(qspec, fd)
                finally:
                    os.close(fd)
                w.add_disks(self.spec.drives)
                machine.resume_after_save(qspec)
                assert self.kernel is not None
                e = w.commit(
                    {"kernel": self.kernel.release, "accel": qspec.accel, "point_uptime_s": point_uptime}
                )
                info.update(
                    {"saved": key, "save_s": round(time.monotonic() - t0, 2), "size_bytes": e.size_bytes()}
                )
                self.say(
                    f"guest saved as snapshot {key} ({e.size_bytes() / 2**20:.0f} MiB) "
                    f"in {time.monotonic() - t0:.1f}s"
                )
            except (MachineError, OSError) as e:
                w.abort()
                info["save_error"] = str(e)
                self.say(f"could not save a snapshot: {e}")
                try:
                    machine.resume_after_save(qspec)
                except MachineError:
                    pass

        return machine.AtPoint(save)

    def reboot(self, why: str) -> None:
        if len(self.reboots) >= self.req.max_reboots:
            raise MachineError(f"guest lost {len(self.reboots) + 1} times; last: {why}")
        self.machine.kill()
        t1 = time.monotonic()
        self.say(f"guest lost ({why}); starting a fresh one")
        self.boot()
        self.reboots.append(
            {"why": why, "reboot_s": round(time.monotonic() - t1, 2), "restored": self.machine.restored}
        )

    def run_all(self) -> None:
        facts = self.transport.run(GUEST_FACTS, 60.0)
        self.fingerprint["guest"] = guest = guest_facts(facts.text())
        short = hugepages_1g_shortfall(self.memory.hugepages_1g, guest)
        if short:
            self.say(short)
        self.fingerprint["boot_to_first_test_s"] = round(time.monotonic() - self.t0, 2)
        # From the start of the first guest (booted or restored) to the first test command.
        self.fingerprint["guest_to_first_test_s"] = round(time.monotonic() - self.t_guest, 2)
        (self.outcome.run_dir / "output").mkdir(exist_ok=True)
        queue = deque(self.selected)
        if self.req.isolate == "case":  # one case per guest (a kselftest runs whole: no ids to pick)
            queue = deque()
            for s in self.selected:
                queue += (
                    [suites.Selected(s.program, (i,)) for i in s.ids] if s.program.kind == "harness" else [s]
                )
        isolated: list[dict[str, object]] = []
        while queue:
            sel = queue.popleft()
            if self.req.isolate in ("program", "case") and self.used:
                # A pristine guest for every program: no THP knob, hugetlb page or pin of the
                # program before (restored from the snapshot; cold with --snapshot off).
                t1 = time.monotonic()
                self.machine.kill()
                self.boot()
                isolated.append(
                    {
                        "program": sel.program.name,
                        "cases": len(sel.ids),
                        "s": round(time.monotonic() - t1, 2),
                        "restored": self.machine.restored,
                    }
                )
                self.fingerprint["isolated"] = isolated
            self.used = True
            leftover = self.run_program(sel)
            if leftover:
                queue.appendleft(suites.Selected(sel.program, tuple(leftover)))
        # The whole kernel log, whatever the console loglevel let through during the run.
        # Compressed: the serial console moves ~80 KB/s under TCG.
        log = self.transport.run("dmesg | gzip -1", 60.0).stdout
        (self.outcome.run_dir / "dmesg.log").write_bytes(dmesg_text(log))

    def run_program(self, sel: suites.Selected) -> list[str]:
        """Run one program (or what is left of it); record its results; return the ids that
        must run again (after a hang or a lost guest)."""
        assert self.kernel is not None
        m, prog = self.machine, sel.program
        limit = self.req.timeout_s or prog.timeout_s
        self.say(
            f"running {prog.name} ({'whole program' if prog.kind == 'kselftest' else f'{len(sel.ids)} cases'})"
        )
        off, t1 = m.log_offset(), time.monotonic()
        # No ids means "every case" to a program: shorter, and the common case.
        ids = [] if list(sel.ids) == self.all_ids.get(prog.name) else list(sel.ids)
        argv = ["/harness/run-test.sh", prog.name, *prog.guest_argv(ids)]
        timed_out = False
        try:
            r = self.transport.run(argv, limit)
        except CommandTimeout as e:
            r = e.partial if isinstance(e.partial, CommandResult) else CommandResult(137, b"", b"")
            timed_out = True
        except TransportError as e:  # QEMU died (panic) or the guest stopped answering
            return self.lost_guest(sel, off, e, time.monotonic() - t1)
        dt = time.monotonic() - t1
        self.save_output(prog.name, r)
        err = (
            ""
            if r.rc in (0, 1)
            else f"program exited {r.rc}: {r.stderr.decode(errors='replace').strip()[:300]}"
        )
        if r.note:  # output over the limits: say so where cases went missing, and here
            self.say(f"  {prog.name}: the harness cut its output: {r.note}")
            err = f"{err}; " if err else ""
            err += f"the harness cut the program's output: {r.note}"
        root = ktap.parse(r.stdout.decode("utf-8", "surrogateescape"))
        results = outcomes.case_results(sel, root, self.rules, self.kernel, err)
        broken = ktap.plan_problem(root, len(sel.ids) if prog.kind == "harness" else None)
        if broken:
            results = outcomes.program_invalid(results, broken)
        leftover: list[str] = []
        if timed_out:
            results, leftover = outcomes.after_timeout(sel, results, limit)
        section = self.console_section(off, prog.name)
        slices = None
        if prog.kind == "kselftest":  # its marker lines carry upstream's names, not our ids
            from harness.suites import kselftest

            slices = kselftest.slices(root, prog.id_prefix, section)
        results = outcomes.with_kernel_reports(
            results, section, sel.ids, self.req.fail_on_kernel_report, slices
        )
        self.record([dataclasses.replace(x, duration_s=dt / max(1, len(results))) for x in results])
        bad = sum(1 for x in results if x.verdict.unexpected)
        self.say(
            f"  {prog.name}: {len(results)} cases in {dt:.1f}s, {bad} unexpected"
            + (f"; timed out, {len(leftover)} to run again" if timed_out else "")
        )
        return leftover

    def console_section(self, offset: int, program: str) -> str:
        """The console from `offset` up to the program's end marker. Over SSH the console is
        read by a background thread: give it a moment to catch up with the marker."""
        deadline = time.monotonic() + 5.0
        needle, pos = f"harness: end {program} ".encode(), offset
        while True:
            size = self.machine.log_offset()
            if self.machine.log_has(pos, needle) or time.monotonic() > deadline:
                return self.machine.log_since(offset)
            pos = max(offset, size - len(needle))  # read only what is new on the next look
            time.sleep(0.1)

    def lost_guest(self, sel: suites.Selected, offset: int, err: TransportError, dt: float) -> list[str]:
        assert self.kernel is not None
        m = self.machine
        if isinstance(err, GuestUnresponsive) and m.alive():
            self.say("guest not responding: asking the kernel for task and CPU backtraces")
            try:
                m.dump_backtraces()
            except MachineError as e:
                self.say(f"  could not: {e}")
            why = "the guest stopped responding"
        else:
            m.drain(1.0)
            why = "the guest died (QEMU exited)"
        m.kill()
        section = m.log_since(offset)
        with open(
            self.outcome.run_dir / "output" / f"{sel.program.name}.lost-guest.console", "a", encoding="utf-8"
        ) as f:  # appended: a program can lose the guest twice
            f.write(section)
        results, leftover = outcomes.after_guest_loss(
            sel, section, why, self.rules, self.kernel, self.req.fail_on_kernel_report
        )
        self.record(results)
        self.say(
            f"  {sel.program.name}: {why} after {dt:.1f}s; {len(results)} cases reported, "
            f"{len(leftover)} to run again"
        )
        self.reboot(why)
        return leftover

    def save_output(self, name: str, r: CommandResult) -> None:
        outdir = self.outcome.run_dir / "output"
        try:
            with open(outdir / f"{name}.ktap", "ab") as f:  # appended: a program may run in pieces
                f.write(r.stdout)
            with open(outdir / f"{name}.stderr", "ab") as f:
                f.write(r.stderr)
        except OSError as e:
            raise ReportWriteError(f"cannot write {outdir / name}.*: {e.strerror or e}") from None

    def finish(self, why_missing: str) -> None:
        """Every report, whatever stopped the run: JUnit first (the scratch images go before it,
        which frees 512 MiB on a full disk). A write that fails is said in outcome.error (exit
        2) and the other reports are still written; a JUnit the run dir cannot take goes to
        --junit, then beside the run dir, then to the temp dir."""
        rd = self.outcome.run_dir
        errors: list[str] = []
        try:
            disks.remove(rd)
        except OSError as e:
            errors.append(f"cannot remove the scratch images: {e.strerror or e}")
        missing = [
            bounded(r)
            for sel in self.selected
            for r in outcomes.not_run(sel, self.done, why_missing, self.rules, self.kernel)
        ]
        self.outcome.results += missing
        self.done.update(r.id for r in missing)
        props = {"harness.version": __version__}
        k = self.fingerprint.get("kernel")
        if isinstance(k, dict):
            props.update({f"kernel.{a}": str(b) for a, b in k.items()})
        mach = self.fingerprint.get("machine")
        if isinstance(mach, dict) and "accel" in mach:  # not there when stopped before the boot
            props.update({"accel": str(mach["accel"]), "qemu": str(mach["qemu"])})
        xml = report.junit_xml(self.outcome.results, props)
        self.outcome.summary = report.summary_table(self.outcome.results)
        errors += self._write_junit(xml)
        for r in missing:
            try:
                self.log.append(r)
            except ReportWriteError as e:
                errors.append(str(e))
                break
        self.fingerprint["reboots"] = self.reboots
        self.fingerprint["total_s"] = round(time.monotonic() - self.t0, 2)
        for name, text in (
            ("fingerprint.json", json.dumps(self.fingerprint, indent=2) + "\n"),
            ("summary.txt", self.outcome.summary + "\n"),
        ):
            try:
                reportio.write_text(rd / name, text)
            except ReportWriteError as e:
                errors.append(str(e))
        if errors:
            first = self.outcome.error
            self.outcome.error = "; ".join(([first] if first else []) + errors)
            if self.outcome.exit_code in (0, 1):
                self.outcome.exit_code = 2

    def _write_junit(self, xml: str) -> list[str]:
        """junit.xml into the run dir and the --junit copy; when neither could be written, the
        first of a sibling of the run dir and the temp dir that takes it. Returns the errors."""
        rd, errors = self.outcome.run_dir, []
        written = []
        for path in [rd / "junit.xml", *([self.req.junit] if self.req.junit is not None else [])]:
            try:
                reportio.write_text(path, xml)
                written.append(path)
            except ReportWriteError as e:
                errors.append(str(e))
        if not written:
            for path in (
                rd.parent / f"{rd.name}.junit.xml",
                Path(tempfile.gettempdir()) / f"harness-{rd.name}.junit.xml",
            ):
                try:
                    reportio.write_text(path, xml)
                    reportio.write_text(
                        path.with_name(path.name.replace(".junit.xml", ".summary.txt")),
                        self.outcome.summary + "\n",
                    )
                except ReportWriteError as e:
                    errors.append(str(e))
                    continue
                errors.append(f"junit.xml and summary.txt written to {path.parent} instead")
                break
        return errors


def execute(req: RunRequest, progress: Progress = lambda s: None) -> RunOutcome:
    run = _Run(req, progress)
    try:
        return _execute(run)
    finally:
        run.lock.release()


def _execute(run: _Run) -> RunOutcome:
    why = "not run: the harness stopped before this case"
    try:
        run.outcome.stage = "prepare"
        run.prepare()
        run.outcome.stage = "build_guest"
        run.build_guest()
        run.outcome.stage = "boot"
        run.t_guest = time.monotonic()
        run.boot()
        run.outcome.stage = "run"
        run.run_all()
        run.outcome.stage = "done"
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
        run.outcome.bad_input = isinstance(e, InputError) and run.outcome.stage == "prepare"
        if not run.selected:
            raise e from None
    finally:
        # A second Ctrl-C or SIGTERM while QEMU is stopped and the reports are written is only
        # noted: cutting them short would lose the JUnit.
        with signals.held() as seen:
            m = getattr(run, "machine", None)
            if m is not None:
                # After Ctrl-C or a lost guest the agent may never read a poweroff: kill QEMU.
                m.shutdown() if run.outcome.exit_code == 0 else m.kill()
            if run.selected:
                run.finish(why)
            elif run.outcome.stage:
                disks.remove(run.outcome.run_dir)
        if seen and run.outcome.exit_code in (0, 1, 2):
            run.outcome.exit_code = signals.EXIT_SIGTERM if signal.SIGTERM in seen else signals.EXIT_SIGINT
            run.outcome.error = run.outcome.error or signals.reason(run.outcome.exit_code)
    if run.outcome.exit_code == 0 and any(r.verdict.unexpected for r in run.outcome.results):
        run.outcome.exit_code = 1
    _crosscheck(run.outcome, run.kernel, run.fingerprint)
    return run.outcome


def _crosscheck(
    out: RunOutcome, kernel: Kernel | None = None, fingerprint: dict[str, object] | None = None
) -> None:
    """Our verdicts against upstream's where both suites cover a case, and our two kinds of
    long-term pin (RDMA, gup) against each other; a disagreement is exit 1."""
    from harness.suites import crosscheck

    texts, shown, disagree = [], [], False
    facts = (fingerprint or {}).get("guest")
    if crosscheck.applies(out.results):
        # The guest facts say which filesystems /tmp and the scratch dir are (some pairings need them).
        pairs = crosscheck.pairs(out.results, facts if isinstance(facts, dict) else None)
        texts.append(crosscheck.table(pairs))
        shown.append(texts[-1])
        disagree = bool(crosscheck.disagreements(pairs))
    pp = crosscheck.pinner_pairs(out.results, kernel.version.as_tuple() if kernel is not None else ())
    if pp:
        guest = (fingerprint or {}).get("guest")
        pinner = str(guest.get("pinner", "?")) if isinstance(guest, dict) else "?"
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
