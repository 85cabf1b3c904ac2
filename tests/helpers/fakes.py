"""Fakes for transport tests: a Transport that runs on the host, and a replaying console child.

LocalTransport: the contract suite's always-available subject. Commands are *guest* shell
commands, so they run as ["sh", "-c", command] (an argv list on the host side, no shell=True).

ReplayConsole: stands in for the pexpect child under ConsoleTransport (labgrid's lesson: test
the framing against console bytes recorded from real boots, printk noise and CRLF included).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pexpect

from harness.errors import CommandTimeout, TransportError
from harness.vm.console import ConsoleTransport
from harness.vm.transport import CommandResult, as_shell


class LocalTransport:
    """The Transport protocol on the host: each command in `sh -c`, cwd a private temp dir."""

    name = "local"

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="harness-local-")
        self.root = Path(self._dir.name)

    def run(self, command: str | Sequence[str], timeout_s: float = 60.0) -> CommandResult:
        cmd = as_shell(command)
        # Own session: a timeout kills the command's children too (sh -c 'sleep 9; ...').
        proc = subprocess.Popen(
            ["sh", "-c", cmd],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise CommandTimeout(f"local: no reply to {cmd[:60]!r} within {timeout_s:.0f}s") from None
        rc = proc.returncode
        return CommandResult(128 - rc if rc < 0 else rc, out, err)  # signal n → 128+n, as sh does

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        path = self.root / remote  # an absolute `remote` replaces root, as in the guest
        try:
            path.write_bytes(data)
            path.chmod(mode)
        except OSError as e:
            raise TransportError(f"local: writing {remote} failed: {e.strerror}") from None

    def close(self) -> None:
        self._dir.cleanup()


_REQUEST = re.compile(rb"([^\s/]+)/\d+ (\S*)\n")
_END = re.compile(rb"(\S+?):E:-?\d+:[0-9a-f]{32}")


def console_on(fake: ReplayConsole) -> ConsoleTransport:
    """A ConsoleTransport reading a replayed console, on the replay's clock."""
    return ConsoleTransport(fake, fake.clock)


class ReplayConsole:
    """A fake pexpect child replaying console output recorded from a real guest.

    The agent answers requests strictly in order, so the k-th end marker in the transcript
    belongs to the k-th request sent. When request k arrives, the transcript up to its end
    marker is released, with the recorded request id rewritten to the id actually sent (the
    ConsoleTransport under test picks random ids). Requests in `held` get no output when they
    are sent: their reply comes out with the next request's, as a command that outlived its
    timeout does on the real console. Once the transcript runs out, expect() raises TIMEOUT at
    once (or EOF with eof=True: QEMU died).
    """

    def __init__(self, transcript: bytes, held: frozenset[int] = frozenset(), eof: bool = False) -> None:
        self._rest = transcript
        self._held = held
        self._eof = eof
        self._buf = b""
        self._released = 0  # requests whose reply (up to its end marker) is in the buffer
        self.sent: list[tuple[str, str]] = []  # (request id, decoded command), in order
        self.before: bytes = b""
        self.after: bytes = b""
        self.match: re.Match[bytes] | None = None
        self.buffer = b""  # pexpect's: what a reader left unread
        self.consumed = b""  # every byte read_nonblocking gave out
        self.now = 0.0  # a clock that moves only while the reader waits for data

    def clock(self) -> float:
        return self.now

    def read_nonblocking(self, size: int = 1, timeout: float | None = None) -> bytes:
        """pexpect's read: what the transcript released, else TIMEOUT after `timeout` (on the
        fake clock) or EOF once a dead QEMU's output is used up."""
        if not self._buf:
            if self._eof:
                raise pexpect.EOF("replayed transcript ended (QEMU exited)")
            self.now += timeout or 1.0
            raise pexpect.TIMEOUT("replayed transcript has nothing more")
        data, self._buf = self._buf[:size], self._buf[size:]
        self.consumed += data
        return data

    def send(self, data: bytes) -> int:
        m = _REQUEST.fullmatch(data)
        assert m, f"not an agent request line: {data!r}"
        payload = m.group(2)
        command = "__resend__" if payload == b"!resend" else base64.b64decode(payload).decode()
        self.sent.append((m.group(1).decode(), command))
        if len(self.sent) - 1 not in self._held:
            self._release(len(self.sent))
        return len(data)

    def _release(self, upto: int) -> None:
        """Move the transcript up to the end marker of request number `upto` into the buffer."""
        while self._released < upto:
            m = _END.search(self._rest)
            if m is None:
                self._buf += self._rest
                self._rest = b""
                return
            recorded, live = m.group(1), self.sent[self._released][0].encode()
            cut = self._rest.find(b"\n", m.end())
            cut = len(self._rest) if cut < 0 else cut + 1
            # The agent prints its end line twice: the copy belongs to this reply too.
            again = _END.match(self._rest, cut)
            if again and again.group(0) == m.group(0):
                nl = self._rest.find(b"\n", again.end())
                cut = len(self._rest) if nl < 0 else nl + 1
            self._buf += self._rest[:cut].replace(recorded, live)
            self._rest = self._rest[cut:].replace(recorded, live)
            self._released += 1

    def expect(self, pattern: re.Pattern[bytes], timeout: float | None = None) -> int:
        m = pattern.search(self._buf)
        if m is None:
            self.before, self.after, self.match = self._buf, b"", None
            if self._eof:
                raise pexpect.EOF("replayed transcript ended (QEMU exited)")
            raise pexpect.TIMEOUT(f"replayed transcript has no {pattern.pattern!r}")
        self.before, self.after, self.match = self._buf[: m.start()], m.group(0), m
        self._buf = self._buf[m.end() :]
        return 0
