"""Everything from the guest is bounded before the host parses, decompresses or stores it:
KTAP plans, gzip, per-case output, the head-and-tail helpers."""

from __future__ import annotations

import gzip
import os
import time
import tracemalloc

import pytest

from harness import limits
from harness.judge import ktap, outcomes
from harness.model import Expect, Outcome, Verdict
from harness.run import rundir
from tests.unit.test_runner_mapping import EMPTY, K612, SEL


def test_a_plan_bomb_allocates_nothing_and_says_why() -> None:
    tracemalloc.start()
    root = ktap.parse("KTAP version 1\n1..50000000\n")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20
    assert root.children == ()
    assert "1..50000000" in ktap.plan_problem(root)


def test_gaps_are_linear_not_quadratic() -> None:
    t0 = time.monotonic()
    root = ktap.parse(f"KTAP version 1\n1..{limits.MAX_KTAP_PLAN}\nok {limits.MAX_KTAP_PLAN} x\n")
    assert time.monotonic() - t0 < 2.0  # was 5.7 s for 20000 (review B1); now ~0.05 s
    assert len(root.children) == limits.MAX_KTAP_PLAN
    assert root.children[0].reason == "missing: result 1 never reported"
    assert ktap.plan_problem(root) == ""


def test_gaps_keep_their_place_among_out_of_order_results() -> None:
    root = ktap.parse("KTAP version 1\n1..5\nok 4 d\nok 2 b\n")
    assert [(c.number, c.outcome) for c in root.children] == [
        (1, Outcome.ERROR),
        (3, Outcome.ERROR),
        (4, Outcome.OK),
        (2, Outcome.OK),
        (5, Outcome.ERROR),
    ]


def test_result_lines_beyond_the_node_budget_are_counted_not_kept() -> None:
    n = limits.MAX_KTAP_NODES + 10
    root = ktap.parse("KTAP version 1\n" + "".join(f"ok {i} x\n" for i in range(1, n + 1)))
    assert len(root.children) == limits.MAX_KTAP_NODES
    assert "10 KTAP results dropped" in ktap.plan_problem(root)


def test_nested_plan_bombs_share_one_budget() -> None:
    sub = "    KTAP version 1\n    1..19999\n    ok 1 x\nok {n} s{n}\n"
    root = ktap.parse("KTAP version 1\n" + "".join(sub.format(n=i) for i in range(1, 8)))
    nodes = sum(len(c.children) for c in root.children) + len(root.children)
    assert nodes <= limits.MAX_KTAP_NODES
    assert "KTAP results dropped" in ktap.plan_problem(root)


def test_a_plan_bigger_than_the_cases_asked_is_an_error_of_the_program() -> None:
    root = ktap.parse("KTAP version 1\n1..4\nok 1 cow.a\nok 2 cow.b\nok 3 cow.c\n")
    why = ktap.plan_problem(root, len(SEL.ids))
    assert why == "KTAP plan 1..4 announces more results than the 3 cases it was asked to run"
    results = outcomes.program_invalid(outcomes.case_results(SEL, root, EMPTY, K612), why)
    assert {r.verdict for r in results} == {Verdict.ERROR}
    assert results[0].reason == why + " (it reported ok for this case)"
    assert ktap.plan_problem(ktap.parse("KTAP version 1\n1..3\nok 1 cow.a\n"), 3) == ""


# ---- gzip -------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_cut_by_the_size_cap() -> None:
    bomb = gzip.compress(bytes(300 << 20), 9)  # ~300 KiB in, 300 MiB out
    tracemalloc.start()
    data, note = limits.gunzip(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(data) <= limits.MAX_PROGRAM_STDOUT_BYTES + 200
    assert "size cap" in note and "dropped from the middle" in note
    assert peak < 3 * limits.MAX_PROGRAM_STDOUT_BYTES


def test_a_small_gzip_bomb_is_cut_by_the_ratio_cap() -> None:
    bomb = gzip.compress(bytes(40 << 20), 9)  # ~40 KiB in: 1030:1
    data, note = limits.gunzip(bomb)
    assert "ratio cap" in note and len(bomb) * limits.MAX_GZIP_RATIO <= 40 << 20


def test_a_flood_below_the_ratio_cap_keeps_its_last_results() -> None:
    flood = b"".join(b"# flood %08d %s\n" % (i, b"x" * 4000) for i in range(16_000)) + b"ok 1 last\n"
    data, note = limits.gunzip(gzip.compress(flood, 1))
    assert data.endswith(b"ok 1 last\n") and "ratio cap" not in note and "dropped from the middle" in note


def test_big_output_keeps_head_and_tail() -> None:
    text = b"".join(b"# line %d\n" % i for i in range(3_000_000)) + b"ok 1 last\n"
    data, note = limits.gunzip(gzip.compress(text, 1))
    assert data.startswith(b"# line 0\n") and data.endswith(b"ok 1 last\n")
    assert b"bytes dropped here" in data and "dropped from the middle" in note


def test_small_output_passes_untouched() -> None:
    assert limits.gunzip(gzip.compress(b"KTAP version 1\n")) == (b"KTAP version 1\n", "")


@pytest.mark.parametrize("junk", [b"junk", b"", os.urandom(64)])
def test_garbage_instead_of_gzip_is_a_decompress_error(junk: bytes) -> None:
    with pytest.raises(limits.DecompressError):
        limits.gunzip(junk)


def test_a_truncated_gzip_keeps_what_came() -> None:
    z = gzip.compress(b"".join(b"ok %d a\n" % i for i in range(100_000)))
    data, note = limits.gunzip(z[: len(z) // 2])
    assert data.startswith(b"ok 0 a\nok 1 a\n") and "ends early" in note


# ---- head and tail ------------------------------------------------------------------------------


def test_head_tail_says_how_much_was_dropped() -> None:
    text = "".join(f"line {i}\n" for i in range(100_000))
    cut = limits.head_tail(text, 10_000)
    assert len(cut) < 10_200
    assert cut.startswith("line 0\n") and cut.endswith("line 99999\n")
    dropped = int(cut.split("[harness: ")[1].split()[0])
    assert len(cut) - len(limits.dropped_note(dropped, "characters")) - 2 + dropped == len(text)


def test_head_tail_stream_is_bounded() -> None:
    h = limits.HeadTail(10, 10)
    for i in range(1000):
        h.write(b"%04d" % i)
    assert h.total == 4000 and h.dropped == 3980
    assert h.value().startswith(b"0000000100") and h.value().endswith(b"9709980999")
    assert b"3980 bytes dropped" in h.value()


# ---- per-case output, dmesg, console.log, SSH ------------------------------------------------------


def test_a_stored_result_is_bounded_and_says_what_was_cut() -> None:
    from harness.model import CaseResult, Expectation
    from harness.run import runner

    r = CaseResult(
        "a",
        "p",
        Outcome.NOT_OK,
        Verdict.FAIL,
        "r" * 100_000,
        "x\n" * 1_000_000,
        Expectation(Expect.PASS),
        kernel_events=tuple(f"WARNING {i}" for i in range(5000)),
    )
    b = runner.bounded(r)
    assert len(b.output) < limits.MAX_CASE_OUTPUT_CHARS + 200 and "characters dropped here" in b.output
    assert len(b.reason) < limits.MAX_REASON_CHARS + 200
    assert len(b.kernel_events) == limits.MAX_KERNEL_EVENTS and "+4951 more" in b.kernel_events[-1]
    small = CaseResult("a", "p", Outcome.OK, Verdict.PASS, "", "fine", Expectation(Expect.PASS))
    assert runner.bounded(small) is small


@pytest.mark.parametrize("junk", [b"junk", bytes(range(256)), b"\x1f\x8b\x08"])
def test_garbage_instead_of_gzipped_dmesg_is_a_note(junk: bytes) -> None:

    assert rundir.dmesg_text(junk).startswith(b"[harness: the guest's dmesg did not come back as gzip")
    assert rundir.dmesg_text(gzip.compress(b"[0.0] hello\n")) == b"[0.0] hello\n"
    assert rundir.dmesg_text(gzip.compress(b"x" * 1000)[:12]).endswith(
        b"[harness: the gzip stream ends early, after 1 bytes]\n"
    )


def test_console_log_keeps_head_and_tail_and_closes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from harness.vm.consolelog import ConsoleLog

    path = tmp_path / "console.log"
    log = ConsoleLog(path, head_bytes=1000, tail_bytes=500)
    for i in range(10_000):
        log.write(b"line %05d\n" % i)
    assert path.stat().st_size == 1000  # the tail waits in memory
    log.close()
    log.close()  # idempotent (kill after shutdown)
    data = path.read_bytes()
    assert data.startswith(b"line 00000\n") and data.endswith(b"line 09999\n")
    assert b"bytes dropped here" in data and len(data) < 1000 + 500 + 300
    again = ConsoleLog(path, head_bytes=1000, tail_bytes=500)  # the next boot: the bound is the file's
    again.write(b"more\n")
    again.close()
    assert path.read_bytes().endswith(b"more\n")


def test_log_since_reads_a_bounded_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from harness.vm import machine

    m = machine.Machine.__new__(machine.Machine)
    m.spec = type("S", (), {"run_dir": tmp_path})()
    (tmp_path / "console.log").write_bytes(b"a" * 5000 + b"harness: end x " + b"b" * 5000)
    text = m.log_since(10, limit=1000)
    assert len(text) < 1200 and text.startswith("a" * 500) and text.endswith("b" * 500)
    assert m.log_has(10, b"harness: end x ") and not m.log_has(6000, b"harness: end x ")


class _Chan:
    """A paramiko channel that sends `total` bytes of stdout, then EOF."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.eof_received = False

    def fileno(self) -> int:
        return 0

    def recv_ready(self) -> bool:
        if not self.left:
            self.eof_received = True
        return self.left > 0

    def recv(self, n: int) -> bytes:
        n = min(n, self.left)
        self.left -= n
        return b"y" * n

    def recv_stderr_ready(self) -> bool:
        return False


def test_ssh_receive_is_bounded() -> None:
    from harness.vm import sshtransport

    out, err, note = sshtransport._drain(_Chan(64 << 20), time.monotonic() + 60)  # type: ignore[arg-type]
    assert len(out) < limits.MAX_PROGRAM_STDOUT_BYTES + 200 and err == b""
    assert note.startswith(
        f"{(64 << 20) - limits.MAX_PROGRAM_STDOUT_BYTES} of {64 << 20} bytes of stdout dropped"
    )
