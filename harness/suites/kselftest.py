"""Upstream kselftests as suites: `--suite kselftest:mm/cow`, `kselftest:mm/gup_longterm`, ...

A kselftest is built from the kernel's own source tree (the one the kernel under test was built
from, or the cached Debian source of its series), statically and with liburing, by the tree's
own selftest Makefile, and pushed into the guest like our programs. It is run as root from the
ext4 scratch dir (/mnt/ext4: gup_longterm's "local tmpfile" cases need a block filesystem
there), with debugfs, swap and hugetlb pages set up by guest/init.

These programs do not follow our `--list`/ids contract, and their result lines are not unique
(mm/cow prints `# [RUN] <what> ... with <memory>` and then a generic `ok N No leak from parent
into child`). Each result is keyed on the `# [RUN]` line before it: `kselftest.mm.cow.<slug>`.
Selection: the program always runs whole; `--filter` globs are applied to the parsed ids after
the run (a filter that cannot match the program's id prefix leaves the program out).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import BuildError, InputError, ToolMissing
from harness.judge import expect, kmsg
from harness.kernels import kbuild, sources
from harness.kernels.kernel import DEFAULT_KERNEL
from harness.model import CaseResult, Kernel, Outcome, TestNode, Verdict
from harness.paths import cache_dir

PREFIX = "kselftest:"
GUEST_CWD = "/mnt/ext4"  # guest/init mounts the ext4 scratch disk there
_SPEC = re.compile(r"^kselftest:(?P<dir>[A-Za-z0-9_./-]+)/(?P<test>[A-Za-z0-9_.-]+)$")
_RUN = re.compile(r"^\[RUN\]\s*(?P<text>.*)$")
_DEBIAN_SERIES = re.compile(r"^debian:(?P<series>\d+\.\d+)")


def is_kselftest(suite: str) -> bool:
    return suite.startswith(PREFIX)


def parse_spec(suite: str) -> tuple[str, str]:
    """kselftest:mm/cow → ("mm", "cow")."""
    m = _SPEC.match(suite)
    if m is None or ".." in m.group("dir").split("/"):
        raise InputError(f"--suite {suite}: expected kselftest:DIR/TEST, e.g. kselftest:mm/cow")
    return m.group("dir"), m.group("test")


def id_prefix(selftest_dir: str, test: str) -> str:
    """kselftest.mm.cow (dots for slashes: ids are dotted paths)."""
    return ".".join(["kselftest", *selftest_dir.split("/"), test])


def program_name(selftest_dir: str, test: str) -> str:
    """The JUnit suite / output file name: kselftest-mm-cow."""
    return "-".join(["kselftest", *selftest_dir.split("/"), test])


# ---- pure: results keyed by the [RUN] line ----------------------------------------------


def slug(text: str) -> str:
    """'Basic COW after fork() ... with base page' → 'basic-cow-after-fork-with-base-page'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def run_text(node: TestNode) -> str:
    """The last `# [RUN] ...` diagnostic before the result line, or ''."""
    for line in reversed(node.diagnostics):
        m = _RUN.match(line.strip())
        if m is not None:
            return m.group("text").strip()
    return ""


def keyed(root: TestNode, prefix: str) -> list[tuple[str, TestNode]]:
    """(id, result) for every top-level result, in order. The id is the prefix plus the slug
    of the preceding `[RUN]` text; without one, the result's own name; without that,
    `result-<N>`. A repeated key gets `-2`, `-3`... so ids stay unique and stable."""
    out: list[tuple[str, TestNode]] = []
    seen: dict[str, int] = {}
    for node in root.children:
        key = slug(run_text(node)) or slug(node.name) or f"result-{node.number or len(out) + 1}"
        n = seen.get(key, 0) + 1
        seen[key] = n
        out.append((f"{prefix}.{key}" + (f"-{n}" if n > 1 else ""), node))
    return out


def could_match(prefix: str, filters: list[str]) -> bool:
    """Can any filter glob match an id that starts with `prefix.`? Decided on the glob's
    literal head (the part before its first wildcard): never wrongly false."""
    if not filters:
        return True
    for f in filters:
        head = re.split(r"[*?\[]", f, maxsplit=1)[0]
        full = prefix + "."
        if head.startswith(full) or full.startswith(head) or fnmatch.fnmatchcase(prefix, f):
            return True
    return False


def wanted(case_id: str, filters: tuple[str, ...] | list[str]) -> bool:
    return not filters or any(fnmatch.fnmatchcase(case_id, f) for f in filters)


# ---- finding the source and building ----------------------------------------------------


def source_for(kernel_spec: str | None) -> Path:
    """The source tree a kselftest is built from: the kernel's own (its tree or build dir, or
    the cached Debian source of its series), or $HARNESS_KSELFTEST_SRC (a tree or debian:SERIES)
    to run newer selftests against an older kernel (Debian 6.1's tree has no mm/cow)."""
    spec = os.environ.get("HARNESS_KSELFTEST_SRC") or kernel_spec or DEFAULT_KERNEL
    m = _DEBIAN_SERIES.match(spec)
    if m is not None:
        major, minor = (int(x) for x in m.group("series").split("."))
        tree = sources.for_series(major, minor)
        if tree is None:
            raise InputError(
                f"kselftests for {spec} need its source: run `harness source fetch "
                f"debian:{major}.{minor}` first"
            )
        return tree.root
    path = Path(spec).expanduser()
    if path.is_file():  # .../arch/x86/boot/bzImage of a tree or build dir
        path = path.parents[3] if path.parent.name == "boot" else path.parent
    src = kbuild.source_of(path) if path.is_dir() else None
    if src is None:
        raise InputError(
            f"kselftests need the kernel's source tree; {spec} is neither a tree, "
            "a `harness build` dir nor a debian: kernel"
        )
    return src


def _tree_dir(src: Path) -> Path:
    real = str(src.resolve())
    return (
        cache_dir() / "kselftests" / f"{src.resolve().name}-{hashlib.sha256(real.encode()).hexdigest()[:8]}"
    )


def _run(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if r.returncode != 0:
        text = r.stdout + r.stderr
        raise BuildError(f"{what} failed: {kbuild.first_error(text)}")


def build(src: Path, selftest_dir: str, test: str) -> Path:
    """Build one selftest from the tree (incremental: make decides); return the binary.

    `make headers` first: the selftests need this tree's uapi, not the host's older one. The
    test is compiled by the selftest's own Makefile run inside its directory, so sources are
    named relatively (gup_longterm derives a scratch file name from __FILE__: an absolute path
    would make every "local tmpfile" case fail with "mkstemp() failed")."""
    for tool in ("make", "gcc"):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: run ci/setup.sh")
    tdir = src / "tools" / "testing" / "selftests" / selftest_dir
    if not tdir.is_dir():
        raise InputError(
            f"--suite {PREFIX}{selftest_dir}/{test}: {src} has no tools/testing/selftests/"
            f"{selftest_dir} (mm/ was vm/ before 6.3; set HARNESS_KSELFTEST_SRC to a newer tree)"
        )
    if not (tdir / f"{test}.c").is_file():
        have = sorted(p.stem for p in tdir.glob("*.c")) if tdir.is_dir() else []
        hint = f" (this tree has: {', '.join(have[:12])}{'...' if len(have) > 12 else ''})" if have else ""
        raise InputError(f"--suite {PREFIX}{selftest_dir}/{test}: no {tdir / (test + '.c')}{hint}")
    out = _tree_dir(src)
    hdr = out / "headers"
    if not (hdr / "usr" / "include" / "linux" / "mman.h").is_file():
        hdr.mkdir(parents=True, exist_ok=True)
        _run(["make", "-C", str(src), f"O={hdr}", "headers"], f"make headers in {src}")
    bindir = out / selftest_dir
    bindir.mkdir(parents=True, exist_ok=True)
    binary = bindir / test
    _run(
        [
            "make",
            "-C",
            str(tdir),
            f"OUTPUT={bindir}",
            f"KHDR_INCLUDES=-isystem {hdr / 'usr' / 'include'}",
            "LDFLAGS=-static",
            str(binary),
        ],
        f"building {PREFIX}{selftest_dir}/{test}",
    )
    if not binary.is_file():
        raise BuildError(f"building {PREFIX}{selftest_dir}/{test}: make made no {binary}")
    return binary


# ---- pure: results → CaseResults -----------------------------------------------------------


def case_results(
    program: str,
    prefix: str,
    filters: tuple[str, ...],
    root: TestNode,
    rules: expect.RuleSet,
    kernel: Kernel,
    program_error: str = "",
) -> list[CaseResult]:
    """One kselftest's parsed TAP as CaseResults keyed by `[RUN]` line, filtered by --filter.

    A program that reported nothing (crashed before its plan, or a skip-all plan) gives one
    result under the prefix itself, so it can never vanish from the report."""
    out: list[CaseResult] = []
    matched_any = False
    for cid, node in keyed(root, prefix):
        if not wanted(cid, filters):
            continue
        matched_any = True
        exp = expect.expectation_for(rules, cid, kernel)
        reason = node.reason or (node.name if node.outcome is Outcome.NOT_OK else "")
        if node.outcome is Outcome.ERROR and program_error:
            reason = f"{reason}; {program_error}" if reason else program_error
        word = "not ok" if node.outcome is Outcome.NOT_OK else "ok"
        line = f"{word} {node.number or ''} {node.name}".rstrip()
        output = "\n".join([*(f"# {d}" for d in node.diagnostics), line])
        verdict, reason = expect.judge_case(node.outcome, exp, reason)
        out.append(CaseResult(cid, program, node.outcome, verdict, reason, output, exp))
    if matched_any:
        return out
    exp = expect.expectation_for(rules, prefix, kernel)
    diag = "\n".join(root.diagnostics)
    if root.outcome is Outcome.SKIP:  # skipped whole ("1..0 # SKIP why")
        verdict, why = expect.judge_case(Outcome.SKIP, exp, root.reason)
        return [CaseResult(prefix, program, Outcome.SKIP, verdict, why, diag, exp)]
    if root.children:  # results came back, the filters took them all
        verdict, why = expect.judge_case(Outcome.SKIP, exp, f"no result matched --filter {' '.join(filters)}")
        return [CaseResult(prefix, program, Outcome.SKIP, verdict, why, "", exp)]
    why = program_error or root.reason or "the program reported no results"
    return [CaseResult(prefix, program, Outcome.ERROR, Verdict.ERROR, why, diag, exp)]


def slices(root: TestNode, prefix: str, section: str) -> dict[str, str]:
    """The kernel log of each result (by id), cut at the `harness: ok N ...` markers that
    guest/run-test.sh mirrors into the kernel log after every result line: the lines after
    marker N-1 up to marker N belong to result N. Lines after the last marker (a crash) go to
    the first result without a marker."""
    lines = section.split("\n")
    chunks: dict[int, str] = {}
    start, stop = 0, len(lines)
    for m in kmsg.markers(section):
        if m.kind == "begin":
            start = m.line + 1
        elif m.kind == "end":
            stop = m.line
            break
        elif m.kind == "result":
            chunks.setdefault(m.number, "\n".join(lines[start : m.line]) + "\n")
            start = m.line + 1
    out: dict[str, str] = {}
    tail_given = False
    for cid, node in keyed(root, prefix):
        n = node.number or 0
        if n in chunks:
            out[cid] = chunks[n]
        elif not tail_given and start < stop:
            out[cid] = "\n".join(lines[start:stop]) + "\n"
            tail_given = True
    return out
