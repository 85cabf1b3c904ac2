"""The serial console transport: pexpect on QEMU's stdio, framed replies from guest/agent.sh."""

from __future__ import annotations

import secrets
from typing import Sequence

import pexpect

from .errors import CommandTimeout, TransportError
from .transport import CommandResult, as_shell, end_marker, parse_frame, put_commands, request_line

_RESEND_TRIES = 3


class ConsoleTransport:
    """Timeouts: the agent runs one command at a time and cannot be interrupted, so a command
    that times out keeps running; the next request queues behind it and its reply comes after
    the stale frame, which is skipped by id (its timeout counts the wait)."""

    name = "console"

    def __init__(self, child: pexpect.spawn) -> None:
        self._child = child
        self._prefix = "c" + secrets.token_hex(4)
        self._seq = 0

    def _exchange(self, command: str, timeout_s: float) -> tuple[bytes, int, str, str]:
        self._seq += 1
        req_id = f"{self._prefix}{self._seq:05d}"
        self._child.send(request_line(req_id, command))
        try:
            self._child.expect(end_marker(req_id), timeout=timeout_s)
        except pexpect.TIMEOUT:
            raise CommandTimeout(f"console: no reply to {command[:60]!r} within {timeout_s:.0f}s") from None
        except pexpect.EOF:
            raise TransportError("console: QEMU exited while a command was running") from None
        m = self._child.match
        return self._child.before, int(m.group(1)), m.group(2).decode(), req_id

    def run(self, command: str | Sequence[str], timeout_s: float = 60.0) -> CommandResult:
        cmd = as_shell(command)
        text, rc, md5, req_id = self._exchange(cmd, timeout_s)
        frame = parse_frame(req_id, text, rc, md5)
        tries = 0
        while not frame.intact:
            # A kernel message landed inside the reply: ask the agent for the same reply again.
            tries += 1
            if tries > _RESEND_TRIES:
                raise TransportError(f"console: reply to {cmd[:60]!r} corrupted {tries} times")
            text, rc, md5, req_id = self._exchange("__resend__", 30.0)
            frame = parse_frame(req_id, text, rc, md5)
        return CommandResult(frame.rc, frame.stdout, frame.stderr)

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        for cmd in put_commands(data, remote, mode):
            r = self.run(cmd, timeout_s=60.0)
            if r.rc != 0:
                raise TransportError(f"console: writing {remote} failed: {r.stderr.decode(errors='replace').strip()}")

    def send_only(self, command: str) -> None:
        """Send a command whose reply will never come (poweroff, sysrq-c)."""
        self._seq += 1
        self._child.send(request_line(f"{self._prefix}{self._seq:05d}", command))

    def close(self) -> None:
        pass
