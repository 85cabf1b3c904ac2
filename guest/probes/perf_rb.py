#!/usr/bin/env python3
"""The perf ring buffer as a source of I/O and of remote reads.

Up to 6.13 a perf ring buffer is a fault-based mapping of ordinary kernel pages
(perf_mmap_fault): GUP works on it, so O_DIRECT from it, process_vm_readv() and
/proc/self/mem reads of it all work. From 6.14 ("perf: map pages in advance",
b709eb872e19) it is mapped in advance as VM_PFNMAP|VM_IO ("pf io" in smaps
VmFlags), GUP refuses it and those fail (EFAULT / EIO). A buffered write() from it
copies with uaccess and works on every kernel. On every kernel the user page
(page 0) of a R/W buffer takes stores and a store into a data page SIGBUSes
(perf_mmap_fault as page_mkwrite; pfn_mkwrite from 6.14).
See docs/semantics.md#perf-ring-buffer.

Every case checks the fault-based (<=6.13) behaviour, the one Debian 6.1 and 6.12
have, and reports what it saw; expectations.yaml marks the cases that change as
expected-fail from 6.14. Each case opens its own PERF_COUNT_SW_DUMMY event
(disabled, so nothing writes to the buffer) and maps 1+1 pages read-write. The
O_DIRECT case writes to a file in $COW_EXT4_DIR (an ext4 directory; SKIP without).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

# Run as a script ("python3 guest/probes/perf_rb.py"), even with -I.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _ktap  # noqa: E402
import _mm  # noqa: E402
from _ktap import diag, errno_name, fail, ok, skip  # noqa: E402

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_DUMMY = 9
PERF_FLAG_FD_CLOEXEC = 8
ATTR_DISABLED = 1 << 0
ATTR_EXCLUDE_KERNEL = 1 << 5
ATTR_EXCLUDE_HV = 1 << 6
EXT4_SUPER_MAGIC = 0xEF53
RB_PAGES = 2  # the user (control) page + one data page


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to config1 (PERF_ATTR_SIZE_VER0, 64 bytes)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    ]


class RingBuffer:
    """A mapped perf ring buffer; `error` says why not when it could not be made."""

    def __init__(self, quiet: bool = False) -> None:
        self.fd = -1
        self.addr = 0
        self.length = RB_PAGES * _mm.PAGE_SIZE
        self.error: str | None = None
        attr = PerfEventAttr(
            type=PERF_TYPE_SOFTWARE,
            size=ctypes.sizeof(PerfEventAttr),
            config=PERF_COUNT_SW_DUMMY,
            flags=ATTR_DISABLED | ATTR_EXCLUDE_KERNEL | ATTR_EXCLUDE_HV,
        )
        r = _mm.syscall(
            _mm.NR_PERF_EVENT_OPEN,
            ctypes.byref(attr),
            ctypes.c_int(0),
            ctypes.c_int(-1),
            ctypes.c_int(-1),
            ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC),
        )
        if r.value < 0:
            self.error = "perf_event_open(PERF_COUNT_SW_DUMMY): %s (perf_event_paranoid %s)" % (
                errno_name(r.errno),
                _read("/proc/sys/kernel/perf_event_paranoid"),
            )
            return
        self.fd = r.value
        m = _mm.mmap(self.length, _mm.PROT_READ | _mm.PROT_WRITE, _mm.MAP_SHARED, self.fd)
        if m.value < 0:
            self.error = "mmap of the perf ring buffer (%d pages): %s" % (RB_PAGES, errno_name(m.errno))
            return
        self.addr = m.value
        if not quiet:
            diag("perf ring buffer: %d pages at 0x%x" % (RB_PAGES, self.addr))

    def content(self) -> bytes:
        """What the mapping holds, read by this process itself (no GUP)."""
        return _mm.peek(self.addr, self.length)

    def close(self) -> None:
        if self.addr:
            _mm.munmap(self.addr, self.length)
        if self.fd >= 0:
            os.close(self.fd)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return "unreadable: %s" % errno_name(e.errno)


def _with_rb(body: Callable[[RingBuffer], _ktap.Outcome]) -> Callable[[], _ktap.Outcome]:
    def run() -> _ktap.Outcome:
        rb = RingBuffer()
        try:
            if rb.error is not None:
                return skip(rb.error)
            return body(rb)
        finally:
            rb.close()

    return run


def _same(what: str, got: bytes, want: bytes) -> bool:
    if got == want:
        diag("%s: %d bytes, same as the buffer" % (what, len(got)))
        return True
    first = next(
        (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want))
    )
    diag("%s: %d bytes, differs from the buffer (%d bytes) at offset %d" % (what, len(got), len(want), first))
    return False


def _tmpfile(directory: str) -> int:
    """An unlinked file in directory (O_TMPFILE, else mkstemp + unlink)."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        import tempfile

        fd, path = tempfile.mkstemp(dir=directory)
        os.unlink(path)
        return fd


def _res(r: _mm.Ret) -> str:
    return "%d (%s)" % (r.value, errno_name(r.errno)) if r.value < 0 else str(r.value)


def _write_and_compare(rb: RingBuffer, fd: int, write_fd: int, how: str) -> _ktap.Outcome:
    want = rb.content()
    r = _mm.pwrite_from(write_fd, rb.addr, rb.length)
    diag("%s pwrite of %d bytes from the ring buffer = %s" % (how, rb.length, _res(r)))
    if r.value < 0:
        return fail("%s write from the perf ring buffer failed: %s" % (how, errno_name(r.errno)))
    if r.value != rb.length:
        return fail(
            "%s write from the perf ring buffer was short: %d of %d bytes" % (how, r.value, rb.length)
        )
    if not _same("file content", os.pread(fd, rb.length, 0), want):
        return fail("the file does not hold what the ring buffer holds")
    return ok("%s write from the perf ring buffer works" % how)


@_with_rb
def case_vmflags(rb: RingBuffer) -> _ktap.Outcome:
    flags = _mm.vm_flags(rb.addr)
    if flags is None:
        return skip("no VmFlags line for the ring buffer in /proc/self/smaps")
    diag("VmFlags: %s" % " ".join(flags))
    pfn = [f for f in flags if f in ("pf", "io")]
    if pfn:
        return fail("the ring buffer VMA is %s (VM_PFNMAP/VM_IO: mapped in advance, 6.14+)" % " ".join(pfn))
    return ok("fault-based ring buffer: no pf/io in VmFlags")


@_with_rb
def case_buffered_write(rb: RingBuffer) -> _ktap.Outcome:
    tmpdir = os.environ.get("COW_TMPDIR") or "/tmp"
    fd = _tmpfile(tmpdir)
    diag("scratch file in %s" % tmpdir)
    try:
        return _write_and_compare(rb, fd, fd, "buffered")
    finally:
        os.close(fd)


@_with_rb
def case_odirect_write(rb: RingBuffer) -> _ktap.Outcome:
    ext4 = os.environ.get("COW_EXT4_DIR") or ""
    if not ext4:
        return skip("COW_EXT4_DIR is not set (needs a directory on an ext4 block device)")
    magic = _mm.fs_magic(ext4)
    if magic != EXT4_SUPER_MAGIC:
        return skip("COW_EXT4_DIR=%s is not ext4 (f_type %s)" % (ext4, "?" if magic is None else hex(magic)))
    fd = _tmpfile(ext4)
    try:
        dio = os.open("/proc/self/fd/%d" % fd, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as e:
        os.close(fd)
        return fail("open(O_DIRECT) of a file in %s: %s" % (ext4, errno_name(e.errno)))
    try:
        return _write_and_compare(rb, fd, dio, "O_DIRECT")
    finally:
        os.close(dio)
        os.close(fd)


def _write_in_child(page: int) -> tuple[int | None, int]:
    """Fork; the child maps a ring buffer of its own (perf VMAs are VM_DONTCOPY: a forked
    child does not inherit the parent's) and stores into page `page` of it the byte that is
    already there. Returns (the signal that killed the child or None, its exit code)."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            rb = RingBuffer(quiet=True)  # a diag line from the child would break the KTAP
            if rb.error is None:
                where = rb.addr + page * _mm.PAGE_SIZE + 8
                ctypes.memmove(where, _mm.peek(where, 1), 1)
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status), -1
    return None, os.WEXITSTATUS(status)


def _signame(sig: int | None) -> str:
    import signal

    return "no signal" if sig is None else signal.Signals(sig).name


@_with_rb
def case_user_page_write(rb: RingBuffer) -> _ktap.Outcome:
    sig, code = _write_in_child(0)
    diag("store into the user page (page 0) of a R/W ring buffer: %s, exit %d" % (_signame(sig), code))
    if sig is not None:
        return fail(
            "a store into the ring buffer's user page killed the process with %s: it must be writable"
            % _signame(sig)
        )
    if code != 0:
        return fail("the child could not map its ring buffer (exit %d)" % code)
    return ok("the user page of a R/W ring buffer is writable")


@_with_rb
def case_data_page_write(rb: RingBuffer) -> _ktap.Outcome:
    import signal

    sig, code = _write_in_child(1)
    diag("store into the data page (page 1) of a R/W ring buffer: %s, exit %d" % (_signame(sig), code))
    if sig == signal.SIGBUS:
        return ok("a store into a data page SIGBUSes (perf refuses write faults past page 0)")
    if sig is None and code == 3:
        return fail("the child could not map its ring buffer")
    return fail(
        "a store into a data page of the ring buffer gave %s, expected SIGBUS"
        % (_signame(sig) if sig is not None else "no fault (the store went through)")
    )


def _remote_read(
    name: str, reader: Callable[[int, int], tuple[_mm.Ret, bytes]]
) -> Callable[[], _ktap.Outcome]:
    """A case: read the ring buffer through a GUP-based path; must return what it holds."""

    @_with_rb
    def run(rb: RingBuffer) -> _ktap.Outcome:
        want = rb.content()
        r, data = reader(rb.addr, rb.length)
        diag("%s of the ring buffer (%d bytes) = %s" % (name, rb.length, _res(r)))
        if r.value < 0:
            return fail(
                "%s of the ring buffer failed: %s (GUP refuses a VM_PFNMAP ring buffer, 6.14+)"
                % (name, errno_name(r.errno))
            )
        if not _same("data read", data, want):
            return fail("%s returned other data than the ring buffer holds" % name)
        return ok("%s reads the fault-based ring buffer" % name)

    return run


CASES = [
    _ktap.Case("probe.perf-rb." + name, run, desc)
    for name, run, desc in (
        (
            "vmflags-no-pfnmap",
            case_vmflags,
            "the perf ring buffer VMA has no pf/io VmFlags (fault-based, <=6.13)",
        ),
        (
            "user-page-write",
            case_user_page_write,
            "a store into the user page (page 0) of a R/W ring buffer works",
        ),
        (
            "data-page-write-sigbus",
            case_data_page_write,
            "a store into a data page of a R/W ring buffer SIGBUSes (perf's page_mkwrite / pfn_mkwrite)",
        ),
        (
            "buffered-write",
            case_buffered_write,
            "a buffered pwrite() from the perf ring buffer works (uaccess)",
        ),
        (
            "odirect-write",
            case_odirect_write,
            "an O_DIRECT pwrite() from the perf ring buffer to ext4 works (GUP, <=6.13)",
        ),
        (
            "process-vm-readv",
            _remote_read("process_vm_readv(self)", _mm.process_vm_readv_self),
            "process_vm_readv of our own perf ring buffer works (GUP, <=6.13)",
        ),
        (
            "proc-self-mem",
            _remote_read("pread of /proc/self/mem", _mm.proc_self_mem_read),
            "pread of /proc/self/mem at our perf ring buffer works (GUP, <=6.13)",
        ),
    )
]

if __name__ == "__main__":
    sys.exit(_ktap.main(CASES))
