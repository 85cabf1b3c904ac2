"""git bisect in a worktree of our own, for `harness bisect --src TREE --good REV --bad REV`.

The user's checkout is never touched: we `git worktree add` a detached worktree inside the bisect
dir and run git bisect there. A linked worktree has its own HEAD and its own bisect state
(refs/bisect/* and BISECT_* are per worktree), so a bisect the user has going in their checkout is
left alone, and theirs cannot disturb ours.

Our state file (bisect.json) is the truth, git's bisect state is derived from it: every
invocation resets the worktree's bisect and replays the decisions recorded so far
(`git bisect replay` of a log we write), so an interrupt between saving a step and telling git
about it costs nothing.

git's messages are parsed with LC_ALL=C: they are translated otherwise.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bisect.core import Policy, Side
from harness.errors import HarnessError, InputError
from harness.kernels import gitrepo
from harness.kernels.gitrepo import check_repo, commit_info, git, is_ancestor, resolve_commit, short_label

_FIRST = re.compile(r"^([0-9a-f]{40}) is the first (\S+) commit", re.MULTILINE)
_ONLY_SKIPPED = "There are only 'skip'ped commits left to test."
_HASH_LINE = re.compile(r"^([0-9a-f]{40})$", re.MULTILINE)


@dataclass(frozen=True)
class Terms:
    old: str = "good"
    new: str = "bad"

    @staticmethod
    def for_reverse(reverse: bool) -> Terms:
        # git reserves "bad"/"new" for the new term and "good"/"old" for the old one.
        return Terms("broken", "fixed") if reverse else Terms()

    def of(self, side: Side | None) -> str:
        return "skip" if side is None else (self.old if side is Side.OLD else self.new)

    def start_args(self) -> list[str]:
        return [] if self == Terms() else [f"--term-old={self.old}", f"--term-new={self.new}"]


@dataclass(frozen=True)
class GitState:
    """Where git bisect stands: a commit to test next, or done with the first new commit (one:
    exact; several: only skipped commits were left)."""

    next: str | None
    first: tuple[str, ...] = ()


def parse_bisect(output: str, head: str) -> GitState:
    """Read the output of a git bisect command (pure)."""
    m = _FIRST.search(output)
    if m:
        return GitState(None, (m.group(1),))
    if _ONLY_SKIPPED in output:
        tail = output.split("could be any of:", 1)[-1]
        return GitState(None, tuple(_HASH_LINE.findall(tail)))
    return GitState(head)


def replay_log(new: str, old: str, terms: Terms, marks: Sequence[tuple[str, Side | None]]) -> str:
    """A log `git bisect replay` accepts: the start with both ends, then each decision (pure)."""
    args = " ".join([*(f"'{a}'" for a in terms.start_args()), f"'{new}'", f"'{old}'"])
    lines = [f"git bisect start {args}"]
    lines += [f"git bisect {terms.of(side)} {rev}" for rev, side in marks]
    return "\n".join(lines) + "\n"


class Worktree(gitrepo.Worktree):
    """Our detached worktree of the user's repository, and git bisect inside it."""

    def reset_bisect(self) -> None:
        git(self.path, "bisect", "reset", check=False)

    def replay(self, log_path: Path, text: str) -> GitState:
        """Start over from our own record: reset, then replay `text` (written to log_path)."""
        self.reset_bisect()
        log_path.write_text(text)
        r = git(self.path, "bisect", "replay", str(log_path), check=False)
        return self._state(r)

    def mark(self, term: str, rev: str) -> GitState:
        return self._state(git(self.path, "bisect", term, rev, check=False))

    def _state(self, r: subprocess.CompletedProcess[str]) -> GitState:
        out = r.stdout + "\n" + r.stderr
        st = parse_bisect(out, "")
        if st.next is None:
            return st
        if r.returncode != 0:
            last = (r.stderr.strip() or r.stdout.strip() or "(no output)").splitlines()[-1]
            raise HarnessError(f"git bisect in {self.path}: {last}")
        return GitState(self.head())

    def log(self) -> str:
        return git(self.path, "bisect", "log", check=False).stdout

    def clean(self) -> None:
        """Drop what a revert check (or an interrupted one) left in the tree and index."""
        git(self.path, "revert", "--abort", check=False)
        git(self.path, "reset", "--quiet", "--hard", check=False)

    def revert_onto(self, commit: str, onto: str) -> str:
        """Check out `onto` and revert `commit` on it, uncommitted (no identity needed, and the
        bisect's own state is untouched). Returns "" when it applied, else why not."""
        self.clean()
        git(self.path, "checkout", "--quiet", "--detach", onto)
        parents = git(self.path, "rev-list", "--parents", "-n", "1", commit).stdout.split()[1:]
        mainline = ["-m", "1"] if len(parents) > 1 else []  # a merge: revert against its first parent
        r = git(self.path, "revert", "--no-commit", *mainline, commit, check=False)
        if r.returncode == 0:
            return ""
        out = r.stdout + "\n" + r.stderr
        conflicts = re.findall(r"^CONFLICT \([^)]*\): .*?(?:in |: )(\S+)", out, re.MULTILINE)
        self.clean()
        if conflicts:
            return "conflict in " + ", ".join(dict.fromkeys(conflicts))
        return (r.stderr.strip() or r.stdout.strip() or "git revert failed").splitlines()[-1]


class GitSpace:
    """git bisect in our own worktree (harness/bisect/bisect_git.py) picks the commits."""

    kind = "git"

    def __init__(self, src: Path, good: str, bad: str, policy: Policy) -> None:
        self.repo = check_repo(src)
        self.good = resolve_commit(self.repo, good, "--good")
        self.bad = resolve_commit(self.repo, bad, "--bad")
        if self.good == self.bad:
            raise InputError("--good and --bad are the same commit")
        self.old, self.new = (self.bad, self.good) if policy.reverse else (self.good, self.bad)
        if not is_ancestor(self.repo, self.old, self.new):
            which = (
                "--bad must be an ancestor of --good (with --reverse)"
                if policy.reverse
                else "--good must be an ancestor of --bad (use --reverse to find a fix)"
            )
            raise InputError(f"{which}: {self.old[:12]} is not an ancestor of {self.new[:12]}")
        self.terms = Terms.for_reverse(policy.reverse)
        self.state = GitState(None)
        self._labels: dict[str, str] = {}
        self._worktree: Worktree | None = None

    @property
    def worktree(self) -> Worktree:
        if self._worktree is None:
            raise HarnessError("GitSpace.use_dir() was not called")
        return self._worktree

    def use_dir(self, bisect_dir: Path) -> None:
        """The worktree lives in the bisect dir (known once the identity is)."""
        if bisect_dir.resolve() == self.repo or self.repo in bisect_dir.resolve().parents:
            raise InputError(
                f"the bisect dir {bisect_dir} would be inside {self.repo}: pass --out "
                "somewhere outside the tree (the user's checkout is never touched)"
            )
        self.bisect_dir = bisect_dir
        self._worktree = Worktree(self.repo, bisect_dir / "worktree")

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "repo": str(self.repo), "good": self.good, "bad": self.bad}

    def endpoints(self) -> tuple[str, str]:
        return self.old, self.new

    def label(self, cand: str) -> str:
        if cand not in self._labels:
            self._labels[cand] = short_label(self.repo, cand)
        return self._labels[cand]

    def open(self) -> None:
        self.worktree.ensure(self.old)
        self.worktree.clean()  # an interrupted revert check must not reach the next checkout

    def parents(self, cand: str) -> tuple[str, ...]:
        return tuple(git(self.repo, "rev-list", "--parents", "-n", "1", cand).stdout.split()[1:])

    def revert(self, cand: str) -> str:
        """Our worktree at the new end with `cand` reverted: "" when that applied, else why not."""
        return self.worktree.revert_onto(cand, self.new)

    def unrevert(self) -> None:
        self.worktree.clean()

    def checkout(self, cand: str) -> None:
        self.worktree.checkout(cand)

    def start(self, marks: Sequence[tuple[str, Side | None]]) -> None:
        inner = [(c, s) for c, s in marks if c not in (self.old, self.new)]
        text = replay_log(self.new, self.old, self.terms, inner)
        self.state = self.worktree.replay(self.bisect_dir / "replay.log", text)

    def next(self) -> str | None:
        return self.state.next

    def mark(self, cand: str, side: Side | None) -> None:
        self.state = self.worktree.mark(self.terms.of(side), cand)

    def possible(self) -> tuple[str, ...]:
        return self.state.first

    def details(self, cand: str) -> dict[str, Any]:
        return commit_info(self.repo, cand)

    def files(self) -> dict[str, str]:
        return {"git-bisect.log": self.worktree.log()} if self.worktree.exists() else {}

    def discard(self) -> None:
        self.worktree.remove()
