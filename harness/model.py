"""Typed values passed between the pipeline stages. All frozen; no behaviour beyond helpers."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

# What every long step reports its progress to: one line at a time (the CLI prints it to stderr).
Progress = Callable[[str], None]


class Outcome(str, enum.Enum):
    """What a test program itself reported for one case (from its KTAP line)."""

    OK = "ok"
    NOT_OK = "not_ok"
    SKIP = "skip"  # "ok N name # SKIP reason"
    XFAIL = "xfail"  # "ok/not ok N name # XFAIL reason" (the test knows it is a known gap)
    TODO = "todo"
    ERROR = "error"  # planned but never reported (crash, cut-off output), or program died


class Verdict(str, enum.Enum):
    """The harness's judgement of an outcome against the expectation for this kernel."""

    PASS = "PASS"
    FAIL = "FAIL"
    XFAIL = "XFAIL"
    XPASS = "XPASS"
    SKIP = "SKIP"
    ERROR = "ERROR"
    # Only for a case run several times (--repeat) whose verdicts differ between runs. It is
    # unexpected: a COW or pinning test that fails now and then is usually a kernel race, not
    # noise, so a nightly run must not go green on it.
    FLAKY = "FLAKY"

    @property
    def unexpected(self) -> bool:
        return self in (Verdict.FAIL, Verdict.XPASS, Verdict.ERROR, Verdict.FLAKY)


@dataclass(frozen=True)
class TestNode:
    """One KTAP result line (or the document root), with its diagnostics and subtests."""

    name: str
    number: int | None = None
    outcome: Outcome = Outcome.OK
    reason: str = ""  # text after the SKIP/XFAIL/TODO directive, or why it is ERROR
    diagnostics: tuple[str, ...] = ()  # "# ..." lines and stray output before the result line
    children: tuple[TestNode, ...] = ()
    plan: int | None = None  # "1..N" of this node's subtests, if seen

    def leaves(self) -> tuple[TestNode, ...]:
        """All result nodes without children, depth first."""
        if not self.children:
            return (self,)
        out: list[TestNode] = []
        for c in self.children:
            out.extend(c.leaves())
        return tuple(out)


@dataclass(frozen=True)
class KernelVersion:
    """Upstream version numbers, used for expectation ranges (6.1.192, 6.12.117...)."""

    major: int
    minor: int
    patch: int = 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel, resolved from a spec."""

    spec: str  # what the user asked for
    bzimage: Path
    release: str  # uname -r as the kernel reports it (modules dir name)
    version: KernelVersion  # upstream version for expectations
    modules_dir: Path | None  # .../lib/modules/<release>, or None if the kernel has no modules
    config: dict[str, str] = field(default_factory=dict)  # CONFIG_X -> "y"/"m"/"..." (unset absent)
    config_path: Path | None = None
    origin: str = ""  # "debian:linux-image-6.12.117+deb12-amd64 6.12.117-1~deb12u1", "bzimage", "tree"


class Expect(StrEnum):
    """What an expectation rule says a case does on a kernel."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


class Accel(StrEnum):
    """--accel: KVM where it works (auto), or one of them only."""

    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class TransportKind(StrEnum):
    """--transport: commands over the serial console, or over SSH (dropbear in the guest)."""

    CONSOLE = "console"
    SSH = "ssh"


@dataclass(frozen=True)
class Expectation:
    """What a case is expected to do on a kernel, and why."""

    expect: Expect
    reason: str = ""
    commit: str = ""
    source: str = ""  # file:line of the rule that matched ("" = default)


@dataclass(frozen=True)
class KernelEvent:
    """One kernel report ("splat") found in a kernel log or console by kmsg.scan."""

    kind: str  # one of kmsg.KINDS: warning, bug, oops, gpf, kasan, ... panic
    title: str  # the report's header line, printk prefix removed
    start: int  # index of the header line in text.split("\n")
    end: int  # index of the report's last line (inclusive), same numbering
    excerpt: str  # the report's kernel lines from the header to `end`, prefixes removed
    message: str = ""  # text between "[ cut here ]" and the header: the WARN()/BUG() message


@dataclass(frozen=True)
class CaseResult:
    """One case as it came back from the guest and was judged."""

    id: str  # stable id, e.g. cow.fork.child-keeps-data.base
    program: str  # test program that ran it (JUnit suite)
    outcome: Outcome
    verdict: Verdict
    reason: str  # SKIP/XFAIL reason from the test, or the error
    output: str  # the test's own output for this case (diagnostics)
    expectation: Expectation
    duration_s: float = 0.0
    kernel_events: tuple[str, ...] = ()  # titles of kernel reports made while this case ran
    # The guest never ran it (the run stopped first: Ctrl-C, a lost guest, a harness error);
    # ERROR, with the reason that says why.
    not_run: bool = False
