"""The guest's own facts, asked once per run and kept in the fingerprint (pure but for the
command text the guest runs).

Shell builtins only (read, echo, test): every fork costs ~10 ms under TCG.
"""

from __future__ import annotations

from harness import limits

GUEST_FACTS = (
    "f() { v=; read -r v < $2 2>/dev/null; echo $1=$v; }; "
    "f kernel /proc/sys/kernel/osrelease; f cpus_online /sys/devices/system/cpu/online; "
    "f thp_enabled /sys/kernel/mm/transparent_hugepage/enabled; "
    "f thp_defrag /sys/kernel/mm/transparent_hugepage/defrag; "
    # proc_dointvec sysctls answer EOF to a read at a non-zero offset, and busybox's read
    # builtin reads a byte at a time: those need cat.
    "echo nr_hugepages=$(cat /proc/sys/vm/nr_hugepages); f memtotal /proc/meminfo; "
    "f perf_event_paranoid /proc/sys/kernel/perf_event_paranoid; "
    "n=0; while read -r l; do n=$((n+1)); done < /proc/swaps; echo swap_devices=$((n-1)); "
    "d=no; e=no; t=no; while read -r _ mnt fs _; do [ $fs = debugfs ] && d=yes; "
    "[ $mnt = /mnt/ext4 ] && e=$fs; [ $mnt = /tmp ] && t=$fs; done < /proc/mounts; "
    "echo debugfs=$d; echo scratch_fs=$e; echo tmp_fs=$t; "
    "f hugepages_free /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages; "
    # The boot-time 1 GiB pool (empty: the kernel or CPU has no 1 GiB pages).
    "f hugepages_1g /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages; "
    "f hugepages_1g_free /sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages; "
    "test -e /sys/kernel/debug/gup_test && echo gup_test=yes || echo gup_test=no; "
    "test -e /sys/kernel/debug/harness_pin && echo harness_pin=yes || echo harness_pin=no; "
    "f harness_pin_why /harness/modules/harness_pin.ko.why; f pinner /etc/harness/pinner; "
    "f rdma_why /run/harness-rdma.why; test -e /sys/class/infiniband/rxe0 && echo rdma=rxe0 || echo rdma=none; "
    # The taint every case starts from (harness_pin, loaded at boot, is O and E): a case is only
    # blamed for a change from this.
    "echo tainted=$(cat /proc/sys/kernel/tainted)"
)
MAX_FACTS = 64  # the command above prints 24; more is a guest making things up
MAX_FACT_CHARS = 300  # one value (a reason line from harness_pin.ko.why is the longest)


def guest_facts(text: str) -> dict[str, str]:
    """key=value lines, each key and value bounded, at most MAX_FACTS of them."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and len(facts) < MAX_FACTS:
            facts[limits.head_tail(k.strip(), 64)] = limits.head_tail(v.strip(), MAX_FACT_CHARS)
    return facts


def hugepages_1g_shortfall(asked: int, guest: dict[str, str]) -> str:
    """A note when the kernel reserved fewer 1 GiB pages than asked ("" when it has them all):
    the hugetlb-1g cases then SKIP, and this says why before they do."""
    got = guest.get("hugepages_1g", "")
    if not asked or (got.isdigit() and int(got) >= asked):
        return ""
    return (
        f"the kernel reserved {got or 'no'} of {asked} boot-time 1 GiB hugetlb pages "
        f"(dmesg: HugeTLB); the hugetlb-1g cases will SKIP"
    )
