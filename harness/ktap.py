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
  Outcome.ERROR nodes, so a crash can never read as a shorter, passing run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .model import Outcome, TestNode

# CSI (ESC [ ... final), OSC (ESC ] ... BEL/ST) and the two-byte escapes (ESC c = reset, which
# SeaBIOS sends before its banner).
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]*[0-~])")
_VERSION_ANYWHERE = re.compile(r"^(?P<pre>.*?)(?:KTAP|TAP) version \d+\s*$")
_VERSION = re.compile(r"^(?:KTAP|TAP) version \d+\s*$")
_PLAN = re.compile(r"^1\.\.(?P<n>\d+)\s*(?:#\s*(?P<comment>.*))?$")
_RESULT = re.compile(r"^(?P<not>not\s+)?ok(?=\s|$)\s*(?P<num>\d+)?\s*(?:-(?:\s+|$))?(?P<rest>.*)$")
_DIRECTIVE = re.compile(
    r"(?:^|\s)#\s*(?P<word>skip(?:ped)?|xfail|todo)\b:?\s*(?P<reason>.*)$", re.IGNORECASE
)
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
    for a, b in zip(bounds, bounds[1:]):
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
        node = replace(_result_node(m, number), diagnostics=tuple(top.pending))
        if top.waiting is not None:
            w = top.waiting
            node = replace(node, diagnostics=node.diagnostics + w.trailing, children=w.children,
                           plan=w.plan)
        top.results.append(node)
        top.pending, top.waiting = [], None

    def _bail_out(self, msg: str) -> None:
        why = "missing: bail out before result {n}: " + msg
        self._close_deeper_than(0, why)
        self.root_children, trailing = _finish_block(self.stack[0], why)
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
            children, trailing = _finish_block(block, why)
            parent = self.stack[-1]
            _flush_waiting(parent, "missing: no result line after subtest {n}")
            parent.waiting = _Closed(block.name, block.plan, children, trailing)

    # -- result

    def finish(self) -> TestNode:
        root = self.stack[0]
        if self.root_children is None:
            why = "missing: output ended before result {n}"
            self._close_deeper_than(0, why)
            self.root_children, trailing = _finish_block(root, why)
            self.root_trailing = list(trailing)
        outcome, reason = Outcome.OK, ""
        if root.plan == 0:
            outcome, reason = Outcome.SKIP, _PLAN_SKIP.sub("", root.plan_comment or "").strip()
        if self.bail is not None:
            reason = f"bail out: {self.bail}"
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


def _finish_block(block: _Block, why: str) -> tuple[tuple[TestNode, ...], tuple[str, ...]]:
    """Results of a block plus ERROR nodes for planned numbers never reported.

    The diagnostics after the last result go to the first missing node (they are the crashed
    test's "# [RUN]" line and the kernel's oops), or are returned as trailing lines.
    """
    _flush_waiting(block, why)
    results = list(block.results)
    trailing = tuple(block.pending)
    seen = {r.number for r in results}
    last = max((n for n in seen if n is not None), default=0)
    for n in range(1, (block.plan or 0) + 1):
        if n in seen:
            continue
        if n < last:  # a gap, not a cut-off: keep it where it belongs
            gap = TestNode(name="", number=n, outcome=Outcome.ERROR,
                           reason=f"missing: result {n} never reported")
            results.insert(_position(results, n), gap)
            continue
        results.append(TestNode(name="", number=n, outcome=Outcome.ERROR,
                                reason=why.format(n=n), diagnostics=trailing))
        trailing = ()
    return tuple(results), trailing


def _position(results: list[TestNode], n: int) -> int:
    """Index of the first result numbered above n (results keep their printed order)."""
    for i, r in enumerate(results):
        if r.number is not None and r.number > n:
            return i
    return len(results)
