#!/usr/bin/env python3
"""Remote-access paths must refuse a PFN mapping: [vvar] is a convenient one.

GUP refuses VM_IO|VM_PFNMAP areas, and access_remote_vm() can only fall back
to vm_ops->access, which [vvar] does not have. So:
  process_vm_readv() on our own [vvar] fails with EFAULT,
  pread() of /proc/self/mem at [vvar] fails with EIO.
Any other outcome (data read, another errno) is reported as not ok with what
was observed. No [vvar] mapping (other arch, vdso=0) gives SKIP.
"""

import ctypes
import errno
import os
import sys
from typing import Optional

# Run as a script ("python3 guest/probes/pfnmap_vvar.py"), even with -I.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _ktap  # noqa: E402
from _ktap import diag, errno_name, fail, ok, skip  # noqa: E402

VVAR = "[vvar]"


class IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL:
    # dlopen(NULL) finds libc in the interpreter itself; no ldconfig/gcc run
    # (find_library spawns processes, slow on a 9p root under TCG).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.process_vm_readv
        return libc
    except (OSError, AttributeError):
        return ctypes.CDLL("libc.so.6", use_errno=True)


def _vvar() -> Optional[_ktap.Mapping]:
    m = _ktap.find_mapping(VVAR)
    if m is not None:
        diag(
            "%s at 0x%x-0x%x %s (%d pages)"
            % (VVAR, m.start, m.end, m.perms, (m.end - m.start) // os.sysconf("SC_PAGE_SIZE"))
        )
    return m


def case_process_vm_readv() -> _ktap.Outcome:
    m = _vvar()
    if m is None:
        return skip("no %s mapping in /proc/self/maps" % VVAR)
    libc = _libc()
    fn = libc.process_vm_readv
    fn.restype = ctypes.c_ssize_t
    fn.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(IOVec),
        ctypes.c_ulong,
        ctypes.POINTER(IOVec),
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    length = os.sysconf("SC_PAGE_SIZE")
    buf = ctypes.create_string_buffer(length)
    local = IOVec(ctypes.cast(buf, ctypes.c_void_p), length)
    remote = IOVec(ctypes.c_void_p(m.start), length)
    ctypes.set_errno(0)
    ret = fn(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    err = ctypes.get_errno()
    if ret < 0:
        diag("process_vm_readv(self, %s, %d bytes) = %d, errno %s" % (VVAR, length, ret, errno_name(err)))
    else:
        diag("process_vm_readv(self, %s, %d bytes) = %d (data was read)" % (VVAR, length, ret))
    if ret == -1 and err == errno.EFAULT:
        return ok("process_vm_readv refuses the pfnmap with EFAULT")
    if ret < 0:
        return fail("process_vm_readv failed with %s, expected EFAULT" % errno_name(err))
    return fail("process_vm_readv read %d bytes from %s, expected EFAULT" % (ret, VVAR))


def case_proc_self_mem() -> _ktap.Outcome:
    m = _vvar()
    if m is None:
        return skip("no %s mapping in /proc/self/maps" % VVAR)
    length = os.sysconf("SC_PAGE_SIZE")
    try:
        fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return skip("cannot open /proc/self/mem: %s" % errno_name(e.errno))
    try:
        data = os.pread(fd, length, m.start)
    except OSError as e:
        diag("pread(/proc/self/mem, %d bytes at %s) failed: %s" % (length, VVAR, errno_name(e.errno)))
        if e.errno == errno.EIO:
            return ok("/proc/self/mem refuses the pfnmap with EIO")
        return fail("pread of /proc/self/mem failed with %s, expected EIO" % errno_name(e.errno))
    finally:
        os.close(fd)
    diag("pread(/proc/self/mem, %d bytes at %s) = %d (data was read)" % (length, VVAR, len(data)))
    return fail("pread of /proc/self/mem returned %d bytes from %s, expected EIO" % (len(data), VVAR))


CASES = [
    _ktap.Case(
        "probe.pfnmap.vvar.process-vm-readv",
        case_process_vm_readv,
        "process_vm_readv on our own [vvar] mapping must fail with EFAULT",
    ),
    _ktap.Case(
        "probe.pfnmap.vvar.proc-self-mem",
        case_proc_self_mem,
        "pread of /proc/self/mem at [vvar] must fail with EIO",
    ),
]

if __name__ == "__main__":
    sys.exit(_ktap.main(CASES))
