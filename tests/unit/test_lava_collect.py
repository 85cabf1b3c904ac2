"""harness.lavalog and harness.lavacollect: a LAVA job's log (lava-run's JSON lines, a server's
YAML records) read back into console lines, the guest's frames (made here by the very shell
function the job runs, under busybox) decoded and checked, and each program judged as a local
run judges it: expectations per kernel, kernel reports attributed per case by the markers, a
guest lost in the middle of a program."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.judge import expect
from harness.model import Kernel, KernelVersion, Outcome, Verdict
from harness.report import lava, lavacollect, lavalog
from harness.suites import registry as suites

KERNEL = Kernel(
    "debian:6.12", Path("/nonexistent/bzImage"), "6.12.118+deb12-amd64", KernelVersion(6, 12, 118), None
)
PROG = suites.Program("cow_demo", "cow", Path("/nonexistent"), "cow_tests/cow_demo")
IDS = ("cow.demo.a", "cow.demo.b", "cow.demo.c")
SEL = suites.Selected(PROG, IDS)


def busybox_frame(name: str, data: bytes, tmp: Path) -> list[str]:
    """The console lines the job's own `frame` shell function prints for `data`."""
    bb = shutil.which("busybox") or "/bin/busybox"
    if not Path(bb).exists():
        pytest.skip("busybox not installed (ci/setup.sh installs busybox-static)")
    script = lava.autorun_script([], "{}", "true")
    func = script[script.index("frame() {") : script.index("\n}\n") + 3]
    (tmp / "data").write_bytes(data)
    # the function writes its scratch file to /tmp/.frame, as in the guest
    r = subprocess.run(
        [bb, "sh", "-c", func + f'frame {name} "$1"', "sh", str(tmp / "data")],
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout.splitlines()


def rec(text: str, dt: str = "2026-12-05T03:00:00.000000", lvl: str = "target") -> str:
    return json.dumps({"dt": dt, "lvl": lvl, "msg": text})


KTAP = "KTAP version 1\n1..3\nok 1 cow.demo.a\nnot ok 2 cow.demo.b\nok 3 cow.demo.c # SKIP no THP\n"


def console(tmp: Path, ktap: str = KTAP, warn_in: str = "", lost: bool = False) -> list[str]:
    """A job's console for SEL: markers in the kernel log, KTAP live, then the frames."""
    lines = [lava.BEGIN, f"{lava.PROGRAM}cow_demo", "[    5.000000] harness: begin cow_demo"]
    for n, line in enumerate(ktap.splitlines()):
        lines.append(line)
        if line.startswith(("ok", "not ok")):
            case = line.split()[2] if line.startswith("ok") else line.split()[3]
            if case == warn_in:
                lines += [
                    "[    5.100000] ------------[ cut here ]------------",
                    "[    5.100001] WARNING: CPU: 1 PID: 77 at mm/memory.c:123 do_demo+0x1/0x2",
                    "[    5.100002] ---[ end trace 0000000000000000 ]---",
                ]
            lines.append(f"[    5.{200 + n}000] harness: {line}")
            if lost and case == "cow.demo.a":
                return lines + ["[    6.000000] Kernel panic - not syncing: demo"]
    lines.append("[    6.000000] harness: end cow_demo rc=1 tainted=0")
    lines += busybox_frame("out-cow_demo", ktap.encode(), tmp)
    lines += busybox_frame("err-cow_demo", b"", tmp)
    lines.append(f"{lava.RC}cow_demo 1")
    lines.append(lava.END)
    return lines


def log_of(lines: list[str]) -> lavalog.JobLog:
    text = "\n".join(
        ["not a record", *(rec(x, dt=f"2026-12-05T03:00:{i % 60:02d}.000000") for i, x in enumerate(lines))]
    )
    return lavalog.parse_job_log(text)


def judged(log: lavalog.JobLog, fail_on_report: bool = True) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    rules = expect.RuleSet()
    results, _ = lavacollect.judge(log, [SEL], KERNEL, rules, fail_on_report)
    return {r.id: (r.outcome.value, r.verdict.value, r.kernel_events) for r in results}


def test_frames_made_by_the_guest_function_decode(tmp_path: Path) -> None:
    data = ("x" * 5000 + "\nlast line\n").encode()
    fr = lavalog.frames([lavalog.ConsoleLine("", t) for t in busybox_frame("out-p", data, tmp_path)])
    assert fr["out-p"].data == data and not fr["out-p"].problem


def test_a_frame_a_kernel_line_broke_is_damaged_not_misread(tmp_path: Path) -> None:
    lines = busybox_frame("out-p", bytes(range(256)) * 4, tmp_path)  # gzip leaves it long: several lines
    assert len(lines) > 3
    lines[1] = lines[1][:20] + "[    1.000000] x" + lines[1][20:]
    fr = lavalog.frames([lavalog.ConsoleLine("", t) for t in lines])
    assert fr["out-p"].data is None and "md5" in fr["out-p"].problem
    cut = lavalog.frames([lavalog.ConsoleLine("", t) for t in lines[:-1]])
    assert cut["out-p"].data is None and "ends inside" in cut["out-p"].problem


def test_a_server_log_reads_like_lava_runs(tmp_path: Path) -> None:
    """`lavacli jobs logs --raw` gives YAML records, `- {...}` a line; lava-run JSON lines."""
    lines = console(tmp_path)
    server = (
        "\n".join(f"- {rec(x)}" for x in lines) + "\n- {dt: '2026-12-05T03:01:00', lvl: results, "
        "msg: {definition: lava, case: job, result: pass}}\n"
    )
    log = lavalog.parse_job_log(server)
    assert [c.text for c in log.console] == lines and log.job_result == "pass"
    assert judged(log) == judged(log_of(lines))


def test_a_program_is_judged_as_a_local_run_judges_it(tmp_path: Path) -> None:
    got = judged(log_of(console(tmp_path)))
    assert got == {
        "cow.demo.a": ("ok", "PASS", ()),
        "cow.demo.b": ("not_ok", "FAIL", ()),
        "cow.demo.c": ("skip", "ERROR", ()),
    }  # a SKIP no rule explains is unexpected


def test_a_kernel_report_is_blamed_on_the_case_it_happened_in(tmp_path: Path) -> None:
    got = judged(log_of(console(tmp_path, warn_in="cow.demo.a")))
    assert got["cow.demo.a"][1] == "FAIL" and got["cow.demo.a"][2] and "WARNING" in got["cow.demo.a"][2][0]
    assert got["cow.demo.b"][2] == () and got["cow.demo.c"][2] == ()


def test_a_damaged_frame_falls_back_to_the_ktap_on_the_console(tmp_path: Path) -> None:
    lines = console(tmp_path)
    i = next(n for n, t in enumerate(lines) if t.startswith(lava.FRAME + "out-cow_demo:") and "end:" not in t)
    lines[i] = lines[i][:-3] + "???"
    log = log_of(lines)
    rules = expect.RuleSet()
    results, notes = lavacollect.judge(log, [SEL], KERNEL, rules)
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.NOT_OK, Outcome.SKIP]
    assert any("md5" in n for n in notes)


def test_a_guest_lost_in_a_program_keeps_what_the_markers_say(tmp_path: Path) -> None:
    got = judged(log_of(console(tmp_path, lost=True)))
    assert got["cow.demo.a"][:2] == ("ok", "PASS")
    assert got["cow.demo.b"][1] == "ERROR" and got["cow.demo.c"][1] == "ERROR"


def test_a_program_the_job_never_reached_is_an_error_saying_so(tmp_path: Path) -> None:
    log = log_of([lava.BEGIN])
    results, _ = lavacollect.judge(log, [SEL], KERNEL, expect.RuleSet())
    assert {r.verdict for r in results} == {Verdict.ERROR}
    assert all("never started" in r.reason for r in results)


def test_sections_bound_a_program_by_its_rc_line() -> None:
    lines = [
        lavalog.ConsoleLine(f"2026-12-05T03:00:0{i}", t)
        for i, t in enumerate(
            ["x", f"{lava.PROGRAM}p1", "ok 1 a", f"{lava.RC}p1 0", f"{lava.PROGRAM}p2", "ok 1 b"]
        )
    ]
    s = lavalog.sections(lines)
    assert s["p1"] == lavalog.Section(1, 4, 0, 2.0)
    assert s["p2"].rc is None and s["p2"].end == 6


def test_lava_own_verdicts_are_read_per_case() -> None:
    res: list[dict[str, Any]] = [
        {"definition": "harness-cow", "case": "cow.x", "result": "pass", "extra": {"test_case_id": "cow.x"}},
        {"definition": "lava", "case": "job", "result": "pass"},
    ]
    assert lavalog.lava_verdicts(res, "harness-cow") == {"cow.x": "pass"}


def test_no_log_and_no_plan_are_one_clear_error(tmp_path: Path) -> None:
    from harness.errors import InputError

    (tmp_path / "x.log").write_text("hello\n")
    with pytest.raises(InputError, match="not a LAVA job log"):
        lavacollect.read_log(tmp_path / "x.log")
    with pytest.raises(InputError, match="holds no LAVA job log"):
        lavacollect.find_log(tmp_path)
    (tmp_path / "job.log").write_text(rec("booting", lvl="target") + "\n")
    log = lavacollect.read_log(lavacollect.find_log(tmp_path))
    with pytest.raises(InputError, match="no harness plan"):
        lavacollect._plan(log, lavalog.frames(log.console), None)


def test_lava_s_own_reading_is_checked_against_ours(tmp_path: Path) -> None:
    log = log_of(console(tmp_path))
    results, _ = lavacollect.judge(log, [SEL], KERNEL, expect.RuleSet())
    agree = {"cow.demo.a": "pass", "cow.demo.b": "fail", "cow.demo.c": "skip"}
    assert lavacollect.monitor_differences(results, agree) == []
    assert lavacollect.monitor_differences(results, {**agree, "cow.demo.b": "pass"}) == [
        "cow.demo.b: LAVA pass, KTAP not_ok"
    ]
    assert lavacollect.monitor_differences(results, {}) == []  # no monitor result: not counted
