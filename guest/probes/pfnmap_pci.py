#!/usr/bin/env python3
"""A PCI memory BAR mmapped through sysfs: GUP refuses it, remote access goes through ->access.

/sys/bus/pci/devices/*/resourceN maps a BAR with io_remap_pfn_range (VM_IO|VM_PFNMAP) and gives
the VMA vm_ops->access = generic_access_phys (with CONFIG_HAVE_IOREMAP_PROT, which x86 has). So,
unlike [vvar] (no ->access: pfnmap_vvar.py), the remote-access paths must still work here:
  process_vm_readv() pins pages (GUP): it must fail with EFAULT;
  pread()/pwrite() of /proc/self/mem and ptrace(PTRACE_PEEKDATA/POKEDATA) go through
  access_remote_vm(): GUP fails, the fallback to ->access must read what was stored through
  the mapping and store what the mapping then shows.
generic_access_phys() looks the PTE up (follow_phys() up to 6.11, follow_pfnmap_start() from
6.12); on debug kernels that path is where 6.12's follow_pfnmap regressions showed.

The BAR is the RAM BAR (BAR2) of the QEMU machine's ivshmem-plain device, which the harness adds
when this probe is selected (QemuSpec.pci_ram_bar) and which no Linux driver claims. Every case
first checks that: the device is there and unclaimed, the mapping is VM_PFNMAP ("pf" in VmFlags)
and the BAR holds what is stored through the mapping (RAM-like); else SKIP with the reason.
Root only (sysfs resource files are 0600).
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable
from typing import NamedTuple

# Run as a script ("python3 guest/probes/pfnmap_pci.py"), even with -I.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _ktap  # noqa: E402
import _mm  # noqa: E402
import _pfnmap  # noqa: E402
from _ktap import diag, errno_name, fail, ok, skip  # noqa: E402

PCI_DEVICES = "/sys/bus/pci/devices"
IVSHMEM = ("0x1af4", "0x1110")  # Red Hat, Inc. Inter-VM shared memory
RAM_BAR = 2
IORESOURCE_MEM = 0x200
WALL = 0x40000000  # waitpid __WALL: a tracee that is not our child
WORD = 8
# Words the ptrace cases read / write: the first, one in the middle, the last of the page.
WORD_OFFSETS = (0, 2048, _mm.PAGE_SIZE - WORD)


def pattern(salt: int, length: int = _mm.PAGE_SIZE) -> bytes:
    """Bytes that differ with the offset and between salts (no two salts give the same page)."""
    return bytes((i * 7 + (i >> 8) + salt * 31 + 1) & 0xFF for i in range(length))


class Bar(NamedTuple):
    device: str  # sysfs directory
    addr: int  # where its first page is mapped
    length: int


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _find_device() -> tuple[str | None, str]:
    """The sysfs directory of the ivshmem device, or (None, why not)."""
    try:
        names = sorted(os.listdir(PCI_DEVICES))
    except OSError as e:
        return None, "%s: %s" % (PCI_DEVICES, errno_name(e.errno))
    for name in names:
        d = os.path.join(PCI_DEVICES, name)
        try:
            ids = (_read(os.path.join(d, "vendor")), _read(os.path.join(d, "device")))
        except OSError:
            continue
        if ids == IVSHMEM:
            return d, ""
    return None, "no ivshmem PCI device (%s:%s) among %d devices: the machine has no RAM BAR to map" % (
        IVSHMEM[0],
        IVSHMEM[1],
        len(names),
    )


def _bar_size(device: str) -> tuple[int, str]:
    """The RAM BAR's size from the device's resource file, or (0, why not)."""
    lines = _read(os.path.join(device, "resource")).splitlines()
    if len(lines) <= RAM_BAR:
        return 0, "resource has no BAR%d line" % RAM_BAR
    start, end, flags = (int(x, 16) for x in lines[RAM_BAR].split()[:3])
    diag("%s BAR%d: 0x%x-0x%x flags 0x%x" % (os.path.basename(device), RAM_BAR, start, end, flags))
    if not flags & IORESOURCE_MEM or end <= start:
        return 0, "BAR%d is not an assigned memory BAR (flags 0x%x)" % (RAM_BAR, flags)
    return end - start + 1, ""


def map_bar() -> tuple[Bar | None, _ktap.Outcome | None]:
    """Map one page of the RAM BAR read-write and check the preconditions; (bar, None) or (None, SKIP)."""
    device, why = _find_device()
    if device is None:
        return None, skip(why)
    if os.path.exists(os.path.join(device, "driver")):
        driver = os.path.basename(os.readlink(os.path.join(device, "driver")))
        return None, skip("%s is claimed by the driver %s: not ours to write" % (device, driver))
    size, why = _bar_size(device)
    if not size:
        return None, skip(why)
    enable = os.path.join(device, "enable")
    if _read(enable) == "0":
        with open(enable, "w") as f:  # memory decoding on; no driver will mind
            f.write("1")
        diag("%s: enabled the device (memory decoding)" % device)
    path = os.path.join(device, "resource%d" % RAM_BAR)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return None, skip("open %s: %s" % (path, errno_name(e.errno)))
    try:
        r = _mm.mmap(_mm.PAGE_SIZE, _mm.PROT_READ | _mm.PROT_WRITE, _mm.MAP_SHARED, fd)
    finally:
        os.close(fd)
    if r.value < 0:
        return None, skip("mmap of %s: %s" % (path, errno_name(r.errno)))
    bar = Bar(device, r.value, _mm.PAGE_SIZE)
    diag("mapped %s (%d kB BAR) at 0x%x" % (path, size // 1024, bar.addr))
    not_pfnmap = _pfnmap.not_a_pfnmap(bar.addr, "the BAR mapping")
    if not_pfnmap is not None:
        _mm.munmap(bar.addr, bar.length)
        return None, not_pfnmap
    probe = pattern(0)
    _mm.poke(bar.addr, probe)
    if _mm.peek(bar.addr, bar.length) != probe:
        _mm.munmap(bar.addr, bar.length)
        return None, skip("the BAR does not read back what was stored through the mapping: not RAM-like")
    return bar, None


def with_bar(body: Callable[[Bar], _ktap.Outcome]) -> Callable[[], _ktap.Outcome]:
    def run() -> _ktap.Outcome:
        bar, outcome = map_bar()
        if bar is None:
            assert outcome is not None
            return outcome
        try:
            return body(bar)
        finally:
            _mm.munmap(bar.addr, bar.length)

    return run


def _first_difference(got: bytes, want: bytes) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return "first difference at byte %d: 0x%02x, expected 0x%02x" % (i, g, w)
    return "lengths %d and %d" % (len(got), len(want))


def case_process_vm_readv(bar: Bar) -> _ktap.Outcome:
    r, _ = _mm.process_vm_readv_self(bar.addr, bar.length)
    diag(
        "process_vm_readv(self, BAR, %d bytes) = %d%s"
        % (bar.length, r.value, ", errno %s" % errno_name(r.errno) if r.value < 0 else " (data was read)")
    )
    if r.value == -1 and r.errno == errno.EFAULT:
        return ok("process_vm_readv (GUP) refuses the PCI BAR pfnmap with EFAULT")
    if r.value < 0:
        return fail("process_vm_readv failed with %s, expected EFAULT" % errno_name(r.errno))
    return fail("process_vm_readv read %d bytes from the BAR: GUP took a VM_PFNMAP page" % r.value)


def case_proc_self_mem_read(bar: Bar) -> _ktap.Outcome:
    want = pattern(1)
    _mm.poke(bar.addr, want)
    r, data = _mm.proc_self_mem_read(bar.addr, bar.length)
    if r.value < 0 and r.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
        return skip("cannot open /proc/self/mem: %s" % errno_name(r.errno))
    if r.value < 0:
        diag("pread(/proc/self/mem, %d bytes at the BAR) failed: %s" % (bar.length, errno_name(r.errno)))
        return fail(
            "/proc/self/mem did not read the BAR (%s): no fallback to vm_ops->access" % errno_name(r.errno)
        )
    diag("pread(/proc/self/mem, %d bytes at the BAR) = %d" % (bar.length, len(data)))
    if data != want:
        return fail(
            "/proc/self/mem read something else than the mapping holds: %s" % _first_difference(data, want)
        )
    return ok("/proc/self/mem reads the BAR through generic_access_phys")


def case_proc_self_mem_write(bar: Bar) -> _ktap.Outcome:
    _mm.poke(bar.addr, pattern(2))
    want = pattern(3)
    r = _mm.proc_self_mem_write(bar.addr, want)
    if r.value < 0 and r.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
        return skip("cannot open /proc/self/mem read-write: %s" % errno_name(r.errno))
    diag(
        "pwrite(/proc/self/mem, %d bytes at the BAR) = %d%s"
        % (bar.length, r.value, ", errno %s" % errno_name(r.errno) if r.value < 0 else "")
    )
    if r.value != bar.length:
        return fail(
            "/proc/self/mem did not write the BAR (%s)"
            % (errno_name(r.errno) if r.value < 0 else "%d bytes" % r.value)
        )
    got = _mm.peek(bar.addr, bar.length)
    if got != want:
        return fail(
            "the mapping does not show the write through /proc/self/mem: %s" % _first_difference(got, want)
        )
    return ok("a write through /proc/self/mem shows in the mapping (generic_access_phys)")


def _traced_by_child(tracer: Callable[[int], int]) -> int:
    """Fork a child that seizes us, stops us, runs tracer(our pid), detaches and exits with
    tracer's code (0 as expected, 1 not, 3 could not trace). Returns that code (-1 if killed)."""
    parent = os.getpid()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            r = _mm.ptrace(_mm.PTRACE_SEIZE, parent)
            if r.value != 0:
                diag("tracer: PTRACE_SEIZE of the probe process: %s" % errno_name(r.errno))
            else:
                _mm.ptrace(_mm.PTRACE_INTERRUPT, parent)
                os.waitpid(parent, WALL)
                code = tracer(parent)
                _mm.ptrace(_mm.PTRACE_DETACH, parent)
        except BaseException:
            for line in traceback.format_exc().splitlines():
                diag("tracer: " + line)
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1


def _word(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + WORD], sys.byteorder)


def case_ptrace_peekdata(bar: Bar) -> _ktap.Outcome:
    want = pattern(4)
    _mm.poke(bar.addr, want)

    def peek(tracee: int) -> int:
        bad = 0
        for off in WORD_OFFSETS:
            r = _mm.ptrace(_mm.PTRACE_PEEKDATA, tracee, bar.addr + off)
            got = r.value & (1 << 64) - 1
            if r.errno:
                diag("tracer: PTRACE_PEEKDATA at BAR+%d: %s" % (off, errno_name(r.errno)))
                bad += 1
            elif got != _word(want, off):
                diag(
                    "tracer: PTRACE_PEEKDATA at BAR+%d = 0x%016x, the mapping holds 0x%016x"
                    % (off, got, _word(want, off))
                )
                bad += 1
            else:
                diag("tracer: PTRACE_PEEKDATA at BAR+%d = 0x%016x, as stored" % (off, got))
        return 1 if bad else 0

    code = _traced_by_child(peek)
    if code == 0:
        return ok("PTRACE_PEEKDATA from a child reads the BAR through generic_access_phys")
    if code == 1:
        return fail("PTRACE_PEEKDATA did not read what the BAR mapping holds")
    return fail("the tracer child could not trace the probe process (exit %d)" % code)


def case_ptrace_pokedata(bar: Bar) -> _ktap.Outcome:
    _mm.poke(bar.addr, pattern(5))
    words = pattern(6)

    def poke(tracee: int) -> int:
        bad = 0
        for off in WORD_OFFSETS:
            r = _mm.ptrace(_mm.PTRACE_POKEDATA, tracee, bar.addr + off, _word(words, off))
            diag(
                "tracer: PTRACE_POKEDATA at BAR+%d = %d%s"
                % (off, r.value, ", errno %s" % errno_name(r.errno) if r.value else "")
            )
            bad += r.value != 0
        return 1 if bad else 0

    code = _traced_by_child(poke)
    if code not in (0, 1):
        return fail("the tracer child could not trace the probe process (exit %d)" % code)
    got = _mm.peek(bar.addr, bar.length)
    want = bytearray(pattern(5))
    for off in WORD_OFFSETS:
        want[off : off + WORD] = words[off : off + WORD]
    if code == 1:
        return fail("PTRACE_POKEDATA into the BAR failed")
    if got != bytes(want):
        return fail(
            "the mapping does not show the PTRACE_POKEDATA words: %s" % _first_difference(got, bytes(want))
        )
    return ok("PTRACE_POKEDATA from a child shows in the BAR mapping, and nothing else changed")


CASES = [
    _ktap.Case(
        "probe.pfnmap.pci-bar.process-vm-readv",
        with_bar(case_process_vm_readv),
        "process_vm_readv of a mmapped PCI BAR (VM_PFNMAP) must fail with EFAULT",
    ),
    _ktap.Case(
        "probe.pfnmap.pci-bar.proc-self-mem-read",
        with_bar(case_proc_self_mem_read),
        "pread of /proc/self/mem at a mmapped PCI BAR reads what the mapping holds",
    ),
    _ktap.Case(
        "probe.pfnmap.pci-bar.proc-self-mem-write",
        with_bar(case_proc_self_mem_write),
        "pwrite of /proc/self/mem at a mmapped PCI BAR shows in the mapping",
    ),
    _ktap.Case(
        "probe.pfnmap.pci-bar.ptrace-peekdata",
        with_bar(case_ptrace_peekdata),
        "PTRACE_PEEKDATA by a child tracer reads the words the BAR mapping holds",
    ),
    _ktap.Case(
        "probe.pfnmap.pci-bar.ptrace-pokedata",
        with_bar(case_ptrace_pokedata),
        "PTRACE_POKEDATA by a child tracer stores words the BAR mapping then shows",
    ),
]

if __name__ == "__main__":
    sys.exit(_ktap.main(CASES))
