"""Everything from the guest is bounded before the host parses, decompresses or stores it
(issue 15): KTAP plans, gzip, per-case output, the head-and-tail helpers."""

from __future__ import annotations

import gzip
import os
import time
import tracemalloc

import pytest

from harness import ktap, limits, outcomes
from harness.model import Outcome, Verdict

from test_runner_mapping import EMPTY, K612, SEL


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
        (1, Outcome.ERROR), (3, Outcome.ERROR), (4, Outcome.OK), (2, Outcome.OK), (5, Outcome.ERROR)]


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


def test_a_gzip_bomb_is_cut_by_the_ratio_cap() -> None:
    bomb = gzip.compress(bytes(300 << 20), 9)  # ~300 KiB in, 300 MiB out
    tracemalloc.start()
    data, note = limits.gunzip(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(data) <= limits.MAX_PROGRAM_STDOUT_BYTES + 200
    assert "ratio cap" in note and "dropped from the middle" in note
    assert peak < 3 * limits.MAX_PROGRAM_STDOUT_BYTES


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
