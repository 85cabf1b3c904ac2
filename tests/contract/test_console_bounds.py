"""The console transport reads a hostile reply in linear time and bounded memory:
garbage before the end marker, a gzip bomb, a reply over the limit."""

from __future__ import annotations

import sys
import time

import pexpect
import pytest

from harness import limits
from harness.errors import CommandTimeout
from harness.vm.console import ConsoleTransport
from tests.helpers.paths import DATA

AGENT = DATA / "hostile_agent.py"


def _console(noise_mib: int, what: str) -> tuple[ConsoleTransport, pexpect.spawn]:
    child = pexpect.spawn(
        sys.executable, [str(AGENT), str(noise_mib), what], timeout=None, maxread=65536, echo=False
    )
    return ConsoleTransport(child), child


def test_64_mib_before_the_marker_costs_linear_time() -> None:
    console, child = _console(64, "small")
    t0 = time.monotonic()
    r = console.run("true", 120)
    elapsed = time.monotonic() - t0
    child.terminate(force=True)
    assert r.stdout == b"KTAP version 1\n1..1\nok 1 a\n"
    assert r.note == ""  # noise between the reply's own lines is not part of the reply
    assert elapsed < 20  # pexpect's expect took ~30 s for this (review B2c); ~2 s here


def test_a_gzip_bomb_in_a_reply_is_cut() -> None:
    console, child = _console(0, "bomb")
    r = console.run("true", 120)
    child.terminate(force=True)
    assert len(r.stdout) <= limits.MAX_PROGRAM_STDOUT_BYTES + 200
    assert "size cap" in r.note


def test_a_reply_over_the_limit_keeps_its_head_and_its_timeout() -> None:
    console, child = _console(0, "big")
    with pytest.raises(CommandTimeout) as e:
        console.run("true", 120)
    child.terminate(force=True)
    partial = e.value.partial
    assert partial is not None and "dropped" in partial.note  # type: ignore[attr-defined]
    assert partial.stdout.startswith(bytes(range(256)))  # type: ignore[attr-defined]
