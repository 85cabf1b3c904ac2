"""The precondition every pfnmap probe case shares: the mapping it works on is VM_PFNMAP.

A case named after a pfnmap ("probe.pfnmap.*") tests what GUP and the remote-access paths do
with a VM_PFNMAP area. /proc/self/smaps shows that flag as "pf" in VmFlags; without it (an
ordinary or VM_MIXEDMAP mapping, or VM_IO alone) the case has nothing of that kind to test and
SKIPs saying what the flags were.
"""

from __future__ import annotations

import _ktap
import _mm


def not_a_pfnmap(addr: int, what: str) -> _ktap.Outcome | None:
    """None if the VMA at addr is VM_PFNMAP, else the SKIP outcome that says why not."""
    flags = _mm.vm_flags(addr)
    if flags is None:
        return _ktap.skip("no VmFlags for %s in /proc/self/smaps: cannot tell whether it is a pfnmap" % what)
    _ktap.diag("%s VmFlags: %s" % (what, " ".join(flags)))
    if "pf" not in flags:
        return _ktap.skip(
            '%s is not VM_PFNMAP on this kernel (VmFlags: %s, no "pf")' % (what, " ".join(flags))
        )
    return None
