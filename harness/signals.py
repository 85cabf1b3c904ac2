"""SIGTERM is Ctrl-C, and the report is written whatever arrives while it is.

A CI cancel or timeout (GitLab, GitHub, `timeout(1)`) sends SIGTERM; a person sends SIGINT.
Both stop the run the same way: the finally paths kill QEMU, remove the scratch images and
write every report; the exit code says which (130 for SIGINT, 143 for SIGTERM, as a shell
reports a process killed by it). While the reports are written, a second signal is only noted
(`held`): cutting the JUnit short would lose every verdict in it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so every path that handles
    Ctrl-C handles it too."""


def exit_code(e: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(e, Terminated) else EXIT_SIGINT


def reason(code: int) -> str:
    return "terminated (SIGTERM)" if code == EXIT_SIGTERM else "interrupted (Ctrl-C)"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (outside the main thread: nothing to do)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def held(note: str = "harness: writing the reports first") -> Iterator[list[int]]:
    """Within the block SIGINT and SIGTERM do not interrupt: each is noted in the yielded list
    (and said once on stderr). The caller decides what a noted signal means afterwards."""
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def note_it(signum: int, frame: FrameType | None) -> None:
        if not seen:
            print(note, file=sys.stderr, flush=True)
        seen.append(signum)

    old = {s: signal.signal(s, note_it) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for s, h in old.items():
            signal.signal(s, h)
