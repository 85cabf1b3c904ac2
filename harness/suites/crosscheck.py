"""Cross-check: do our cases and the upstream selftest cases that test the same thing agree?

Pure: results in, a table out. Compared is what each test *observed*, not the verdict: an
expectation rule can turn our FAIL into XFAIL while upstream, which has no rules, says XFAIL
by itself (hugetlb vmsplice) — both saw the same broken behaviour. Observed classes:
  works  — ok (PASS, XPASS)
  broken — not ok, or the test's own XFAIL
  skip / error — nothing observed; such a pair is listed but not compared.
A pair where one side saw "works" and the other "broken" is a disagreement.

Some pairings hold only on the guest's filesystems (upstream's "tmpfile" is in /tmp, its "local
tmpfile" in the kselftest's cwd): where the run's guest facts do not show the filesystem our
case uses, the pair is listed but not compared, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.model import CaseResult, Outcome
from harness.suites import upstream_map
from harness.suites.kselftest import slug

KSELFTEST_PREFIX = "kselftest.mm."


@dataclass(frozen=True)
class Pair:
    ours: CaseResult
    upstream: CaseResult
    upstream_text: str  # the RUN line
    refused: str = ""  # why the two do not test the same memory in this run ("" if they do)

    @property
    def status(self) -> str:
        if self.refused:
            return "not compared"
        a, b = observed(self.ours), observed(self.upstream)
        if a in ("skip", "error") or b in ("skip", "error"):
            return "not compared"
        return "agree" if a == b else "DISAGREE"


def observed(r: CaseResult) -> str:
    if r.outcome is Outcome.OK:
        return "works"
    if r.outcome in (Outcome.NOT_OK, Outcome.XFAIL):
        return "broken"
    if r.outcome in (Outcome.SKIP, Outcome.TODO):
        return "skip"
    return "error"


def upstream_id(test: str, run_text: str) -> str:
    return f"{KSELFTEST_PREFIX}{test}.{slug(run_text)}"


def pairs(results: list[CaseResult], guest: Mapping[str, str] | None = None) -> list[Pair]:
    """Every mapped pair whose two cases are both in the results, in mapping order. `guest`:
    the run's guest facts (fingerprint "guest"); a pairing that needs a filesystem the facts do
    not show (or without facts) is refused."""
    by_id = {r.id: r for r in results}
    out = []
    for test, text, ours in upstream_map.pairs():
        up = by_id.get(upstream_id(test, text))
        mine = by_id.get(ours)
        if up is not None and mine is not None:
            out.append(Pair(mine, up, text, _refused(text, guest or {})))
    return out


def _refused(run_text: str, guest: Mapping[str, str]) -> str:
    need = upstream_map.fs_needed(run_text)
    if need is None:
        return ""
    fact, fs, where = need
    got = guest.get(fact, "")
    if got == fs:
        return ""
    return f"{where} is {got or 'of unknown type'}, not {fs}: upstream's memory there is not ours"


def applies(results: list[CaseResult]) -> bool:
    """Both sides ran: some of our cow.* cases and some upstream mm kselftest cases."""
    return any(r.id.startswith("cow.") for r in results) and any(
        r.id.startswith(KSELFTEST_PREFIX) for r in results
    )


def table(ps: list[Pair]) -> str:
    """One line per pair, then a count line (pure text for the terminal and crosscheck.txt)."""
    lines = [f"{'status':13s} {'ours':6s} {'upstream':8s} our case  <->  upstream case"]
    for p in ps:
        lines.append(
            f"{p.status:13s} {p.ours.verdict.value:6s} {p.upstream.verdict.value:8s} "
            f"{p.ours.id}  <->  {p.upstream.id}" + (f"  ({p.refused})" if p.refused else "")
        )
    lines.append(summary(ps))
    return "\n".join(lines)


def summary(ps: list[Pair]) -> str:
    n = {s: sum(1 for p in ps if p.status == s) for s in ("agree", "DISAGREE", "not compared")}
    return (
        f"cross-check: {len(ps)} pairs: {n['agree']} agree, {n['DISAGREE']} disagree, "
        f"{n['not compared']} not compared (skipped or errored on a side, or not the same memory)"
    )


def disagreements(ps: list[Pair]) -> list[Pair]:
    return [p for p in ps if p.status == "DISAGREE"]


# ---- two pinners of the same behaviour ----------------------------------------------------------
# An RDMA registration (cow_rdma: ib_umem_get → pin_user_pages_fast) and a gup_test / harness_pin
# pin (cow_gup) of the same memory, followed by the same change, must observe the same thing.
# Before 6.2 they differ by design where ib_umem_get's FOLL_WRITE|FOLL_FORCE (b40656aa7d55
# removed it) broke COW before pinning: those pairs are compared from 6.2 on only.
RDMA_SINCE = (6, 2)
_RDMA_GUP: tuple[tuple[str, str, tuple[int, ...] | None, tuple[str, ...]], ...] = (
    # R/O pin of a MAP_PRIVATE non-anonymous page, write through the mapping: the pin sees it.
    (
        "rdma-ro.write",
        "gup-fast-pin-ro.private-mapping",
        RDMA_SINCE,
        ("zeropage", "memfd-private", "tmpfs-private", "ext4-private"),
    ),
    # R/O pin of a MAP_PRIVATE file page, pwrite to the file: the pin keeps the snapshot.
    (
        "rdma-ro.file-update",
        "gup-pin-ro.file-update",
        RDMA_SINCE,
        ("memfd-private", "tmpfs-private", "ext4-private"),
    ),
    # R/O pin of an exclusive anonymous page mapped R/O, then mapped R/W and written.
    ("rdma-ro.ro-mapping", "gup-fast-pin-ro.exclusive", RDMA_SINCE, ("base", "thp", "hugetlb-2m")),
    # R/W long-term pin of a MAP_SHARED file: granted (tmpfs, memfd), refused on ext4 from 6.5.
    ("rdma-rw.shared", "gup-fast-longterm.rw-pin", None, ("memfd-shared", "tmpfs-shared", "ext4-shared")),
)


@dataclass(frozen=True)
class PinnerPair:
    rdma: CaseResult
    gup: CaseResult
    compared: bool  # False: the kernel predates the version from which the two must agree

    @property
    def status(self) -> str:
        a, b = observed(self.rdma), observed(self.gup)
        if not self.compared:
            return "differ by design"
        if a in ("skip", "error") or b in ("skip", "error"):
            return "not compared"
        return "agree" if a == b else "DISAGREE"


def rdma_gup_map() -> list[tuple[str, str, tuple[int, ...] | None]]:
    """(our RDMA id, our gup id, the version from which they must agree or None) for every pair."""
    return [(f"cow.{r}.{m}", f"cow.{g}.{m}", since) for r, g, since, mems in _RDMA_GUP for m in mems]


def pinner_pairs(results: list[CaseResult], version: tuple[int, ...]) -> list[PinnerPair]:
    by_id = {r.id: r for r in results}
    out = []
    for rid, gid, since in rdma_gup_map():
        a, b = by_id.get(rid), by_id.get(gid)
        if a is not None and b is not None:
            out.append(PinnerPair(a, b, since is None or tuple(version[: len(since)]) >= since))
    return out


def pinner_table(ps: list[PinnerPair], pinner: str) -> str:
    lines = [
        f"Two pinners of the same behaviour: RDMA registration (rxe) vs cow_gup ({pinner})",
        f"{'status':16s} {'rdma':6s} {'gup':6s} RDMA case  <->  gup case",
    ]
    for p in ps:
        lines.append(
            f"{p.status:16s} {p.rdma.verdict.value:6s} {p.gup.verdict.value:6s} {p.rdma.id}  <->  {p.gup.id}"
        )
    lines.append(pinner_summary(ps))
    return "\n".join(lines)


def pinner_summary(ps: list[PinnerPair]) -> str:
    n = {
        s: sum(1 for p in ps if p.status == s)
        for s in ("agree", "DISAGREE", "not compared", "differ by design")
    }
    return (
        f"pinner cross-check: {len(ps)} pairs: {n['agree']} agree, {n['DISAGREE']} disagree, "
        f"{n['not compared']} not compared, {n['differ by design']} not compared before "
        f"{'.'.join(map(str, RDMA_SINCE))} (FOLL_WRITE|FOLL_FORCE in ib_umem_get)"
    )
