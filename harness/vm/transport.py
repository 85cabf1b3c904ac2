"""The channel that talks to a running guest, and the console framing (pure parts)."""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness import limits


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: bytes
    stderr: bytes
    note: str = ""  # what the host cut or could not decode of the reply (limits.py), "" if nothing

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class Transport(Protocol):
    """What the runner needs from a channel. Console and SSH implement it; so does the fake."""

    name: str

    def run(self, command: str | Sequence[str], timeout_s: float = 60.0) -> CommandResult: ...

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None: ...

    def close(self) -> None: ...


def as_shell(command: str | Sequence[str]) -> str:
    """A command for the guest's sh: an argv list is quoted, a string is used as written."""
    return command if isinstance(command, str) else shlex.join(command)


def request_line(req_id: str, command: str, limit_s: int = 0) -> bytes:
    """`<id>/<limit_s> <base64 command>`: the agent kills the command after limit_s (0: never)."""
    return f"{req_id}/{limit_s} ".encode() + base64.b64encode(command.encode()) + b"\n"


def resend_line(req_id: str) -> bytes:
    return f"{req_id}/0 !resend\n".encode()


@dataclass(frozen=True)
class Frame:
    rc: int
    stdout: bytes
    stderr: bytes
    intact: bool  # checksum matched: no console noise corrupted the reply
    timed_out: bool = False  # the agent killed the command at its limit
    note: str = ""  # what was cut or undecodable (CommandResult.note)


def end_marker(req_id: str) -> re.Pattern[bytes]:
    return re.compile(re.escape(req_id.encode()) + rb":E:(\d+):([0-9a-f]{32})")


def parse_frame(req_id: str, text: bytes, rc: int, md5: str, cut: int = 0) -> Frame:
    """Decode the O/R lines of one reply from console text (which may carry printk noise).

    `cut`: bytes of the reply the console reader dropped (limits.MAX_REPLY_BYTES); such a reply
    cannot match its checksum, so the lines that came are decoded as far as they go, and the
    Frame says what was cut.
    Decompressed stdout and stderr are bounded (limits.gunzip, MAX_PROGRAM_STDERR_BYTES)."""
    out: list[bytes] = []
    err: list[bytes] = []
    tag_o, tag_r = f"{req_id}:O:".encode(), f"{req_id}:R:".encode()
    timed_out = f"{req_id}:T:".encode() in text
    compressed = f"{req_id}:Z:".encode() in text
    for raw in text.split(b"\n"):
        line = raw.rstrip(b"\r")
        pos_o, pos_r = line.find(tag_o), line.find(tag_r)
        if pos_o >= 0:
            out.append(line[pos_o + len(tag_o) :])
        elif pos_r >= 0:
            err.append(line[pos_r + len(tag_r) :])
    b64_text = b"".join(x + b"\n" for x in out + err)
    intact = hashlib.md5(b64_text).hexdigest() == md5
    notes = (
        [
            f"the reply was {cut} bytes over the harness's {limits.MAX_REPLY_BYTES >> 20} MiB "
            "limit: the rest was dropped"
        ]
        if cut
        else []
    )
    try:
        stdout = base64.b64decode(b"".join(out))
        stderr = base64.b64decode(b"".join(err))
    except ValueError:
        return Frame(rc, b"", b"", False, timed_out)
    if not intact and not cut:
        return Frame(rc, b"", b"", False, timed_out)
    if compressed:
        try:
            stdout, note = limits.gunzip(stdout)
        except limits.DecompressError as e:
            stdout, note = b"", f"stdout announced as gzip is not: {e}"
        notes += [note] if note else []
    stderr, dropped = limits.head_tail_bytes(stderr, limits.MAX_PROGRAM_STDERR_BYTES)
    if dropped:
        notes.append(f"{dropped} bytes of stderr dropped")
    return Frame(rc, stdout, stderr, True, timed_out, "; ".join(notes))


def put_commands(data: bytes, remote: str, mode: int, chunk: int = 2048) -> list[str]:
    """Shell commands that recreate `data` at `remote` through a line-based channel."""
    b64 = base64.b64encode(data).decode()
    q = shlex.quote(remote)
    tmp = shlex.quote(remote + ".b64")
    cmds = [f": > {tmp}"]
    for i in range(0, len(b64), chunk):
        cmds.append(f"printf %s {b64[i : i + chunk]} >> {tmp}")
    cmds.append(f"base64 -d {tmp} > {q} && rm -f {tmp} && chmod {mode:o} {q}")
    return cmds
