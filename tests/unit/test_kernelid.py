"""harness.kernelid: a kernel's package, upstream version and line, their order, and how two
result sets' kernels are paired (pure, synthetic identities)."""

from __future__ import annotations

import random

import pytest

from harness.kernels.kernelid import KernelId, identify, in_version_order, pair
from tests.helpers.results_data import LINES


def fp(release: str, version: str) -> dict[str, object]:
    return {"kernel": {"release": release, "version": version}}


@pytest.mark.parametrize(
    "label, fingerprint, line, upstream, described",
    [
        ("debian:6.1.0-56", fp("6.1.0-56-amd64", "6.1.192"), "6.1", "6.1.192", "6.1.0-56 (6.1.192)"),
        ("debian:7.3", fp("7.3.4+deb13-amd64", "7.3.4"), "7.3", "7.3.4", "7.3.4+deb13"),
        (
            "debian:6.12",
            fp("6.12.117+deb12-cloud-amd64", "6.12.117"),
            "6.12-cloud",
            "6.12.117",
            "6.12.117+deb12-cloud",
        ),
        ("debian:6.1-rt", fp("6.1.0-57-rt-amd64", "6.1.193"), "6.1-rt", "6.1.193", "6.1.0-57-rt (6.1.193)"),
        # no fingerprint (an old results file): what the label says, nothing more
        ("debian:6.1.0-57", None, "6.1", "", "6.1.0-57"),
        ("debian:6.12.118+deb12-cloud", None, "6.12-cloud", "6.12.118", "6.12.118+deb12-cloud"),
        ("debian:7.2", {}, "7.2", "", "7.2"),
        # a kernel that is no Debian package: its line from the banner's version, if it was recorded
        ("/src/linux", fp("6.19.0-rc3-harness+", "6.19.0"), "6.19", "6.19.0", "6.19.0-rc3-harness+"),
        ("/boot/vmlinuz-x", None, "", "", "/boot/vmlinuz-x"),
        ("", {"kernel": "garbage"}, "", "", "(unnamed)"),
    ],
)
def test_identify(
    label: str, fingerprint: dict[str, object] | None, line: str, upstream: str, described: str
) -> None:
    k = identify(label, fingerprint)
    assert (k.line, k.upstream_text, k.describe()) == (line, upstream, described)


def test_kernels_sort_by_upstream_version_numerically() -> None:
    ids = [identify(label, fp(rel, ver)) for label, rel, ver in LINES]
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert (
        in_version_order(shuffled) == ids
    )  # 6.1 < 6.12 < 6.16 < ... < 7.3, not "6.1" < "6.12" < "7.0" by luck
    assert [
        k.line
        for k in in_version_order(
            [identify("debian:6.19"), identify("debian:6.2"), identify("x"), identify("debian:6.100")]
        )
    ] == ["6.2", "6.19", "6.100", ""]
    # within a line: by upstream version, then by Debian ABI number (6.1.0-100 after 6.1.0-99)
    assert [
        k.label for k in in_version_order([identify("debian:6.1.0-100"), identify("debian:6.1.0-99")])
    ] == ["debian:6.1.0-99", "debian:6.1.0-100"]


def _ids(*specs: tuple[str, str, str]) -> list[KernelId]:
    return [identify(label, fp(rel, ver)) for label, rel, ver in specs]


def test_a_new_package_of_a_line_is_paired_with_the_old_one() -> None:
    old = _ids(
        ("debian:6.1.0-56", "6.1.0-56-amd64", "6.1.192"),
        ("debian:6.12.117+deb12", "6.12.117+deb12-amd64", "6.12.117"),
        ("debian:7.2.11+deb13", "7.2.11+deb13-amd64", "7.2.11"),
    )
    new = _ids(
        ("debian:7.2.12+deb13", "7.2.12+deb13-amd64", "7.2.12"),
        ("debian:6.1.0-57", "6.1.0-57-amd64", "6.1.193"),
        ("debian:6.12.118+deb12", "6.12.118+deb12-amd64", "6.12.118"),
    )
    texts = sorted(p.text() for p in pair(old, new))
    assert texts == [
        "6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)",
        "6.12 line: 6.12.117+deb12 -> 6.12.118+deb12",
        "7.2 line: 7.2.11+deb13 -> 7.2.12+deb13",
    ]
    assert all(p.how == "line" and p.moved for p in pair(old, new))


def test_the_same_label_pairs_first_and_says_when_its_package_moved() -> None:
    old = _ids(
        ("debian:6.1", "6.1.0-56-amd64", "6.1.192"), ("debian:6.12", "6.12.117+deb12-amd64", "6.12.117")
    )
    new = _ids(
        ("debian:6.12", "6.12.117+deb12-amd64", "6.12.117"), ("debian:6.1", "6.1.0-57-amd64", "6.1.193")
    )
    ps = {p.old.label: p for p in pair(old, new)}
    assert {p.how for p in ps.values()} == {"same"}
    assert not ps["debian:6.12"].moved and ps["debian:6.1"].moved
    assert ps["debian:6.1"].text() == "6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)"


def test_flavours_are_lines_of_their_own_and_leftovers_stay_unpaired() -> None:
    old = _ids(
        ("debian:6.12.117+deb12-cloud", "6.12.117+deb12-cloud-amd64", "6.12.117"),
        ("debian:6.1.0-55", "6.1.0-55-amd64", "6.1.191"),
        ("debian:6.1.0-56", "6.1.0-56-amd64", "6.1.192"),
    )
    new = _ids(
        ("debian:6.12.118+deb12", "6.12.118+deb12-amd64", "6.12.118"),
        ("debian:6.1.0-57", "6.1.0-57-amd64", "6.1.193"),
    )
    assert [(p.old.label, p.new.label) for p in pair(old, new)] == [("debian:6.1.0-56", "debian:6.1.0-57")]


def test_single_kernels_pair_whatever_they_are() -> None:
    (p,) = pair([identify("debian:6.1.0-56")], [identify("debian:6.12")])
    assert p.how == "single" and p.moved and not p.same_line
    assert p.text() == "debian:6.1.0-56 -> debian:6.12"
    (p,) = pair([identify("")], [identify("")])
    assert not p.moved


def test_a_single_run_against_a_matrix_pairs_by_line() -> None:
    """Last night one kernel, tonight a matrix: the 6.1 run lines up with tonight's 6.1."""
    old = _ids(("debian:6.1.0-56", "6.1.0-56-amd64", "6.1.192"))
    new = _ids(
        ("debian:6.12", "6.12.118+deb12-amd64", "6.12.118"), ("debian:6.1.0-57", "6.1.0-57-amd64", "6.1.193")
    )
    (p,) = pair(old, new)
    assert (p.how, p.new.label) == ("line", "debian:6.1.0-57")
