"""Which upstream selftest case checks the same thing as which of our cases (data only).

Upstream names a case by its `# [RUN]` line, `<operation> ... with <memory>`; we name it
`cow.<operation>.<memory type>` (cow_tests/README.md). A pair is listed only where both check
the same behaviour on the same kind of memory, read from both sources (docs/semantics.md#upstream-selftests).
Used by harness/suites/crosscheck.py; an upstream id is `kselftest.mm.<test>.` + slug of the RUN text.
"""

from __future__ import annotations

# mm/cow, anonymous memory: upstream operation → our operation.
COW_ANON_OPS = {
    "Basic COW after fork()": "fork.child-keeps-data",
    "Basic COW after fork() with mprotect() optimization": "fork-mprotect.child-keeps-data",
    "vmsplice() + unmap in child": "vmsplice.unmap-in-child",
    "vmsplice() + unmap in child with mprotect() optimization": "vmsplice-mprotect.unmap-in-child",
    "vmsplice() before fork(), unmap in parent after fork()": "vmsplice-before-fork.unmap-in-parent",
    "vmsplice() + unmap in parent after fork()": "vmsplice-after-fork.unmap-in-parent",
    "R/O-mapping a page registered as iouring fixed buffer": "iouring.mprotect-ro-rw",
    "fork() with an iouring fixed buffer": "iouring.fork-while-registered",
    "R/O GUP pin on R/O-mapped shared page": "gup-pin-ro.cow-shared",
    "R/O GUP pin on R/O-mapped previously-shared page": "gup-pin-ro.was-shared",
    "R/O GUP pin on R/O-mapped exclusive page": "gup-pin-ro.exclusive",
    "R/O GUP-fast pin on R/O-mapped shared page": "gup-fast-pin-ro.cow-shared",
    "R/O GUP-fast pin on R/O-mapped previously-shared page": "gup-fast-pin-ro.was-shared",
    "R/O GUP-fast pin on R/O-mapped exclusive page": "gup-fast-pin-ro.exclusive",
}

MTHP_KB = (16, 32, 64, 128, 256, 512, 1024)
# Upstream's forms of an mTHP (PTE-mapped by nature, "PTE-mapped THP (16 kB)") → our suffix
# after mthp-<N>k; upstream's partial mremap tests the half left in place.
MTHP_FORMS = {
    "PTE-mapped THP": "",
    "swapped-out, PTE-mapped THP": "-swapped",
    "single PTE of THP": "-single-pte",
    "single PTE of swapped-out THP": "-single-pte-swapped",
    "partially mremap()'ed THP": "-mremap-kept",
    "partially shared THP": "-partially-shared",
}

# mm/cow, anonymous memory: upstream memory → our memory type.
COW_ANON_MEMS = {
    "base page": "base",
    "swapped out base page": "base-swapped",
    "THP (2048 kB)": "thp",
    "swapped-out THP (2048 kB)": "thp-swapped",
    "PTE-mapped THP (2048 kB)": "thp-pte",
    "swapped-out, PTE-mapped THP (2048 kB)": "thp-pte-swapped",
    "single PTE of THP (2048 kB)": "thp-single-pte",
    "single PTE of swapped-out THP (2048 kB)": "thp-single-pte-swapped",
    # upstream tests the half left in place (our thp-mremap is the moved half)
    "partially mremap()'ed THP (2048 kB)": "thp-mremap-kept",
    "partially shared THP (2048 kB)": "thp-partially-shared",
    **{f"{form} ({kb} kB)": f"mthp-{kb}k{suffix}" for form, suffix in MTHP_FORMS.items() for kb in MTHP_KB},
    "hugetlb (2048 kB)": "hugetlb-2m",
    "hugetlb (1048576 kB)": "hugetlb-1g",
}

# mm/cow, non-anonymous memory in MAP_PRIVATE mappings.
COW_NONANON_OPS = {
    "Basic COW": "private-write.other-mapping-unchanged",
    "R/O longterm GUP pin": "gup-pin-ro.private-mapping",
    "R/O longterm GUP-fast pin": "gup-fast-pin-ro.private-mapping",
}
COW_NONANON_MEMS = {
    "shared zeropage": "zeropage",
    "huge zeropage": "huge-zeropage",
    "memfd": "memfd-private",
    "tmpfile": "tmpfs-private",  # tmpfile() is in the guest's /tmp: only where that is tmpfs
    "memfd hugetlb (2048 kB)": "hugetlb-memfd-private",
    "memfd hugetlb (1048576 kB)": "hugetlb-memfd-1g-private",
}

# mm/gup_longterm: upstream operation → (our operation, mapping kind).
GUP_LONGTERM_OPS = {
    "R/W longterm GUP pin in MAP_SHARED file mapping": ("gup-longterm.rw-pin", "shared"),
    "R/W longterm GUP-fast pin in MAP_SHARED file mapping": ("gup-fast-longterm.rw-pin", "shared"),
    "R/O longterm GUP pin in MAP_SHARED file mapping": ("gup-longterm.ro-pin", "shared"),
    "R/O longterm GUP-fast pin in MAP_SHARED file mapping": ("gup-fast-longterm.ro-pin", "shared"),
    "R/W longterm GUP pin in MAP_PRIVATE file mapping": ("gup-longterm.rw-pin", "private"),
    "R/W longterm GUP-fast pin in MAP_PRIVATE file mapping": ("gup-fast-longterm.rw-pin", "private"),
    "R/O longterm GUP pin in MAP_PRIVATE file mapping": ("gup-longterm.ro-pin", "private"),
    "R/O longterm GUP-fast pin in MAP_PRIVATE file mapping": ("gup-fast-longterm.ro-pin", "private"),
    "io_uring fixed buffer with MAP_SHARED file mapping": ("iouring-register-ok", "shared"),
    "io_uring fixed buffer with MAP_PRIVATE file mapping": ("iouring-register-ok", "private"),
}
# gup_longterm memory → our file kind; "local tmpfile" is in the cwd, the guest's ext4 disk.
GUP_LONGTERM_MEMS = {
    "memfd": "memfd",
    "tmpfile": "tmpfs",
    "local tmpfile": "ext4",
    "memfd hugetlb (2048 kB)": "hugetlb-memfd",
    "memfd hugetlb (1048576 kB)": "hugetlb-memfd-1g",
}
# Pairs left out. Upstream expects io_uring to refuse a shared ext4 mapping ("Should have
# failed"), but judges it on errno, which liburing >= 2.2 does not set (it returns -errno):
# its verdict comes from whatever errno an earlier call left (docs/semantics.md#liburing-errno), so an
# agreement with our cow.iouring-register-refused.ext4-shared would mean nothing.
EXCLUDED = {
    ("gup_longterm", "io_uring fixed buffer with MAP_SHARED file mapping", "local tmpfile"),
}

# Upstream memory that lives on a filesystem of the guest: (guest fact, the filesystem our
# counterpart uses, where). tmpfile() creates its file in glibc's P_tmpdir, /tmp (our tmpfs
# types use $COW_TMPDIR=/tmp only when it is tmpfs, else /dev/shm); "local tmpfile" is mkstemp
# in the kselftest's cwd, the ext4 scratch dir (harness/suites/kselftest.py GUEST_CWD). The facts
# come from the run's fingerprint (harness/run/runner.py GUEST_FACTS).
FS_OF_MEMS = {
    "tmpfile": ("tmp_fs", "tmpfs", "/tmp"),
    "local tmpfile": ("scratch_fs", "ext4", "/mnt/ext4"),
}


def fs_needed(run_text: str) -> tuple[str, str, str] | None:
    """(guest fact, filesystem, where) the pairing of this upstream case depends on, or None."""
    return FS_OF_MEMS.get(run_text.rpartition(" ... with ")[2])


def pairs() -> list[tuple[str, str, str]]:
    """(upstream test, upstream RUN text, our id) for every mapped pair."""
    out: list[tuple[str, str, str]] = []
    for op, ours in COW_ANON_OPS.items():
        for mem, our_mem in COW_ANON_MEMS.items():
            out.append(("cow", f"{op} ... with {mem}", f"cow.{ours}.{our_mem}"))
    for op, ours in COW_NONANON_OPS.items():
        for mem, our_mem in COW_NONANON_MEMS.items():
            out.append(("cow", f"{op} ... with {mem}", f"cow.{ours}.{our_mem}"))
    for op, (ours, kind) in GUP_LONGTERM_OPS.items():
        for mem, our_mem in GUP_LONGTERM_MEMS.items():
            if ("gup_longterm", op, mem) not in EXCLUDED:
                out.append(("gup_longterm", f"{op} ... with {mem}", f"cow.{ours}.{our_mem}-{kind}"))
    return out
