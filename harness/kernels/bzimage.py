"""Pure reading of the x86 boot protocol header of a bzImage (Documentation/arch/x86/boot.rst)."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from harness.errors import KernelError

_HDR_MAGIC_OFF = 0x202  # "HdrS"
_SETUP_SECTS_OFF = 0x1F1
_SYSSIZE_OFF = 0x1F4  # protected-mode code size in 16-byte paragraphs
_KVER_PTR_OFF = 0x20E  # pointer to the version string, relative to 0x200


@dataclass(frozen=True)
class BzImageInfo:
    banner: str  # "6.12.117+deb12-amd64 (debian-kernel@...) #1 SMP ... Debian 6.12.117-1~deb12u1"
    release: str  # first word of the banner: uname -r
    expected_size: int


def inspect(data: bytes, name: str = "kernel") -> BzImageInfo:
    """Check that `data` is a whole bzImage and read its version banner.

    A truncated file passes the magic check but would hang in the decompressor, so the size the
    header promises is checked here, before any boot is attempted.
    """
    if len(data) < 0x400 or data[_HDR_MAGIC_OFF : _HDR_MAGIC_OFF + 4] != b"HdrS":
        raise KernelError(f"{name}: not an x86 bzImage (no 'HdrS' boot header)")
    setup_sects = data[_SETUP_SECTS_OFF] or 4
    (syssize,) = struct.unpack_from("<I", data, _SYSSIZE_OFF)
    expected = (setup_sects + 1) * 512 + syssize * 16
    if len(data) < expected:
        raise KernelError(f"{name}: truncated bzImage ({len(data)} bytes, header promises {expected})")
    (ptr,) = struct.unpack_from("<H", data, _KVER_PTR_OFF)
    start = ptr + 0x200
    # kernel_version 0 means "no version string" (boot.rst); 0x200 itself is the setup jmp.
    raw = data[start : start + 256] if ptr else b""
    banner = raw.split(b"\0", 1)[0].decode("ascii", "replace")
    release = banner.split(" ", 1)[0] if banner else ""
    if not release:
        raise KernelError(f"{name}: bzImage carries no version string")
    return BzImageInfo(banner=banner, release=release, expected_size=expected)


_DEBIAN_VER = re.compile(r"Debian (\d+\.\d+\.\d+)")


def upstream_version_text(banner: str) -> str:
    """The upstream version in a banner: Debian's "6.1.0-56-amd64 ... Debian 6.1.192-2" → 6.1.192."""
    m = _DEBIAN_VER.search(banner)
    if m:
        return m.group(1)
    return banner.split(" ", 1)[0]
