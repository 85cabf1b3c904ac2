"""A pure writer for the newc cpio format the kernel unpacks as an initramfs."""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, no leading "/"
    mode: int  # full st_mode (type bits + permissions)
    data: bytes = b""  # file contents, or the link target for symlinks

    @staticmethod
    def dir(path: str, perm: int = 0o755) -> Entry:
        return Entry(path, stat.S_IFDIR | perm)

    @staticmethod
    def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
        return Entry(path, stat.S_IFREG | perm, data)

    @staticmethod
    def symlink(path: str, target: str) -> Entry:
        return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, mode: int, size: int, name_len: int) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, name_len, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def archive(entries: list[Entry]) -> bytes:
    """newc archive of `entries` (parents must come before children), with the TRAILER."""
    out = bytearray()
    for ino, e in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = e.path.lstrip("/").encode() + b"\0"
        out += _header(ino, e.mode, len(e.data), len(name))
        out += name + _pad4(110 + len(name))
        out += e.data + _pad4(len(e.data))
    return bytes(out)
