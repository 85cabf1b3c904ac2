"""The guest's memory for the selected cases: its size and its boot-time 1 GiB hugetlb pages.

A `*.hugetlb-1g` (or `*.hugetlb-memfd-1g-*`) case needs free 1 GiB pages in the guest. Those are reserved by the kernel at
boot (`hugepagesz=1G hugepages=N`): after boot a guest rarely has a free, aligned, physically
contiguous GiB left. The 2 MiB pool stays the default size (`default_hugepagesz=2M`) and is
still filled at runtime by guest/init.

Where the pages can come from decides the guest's size. QEMU's pc machine keeps at most 3 GiB
of RAM below the 4 GiB PCI hole (all of it when the guest has less than 3.5 GiB); there the
BIOS area and the kernel take the first GiB and QEMU loads the initrd at the top of low RAM, so
low RAM gives at most one page ([1 GiB, 2 GiB)). Above 4 GiB the kernel's early top-down
memblock allocations (the memmap, page tables) land in the last GiB. Observed on Debian 6.12
with memblock=debug: 3072 and 4096 MiB gave 1 page of 2, 5120 MiB gave 2. So N pages take
3 GiB + N GiB, which also leaves the rest of the guest more than the default 1 GiB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import InputError

DEFAULT_MEMORY_MIB = 1024  # what every other case is written for (README: --memory)
HUGETLB_1G_SUFFIX = ".hugetlb-1g"
# Every memory type on 1 GiB pages (cow_tests/memtypes.c, MT_GIGANTIC): the anonymous MAP_HUGETLB
# page and the hugetlb memfd (MFD_HUGE_1GB) in its two mappings.
HUGETLB_1G_SUFFIXES = (HUGETLB_1G_SUFFIX, ".hugetlb-memfd-1g-private", ".hugetlb-memfd-1g-shared")
# cow_tests/memtypes.c setup_hugetlb, file_open: two free pages, one for the area, one for a COW copy;
# the cases of one program run one after another, so two is enough for any selection.
PAGES_1G_PER_CASE = 2
# A MAP_PRIVATE mapping of a 1 GiB hugetlb memfd: the file's page, the page hugetlbfs reserves for
# the mapping's owner, and a third for a forked child's COW copy (the owner's reservation is not
# the child's: with two, the child's write SIGBUSes; seen on 6.12.118, fork.parent-keeps-data).
HUGETLB_MEMFD_1G_PRIVATE_SUFFIX = ".hugetlb-memfd-1g-private"
PAGES_1G_MEMFD_PRIVATE = 3
LOW_RAM_MIB = 3072  # pc machine: RAM below the 4 GiB hole, at most one clean GiB of it
GIB_MIB = 1024


@dataclass(frozen=True)
class GuestMemory:
    memory_mib: int  # the guest's -m
    hugepages_1g: int = 0  # 1 GiB pages the kernel is asked to reserve at boot

    @property
    def kernel_args(self) -> tuple[str, ...]:
        """Kernel command line words for the pools (none without 1 GiB pages)."""
        if not self.hugepages_1g:
            return ()
        return ("hugepagesz=1G", f"hugepages={self.hugepages_1g}", "default_hugepagesz=2M")


def pages_1g_needed(ids: Iterable[str]) -> int:
    """1 GiB pages the guest must have free for these case ids."""
    pages = 0
    for i in ids:
        if i.endswith(HUGETLB_MEMFD_1G_PRIVATE_SUFFIX):
            return PAGES_1G_MEMFD_PRIVATE
        if i.endswith(HUGETLB_1G_SUFFIXES):
            pages = PAGES_1G_PER_CASE
    return pages


def min_memory_mib(pages_1g: int) -> int:
    """The smallest guest that gets `pages_1g` boot-time 1 GiB pages (module docstring)."""
    return LOW_RAM_MIB + pages_1g * GIB_MIB if pages_1g else 0


def plan(ids: Iterable[str], requested_mib: int | None) -> GuestMemory:
    """The guest's memory for the selected `ids`; `requested_mib` is --memory (None: not given).
    An explicit --memory too small for the 1 GiB pages is an InputError, not a silent SKIP."""
    pages = pages_1g_needed(ids)
    need = min_memory_mib(pages)
    if requested_mib is None:
        return GuestMemory(max(DEFAULT_MEMORY_MIB, need), pages)
    if requested_mib < need:
        raise InputError(
            f"--memory {requested_mib}: the selected 1 GiB hugetlb cases (*{HUGETLB_1G_SUFFIX}, "
            f"*.hugetlb-memfd-1g-*) need {pages} boot-time 1 GiB pages, which take a guest of at least "
            f"{need} MiB (QEMU's pc machine has at most one free GiB below 4 GiB); give --memory {need} "
            "or more, leave it out, or filter those cases out"
        )
    return GuestMemory(requested_mib, pages)
