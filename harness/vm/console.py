"""The serial console transport: pexpect on QEMU's stdio, framed replies from guest/agent.sh."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence

import pexpect

from harness.errors import CommandTimeout, GuestUnresponsive, TransportError
from harness.limits import MAX_REPLY_BYTES
from harness.vm.transport import (
    CommandResult,
    Frame,
    as_shell,
    end_marker,
    parse_frame,
    put_commands,
    request_line,
    resend_line,
)

_RESEND_TRIES = 3
MAX_LINE = 3000  # bytes; the guest tty's canonical line limit is 4095
LONG_COMMAND = "/tmp/.agent-long-command"
READ_CHUNK = 65536  # bytes per read from QEMU's stdio (pexpect's maxread)
# A console line longer than this without a newline is noise (the agent's lines are base64, 76
# columns): only its end is kept, in case a reply line starts there.
MAX_LINE_BYTES = 64 * 1024
_LINE_END_KEPT = 256


class _Reply:
    """One reply as it arrives on a console the kernel also writes to. Only the lines that
    carry the request's tag are kept (what parse_frame reads; printk noise in between is in
    console.log already), at most MAX_REPLY_BYTES of them; the rest is counted in `cut`.
    Every byte is scanned once, so waiting costs time linear in what came (pexpect rescans
    its whole buffer on every read: 32 MiB before the marker took 7 s, 64 MiB half a minute)."""

    def __init__(self, req_id: str) -> None:
        self.marker = end_marker(req_id)
        self.tag = f"{req_id}:".encode()
        self.kept = bytearray()
        self.cut = 0
        self.timed_out_line = b""
        self._partial = b""  # the line being received

    def add(self, data: bytes) -> bytes | None:
        """Take data; once the end marker came, return what followed it (else None)."""
        buf = self._partial + data
        m = self.marker.search(buf)
        if m is not None:
            self._keep(buf[: m.start()] + b"\n")
            self.rc, self.md5 = int(m.group(1)), m.group(2).decode()
            return buf[m.end() :]
        nl = buf.rfind(b"\n")
        self._keep(buf[: nl + 1])
        self._partial = buf[nl + 1 :]
        if len(self._partial) > MAX_LINE_BYTES:
            self._partial = self._partial[-_LINE_END_KEPT:]
        return None

    def _keep(self, lines: bytes) -> None:
        pos = lines.find(self.tag)
        while pos >= 0:
            start = lines.rfind(b"\n", 0, pos) + 1
            end = lines.find(b"\n", pos)
            line = lines[start : end + 1]
            if b":T:" in line[pos - start :]:
                self.timed_out_line = line
            elif len(self.kept) + len(line) <= MAX_REPLY_BYTES and not self.cut:
                self.kept += line
            else:
                self.cut += len(line)
            pos = lines.find(self.tag, end)

    def text(self) -> bytes:
        return bytes(self.kept) + self.timed_out_line


class ConsoleTransport:
    """Timeouts are enforced in the guest: the agent kills a command at its limit and still
    replies, with a T line; the host then raises CommandTimeout carrying the partial output.
    No reply at all within limit + GRACE_S means the guest itself stopped (GuestUnresponsive).
    A reply to an older request (one the host gave up on) is skipped by id."""

    name = "console"
    GRACE_S = 20.0

    def __init__(self, child: pexpect.spawn, clock: Callable[[], float] = time.monotonic) -> None:
        self._child = child
        self._clock = clock  # a test's replayed console brings its own
        self._prefix = "c" + secrets.token_hex(4)
        self._seq = 0

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self._prefix}{self._seq:05d}"

    def _exchange(self, line: bytes, req_id: str, wait_s: float, what: str) -> Frame:
        self._child.send(line)
        reply = _Reply(req_id)
        deadline = self._clock() + wait_s
        data = self._child.buffer  # what an earlier read left after its marker
        self._child.buffer = b""
        while True:
            rest = reply.add(data) if data else None
            if rest is not None:
                break
            left = deadline - self._clock()
            if left <= 0:
                raise GuestUnresponsive(
                    f"console: no reply to {what} within {wait_s:.0f}s: the guest is not responding"
                )
            try:
                data = self._child.read_nonblocking(READ_CHUNK, timeout=min(left, 1.0))
            except pexpect.TIMEOUT:
                data = b""
            except pexpect.EOF:
                raise TransportError("console: QEMU exited while a command was running") from None
        self._child.buffer = rest  # the marker's second copy, and whatever follows
        return parse_frame(req_id, reply.text(), reply.rc, reply.md5, cut=reply.cut)

    def run(self, command: str | Sequence[str], timeout_s: float = 60.0) -> CommandResult:
        cmd = as_shell(command)
        what = repr(cmd[:60])
        limit = max(1, math.ceil(timeout_s))
        req_id = self._next_id()
        line = request_line(req_id, cmd, limit)
        if len(line) > MAX_LINE:
            # The tty reads at most 4095 bytes a line: send a long command as a script first.
            self.put(cmd.encode(), LONG_COMMAND)
            line = request_line(req_id, f"sh {LONG_COMMAND}", limit)
        frame = self._exchange(line, req_id, limit + self.GRACE_S, what)
        tries = 0
        while not frame.intact:
            # A kernel message landed inside the reply: ask the agent for the same reply again.
            tries += 1
            if tries > _RESEND_TRIES:
                raise TransportError(f"console: reply to {what} corrupted {tries} times")
            req_id = self._next_id()
            frame = self._exchange(resend_line(req_id), req_id, 30.0, what)
        result = CommandResult(frame.rc, frame.stdout, frame.stderr, frame.note)
        if frame.timed_out:
            raise CommandTimeout(f"console: {what} killed after {limit}s", partial=result)
        return result

    def send_only(self, command: str) -> None:
        """Send a command whose reply will never come (poweroff, sysrq-c)."""
        self._child.send(request_line(self._next_id(), command))

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        for cmd in put_commands(data, remote, mode):
            r = self.run(cmd, timeout_s=60.0)
            if r.rc != 0:
                raise TransportError(
                    f"console: writing {remote} failed: {r.stderr.decode(errors='replace').strip()}"
                )

    def close(self) -> None:
        pass
