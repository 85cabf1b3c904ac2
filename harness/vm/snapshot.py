"""Snapshots of a booted guest, cached across runs.

A guest built with GuestOptions(handshake=True) stops at its snapshot point (guest/init): modules
loaded, the ext4 scratch disk mounted, swap on, the hugetlb pool reserved, the /usr share *not*
mounted (a mounted 9p export blocks migration) and the NIC not up. There the host may save the
whole machine: RAM and device state by migration to a file descriptor (`migrate fd:`, which the
QEMU seccomp sandbox allows: nothing is spawned), the scratch disks by copying them while the
guest is stopped. A later boot starts the same QEMU command line with `-incoming defer`, loads
the state, gives each run its own copy of the disks, and sends the per-run secrets
(guest/init's "harness-go" line), which never enter the cache.

An entry lives in cache_dir()/snapshots/<key>/: vmstate, scratch-ext4.img, scratch-swap.img and
meta.json. The key is a hash of everything that makes the snapshot (snapshot_key). Entries are
written to a temporary directory and renamed into place, so a reader never sees half of one and
two runs saving the same key at once keep one of them; readers only read. The cache is bounded
(prune: least recently used first).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.paths import cache_dir

FORMAT = 1  # of an entry; part of the key
VMSTATE = "vmstate"
DISKS = ("scratch-ext4.img", "scratch-swap.img")
MAX_ENTRIES = 8
MAX_BYTES = 4 << 30  # apparent bytes of the vmstate files plus the disks' allocated blocks


def snapshots_dir() -> Path:
    """cache_dir()/snapshots, or $HARNESS_SNAPSHOT_DIR (tests use a private one)."""
    return Path(os.environ.get("HARNESS_SNAPSHOT_DIR") or cache_dir() / "snapshots")


def writable() -> bool:
    """Whether a snapshot can be saved here (the cache directory can be made and written)."""
    try:
        snapshots_dir().mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(snapshots_dir(), os.W_OK)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def normalized_argv(
    argv: list[str],
    kernel: Path,
    initrd: Path,
    monitor: Path | None,
    drives: tuple[Path, ...],
    ssh_port: int | None,
) -> list[str]:
    """QEMU's argv with what differs from run to run and does not change the machine (the run
    dir's paths, the SSH forward's host port) replaced by placeholders (pure)."""
    subs = [(str(kernel), "@KERNEL"), (str(initrd), "@INITRD")]
    if monitor is not None:
        subs.append((str(monitor).replace(",", ",,"), "@MONITOR"))
    subs += [(str(d).replace(",", ",,"), f"@DRIVE{i}") for i, d in enumerate(drives)]
    if ssh_port is not None:
        subs.append((f"127.0.0.1:{ssh_port}-", "127.0.0.1:@PORT-"))
    out = []
    for a in argv[1:]:  # the binary itself: its version and identity are keyed separately
        for old, new in subs:
            a = a.replace(old, new)
        out.append(a)
    return out


def snapshot_key(
    *, kernel: Path, initrd: Path, argv: list[str], qemu_version: str, qemu_bin: str, accel: str
) -> tuple[str, dict[str, str]]:
    """The cache key (and what went into it): the kernel's and initramfs's contents (the
    initramfs holds no per-run secret: GuestOptions.handshake), the normalized QEMU argv, QEMU's
    version and binary (size and mtime: a rebuilt QEMU with the same version string), the
    accelerator. The scratch disks are made by the harness (disks.py) and saved with the entry."""
    st = os.stat(qemu_bin)
    parts = {
        "format": str(FORMAT),
        "kernel": _file_hash(kernel),
        "initramfs": _file_hash(initrd),
        "argv": json.dumps(argv),
        "qemu": qemu_version,
        "qemu_bin": f"{os.path.realpath(qemu_bin)}:{st.st_size}:{int(st.st_mtime)}",
        "accel": accel,
    }
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return h, parts


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    meta: dict[str, object]

    @property
    def vmstate(self) -> Path:
        return self.path / VMSTATE

    def size_bytes(self) -> int:
        return _du(self.path)


def _du(path: Path) -> int:
    total = 0
    for f in path.iterdir():
        try:
            st = f.stat()
        except OSError:
            continue
        total += min(st.st_size, st.st_blocks * 512) if f.name in DISKS else st.st_size
    return total


def lookup(key: str) -> tuple[Entry | None, str]:
    """The entry for `key` if it is whole, else None and why not ("" when there is none)."""
    d = snapshots_dir() / key
    if not d.is_dir():
        return None, ""
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError) as e:
        return None, f"cached snapshot {key}: unreadable meta.json ({e})"
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None, f"cached snapshot {key}: meta.json is for another key"
    for name, size in [(VMSTATE, meta.get("vmstate_bytes")), *((n, None) for n in DISKS)]:
        f = d / name
        if not f.is_file():
            return None, f"cached snapshot {key}: {name} missing"
        if size is not None and f.stat().st_size != size:
            return None, f"cached snapshot {key}: {name} is {f.stat().st_size} bytes, {size} were saved"
    try:
        os.utime(d / "meta.json")  # last used: what prune keeps
    except OSError:
        pass
    return Entry(key, d, meta), ""


def discard(key: str) -> None:
    """Remove a broken entry (renamed away first: a concurrent reader keeps its open files)."""
    d = snapshots_dir() / key
    gone = d.with_name(f".discard-{key}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        d.rename(gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


class Writer:
    """A new entry being made: files go into a temporary directory; commit() renames it into
    place (or drops it when another run saved the same key first)."""

    def __init__(self, key: str) -> None:
        self.key = key
        root = snapshots_dir()
        root.mkdir(parents=True, exist_ok=True)
        self.tmp = root / f".new-{key}-{os.getpid()}-{time.monotonic_ns()}"
        self.tmp.mkdir(mode=0o700)

    def vmstate_fd(self) -> int:
        return os.open(self.tmp / VMSTATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def add_disks(self, disks: tuple[Path, ...]) -> None:
        for src, name in zip(disks, DISKS, strict=False):
            copy_sparse(src, self.tmp / name)

    def commit(self, meta: dict[str, object]) -> Entry:
        meta = {
            **meta,
            "key": self.key,
            "vmstate_bytes": (self.tmp / VMSTATE).stat().st_size,
            "created": time.time(),
        }
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        final = snapshots_dir() / self.key
        try:
            self.tmp.rename(final)
        except OSError:  # another run saved it first: use theirs
            self.abort()
            got, _ = lookup(self.key)
            if got is None:
                raise
            return got
        prune()
        return Entry(self.key, final, meta)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def copy_sparse(src: Path, dst: Path) -> None:
    """A copy of a mostly empty disk image that stays sparse (holes skipped by SEEK_DATA)."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
            except OSError:  # no data after pos
                break
            hole = os.lseek(fi.fileno(), data, os.SEEK_HOLE)
            fi.seek(data)
            fo.seek(data)
            left = hole - data
            while left > 0:
                chunk = fi.read(min(left, 1 << 20))
                if not chunk:
                    break
                fo.write(chunk)
                left -= len(chunk)
            pos = hole
        fo.truncate(size)


def entries() -> list[Entry]:
    d = snapshots_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.iterdir()):
        if p.name.startswith("."):
            continue
        try:
            meta = json.loads((p / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        out.append(Entry(p.name, p, meta if isinstance(meta, dict) else {}))
    return out


def _last_used(e: Entry) -> float:
    try:
        return (e.path / "meta.json").stat().st_mtime
    except OSError:
        return 0.0


def prune(max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> list[str]:
    """Drop least recently used entries beyond the bounds, and leftovers of dead writers (an
    hour old). Returns the keys dropped."""
    d = snapshots_dir()
    if not d.is_dir():
        return []
    now = time.time()
    for p in d.iterdir():
        if p.name.startswith((".new-", ".discard-")):
            try:
                if now - p.stat().st_mtime > 3600:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
    kept = sorted(entries(), key=_last_used, reverse=True)
    dropped, total = [], 0
    for i, e in enumerate(kept):
        size = e.size_bytes()
        if i >= max_entries or total + size > max_bytes:
            discard(e.key)
            dropped.append(e.key)
        else:
            total += size
    return dropped


def show() -> str:
    rows = []
    for e in sorted(entries(), key=_last_used, reverse=True):
        m = e.meta
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(_last_used(e)))
        rows.append(
            f"{e.key}  {str(m.get('kernel', '?')):24s} {str(m.get('accel', '?')):4s} "
            f"{e.size_bytes() / 2**20:7.1f} MiB  last used {used}"
        )
    total = sum(e.size_bytes() for e in entries())
    rows.append(
        f"{len(rows)} snapshot(s), {total / 2**20:.1f} MiB in {snapshots_dir()} "
        f"(bounds: {MAX_ENTRIES} entries, {MAX_BYTES >> 30} GiB)"
    )
    return "\n".join(rows)


def cmd_cache(action: str, keep: int | None) -> int:
    if action == "show":
        print(show())
        return 0
    if action == "prune":
        if keep is not None and keep < 0:
            raise InputError(f"--keep {keep}: expected 0 or more")
        dropped = prune(MAX_ENTRIES if keep is None else keep)
        print(f"pruned {len(dropped)} snapshot(s)" + (f": {', '.join(dropped)}" if dropped else ""))
        return 0
    raise InputError(f"cache {action}: expected show or prune")
