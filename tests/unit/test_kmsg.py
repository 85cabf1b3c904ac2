"""harness.judge.kmsg against recorded kernel reports (tests/data/kmsg/, see its README)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness.judge import kmsg
from harness.model import KernelEvent
from tests.helpers.paths import DATA

KMSG = DATA / "kmsg"
STAMP = re.compile(r"\[\s*\d+\.\d{6}\]")


def load(name: str) -> str:
    # Bytes decoded by hand: read_text() would turn CRLF into LF and hide what we test.
    return (KMSG / name).read_bytes().decode("utf-8", errors="surrogateescape")


def kinds_titles(text: str) -> list[tuple[str, str]]:
    return [(e.kind, e.title) for e in kmsg.scan(text)]


def only(text: str, kind: str) -> KernelEvent:
    (event,) = [e for e in kmsg.scan(text) if e.kind == kind]
    return event


# ---- every recorded log: the events found, in order ------------------------------------------

EXPECTED: dict[str, list[tuple[str, str]]] = {
    "real-6.12-warning.log": [
        (
            "warning",
            "WARNING: CPU: 0 PID: 185 at <build>/mod/kmsgsplat.c:10 splat_warn+0x16/0x20 [kmsgsplat]",
        ),
        (
            "warning",
            "WARNING: CPU: 0 PID: 200 at <build>/mod/kmsgsplat.c:11 splat_warn_on+0x5/0x10 [kmsgsplat]",
        ),
    ],
    "real-6.1-warning.log": [
        (
            "warning",
            "WARNING: CPU: 0 PID: 143 at <build>/mod61/kmsgsplat.c:10 splat_warn+0x16/0x20 [kmsgsplat]",
        ),
        (
            "warning",
            "WARNING: CPU: 0 PID: 158 at <build>/mod61/kmsgsplat.c:11 splat_warn_on+0x5/0x10 [kmsgsplat]",
        ),
    ],
    "real-6.12-kernel-bug.log": [("bug", "kernel BUG at <build>/mod/kmsgsplat.c:12!")],
    # A boot under TCG that died of QEMU's cross-modifying code, not of the kernel (machine.py
    # retries such a boot once).
    "real-6.12-tcg-boot-oops-int3.log": [
        ("oops", "Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"),
        ("oops", "Oops: int3: 0000 [#2] PREEMPT SMP NOPTI"),
        ("panic", "Kernel panic - not syncing: Fatal exception in interrupt"),
    ],
    "real-6.1-kernel-bug-null-deref.log": [
        ("bug", "kernel BUG at <build>/mod61/kmsgsplat.c:12!"),
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
    ],
    "real-6.12-null-deref.log": [
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
    ],
    "real-6.12-gpf.log": [
        ("gpf", "Oops: general protection fault, maybe for address 0xffffffff: 0000 [#3] PREEMPT SMP NOPTI"),
    ],
    "real-6.1-gpf-page-fault.log": [
        ("gpf", "general protection fault, maybe for address 0xffffffff: 0000 [#3] PREEMPT SMP NOPTI"),
        ("bug", "BUG: unable to handle page fault for address: ffffc9ffdead0000"),
    ],
    "real-6.12-page-fault.log": [
        ("bug", "BUG: unable to handle page fault for address: ffffc9ffdead0000"),
    ],
    "real-6.12-scheduling-while-atomic.log": [
        ("bug", "BUG: scheduling while atomic: sh/275/0x00000002"),
        ("bug", "BUG: scheduling while atomic: sh/275/0x00000000"),
    ],
    "real-6.12-kfence.log": [
        ("kfence", "BUG: KFENCE: use-after-free read in splat_kfence+0x9d/0xb0 [kmsgsplat]"),
    ],
    "real-6.12-slub-redzone.log": [
        ("bug", "BUG kmalloc-64 (Tainted: G    B D W  OE     ): Object corrupt"),
    ],
    "real-6.1-slub-redzone.log": [
        ("bug", "BUG kmalloc-64 (Tainted: G      D W  OE     ): Right Redzone overwritten"),
    ],
    "real-6.12-rcu-stall-soft-lockup.log": [
        ("rcu_stall", "rcu: INFO: rcu_preempt self-detected stall on CPU"),
        ("soft_lockup", "watchdog: BUG: soft lockup - CPU#0 stuck for 9s! [sh:320]"),
        ("rcu_stall", "rcu: INFO: rcu_preempt self-detected stall on CPU"),
    ],
    "real-6.1-rcu-detected-stalls.log": [
        ("rcu_stall", "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
        ("rcu_stall", "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
    ],
    "real-6.12-hung-task.log": [
        ("hung_task", "INFO: task sh:210 blocked for more than 3 seconds."),
        ("hung_task", "INFO: task sh:210 blocked for more than 6 seconds."),
        ("hung_task", "INFO: task sh:210 blocked for more than 9 seconds."),
    ],
    "real-6.12-hung-task-garbled-sysrq-w.log": [
        ("hung_task", "INFO: task sh:210 blocked for more than 21 seconds."),
        ("hung_task", "INFO: task sh:210 blocked for more than 28 seconds."),
    ],
    "real-6.12-sysrq-l-nmi-backtrace.log": [],
    "real-6.12-sysrq-crash-panic.log": [
        ("panic", "Kernel panic - not syncing: sysrq triggered crash"),
    ],
    "real-6.12-oops-then-panic.log": [
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
        ("panic", "Kernel panic - not syncing: Fatal exception"),
    ],
    "real-6.1-oops-then-panic.log": [
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
        ("panic", "Kernel panic - not syncing: Fatal exception"),
    ],
    "synth-kasan.log": [
        ("kasan", "BUG: KASAN: slab-out-of-bounds in gup_test_ioctl+0x8d4/0xa10"),
        ("kasan", "BUG: KASAN: slab-use-after-free in folio_try_get+0x1c/0x90"),
    ],
    "synth-ubsan.log": [
        ("ubsan", "UBSAN: array-index-out-of-bounds in mm/gup_test.c:214:23"),
        ("ubsan", "UBSAN: shift-out-of-bounds in mm/huge_memory.c:612:18"),
    ],
    "synth-lockdep.log": [
        ("lockdep", "WARNING: possible circular locking dependency detected"),
        ("lockdep", "WARNING: suspicious RCU usage"),
        ("lockdep", "WARNING: possible recursive locking detected"),
        ("lockdep", "BUG: MAX_LOCKDEP_CHAIN_HLOCKS too low!"),
    ],
    "synth-rcu-stall-kthread-starved.log": [
        ("rcu_stall", "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
    ],
    "synth-hard-lockup-panic.log": [
        ("hard_lockup", "watchdog: Watchdog detected hard LOCKUP on cpu 1"),
        ("panic", "Kernel panic - not syncing: Hard LOCKUP"),
    ],
    "synth-mm-bugs-memory-failure.log": [
        ("bug", "BUG: sleeping function called from invalid context at mm/gup.c:1189"),
        ("bug", "BUG: Bad page state in process cow_fork  pfn:10a3c5"),
        ("bug", "BUG: Bad rss-counter state mm:00000000b583043e type:MM_ANONPAGES val:1"),
        ("bug", "BUG: Bad rss-counter state mm:00000000b583043e type:MM_SWAPENTS val:-1"),
    ],
    "synth-interleaved-warning.log": [
        (
            "warning",
            "WARNING: CPU: 0 PID: 185 at <build>/mod/kmsgsplat.c:10 splat_warn+0x16/0x20 [kmsgsplat]",
        ),
        (
            "warning",
            "WARNING: CPU: 0 PID: 200 at <build>/mod/kmsgsplat.c:11 splat_warn_on+0x5/0x10 [kmsgsplat]",
        ),
    ],
    "synth-markers-crash.log": [
        ("warning", "WARNING: CPU: 1 PID: 412 at mm/huge_memory.c:2718 __split_huge_pmd_locked+0x7d2/0x900"),
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000008"),
        ("panic", "Kernel panic - not syncing: Fatal exception"),
    ],
}


def test_every_recorded_log_has_an_expectation() -> None:
    assert sorted(p.name for p in KMSG.glob("*.log")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_events_found(name: str) -> None:
    assert kinds_titles(load(name)) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_lines_point_into_the_text(name: str) -> None:
    text = load(name)
    raw = text.split("\n")
    for e in kmsg.scan(text):
        assert e.title in raw[e.start]
        assert e.start <= e.end < len(raw)
        excerpt = e.excerpt.split("\n")
        assert excerpt[0] == e.title
        assert excerpt[-1] and excerpt[-1] in raw[e.end].replace("\r", "")
        assert len(excerpt) <= kmsg.MAX_REPORT_LINES
        assert not STAMP.search(e.excerpt), "timestamps are stripped"
        assert "\r" not in e.excerpt and "\x1b" not in e.excerpt


def test_every_kind_is_covered_by_a_recorded_log() -> None:
    seen = {kind for events in EXPECTED.values() for kind, _ in events}
    assert seen == set(kmsg.KINDS)


# ---- report extents ----------------------------------------------------------------------------


def test_warning_runs_to_end_trace_and_keeps_its_message() -> None:
    first, second = kmsg.scan(load("real-6.12-warning.log"))
    assert first.message == "kmsgsplat: WARN with a message, value=42"
    assert second.message == ""  # WARN_ON(1) prints nothing between cut-here and the header
    for e in (first, second):
        lines = e.excerpt.split("\n")
        assert lines[1].startswith("Modules linked in: kmsgsplat(OE)")
        assert "Call Trace:" in lines
        assert lines[-1] == "---[ end trace 0000000000000000 ]---"
        assert "harness:" not in e.excerpt


def test_bug_keeps_its_oops_line_and_the_register_summary_after_end_trace() -> None:
    (e,) = kmsg.scan(load("real-6.12-kernel-bug.log"))
    lines = e.excerpt.split("\n")
    assert lines[1] == "Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"
    end = lines.index("---[ end trace 0000000000000000 ]---")
    # x86 repeats the oopsing registers after the end marker ("executive summary")
    assert lines[end + 1] == "RIP: 0010:splat_bug+0x5/0x10 [kmsgsplat]"
    assert lines[-1] == "PKRU: 55555554"


@pytest.mark.parametrize("name", ["real-6.12-oops-then-panic.log", "real-6.1-oops-then-panic.log"])
def test_panic_after_oops_is_its_own_event(name: str) -> None:
    bug, panic = kmsg.scan(load(name))
    assert any(line.startswith("Oops: ") for line in bug.excerpt.split("\n")[1:6])
    assert bug.end + 1 == panic.start
    assert panic.excerpt.split("\n")[1].startswith("Kernel Offset: 0x")


def test_panic_with_its_call_trace() -> None:
    (e,) = kmsg.scan(load("real-6.12-sysrq-crash-panic.log"))
    lines = e.excerpt.split("\n")
    assert " sysrq_handle_crash+0x1a/0x20" in lines
    assert lines[-1].startswith("Kernel Offset: ")  # panic=-1: no "---[ end Kernel panic"


def test_hung_tasks_are_not_deduplicated_and_end_with_their_trace() -> None:
    events = kmsg.scan(load("real-6.12-hung-task.log"))
    assert len(events) == 3
    for e in events[:2]:
        lines = e.excerpt.split("\n")
        assert lines[3].startswith("task:sh              state:D")
        assert lines[-1] == " </TASK>"
        assert lines[-2].startswith("R13: ")


def test_garbled_console_line_stays_inside_the_report() -> None:
    first, _ = kmsg.scan(load("real-6.12-hung-task-garbled-sysrq-w.log"))
    # a clocksource message overwrote part of a register line: it is still the report's line
    assert "RCX: 000sec: 2141192702 wd_nsec: 2141193110" in first.excerpt
    assert first.excerpt.endswith(" </TASK>")
    assert "sysrq: Show Blocked State" not in first.excerpt


def test_kfence_report_runs_to_its_closing_rule() -> None:
    e = only(load("real-6.12-kfence.log"), "kfence")
    lines = e.excerpt.split("\n")
    assert lines[-1] == "=" * 66
    assert "" in lines  # KFENCE separates its sections with empty lines
    assert any(line.startswith("allocated by task 290") for line in lines)
    assert any(line.startswith("freed by task 290") for line in lines)


@pytest.mark.parametrize("name", ["real-6.12-slub-redzone.log", "real-6.1-slub-redzone.log"])
def test_slub_report_keeps_its_fix_lines(name: str) -> None:
    (e,) = kmsg.scan(load(name))
    assert e.excerpt.split("\n")[-1].startswith("FIX kmalloc-64: Object at 0x")


def test_warning_inside_slub_report_is_not_counted_twice() -> None:
    (e,) = kmsg.scan(load("real-6.12-slub-redzone.log"))
    assert "WARNING: CPU: 0 PID: 305 at mm/slub.c:1127 object_err+0x1dc/0x2c0" in e.excerpt


def test_rcu_stall_spans_nmi_backtrace_and_kthread_dump() -> None:
    (e,) = kmsg.scan(load("synth-rcu-stall-kthread-starved.log"))
    lines = e.excerpt.split("\n")
    assert "NMI backtrace for cpu 1" in lines
    assert "rcu: RCU grace-period kthread stack dump:" in lines
    assert lines[-1] == "NMI backtrace for cpu 1 skipped: idling at pv_native_safe_halt+0xf/0x20"


def test_rcu_stall_on_6_1_ends_before_the_nmi_handler_note() -> None:
    first, second = kmsg.scan(load("real-6.1-rcu-detected-stalls.log"))
    assert "\t(detected by 1, t=752 jiffies, g=381, q=9 ncpus=2)" in first.excerpt.split("\n")
    assert "NMI backtrace for cpu 0" in first.excerpt.split("\n")
    assert first.excerpt.endswith(" </TASK>")
    assert "took too long" not in first.excerpt


def test_lockdep_reports() -> None:
    circular, rcu, recursive, max_hlocks = kmsg.scan(load("synth-lockdep.log"))
    assert " *** DEADLOCK ***" in circular.excerpt.split("\n")
    assert circular.excerpt.endswith(" </TASK>")
    assert "lockdep_rcu_suspicious" in rcu.excerpt
    # lockdep's own WARN inside its report: part of it, not a second event
    assert "WARNING: CPU: 0 PID: 1322 at kernel/locking/lockdep.c:3897" in recursive.excerpt
    assert max_hlocks.excerpt.split("\n")[1] == "turning off the locking correctness validator."


def test_ubsan_both_formats() -> None:
    new, old = kmsg.scan(load("synth-ubsan.log"))
    assert new.excerpt.endswith("---[ end trace ]---")
    assert old.excerpt.endswith("=" * 80)
    assert "cow: case" not in new.excerpt + old.excerpt


def test_kasan_reports_end_at_their_closing_rule() -> None:
    first, second = kmsg.scan(load("synth-kasan.log"))
    assert first.excerpt.split("\n")[1] == (
        "Write of size 8 at addr ffff88810a3c5e80 by task gup_longterm/1874"
    )
    assert first.excerpt.endswith("=" * 66)
    assert "Disabling lock debugging" not in first.excerpt
    assert "Freed by task 1880:" in second.excerpt.split("\n")


def test_memory_failure_is_not_a_splat_and_rss_counter_is_one_line() -> None:
    events = kmsg.scan(load("synth-mm-bugs-memory-failure.log"))
    assert all("Memory failure" not in e.excerpt and "MCE" not in e.excerpt for e in events)
    rss = [e for e in events if "rss-counter" in e.title]
    assert [e.start == e.end for e in rss] == [True, True]
    bad_page = events[1]
    assert "page dumped because: nonzero mapcount" in bad_page.excerpt.split("\n")
    assert bad_page.excerpt.endswith(" </TASK>")


def test_hard_lockup_then_panic() -> None:
    lockup, panic = kmsg.scan(load("synth-hard-lockup-panic.log"))
    assert lockup.excerpt.endswith(" </TASK>")
    assert panic.excerpt.endswith("Rebooting in 10 seconds..")


# ---- console noise ---------------------------------------------------------------------------


def test_interleaved_userspace_ansi_and_bad_bytes_do_not_change_the_reports() -> None:
    clean = kmsg.scan(load("real-6.12-warning.log"))
    noisy = kmsg.scan(load("synth-interleaved-warning.log"))
    assert [(e.kind, e.title, e.excerpt, e.message) for e in noisy] == [
        (e.kind, e.title, e.excerpt, e.message) for e in clean
    ]


def test_userspace_text_that_looks_like_a_header_is_ignored_in_a_stamped_log() -> None:
    text = load("synth-interleaved-warning.log")
    assert "WARNING: CPU: 9 PID: 9 at userspace/fake.c:1" in text
    assert all("userspace/fake.c" not in e.title for e in kmsg.scan(text))


@pytest.mark.parametrize(
    "name",
    [
        "real-6.12-warning.log",
        "real-6.12-oops-then-panic.log",
        "real-6.12-kfence.log",
        "real-6.1-rcu-detected-stalls.log",
        "synth-lockdep.log",
        "synth-kasan.log",
    ],
)
def test_same_reports_without_timestamps(name: str) -> None:
    """`dmesg -t` style: no prefix at all, so every line counts as a kernel line."""
    text = load(name)
    bare = "\n".join(STAMP.sub("", line, count=1).removeprefix(" ") for line in text.split("\n"))
    assert kinds_titles(bare) == kinds_titles(text)


def test_raw_dmesg_and_kmsg_record_prefixes() -> None:
    text = load("real-6.12-oops-then-panic.log")
    raw = "\n".join("<4>" + line if STAMP.match(line) else line for line in text.split("\n"))
    assert kinds_titles(raw) == kinds_titles(text)
    records = "4,812,59980985,-;BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
    assert kinds_titles(records) == [
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000000")
    ]


def test_die_lines_without_a_bug_line_are_oops_events() -> None:
    text = (
        "[    1.000000] Oops: 0000 [#1] SMP\n"
        "[    1.000001] CPU: 0 PID: 1 Comm: init Not tainted 5.10.0 #1\n"
        "[    2.000000] Internal error: Oops: 96000004 [#2] PREEMPT SMP\n"
        "[    3.000000] invalid opcode: 0000 [#3] SMP PTI\n"
    )
    assert [e.kind for e in kmsg.scan(text)] == ["oops", "oops", "oops"]


def test_message_only_from_the_reports_own_cut_here_line() -> None:
    text = "".join(
        f"[    1.{i:06d}] {line}\n"
        for i, line in enumerate(
            [
                "------------[ cut here ]------------",
                "first message",
                "WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
                "---[ end trace 0000000000000000 ]---",
                "WARNING: CPU: 0 PID: 1 at a.c:2 g+0x1/0x2",
                "---[ end trace 0000000000000000 ]---",
            ]
        )
    )
    assert [e.message for e in kmsg.scan(text)] == ["first message", ""]


def test_a_report_without_an_end_is_capped() -> None:
    frames = "".join(f"[    1.{i:06d}]  f{i}+0x1/0x2\n" for i in range(300))
    header = "[    1.000000] WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2\n"
    text = header + "[    1.000000] Call Trace:\n" + frames
    (e,) = kmsg.scan(text)
    assert len(e.excerpt.split("\n")) == kmsg.MAX_REPORT_LINES


NEGATIVE_LOGS = sorted(
    [
        *(DATA / "ktap").glob("debian-*.log"),
        *(DATA / "ktap").glob("host-*.tap"),
        *(DATA / "console").glob("*.log"),
        KMSG / "real-6.12-sysrq-l-nmi-backtrace.log",
    ]
)


@pytest.mark.parametrize("path", NEGATIVE_LOGS, ids=lambda p: p.name)
def test_no_events_in_clean_runs(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    assert kmsg.scan(text) == []


def test_not_splats() -> None:
    text = "\n".join(
        [
            "[    1.1] Memory failure: 0x1a2b3: recovery action for dirty LRU page: Recovered",
            "[    1.2] INFO: NMI handler (nmi_cpu_backtrace_handler) took too long to run: 26.4 msecs",
            "[    1.3] traps: cow[12] general protection fault ip:401000 sp:7ffd0 error:0",
            "[    1.4] NMI watchdog: Perf NMI watchdog permanently disabled",
            "[    1.5] rcu: INFO: rcu_preempt kthread starved",  # not a stall header by itself
            "[    1.6] # WARNING: CPU: 0 PID: 1 at quoted by a test",
        ]
    )
    text = re.sub(r"\[    (\d)\.(\d)\]", r"[    \1.\g<2>00000]", text)
    assert kmsg.scan(text) == []


def test_kernel_event_is_frozen() -> None:
    (e,) = kmsg.scan(load("real-6.12-kernel-bug.log"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.kind = "warning"  # type: ignore[misc]


# ---- markers ------------------------------------------------------------------------------------

CRASH_IDS = [
    "cow.fork.anon.base",
    "cow.fork.anon.thp",
    "cow.fork.anon.hugetlb",
    "cow.fork.swap.base",
    "cow.fork.last",
]


def test_markers_are_parsed_with_prefixes_and_directives() -> None:
    marks = kmsg.markers(load("synth-markers-crash.log"))
    assert [(m.kind, m.program or m.case_id) for m in marks] == [
        ("begin", "gup_longterm"),
        ("result", "gup.longterm.memfd"),
        ("end", "gup_longterm"),
        ("begin", "cow_fork"),
        ("result", "cow.fork.anon.base"),
        ("result", "cow.fork.anon.thp"),
        ("result", "cow.fork.anon.hugetlb"),
    ]
    thp, hugetlb = marks[5], marks[6]
    assert (thp.number, thp.ok, thp.directive) == (2, False, "")  # "<4>" before its stamp
    assert (hugetlb.number, hugetlb.ok, hugetlb.directive) == (3, True, "SKIP no hugetlb pages")
    assert (marks[2].rc, marks[2].tainted) == (0, 0)


def test_slice_with_a_crash_in_the_middle() -> None:
    text = load("synth-markers-crash.log")
    slices = kmsg.slice_by_markers(text, CRASH_IDS)
    assert list(slices) == CRASH_IDS
    assert slices["cow.fork.anon.base"] == "TAP version 13\r\r\n1..5\r\r\n"
    thp = slices["cow.fork.anon.thp"]
    assert thp.startswith("ok 1 Basic COW after fork() with base page\r\r\n")
    assert thp.endswith("not ok 2 Basic COW after fork() with THP\r\r\n")
    assert [e.kind for e in kmsg.scan(thp)] == ["warning"]
    assert slices["cow.fork.anon.hugetlb"] == ""
    swap = slices["cow.fork.swap.base"]
    assert swap.startswith("# [RUN] Basic COW after fork() ... with swapped-out base page")
    assert [e.kind for e in kmsg.scan(swap)] == ["bug", "panic"]
    assert slices["cow.fork.last"] == ""
    assert "harness:" not in "".join(slices.values())
    assert kmsg.faulting_case(text, CRASH_IDS) == "cow.fork.swap.base"


def test_slices_are_the_text_between_markers() -> None:
    text = load("synth-markers-crash.log")
    lines = text.split("\n")
    begin = next(i for i, line in enumerate(lines) if "harness: begin cow_fork" in line)
    joined = "".join(kmsg.slice_by_markers(text, CRASH_IDS).values())
    kept = [line + "\n" for line in lines[begin + 1 : -1] if "harness: " not in line]
    assert joined == "".join(kept)


def test_real_crash_slices_to_the_faulting_case() -> None:
    text = load("real-6.12-oops-then-panic.log")
    ids = ["crash.before", "crash.null", "crash.after"]
    slices = kmsg.slice_by_markers(text, ids)
    assert slices["crash.before"] == ""
    assert [e.kind for e in kmsg.scan(slices["crash.null"])] == ["bug", "panic"]
    assert slices["crash.after"] == ""
    assert kmsg.faulting_case(text, ids) == "crash.null"
    # the program before it ended normally, and says how tainted the kernel was
    (end,) = [m for m in kmsg.markers(text) if m.kind == "end"]
    assert (end.program, end.rc, end.tainted) == ("kmsgsplat", 0, 29344)
    assert kmsg.faulting_case(text, ["splat.irqspin"], program="kmsgsplat") is None


def test_real_console_slices_each_warning_to_its_case() -> None:
    text = load("real-6.12-warning.log")
    slices = kmsg.slice_by_markers(text, ["splat.warn", "splat.warn_on"])
    assert [e.title.split(" at ")[1][:40] for e in kmsg.scan(slices["splat.warn"])] == [
        "<build>/mod/kmsgsplat.c:10 splat_warn+0x"
    ]
    assert [e.kind for e in kmsg.scan(slices["splat.warn_on"])] == ["warning"]
    assert kmsg.faulting_case(text, ["splat.warn", "splat.warn_on"]) is None


def test_section_choice() -> None:
    text = load("synth-markers-crash.log")
    # by program name: the gup_longterm section ended, so nothing faulted there
    assert kmsg.slice_by_markers(text, ["gup.longterm.memfd"], program="gup_longterm") == {
        "gup.longterm.memfd": ""
    }
    assert kmsg.faulting_case(text, ["gup.longterm.memfd"], program="gup_longterm") is None
    # no result for any id: the unfinished section is the one that crashed before them
    assert kmsg.faulting_case(text, ["other.case"]) == "other.case"
    assert kmsg.slice_by_markers(text, ["x"], program="not_run") == {"x": ""}
    assert kmsg.slice_by_markers("no markers at all\n", ["a", "b"]) == {"a": "", "b": ""}
    assert kmsg.faulting_case("no markers at all\n", ["a"]) is None


def test_results_without_a_begin_marker() -> None:
    text = "[ 1.000000] x\n[ 2.000000] harness: ok 1 a\n[ 3.000000] oops here\n"
    assert kmsg.slice_by_markers(text, ["a", "b"]) == {"a": "[ 1.000000] x\n", "b": "[ 3.000000] oops here\n"}
    assert kmsg.faulting_case(text, ["a", "b"]) == "b"


def test_result_markers_mirroring_any_ktap_line() -> None:
    """guest/run-test.sh mirrors the program's own result lines, whatever their names."""
    text = "\n".join(
        [
            "[   1.000000] harness: ok 7 No leak from parent into child",
            "[   2.000000] harness: ok 8 - dashed.name # SKIP why not",
            "[   3.000000] harness: not ok 9 # XFAIL known",
            "[   4.000000] harness: ok 10",
        ]
    )
    assert [(m.number, m.case_id, m.ok, m.directive) for m in kmsg.markers(text)] == [
        (7, "No leak from parent into child", True, ""),
        (8, "dashed.name", True, "SKIP why not"),
        (9, "", False, "XFAIL known"),
        (10, "", True, ""),
    ]


def test_userspace_echo_of_a_marker_is_not_a_marker() -> None:
    text = "[   1.000000] harness: begin p\necho harness: ok 1 a\n[   2.000000] harness: ok 1 b\n"
    assert [m.case_id for m in kmsg.markers(text) if m.kind == "result"] == ["b"]


def test_marker_lines_round_trip() -> None:
    lines = [
        kmsg.begin_marker("cow_fork"),
        kmsg.result_marker(1, "cow.fork.a", ok=True),
        kmsg.result_marker(2, "cow.fork.b", ok=False),
        kmsg.result_marker(3, "cow.fork.c", ok=True, directive="SKIP no THP"),
        kmsg.end_marker("cow_fork", rc=1, tainted=512),
    ]
    assert lines[3] == "harness: ok 3 cow.fork.c # SKIP no THP"
    text = "".join(f"[   {i}.000000] {line}\r\r\n" for i, line in enumerate(lines))
    marks = kmsg.markers(text)
    assert [(m.kind, m.case_id, m.ok, m.directive) for m in marks[1:4]] == [
        ("result", "cow.fork.a", True, ""),
        ("result", "cow.fork.b", False, ""),
        ("result", "cow.fork.c", True, "SKIP no THP"),
    ]
    assert (marks[4].rc, marks[4].tainted) == (1, 512)
    for bad in ("has space", "a#b", ""):
        with pytest.raises(ValueError):
            kmsg.result_marker(1, bad, ok=True)


# ---- taint ------------------------------------------------------------------------------------


def test_parse_taint() -> None:
    assert kmsg.parse_taint("0") == []
    assert kmsg.parse_taint("1\n") == ["P"]
    assert kmsg.parse_taint("512") == ["W"]
    assert kmsg.parse_taint(str(1 << 18)) == ["N"]
    assert kmsg.parse_taint(str(1 << 21)) == ["bit21"]
    for bad in ("", "-1", "0x200", "W", "1_0"):
        with pytest.raises(ValueError):
            kmsg.parse_taint(bad)


def test_parse_taint_agrees_with_the_kernel() -> None:
    """The kernel spells out its taint in each report; the end marker carries the number."""
    text = load("real-6.12-oops-then-panic.log")
    (end,) = [m for m in kmsg.markers(text) if m.kind == "end"]
    assert end.tainted is not None
    # 6.12 prints "Tainted: [B]=BAD_PAGE, [D]=DIE, [W]=WARN, ..." in every report
    spelled = re.search(r"Tainted: ((?:\[\w\]=\w+(?:, )?)+)", text)
    assert spelled is not None
    assert kmsg.parse_taint(str(end.tainted)) == re.findall(r"\[(\w)\]", spelled.group(1))
