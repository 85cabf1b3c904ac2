"""machine.boot(spec) → Machine: a running QEMU guest with its console (and SSH) transport.

Accelerator `auto` uses KVM when it *works*: /dev/kvm opening is not enough (nested KVM can
die in the decompressor with "KVM internal error ... emulation failure"), so a KVM boot that
reports that, or shows no sign of life within kvm_probe_s, is retried under TCG.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from harness import safetext
from harness.errors import AccelUnusable, BootPanic, BootTimeout, InputError, MachineError
from harness.limits import MAX_CONSOLE_SECTION_BYTES, dropped_note
from harness.model import Kernel, Progress
from harness.paths import cache_dir
from harness.vm import qemu
from harness.vm.console import ConsoleTransport
from harness.vm.consolelog import ConsoleLog
from harness.vm.image import GuestImage, GuestOptions, require_qemu
from harness.vm.qemu import QemuSpec, Share

_KVM_DEAD = re.compile(
    rb"KVM internal error|kvm run failed|failed to initialize kvm|Could not access KVM", re.I
)
_LIFE = re.compile(rb"Decompressing Linux|Linux version|harness-ready")
_PANIC = re.compile(rb"Kernel panic - not syncing[^\r\n]*")


@dataclass(frozen=True)
class MachineSpec:
    kernel: Kernel
    image: GuestImage
    run_dir: Path
    accel: str = "auto"  # auto | kvm | tcg
    memory_mib: int = 1024
    cpus: int = 2
    boot_timeout_s: float = 300.0
    kvm_probe_s: float = 15.0
    append: str = ""  # extra kernel command line (the user's, last)
    kernel_args: tuple[str, ...] = ()  # the harness's own, e.g. boot-time hugetlb pools
    drives: tuple[Path, ...] = field(default=())
    ro_drives: tuple[Path, ...] = field(default=())  # the userspace image (--userspace image)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cmdline(append: str = "", kernel_args: tuple[str, ...] = ()) -> str:
    # panic=-1 with -no-reboot: a panicking guest makes QEMU exit instead of hanging.
    # loglevel=5: warnings and worse (every kernel splat, and the "harness:" case markers the
    # guest writes at level 4) reach the console even if the guest dies; chattier boot
    # messages stay in dmesg. printk.devkmsg=on: the markers must never be rate-limited.
    base = "console=ttyS0,115200 rdinit=/init panic=-1 8250.nr_uarts=1 loglevel=5 printk.devkmsg=on"
    # The user's --append goes last: where a parameter is given twice, the kernel mostly keeps
    # the last one.
    return " ".join([base, *kernel_args, append]).strip()


_SUN_PATH_MAX = 107  # bytes of a unix socket path (sun_path is 108, NUL included)


MONITOR_DIR = "qemu"  # in the run dir, mode 0700: the HMP monitor can run `migrate "exec:..."`


def monitor_socket_path(run_dir: Path) -> Path:
    """The monitor socket in a private (0700) directory of the run dir, or, when that path is
    too long for a unix socket (QEMU would not start), in a private directory under the temp
    dir (removed with the machine). QEMU creates the socket 0600 (its umask is 077: _start)."""
    path = run_dir / MONITOR_DIR / "monitor.sock"
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path.parent, 0o700)  # an older run's dir, or a umask that cut the mode
        return path
    return Path(tempfile.mkdtemp(prefix="harness-mon-")) / "monitor.sock"


def qemu_spec(spec: MachineSpec, accel: str, qemu_bin: str) -> QemuSpec:
    opts = spec.image.options
    return QemuSpec(
        qemu=qemu_bin,
        kernel=spec.kernel.bzimage,
        initrd=spec.image.initramfs,
        cmdline=cmdline(spec.append, spec.kernel_args),
        accel=accel,
        memory_mib=spec.memory_mib,
        cpus=spec.cpus,
        shares=(Share(Path("/usr"), "hostusr"),) if opts.share_usr else (),
        ssh_port=_free_port() if opts.net else None,
        nic=opts.rdma,
        monitor_socket=monitor_socket_path(spec.run_dir),
        drives=spec.drives,
        ro_drives=spec.ro_drives,
        sandbox=qemu.sandbox_supported(qemu_bin),
        vmgenid=opts.handshake,
        pci_ram_bar=opts.pci_ram_bar,
    )


def _kvm_verdict_file() -> Path:
    # Keyed by the host's boot id: a KVM found broken stays broken until the host reboots.
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    return cache_dir() / f"kvm-broken-{boot_id}"


def accel_plan(accel: str) -> tuple[list[str], str]:
    """Accelerators to try in order, and a note on why KVM is left out (if it is)."""
    if accel in ("kvm", "tcg"):
        return [accel], ""
    if accel != "auto":
        raise InputError(f"--accel {accel}: expected auto, kvm or tcg")
    if not qemu.kvm_openable():
        return ["tcg"], "kvm: /dev/kvm cannot be opened"
    known = _kvm_verdict_file()
    if known.is_file():
        return [
            "tcg"
        ], f"kvm: known broken on this host boot ({known.read_text().strip()}; delete {known} to retry)"
    return ["kvm", "tcg"], ""


def _remember_kvm_broken(why: str) -> None:
    try:
        f = _kvm_verdict_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(why + "\n")
    except OSError:
        pass  # only an optimisation: next run probes KVM again


class Machine:
    def __init__(
        self,
        spec: MachineSpec,
        qspec: QemuSpec,
        child: pexpect.spawn,
        log: ConsoleLog,
        boot_s: float,
        accel_note: str,
    ) -> None:
        self.spec, self.qspec, self.child, self._log = spec, qspec, child, log
        self.accel = qspec.accel
        self.accel_note = accel_note
        self.boot_s = boot_s
        self.console = ConsoleTransport(child)
        self._stop_drain = threading.Event()
        self._drain_thread: threading.Thread | None = None
        self.checks: Checks | None = None  # what a guest with a snapshot point reported past it
        self.restored = False

    @property
    def qemu_version(self) -> str:
        return qemu.version(self.qspec.qemu)

    def alive(self) -> bool:
        return bool(self.child.isalive())

    @property
    def console_log(self) -> Path:
        return self.spec.run_dir / "console.log"

    def log_offset(self) -> int:
        return self.console_log.stat().st_size

    def log_since(self, offset: int, limit: int = MAX_CONSOLE_SECTION_BYTES) -> str:
        """The console from `offset` on, at most `limit` bytes of it (head and tail)."""
        with open(self.console_log, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset)
            if size - offset <= limit:
                data = f.read()
            else:
                head = f.read(limit // 2)
                f.seek(size - limit // 2)
                dropped = size - offset - limit
                data = head + b"\n" + dropped_note(dropped).encode() + b"\n" + f.read()
        return data.decode("utf-8", "replace")

    def log_has(self, offset: int, needle: bytes) -> bool:
        """Whether the console from `offset` on holds `needle` (read in pieces, never whole)."""
        chunk = 1 << 20
        with open(self.console_log, "rb") as f:
            f.seek(offset)
            carry = b""
            while piece := f.read(chunk):
                if needle in carry + piece:
                    return True
                carry = piece[-len(needle) :]
        return False

    def drain(self, seconds: float) -> None:
        """Read the console for `seconds` (into console.log), e.g. while the kernel dumps stacks."""
        deadline = time.monotonic() + seconds
        while self.child.isalive() and (left := deadline - time.monotonic()) > 0:
            try:
                self.child.read_nonblocking(65536, timeout=min(left, 0.5))
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError):
                break

    def drain_in_background(self) -> None:
        """Keep reading the console while another transport (SSH) is used: an unread serial
        port would fill up and stall the guest's printk."""

        def loop() -> None:
            while self.child.isalive() and not self._stop_drain.is_set():
                self.drain(0.5)

        self._drain_thread = threading.Thread(target=loop, name="console-drain", daemon=True)
        self._drain_thread.start()

    def _stop_draining(self) -> None:
        self._stop_drain.set()
        if self._drain_thread is not None:
            self._drain_thread.join(timeout=5.0)  # pexpect is not thread-safe: one reader at a time
            self._drain_thread = None

    def monitor(self, command: str, timeout_s: float = 5.0) -> str:
        """One HMP command on the monitor socket; returns QEMU's answer."""
        return monitor_command(self.qspec, command, timeout_s)

    def dump_backtraces(self) -> None:
        """The kernel stopped answering: ask it for blocked tasks and every CPU's backtrace
        (magic sysrq through the emulated keyboard: an interrupt, which still runs when
        userspace is starved), then, if nothing came, an NMI."""
        before = self.log_offset()
        for key in ("w", "l"):
            self.monitor(f"sendkey alt-sysrq-{key}")
            self.drain(4.0)
        if "sysrq" not in self.log_since(before).lower():
            self.monitor("nmi")
            self.drain(4.0)

    def kill(self) -> None:
        """Stop QEMU now (Ctrl-C, a lost guest): no clean poweroff."""
        self._stop_draining()
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
        self._log.close()
        self._remove_private_dirs()

    def _remove_private_dirs(self) -> None:
        """The temp dir a too-long monitor socket path had to use (monitor_socket_path)."""
        mon = self.qspec.monitor_socket
        if mon is not None and mon.parent.name.startswith("harness-mon-"):
            shutil.rmtree(mon.parent, ignore_errors=True)

    def shutdown(self, timeout_s: float = 20.0) -> None:
        """Power the guest off; kill QEMU if it does not go. Safe to call twice."""
        self._stop_draining()
        if self.child.isalive():
            try:
                self.console.send_only("sync; poweroff -f")
                expect_bounded(self.child, [], timeout_s)
            except (pexpect.TIMEOUT, OSError):
                pass
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
        self._log.close()
        self._remove_private_dirs()


def monitor_command(qspec: QemuSpec, command: str, timeout_s: float = 5.0, fd: int | None = None) -> str:
    """One HMP command on `qspec`'s monitor socket (with `fd` passed along, for getfd)."""
    path = qspec.monitor_socket
    if path is None:
        raise MachineError("this machine has no monitor socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            _read_until_prompt(sock)
            if fd is None:
                sock.sendall(command.encode() + b"\n")
            else:
                socket.send_fds(sock, [command.encode() + b"\n"], [fd])
            return _read_until_prompt(sock).decode("utf-8", "replace")
        except OSError as e:
            raise MachineError(f"QEMU monitor: {command!r} failed: {e}") from None


def _read_until_prompt(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"(qemu) "):
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def _write_argv(run_dir: Path, argv: list[str], attempt: int) -> None:
    (run_dir / "qemu-argv.json").write_text(json.dumps(argv, indent=1) + "\n")
    with open(run_dir / "qemu-argv.txt", "a") as f:
        f.write(f"# attempt {attempt}\n{shlex.join(argv)}\n")


def _start(spec: MachineSpec, qspec: QemuSpec, log: ConsoleLog, attempt: int) -> pexpect.spawn:
    argv = qemu.argv(qspec)
    _write_argv(spec.run_dir, argv, attempt)
    log.write(f"\n=== harness: boot attempt {attempt}, accel={qspec.accel} ===\n".encode())
    # A minimal environment, and umask 077: what QEMU creates (the monitor socket) is 0600.
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        timeout=None,
        maxread=65536,
        echo=False,
        env=qemu.environment(),
        preexec_fn=lambda: os.umask(0o077),
    )
    child.logfile_read = log
    return child


# What the boot wait keeps of the console (in console.log all the same): enough for a panic's
# report and the lines before it; a kernel flooding its console during boot costs no more.
_BOOT_WINDOW_BYTES = 1 << 20
_BOOT_OVERLAP_BYTES = 4096  # a line that straddles two reads is searched again whole
EOF_SEEN, TIMED_OUT = -1, -2


def expect_bounded(
    child: pexpect.spawn, patterns: list[re.Pattern[bytes]], timeout_s: float
) -> tuple[int, re.Match[bytes] | None, bytes]:
    """pexpect's expect in linear time and bounded memory: (index of the pattern that matched
    first, its match, the console up to the match's end, at most _BOOT_WINDOW_BYTES of it), or
    (EOF_SEEN | TIMED_OUT, None, the last of the console). pexpect itself keeps and rescans
    everything before a match."""
    deadline = time.monotonic() + timeout_s
    window = bytearray(child.buffer)
    child.buffer = b""
    scanned = 0
    while True:
        found: tuple[int, re.Match[bytes]] | None = None
        for i, p in enumerate(patterns):
            m = p.search(window, max(0, scanned - _BOOT_OVERLAP_BYTES))
            if m is not None and (found is None or m.start() < found[1].start()):
                found = (i, m)
        if found is not None:
            child.buffer = bytes(window[found[1].end() :])
            return found[0], found[1], bytes(window[: found[1].end()])
        if len(window) > _BOOT_WINDOW_BYTES:
            del window[: len(window) - _BOOT_WINDOW_BYTES]
        scanned = len(window)
        left = deadline - time.monotonic()
        if left <= 0:
            return TIMED_OUT, None, bytes(window)
        try:
            window += child.read_nonblocking(65536, timeout=min(left, 1.0))
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            return EOF_SEEN, None, bytes(window)


_POINT = re.compile(rb"harness-snapshot-point:([0-9.]+):")


@dataclass
class AtPoint:
    """What the host does at the guest's snapshot point before the guest goes on: save the
    machine (a cold boot whose snapshot is to be cached), given the QEMU spec (monitor socket)
    and the guest's uptime there. `reached` says the guest got that far (a boot that breaks
    after it broke in the save, not in the boot)."""

    save: Callable[[QemuSpec, float], None]
    reached: bool = False


@dataclass(frozen=True)
class Checks:
    """What a guest past its snapshot point reported (guest/init's harness-checks line)."""

    point_uptime_s: float
    uptime_s: float
    clock_s: int
    scratch: str  # the scratch filesystem's entries, "lost+found," when clean

    def problems(self, sent_clock_s: float, scratch_disk: bool) -> list[str]:
        """Why a restored guest is not to be trusted (pure; empty: it is)."""
        out = []
        if self.uptime_s < self.point_uptime_s:
            out.append(f"uptime went back ({self.uptime_s} < {self.point_uptime_s} at the snapshot)")
        if abs(self.clock_s - sent_clock_s) > 60:
            out.append(f"guest clock {self.clock_s} is not the host's {int(sent_clock_s)}")
        if scratch_disk and self.scratch != "lost+found,":
            out.append(f"scratch filesystem not clean: {self.scratch or 'not mounted'}")
        return out


def go_line(opts: GuestOptions, clock_s: float) -> str:
    """The line that takes a guest past its snapshot point with this run's secrets."""
    ak = base64.b64encode(opts.authorized_key.encode()).decode() if opts.net else "-"
    hk = base64.b64encode(opts.host_key).decode() if opts.net else "-"
    return f"harness-go {opts.nonce} {int(clock_s)} {secrets.token_hex(32)} {ak} {hk}"


def _past_point(child: pexpect.spawn, spec: MachineSpec, point_uptime: float, timeout_s: float) -> Checks:
    """Send the go line; wait for the checks and the ready line."""
    nonce = spec.image.options.nonce.encode()
    now = time.time()
    child.send(go_line(spec.image.options, now) + "\n")
    ready = re.compile(rb"harness-ready:" + re.escape(nonce) + rb":")
    i, m, seen = expect_bounded(child, [ready, _PANIC], timeout_s)
    _raise_unready(i, m, seen, timeout_s)
    c = re.search(rb"harness-checks:" + re.escape(nonce) + rb":([0-9.]+):(\d+):([^:\r\n]*):", seen)
    if c is None:
        raise MachineError("the guest went past its snapshot point without its checks line")
    return Checks(point_uptime, float(c.group(1)), int(c.group(2)), c.group(3).decode("utf-8", "replace"))


def _raise_unready(i: int, m: re.Match[bytes] | None, seen: bytes, timeout_s: float) -> None:
    if i == 0:
        return
    if i == 1 and m is not None:
        line = safetext.terminal_line(m.group(0).decode("utf-8", "replace"))
        raise BootPanic(f"kernel panicked during boot: {line}", seen)
    if i == EOF_SEEN:
        raise MachineError("QEMU exited before the guest was ready (see console.log)")
    raise BootTimeout(f"guest not ready within {timeout_s:.0f}s (see console.log)")


def _wait_ready(
    child: pexpect.spawn,
    spec: MachineSpec,
    accel: str,
    qspec: QemuSpec | None = None,
    at_point: AtPoint | None = None,
) -> Checks | None:
    nonce = spec.image.options.nonce.encode()
    ready = re.compile(rb"harness-ready:" + re.escape(nonce) + rb":")
    if accel == "kvm":
        i, _, _ = expect_bounded(child, [ready, _KVM_DEAD, _LIFE], spec.kvm_probe_s)
        if i == 0:
            return None
        if i == 1:
            raise AccelUnusable("KVM internal error (nested virtualization?)")
        if i == EOF_SEEN:
            raise AccelUnusable("QEMU exited under KVM before the kernel started")
        if i == TIMED_OUT:
            raise AccelUnusable(f"no sign of life under KVM within {spec.kvm_probe_s:.0f}s")
    i, m, seen = expect_bounded(child, [ready, _KVM_DEAD, _PANIC, _POINT], spec.boot_timeout_s)
    if i == 0:
        return None
    if i == 1 and accel == "kvm":
        raise AccelUnusable("KVM internal error (nested virtualization?)")
    if i == 3 and m is not None:
        up = float(m.group(1))
        if at_point is not None and qspec is not None:
            at_point.reached = True
            at_point.save(qspec, up)
        return _past_point(child, spec, up, spec.boot_timeout_s)
    _raise_unready({2: 1, 1: TIMED_OUT}.get(i, i), m, seen, spec.boot_timeout_s)
    return None


def tcg_text_poke_flake(console: bytes) -> bool:
    """A boot panic that is QEMU's, not the kernel's (pure): under multi-threaded TCG a vCPU can
    still execute an int3 that the kernel's text patching (jump labels, static calls) planted
    and already removed (its translated code is stale), and the kernel oopses on an int3 that
    is in no patch table ("Oops: int3" in the idle loop during boot; seen once in ~100 boots of
    Debian 6.12.117 on QEMU 7.2, 2 vCPUs). Such a boot is retried once; a real boot panic comes
    back the second time."""
    return b"Oops: int3" in console


def boot(spec: MachineSpec, progress: Progress = lambda s: None, at_point: AtPoint | None = None) -> Machine:
    """A cold boot. A guest with a snapshot point (GuestOptions.handshake) calls `at_point`
    there (to save it), then gets its secrets."""
    qemu_bin = require_qemu()
    log = ConsoleLog(spec.run_dir / "console.log")
    try:
        return _boot(spec, qemu_bin, log, progress, at_point)
    except BaseException:  # Ctrl-C or SIGTERM while waiting for the boot too: no QEMU left
        log.close()
        raise


def _boot(
    spec: MachineSpec, qemu_bin: str, log: ConsoleLog, progress: Progress, at_point: AtPoint | None
) -> Machine:
    plan, skipped = accel_plan(spec.accel)
    plan = list(plan)
    notes = [skipped] if skipped else []
    retried = False
    for attempt, accel in enumerate(plan, start=1):
        qspec = qemu_spec(spec, accel, qemu_bin)
        progress(f"booting {spec.kernel.release} under {accel.upper()}")
        t0 = time.monotonic()
        child = _start(spec, qspec, log, attempt)
        try:
            try:
                checks = _wait_ready(child, spec, accel, qspec, at_point)
            except BaseException:
                child.terminate(force=True)
                child.close()
                raise
        except AccelUnusable as e:
            notes.append(f"kvm unusable: {e}")
            if attempt == len(plan):
                raise
            _remember_kvm_broken(str(e))
            progress(f"KVM does not work here ({e}); falling back to TCG")
            continue
        except MachineError as e:
            if isinstance(e, BootPanic) and accel == "tcg" and not retried and tcg_text_poke_flake(e.console):
                retried = True
                notes.append(f"tcg boot panic, retried once: {e}")
                progress(f"{e} (int3 from code patching: a TCG cross-modifying-code flake); booting again")
                plan.append("tcg")
                continue
            raise
        m = Machine(spec, qspec, child, log, time.monotonic() - t0, "; ".join(notes))
        m.checks = checks
        return m
    raise MachineError("no accelerator to try")  # unreachable: plan is never empty


def save_at_point(qspec: QemuSpec, vmstate_fd: int, timeout_s: float = 120.0) -> None:
    """Migrate the running machine's RAM and device state into `vmstate_fd` (the VM stops);
    it stays stopped for the caller to copy the disks, then resume_after_save()."""
    monitor_command(qspec, "migrate_set_parameter max-bandwidth 64G")
    monitor_command(qspec, "migrate_set_parameter downtime-limit 60000")
    answer = monitor_command(qspec, "getfd harness-snap", fd=vmstate_fd)
    if "rror" in answer:
        raise MachineError(f"QEMU getfd: {answer.strip()}")
    answer = monitor_command(qspec, "migrate -d fd:harness-snap")
    if "rror" in answer:
        raise MachineError(f"QEMU migrate: {answer.strip()}")
    deadline = time.monotonic() + timeout_s
    while True:
        info = monitor_command(qspec, "info migrate")
        if "Migration status: completed" in info:
            return
        if re.search(r"Migration status: (failed|cancelled)", info):
            raise MachineError(f"saving the guest failed: {safetext.terminal_line(info.strip()[-300:])}")
        if time.monotonic() > deadline:
            monitor_command(qspec, "migrate_cancel")
            raise MachineError(f"saving the guest took over {timeout_s:.0f}s")
        time.sleep(0.05)


def resume_after_save(qspec: QemuSpec) -> None:
    """Run the saved machine on (`cont` takes the disks back from the finished migration)."""
    answer = monitor_command(qspec, "cont")
    if "rror" in answer:
        raise MachineError(f"QEMU cont after the save: {answer.strip()}")


def restore(
    spec: MachineSpec, vmstate: Path, accel: str, progress: Progress = lambda s: None, timeout_s: float = 30.0
) -> Machine:
    """A machine restored from `vmstate` (saved at the snapshot point of a guest made from the
    same kernel, initramfs and QEMU command line; spec.drives hold the disks saved with it),
    given this run's secrets and checked. MachineError when anything is off: the caller boots
    cold instead."""
    qemu_bin = require_qemu()
    log = ConsoleLog(spec.run_dir / "console.log")
    qspec = qemu_spec(spec, accel, qemu_bin)
    assert qspec.monitor_socket is not None
    qspec.monitor_socket.unlink(missing_ok=True)  # an earlier guest's (--out-reuse, a reboot)
    argv = qemu.argv(qspec) + ["-incoming", "defer"]
    _write_argv(spec.run_dir, argv, 0)
    log.write(f"\n=== harness: restore from {vmstate}, accel={accel} ===\n".encode())
    progress(f"restoring {spec.kernel.release} from a snapshot")
    t0 = time.monotonic()
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        timeout=None,
        maxread=65536,
        echo=False,
        env=qemu.environment(),
        preexec_fn=lambda: os.umask(0o077),
    )
    child.logfile_read = log
    try:
        while True:  # the socket file comes before QEMU listens on it
            try:
                monitor_command(qspec, "info status")
                break
            except MachineError:
                if not child.isalive() or time.monotonic() - t0 > timeout_s:
                    raise MachineError("QEMU did not start for the restore (see console.log)") from None
                time.sleep(0.005)
        fd = os.open(vmstate, os.O_RDONLY)
        try:
            answer = monitor_command(qspec, "getfd harness-snap", fd=fd)
        finally:
            os.close(fd)
        if "rror" in answer:
            raise MachineError(f"QEMU getfd: {answer.strip()}")
        answer = monitor_command(qspec, "migrate_incoming fd:harness-snap")
        if "rror" in answer:
            raise MachineError(f"QEMU migrate_incoming: {answer.strip()}")
        while True:
            status = monitor_command(qspec, "info status") if child.isalive() else ""
            if "running" in status:
                break
            if not child.isalive():
                child.expect(pexpect.EOF, timeout=2)
                raise MachineError(
                    f"QEMU could not load the snapshot: "
                    f"{safetext.terminal_line(child.before.decode('utf-8', 'replace').strip()[-300:])}"
                )
            if time.monotonic() - t0 > timeout_s:
                raise MachineError(f"loading the snapshot took over {timeout_s:.0f}s ({status.strip()})")
            time.sleep(0.005)
        point = float(json.loads((vmstate.parent / "meta.json").read_text()).get("point_uptime_s", 0))
        checks = _past_point(child, spec, point, timeout_s)
        bad = checks.problems(time.time(), spec.image.options.disk)
        if bad:
            raise MachineError("restored guest failed its checks: " + "; ".join(bad))
    except BaseException:
        child.terminate(force=True)
        child.close()
        log.close()
        raise
    m = Machine(spec, qspec, child, log, time.monotonic() - t0, "")
    m.checks, m.restored = checks, True
    return m
