"""A small real git repository with a checkout (the user's), for the bisect and series tests.

`git` and `commit` work on any repository path; SmallRepo wraps them for one repository. In the
series tests the files stand in for a kernel tree where the fakes in test_series_loop.py read
them: `build.c` (a line "#error" makes the build fail, "warn: TEXT" lines are compiler warnings
in that file), and `behaviour` (lines "test.id=ok|not_ok|skip" are what the tests report).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

# No user or system git configuration reaches these repositories (HOME has none).
ENV = {
    "GIT_AUTHOR_NAME": "Ann Developer",
    "GIT_AUTHOR_EMAIL": "ann@example.org",
    "GIT_COMMITTER_NAME": "Ann Developer",
    "GIT_COMMITTER_EMAIL": "ann@example.org",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
    "LC_ALL": "C",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def commit(repo: Path, subject: str, files: Mapping[str, str | None]) -> str:
    """Write (or, for None, remove) the files and commit them; returns the new commit."""
    for name, text in files.items():
        if text is None:
            git(repo, "rm", "-q", name)
            continue
        p = repo / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", subject)
    return git(repo, "rev-parse", "HEAD")


class SmallRepo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def commit(self, subject: str, files: Mapping[str, str | None]) -> str:
        return commit(self.path, subject, files)

    def format_patch(self, rng: str, out: Path, cover: str = "") -> list[Path]:
        args = ["format-patch", "-q", "-o", str(out), rng]
        if cover:
            args.insert(1, "--cover-letter")
        self.git(*args)
        if cover:
            c = out / "0000-cover-letter.patch"
            c.write_text(c.read_text().replace("*** SUBJECT HERE ***", cover))
        return sorted(out.glob("*.patch"))


BASE_FILES: dict[str, str | None] = {
    "build.c": "int main(void) { return 0; }\nwarn: old warning [-Wold]\n",
    "behaviour": "cow.a=ok\ncow.b=ok\ncow.c=not_ok\ncow.d=skip\n",
    "README": "a small tree\n",
}


def behaviour(**cases: str) -> str:
    base = {"cow.a": "ok", "cow.b": "ok", "cow.c": "not_ok", "cow.d": "skip"}
    base.update({k.replace("_", "."): v for k, v in cases.items()})
    return "".join(f"{k}={v}\n" for k, v in base.items())
