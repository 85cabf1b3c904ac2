"""Writing report files so that they survive: atomically (a temp file, fsync, rename, then the
directory fsynced), never half-written, and every failure a ReportWriteError (exit 2), not a
traceback. Text goes through safetext.file_text first: guest bytes that were not UTF-8 can
never make a writer crash."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import ReportWriteError
from harness.safetext import file_text


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (best effort: not every fs allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`path` holds `data` entirely or keeps what it held before; ReportWriteError if not."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ReportWriteError(f"cannot write {path}: {e.strerror or e}") from None
    fsync_dir(path.parent)


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    write_bytes(path, file_text(text).encode("utf-8"), mode)
