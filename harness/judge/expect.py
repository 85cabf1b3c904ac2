"""Expectations: what each case should do on a given kernel, and the judge of an outcome.

The expectations file (``expectations.yaml`` at the repo root) looks like::

    version: 1
    rules:
      - match: "cow.vmsplice.*.thp"        # fnmatch glob on the case id (or a list of globs)
        expect: fail                       # pass | fail | skip
        kernel: ">=5.9,<5.18"              # optional: comma-separated comparisons, all must hold
        config: {CONFIG_GUP_TEST: y}       # optional: all must hold; "n" means unset
        reason: "THP COW decided by mapcount"   # required unless expect is pass
        commit: "<sha> <subject> (5.18)"   # optional: the upstream fix, or "none"

``match`` globs use fnmatch, case-sensitively, against the whole case id. ``config`` values are
compared as text with the kernel's .config ("y", "m", "250"); "n" means the option is unset.
``expect: skip`` says why the case cannot run on that kernel or config (a feature that came
later, an option the kernel lacks); it needs a ``reason`` and a ``commit`` (the commit or
version that brought the feature, or what provides the option). A case that SKIPs with no such
rule is an unexpected verdict (ERROR), so the harness's environment breaking never looks
green; a case a skip rule covers that runs anyway is held to pass. See ``judge``.

Precedence: rules are tried in file order and the LAST rule that matches wins, so a specific
rule written after a general one overrides it. A case no rule matches is expected to pass.

Version comparisons (``>=``, ``>``, ``<=``, ``<``, ``==``) compare only as many components as
the bound spells out: ``==6.12`` is every 6.12.y, ``<=6.12`` includes 6.12.117, ``>6.12``
starts at 6.13, ``>=6.2`` and ``<6.2`` split at 6.2.0. A spec whose bounds leave no version
(``>=6.14,<6.2``) is rejected as a typo.

Everything here is pure except ``load`` (which reads one file). Every problem with the file is
a ConfigError whose message starts with ``FILE:LINE:``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.errors import ConfigError, InputError
from harness.model import Expect, Expectation, Kernel, KernelVersion, Outcome, Verdict

FORMAT_VERSION = 1
EXPECT_VALUES = ("pass", "fail", "skip")
RULE_KEYS = ("match", "expect", "kernel", "config", "reason", "commit")
TOP_KEYS = ("version", "rules")

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))

# uname -r and package versions: 6.12.117, 6.1.192-2, 6.12.117+deb12-amd64, 6.1.0-56-amd64,
# 6.14-rc3, v6.12. Anything after the numbers must start with a separator.
_RELEASE_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~_].*)?")
_BOUND_RE = re.compile(r"\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+){0,2})\s*")
_CONFIG_KEY_RE = re.compile(r"CONFIG_[A-Za-z0-9_]+")

Triple = tuple[int, int, int]


# ---------------------------------------------------------------------------------------------
# Versions


def parse_version(s: str) -> KernelVersion:
    """Upstream version numbers from a kernel release or package version string.

    Suffixes are dropped: "6.12.117+deb12-amd64" -> 6.12.117, "6.1.192-2" -> 6.1.192. An -rc is
    taken as the release it leads to ("6.14-rc3" -> 6.14.0): features land in the merge window,
    so an rc already has what ">=6.14" means. Beware Debian's ABI names: uname -r "6.1.0-56-amd64"
    parses to 6.1.0 although the kernel is 6.1.192; the real version is in the package version
    (or /proc/version), which is what the kernel resolver should pass here.
    """
    m = _RELEASE_RE.fullmatch(s.strip())
    if m is None:
        raise InputError(f"cannot parse kernel version {s!r} (want e.g. 6.12.117 or 6.1.0-56-amd64)")
    return KernelVersion(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


@dataclass(frozen=True)
class VersionRange:
    """A parsed kernel spec: the versions v with low <= v < high (high None = unbounded)."""

    spec: str
    low: Triple = (0, 0, 0)
    high: Triple | None = None

    def __contains__(self, v: object) -> bool:
        if not isinstance(v, KernelVersion):
            return False
        t = v.as_tuple()
        return self.low <= t and (self.high is None or t < self.high)


def _pad(parts: tuple[int, ...]) -> Triple:
    p = parts + (0,) * (3 - len(parts))
    return (p[0], p[1], p[2])


def _after(parts: tuple[int, ...]) -> Triple:
    """First version past every version that starts with `parts` (6.12 -> 6.13.0)."""
    return _pad(parts[:-1] + (parts[-1] + 1,))


def parse_range(spec: str) -> VersionRange:
    """Parse ">=6.2,<6.14" etc. (see module doc). Raises ConfigError without a location."""
    if not spec.strip():
        raise ConfigError("empty kernel range")
    low: Triple = (0, 0, 0)
    high: Triple | None = None
    for item in spec.split(","):
        m = _BOUND_RE.fullmatch(item)
        if m is None:
            raise ConfigError(
                f"bad kernel range {spec!r}: {item.strip()!r} is not OP VERSION "
                "(OP one of >= > <= < ==, VERSION like 6.2 or 6.12.117)"
            )
        op, parts = m.group(1), tuple(int(x) for x in m.group(2).split("."))
        lo: Triple | None = None
        hi: Triple | None = None
        if op == ">=":
            lo = _pad(parts)
        elif op == ">":
            lo = _after(parts)
        elif op == "<":
            hi = _pad(parts)
        elif op == "<=":
            hi = _after(parts)
        else:  # ==
            lo, hi = _pad(parts), _after(parts)
        if lo is not None:
            low = max(low, lo)
        if hi is not None:
            high = hi if high is None else min(high, hi)
    if high is not None and low >= high:
        raise ConfigError(f"kernel range {spec!r} matches no version")
    return VersionRange(spec=spec, low=low, high=high)


def version_in_range(v: KernelVersion, spec: str) -> bool:
    """True if v satisfies every comparison in spec. A bad spec raises ConfigError."""
    return v in parse_range(spec)


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Rule:
    match: tuple[str, ...]  # fnmatch globs on the case id; any one matching is enough
    expect: Expect
    source: str  # "file:line" of the rule
    kernel: VersionRange | None = None
    config: tuple[tuple[str, str], ...] = ()  # (CONFIG_X, wanted value); "n" = unset
    reason: str = ""
    commit: str = ""

    def matches(self, case_id: str, kernel: Kernel) -> bool:
        if not any(fnmatch.fnmatchcase(case_id, g) for g in self.match):
            return False
        if self.kernel is not None and kernel.version not in self.kernel:
            return False
        return all(_config_holds(kernel.config, k, v) for k, v in self.config)

    def expectation(self) -> Expectation:
        return Expectation(expect=self.expect, reason=self.reason, commit=self.commit, source=self.source)


@dataclass(frozen=True)
class RuleSet:
    path: str = ""  # "" for the empty set used when no file is given
    rules: tuple[Rule, ...] = ()


def _config_holds(config: Mapping[str, str], key: str, want: str) -> bool:
    got = config.get(key)
    if got is not None:
        got = got.strip('"')  # string options are quoted in .config
    if want == "n":
        return got is None or got == "n"
    return got == want


def matching_rules(rules: RuleSet, case_id: str, kernel: Kernel) -> tuple[Rule, ...]:
    """Every rule that applies to this case on this kernel, in file order (the last one wins)."""
    return tuple(r for r in rules.rules if r.matches(case_id, kernel))


def expectation_for(rules: RuleSet, case_id: str, kernel: Kernel) -> Expectation:
    hits = matching_rules(rules, case_id, kernel)
    if not hits:
        return Expectation(expect=Expect.PASS, source="")
    return hits[-1].expectation()


# ---------------------------------------------------------------------------------------------
# Judge

# expect "skip" says why the case cannot run on this kernel or config (a missing feature or
# option); if it runs anyway, it is held to the ordinary standard: OK is PASS, NOT_OK is FAIL.
_JUDGE: dict[tuple[Outcome, str], Verdict] = {
    (Outcome.OK, "pass"): Verdict.PASS,
    (Outcome.OK, "fail"): Verdict.XPASS,  # stale expectation, or the fix was backported
    (Outcome.OK, "skip"): Verdict.PASS,
    (Outcome.NOT_OK, "pass"): Verdict.FAIL,
    (Outcome.NOT_OK, "fail"): Verdict.XFAIL,
    (Outcome.NOT_OK, "skip"): Verdict.FAIL,
    # No silent SKIP: a case that did not run is fine only where a rule says why it cannot.
    # Any other skip (no swap, no scratch disk, a feature that should be there) is the
    # harness's environment or the kernel going wrong, and must not look green.
    (Outcome.SKIP, "pass"): Verdict.ERROR,
    (Outcome.SKIP, "fail"): Verdict.ERROR,
    (Outcome.SKIP, "skip"): Verdict.SKIP,
    (Outcome.TODO, "pass"): Verdict.ERROR,
    (Outcome.TODO, "fail"): Verdict.ERROR,
    (Outcome.TODO, "skip"): Verdict.SKIP,
}

UNEXPECTED_SKIP = "skipped, and no expectation says why"


def judge(outcome: Outcome, exp: Expectation) -> Verdict:
    """Verdict for what the test reported, given what we expected on this kernel.

    ============  =====  =====  =====
    outcome       pass   fail   skip    (expectation)
    ============  =====  =====  =====
    OK            PASS   XPASS  PASS
    NOT_OK        FAIL   XFAIL  FAIL
    SKIP          ERROR  ERROR  SKIP    (ERROR: an unexpected skip, see judge_case)
    TODO          ERROR  ERROR  SKIP
    XFAIL         XFAIL  XFAIL  XFAIL   (the test itself knows the gap)
    ERROR         ERROR  ERROR  ERROR
    ============  =====  =====  =====
    """
    if outcome is Outcome.ERROR:
        return Verdict.ERROR
    if outcome is Outcome.XFAIL:
        return Verdict.XFAIL
    try:
        return _JUDGE[(outcome, exp.expect)]
    except KeyError:
        raise InputError(f"bad expectation {exp.expect!r} from {exp.source or 'default'}") from None


def judge_case(outcome: Outcome, exp: Expectation, reason: str) -> tuple[Verdict, str]:
    """The verdict and the reason to report with it: the test's own reason, except for a skip
    that no `expect: skip` rule explains, which says so first (the verdict is then ERROR):
    "skipped, and no expectation says why: no swap"."""
    verdict = judge(outcome, exp)
    if verdict is Verdict.ERROR and outcome in (Outcome.SKIP, Outcome.TODO):
        what = UNEXPECTED_SKIP if outcome is Outcome.SKIP else f"TODO: {UNEXPECTED_SKIP}"
        return verdict, f"{what}: {reason or 'the test gave no reason'}"
    return verdict, reason


# ---------------------------------------------------------------------------------------------
# Loading


def load(path: Path) -> RuleSet:
    """Read and validate an expectations file. Any problem raises ConfigError "FILE:LINE: why"."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x})") from None
    return parse(text, str(path))


def parse(text: str, path: str) -> RuleSet:
    """Validate expectations YAML text; `path` is only used in messages and sources."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        why = e.problem or "invalid YAML"
        if e.context and e.context_mark is not None:
            why += f" ({e.context} at line {e.context_mark.line + 1})"
        raise ConfigError(f"{path}:{_syntax_error_line(e, text)}: YAML syntax error: {why}") from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise ConfigError(f"{path}:{line}: YAML syntax error: {e.reason} (#x{e.character:04x})") from None
    except yaml.YAMLError as e:  # pragma: no cover - every PyYAML error above carries a position
        raise ConfigError(f"{path}:1: YAML error: {e}") from None
    return _Reader(path).ruleset(root)


def _syntax_error_line(e: yaml.MarkedYAMLError, text: str) -> int:
    """The problem's line; but an unterminated quote or bracket is only noticed at the end of
    the file, past the last line, and then where the construct started is the useful line."""
    mark = e.problem_mark
    if mark is None or (mark.index >= len(text.rstrip()) and e.context_mark is not None):
        mark = e.context_mark
    return mark.line + 1 if mark is not None else 1


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    names = {_STR: "a string", _INT: "an integer", _FLOAT: "a number", _BOOL: "a boolean", _NULL: "nothing"}
    return names.get(node.tag, f"a {node.tag}")


class _Reader:
    """Walks the composed node graph; every error names the line of the node at fault."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, node: Node, why: str) -> ConfigError:
        return ConfigError(f"{self.path}:{node.start_mark.line + 1}: {why}")

    @staticmethod
    def at(key: Node, value: Node) -> Node:
        """Where to report a bad value: an empty value's mark is already on the next line."""
        return key if isinstance(value, ScalarNode) and value.tag == _NULL and not value.value else value

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]]:
        """key -> (key node, value node); unknown and duplicate keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what}: expected a mapping, got {_kind(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            if not (isinstance(k, ScalarNode) and k.tag == _STR):
                raise self.error(k, f"{what}: keys must be plain names, got {_kind(k)}")
            if k.value not in allowed:
                raise self.error(k, f"{what}: unknown key {k.value!r} (allowed: {', '.join(allowed)})")
            if k.value in out:
                raise self.error(k, f"{what}: duplicate key {k.value!r}")
            out[k.value] = (k, v)
        return out

    def string(self, key: Node, node: Node, what: str, numbers_ok: bool = False) -> str:
        """A scalar's text. numbers_ok lets a commit id such as 1234567 or 5.18 stay as written."""
        tags = (_STR, _INT, _FLOAT) if numbers_ok else (_STR,)
        if not (isinstance(node, ScalarNode) and node.tag in tags):
            raise self.error(self.at(key, node), f"{what}: expected a string, got {_kind(node)}")
        return str(node.value)

    def optional(
        self, fields: dict[str, tuple[Node, Node]], name: str, what: str, numbers_ok: bool = False
    ) -> str:
        if name not in fields:
            return ""
        return self.string(*fields[name], what=f"{what}: {name}", numbers_ok=numbers_ok).strip()

    def ruleset(self, root: Node | None) -> RuleSet:
        if root is None:
            want = f"'version: {FORMAT_VERSION}' and 'rules:'"
            raise ConfigError(f"{self.path}:1: empty file (expected {want})")
        top = self.mapping(root, "top level", TOP_KEYS)
        for name in TOP_KEYS:
            if name not in top:
                raise self.error(root, f"top level: missing {name!r}")
        vkey, vnode = top["version"]
        if not (isinstance(vnode, ScalarNode) and vnode.tag == _INT and vnode.value == str(FORMAT_VERSION)):
            got = vnode.value if isinstance(vnode, ScalarNode) else _kind(vnode)
            raise self.error(self.at(vkey, vnode), f"version: expected {FORMAT_VERSION}, got {got!r}")
        rkey, rnode = top["rules"]
        if not isinstance(rnode, SequenceNode):
            raise self.error(self.at(rkey, rnode), f"rules: expected a list, got {_kind(rnode)}")
        rules = tuple(self.rule(n, i + 1) for i, n in enumerate(rnode.value))
        return RuleSet(path=self.path, rules=rules)

    def rule(self, node: Node, number: int) -> Rule:
        what = f"rule {number}"
        fields = self.mapping(node, what, RULE_KEYS)
        for name in ("match", "expect"):
            if name not in fields:
                raise self.error(node, f"{what}: missing {name!r}")
        match = self.globs(*fields["match"], what=f"{what}: match")
        ekey, enode = fields["expect"]
        expect = enode.value if isinstance(enode, ScalarNode) and enode.tag == _STR else ""
        if expect not in EXPECT_VALUES:
            got = repr(enode.value) if isinstance(enode, ScalarNode) and enode.value else _kind(enode)
            allowed = ", ".join(EXPECT_VALUES)
            raise self.error(self.at(ekey, enode), f"{what}: expect must be one of {allowed}, got {got}")
        kernel = None
        if "kernel" in fields:
            k, v = fields["kernel"]
            spec = self.string(k, v, f"{what}: kernel")
            try:
                kernel = parse_range(spec)
            except ConfigError as e:
                raise self.error(v, f"{what}: {e}") from None
        config = self.config(*fields["config"], what=f"{what}: config") if "config" in fields else ()
        reason = self.optional(fields, "reason", what)
        if expect != "pass" and not reason:
            raise self.error(node, f"{what}: expect {expect} needs a 'reason'")
        commit = self.optional(fields, "commit", what, numbers_ok=True)
        if expect == "skip" and not commit:
            raise self.error(
                node,
                f"{what}: expect skip needs a 'commit' (the commit or version that "
                "brought the feature, or what provides the config option)",
            )
        if expect == "skip" and kernel is None and not config:
            raise self.error(
                node,
                f"{what}: expect skip needs a 'kernel' or 'config' condition "
                "(on which kernels the case cannot run)",
            )
        return Rule(
            match=match,
            expect=Expect(expect),
            source=f"{self.path}:{node.start_mark.line + 1}",
            kernel=kernel,
            config=config,
            reason=reason,
            commit=commit,
        )

    def globs(self, key: Node, node: Node, what: str) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            raise self.error(node, f"{what}: empty list")
        out = []
        for item in items:
            g = self.string(key, item, what)
            if not g or any(c.isspace() for c in g):
                raise self.error(item, f"{what}: glob {g!r} is empty or contains whitespace")
            out.append(g)
        return tuple(out)

    def config(self, key: Node, node: Node, what: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(node, MappingNode):
            raise self.error(self.at(key, node), f"{what}: expected a mapping, got {_kind(node)}")
        if not node.value:
            raise self.error(node, f"{what}: empty mapping (leave 'config' out instead)")
        out: dict[str, str] = {}
        for k, v in node.value:
            name = self.string(k, k, what)
            if not _CONFIG_KEY_RE.fullmatch(name):
                raise self.error(k, f"{what}: {name!r} is not a CONFIG_ option name")
            if name in out:
                raise self.error(k, f"{what}: duplicate key {name!r}")
            if isinstance(v, ScalarNode) and v.tag == _BOOL:
                raise self.error(v, f"{what}: {name}: {v.value!r} is a YAML boolean; write y, m or n")
            out[name] = self.string(k, v, f"{what}: {name}", numbers_ok=True)
        return tuple(out.items())
