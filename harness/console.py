"""The serial console transport: pexpect on QEMU's stdio, framed replies from guest/agent.sh."""

from __future__ import annotations

import math
import secrets
from typing import Sequence

import pexpect

from .errors import CommandTimeout, GuestUnresponsive, TransportError
from .transport import (CommandResult, Frame, as_shell, end_marker, parse_frame, put_commands,
                        request_line, resend_line)

_RESEND_TRIES = 3
MAX_LINE = 3000  # bytes; the guest tty's canonical line limit is 4095
LONG_COMMAND = "/tmp/.agent-long-command"


class ConsoleTransport:
    """Timeouts are enforced in the guest: the agent kills a command at its limit and still
    replies, with a T line; the host then raises CommandTimeout carrying the partial output.
    No reply at all within limit + GRACE_S means the guest itself stopped (GuestUnresponsive).
    A reply to an older request (one the host gave up on) is skipped by id."""

    name = "console"
    GRACE_S = 20.0

    def __init__(self, child: pexpect.spawn) -> None:
        self._child = child
        self._prefix = "c" + secrets.token_hex(4)
        self._seq = 0

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self._prefix}{self._seq:05d}"

    def _exchange(self, line: bytes, req_id: str, wait_s: float, what: str) -> Frame:
        self._child.send(line)
        try:
            self._child.expect(end_marker(req_id), timeout=wait_s)
        except pexpect.TIMEOUT:
            raise GuestUnresponsive(f"console: no reply to {what} within {wait_s:.0f}s: the guest is not responding") from None
        except pexpect.EOF:
            raise TransportError("console: QEMU exited while a command was running") from None
        m = self._child.match
        return parse_frame(req_id, self._child.before, int(m.group(1)), m.group(2).decode())

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
        result = CommandResult(frame.rc, frame.stdout, frame.stderr)
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
                raise TransportError(f"console: writing {remote} failed: {r.stderr.decode(errors='replace').strip()}")

    def close(self) -> None:
        pass
