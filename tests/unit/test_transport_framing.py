"""ConsoleTransport framing against console output recorded from real boots (tests/data/console/).

Each recorded session is a list of steps; tests/data/console/record.py ran these very steps on
a real guest and saved what QEMU printed, byte-exact (CR CR LF line ends, printk lines). Here a
ReplayConsole plays the bytes back to a ConsoleTransport, which must get every reply right.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

import pytest

from harness.errors import CommandTimeout, GuestUnresponsive, TransportError
from harness.vm.console import ConsoleTransport
from harness.vm.transport import CommandResult, as_shell, end_marker, parse_frame, put_commands, request_line
from tests.helpers import paths
from tests.helpers.fakes import ReplayConsole, console_on

DATA = paths.DATA / "console"
ALL_BYTES = bytes(range(256))
PRINT_ALL_BYTES = "printf '" + "".join(f"\\{b:03o}" for b in ALL_BYTES) + "'"
SEQ_4000 = "".join(f"{i}\n" for i in range(1, 4001)).encode()


@dataclass(frozen=True)
class Step:
    command: str | tuple[str, ...]
    expect: CommandResult | None  # None: the step times out (CommandTimeout)
    timeout_s: float = 30.0
    put: tuple[bytes, str, int] | None = None  # put(data, remote, mode) before the command


def ok(stdout: bytes, rc: int = 0, stderr: bytes = b"") -> CommandResult:
    return CommandResult(rc, stdout, stderr)


SESSIONS: dict[str, list[Step]] = {
    "basic": [
        Step("uname -r", ok(b"6.12.118+deb12-amd64\n")),
        Step(r"printf 'crlf\r\nline\n'", ok(b"crlf\r\nline\n")),
        Step(r"printf '\377\376not utf-8\200\n'", ok(b"\xff\xfenot utf-8\x80\n")),
        Step("echo to-out; echo to-err >&2; exit 3", ok(b"to-out\n", 3, b"to-err\n")),
        Step(PRINT_ALL_BYTES, ok(ALL_BYTES)),
        Step(("printf", "%s|", "a b", "it's", "$HOME", 'x"y'), ok(b"a b|it's|$HOME|x\"y|")),
        Step("true", ok(b"")),
        Step(
            "md5sum /tmp/put.bin; stat -c %a /tmp/put.bin",
            ok(hashlib.md5(ALL_BYTES * 40).hexdigest().encode() + b"  /tmp/put.bin\n755\n"),
            put=(ALL_BYTES * 40, "/tmp/put.bin", 0o755),
        ),
    ],
    # kernel messages written while the agent prints a long reply: some land inside a frame
    # line, the checksum fails and the transport asks for the reply again (__resend__).
    "printk": [
        Step(
            '(for i in $(seq 1 10); do echo "<3>harness-noise $i" > /dev/kmsg; sleep 0.03; done)'
            " >/dev/null 2>&1 & seq 1 4000",
            ok(SEQ_4000),
            timeout_s=120.0,
        ),
        Step("sleep 1; echo after", ok(b"after\n")),
    ],
    # The command outlives its limit: the agent kills it and still replies (with a T line).
    "timeout": [
        Step("echo early; sleep 5; echo late", None, timeout_s=1.0),
        Step("echo next", ok(b"next\n")),
    ],
}
HELD: dict[str, frozenset[int]] = {}  # requests whose reply comes only with the next one


def play(console: ConsoleTransport, steps: list[Step]) -> list[CommandResult | None]:
    results: list[CommandResult | None] = []
    for step in steps:
        if step.put is not None:
            console.put(*step.put)
        try:
            results.append(console.run(step.command, step.timeout_s))
        except CommandTimeout:
            results.append(None)
    return results


def replay(name: str, **kw: object) -> tuple[ConsoleTransport, ReplayConsole]:
    fake = ReplayConsole((DATA / f"{name}.log").read_bytes(), HELD.get(name, frozenset()), **kw)  # type: ignore[arg-type]
    return console_on(fake), fake


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_recorded_session_replays_exactly(name: str) -> None:
    console, fake = replay(name)
    assert play(console, SESSIONS[name]) == [s.expect for s in SESSIONS[name]]


def test_recordings_are_byte_exact_console_output() -> None:
    # What QEMU's stdio gives through pexpect's pty: the guest's ONLCR and the host pty's
    # both add a CR, so lines end in CR CR LF. The parser must not depend on either.
    text = (DATA / "basic.log").read_bytes()
    assert b"\r\r\n" in text
    assert re.search(rb":E:3:[0-9a-f]{32}\r\r\n", text)


def test_printk_inside_a_frame_line_triggers_resend() -> None:
    text = (DATA / "printk.log").read_bytes()
    assert re.search(rb":O:[A-Za-z0-9+/=]*\[ *\d+\.\d+\] harness-noise", text), "recording lost its noise"
    console, fake = replay("printk")
    assert play(console, SESSIONS["printk"]) == [s.expect for s in SESSIONS["printk"]]
    commands = [c for _, c in fake.sent]
    assert "__resend__" in commands
    assert commands.count("__resend__") <= 3


def test_timed_out_command_is_killed_in_the_guest_and_keeps_its_output() -> None:
    console, fake = replay("timeout")
    with pytest.raises(CommandTimeout) as e:
        console.run("echo early; sleep 5; echo late", 1.0)
    assert e.value.partial == ok(b"early\n", 137)  # SIGKILL, after what it printed
    assert console.run("echo next", 30.0) == ok(b"next\n")
    assert fake.sent[0][0] != fake.sent[1][0]


def test_stale_frame_of_an_abandoned_request_is_skipped() -> None:
    """A reply the host stopped waiting for (guest slow, not dead) comes before the next one."""
    stale = agent_reply("c0000000100001", 0, b"late\n")
    fresh = agent_reply("c0000000100002", 0, b"next\n")
    fake = ReplayConsole(stale + fresh, held=frozenset({0}))
    console = console_on(fake)
    with pytest.raises(GuestUnresponsive):
        console.run("sleep 99", 1)
    assert console.run("echo next", 30.0) == ok(b"next\n")
    assert b"bGF0ZQo=" in fake.consumed  # base64 of "late\n": the stale frame was there, skipped


# --- synthetic transcripts: cases a real boot shows too rarely to record on demand ---


def agent_reply(req_id: str, rc: int, out: bytes, err: bytes = b"", noise: bytes = b"") -> bytes:
    """What guest/agent.sh prints for one reply (busybox base64 wraps at 76 columns), with
    `noise` spliced into the middle of the first stdout line, as a printk would be."""

    def b64_lines(data: bytes) -> list[bytes]:
        enc = base64.b64encode(data)
        return [enc[i : i + 76] for i in range(0, len(enc), 76)]

    o, r = b64_lines(out), b64_lines(err)
    md5 = hashlib.md5(b"".join(x + b"\n" for x in o + r)).hexdigest()
    lines = [f"{req_id}:O:".encode() + x for x in o] + [f"{req_id}:R:".encode() + x for x in r]
    if noise and lines:
        lines[0] = lines[0][:20] + noise + lines[0][20:]
    lines.append(f"{req_id}:E:{rc}:{md5}".encode())
    return b"".join(x + b"\r\r\n" for x in lines)


NOISE = b"\r\r\n[   42.000000] BUG: something noisy\r\r\n"


def test_synthetic_reply_matches_agent_format() -> None:
    text = agent_reply("c0000000100001", 3, b"to-out\n", b"to-err\n")
    m = end_marker("c0000000100001").search(text)
    assert m
    frame = parse_frame("c0000000100001", text[: m.start()], int(m.group(1)), m.group(2).decode())
    assert frame == type(frame)(3, b"to-out\n", b"to-err\n", True)


def test_corrupted_every_time_gives_up_with_transport_error() -> None:
    data = bytes(range(256)) * 4
    transcript = b"".join(agent_reply(f"c0000000100{i:03d}", 0, data, noise=NOISE) for i in range(1, 6))
    console = console_on(ReplayConsole(transcript))
    with pytest.raises(TransportError, match="corrupted"):
        console.run("cat big", 10)


def test_printk_between_lines_needs_no_resend() -> None:
    reply = agent_reply("c0000000100001", 0, b"x" * 300)
    first_eol = reply.index(b"\n") + 1
    transcript = reply[:first_eol] + NOISE + reply[first_eol:]
    fake = ReplayConsole(transcript)
    assert console_on(fake).run("x", 10) == ok(b"x" * 300)
    assert [c for _, c in fake.sent] == ["x"]


def test_printk_inside_the_first_end_line_is_covered_by_its_copy() -> None:
    """The agent prints the end line twice; a kernel message cutting the first must not hang us."""
    reply = agent_reply("c0000000100001", 5, b"data\n")
    end_line = reply[reply.rindex(b"c0000000100001:E:") :]
    broken = end_line[:20] + NOISE + end_line[20:]
    transcript = reply[: -len(end_line)] + broken + end_line + agent_reply("c0000000100002", 0, b"next\n")
    fake = ReplayConsole(transcript)
    console = console_on(fake)
    assert console.run("x", 10) == ok(b"data\n", 5)
    assert console.run("y", 10) == ok(b"next\n")


def test_doubled_end_line_is_one_reply() -> None:
    first = agent_reply("c0000000100001", 0, b"a\n")
    second = agent_reply("c0000000100002", 1, b"b\n")
    end1 = first[first.rindex(b"c0000000100001:E:") :]
    end2 = second[second.rindex(b"c0000000100002:E:") :]
    fake = ReplayConsole(first + end1 + second + end2)
    console = console_on(fake)
    assert console.run("x", 10) == ok(b"a\n")
    assert console.run("y", 10) == ok(b"b\n", 1)


def test_qemu_exit_mid_reply_is_transport_error() -> None:
    partial = agent_reply("c0000000100001", 0, b"y" * 500).split(b":E:")[0]
    console = console_on(ReplayConsole(partial, eof=True))
    with pytest.raises(TransportError, match="QEMU exited"):
        console.run("x", 10)


def test_no_reply_at_all_means_the_guest_is_unresponsive() -> None:
    console = console_on(ReplayConsole(b"[    1.0] unrelated\r\r\n"))
    with pytest.raises(GuestUnresponsive, match="not responding"):
        console.run("sleep 99", 1)


def test_request_line_carries_the_limit() -> None:
    assert request_line("c1", "true", 30).startswith(b"c1/30 ")


# --- the pure helpers in harness.vm.transport ---


def test_request_line_is_one_line_of_base64() -> None:
    line = request_line("c1", "echo 'a b'\nexit 3\n")
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    rid, b64 = line[:-1].split(b" ")
    assert rid == b"c1/0" and base64.b64decode(b64) == b"echo 'a b'\nexit 3\n"


def test_as_shell_quotes_lists_and_keeps_strings() -> None:
    assert as_shell("echo $HOME") == "echo $HOME"
    assert as_shell(["printf", "%s", "a b", "$x", "it's"]) == "printf %s 'a b' '$x' 'it'\"'\"'s'"


def test_put_commands_rebuild_the_data() -> None:
    data = bytes(range(256)) * 30
    cmds = put_commands(data, "/tmp/a b", 0o640, chunk=1000)
    pieces = [c.split(" ")[2] for c in cmds[1:-1]]
    assert base64.b64decode("".join(pieces)) == data
    assert cmds[-1].endswith("chmod 640 '/tmp/a b'")


def test_parse_frame_takes_tags_after_printk_prefix() -> None:
    text = b"[  1.0] noise c9:O:aGk=\r\r\nc9:R:\r\r\n"  # a printk with no newline before the tag
    md5 = hashlib.md5(b"aGk=\n\n").hexdigest()
    frame = parse_frame("c9", text, 0, md5)
    assert (frame.stdout, frame.stderr, frame.intact) == (b"hi", b"", True)
