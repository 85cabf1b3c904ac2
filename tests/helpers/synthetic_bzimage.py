"""A synthetic x86 bzImage: just the boot-protocol header fields harness.kernels.bzimage reads.

Not a test module (no test_ prefix); imported by test_bzimage.py and test_kernel.py.
"""

from __future__ import annotations

import struct

DEBIAN_61_BANNER = (
    "6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"
)
UPSTREAM_BANNER = "6.18.0-rc3+ (dev@box) #7 SMP PREEMPT_DYNAMIC Sat Nov  1 12:00:00 UTC 2025"


def make_bzimage(
    banner: str | None = DEBIAN_61_BANNER,
    setup_sects: int = 4,
    payload_paragraphs: int = 64,
    banner_offset: int = 0x400,
) -> bytes:
    """setup_sects+1 sectors of real-mode setup, then `payload_paragraphs` * 16 bytes.

    The banner is a NUL-terminated string at `banner_offset` (file offset), referenced from the
    kernel_version field at 0x20E as offset - 0x200, as in real images. banner=None leaves
    kernel_version 0 (the boot protocol's "no version string").
    """
    sectors = (setup_sects or 4) + 1  # setup_sects 0 means 4 (boot.rst)
    data = bytearray(sectors * 512 + payload_paragraphs * 16)
    data[0x1F1] = setup_sects
    struct.pack_into("<I", data, 0x1F4, payload_paragraphs)
    data[0x1FE:0x200] = b"\x55\xaa"
    data[0x200:0x202] = b"\xeb\x6a"  # the jmp over the header every real image starts with
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x206, 0x020F)  # boot protocol 2.15
    if banner is not None:
        raw = banner.encode() + b"\0"
        data[banner_offset : banner_offset + len(raw)] = raw
        struct.pack_into("<H", data, 0x20E, banner_offset - 0x200)
    return bytes(data)
