"""Pure KTAP / TAP parser: console text in, a TestNode tree out. No I/O, no printing.

The input is what a serial console or a pipe gave us, not a clean TAP stream:

- the kernel's printk puts a timestamp (``[   12.345678] ``) before every line, so the prefix
  seen before the version line is turned into a pattern and stripped from the lines that
  carry it; lines without it (userspace output interleaved with printk) are diagnostics;
- SeaBIOS and consoles emit ANSI escapes and CRLF line ends;
- kselftest result names are not unique (mm/cow prints ``# [RUN] <desc>`` and then a generic
  ``ok N No leak from parent into child``), so results are kept in order with the lines that
  came before them, never deduplicated;
- a guest that crashes or is killed cuts the output off: planned results that never came become
  Outcome.ERROR nodes, so a crash can never read as a shorter, passing run;
- the guest may lie: a plan line (``1..50000000``) must not make the host allocate what it
  says. A plan above limits.MAX_KTAP_PLAN fills nothing and is reported in the root's reason
  (plan_problem), and a document makes at most limits.MAX_KTAP_NODES result nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from harness.limits import MAX_KTAP_NODES, MAX_KTAP_PLAN
from harness.model import Outcome, TestNode

# CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST) and the two-byte escapes (ESC c = reset, which
# SeaBIOS sends before its banner).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])")
_VERSION_ANYWHERE = re.compile(r"^(?P<pre>.*?)(?:KTAP|TAP) version \d+\s*$")
_VERSION = re.compile(r"^(?:KTAP|TAP) version \d+\s*$")
_PLAN = re.compile(r"^1\.\.(?P<n>\d+)\s*(?:#\s*(?P<comment>.*))?$")
_RESULT = re.compile(r"^(?P<not>not\s+)?ok(?=\s|$)\s*(?P<num>\d+)?\s*(?:-(?:\s+|$))?(?P<rest>.*)$")
_DIRECTIVE = re.compile(r"(?:^|\s)#\s*(?P<word>skip(?:ped)?|xfail|todo)\b:?\s*(?P<reason>.*)$", re.IGNORECASE)
_PLAN_SKIP = re.compile(r"^skip\w*:?\s*", re.IGNORECASE)
_BAIL = re.compile(r"^Bail out!\s*(?P<msg>.*)$")
_SUBTEST = re.compile(r"^#\s*Subtest:\s*(?P<name>.*)$")
_TOTALS = re.compile(r"#\s*Totals:(?P<body>.*)$")
_PREFIX_TOKEN = re.compile(r"(?P<digits>\d+)|(?P<gap> +)(?=\S)|(?P<char>.)", re.DOTALL)

_DIRECTIVES = {
    "skip": Outcome.SKIP,
    "skipped": Outcome.SKIP,
    "xfail": Outcome.XFAIL,
    "todo": Outcome.TODO,
}


def parse(text: str) -> TestNode:
    """Parse the first TAP/KTAP document in text into a root node (name "").

    The root's children are the top-level results, its plan the top-level plan, its
    diagnostics the lines after the last result (e.g. the kselftest Totals footer). A skip-all
    plan (``1..0 # SKIP why``) makes the root SKIP; a ``Bail out!`` puts its message in the
    root's reason. Parsing stops at a second top-level version line (see split_documents).
    Lines before the version line are ignored; without any version line the whole text is
    parsed best effort.
    """
    lines = [_clean_line(line) for line in text.split("\n")]
    start, prefix = _find_header(lines)
    parser = _Parser()
    for line in lines[start:]:
        content = _strip_prefix(line, prefix)
        if content is None:
            parser.stray(line)
        else:
            parser.feed(content)
        if parser.stopped:
            break
    return parser.finish()


def split_documents(text: str) -> list[str]:
    """Split a console stream into TAP documents, each starting at its version line.

    Text before the first version line belongs to no document and is dropped; the documents
    concatenated give back the rest of the text exactly. A version line that is the current
    document's prefix plus indentation is a nested KTAP subtest, not a new document.
    """
    raw = text.split("\n")
    starts: list[int] = []
    prefix: re.Pattern[str] | None = None
    for i, line in enumerate(raw):
        pre = _version_prefix(_clean_line(line))
        if pre is None or (prefix is not None and _is_nested(prefix, pre)):
            continue
        starts.append(i)
        prefix = _prefix_pattern(pre)
    bounds = starts + [len(raw)]
    docs = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        docs.append("\n".join(raw[a:b]) + ("\n" if b < len(raw) else ""))
    return docs


def parse_totals(text: str) -> dict[str, int] | None:
    """The first kselftest footer ``# Totals: pass:P fail:F xfail:X xpass:0 skip:S error:0``."""
    for line in text.split("\n"):
        m = _TOTALS.search(_clean_line(line))
        if m:
            pairs = re.findall(r"(\w+):(\d+)", m.group("body"))
            if pairs:
                return {k: int(v) for k, v in pairs}
    return None


# ---- line preparation -------------------------------------------------------------------


def _clean_line(line: str) -> str:
    # A carriage return inside a line is console cursor movement, never TAP content.
    return _ANSI.sub("", line).replace("\r", "")


def _version_prefix(line: str) -> str | None:
    """Text before a version line's "KTAP version"/"TAP version", or None if not one."""
    m = _VERSION_ANYWHERE.match(line)
    if m is None:
        return None
    pre = m.group("pre")
    # "# TAP version 13" is a document quoted inside another one's diagnostics (the
    # kselftest runner nests program output this way): a comment, not a header.
    if pre.rstrip().endswith("#"):
        return None
    return pre


def _prefix_pattern(pre: str) -> re.Pattern[str]:
    """Generalise a console prefix: digit runs vary (timestamps), padding before them too.

    "[   12.345678] " becomes ``\\[ *\\d+\\.\\d+\\] ``; the trailing space stays literal so
    the indentation of nested KTAP after it is kept.
    """
    parts = []
    for m in _PREFIX_TOKEN.finditer(pre):
        if m.group("digits"):
            parts.append(r"\d+")
        elif m.group("gap"):
            parts.append(" *")
        else:
            parts.append(re.escape(m.group("char")))
    return re.compile("".join(parts))


def _is_nested(prefix: re.Pattern[str], pre: str) -> bool:
    m = prefix.match(pre)
    if m is None:
        return False
    rest = pre[m.end() :]
    return rest != "" and rest.strip() == ""


def _find_header(lines: list[str]) -> tuple[int, re.Pattern[str] | None]:
    """Index of the first line after the version line, and the prefix pattern."""
    for i, line in enumerate(lines):
        pre = _version_prefix(line)
        if pre is not None:
            return i + 1, (_prefix_pattern(pre) if pre else None)
    return 0, None


def _strip_prefix(line: str, prefix: re.Pattern[str] | None) -> str | None:
    if prefix is None:
        return line
    m = prefix.match(line)
    return None if m is None else line[m.end() :]


def _diagnostic(line: str) -> str:
    text = line.strip()
    if text.startswith("#"):
        text = text[1:]
        if text.startswith(" "):
            text = text[1:]
    return text.rstrip()


def _result_node(m: re.Match[str], number: int) -> TestNode:
    rest = m.group("rest").strip()
    outcome = Outcome.NOT_OK if m.group("not") else Outcome.OK
    reason = ""
    d = _DIRECTIVE.search(rest)
    if d:
        outcome = _DIRECTIVES[d.group("word").lower()]
        reason = d.group("reason").strip()
        rest = rest[: d.start()].strip()
    return TestNode(name=rest, number=number, outcome=outcome, reason=reason)


# ---- the block stack ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Closed:
    """A nested block whose results wait for the outer result line that names them."""

    name: str
    plan: int | None
    children: tuple[TestNode, ...]
    trailing: tuple[str, ...]


@dataclass
class _Block:
    """One level of (possibly nested) results being collected."""

    indent: int
    name: str = ""  # from "# Subtest: name"; names the node if its result line never comes
    plan: int | None = None
    plan_comment: str | None = None
    results: list[TestNode] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # diagnostics since the last result
    waiting: _Closed | None = None
    subtest_hint: str = ""  # TAP 14 "# Subtest: x" at this level names the next nested block

    def started(self) -> bool:
        return bool(self.results) or self.plan is not None or self.waiting is not None


class _Parser:
    """Line-by-line state machine. Mutable inside, but parse() exposes only the result."""

    def __init__(self) -> None:
        self.stack: list[_Block] = [_Block(indent=0)]
        self.stopped = False
        self.bail: str | None = None
        self.after_bail: list[str] = []
        self.root_children: tuple[TestNode, ...] | None = None
        self.root_trailing: list[str] = []
        self.budget = _Budget()

    # -- feeding

    def stray(self, line: str) -> None:
        """A line without the document's prefix: interleaved output, always a diagnostic."""
        self._diag(_diagnostic(line))

    def feed(self, content: str) -> None:
        text = content.lstrip(" \t")
        indent = len(content) - len(text)
        if not text.strip():
            return
        if self.bail is not None:
            self._after_bail(text, indent)
        elif _VERSION.match(text):
            self._version(indent)
        elif (m := _PLAN.match(text)) is not None:
            self._plan(indent, int(m.group("n")), m.group("comment"))
        elif (m := _RESULT.match(text)) is not None:
            self._result(indent, m)
        elif (m := _SUBTEST.match(text)) is not None:
            self._subtest(indent, m.group("name").strip())
        elif (m := _BAIL.match(text)) is not None:
            self._bail_out(m.group("msg").strip())
        else:
            self._diag(_diagnostic(text))

    def _diag(self, text: str) -> None:
        if not text:
            return
        if self.bail is not None:
            self.after_bail.append(text)
        else:
            self.stack[-1].pending.append(text)

    def _after_bail(self, text: str, indent: int) -> None:
        if indent == 0 and _VERSION.match(text):
            self.stopped = True
        else:
            self._diag(_diagnostic(text))

    def _version(self, indent: int) -> None:
        if indent == 0:
            self.stopped = True  # the next top-level document begins
            return
        top = self.stack[-1]
        if indent == top.indent and not top.started():
            return  # a repeated version line
        if indent <= top.indent:
            self._close_deeper_than(indent - 1, "missing: subtest ended before result {n}")
        self._open(indent)

    def _plan(self, indent: int, n: int, comment: str | None) -> None:
        if indent > self.stack[-1].indent:
            self._open(indent)
        top = self.stack[-1]
        if top.plan is None:
            top.plan, top.plan_comment = n, comment
            if n > MAX_KTAP_PLAN:
                self.budget.too_big.append(n)

    def _subtest(self, indent: int, name: str) -> None:
        top = self.stack[-1]
        if indent > top.indent:
            self._open(indent, name)
        elif len(self.stack) > 1 and not top.name and not top.started():
            top.name = name  # KTAP v1: "# Subtest:" right after the nested version line
        else:
            top.subtest_hint = name  # TAP 14: "# Subtest:" before the indented block

    def _result(self, indent: int, m: re.Match[str]) -> None:
        if indent > self.stack[-1].indent:
            self._open(indent)
        self._close_deeper_than(indent, "missing: subtest ended before result {n}")
        top = self.stack[-1]
        number = int(m.group("num")) if m.group("num") else len(top.results) + 1
        if not self.budget.take(1):
            return  # counted; the root's reason says how many were dropped
        node = replace(_result_node(m, number), diagnostics=tuple(top.pending))
        if top.waiting is not None:
            w = top.waiting
            node = replace(node, diagnostics=node.diagnostics + w.trailing, children=w.children, plan=w.plan)
        top.results.append(node)
        top.pending, top.waiting = [], None

    def _bail_out(self, msg: str) -> None:
        why = "missing: bail out before result {n}: " + msg
        self._close_deeper_than(0, why)
        self.root_children, trailing = _finish_block(self.stack[0], why, self.budget)
        self.root_trailing = list(trailing)
        self.bail = msg

    # -- block stack

    def _open(self, indent: int, name: str = "") -> None:
        top = self.stack[-1]
        _flush_waiting(top, "missing: no result line after subtest {n}")
        self.stack.append(_Block(indent=indent, name=name or top.subtest_hint))
        top.subtest_hint = ""

    def _close_deeper_than(self, indent: int, why: str) -> None:
        while len(self.stack) > 1 and self.stack[-1].indent > indent:
            block = self.stack.pop()
            children, trailing = _finish_block(block, why, self.budget)
            parent = self.stack[-1]
            _flush_waiting(parent, "missing: no result line after subtest {n}")
            parent.waiting = _Closed(block.name, block.plan, children, trailing)

    # -- result

    def finish(self) -> TestNode:
        root = self.stack[0]
        if self.root_children is None:
            why = "missing: output ended before result {n}"
            self._close_deeper_than(0, why)
            self.root_children, trailing = _finish_block(root, why, self.budget)
            self.root_trailing = list(trailing)
        outcome, reason = Outcome.OK, ""
        if root.plan == 0:
            outcome, reason = Outcome.SKIP, _PLAN_SKIP.sub("", root.plan_comment or "").strip()
        if self.bail is not None:
            reason = f"bail out: {self.bail}"
        if self.budget.problem():
            reason = f"{reason}; {self.budget.problem()}" if reason else self.budget.problem()
        return TestNode(
            name="",
            outcome=outcome,
            reason=reason,
            diagnostics=tuple(self.root_trailing + self.after_bail),
            children=self.root_children,
            plan=root.plan,
        )


def _flush_waiting(block: _Block, why: str) -> None:
    """A nested block whose result line never came becomes an ERROR node of its own."""
    w = block.waiting
    if w is None:
        return
    n = len(block.results) + 1
    block.results.append(
        TestNode(
            name=w.name,
            number=n,
            outcome=Outcome.ERROR,
            reason=why.format(n=n),
            diagnostics=w.trailing,
            children=w.children,
            plan=w.plan,
        )
    )
    block.waiting = None


def _finish_block(block: _Block, why: str, budget: _Budget) -> tuple[tuple[TestNode, ...], tuple[str, ...]]:
    """Results of a block plus ERROR nodes for planned numbers never reported.

    The diagnostics after the last result go to the first missing node (they are the crashed
    test's "# [RUN]" line and the kernel's oops), or are returned as trailing lines. A plan
    above MAX_KTAP_PLAN fills nothing; the fill-ins of all blocks together stay within the
    node budget. Linear in the plan: gaps are merged in, never inserted one by one.
    """
    _flush_waiting(block, why)
    trailing = tuple(block.pending)
    plan = block.plan or 0
    if plan > MAX_KTAP_PLAN:
        return tuple(block.results), trailing
    seen = {r.number for r in block.results}
    last = max((n for n in seen if n is not None), default=0)
    missing = [n for n in range(1, plan + 1) if n not in seen]
    gaps = [n for n in missing if n < last]
    ends = [n for n in missing if n >= last]
    if not budget.take(len(missing)):
        return tuple(block.results), trailing
    # A gap goes before the first result (in printed order) numbered above it: as the gaps
    # grow, that position only moves right, so one pass places them all.
    results: list[TestNode] = []
    g = 0
    for r in block.results:
        while g < len(gaps) and r.number is not None and r.number > gaps[g]:
            results.append(
                TestNode(
                    name="",
                    number=gaps[g],
                    outcome=Outcome.ERROR,
                    reason=f"missing: result {gaps[g]} never reported",
                )
            )
            g += 1
        results.append(r)
    for n in ends:  # a cut-off: the output ended before them
        results.append(
            TestNode(name="", number=n, outcome=Outcome.ERROR, reason=why.format(n=n), diagnostics=trailing)
        )
        trailing = ()
    return tuple(results), trailing


class _Budget:
    """Result nodes one document may still make (MAX_KTAP_NODES), and what was refused."""

    def __init__(self) -> None:
        self.left = MAX_KTAP_NODES
        self.refused = 0
        self.too_big: list[int] = []

    def take(self, n: int) -> bool:
        if n > self.left:
            self.refused += n
            return False
        self.left -= n
        return True

    def problem(self) -> str:
        parts = []
        if self.too_big:
            parts.append(
                f"KTAP plan 1..{self.too_big[0]} is more than the {MAX_KTAP_PLAN} "
                "results the harness accepts from one program"
            )
        if self.refused:
            parts.append(
                f"{self.refused} KTAP results dropped: more than the {MAX_KTAP_NODES} "
                "result nodes the harness keeps of one program"
            )
        return "; ".join(parts)


_BUDGET_PROBLEM = re.compile(r"KTAP plan 1\.\.\d+ is more than [^;]*|\d+ KTAP results dropped: [^;]*")


def plan_problem(root: TestNode, asked: int | None = None) -> str:
    """Why a program's KTAP cannot be trusted as a whole ("" when it can): a plan above the
    cap, results dropped for the node budget, or (when `asked` is known) a top-level plan
    announcing more results than the cases it was asked to run."""
    found = _BUDGET_PROBLEM.findall(root.reason)
    if found:
        return "; ".join(found)
    if asked is not None and root.plan is not None and root.plan > asked:
        return f"KTAP plan 1..{root.plan} announces more results than the {asked} cases it was asked to run"
    return ""
