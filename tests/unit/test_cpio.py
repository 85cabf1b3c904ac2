"""harness.cpio: newc archives, read back with a tiny reader here and, if installed, GNU cpio."""

from __future__ import annotations

import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.vm import cpio
from harness.vm.cpio import Entry

HEADER_LEN = 110
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Member:
    offset: int  # of the header in the archive
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    name: str
    data: bytes
    check: int


def read_newc(blob: bytes) -> list[Member]:
    """Parse a newc archive strictly (magic, 4-byte alignment, NUL-terminated names); stops
    at the trailer, which is returned as the last member. Nothing may follow the trailer."""
    out: list[Member] = []
    pos = 0
    while True:
        assert pos % 4 == 0, f"header at {pos} not 4-aligned"
        hdr = blob[pos : pos + HEADER_LEN]
        assert len(hdr) == HEADER_LEN, f"short header at {pos}"
        assert hdr[:6] == b"070701", f"bad magic {hdr[:6]!r} at {pos}"
        f = [int(hdr[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        ino, mode, uid, gid, nlink, _mtime, size, _dmaj, _dmin, _rmaj, _rmin, namesize, check = f
        name_start = pos + HEADER_LEN
        raw_name = blob[name_start : name_start + namesize]
        assert raw_name.endswith(b"\0") and b"\0" not in raw_name[:-1], raw_name
        data_start = name_start + namesize
        data_start += -data_start % 4
        # Padding is NULs, never stray bytes.
        assert set(blob[name_start + namesize : data_start]) <= {0}
        data = blob[data_start : data_start + size]
        assert len(data) == size, "archive ends inside a member's data"
        end = data_start + size
        nxt = end + (-end % 4)
        assert set(blob[end:nxt]) <= {0}
        m = Member(pos, ino, mode, uid, gid, nlink, raw_name[:-1].decode(), data, check)
        out.append(m)
        pos = nxt
        if m.name == TRAILER:
            assert pos == len(blob), f"{len(blob) - pos} bytes after the trailer"
            return out


def sample() -> list[Entry]:
    return [
        Entry.dir("bin"),
        Entry.file("bin/busybox", b"\x7fELF" + bytes(range(256)) * 3, 0o755),
        Entry.symlink("bin/sh", "busybox"),
        Entry.dir("etc"),
        Entry.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry.file("etc/empty", b""),
        Entry.symlink("lib64", "usr/lib64"),
        Entry.file("/init", b"#!/bin/sh\nexec /bin/sh\n", 0o755),  # leading "/" is dropped
        Entry.dir("etc/harness", 0o700),
    ]


def test_round_trip_names_modes_and_data() -> None:
    entries = sample()
    members = read_newc(cpio.archive(entries))
    assert [m.name for m in members] == [e.path.lstrip("/") for e in entries] + [TRAILER]
    for e, m in zip(entries, members, strict=False):
        assert m.mode == e.mode
        assert m.data == e.data
        assert (m.uid, m.gid, m.nlink, m.check) == (0, 0, 1, 0)


def test_entry_constructors_set_type_bits() -> None:
    assert stat.S_ISDIR(Entry.dir("d").mode) and stat.S_IMODE(Entry.dir("d").mode) == 0o755
    f = Entry.file("f", b"x", 0o600)
    assert stat.S_ISREG(f.mode) and stat.S_IMODE(f.mode) == 0o600
    link = Entry.symlink("l", "../t")
    assert stat.S_ISLNK(link.mode) and stat.S_IMODE(link.mode) == 0o777 and link.data == b"../t"


def test_symlink_target_is_the_data() -> None:
    members = read_newc(cpio.archive([Entry.symlink("lib/x86_64-linux-gnu", "../usr/lib/x86_64-linux-gnu")]))
    assert stat.S_ISLNK(members[0].mode)
    assert members[0].data == b"../usr/lib/x86_64-linux-gnu"  # no trailing NUL


def test_inodes_unique_and_nonzero() -> None:
    inos = [m.ino for m in read_newc(cpio.archive(sample()))]
    assert 0 not in inos and len(set(inos)) == len(inos)


def test_trailer_is_last_and_empty() -> None:
    members = read_newc(cpio.archive([]))
    assert len(members) == 1
    t = members[0]
    assert (t.name, t.mode, t.data) == (TRAILER, 0, b"")


@pytest.mark.parametrize("name_len", range(1, 9))
@pytest.mark.parametrize("data_len", [0, 1, 2, 3, 4, 5, 7, 8])
def test_alignment_for_every_name_and_data_length(name_len: int, data_len: int) -> None:
    # 110 + namesize hits every residue mod 4 over four consecutive name lengths.
    blob = cpio.archive([Entry.file("n" * name_len, b"d" * data_len), Entry.file("z", b"q")])
    assert len(blob) % 4 == 0
    members = read_newc(blob)
    assert members[0].name == "n" * name_len and members[0].data == b"d" * data_len
    assert members[1].name == "z" and members[1].data == b"q"


def test_sizes_count_bytes_not_characters() -> None:
    members = read_newc(cpio.archive([Entry.file("größe", "µ".encode())]))
    assert members[0].name == "größe" and members[0].data == "µ".encode()


def test_header_is_uppercase_hex_of_fixed_width() -> None:
    blob = cpio.archive([Entry.file("a", b"\0" * 0xABCDE)])
    hdr = blob[:HEADER_LEN].decode("ascii")
    assert hdr[6 + 8 * 6 : 6 + 8 * 7] == "000ABCDE"  # c_filesize
    assert hdr == hdr.upper()


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_gnu_cpio_lists_and_extracts(tmp_path: Path) -> None:
    blob = cpio.archive(sample())
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=blob, capture_output=True, check=True)
    assert listing.stdout.decode().split() == [e.path.lstrip("/") for e in sample()]

    dest = tmp_path / "root"
    dest.mkdir()
    subprocess.run(
        ["cpio", "-idm", "--quiet", "--no-absolute-filenames"],
        input=blob,
        cwd=dest,
        capture_output=True,
        check=True,
    )
    assert (dest / "etc" / "passwd").read_bytes() == b"root:x:0:0:root:/root:/bin/sh\n"
    assert (dest / "etc" / "empty").read_bytes() == b""
    assert (dest / "bin" / "busybox").read_bytes() == sample()[1].data
    assert stat.S_IMODE((dest / "bin" / "busybox").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "etc" / "passwd").stat().st_mode) == 0o644
    assert (dest / "bin" / "sh").is_symlink() and str((dest / "bin" / "sh").readlink()) == "busybox"
    assert str((dest / "lib64").readlink()) == "usr/lib64"
    assert (dest / "init").read_bytes().startswith(b"#!/bin/sh")
