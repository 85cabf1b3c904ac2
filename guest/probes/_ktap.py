"""Shared helpers for the guest probes: KTAP output, command line, /proc parsing.

Standard library only: the probes run on the guest's python3 (often the host's
userspace shared read-only), so nothing may need installing.

The contract is the same as for the C programs in cow_tests/:
  probe --list      print every case id, one per line (a fixed set)
  probe ID [ID...]  run those cases, numbered 1..k in the order given
  probe             run every case
KTAP on stdout: "KTAP version 1", "1..N", then per case "# ..." diagnostics and
one result line "ok N id", "not ok N id" or "ok N id # SKIP reason".
Exit code 0 if nothing failed, 1 if a case is "not ok", 2 for an unknown id.
"""

from __future__ import annotations

import errno
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

PASS = "pass"
FAIL = "fail"
SKIP = "skip"

Outcome = tuple[str, str]  # (PASS|FAIL|SKIP, reason)


def ok(reason: str = "") -> Outcome:
    return (PASS, reason)


def fail(reason: str) -> Outcome:
    return (FAIL, reason)


def skip(reason: str) -> Outcome:
    return (SKIP, reason)


class Case(NamedTuple):
    id: str
    run: Callable[[], Outcome]
    desc: str = ""


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


def diag(msg: str) -> None:
    """One "# ..." diagnostics line (stdout is flushed at once)."""
    sys.stdout.write("# " + _one_line(msg) + "\n")
    sys.stdout.flush()


def errno_name(err: int | None) -> str:
    if err is None:
        return "no errno"
    return errno.errorcode.get(err, "errno %d" % err)


class Mapping(NamedTuple):
    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str


def read_maps(pid: str = "self") -> list[Mapping]:
    """Parse /proc/<pid>/maps."""
    out: list[Mapping] = []
    with open("/proc/%s/maps" % pid) as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) < 5:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            out.append(
                Mapping(
                    start,
                    end,
                    fields[1],
                    int(fields[2], 16),
                    fields[3],
                    int(fields[4]),
                    fields[5].strip() if len(fields) > 5 else "",
                )
            )
    return out


def find_mapping(path: str, pid: str = "self") -> Mapping | None:
    """The first mapping whose name is exactly path (e.g. "[vvar]")."""
    for m in read_maps(pid):
        if m.path == path:
            return m
    return None


def _result_line(n: int, case_id: str, outcome: Outcome) -> str:
    status, reason = outcome
    if status == PASS:
        return "ok %d %s" % (n, case_id)
    if status == SKIP:
        return "ok %d %s # SKIP %s" % (n, case_id, _one_line(reason))
    return "not ok %d %s" % (n, case_id)


def _run_one(n: int, case: Case) -> str:
    diag("%s: %s" % (case.id, case.desc) if case.desc else case.id)
    try:
        outcome = case.run()
    except Exception as e:  # a probe bug must cost one case, not the run
        for line in traceback.format_exc().splitlines():
            diag(line)
        outcome = fail("probe raised %s: %s" % (type(e).__name__, e))
    if outcome[0] not in (PASS, FAIL, SKIP):
        outcome = fail("probe returned an invalid outcome %r" % (outcome,))
    if outcome[0] != SKIP and outcome[1]:
        diag("result: " + outcome[1])
    sys.stdout.write(_result_line(n, case.id, outcome) + "\n")
    sys.stdout.flush()
    return outcome[0]


def main(cases: Sequence[Case], argv: Sequence[str] | None = None) -> int:
    """Run the probe's command line; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    by_id = {c.id: c for c in cases}
    assert len(by_id) == len(cases), "duplicate case ids"

    if args == ["--list"]:
        for c in cases:
            sys.stdout.write(c.id + "\n")
        return 0
    for a in args:
        if a.startswith("-"):
            sys.stderr.write("usage: %s [--list | ID...]\n" % sys.argv[0])
            return 2
        if a not in by_id:
            sys.stderr.write("%s: unknown test id: %s\n" % (sys.argv[0], a))
            return 2
    selected = [by_id[a] for a in args] if args else list(cases)

    sys.stdout.write("KTAP version 1\n1..%d\n" % len(selected))
    sys.stdout.flush()
    counts = {PASS: 0, FAIL: 0, SKIP: 0}
    for n, case in enumerate(selected, 1):
        counts[_run_one(n, case)] += 1
    diag("Totals: pass:%d fail:%d skip:%d" % (counts[PASS], counts[FAIL], counts[SKIP]))
    return 1 if counts[FAIL] else 0
