"""Pure kernel-log analysis: find kernel reports ("splats"), slice a log by the guest's per-case
markers, decode taint flags. Text in, values out: no I/O, no printing.

The input is a kernel log (dmesg) or a serial console capture, which means:

- printk prefixes: ``[   12.345678] `` (optionally ``<4>`` before it, or the caller id
  ``[    T1]`` after it), sometimes in the middle of a line when userspace printed a partial
  line just before the kernel did;
- CRLF (the console's ``\\r\\r\\n``), ANSI escapes from SeaBIOS, NULs and undecodable bytes;
- userspace output interleaved with kernel lines, even inside a report. When the text carries
  printk timestamps at all, only timestamped lines are kernel lines: the others are skipped,
  never taken as a report header nor as the end of one.

Report formats are the kernel's own (lib/bug.c __warn, arch/x86/kernel/dumpstack.c __die,
kernel/panic.c, kernel/hung_task.c, kernel/watchdog.c, kernel/rcu/tree_stall.h,
kernel/locking/lockdep.c, mm/kasan/report.c, mm/kfence/report.c, lib/ubsan.c, mm/slub.c), as
they print on 6.1 and 6.12; tests/data/kmsg/ holds captures of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.model import KernelEvent

KINDS = (
    "warning",
    "bug",
    "oops",
    "gpf",
    "kasan",
    "kfence",
    "ubsan",
    "lockdep",
    "rcu_stall",
    "hung_task",
    "soft_lockup",
    "hard_lockup",
    "panic",
)
MAX_REPORT_LINES = 100  # a report longer than this is cut (a KASAN report is ~60-90 lines)

# ---- line preparation -----------------------------------------------------------------------

# CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST), and two-byte escapes (SeaBIOS sends ESC c).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # bytes decoded with errors="surrogateescape"
# printk's "[%5lu.%06lu]" stamp, with an optional syslog level before it and an optional
# CONFIG_PRINTK_CALLER id after it.
_STAMP = re.compile(r"(?:<\d{1,3}>)?\[\s*\d+\.\d{6}\](?:\[\s*[CT]\d+\])? ?")
# A syslog level, or the "level,seq,usec,flags;" header of a raw /dev/kmsg record.
_LEVEL = re.compile(r"^(?:<\d{1,3}>|\d+,\d+,\d+,[^;]*;)")


@dataclass(frozen=True)
class _Line:
    index: int  # in text.split("\n")
    text: str  # cleaned, printk prefix removed, trailing blanks removed
    kernel: bool  # a printk line (timestamped, or the log has no timestamps at all)


def _clean(line: str) -> str:
    line = _ANSI.sub("", line).replace("\r", "")
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", line))


def _lines(text: str) -> list[_Line]:
    parsed: list[tuple[str, bool]] = []
    for raw in text.split("\n"):
        line = _clean(raw)
        m = _STAMP.search(line)
        if m is not None:
            parsed.append((_LEVEL.sub("", line[m.end() :]).rstrip(), True))
        else:
            parsed.append((_LEVEL.sub("", line).rstrip(), False))
    stamped = any(s for _, s in parsed)
    return [_Line(i, t, s or not stamped) for i, (t, s) in enumerate(parsed)]


# ---- report headers -------------------------------------------------------------------------

# x86 __die_header() and arm64 die(): "<what>: <err> [#<n>]", with "Oops: " in front since 6.10
# (so a page fault reads "Oops: Oops: 0002 [#1]"), and "Internal error: " on arm64.
_DIE = re.compile(r"^(?:Internal error: )?(?:Oops: )?(?:(?P<what>[^\[\]]+?): )?[0-9a-f]{4,} \[#\d+\]")
_LOCKDEP = re.compile(
    r"^\[? ?(?:WARNING|BUG): (?:"
    r"possible (?:circular locking dependency|recursive locking|irq lock inversion dependency)"
    r" detected"
    r"|inconsistent lock state"
    r"|\w+-safe -> \w+-unsafe lock order detected"
    r"|suspicious RCU usage"
    r"|bad (?:unlock balance|contention) detected!"
    r"|held lock freed!"
    r"|lock held when returning to user space!"
    r"|.+ still has locks held!"
    r"|Nested lock was not taken"
    r"|Invalid wait context"
    r"|MAX_(?:LOCKDEP_\w+|LOCK_DEPTH|STACK_TRACE_ENTRIES) too low!"
    r")"
    r"|^INFO: trying to register non-static key\."
)
_HEADERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("panic", re.compile(r"^Kernel panic - not syncing")),
    ("kasan", re.compile(r"^BUG: KASAN: ")),
    ("kfence", re.compile(r"^BUG: KFENCE: ")),
    ("ubsan", re.compile(r"^UBSAN: \S")),
    ("lockdep", _LOCKDEP),
    ("soft_lockup", re.compile(r"^(?:[\w ]+: )?BUG: soft lockup - CPU#\d+ stuck for \d+s!")),
    (
        "hard_lockup",
        re.compile(r"^(?:(?:NMI )?watchdog: )?(?:CPU\d+: )?Watchdog detected hard LOCKUP on cpu \d+"),
    ),
    (
        "rcu_stall",
        re.compile(
            r"^(?:rcu: )?INFO: rcu_\w+ (?:self-detected stall on CPU|detected (?:expedited )?"
            r"stalls? on )"
        ),
    ),
    ("hung_task", re.compile(r"^INFO: task .+:\d+ blocked for more than \d+ seconds\.")),
    ("warning", re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ at |at )\S")),
    # SLUB's "BUG kmalloc-64 (Not tainted): Right Redzone overwritten" has no colon after BUG.
    (
        "bug",
        re.compile(
            r"^(?:BUG: \S|kernel BUG at \S|Unable to handle kernel "
            r"|BUG [\w.:-]+ \((?:Not tainted|Tainted: [^)]*)\): )"
        ),
    ),
)
# Reports that are one line long: nothing after them belongs to them.
_SINGLE_LINE = re.compile(r"^BUG: (?:Bad rss-counter state|non-zero pgtables_bytes on freeing mm)")
# Reports the sanitizers frame with "=====" rules: everything up to the closing rule is theirs.
_FRAMED_TITLE = re.compile(r"^(?:BUG: K[A-Z]*SAN: |BUG: KFENCE: |UBSAN: )")


def _header(text: str) -> str | None:
    """The kind of report this line starts, or None."""
    for kind, pattern in _HEADERS:
        if pattern.match(text):
            return kind
    m = _DIE.match(text)
    if m is None or not (text.startswith(("Oops", "Internal error")) or m.group("what")):
        return None
    what = m.group("what") or ""
    return "gpf" if what.startswith("general protection fault") else "oops"


# ---- report bodies --------------------------------------------------------------------------

_RULE = re.compile(r"^={20,}$")
_CUT_HERE = re.compile(r"^-+\[ cut here \]-+$")
_END_TRACE = re.compile(r"^---\[ end trace\b")
_END_PANIC = re.compile(r"^---\[ end Kernel panic")
_CALL_TRACE = re.compile(r"^(?:Call Trace|Call trace|stack backtrace):")
_FRAME = re.compile(
    r"^\s+(?:\? )?[\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+"  # " ? func+0x1a/0x20 [module]"
    r"|^\s*</?(?:TASK|IRQ|NMI|SOFTIRQ|EOI|#DF|DB|MCE|VC)>$"  # which stack the frames are on
    r"|^\s*\[<[0-9a-f]+>\]"  # pre-4.x " [<ffffffff81234567>] func+0x.../0x..."
    r"|^\s+(?:\? )?0x[0-9a-f]+$"  # an address the unwinder could not name
)
# Register dumps: x86 "RAX: ...", "FS:  ...", "RIP: 0010:f+0x1/0x2", "Code: 48 89 ...";
# arm64 "pc : ...", "x29: ...", "pstate: ...".
_REGS = re.compile(r"^(?:[A-Z][A-Z0-9]{1,7}: *[0-9a-f]{4}|Code: |(?:pc|lr|sp|pstate|x\d+) *: )")
# Lines that still belong to a report after a call trace ended: another CPU's or task's dump,
# the modules list, the panic trailer, RCU's follow-up lines, lockdep's held-locks list.
_CONTINUES = re.compile(
    r"^(?:Modules linked in:|CPU: \d+ |Hardware name: |Tainted: \[|Workqueue: |CR2: "
    r"|Kernel Offset: |Rebooting in |Shutting down cpus with NMI|Dumping ftrace buffer"
    r"|Sending NMI from CPU|NMI backtrace for cpu|task:\S.* state:|rcu: |irq event stamp:"
    r"|hardirqs last|softirqs last|Showing all locks held|\d+ locks? held by |\s+#\d+: "
    r"|Future hung task reports are suppressed|INFO: task .+ is blocked on a "
    r"|\s*\[last unloaded:|FIX [\w.:-]+: )"
)
# SLUB repairs the slab after its report (and its WARN) and says so.
_AFTER_END = re.compile(r"^FIX [\w.:-]+: ")


@dataclass
class _Report:
    """A report being collected; mutable while the scan runs, frozen into a KernelEvent."""

    kind: str
    title: str
    start: int
    framed: bool
    message: str
    lines: list[tuple[int, str]] = field(default_factory=list)
    trace: str = "none"  # none | in | done: where we are relative to the first call trace
    die_seen: bool = False
    after_end: bool = False  # past "---[ end trace": only the register summary may follow

    def nests(self, kind: str) -> bool:
        """Whether a header of `kind` is part of this report rather than a new one."""
        if kind == "panic" or self.kind == "panic":
            return False  # a panic is always its own event (panic_on_oops, panic_on_warn)
        if self.framed:
            return True
        if self.trace != "none" or self.after_end:
            return False
        if self.kind == "bug" and kind in ("oops", "gpf"):
            # "BUG: unable to handle page fault" / "kernel BUG at" are followed by their die
            # line ("Oops: 0000 [#1]", "Oops: invalid opcode: 0000 [#1]").
            return not self.die_seen
        if self.kind == "bug" and kind == "warning":
            return True  # 6.12 SLUB: object_err() WARNs inside "BUG kmalloc-64 (...)"
        return self.kind == "lockdep"  # lockdep's own WARN lands inside its report

    def add(self, line: _Line) -> str:
        self.lines.append((line.index, line.text))
        return "done" if len(self.lines) >= MAX_REPORT_LINES else "more"

    def feed(self, line: _Line) -> str:
        """Take a line: "more" (keep going), "done" (it ended the report), "out" (it did not
        belong: the report ended before it)."""
        text = line.text
        if self.after_end:
            return self.add(line) if _REGS.match(text) or _AFTER_END.match(text) else "out"
        if self.framed:
            return "done" if self.add(line) == "done" or _RULE.match(text) else "more"
        if _END_PANIC.match(text):
            self.add(line)
            return "done"
        if _END_TRACE.match(text):
            self.after_end = True
            return self.add(line)
        if _CALL_TRACE.match(text):
            self.trace = "in"
            return self.add(line)
        in_trace = _FRAME.match(text) or _REGS.match(text)
        if self.trace == "in" and not in_trace:
            self.trace = "done"
        if self.trace == "done" and not in_trace and not _CONTINUES.match(text):
            return "out"
        return self.add(line)

    def event(self) -> KernelEvent:
        return KernelEvent(
            kind=self.kind,
            title=self.title,
            start=self.start,
            end=self.lines[-1][0],
            excerpt="\n".join(t for _, t in self.lines),
            message=self.message,
        )


def _open(kind: str, lines: list[_Line], pos: int) -> _Report:
    line = lines[pos]
    before = [ln for ln in lines[max(0, pos - 12) : pos] if ln.kernel]
    framed = bool(_FRAMED_TITLE.match(line.text) and before and _RULE.match(before[-1].text))
    message = ""
    for back in range(len(before) - 1, -1, -1):
        text = before[back].text
        if _CUT_HERE.match(text):
            message = "\n".join(ln.text for ln in before[back + 1 :])
            break
        if _header(text) is not None or _END_TRACE.match(text) or _RULE.match(text):
            break  # that cut-here line, if any, belongs to an earlier report
    report = _Report(kind=kind, title=line.text, start=line.index, framed=framed, message=message)
    report.add(line)
    return report


def scan(text: str) -> list[KernelEvent]:
    """Every kernel report in text, in order. Nothing is deduplicated: two WARNs are two events.

    A report runs from its header to its end: ``---[ end trace`` (plus the register summary
    x86 repeats after it), ``---[ end Kernel panic``, a sanitizer's closing ``=====`` rule, or
    else the end of its call trace and the lines that still belong to it; at most
    MAX_REPORT_LINES lines. Headers inside a report (the ``Oops:`` line after ``BUG: unable to
    handle page fault``, the WARNING SLUB prints inside its report) are part of it, but a
    ``Kernel panic`` is always an event of its own.
    """
    lines = _lines(text)
    events: list[KernelEvent] = []
    cur: _Report | None = None
    for pos, line in enumerate(lines):
        if not line.kernel:
            continue  # userspace output interleaved with the kernel's
        kind = _header(line.text)
        if cur is not None:
            if kind is not None and not cur.nests(kind):
                events.append(cur.event())
                cur = None
            else:
                if kind in ("oops", "gpf"):
                    cur.die_seen = True
                verdict = cur.feed(line)
                if verdict != "more":
                    events.append(cur.event())
                    cur = None
                continue
        if kind is not None:
            cur = _open(kind, lines, pos)
            if _SINGLE_LINE.match(line.text):
                events.append(cur.event())
                cur = None
    if cur is not None:
        events.append(cur.event())
    return events


# ---- per-case markers -----------------------------------------------------------------------
#
# The guest writes one line to /dev/kmsg around each program and after each case:
#   harness: begin <program>
#   harness: ok <n> <id>  |  harness: not ok <n> <id>  |  harness: ok <n> <id> # SKIP <reason>
#   harness: end <program> rc=<exit status> tainted=<value of /proc/sys/kernel/tainted>
# Program names contain no whitespace, and ids should not either. They reach the log with a
# printk prefix (and "<N>" in `dmesg -r`). They reach the console only if their level is below
# the console loglevel ("<4>harness: ..." needs loglevel=5 or more), and all of them only if
# /dev/kmsg does not ratelimit them (printk.devkmsg=on).

_BEGIN = re.compile(r"^harness: begin (?P<program>\S+)$")
_END = re.compile(r"^harness: end (?P<program>\S+) rc=(?P<rc>-?\d+) tainted=(?P<tainted>\d+)$")
# The name part is taken whole, so a mirrored upstream KTAP line ("ok 7 No leak from parent
# into child") still reads; "#" after a blank starts the directive, as in KTAP.
_RESULT = re.compile(r"^harness: (?P<not>not )?ok (?P<number>\d+)(?:\s+-)?(?:\s+(?P<rest>.*))?$")
_DIRECTIVE = re.compile(r"(?:^|\s)#\s*")


@dataclass(frozen=True)
class Marker:
    """One harness marker line found in a log."""

    line: int  # index in text.split("\n")
    kind: str  # "begin" | "end" | "result"
    program: str = ""  # begin, end
    case_id: str = ""  # result
    number: int = 0  # result
    ok: bool = True  # result: "ok" (SKIP included) or "not ok"
    directive: str = ""  # result: text after "#", e.g. "SKIP no THP"
    rc: int | None = None  # end
    tainted: int | None = None  # end


def begin_marker(program: str) -> str:
    return f"harness: begin {_word(program)}"


def end_marker(program: str, rc: int, tainted: int) -> str:
    return f"harness: end {_word(program)} rc={rc} tainted={tainted}"


def result_marker(number: int, case_id: str, ok: bool, directive: str = "") -> str:
    if "#" in case_id:
        raise ValueError(f"case id {case_id!r}: '#' would start a directive")
    line = f"harness: {'' if ok else 'not '}ok {number} {_word(case_id)}"
    return f"{line} # {directive}" if directive else line


def _word(s: str) -> str:
    if not s or any(c.isspace() for c in s):
        raise ValueError(f"marker field {s!r}: must be non-empty, without whitespace")
    return s


def markers(text: str) -> list[Marker]:
    """All marker lines in text, in order (kernel lines only, when the text has timestamps,
    so a shell echoing the command that wrote a marker cannot fake one)."""
    out: list[Marker] = []
    for line in _lines(text):
        if not line.kernel or not line.text.startswith("harness: "):
            continue
        if (m := _RESULT.match(line.text)) is not None:
            rest = m.group("rest") or ""
            d = _DIRECTIVE.search(rest)
            name, directive = (rest[: d.start()], rest[d.end() :]) if d else (rest, "")
            out.append(
                Marker(
                    line.index,
                    "result",
                    case_id=name.strip(),
                    number=int(m.group("number")),
                    ok=m.group("not") is None,
                    directive=directive.strip(),
                )
            )
        elif (m := _BEGIN.match(line.text)) is not None:
            out.append(Marker(line.index, "begin", program=m.group("program")))
        elif (m := _END.match(line.text)) is not None:
            out.append(
                Marker(
                    line.index,
                    "end",
                    program=m.group("program"),
                    rc=int(m.group("rc")),
                    tainted=int(m.group("tainted")),
                )
            )
    return out


@dataclass(frozen=True)
class _Section:
    program: str
    first: int  # first line index inside the section
    stop: int  # line index of the end marker, or where the text (or the next section) begins
    ended: bool  # an end marker closed it
    results: tuple[Marker, ...]


def _sections(marks: list[Marker], n_lines: int) -> list[_Section]:
    out: list[_Section] = []
    begin: Marker | None = None
    results: list[Marker] = []
    for m in marks:
        if m.kind == "result":
            results.append(m)
        elif m.kind == "begin":
            if begin is not None:  # a begin without an end: that program never finished
                out.append(_Section(begin.program, begin.line + 1, m.line, False, tuple(results)))
            begin, results = m, []
        elif begin is not None:
            out.append(_Section(begin.program, begin.line + 1, m.line, True, tuple(results)))
            begin, results = None, []
    if begin is not None:
        out.append(_Section(begin.program, begin.line + 1, n_lines, False, tuple(results)))
    elif not out and results:  # results without any begin: the text is one program's log
        ended = any(m.kind == "end" for m in marks)
        stop = next((m.line for m in marks if m.kind == "end"), n_lines)
        out.append(_Section("", 0, stop, ended, tuple(r for r in results if r.line < stop)))
    return out


def _split(text: str) -> list[str]:
    """Lines of text; the empty string after a final newline is not a line."""
    raw = text.split("\n")
    return raw[:-1] if raw and raw[-1] == "" else raw


def _pick(text: str, ids: Sequence[str], program: str | None) -> _Section | None:
    """The section of `program` (its last run), or else the first with a result for one of
    ids, or else the last that never ended (the program crashed before its first result)."""
    sections = _sections(markers(text), len(_split(text)))
    if program is not None:
        named = [s for s in sections if s.program == program]
        return named[-1] if named else None
    wanted = set(ids)
    for s in sections:
        if any(r.case_id in wanted for r in s.results):
            return s
    unfinished = [s for s in sections if not s.ended]
    return unfinished[-1] if unfinished else None


def slice_by_markers(text: str, ids: Sequence[str], program: str | None = None) -> dict[str, str]:
    """The log lines of each case, keyed by id (every id in ids is a key).

    Within the program's section, the lines after case k-1's result marker up to case k's
    belong to case k (marker lines themselves excluded, lines kept as they are in text). If
    the section never ended (the guest died), the lines after the last result go to the first
    id without a result (the faulting case), and later ids get "".
    """
    raw = _split(text)
    chunks: dict[str, list[str]] = {i: [] for i in ids}
    section = _pick(text, ids, program)
    if section is None:
        return {i: "" for i in ids}
    result_at = {r.line: r for r in section.results}
    reported: set[str] = set()
    pending: list[str] = []
    for index in range(section.first, section.stop):
        r = result_at.get(index)
        if r is None:
            pending.append(raw[index])
            continue
        if r.case_id in chunks:
            chunks[r.case_id].extend(pending)
            reported.add(r.case_id)
        pending = []
    if not section.ended:
        faulting = next((i for i in ids if i not in reported), None)
        if faulting is not None:
            chunks[faulting].extend(pending)
    return {i: "".join(line + "\n" for line in lines) for i, lines in chunks.items()}


def faulting_case(text: str, ids: Sequence[str], program: str | None = None) -> str | None:
    """The first id without a result marker when the program's section began but never ended
    (the guest died mid-program); None if it ended, never began, or every id reported."""
    section = _pick(text, ids, program)
    if section is None or section.ended:
        return None
    reported = {r.case_id for r in section.results}
    return next((i for i in ids if i not in reported), None)


# ---- taint ----------------------------------------------------------------------------------

# Bit order of /proc/sys/kernel/tainted (Documentation/admin-guide/tainted-kernels.rst).
TAINT_FLAGS: tuple[tuple[str, str], ...] = (
    ("P", "proprietary module was loaded"),  # bit 0; the kernel prints "G" when it is clear
    ("F", "module was force loaded"),
    ("S", "kernel running on an out of specification system"),
    ("R", "module was force unloaded"),
    ("M", "processor reported a Machine Check Exception"),
    ("B", "bad page referenced or some unexpected page flags"),
    ("U", "taint requested by userspace application"),
    ("D", "kernel died recently, i.e. there was an OOPS or BUG"),
    ("A", "an ACPI table was overridden by user"),
    ("W", "kernel issued warning"),
    ("C", "staging driver was loaded"),
    ("I", "workaround for bug in platform firmware applied"),
    ("O", "externally-built (out-of-tree) module was loaded"),
    ("E", "unsigned module was loaded"),
    ("L", "soft lockup occurred"),
    ("K", "kernel has been live patched"),
    ("X", "auxiliary taint, defined for and used by distros"),
    ("T", "kernel was built with the struct randomization plugin"),
    ("N", "an in-kernel test has been run"),
    ("J", "userspace used a mutating debug operation in fwctl"),  # 6.15+
)


def parse_taint(s: str) -> list[str]:
    """Letters of the taint bits set in a /proc/sys/kernel/tainted value, in bit order.

    "0" gives []. Only set bits are listed, so bit 0 gives "P" and the kernel's "G" (bit 0
    clear) never appears; a bit this table does not know gives "bit<N>". Raises ValueError
    on text that is not a non-negative decimal number.
    """
    if not re.fullmatch(r"[0-9]+", s.strip()):
        raise ValueError(f"taint value {s!r}: expected a non-negative decimal number")
    value = int(s.strip())
    out = []
    for bit in range(value.bit_length()):
        if value >> bit & 1:
            out.append(TAINT_FLAGS[bit][0] if bit < len(TAINT_FLAGS) else f"bit{bit}")
    return out
