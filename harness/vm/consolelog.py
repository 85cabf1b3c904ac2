"""console.log: everything the guest's serial console printed, bounded (limits.py).

pexpect writes every byte it reads from QEMU here (logfile_read), as it arrives, so a crash
loses nothing. A kernel in a WARN storm prints without end: the file keeps its first
CONSOLE_LOG_HEAD_BYTES on disk as they come, then holds only the last CONSOLE_LOG_TAIL_BYTES in
memory and writes them, after a note of how much was dropped, when the machine stops (kill,
shutdown): the report that ended the flood is at the end of the file.
"""

from __future__ import annotations

from pathlib import Path

from harness.limits import CONSOLE_LOG_HEAD_BYTES, CONSOLE_LOG_TAIL_BYTES, HeadTail, dropped_note


class ConsoleLog:
    """A file-like sink for pexpect (write, flush) that appends to `path` within the bounds.
    One per boot: a fresh guest's console goes on in the same file, and the bound is the
    file's."""

    def __init__(
        self, path: Path, head_bytes: int = CONSOLE_LOG_HEAD_BYTES, tail_bytes: int = CONSOLE_LOG_TAIL_BYTES
    ) -> None:
        self.path = path
        self._f = open(path, "ab", buffering=0)
        self._head_left = max(0, head_bytes - self._f.tell())
        self._tail = HeadTail(0, tail_bytes)

    def write(self, data: bytes) -> int:
        if self._f.closed:
            return len(data)  # a read after the machine stopped: nothing left to record
        n = len(data)
        if self._head_left:
            part = data[: self._head_left]
            self._f.write(part)
            self._head_left -= len(part)
            data = data[len(part) :]
        if data:
            self._tail.write(data)
        return n

    def flush(self) -> None:
        pass  # unbuffered: the head is on disk as it comes; the tail waits for close()

    @property
    def dropped(self) -> int:
        return self._tail.dropped

    def close(self) -> None:
        """Write the held tail (after a note of what was dropped) and close. Idempotent."""
        if self._f.closed:
            return
        if self._tail.total:
            note = (
                (
                    "\n=== harness: console.log keeps its first "
                    f"{CONSOLE_LOG_HEAD_BYTES >> 20} MiB and its last {CONSOLE_LOG_TAIL_BYTES >> 20} MiB; "
                    f"{dropped_note(self._tail.dropped)} ===\n"
                )
                if self._tail.dropped
                else ""
            )
            self._f.write(note.encode() + self._tail.tail())
        self._f.close()
