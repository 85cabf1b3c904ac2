#!/usr/bin/env python3
"""Remote-access paths must refuse a PFN mapping: [vvar] is a convenient one.

GUP refuses VM_IO|VM_PFNMAP areas, and access_remote_vm() can only fall back
to vm_ops->access, which [vvar] does not have. So:
  process_vm_readv() on our own [vvar] fails with EFAULT,
  pread() of /proc/self/mem at [vvar] fails with EIO.
Any other outcome (data read, another errno) is reported as not ok with what
was observed. No [vvar] mapping (other arch, vdso=0) gives SKIP, and so does a [vvar]
that is not VM_PFNMAP (no "pf" in its VmFlags): newer kernels map the vDSO data VM_MIXEDMAP
(7.2 with VM_IO, 7.3 with ordinary pages), and then it is not the pfnmap the case is about.
"""

import errno
import os
import sys

# Run as a script ("python3 guest/probes/pfnmap_vvar.py"), even with -I.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _ktap  # noqa: E402
import _mm  # noqa: E402
import _pfnmap  # noqa: E402
from _ktap import diag, errno_name, fail, ok, skip  # noqa: E402

VVAR = "[vvar]"


def _vvar() -> _ktap.Mapping | None:
    m = _ktap.find_mapping(VVAR)
    if m is not None:
        diag(
            "%s at 0x%x-0x%x %s (%d pages)"
            % (VVAR, m.start, m.end, m.perms, (m.end - m.start) // _mm.PAGE_SIZE)
        )
    return m


def _not_a_pfnmap(m: _ktap.Mapping) -> _ktap.Outcome | None:
    """SKIP unless [vvar] really is VM_PFNMAP, what the case is named after: up to 6.18 it is
    "pf io"; 7.2 maps it VM_MIXEDMAP|VM_IO ("io mm"), 7.3 VM_MIXEDMAP with ordinary pages."""
    return _pfnmap.not_a_pfnmap(m.start, VVAR)


def case_process_vm_readv() -> _ktap.Outcome:
    m = _vvar()
    if m is None:
        return skip("no %s mapping in /proc/self/maps" % VVAR)
    not_pfnmap = _not_a_pfnmap(m)
    if not_pfnmap is not None:
        return not_pfnmap
    r, _ = _mm.process_vm_readv_self(m.start, _mm.PAGE_SIZE)
    if r.value < 0:
        diag(
            "process_vm_readv(self, %s, %d bytes) = %d, errno %s"
            % (VVAR, _mm.PAGE_SIZE, r.value, errno_name(r.errno))
        )
    else:
        diag("process_vm_readv(self, %s, %d bytes) = %d (data was read)" % (VVAR, _mm.PAGE_SIZE, r.value))
    if r.value == -1 and r.errno == errno.EFAULT:
        return ok("process_vm_readv refuses the pfnmap with EFAULT")
    if r.value < 0:
        return fail("process_vm_readv failed with %s, expected EFAULT" % errno_name(r.errno))
    return fail("process_vm_readv read %d bytes from %s, expected EFAULT" % (r.value, VVAR))


def case_proc_self_mem() -> _ktap.Outcome:
    m = _vvar()
    if m is None:
        return skip("no %s mapping in /proc/self/maps" % VVAR)
    not_pfnmap = _not_a_pfnmap(m)
    if not_pfnmap is not None:
        return not_pfnmap
    r, data = _mm.proc_self_mem_read(m.start, _mm.PAGE_SIZE)
    if r.value < 0 and r.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
        return skip("cannot open /proc/self/mem: %s" % errno_name(r.errno))
    if r.value < 0:
        diag("pread(/proc/self/mem, %d bytes at %s) failed: %s" % (_mm.PAGE_SIZE, VVAR, errno_name(r.errno)))
        if r.errno == errno.EIO:
            return ok("/proc/self/mem refuses the pfnmap with EIO")
        return fail("pread of /proc/self/mem failed with %s, expected EIO" % errno_name(r.errno))
    diag("pread(/proc/self/mem, %d bytes at %s) = %d (data was read)" % (_mm.PAGE_SIZE, VVAR, len(data)))
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
