"""Bounds on everything that comes from the guest, and the helpers that apply them (pure).

The kernel under test may be broken, and a broken kernel prints anything, as fast as it can (a
WARN storm under KVM is enough; no malice needed). Every byte from the guest is therefore
bounded before the host parses, decompresses, stores or prints it, and whatever is cut is said
where it was cut: "[harness: 12345 bytes dropped here ...]".
"""

from __future__ import annotations

import zlib
from collections import deque

MIB = 1 << 20

# ---- what a test program sends back --------------------------------------------------------

# A program's stdout after decompression. The biggest real one is a kselftest's (mm/cow: about
# 150 KB); 16 MiB is a hundred times that, and parses in well under a second.
MAX_PROGRAM_STDOUT_BYTES = 16 * MIB
# Beyond this the middle is dropped: head and tail are kept (the tail has the last results).
PROGRAM_STDOUT_HEAD_BYTES = 8 * MIB
# At most this much is decompressed in all (a stream, never held): zeros compress about
# 1000:1, so without it 300 KiB on the console becomes 300 MiB. Also what decompression of one
# reply costs in CPU: about half a second.
MAX_GUNZIP_BYTES = 256 * MIB
# deflate cannot go much beyond 1032:1, and only a stream that is (nearly) one byte repeated
# gets past 1000:1: a bomb, not output. Anything below it (a flood of real diagnostics
# compresses 5-500 times) is decompressed up to MAX_GUNZIP_BYTES and kept as head and tail,
# so the results after a flood survive. The first MiB is free of it.
MAX_GZIP_RATIO = 1000
GZIP_RATIO_FREE_BYTES = 1 * MIB
# What a program writes to stderr (not compressed; only for the error line and the file).
MAX_PROGRAM_STDERR_BYTES = 1 * MIB
# The console's reply to one command, as framed text (base64 of gzip, 4/3 of it): the 16 MiB of
# stdout kept above, gzip'd at text's worst 3:1 ratio, take under 8 MiB; even incompressible it
# fits in 24 MiB (and 24 MiB is 300 s of a TCG serial console). Beyond it the rest of the reply
# is read and dropped, never kept.
MAX_REPLY_BYTES = 24 * MIB

# ---- what is stored per case ---------------------------------------------------------------

# A case's output in results.jsonl and JUnit: 64 KiB is eight times the largest real one (a
# kernel report excerpt plus the console tail of a lost guest, <= 8 KB each), and 423 cases of
# it stay under 30 MB of JUnit.
MAX_CASE_OUTPUT_CHARS = 64 * 1024
# A reason is one line on a terminal and in a JUnit attribute.
MAX_REASON_CHARS = 2000
MAX_KERNEL_EVENTS = 50  # report titles kept per case (a WARN storm prints thousands)

# ---- KTAP ------------------------------------------------------------------------------------

# A plan line makes one node per planned result that never came: `1..N` must not allocate N.
# The largest real plan is a kselftest's (mm/cow: under 1000); above this cap the plan is a lie,
# and the program is an ERROR.
MAX_KTAP_PLAN = 20_000
# Result nodes of one document, all levels together (printed and filled in for a plan).
MAX_KTAP_NODES = 50_000

# ---- the console log -------------------------------------------------------------------------

# console.log keeps its first 64 MiB (boot, every case marker of a normal run: a whole default
# run writes about 1 MiB) and the last 8 MiB (the report that ended a flood); the middle is
# dropped and counted.
CONSOLE_LOG_HEAD_BYTES = 64 * MIB
CONSOLE_LOG_TAIL_BYTES = 8 * MIB
# What is read back from console.log at once (a program's section, a lost guest's console).
MAX_CONSOLE_SECTION_BYTES = 16 * MIB


def dropped_note(n: int, what: str = "bytes") -> str:
    return f"[harness: {n} {what} dropped here: more than the harness keeps]"


def head_tail(text: str, limit: int = MAX_CASE_OUTPUT_CHARS) -> str:
    """text if it fits in `limit` characters, else its head and tail around a note of how much
    was dropped (cut at line ends where there are any nearby)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    head, tail = text[:half], text[-half:]
    nl = head.rfind("\n")
    if nl > half // 2:
        head = head[: nl + 1]
    nl = tail.find("\n")
    if 0 <= nl < half // 2:
        tail = tail[nl + 1 :]
    dropped = len(text) - len(head) - len(tail)
    return f"{head}\n{dropped_note(dropped, 'characters')}\n{tail}"


def head_tail_bytes(data: bytes, limit: int, head: int | None = None) -> tuple[bytes, int]:
    """data if it fits in `limit` bytes, else head + note + tail; and how many bytes were dropped."""
    if len(data) <= limit:
        return data, 0
    h = limit // 2 if head is None else min(head, limit)
    t = limit - h
    dropped = len(data) - h - t
    return data[:h] + b"\n" + dropped_note(dropped).encode() + b"\n" + data[len(data) - t :], dropped


class HeadTail:
    """A byte stream kept as its first `head` bytes and its last `tail` bytes, with a count of
    what fell in between: bounded memory whatever the stream's length."""

    def __init__(self, head: int, tail: int) -> None:
        self.head_limit, self.tail_limit = head, tail
        self.head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.dropped = 0

    def write(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail.append(bytes(data))
        self._tail_len += len(data)
        while self._tail_len > self.tail_limit:
            first = self._tail.popleft()
            excess = self._tail_len - self.tail_limit
            if len(first) > excess:  # keep the part of it that still fits
                self._tail.appendleft(first[excess:])
                self.dropped += excess
                self._tail_len -= excess
            else:
                self.dropped += len(first)
                self._tail_len -= len(first)

    @property
    def total(self) -> int:
        return len(self.head) + self._tail_len + self.dropped

    def tail(self) -> bytes:
        return b"".join(self._tail)

    def value(self) -> bytes:
        """The whole stream if nothing was dropped, else head, note, tail."""
        note = [b"\n" + dropped_note(self.dropped).encode() + b"\n"] if self.dropped else []
        return b"".join([self.head, *note, *self._tail])


class DecompressError(ValueError):
    """What the guest sent as gzip is not gzip (or is cut off)."""


def gunzip(
    data: bytes, limit: int = MAX_PROGRAM_STDOUT_BYTES, head: int = PROGRAM_STDOUT_HEAD_BYTES
) -> tuple[bytes, str]:
    """Decompress guest gzip with bounds: at most `limit` bytes kept (head and tail), at most
    MAX_GUNZIP_BYTES and MAX_GZIP_RATIO x the input decompressed. Returns the data and a note
    saying what was cut ("" when nothing). DecompressError when it is not gzip; a stream cut off
    before its end keeps what was decompressed, with a note."""
    budget = min(MAX_GUNZIP_BYTES, max(GZIP_RATIO_FREE_BYTES, len(data) * MAX_GZIP_RATIO))
    out = HeadTail(head, limit - head)
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer
    pending, made, notes = data, 0, []
    chunk = 1 * MIB
    try:
        while pending and not d.eof:
            part = d.decompress(pending, chunk)
            pending = d.unconsumed_tail
            made += len(part)
            out.write(part)
            if made >= budget and (pending or not d.eof):
                why = "the ratio cap" if budget < MAX_GUNZIP_BYTES else "the size cap"
                notes.append(
                    f"decompression stopped at {made} bytes ({why}: at most "
                    f"{MAX_GZIP_RATIO}x of {len(data)} compressed bytes, "
                    f"{MAX_GUNZIP_BYTES >> 20} MiB in all)"
                )
                break
    except zlib.error as e:
        if made == 0:
            raise DecompressError(f"not gzip: {e}") from None
        notes.append(f"the gzip stream is corrupt after {made} bytes: {e}")
    if not notes and not d.eof:
        if made == 0:
            raise DecompressError("not gzip: the stream ends before any data")
        notes.append(f"the gzip stream ends early, after {made} bytes")
    if out.dropped:
        notes.insert(
            0,
            f"{out.dropped} of {made} bytes dropped from the middle "
            f"(kept the first {head >> 20} MiB and the last {(limit - head) >> 20} MiB)",
        )
    return out.value(), "; ".join(notes)
