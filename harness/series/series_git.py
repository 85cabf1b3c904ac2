"""The patches of a series and how they get into our worktree.

Two inputs: patch emails (an mbox, as b4 writes it, or a directory of `git format-patch` files)
applied with `git am` on top of --base, or commits BASE..TIP already in the tree. Emails are
split with `git mailsplit` and read with `git mailinfo`, the same code git am uses, so a subject
is what the commit will say; a message without a diff is the cover letter and is left out.

Applied commits get a fixed committer (and the author date as committer date), so the same
patches on the same base give the same hashes in every run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.kernels.gitrepo import Worktree, commit_info, git, is_ancestor, resolve_commit
from harness.series.core import Checkpatch, parse_checkpatch

PATCH_SUFFIXES = (".patch", ".diff", ".mbx", ".mbox", ".eml")
COMMITTER = {"GIT_COMMITTER_NAME": "harness series", "GIT_COMMITTER_EMAIL": "series@harness.invalid"}
_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)
_HEADER = re.compile(r"^(Author|Email|Subject|Date): ?(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Patch:
    """One patch of the series: an email to `git am`, or a commit already in the tree."""

    subject: str
    files: tuple[str, ...]
    path: Path | None = None  # the single-message file git am takes
    commit: str = ""  # range input: the commit itself
    origin: str = ""  # where it came from (file name, message number)


@dataclass(frozen=True)
class Series:
    base: str  # full hash
    patches: tuple[Patch, ...]
    title: str = ""  # the cover letter's subject, if there was one
    kind: str = "mbox"  # mbox | range


def touched_files(diff: str) -> tuple[str, ...]:
    """Files a patch changes, from its `diff --git` lines, in order (pure)."""
    out: dict[str, None] = {}
    for a, b in _DIFF_FILE.findall(diff):
        out[a] = None
        out[b] = None
    return tuple(p for p in out if p != "/dev/null")


def mailinfo_headers(text: str) -> dict[str, str]:
    """git mailinfo's header block (Author/Email/Subject/Date) as a dict (pure)."""
    return {k.lower(): v.strip() for k, v in _HEADER.findall(text)}


def _message_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix in PATCH_SUFFIXES)
        if not files:
            raise InputError(f"{source}: no patch files in it (*{', *'.join(PATCH_SUFFIXES)})")
        return files
    if source.is_file():
        return [source]
    raise InputError(f"{source}: no such file or directory")


def split_messages(source: Path, dest: Path) -> list[tuple[Path, str]]:
    """Every message of an mbox or a directory of patch files, one file each in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, str]] = []
    for f in _message_files(source):
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            r = git(dest, "mailsplit", "-b", f"-o{tmp}", str(f.resolve()), check=False)
            parts = sorted(Path(tmp).iterdir())
            if r.returncode != 0 or not parts:
                why = (r.stderr.strip() or "no messages").splitlines()[0]
                raise InputError(f"{f}: not an mbox or patch email (git mailsplit: {why[:200]})")
            for i, part in enumerate(parts):
                target = dest / f"{len(out) + 1:04d}.msg"
                shutil.move(str(part), target)
                out.append((target, f.name if len(parts) == 1 else f"{f.name} #{i + 1}"))
    return out


def read_message(path: Path, origin: str) -> Patch | str:
    """A Patch, or the subject of a message without a diff (a cover letter)."""
    with tempfile.TemporaryDirectory() as tmp:
        msg, diff = Path(tmp) / "msg", Path(tmp) / "patch"
        r = git(Path(tmp), "mailinfo", str(msg), str(diff), check=False, stdin_file=path)
        if r.returncode != 0:
            why = (r.stderr.strip() or "no output").splitlines()[0]
            raise InputError(f"{origin}: git mailinfo could not read it: {why[:200]}")
        head = mailinfo_headers(r.stdout)
        text = diff.read_text(errors="replace") if diff.exists() else ""
    if not text.strip():
        return head.get("subject", "")
    if not head.get("author") and not head.get("email"):
        raise InputError(
            f"{origin}: a diff without a From: header; git am needs patch emails "
            "(git format-patch or b4 output)"
        )
    return Patch(head.get("subject", "") or origin, touched_files(text), path, origin=origin)


def from_emails(repo: Path, source: Path, base: str | None, work: Path) -> Series:
    """The patches in an mbox or a directory, to go on top of `base`."""
    if base is None:
        raise InputError(f"{source}: patch files need --base REV (the commit they apply to)")
    base_hash = resolve_commit(repo, base, "--base")
    patches: list[Patch] = []
    title = ""
    for path, origin in split_messages(source, work):
        got = read_message(path, origin)
        if isinstance(got, str):
            title = title or got
        else:
            patches.append(got)
    if not patches:
        raise InputError(f"{source}: no patches in it (only messages without a diff)")
    return Series(base_hash, tuple(patches), title, "mbox")


def from_range(repo: Path, spec: str) -> Series:
    """BASE..TIP: the commits after BASE up to TIP, oldest first; merges are refused."""
    a, _, b = spec.partition("..")
    if not a or not b or b.startswith("."):
        raise InputError(f"{spec}: write a range as BASE..TIP")
    base, tip = resolve_commit(repo, a, "range base"), resolve_commit(repo, b, "range tip")
    if base == tip or not is_ancestor(repo, base, tip):
        raise InputError(f"{spec}: {a} is not an ancestor of {b} (nothing to test)")
    merges = git(repo, "rev-list", "--merges", f"{base}..{tip}").stdout.split()
    if merges:
        raise InputError(f"{spec}: has merge commits ({merges[0][:12]}): a series is a straight line")
    revs = git(repo, "rev-list", "--reverse", f"{base}..{tip}").stdout.split()
    patches = []
    for rev in revs:
        info = commit_info(repo, rev)
        patches.append(Patch(info["subject"], tuple(info["files"]), commit=rev, origin=rev[:12]))
    return Series(base, tuple(patches), spec, "range")


@dataclass(frozen=True)
class Applied:
    ok: bool
    commit: str = ""
    message: str = ""  # git am's output when it failed


class SeriesTree(Worktree):
    """Our worktree, reset to the base and then moved forward one patch at a time."""

    def reset_to(self, rev: str) -> None:
        self.ensure(rev)
        git(self.path, "am", "--abort", check=False)  # a run stopped in the middle of an am
        git(self.path, "reset", "--quiet", "--hard")
        git(self.path, "clean", "-fdq")
        git(self.path, "checkout", "--quiet", "--detach", "--force", rev)

    def touch(self, files: Sequence[str]) -> None:
        """Make make recompile these files (and what includes them) in the next build."""
        for rel in files:
            p = self.path / rel
            if p.is_file():
                p.touch()

    def apply(self, patch: Patch, three_way: bool = False) -> Applied:
        if patch.commit:
            self.checkout(patch.commit)
            return Applied(True, patch.commit)
        assert patch.path is not None
        args = [
            "am",
            "--quiet",
            "--committer-date-is-author-date",
            *(["--3way"] if three_way else []),
            str(patch.path),
        ]
        r = git(self.path, *args, check=False, env=COMMITTER)
        if r.returncode != 0:
            message = (r.stdout + r.stderr).strip()
            git(self.path, "am", "--abort", check=False)
            return Applied(False, message=message)
        return Applied(True, self.head())

    def checkpatch(self, commit: str, timeout_s: float = 300.0) -> Checkpatch:
        """The tree's own scripts/checkpatch.pl on one applied commit, as `b4 prep --check` and
        a maintainer would run it: on the patch email, from the top of the tree."""
        script = self.path / "scripts" / "checkpatch.pl"
        if not script.is_file():
            return Checkpatch(note="no scripts/checkpatch.pl in the tree")
        perl = shutil.which("perl")
        if perl is None:
            return Checkpatch(note="perl not found (apt-get install perl)")
        patch = git(self.path, "format-patch", "-1", "--stdout", commit).stdout
        try:
            r = subprocess.run(
                [perl, str(script), "--no-color", "-"],
                input=patch,
                cwd=self.path,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            return Checkpatch(note=f"checkpatch.pl did not finish in {timeout_s:.0f}s")
        return parse_checkpatch(r.stdout + "\n" + r.stderr)
