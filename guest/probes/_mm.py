"""ctypes access to the memory syscalls the probes need. Standard library only.

Every call returns what the kernel said (a return value and the errno, read with
use_errno right after the call), never raises for a failed syscall: the probes
report the outcome, they do not assume it.
"""

from __future__ import annotations

import ctypes
import os
from typing import NamedTuple

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

PROT_READ = 0x1
PROT_WRITE = 0x2
MAP_SHARED = 0x01
MAP_FAILED = ctypes.c_void_p(-1).value

# x86-64 syscall numbers.
NR_PERF_EVENT_OPEN = 298


class IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class Ret(NamedTuple):
    value: int  # the return value (-1 on failure for libc wrappers)
    errno: int  # errno right after the call; 0 when it succeeded


_LIBC: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """libc with use_errno, prototypes set for what this module calls."""
    global _LIBC
    if _LIBC is not None:
        return _LIBC
    # dlopen(NULL) finds libc in the interpreter itself; no ldconfig/gcc run
    # (find_library spawns processes, slow on a 9p root under TCG).
    try:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.process_vm_readv  # noqa: B018 (the lookup raises AttributeError where libc lacks it)
    except (OSError, AttributeError):
        lib = ctypes.CDLL("libc.so.6", use_errno=True)
    lib.process_vm_readv.restype = ctypes.c_ssize_t
    lib.process_vm_readv.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(IOVec),
        ctypes.c_ulong,
        ctypes.POINTER(IOVec),
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    lib.mmap.restype = ctypes.c_void_p
    lib.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    lib.munmap.restype = ctypes.c_int
    lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.pwrite.restype = ctypes.c_ssize_t
    lib.pwrite.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
    lib.syscall.restype = ctypes.c_long
    lib.ptrace.restype = ctypes.c_long
    lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    _LIBC = lib
    return lib


def _ret(value: int) -> Ret:
    return Ret(value, ctypes.get_errno() if value < 0 else 0)


def syscall(nr: int, *args: object) -> Ret:
    ctypes.set_errno(0)
    return _ret(libc().syscall(ctypes.c_long(nr), *args))


def mmap(length: int, prot: int, flags: int, fd: int, offset: int = 0) -> Ret:
    """Ret(address, 0) or Ret(-1, errno)."""
    ctypes.set_errno(0)
    addr = libc().mmap(None, length, prot, flags, fd, offset)
    if addr is None or addr == MAP_FAILED:
        return Ret(-1, ctypes.get_errno())
    return Ret(addr, 0)


def munmap(addr: int, length: int) -> None:
    libc().munmap(addr, length)


def pwrite_from(fd: int, addr: int, length: int, offset: int = 0) -> Ret:
    """pwrite() straight from memory at addr (no Python copy: the kernel reads that mapping)."""
    ctypes.set_errno(0)
    return _ret(libc().pwrite(fd, addr, length, offset))


def process_vm_readv_self(addr: int, length: int) -> tuple[Ret, bytes]:
    """process_vm_readv() of our own memory; (result, bytes read)."""
    buf = ctypes.create_string_buffer(length)
    local = IOVec(ctypes.cast(buf, ctypes.c_void_p), length)
    remote = IOVec(ctypes.c_void_p(addr), length)
    ctypes.set_errno(0)
    ret = _ret(libc().process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
    return ret, buf.raw[: max(ret.value, 0)]


def proc_self_mem_read(addr: int, length: int) -> tuple[Ret, bytes]:
    """pread() of /proc/self/mem at addr; (result, bytes read)."""
    try:
        fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return Ret(-1, e.errno or 0), b""
    try:
        data = os.pread(fd, length, addr)
    except OSError as e:
        return Ret(-1, e.errno or 0), b""
    finally:
        os.close(fd)
    return Ret(len(data), 0), data


def proc_self_mem_write(addr: int, data: bytes) -> Ret:
    """pwrite() of data into /proc/self/mem at addr; Ret(bytes written, 0) or Ret(-1, errno)."""
    try:
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return Ret(-1, e.errno or 0)
    try:
        return Ret(os.pwrite(fd, data, addr), 0)
    except OSError as e:
        return Ret(-1, e.errno or 0)
    finally:
        os.close(fd)


PTRACE_PEEKDATA = 2
PTRACE_POKEDATA = 5
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207


def ptrace(request: int, pid: int, addr: int = 0, data: int = 0) -> Ret:
    """ptrace(); for PEEKDATA the word read is the value, and errno tells a failure apart."""
    ctypes.set_errno(0)
    value = libc().ptrace(request, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    return Ret(value, ctypes.get_errno())


def poke(addr: int, data: bytes) -> None:
    """Our own store of data at addr (no GUP involved)."""
    ctypes.memmove(addr, data, len(data))


def peek(addr: int, length: int) -> bytes:
    """Our own load of [addr, addr+length): what the mapping holds, no GUP involved."""
    return ctypes.string_at(addr, length)


class Vma(NamedTuple):
    start: int
    end: int
    fields: dict  # smaps field name -> text after the colon


def smaps_vma(addr: int, pid: str = "self") -> Vma | None:
    """The /proc/<pid>/smaps entry of the VMA that holds addr."""
    found: Vma | None = None
    with open("/proc/%s/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and ":" not in head:
                if found is not None:
                    break
                start, end = (int(x, 16) for x in head.split("-"))
                if start <= addr < end:
                    found = Vma(start, end, {})
                continue
            if found is not None and ":" in line:
                name, _, value = line.partition(":")
                found.fields[name.strip()] = value.strip()
    return found


def vm_flags(addr: int) -> list[str] | None:
    """The two-letter VmFlags of the VMA holding addr (None if not found)."""
    vma = smaps_vma(addr)
    if vma is None or "VmFlags" not in vma.fields:
        return None
    return vma.fields["VmFlags"].split()


def fs_magic(path: str) -> int | None:
    """statfs f_type of path, None if it cannot be read."""

    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]

    st = StatFs()
    lib = libc()
    ctypes.set_errno(0)
    if lib.statfs(os.fsencode(path), ctypes.byref(st)) != 0:
        return None
    return st.f_type & 0xFFFFFFFF
