"""A kernel history for the slow tests: a bare repository made from a linux-source tree with
git plumbing only (nothing is checked out anywhere; the cached tree is only read)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class Repo:
    """A bare repository written with plumbing only: nothing is checked out anywhere."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {
            **os.environ,
            "GIT_DIR": str(path),
            "GIT_AUTHOR_NAME": "Harness Nightly",
            "GIT_AUTHOR_EMAIL": "nightly@example.org",
            "GIT_COMMITTER_NAME": "Harness Nightly",
            "GIT_COMMITTER_EMAIL": "nightly@example.org",
            "LC_ALL": "C",
        }

    def git(self, *args: str, stdin: str | None = None, **env: str) -> str:
        return self.raw(*args, stdin=stdin, **env).strip()

    def raw(self, *args: str, stdin: str | None = None, **env: str) -> str:
        return subprocess.run(
            ["git", *args], check=True, capture_output=True, text=True, input=stdin, env={**self.env, **env}
        ).stdout

    def import_tree(self, tree: Path) -> str:
        self.git("init", "-q", "--bare", str(self.path))
        self.git("add", "-A", "-f", ".", GIT_WORK_TREE=str(tree))
        return self.commit("Linux 6.12 (Debian linux-source-6.12)")

    def commit(self, msg: str, files: dict[str, str] | None = None) -> str:
        for name, text in (files or {}).items():
            blob = self.git("hash-object", "-w", "--stdin", "--path", name, stdin=text)
            self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
        tree = self.git("write-tree")
        parent = self.git("rev-parse", "-q", "--verify", "HEAD^{commit}") if files is not None else ""
        commit = self.git("commit-tree", tree, *(["-p", parent] if parent else []), "-m", msg)
        self.git("update-ref", "HEAD", commit)
        return commit

    def show(self, rev: str, name: str) -> str:
        return self.raw("cat-file", "blob", f"{rev}:{name}")


def objects_per_build(build_log: str) -> list[int]:
    """Objects compiled by each `make bzImage` section of a kbuild build log (harness/kernels/kbuild.py)."""
    sections = build_log.split("\n### make bzImage")[1:]
    return [
        sum(1 for ln in sec.split("\n### ")[0].splitlines() if ln.startswith("  CC ")) for sec in sections
    ]
