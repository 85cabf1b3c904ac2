"""Pure Kconfig helpers: merge config fragments, check they survived olddefconfig, and explain why
an option was dropped from the tree's own Kconfig files. No I/O: files come in as text (or
through a `read` callable), messages go out as strings.

Why this exists: `make olddefconfig` silently drops an option whose dependencies are not met
(MEM_SOFT_DIRTY without CHECKPOINT_RESTORE, GUP_TEST without DEBUG_FS...), and a kernel built from
such a config quietly SKIPs the tests the fragment was written for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")

Config = dict[str, str]  # CONFIG_X -> "y" | "m" | "123" | '"text"' ; "n" for "# ... is not set"


def parse(text: str) -> Config:
    """A .config or a fragment. `# CONFIG_X is not set` is kept as "n" (a fragment can ask for it)."""
    out: Config = {}
    for raw in text.splitlines():
        line = raw.strip()
        if (m := _SET.match(line)) is not None:
            out[m.group(1)] = m.group(2).strip()
        elif (m := _UNSET.match(line)) is not None:
            out[m.group(1)] = "n"
    return out


def merge(base_text: str, fragments: list[Config]) -> str:
    """The base .config with every fragment applied in order (a later fragment wins).

    Lines of the base that a fragment sets are replaced in place; new options are appended.
    The result is input for `make olddefconfig`, which then resolves dependencies.
    """
    wanted: Config = {}
    for frag in fragments:
        wanted.update(frag)
    lines: list[str] = []
    done: set[str] = set()
    for raw in base_text.splitlines():
        line = raw.strip()
        m = _SET.match(line) or _UNSET.match(line)
        if m is not None and m.group(1) in wanted:
            key = m.group(1)
            if key not in done:
                lines.append(format_option(key, wanted[key]))
                done.add(key)
            continue
        lines.append(raw)
    for key, val in wanted.items():
        if key not in done:
            lines.append(format_option(key, val))
    return "\n".join(lines) + "\n"


def format_option(key: str, val: str) -> str:
    return f"# {key} is not set" if val == "n" else f"{key}={val}"


@dataclass(frozen=True)
class Dropped:
    option: str  # CONFIG_X
    wanted: str  # what the fragment asked for
    got: str  # what olddefconfig left ("n" = not set)
    source: str = ""  # the fragment that asked


def _value(cfg: Config, key: str) -> str:
    return cfg.get(key, "n")


def dropped(wanted: dict[str, tuple[str, str]], final: Config) -> list[Dropped]:
    """Fragment options (CONFIG_X -> (value, fragment name)) that did not survive. A module
    request (m) is met by built-in (y): without CONFIG_MODULES every m becomes y."""
    out = []
    for key, (val, src) in wanted.items():
        got = _value(final, key)
        if got == val or (val == "m" and got == "y"):
            continue
        out.append(Dropped(key, val, got, src))
    return out


# ---- Kconfig reading ---------------------------------------------------------------------

_ENTRY = re.compile(r"^\s*(config|menuconfig)\s+([A-Za-z0-9_]+)\s*$")
_BLOCK_START = re.compile(
    r"^\s*(config|menuconfig|choice|endchoice|menu|endmenu|if|endif|comment|source|osource|rsource|orsource|mainmenu)\b"
)
_SOURCE = re.compile(r'^\s*(o?r?source)\s+"?([^"\s]+)"?')
_IF = re.compile(r"^\s*if\s+(.*)$")
_DEPENDS = re.compile(r"^\s*depends\s+on\s+(.*)$")
_PROMPT = re.compile(r'^\s*(?:bool|tristate|string|int|hex|prompt)\s+"[^"]*"(?:\s+if\s+(.*))?\s*$')
_SELECT = re.compile(r"^\s*select\s+([A-Za-z0-9_]+)")
_IDENT = re.compile(r"(!?)\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Definition:
    """One `config X` entry: where it is, its own and its enclosing conditions."""

    symbol: str
    file: str
    line: int
    depends: tuple[str, ...]  # `depends on` of the entry, then of enclosing if/menu/choice
    prompt: bool  # has a prompt (user-settable); without one it is only ever selected
    prompt_if: str = ""  # condition on the prompt (`bool "x" if EXPERT`)
    in_choice: bool = False  # a member of a `choice` block


@dataclass
class _Entry:
    symbol: str
    line: int
    outer: tuple[str, ...]
    in_choice: bool
    depends: list[str] = field(default_factory=list)
    prompt: bool = False
    prompt_if: str = ""


@dataclass
class _Frame:
    kind: str  # if | menu | choice
    conds: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, comments dropped, numbered from 1."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        line = buf + raw
        buf = ""
        if "#" in line and not line.lstrip().startswith("help"):
            # '#' starts a comment unless it is inside a string ("#" in prompts is rare)
            q = False
            for i, ch in enumerate(line):
                if ch == '"':
                    q = not q
                elif ch == "#" and not q:
                    line = line[:i]
                    break
        out.append((start, line.rstrip()))
    return out


def definitions(
    read: Callable[[str], str | None], symbol: str, srcarch: str = "x86", top: str = "Kconfig"
) -> list[Definition]:
    """Every definition of `symbol` (without CONFIG_) reachable from `top`, following `source`
    statements (paths relative to the tree, $(SRCARCH) substituted, globs via `read` listing
    not supported: a glob source is skipped). `read(path)` gives a file's text or None."""
    found: list[Definition] = []
    seen: set[str] = set()

    def walk(path: str, outer: tuple[str, ...]) -> None:
        if path in seen:
            return
        seen.add(path)
        text = read(path)
        if text is None:
            return
        stack: list[_Frame] = []
        entry: _Entry | None = None
        menu_open = False  # `depends on` right after `menu` belongs to the menu

        def conds() -> tuple[str, ...]:
            return outer + tuple(c for f in stack for c in f.conds)

        def close_entry() -> None:
            nonlocal entry
            if entry is not None and entry.symbol == symbol:
                found.append(
                    Definition(
                        symbol,
                        path,
                        entry.line,
                        tuple(entry.depends) + entry.outer,
                        entry.prompt,
                        entry.prompt_if,
                        entry.in_choice,
                    )
                )
            entry = None

        in_help = False
        help_indent = -1
        for n, line in _logical_lines(text):
            stripped = line.strip()
            if in_help:
                # Help text: every line indented deeper than the first one's start ends it.
                indent = len(line) - len(line.lstrip())
                if not stripped:
                    continue
                if help_indent < 0:
                    help_indent = indent
                if indent >= help_indent and indent > 0:
                    continue
                in_help = False
            if not stripped:
                continue
            if stripped in ("help", "---help---"):
                in_help, help_indent = True, -1
                continue
            if _BLOCK_START.match(line):
                close_entry()
                menu_open = False
            if (m := _ENTRY.match(line)) is not None:
                entry = _Entry(m.group(2), n, conds(), any(f.kind == "choice" for f in stack))
                continue
            word = stripped.split()[0]
            if word == "if" and (m := _IF.match(line)) is not None:
                stack.append(_Frame("if", [" ".join(m.group(1).split())]))
            elif word in ("endif", "endmenu", "endchoice"):
                kind = {"endif": "if", "endmenu": "menu", "endchoice": "choice"}[word]
                while stack:
                    if stack.pop().kind == kind:
                        break
            elif word in ("menu", "choice"):
                stack.append(_Frame(word))
                menu_open = True
            elif (m := _SOURCE.match(line)) is not None:
                target = m.group(2).replace("$(SRCARCH)", srcarch).replace("$SRCARCH", srcarch)
                if m.group(1).endswith("rsource"):
                    target = "/".join(path.split("/")[:-1] + [target])
                if "*" not in target and "$" not in target:
                    walk(target, conds())
            elif (m := _DEPENDS.match(line)) is not None:
                if entry is not None:
                    entry.depends.append(" ".join(m.group(1).split()))
                elif menu_open and stack:
                    stack[-1].conds.append(" ".join(m.group(1).split()))
            elif entry is not None and (m := _PROMPT.match(line)) is not None:
                entry.prompt = True
                entry.prompt_if = (m.group(1) or "").strip()
        close_entry()

    walk(top, ())
    return found


def selectors(read: Callable[[str], str | None], symbol: str, paths: list[str]) -> list[str]:
    """Symbols that `select` symbol, among the given Kconfig files (for 'forced on' messages)."""
    out: list[str] = []
    for p in paths:
        text = read(p) or ""
        current = ""
        for _, line in _logical_lines(text):
            if (m := _ENTRY.match(line)) is not None:
                current = m.group(2)
            elif (m := _SELECT.match(line)) is not None and m.group(1) == symbol and current:
                out.append(current)
    return out


_TOKEN = re.compile(r"\s*(&&|\|\||!=|=|!|\(|\)|[A-Za-z0-9_]+|\"[^\"]*\")")


def evaluate(expr: str, final: Config) -> bool:
    """A dependency expression as a boolean: a symbol is true when set (y or m); `X = v` and
    `X != v` compare values (unset = n). Unknown syntax counts as true (never blames it)."""
    toks = _TOKEN.findall(expr)
    pos = 0

    def peek() -> str:
        return toks[pos] if pos < len(toks) else ""

    def take() -> str:
        nonlocal pos
        pos += 1
        tok: str = toks[pos - 1]
        return tok

    def value(tok: str) -> str:
        if tok in ("y", "m", "n") or tok.startswith('"') or tok.isdigit():
            return tok.strip('"')
        return _value(final, f"CONFIG_{tok}")

    def atom() -> bool:
        tok = take() if peek() else ""
        if tok == "!":
            return not atom()
        if tok == "(":
            v = disj()
            if peek() == ")":
                take()
            return v
        if peek() in ("=", "!="):
            op, other = take(), take() if peek() else ""
            eq = value(tok) == value(other)
            return eq if op == "=" else not eq
        return value(tok) not in ("n", "")

    def conj() -> bool:
        v = atom()
        while peek() == "&&":
            take()
            v = atom() and v
        return v

    def disj() -> bool:
        v = conj()
        while peek() == "||":
            take()
            v = conj() or v
        return v

    try:
        return disj()
    except IndexError:
        return True


def unmet(expr: str, final: Config) -> list[str]:
    """Why a dependency expression is false: the plain symbols in it that are not set and the
    negated ones (`!X`) that are. Empty when the expression holds."""
    if evaluate(expr, final):
        return []
    out = []
    for neg, name in _IDENT.findall(expr):
        if name in ("y", "m", "n", "if", "on") or name.isdigit():
            continue
        is_set = _value(final, f"CONFIG_{name}") not in ("n", "")
        if (neg and is_set) or (not neg and not is_set):
            label = f"!{name}" if neg else name
            if label not in out:
                out.append(label)
    return out


def explain(d: Dropped, defs: list[Definition], final: Config, selected_by: Sequence[str] = ()) -> str:
    """One line: which option was dropped and the dependency that is missing."""
    name = d.option.removeprefix("CONFIG_")
    where = f" ({d.source})" if d.source else ""
    asked = format_option(d.option, d.wanted)
    got = "not set" if d.got == "n" else f"={d.got}"
    head = f"{asked}{where} did not survive olddefconfig (now {got})"
    if d.wanted == "n":
        by = f": selected by {', '.join(selected_by[:4])}" if selected_by else ": another option selects it"
        return head + by
    if not defs:
        return head + f": no 'config {name}' in this tree's Kconfig (renamed or removed?)"
    reasons: list[str] = []
    for df in defs:
        for expr in df.depends:
            missing = unmet(expr, final)
            if missing:
                reasons.append(
                    f"depends on {expr.strip()} ({df.file}:{df.line}); not met: {', '.join(missing)}"
                )
        if df.prompt_if and unmet(df.prompt_if, final):
            reasons.append(
                f"its prompt needs {df.prompt_if} ({df.file}:{df.line}); not met: "
                f"{', '.join(unmet(df.prompt_if, final))}"
            )
    if reasons:
        return head + ": " + "; ".join(dict.fromkeys(reasons))
    if any(df.in_choice for df in defs):
        return head + (
            f": {name} is one member of a choice and another member won; set the"
            " others to 'is not set' in the fragment"
        )
    if not any(df.prompt for df in defs):
        return head + f": {name} has no prompt, it is only set when another option selects it"
    if d.wanted not in ("y", "m", "n"):
        return head + ": the value is out of its range or not valid for its type"
    if d.wanted == "m":
        return head + ": modules need CONFIG_MODULES=y"
    return head + ": its dependencies look met; a choice or a 'select' may override it"
