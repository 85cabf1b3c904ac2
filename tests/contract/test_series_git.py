"""Patch inputs and git am in our worktree, on a small real repository (harness/series/series_git.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.series.series_git import SeriesTree, from_emails, from_range, mailinfo_headers, touched_files
from tests.helpers.small_repo import BASE_FILES, SmallRepo, behaviour


@pytest.fixture
def repo(tmp_path: Path) -> SmallRepo:
    r = SmallRepo(tmp_path / "linux")
    r.commit("base: a small tree", BASE_FILES)
    return r


def _three(repo: SmallRepo) -> tuple[str, list[str]]:
    base = repo.git("rev-parse", "HEAD")
    c = [
        repo.commit("mm: first", {"README": "a small tree\nmore\n"}),
        repo.commit("mm/gup: second", {"behaviour": behaviour(cow_b="not_ok"), "mm/new.c": "x\n"}),
        repo.commit("mm: third", {"mm/new.c": None}),
    ]
    return base, c


def test_touched_files_from_diff_lines() -> None:
    diff = (
        "diff --git a/mm/gup.c b/mm/gup.c\n--- a/mm/gup.c\n+++ b/mm/gup.c\n"
        "diff --git a/old.c b/new.c\nsimilarity index 90%\n"
    )
    assert touched_files(diff) == ("mm/gup.c", "old.c", "new.c")
    assert mailinfo_headers("Author: A B\nEmail: a@b\nSubject: mm: x\nDate: now\n\n") == {
        "author": "A B",
        "email": "a@b",
        "subject": "mm: x",
        "date": "now",
    }


def test_directory_of_patches_with_cover_letter(repo: SmallRepo, tmp_path: Path) -> None:
    base, _ = _three(repo)
    files = repo.format_patch(f"{base}..HEAD", tmp_path / "out", cover="mm: a series")
    assert files[0].name == "0000-cover-letter.patch"
    s = from_emails(repo.path, tmp_path / "out", base, tmp_path / "work")
    assert s.base == base and s.title == "mm: a series" and s.kind == "mbox"
    assert [p.subject for p in s.patches] == ["mm: first", "mm/gup: second", "mm: third"]
    assert [p.files for p in s.patches] == [("README",), ("behaviour", "mm/new.c"), ("mm/new.c",)]
    assert all(p.path is not None and p.path.is_file() for p in s.patches)


def test_one_mbox_as_b4_writes_it(repo: SmallRepo, tmp_path: Path) -> None:
    base, _ = _three(repo)
    files = repo.format_patch(f"{base}..HEAD", tmp_path / "out")
    mbox = tmp_path / "series.mbx"
    mbox.write_text("".join(f.read_text() for f in files))
    s = from_emails(repo.path, mbox, "HEAD~3", tmp_path / "work")
    assert [p.subject for p in s.patches] == ["mm: first", "mm/gup: second", "mm: third"]
    assert [p.origin for p in s.patches] == ["series.mbx #1", "series.mbx #2", "series.mbx #3"]


@pytest.mark.parametrize("case", ["empty-dir", "cover-only", "plain-diff", "no-base", "bad-base", "missing"])
def test_bad_inputs_are_one_line_errors(repo: SmallRepo, tmp_path: Path, case: str) -> None:
    base, _ = _three(repo)
    src, rev = tmp_path / "in", base
    src.mkdir()
    if case == "cover-only":
        repo.format_patch(f"{base}..HEAD", tmp_path / "all", cover="mm: only a cover")
        (src / "0000-cover-letter.patch").write_text(
            (tmp_path / "all" / "0000-cover-letter.patch").read_text()
        )
    elif case == "plain-diff":
        (src / "x.patch").write_text(repo.git("diff", f"{base}..HEAD") + "\n")
    elif case == "no-base":
        repo.format_patch(f"{base}..HEAD", src)
        rev = None  # type: ignore[assignment]
    elif case == "bad-base":
        repo.format_patch(f"{base}..HEAD", src)
        rev = "no-such-rev"
    elif case == "missing":
        src = tmp_path / "nowhere"
    with pytest.raises(InputError) as e:
        from_emails(repo.path, src, rev, tmp_path / "work")
    msg = str(e.value)
    assert "\n" not in msg
    expected = {
        "empty-dir": "no patch files",
        "cover-only": "no patches in it",
        "plain-diff": "git am needs patch emails",
        "no-base": "need --base",
        "bad-base": "not a commit",
        "missing": "no such file",
    }[case]
    assert expected in msg


def test_range_and_its_refusals(repo: SmallRepo) -> None:
    base, c = _three(repo)
    s = from_range(repo.path, f"{base[:8]}..HEAD")
    assert s.kind == "range" and s.base == base and [p.commit for p in s.patches] == c
    assert s.patches[2].files == ("mm/new.c",)
    for bad, why in [
        ("HEAD..HEAD~1", "not an ancestor"),
        ("HEAD", "BASE..TIP"),
        ("x..HEAD", "not a commit"),
        ("HEAD..", "BASE..TIP"),
    ]:
        with pytest.raises(InputError, match=why):
            from_range(repo.path, bad)
    repo.git("checkout", "-q", "-b", "side", base)
    repo.commit("side: change", {"other": "y\n"})
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-edit", "side")
    with pytest.raises(InputError, match="merge commits"):
        from_range(repo.path, f"{base}..HEAD")


def test_apply_in_our_worktree_leaves_the_checkout_alone(repo: SmallRepo, tmp_path: Path) -> None:
    base, _ = _three(repo)
    s = from_emails(
        repo.path,
        Path(repo.format_patch(f"{base}..HEAD", tmp_path / "out")[0]).parent,
        base,
        tmp_path / "work",
    )
    (repo.path / "README").write_text("the user's uncommitted edit\n")
    before = (repo.git("rev-parse", "HEAD"), repo.git("status", "--porcelain"), repo.git("for-each-ref"))

    tree = SeriesTree(repo.path, tmp_path / "cache" / "worktree")
    commits = []
    for _ in range(2):  # twice: the same patches on the same base give the same commits
        tree.reset_to(base)
        assert tree.head() == base
        got = [tree.apply(p) for p in s.patches]
        assert all(g.ok for g in got)
        commits.append([g.commit for g in got])
        assert (
            not (tree.path / "mm" / "new.c").exists()
            and (tree.path / "README").read_text() == "a small tree\nmore\n"
        )
    assert commits[0] == commits[1]
    log = repo.git("-C", str(tree.path), "log", "--format=%s|%an|%cn", f"{base}..HEAD").splitlines()
    assert log == [
        f"{subj}|Ann Developer|harness series" for subj in ("mm: third", "mm/gup: second", "mm: first")
    ]
    assert (
        repo.git("rev-parse", "HEAD"),
        repo.git("status", "--porcelain"),
        repo.git("for-each-ref"),
    ) == before
    assert (repo.path / "README").read_text() == "the user's uncommitted edit\n"


def test_a_patch_that_does_not_apply_gives_gits_words(repo: SmallRepo, tmp_path: Path) -> None:
    base, _ = _three(repo)
    s = from_emails(
        repo.path, repo.format_patch(f"{base}..HEAD", tmp_path / "out")[0].parent, base, tmp_path / "w"
    )
    tree = SeriesTree(repo.path, tmp_path / "cache" / "worktree")
    tree.reset_to(base)
    assert tree.apply(s.patches[0]).ok
    got = tree.apply(s.patches[2])  # removes mm/new.c, which patch 2 would have added
    assert not got.ok and got.commit == ""
    assert (
        "mm/new.c" in got.message
        and "error:" in got.message
        and "Patch failed at 0001 mm: third" in got.message
    )
    # The am was aborted: the worktree is at patch 1, clean, and usable again.
    assert repo.git("-C", str(tree.path), "status", "--porcelain") == ""
    assert not (
        Path(repo.git("-C", str(tree.path), "rev-parse", "--absolute-git-dir")) / "rebase-apply"
    ).exists()
    assert tree.apply(s.patches[1]).ok and tree.apply(s.patches[2]).ok
