"""harness.vm.hugepages.plan: selected ids + --memory → the guest's size and its boot-time 1 GiB pages,
and how that decision reaches the kernel command line, the fingerprint note and the matrix width."""

from __future__ import annotations

import pytest

from harness.errors import InputError
from harness.run import guestfacts, matrix
from harness.vm import hugepages, machine
from harness.vm.hugepages import GuestMemory

ONE_G = ["cow.fork.child-keeps-data.hugetlb-1g", "cow.iouring.fork-while-registered.hugetlb-1g"]
OTHERS = [
    "cow.fork.child-keeps-data.base",
    "cow.fork.child-keeps-data.hugetlb-2m",
    "probe.perf-rb.odirect-write",
]


def test_no_1g_case_keeps_the_default_guest() -> None:
    assert hugepages.plan(OTHERS, None) == GuestMemory(1024, 0)
    assert hugepages.plan([], None) == GuestMemory(1024, 0)
    assert hugepages.plan(OTHERS, None).kernel_args == ()


def test_explicit_memory_without_1g_cases_is_used_as_given() -> None:
    assert hugepages.plan(OTHERS, 512) == GuestMemory(512, 0)
    assert hugepages.plan(OTHERS, 8192) == GuestMemory(8192, 0)


def test_one_1g_case_among_others_asks_two_pages_and_a_5g_guest() -> None:
    # Two: setup_hugetlb in cow_tests/memtypes.c wants one page for the area, one for its COW copy.
    g = hugepages.plan(OTHERS + ONE_G[:1], None)
    assert g == GuestMemory(5120, 2)
    assert g.kernel_args == ("hugepagesz=1G", "hugepages=2", "default_hugepagesz=2M")


def test_more_1g_cases_need_no_more_pages() -> None:
    # The cases run one after another and free their pages: the pool is per case, not per selection.
    assert hugepages.plan(ONE_G * 5, None) == hugepages.plan(ONE_G[:1], None)


def test_only_the_id_suffix_counts() -> None:
    assert hugepages.pages_1g_needed(["cow.hugetlb-1g.base", "cow.x.hugetlb-1gb", "hugetlb-1g"]) == 0
    assert hugepages.pages_1g_needed(iter(["cow.x.hugetlb-1g"])) == 2  # any iterable, read once


@pytest.mark.parametrize("mem,pages", [("hugetlb-memfd-1g-private", 3), ("hugetlb-memfd-1g-shared", 2)])
def test_hugetlb_memfd_1g_needs_the_pages_too(mem: str, pages: int) -> None:
    # private: the file's page, the owner's reservation and a child's COW copy
    assert hugepages.plan([f"cow.fork.parent-keeps-data.{mem}"], None) == GuestMemory(
        3072 + pages * 1024, pages
    )
    assert hugepages.plan(ONE_G + [f"cow.x.{mem}"] + ONE_G, None).hugepages_1g == pages
    assert hugepages.pages_1g_needed([f"cow.x.{mem}x", "hugetlb-memfd-1g-private"]) == 0


def test_explicit_memory_big_enough_is_kept() -> None:
    assert hugepages.plan(ONE_G, 5120) == GuestMemory(5120, 2)
    assert hugepages.plan(ONE_G, 8192) == GuestMemory(8192, 2)


@pytest.mark.parametrize("memory_mib", [1024, 3072, 4096, 5119])
def test_explicit_memory_too_small_is_one_clear_error(memory_mib: int) -> None:
    with pytest.raises(InputError) as e:
        hugepages.plan(ONE_G, memory_mib)
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 2
    assert msg.startswith(f"--memory {memory_mib}: ") and "5120" in msg and "hugetlb-1g" in msg


def test_minimum_follows_the_pc_machine_layout() -> None:
    # 3 GiB below the PCI hole give at most one clean GiB; above 4 GiB the last GiB is the kernel's.
    assert hugepages.min_memory_mib(0) == 0
    assert hugepages.min_memory_mib(1) == 4096
    assert hugepages.min_memory_mib(2) == 5120


def test_kernel_args_reach_the_cmdline_before_the_users_append() -> None:
    args = hugepages.plan(ONE_G, None).kernel_args
    line = machine.cmdline("hugepages=9 loglevel=7", args)
    assert line.startswith(machine.cmdline() + " hugepagesz=1G hugepages=2 default_hugepagesz=2M ")
    assert line.endswith(" hugepages=9 loglevel=7")  # the user's words last: theirs win
    assert machine.cmdline("", args) == machine.cmdline() + " hugepagesz=1G hugepages=2 default_hugepagesz=2M"
    assert machine.cmdline("", ()) == machine.cmdline()


@pytest.mark.parametrize(
    "asked, facts, said",
    [
        (0, {}, False),
        (0, {"hugepages_1g": ""}, False),
        (2, {"hugepages_1g": "2"}, False),
        (2, {"hugepages_1g": "1"}, True),
        (2, {"hugepages_1g": ""}, True),  # no hugepages-1048576kB: the CPU or kernel has no 1 GiB pages
        (2, {}, True),
    ],
)
def test_shortfall_note(asked: int, facts: dict[str, str], said: bool) -> None:
    note = guestfacts.hugepages_1g_shortfall(asked, facts)
    assert bool(note) == said
    if said:
        assert f"of {asked} boot-time 1 GiB" in note and "SKIP" in note


def test_guest_facts_carry_the_1g_pool() -> None:
    assert "hugepages-1048576kB/nr_hugepages" in guestfacts.GUEST_FACTS
    facts = guestfacts.guest_facts("nr_hugepages=16\nhugepages_1g=2\nhugepages_1g_free=2\n")
    assert facts["hugepages_1g"] == "2" and facts["hugepages_1g_free"] == "2"


def test_matrix_width_counts_the_real_guest_size() -> None:
    # 12 GiB free, 4 cores: 1 GiB guests fit 4 at a time, 5 GiB guests only 2.
    assert matrix.default_jobs(4, 12288, hugepages.plan(OTHERS, None).memory_mib) == 4
    assert matrix.default_jobs(4, 12288, hugepages.plan(ONE_G, None).memory_mib) == 2
