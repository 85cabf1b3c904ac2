"""A run directory owned by one run: created, locked for the run's life, and never mixed with
an earlier run's files.

Two runs in one directory corrupt each other (review C3): a second run appends to results.jsonl
(report.html then calls every case FLAKY 1/2), and two at once truncate each other's scratch
disks, rebind monitor.sock and slice each other's console.log. So: an flock on
`.harness.lock` for the whole run (a second run is refused at once), and a directory that
already holds a run's results is refused unless the user says --out-reuse, which removes the
earlier run's files first. The default directory (`harness-runs/<time>-<kernel>`) is never
reused: a fresh one is made.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from harness import limits, reportio
from harness.errors import InputError, ReportWriteError
from harness.report.junit import ResultsLog
from harness.vm import disks
from harness.vm.transport import CommandResult

LOCK_NAME = ".harness.lock"
# What a run (or a matrix run) writes at the top of its directory: present means "a run was
# here". --out-reuse removes exactly these (and the per-kernel job dirs of a matrix), nothing else.
RUN_FILES = (
    "results.jsonl",
    "junit.xml",
    "summary.txt",
    "fingerprint.json",
    "console.log",
    "dmesg.log",
    "qemu-argv.txt",
    "qemu-argv.json",
    "kernel-config",
    "initramfs.cpio",
    "report.html",
    "kcidb.json",
    "crosscheck.txt",
    "matrix.json",
    "monitor.sock",
    "compare.txt",
    "compare.json",
    "compare.html",
    "scratch-ext4.img",
    "scratch-swap.img",
)
RUN_DIRS = ("output", "ssh", "qemu")
_MARKS = ("results.jsonl", "junit.xml", "matrix.json", "console.log")


def make_run_dir(out: Path | None, kernel_spec: str | None) -> Path:
    """Create (if needed) and check a writable run directory; the default one is fresh."""
    if out is None:
        tag = (kernel_spec or "default").replace("/", "_").replace(":", "-")[-40:]
        base = Path("harness-runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
        out, n = base, 1
        while out.exists():  # two runs started in the same second
            n += 1
            out = base.with_name(f"{base.name}-{n}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(f"--out {out}: not a writable directory ({e.strerror})") from None
    return out.resolve()


class RunDirLock:
    """An exclusive flock on the run dir's lock file, held until release() (or the process
    ends: the kernel drops it even after SIGKILL)."""

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / LOCK_NAME
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise InputError(f"--out {run_dir}: cannot create {LOCK_NAME} ({e.strerror})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            self._fd = None
            raise InputError(
                f"--out {run_dir}: another harness run (pid {holder}) is using it; give another directory"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def earlier_run(run_dir: Path) -> str:
    """The file that shows an earlier run used this dir ("" when none did)."""
    return next((m for m in _MARKS if (run_dir / m).exists()), "")


def clear_earlier_run(run_dir: Path, job_dirs: tuple[str, ...] = ()) -> None:
    """Remove what an earlier run wrote here (RUN_FILES, RUN_DIRS, and a matrix's job dirs)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in (*RUN_DIRS, *job_dirs):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def claim(
    out: Path | None, kernel_spec: str | None, reuse: bool, job_dirs: tuple[str, ...] = ()
) -> tuple[Path, RunDirLock]:
    """The run dir for a run, locked: a dir an earlier run left results in is refused unless
    `reuse`, then cleared first."""
    run_dir = make_run_dir(out, kernel_spec)
    lock = RunDirLock(run_dir)
    found = earlier_run(run_dir)
    if found and not reuse:
        lock.release()
        raise InputError(
            f"--out {run_dir}: already holds a run ({found}); give a new directory, "
            "or --out-reuse to replace it"
        )
    if found:
        clear_earlier_run(run_dir, job_dirs)
    return run_dir, lock


class RunDir:
    """Every file one run writes, in its locked directory (see the module doc and RUN_FILES)."""

    def __init__(self, path: Path, lock: RunDirLock) -> None:
        self.path, self.lock = path, lock
        self.results = ResultsLog(path / "results.jsonl")  # appended as each case ends

    @classmethod
    def claim(cls, out: Path | None, kernel_spec: str | None, reuse: bool) -> RunDir:
        return cls(*claim(out, kernel_spec, reuse))

    def release(self) -> None:
        self.lock.release()

    def keep_kernel_config(self, config: Path) -> None:
        shutil.copyfile(config, self.path / "kernel-config")

    def make_disks(self) -> tuple[Path, ...]:
        """The scratch disks (ext4 and swap), made anew: a lost guest's are dirty."""
        return disks.make(self.path)

    def remove_disks(self) -> None:
        disks.remove(self.path)

    def save_output(self, program: str, r: CommandResult) -> None:
        """A program's stdout (KTAP) and stderr, appended: a program may run in pieces."""
        outdir = self.path / "output"
        try:
            outdir.mkdir(exist_ok=True)
            with open(outdir / f"{program}.ktap", "ab") as f:
                f.write(r.stdout)
            with open(outdir / f"{program}.stderr", "ab") as f:
                f.write(r.stderr)
        except OSError as e:
            raise ReportWriteError(f"cannot write {outdir / program}.*: {e.strerror or e}") from None

    def save_lost_console(self, program: str, section: str) -> None:
        """The console of a program that lost the guest, appended: it can lose it twice."""
        outdir = self.path / "output"
        outdir.mkdir(exist_ok=True)
        with open(outdir / f"{program}.lost-guest.console", "a", encoding="utf-8") as f:
            f.write(section)

    def save_dmesg(self, gzipped: bytes) -> None:
        (self.path / "dmesg.log").write_bytes(dmesg_text(gzipped))

    def write(self, name: str, text: str) -> None:
        reportio.write_text(self.path / name, text)

    def write_junit(self, xml: str, summary: str, also: Path | None) -> list[str]:
        """junit.xml into the run dir and the --junit copy; when neither could be written, the
        first of a sibling of the run dir and the temp dir that takes it. Returns the errors."""
        rd, errors = self.path, []
        written = []
        for path in [rd / "junit.xml", *([also] if also is not None else [])]:
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
                        path.with_name(path.name.replace(".junit.xml", ".summary.txt")), summary
                    )
                except ReportWriteError as e:
                    errors.append(str(e))
                    continue
                errors.append(f"junit.xml and summary.txt written to {path.parent} instead")
                break
        return errors


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
