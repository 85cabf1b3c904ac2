"""A small real git repository with a checkout (the user's), for `harness series` tests.

The files stand in for a kernel tree where the fakes in test_series_loop.py read them: `build.c`
(a line "#error" makes the build fail, "warn: TEXT" lines are compiler warnings in that file),
and `behaviour` (lines "test.id=ok|not_ok|skip" are what the tests report).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

IDENT = {"GIT_AUTHOR_NAME": "Ann Developer", "GIT_AUTHOR_EMAIL": "ann@example.org",
         "GIT_COMMITTER_NAME": "Ann Developer", "GIT_COMMITTER_EMAIL": "ann@example.org",
         "GIT_AUTHOR_DATE": "2026-11-01T10:00:00+00:00", "GIT_COMMITTER_DATE": "2026-11-01T10:00:00+00:00"}


class SmallRepo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update(IDENT, LC_ALL="C")
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True, env=self.env).stdout.strip()

    def commit(self, subject: str, files: dict[str, str | None]) -> str:
        for name, text in files.items():
            p = self.path / name
            if text is None:
                self.git("rm", "-q", name)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            self.git("add", name)
        self.git("commit", "-q", "-m", subject)
        return self.git("rev-parse", "HEAD")

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
