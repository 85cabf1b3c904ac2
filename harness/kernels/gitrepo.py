"""git, for bisect and series: commands with a clean environment, and a worktree of our own.

The user's checkout is never touched: we `git worktree add` a detached worktree of their
repository in a directory of ours and do everything there (checkouts, bisect, git am).

git's messages are parsed with LC_ALL=C: they are translated otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, InputError


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # no GIT_DIR from outside
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    env.update(extra or {})
    return env


def git(
    cwd: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    stdin_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    if not shutil.which("git"):
        raise InputError("git not found: install git (apt-get install git)")
    with open(stdin_file, "rb") if stdin_file else open(os.devnull, "rb") as stdin:
        r = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            env=_env(env),
            stdin=stdin,
            errors="replace",
        )
    if check and r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip() or "(no output)").splitlines()[-1]
        raise HarnessError(f"git {' '.join(args[:3])} in {cwd}: {last}")
    return r


def resolve_commit(repo: Path, rev: str, what: str) -> str:
    r = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if r.returncode != 0:
        raise InputError(f"{what} {rev}: not a commit in {repo}")
    return r.stdout.strip()


def check_repo(repo: Path, why: str = "git bisect needs history") -> Path:
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
    raise InputError(f"--src {repo}: not a git repository ({why})")


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def commit_info(repo: Path, rev: str) -> dict[str, Any]:
    """Subject, author, date and the files a commit touched (against its first parent)."""
    show = git(repo, "show", "-s", "--format=%H%n%s%n%an <%ae>%n%aI", rev).stdout.splitlines()
    files = git(repo, "diff", "--name-only", f"{rev}^", rev, check=False).stdout.split()
    return {
        "commit": show[0],
        "subject": show[1] if len(show) > 1 else "",
        "author": show[2] if len(show) > 2 else "",
        "date": show[3] if len(show) > 3 else "",
        "files": files,
    }


def short_label(repo: Path, rev: str) -> str:
    r = git(repo, "show", "-s", "--format=%h %s", rev, check=False)
    return r.stdout.strip() or rev[:12]


class Worktree:
    """Our detached worktree of the user's repository."""

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
            raise InputError(
                f"{self.path} exists but is not a worktree of {self.repo}: remove it or rerun with --restart"
            )
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
