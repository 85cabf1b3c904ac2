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

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bisect import Policy, Side
from .errors import HarnessError, InputError

_FIRST = re.compile(r"^([0-9a-f]{40}) is the first (\S+) commit", re.MULTILINE)
_ONLY_SKIPPED = "There are only 'skip'ped commits left to test."
_HASH_LINE = re.compile(r"^([0-9a-f]{40})$", re.MULTILINE)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # no GIT_DIR from outside
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    return env


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not shutil.which("git"):
        raise InputError("git not found: install git (apt-get install git)")
    r = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=_env(),
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip() or "(no output)").splitlines()[-1]
        raise HarnessError(f"git {' '.join(args[:3])} in {cwd}: {last}")
    return r


def resolve_commit(repo: Path, rev: str, what: str) -> str:
    r = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if r.returncode != 0:
        raise InputError(f"{what} {rev}: not a commit in {repo}")
    return r.stdout.strip()


def check_repo(repo: Path) -> Path:
    """The top of the git work tree at `repo`, or the repository itself when it is bare (a
    mirror is enough: we check out into our own worktree). InputError if it is neither."""
    if not repo.is_dir():
        raise InputError(f"--src {repo}: no such directory")
    r = git(repo, "rev-parse", "--is-bare-repository", "--show-toplevel", check=False)
    lines = r.stdout.split("\n")
    if r.returncode == 0 and len(lines) > 1 and lines[1].strip():
        return Path(lines[1].strip())
    bare = git(repo, "rev-parse", "--absolute-git-dir", check=False)
    if lines[0].strip() == "true" and bare.returncode == 0:
        return Path(bare.stdout.strip())
    raise InputError(f"--src {repo}: not a git repository (git bisect needs history)")


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def commit_info(repo: Path, rev: str) -> dict[str, Any]:
    """Subject, author, date and the files a commit touched (against its first parent)."""
    show = git(repo, "show", "-s", "--format=%H%n%s%n%an <%ae>%n%aI", rev).stdout.splitlines()
    files = git(repo, "diff", "--name-only", f"{rev}^", rev, check=False).stdout.split()
    return {"commit": show[0], "subject": show[1] if len(show) > 1 else "",
            "author": show[2] if len(show) > 2 else "", "date": show[3] if len(show) > 3 else "",
            "files": files}


def short_label(repo: Path, rev: str) -> str:
    r = git(repo, "show", "-s", "--format=%h %s", rev, check=False)
    return r.stdout.strip() or rev[:12]


@dataclass(frozen=True)
class Terms:
    old: str = "good"
    new: str = "bad"

    @staticmethod
    def for_reverse(reverse: bool) -> "Terms":
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


class Worktree:
    """Our detached worktree of the user's repository, and git bisect inside it."""

    def __init__(self, repo: Path, path: Path) -> None:
        self.repo, self.path = repo, path

    def exists(self) -> bool:
        if not (self.path / ".git").exists():
            return False
        mine = git(self.path, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
        theirs = git(self.repo, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
        return mine.returncode == 0 and mine.stdout.strip() == theirs.stdout.strip()

    def ensure(self, rev: str) -> None:
        if self.exists():
            # An interrupted checkout can leave the index locked; the worktree is ours alone.
            gitdir = Path(git(self.path, "rev-parse", "--absolute-git-dir").stdout.strip())
            (gitdir / "index.lock").unlink(missing_ok=True)
            return
        if self.path.exists():
            raise InputError(f"{self.path} exists but is not a worktree of {self.repo}: "
                             "remove it or rerun with --restart")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        git(self.repo, "worktree", "prune")
        git(self.repo, "worktree", "add", "--detach", str(self.path), rev)

    def remove(self) -> None:
        if self.path.exists():
            git(self.repo, "worktree", "remove", "--force", str(self.path), check=False)
            shutil.rmtree(self.path, ignore_errors=True)
        git(self.repo, "worktree", "prune", check=False)

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").stdout.strip()

    def checkout(self, rev: str) -> None:
        if self.head() != rev:
            git(self.path, "checkout", "--quiet", "--detach", rev)

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


class GitSpace:
    """git bisect in our own worktree (harness/bisect_git.py) picks the commits."""

    kind = "git"

    def __init__(self, src: Path, good: str, bad: str, policy: Policy) -> None:
        self.repo = check_repo(src)
        self.good = resolve_commit(self.repo, good, "--good")
        self.bad = resolve_commit(self.repo, bad, "--bad")
        if self.good == self.bad:
            raise InputError("--good and --bad are the same commit")
        self.old, self.new = (self.bad, self.good) if policy.reverse else (self.good, self.bad)
        if not is_ancestor(self.repo, self.old, self.new):
            which = "--bad must be an ancestor of --good (with --reverse)" if policy.reverse \
                else "--good must be an ancestor of --bad (use --reverse to find a fix)"
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
            raise InputError(f"the bisect dir {bisect_dir} would be inside {self.repo}: pass --out "
                             "somewhere outside the tree (the user's checkout is never touched)")
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
