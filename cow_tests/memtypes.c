// SPDX-License-Identifier: GPL-2.0
/*
 * The memory types a case can run on (mem_types[], see common.h). Each setup
 * maps the memory, populates it, fills it with the old pattern (the
 * zeropages hold zeros) and checks it got what the type promises, else SKIPs
 * with the reason. Settings it needs (mTHP sizes, use_zero_page) it changes
 * through setting_write(): the driver puts them back after the case.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << MAP_HUGE_SHIFT)
#endif
#ifndef MFD_HUGE_1GB
#define MFD_HUGE_1GB (30U << MAP_HUGE_SHIFT)
#endif

#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage"

/* mem_type.variant of the anonymous and zeropage types. */
#define V_PMD		0x01	/* a PMD-sized THP (huge zeropage) */
#define V_MTHP		0x02	/* an mTHP of mem_type.arg kB */
#define V_SWAP		0x04	/* swapped out, last step */
#define V_PTE		0x08	/* PMD split into PTEs by an mprotect of one subpage */
#define V_SINGLE	0x10	/* only the first PTE kept (the rest MADV_DONTNEED) */
#define V_MREMAP	0x20	/* the upper half moved elsewhere; it is the area */
#define V_KEPT		0x100	/* the upper half moved elsewhere; the lower half, left in place, is the area */
#define V_PART_SHARED	0x40	/* first page COW-shared with a child that exited */
#define V_RO		0x80	/* mapped PROT_READ after the fill */

/* mem_type.arg of the file types. */
enum file_kind { FK_MEMFD, FK_TMPFS, FK_EXT4, FK_HUGETLB_MEMFD, FK_HUGETLB_MEMFD_1G, FK_ANON_SHARED };

static void area_init(struct area *a, const struct mem_type *t)
{
	*a = (struct area){ .fd = -1, .old = GEN_OLD, .type = t };
}

/* The [selected] word of a THP sysfs choice file, for diagnostics. */
static const char *thp_choice(const char *file)
{
	static char buf[128];
	char path[192], *open_b, *close_b;

	snprintf(path, sizeof(path), THP_SYSFS "/%s", file);
	if (read_text(path, buf, sizeof(buf)))
		return "unreadable";
	open_b = strchr(buf, '[');
	close_b = open_b ? strchr(open_b, ']') : NULL;
	if (!close_b)
		return buf;
	*close_b = '\0';
	return open_b + 1;
}

/*
 * mmap size bytes of private anonymous memory at an align-aligned address,
 * with PROT_NONE guards on both sides, so the VMA cannot merge with a
 * neighbour and be offered a larger folio than the type asks for.
 */
static char *map_anon_guarded(struct area *a, size_t size, size_t align)
{
	size_t ps = page_size(), len = size + 2 * (align > ps ? align : ps);
	uintptr_t start;
	char *res;

	res = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	area_track(a, res, len);
	start = ((uintptr_t)res + ps + align - 1) & ~(uintptr_t)(align - 1);
	if (mmap((void *)start, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return NULL;
	return (char *)start;
}

/*
 * At least `need` free hugetlb pages of kb kB, else SKIP. Waits up to 10 s for pages the
 * previous case still holds: an io_uring ring's buffers are unregistered (unpinned) by a
 * workqueue after close (io_ring_exit_work), and with the two 1 GiB pages there is no slack
 * (6.1.0-56 under TCG: 1 free right after cow.iouring.mprotect-ro-rw.hugetlb-1g).
 */
static enum status hugetlb_free(size_t kb, long need, struct result *r)
{
	char path[128], pool[128];
	long n;
	int waited_ms = 0;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%zukB/free_hugepages", kb);
	n = read_long(path);
	if (n < 0)
		return res_skip(r, "no %zu kB hugetlb pages on this kernel/CPU (%s: %s)", kb, path,
				errno_name((int)-n));
	/* Only when the pool is big enough: pages that are not there do not come back. */
	snprintf(pool, sizeof(pool), "/sys/kernel/mm/hugepages/hugepages-%zukB/nr_hugepages", kb);
	while (n >= 0 && n < need && read_long(pool) >= need && waited_ms < 10000) {
		usleep(100 * 1000);
		waited_ms += 100;
		n = read_long(path);
	}
	if (waited_ms)
		diag("hugetlb: waited %d ms for free %zu kB pages", waited_ms, kb);
	diag("hugetlb: %ld free %zu kB pages", n, kb);
	if (n < need)
		return res_skip(r, "need %ld free %zu kB hugetlb pages, %ld free (nr_hugepages)",
				need, kb, n);
	return ST_PASS;
}

/* ---- anonymous memory ------------------------------------------------------ */

static enum status mthp_enable(size_t kb, struct result *r)
{
	char path[128];
	int err;

	snprintf(path, sizeof(path), THP_SYSFS "/hugepages-%zukB/enabled", kb);
	if (access(path, F_OK))
		return res_skip(r, "no %s: this kernel has no %zu kB anonymous mTHP (multi-size THP came in 6.8)",
				path, kb);
	err = setting_write(path, "always");
	if (err)
		return res_skip(r, "cannot enable %zu kB mTHP: %s", kb, errno_name(-err));
	return ST_PASS;
}

/*
 * An mTHP of the area's size, proven two ways where the kernel lets us:
 * the per-size counter hugepages-<N>kB/stats/anon_fault_alloc (6.9+) went up
 * across the fault, and the PFNs (root only) are contiguous and aligned to
 * the size. Neither available (6.8 without root): SKIP, the order is unproven.
 */
static enum status check_mthp_order(struct area *a, long fault_allocs_before, struct result *r)
{
	size_t ps = page_size(), n = a->size / ps, i;
	char path[128];
	uint64_t *e;
	long after = -1;
	bool pfns = false;
	int err;

	if (fault_allocs_before >= 0) {
		snprintf(path, sizeof(path), THP_SYSFS "/hugepages-%zukB/stats/anon_fault_alloc",
			 a->size / 1024);
		after = read_long(path);
		diag("mthp: hugepages-%zukB/stats/anon_fault_alloc %ld -> %ld", a->size / 1024,
		     fault_allocs_before, after);
		if (after <= fault_allocs_before)
			return res_skip(r, "the fault did not allocate a %zu kB folio (anon_fault_alloc %ld -> %ld)",
					a->size / 1024, fault_allocs_before, after);
	}
	e = malloc(n * sizeof(*e));
	err = e ? pagemap_range(a->mem, n, e) : -ENOMEM;
	if (!err && (e[0] & PM_PFN_MASK)) {
		uint64_t pfn0 = e[0] & PM_PFN_MASK;

		pfns = true;
		for (i = 1; i < n && (e[i] & PM_PFN_MASK) == pfn0 + i; i++)
			;
		diag("mthp: pfn 0x%llx..0x%llx: %s, %saligned to %zu pages", (unsigned long long)pfn0,
		     (unsigned long long)(e[n - 1] & PM_PFN_MASK), i == n ? "contiguous" : "NOT contiguous",
		     pfn0 % n ? "NOT " : "", n);
		if (i < n || pfn0 % n) {
			free(e);
			return res_skip(r, "the %zu kB area is not one naturally aligned folio (pfns not contiguous at page %zu, or misaligned)",
					a->size / 1024, i);
		}
	}
	free(e);
	if (after < 0 && !pfns)
		return res_skip(r, "cannot confirm a %zu kB folio: no hugepages-%zukB/stats (6.9+) and pfns hidden (needs CAP_SYS_ADMIN)",
				a->size / 1024, a->size / 1024);
	return ST_PASS;
}

/* Populate a THP / mTHP with one write fault and check it got one folio. */
static enum status populate_large(struct area *a, const struct mem_type *t, struct result *r)
{
	size_t ps = page_size();
	const char *knob = (t->variant & V_PMD) ? "enabled" : NULL;
	char mthp_knob[64], stats[128];
	uint64_t first, last;
	long ahp_kb, allocs = -1;
	int err;

	if (!knob) {
		snprintf(mthp_knob, sizeof(mthp_knob), "hugepages-%zukB/enabled", (size_t)t->arg);
		knob = mthp_knob;
		snprintf(stats, sizeof(stats), THP_SYSFS "/hugepages-%zukB/stats/anon_fault_alloc",
			 (size_t)t->arg);
		allocs = read_long(stats);
	}
	if ((t->variant & V_PMD) && madvise(a->mem, a->size, MADV_HUGEPAGE))
		return res_skip(r, "madvise(MADV_HUGEPAGE): %s", errno_name(errno));
	a->mem[0] = 1;
	err = pagemap_read(a->mem + a->size - ps, &last);
	if (err)
		return res_skip(r, "cannot check the folio: /proc/self/pagemap: %s", errno_name(-err));
	if (!(last & PM_PRESENT))
		return res_skip(r, "did not get a %zu kB THP populated (last subpage not present after touching byte 0; %s: %s)",
				a->size / 1024, knob, thp_choice(knob));
	if (t->variant & V_MTHP)
		return check_mthp_order(a, allocs, r);
	if (!pagemap_read(a->mem, &first) && (first & PM_PFN_MASK))
		diag("large folio: pfn 0x%llx..0x%llx (%s)",
		     (unsigned long long)(first & PM_PFN_MASK), (unsigned long long)(last & PM_PFN_MASK),
		     (last & PM_PFN_MASK) - (first & PM_PFN_MASK) == a->size / ps - 1 ?
		     "contiguous" : "NOT contiguous");
	if (t->variant & V_PMD) {
		ahp_kb = smaps_field_kb(a->mem, "AnonHugePages");
		diag("thp: AnonHugePages %ld kB in the VMA", ahp_kb);
		if (ahp_kb >= 0 && (size_t)ahp_kb * 1024 < a->size)
			return res_skip(r, "did not get a PMD-mapped THP (AnonHugePages %ld kB)", ahp_kb);
	}
	return ST_PASS;
}

static enum status split_pmd(struct area *a, struct result *r)
{
	size_t ps = page_size();
	long ahp_kb;

	if (mprotect(a->mem + ps, ps, PROT_READ) || mprotect(a->mem + ps, ps, PROT_READ | PROT_WRITE))
		return res_fail(r, "mprotect of one subpage: %s", errno_name(errno));
	ahp_kb = smaps_field_kb(a->mem, "AnonHugePages");
	diag("thp-pte: AnonHugePages %ld kB after mprotect of one subpage", ahp_kb);
	if (ahp_kb > 0)
		return res_skip(r, "the PMD mapping was not split (AnonHugePages %ld kB)", ahp_kb);
	return ST_PASS;
}

static enum status keep_single_pte(struct area *a, struct result *r)
{
	size_t ps = page_size(), n = a->size / ps, i;
	uint64_t e;

	if (madvise(a->mem + ps, a->size - ps, MADV_DONTNEED))
		return res_fail(r, "madvise(MADV_DONTNEED) of all but the first page: %s",
				errno_name(errno));
	/* What the type promises: the first PTE mapped, none of the others. */
	for (i = 0; i < n; i++) {
		if (pagemap_read(a->mem + i * ps, &e))
			return res_skip(r, "cannot check the single PTE: /proc/self/pagemap unreadable");
		if (!!(e & PM_PRESENT) != (i == 0))
			return res_skip(r, "single PTE: page %zu of %zu is %spresent after MADV_DONTNEED of pages 1..%zu",
					i, n, (e & PM_PRESENT) ? "" : "not ", n - 1);
	}
	diag("single-pte: page 0 of %zu mapped, pages 1..%zu not", n, n - 1);
	a->size = ps;
	return ST_PASS;
}

static enum status move_half(struct area *a, bool keep_lower, struct result *r)
{
	size_t ps = page_size(), half = a->size / 2;
	uint64_t pfn_before, pfn_after, moved, kept;
	char *res, *target;

	/* The area becomes the upper half: give it the pattern relative to its start. */
	if (!keep_lower)
		pattern_fill(a->mem + half, half, GEN_OLD);
	res = mmap(NULL, half + 2 * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return res_fail(r, "mmap of the mremap target: %s", errno_name(errno));
	area_track(a, res, half + 2 * ps);
	pfn_before = pagemap_pfn(a->mem + half);
	target = mremap(a->mem + half, half, half, MREMAP_MAYMOVE | MREMAP_FIXED, res + ps);
	if (target == MAP_FAILED)
		return res_fail(r, "mremap of the upper half: %s", errno_name(errno));
	/* The same page moved (root sees its pfn), present in both halves. */
	pfn_after = pagemap_pfn(target);
	if (pagemap_read(target, &moved) || !(moved & PM_PRESENT) ||
	    pagemap_read(a->mem, &kept) || !(kept & PM_PRESENT))
		return res_skip(r, "partial mremap: a half is not mapped after the move (pagemap present=0)");
	if (pfn_before && pfn_after != pfn_before)
		return res_skip(r, "partial mremap: the moved half maps pfn 0x%llx, not the THP's 0x%llx",
				(unsigned long long)pfn_after, (unsigned long long)pfn_before);
	diag("thp-mremap: upper %zu kB moved to %p; the area is the %s half", half / 1024,
	     (void *)target, keep_lower ? "lower (left in place)" : "upper (moved)");
	if (!keep_lower)
		a->mem = target;
	a->size = half;
	return ST_PASS;
}

static enum status move_upper_half(struct area *a, struct result *r)
{
	return move_half(a, false, r);
}

static enum status move_upper_half_keep_lower(struct area *a, struct result *r)
{
	return move_half(a, true, r);
}

/* In the forked child: the first page is mapped (as the parent's pfn when visible), the rest not. */
static int shares_first_page_only(const struct area *a, uint64_t parent_pfn)
{
	uint64_t first, second;

	if (pagemap_read(a->mem, &first) || pagemap_read(a->mem + page_size(), &second))
		return 2;
	if (!(first & PM_PRESENT) || (second & PM_PRESENT))
		return 1;
	return parent_pfn && (first & PM_PFN_MASK) != parent_pfn ? 1 : 0;
}

static enum status share_first_page(struct area *a, struct result *r)
{
	size_t ps = page_size();
	uint64_t parent_pfn = pagemap_pfn(a->mem);
	int st;
	pid_t pid;

	if (madvise(a->mem + ps, a->size - ps, MADV_DONTFORK))
		return res_fail(r, "madvise(MADV_DONTFORK): %s", errno_name(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return res_fail(r, "fork: %s", errno_name(errno));
	if (pid == 0)
		_exit(shares_first_page_only(a, parent_pfn));
	if (waitpid(pid, &st, 0) != pid)
		return res_fail(r, "waitpid: %s", errno_name(errno));
	if (madvise(a->mem + ps, a->size - ps, MADV_DOFORK))
		return res_fail(r, "madvise(MADV_DOFORK): %s", errno_name(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return res_skip(r, "partially shared: the child did not have the first page alone mapped (status 0x%x)",
				st);
	diag("partially shared: the child had page 0 mapped%s, not pages 1..%zu",
	     parent_pfn ? " (the same pfn)" : "", a->size / ps - 1);
	diag_pagemap("thp-partially-shared: first page after the child exited", a->mem);
	diag_pagemap("thp-partially-shared: second page", a->mem + ps);
	return ST_PASS;
}

static enum status map_readonly(struct area *a, struct result *r)
{
	return area_protect(a, PROT_READ, "setup") ? res_fail(r, "mprotect(PROT_READ) failed") :
						      ST_PASS;
}

static void pageout_from_every_cpu(struct area *a)
{
	cpu_set_t was, one;

	if (sched_getaffinity(0, sizeof(was), &was))
		return;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &was))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (!sched_setaffinity(0, sizeof(one), &one))
			madvise(a->mem, a->size, MADV_PAGEOUT);
	}
	sched_setaffinity(0, sizeof(was), &was);
	diag("swap-out: MADV_PAGEOUT again from every CPU (a page was still in a CPU's LRU batch)");
}

static enum status swap_out(struct area *a, struct result *r)
{
	size_t n = a->size / page_size(), i;
	uint64_t *e;
	int err;

	if (madvise(a->mem, a->size, MADV_PAGEOUT))
		return res_skip(r, "madvise(MADV_PAGEOUT): %s", errno_name(errno));
	e = malloc(n * sizeof(*e));
	err = e ? pagemap_range(a->mem, n, e) : -ENOMEM;
	for (i = 0; !err && i < n && (e[i] & PM_SWAP); i++)
		;
	if (!err && i < n) {
		/* A page faulted in on another CPU can still sit in that CPU's LRU batch, where
		 * reclaim cannot isolate it, and MADV_PAGEOUT drains only the local batch: ask
		 * again from every CPU we may run on. */
		pageout_from_every_cpu(a);
		err = pagemap_range(a->mem, n, e);
		for (i = 0; !err && i < n && (e[i] & PM_SWAP); i++)
			;
	}
	free(e);
	if (err)
		return res_skip(r, "cannot check the swap-out: /proc/self/pagemap: %s", errno_name(-err));
	if (i < n)
		return res_skip(r, "MADV_PAGEOUT did not swap out page %zu of %zu (pagemap swap=0): is swap on?",
				i, n);
	diag("swapped out: pagemap swap=1 on all %zu pages", n);
	return ST_PASS;
}

/* The variant steps, applied in this order after the fill. */
static const struct {
	unsigned int flag;
	enum status (*apply)(struct area *a, struct result *r);
} variant_steps[] = {
	{ V_PTE, split_pmd },
	{ V_SINGLE, keep_single_pte },
	{ V_MREMAP, move_upper_half },
	{ V_KEPT, move_upper_half_keep_lower },
	{ V_PART_SHARED, share_first_page },
	{ V_RO, map_readonly },
	{ V_SWAP, swap_out },
};

static enum status setup_anon(struct area *a, const struct mem_type *t, struct result *r)
{
	size_t ps = page_size(), size = ps, i;
	enum status st = ST_PASS;

	area_init(a, t);
	if (t->variant & V_PMD) {
		size = thp_pmd_size();
		if (!size)
			return res_skip(r, "THP not available: %s/hpage_pmd_size: %s", THP_SYSFS,
					errno_name(errno));
		diag("thp: hpage_pmd_size=%zu enabled: %s defrag: %s", size, thp_choice("enabled"),
		     thp_choice("defrag"));
	} else if (t->variant & V_MTHP) {
		size = t->arg * 1024;
		st = mthp_enable(t->arg, r);
		if (st != ST_PASS)
			return st;
	}
	a->mem = map_anon_guarded(a, size, size);
	a->size = size;
	if (!a->mem) {
		st = res_fail(r, "mmap of %zu bytes: %s", size, errno_name(errno));
		goto out;
	}
	if (size == ps) {
		/* Keep a base page a base page even with THP "always" (also mTHP).
		 * EINVAL just means the kernel has no THP at all. */
		if (madvise(a->mem, ps, MADV_NOHUGEPAGE))
			diag("madvise(MADV_NOHUGEPAGE): %s (ignored)", errno_name(errno));
	} else {
		st = populate_large(a, t, r);
	}
	if (st == ST_PASS)
		pattern_fill(a->mem, a->size, GEN_OLD);
	for (i = 0; st == ST_PASS && i < ARRAY_SIZE(variant_steps); i++)
		if (t->variant & variant_steps[i].flag)
			st = variant_steps[i].apply(a, r);
	if (st == ST_PASS)
		diag_pagemap("area after setup", a->mem);
out:
	if (st != ST_PASS)
		area_free(a);
	return st;
}

static enum status setup_hugetlb(struct area *a, const struct mem_type *t, struct result *r)
{
	size_t size = t->arg * 1024;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		    (__builtin_ctzl(size) << MAP_HUGE_SHIFT);
	enum status st;
	void *p;

	area_init(a, t);
	/* Two: one for the area, one for a COW copy. */
	st = hugetlb_free(t->arg, 2, r);
	if (st != ST_PASS)
		return st;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return res_skip(r, "mmap(MAP_HUGETLB) of %zu kB: %s", t->arg, errno_name(errno));
	area_track(a, p, size);
	a->mem = p;
	a->size = size;
	pattern_fill(a->mem, size, GEN_OLD);
	diag_pagemap("hugetlb page after fill", a->mem);
	return ST_PASS;
}

/* ---- zeropages -------------------------------------------------------------- */

/* A read-faulted private anonymous mapping: the shared (or huge) zeropage. */
static char *map_zero(struct area *a, size_t size, bool huge)
{
	char *p = map_anon_guarded(a, size, size);

	if (!p)
		return NULL;
	if (madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		diag("madvise(%s): %s", huge ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", errno_name(errno));
	(void)*(volatile char *)p;
	return p;
}

static enum status setup_zeropage(struct area *a, const struct mem_type *t, struct result *r)
{
	bool huge = t->variant & V_PMD;
	size_t ps = page_size(), size = huge ? thp_pmd_size() : ps;
	uint64_t last, pfn, alias_pfn;
	long rss_kb;
	int err;

	area_init(a, t);
	a->old = GEN_ZERO;
	if (!size)
		return res_skip(r, "THP not available: %s", errno_name(errno));
	if (huge && read_long(THP_SYSFS "/use_zero_page") != 1) {
		err = setting_write(THP_SYSFS "/use_zero_page", "1");
		if (err)
			return res_skip(r, "cannot enable the huge zeropage (use_zero_page): %s",
					errno_name(-err));
	}
	a->mem = map_zero(a, size, huge);
	a->alias = a->mem ? map_zero(a, size, huge) : NULL;
	a->size = size;
	if (!a->alias) {
		err = errno;
		area_free(a);
		return res_fail(r, "mmap: %s", errno_name(err));
	}
	if (huge && (pagemap_read(a->mem + size - ps, &last) || !(last & PM_PRESENT))) {
		area_free(a);
		return res_skip(r, "did not get the huge zeropage (last subpage not present after reading byte 0; enabled: %s)",
				thp_choice("enabled"));
	}
	pfn = pagemap_pfn(a->mem);
	alias_pfn = pagemap_pfn(a->alias);
	diag("zeropage: pfn 0x%llx, a second read-faulted mapping: pfn 0x%llx%s",
	     (unsigned long long)pfn, (unsigned long long)alias_pfn,
	     pfn ? "" : " (pfns hidden: not CAP_SYS_ADMIN)");
	if (pfn && alias_pfn && pfn != alias_pfn) {
		area_free(a);
		return res_skip(r, "the read fault did not map a shared zeropage (two mappings, two pfns)");
	}
	/* Without root the pfns are hidden; the zeropage is not counted in Rss, a page is. */
	if (pagemap_read(a->mem, &last) || !(last & PM_PRESENT)) {
		area_free(a);
		return res_skip(r, "the read fault left the page unmapped (pagemap present=0)");
	}
	rss_kb = smaps_field_kb(a->mem, "Rss");
	diag("zeropage: pagemap present=1, smaps Rss %ld kB", rss_kb);
	if (rss_kb != 0) {
		area_free(a);
		return rss_kb < 0 ?
		       res_skip(r, "cannot read the VMA's Rss from /proc/self/smaps: %s", errno_name((int)-rss_kb)) :
		       res_skip(r, "the read fault mapped %ld kB of memory counted in Rss, not the zeropage", rss_kb);
	}
	diag_pagemap("zeropage area after read fault", a->mem);
	return ST_PASS;
}

/* ---- files and shared memory ------------------------------------------------- */

/*
 * The file for a file type, sized; -1 with r set. hugetlb: `huge_need` free pages (a MAP_PRIVATE
 * mapping reserves one for its owner beside the file's page: a forked child's COW copy needs
 * another).
 */
static int file_open(enum file_kind kind, size_t size, long huge_need, struct result *r)
{
	const char *dir;
	int fd;

	switch (kind) {
	case FK_MEMFD:
		fd = memfd_create("cow_tests", MFD_CLOEXEC);
		if (fd < 0)
			res_skip(r, "memfd_create: %s", errno_name(errno));
		break;
	case FK_HUGETLB_MEMFD:
	case FK_HUGETLB_MEMFD_1G:
		if (hugetlb_free(size / 1024, huge_need, r) != ST_PASS)
			return -1;
		fd = memfd_create("cow_tests", MFD_CLOEXEC | MFD_HUGETLB |
				  (kind == FK_HUGETLB_MEMFD ? MFD_HUGE_2MB : MFD_HUGE_1GB));
		if (fd < 0)
			res_skip(r, "memfd_create(MFD_HUGETLB|%s): %s",
				 kind == FK_HUGETLB_MEMFD ? "MFD_HUGE_2MB" : "MFD_HUGE_1GB", errno_name(errno));
		break;
	default:
		dir = fs_dir(kind == FK_TMPFS ? TMPFS_MAGIC_NR : EXT4_MAGIC_NR, r);
		fd = dir ? tmpfile_in(dir, r) : -1;
		break;
	}
	if (fd >= 0 && ftruncate(fd, (off_t)size)) {
		res_fail(r, "ftruncate(%zu): %s", size, errno_name(errno));
		close(fd);
		fd = -1;
	}
	return fd;
}

static enum status setup_file(struct area *a, const struct mem_type *t, struct result *r)
{
	enum file_kind kind = (enum file_kind)t->arg;
	bool shared = t->props & MT_SHARED;
	size_t size = kind == FK_HUGETLB_MEMFD ? 2048 * 1024 :
		      kind == FK_HUGETLB_MEMFD_1G ? 1024 * 1024 * 1024 : page_size(), off;
	char *view, *priv;

	area_init(a, t);
	if (kind == FK_ANON_SHARED) {
		view = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	} else {
		/* The file's page and a COW copy; private: the owner's reservation too. */
		a->fd = file_open(kind, size, shared ? 2 : 3, r);
		if (a->fd < 0)
			return r->status;
		view = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	}
	if (view == MAP_FAILED) {
		area_free(a);
		return res_skip(r, "mmap(MAP_SHARED) of %zu bytes: %s", size, errno_name(errno));
	}
	area_track(a, view, size);
	pattern_fill(view, size, GEN_OLD);
	if (t->props & MT_BLOCKFS)
		fsync(a->fd);	/* clean pagecache, as a file read from disk would be */
	a->mem = view;
	a->size = size;
	if (!shared) {
		priv = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, a->fd, 0);
		if (priv == MAP_FAILED) {
			area_free(a);
			return res_skip(r, "mmap(MAP_PRIVATE) of %zu bytes: %s", size, errno_name(errno));
		}
		area_track(a, priv, size);
		/* Read-fault it: pagecache pages mapped R/O, not yet COWed. */
		for (off = 0; off < size; off += page_size())
			(void)*(volatile char *)(priv + off);
		a->alias = view;
		a->mem = priv;
	}
	if (t->props & MT_HUGETLB) {
		/* The page size the kernel maps this file with: the type's. */
		long kps = smaps_field_kb(a->mem, "KernelPageSize");

		diag("hugetlb memfd: KernelPageSize %ld kB", kps);
		if (kps != (long)(size / 1024)) {
			area_free(a);
			return res_skip(r, "the hugetlb memfd is not mapped with %zu kB pages (smaps KernelPageSize %ld)",
					size / 1024, kps);
		}
	}
	diag_pagemap(shared ? "shared mapping after fill" : "private mapping after read fault",
		     a->mem);
	return ST_PASS;
}

/* ---- special mappings --------------------------------------------------------- */

static enum status setup_two_vmas(struct area *a, const struct mem_type *t, struct result *r)
{
	size_t ps = page_size();
	char *p;
	int fd;

	area_init(a, t);
	p = map_anon_guarded(a, 2 * ps, ps);
	if (!p) {
		area_free(a);
		return res_fail(r, "mmap: %s", errno_name(errno));
	}
	if (madvise(p, ps, MADV_NOHUGEPAGE))
		diag("madvise(MADV_NOHUGEPAGE): %s (ignored)", errno_name(errno));
	fd = memfd_create("cow_tests", MFD_CLOEXEC);
	a->fd = fd;
	if (fd < 0 || ftruncate(fd, (off_t)ps) ||
	    mmap(p + ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		int err = errno;

		area_free(a);
		return res_fail(r, "memfd page after the anonymous page: %s", errno_name(err));
	}
	a->mem = p;
	a->size = 2 * ps;
	pattern_fill(p, 2 * ps, GEN_OLD);
	diag_pagemap("anonymous page (first VMA)", p);
	diag_pagemap("memfd page (second VMA)", p + ps);
	return ST_PASS;
}

static enum status setup_perf_rb(struct area *a, const struct mem_type *t, struct result *r)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_DUMMY,
		.disabled = 1,
		.exclude_kernel = 1,
		.exclude_hv = 1,
	};
	size_t size = 2 * page_size();
	void *p;

	area_init(a, t);
	a->fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (a->fd < 0)
		return res_skip(r, "perf_event_open(PERF_COUNT_SW_DUMMY): %s (perf_event_paranoid %ld)",
				errno_name(errno), read_long("/proc/sys/kernel/perf_event_paranoid"));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		area_free(a);
		return res_skip(r, "mmap of the perf ring buffer (1+1 pages): %s", errno_name(err));
	}
	area_track(a, p, size);
	/* The area is the user page alone: perf refuses write faults on the data pages
	 * (SIGBUS) on every kernel, so a buffer that includes one is refused by the write
	 * fault, whatever io_uring and GUP would say of the VMA itself. */
	a->mem = p;
	a->size = page_size();
	(void)*(volatile char *)p;
	(void)*(volatile char *)(p + page_size());
	diag_pagemap("perf ring buffer user page", p);
	return ST_PASS;
}

/* ---- the table ---------------------------------------------------------------- */

#define ANON_PRIV (MT_ANON | MT_PRIVATE)
#define ANON(name, desc, kb, variant) { name, desc, setup_anon, kb, variant, ANON_PRIV }
#define MTHP(name, kb) ANON(name, #kb " kB mTHP (one folio, PTE-mapped)", kb, V_MTHP)
/* One form of the mTHP, every size: [MEM_MTHP_16K<form>] = "mthp-16k<suffix>", ... */
#define MTHP_FORM1(form, kb, suffix, desc, variant) \
	[MEM_MTHP_##kb##K##form] = ANON("mthp-" #kb "k" suffix, #kb " kB mTHP, " desc, kb, V_MTHP | (variant))
#define MTHP_FORM(form, suffix, desc, variant) \
	MTHP_FORM1(form, 16, suffix, desc, variant), MTHP_FORM1(form, 32, suffix, desc, variant), \
	MTHP_FORM1(form, 64, suffix, desc, variant), MTHP_FORM1(form, 128, suffix, desc, variant), \
	MTHP_FORM1(form, 256, suffix, desc, variant), MTHP_FORM1(form, 512, suffix, desc, variant), \
	MTHP_FORM1(form, 1024, suffix, desc, variant)
#define FILE_TYPE(name, desc, kind, props) { name, desc, setup_file, kind, 0, props }

const struct mem_type mem_types[MEM_NKINDS] = {
	[MEM_BASE] = ANON("base", "base page", 0, 0),
	[MEM_BASE_SWAP] = ANON("base-swapped", "swapped-out base page", 0, V_SWAP),
	[MEM_THP] = ANON("thp", "PMD-mapped THP", 0, V_PMD),
	[MEM_THP_SWAP] = ANON("thp-swapped", "swapped-out THP", 0, V_PMD | V_SWAP),
	[MEM_THP_PTE] = ANON("thp-pte", "PTE-mapped THP", 0, V_PMD | V_PTE),
	[MEM_THP_PTE_SWAP] = ANON("thp-pte-swapped", "swapped-out PTE-mapped THP", 0,
				  V_PMD | V_PTE | V_SWAP),
	[MEM_THP_SINGLE] = ANON("thp-single-pte", "single PTE of a THP", 0, V_PMD | V_SINGLE),
	[MEM_THP_MREMAP] = ANON("thp-mremap", "THP whose upper half was mremap()ed (the moved half)",
				0, V_PMD | V_MREMAP),
	[MEM_THP_MREMAP_KEPT] = ANON("thp-mremap-kept",
				     "THP whose upper half was mremap()ed (the half left in place)", 0,
				     V_PMD | V_KEPT),
	[MEM_THP_PART_SHARED] = ANON("thp-partially-shared",
				     "THP whose first page was shared with an exited child (MADV_DONTFORK)",
				     0, V_PMD | V_PART_SHARED),
	[MEM_THP_SINGLE_SWAP] = ANON("thp-single-pte-swapped", "single PTE of a THP, swapped out", 0,
				     V_PMD | V_SINGLE | V_SWAP),
	[MEM_MTHP_16K] = MTHP("mthp-16k", 16),
	[MEM_MTHP_32K] = MTHP("mthp-32k", 32),
	[MEM_MTHP_64K] = MTHP("mthp-64k", 64),
	[MEM_MTHP_128K] = MTHP("mthp-128k", 128),
	[MEM_MTHP_256K] = MTHP("mthp-256k", 256),
	[MEM_MTHP_512K] = MTHP("mthp-512k", 512),
	[MEM_MTHP_1024K] = MTHP("mthp-1024k", 1024),
	MTHP_FORM(_SWAP, "-swapped", "swapped out", V_SWAP),
	MTHP_FORM(_SINGLE, "-single-pte", "single PTE of it (the rest MADV_DONTNEED)", V_SINGLE),
	MTHP_FORM(_SINGLE_SWAP, "-single-pte-swapped", "single PTE of it, swapped out", V_SINGLE | V_SWAP),
	MTHP_FORM(_MREMAP_KEPT, "-mremap-kept", "upper half mremap()ed away (the half left in place)",
		  V_KEPT),
	MTHP_FORM(_PART_SHARED, "-partially-shared",
		  "first page shared with an exited child (MADV_DONTFORK)", V_PART_SHARED),
	[MEM_HUGETLB_2M] = { "hugetlb-2m", "2 MiB hugetlb page (MAP_PRIVATE)", setup_hugetlb,
			     2048, 0, ANON_PRIV | MT_HUGETLB },
	[MEM_HUGETLB_1G] = { "hugetlb-1g", "1 GiB hugetlb page (MAP_PRIVATE)", setup_hugetlb,
			     1024 * 1024, 0, ANON_PRIV | MT_HUGETLB | MT_GIGANTIC },
	[MEM_ZEROPAGE] = { "zeropage", "shared zeropage (MAP_PRIVATE, read-faulted)",
			   setup_zeropage, 0, 0, MT_PRIVATE | MT_ZERO },
	[MEM_HUGE_ZEROPAGE] = { "huge-zeropage", "huge zeropage (MAP_PRIVATE, read-faulted)",
				setup_zeropage, 0, V_PMD, MT_PRIVATE | MT_ZERO },
	[MEM_MEMFD_PRIVATE] = FILE_TYPE("memfd-private", "memfd page mapped MAP_PRIVATE, read-faulted",
					FK_MEMFD, MT_PRIVATE | MT_FILE),
	[MEM_TMPFS_PRIVATE] = FILE_TYPE("tmpfs-private", "tmpfs file page mapped MAP_PRIVATE, read-faulted",
					FK_TMPFS, MT_PRIVATE | MT_FILE),
	[MEM_EXT4_PRIVATE] = FILE_TYPE("ext4-private", "ext4 file page mapped MAP_PRIVATE, read-faulted",
				       FK_EXT4, MT_PRIVATE | MT_FILE | MT_BLOCKFS),
	[MEM_HUGETLB_MEMFD_PRIVATE] = FILE_TYPE("hugetlb-memfd-private",
						"2 MiB hugetlb memfd page mapped MAP_PRIVATE, read-faulted",
						FK_HUGETLB_MEMFD, MT_PRIVATE | MT_FILE | MT_HUGETLB),
	[MEM_HUGETLB_MEMFD_1G_PRIVATE] = FILE_TYPE("hugetlb-memfd-1g-private",
						   "1 GiB hugetlb memfd page mapped MAP_PRIVATE, read-faulted",
						   FK_HUGETLB_MEMFD_1G,
						   MT_PRIVATE | MT_FILE | MT_HUGETLB | MT_GIGANTIC),
	[MEM_ANON_SHARED] = FILE_TYPE("anon-shared", "MAP_SHARED|MAP_ANONYMOUS page", FK_ANON_SHARED,
				      MT_SHARED),
	[MEM_MEMFD_SHARED] = FILE_TYPE("memfd-shared", "memfd page mapped MAP_SHARED", FK_MEMFD,
				       MT_SHARED | MT_FILE),
	[MEM_TMPFS_SHARED] = FILE_TYPE("tmpfs-shared", "tmpfs file page mapped MAP_SHARED", FK_TMPFS,
				       MT_SHARED | MT_FILE),
	[MEM_EXT4_SHARED] = FILE_TYPE("ext4-shared", "ext4 file page mapped MAP_SHARED", FK_EXT4,
				      MT_SHARED | MT_FILE | MT_BLOCKFS),
	[MEM_HUGETLB_MEMFD_SHARED] = FILE_TYPE("hugetlb-memfd-shared",
					       "2 MiB hugetlb memfd page mapped MAP_SHARED",
					       FK_HUGETLB_MEMFD, MT_SHARED | MT_FILE | MT_HUGETLB),
	[MEM_HUGETLB_MEMFD_1G_SHARED] = FILE_TYPE("hugetlb-memfd-1g-shared",
						  "1 GiB hugetlb memfd page mapped MAP_SHARED",
						  FK_HUGETLB_MEMFD_1G,
						  MT_SHARED | MT_FILE | MT_HUGETLB | MT_GIGANTIC),
	[MEM_BASE_RO] = ANON("base-readonly", "base page mapped PROT_READ", 0, V_RO),
	[MEM_TWO_VMAS] = { "anon-memfd-2vma", "anonymous page followed by a MAP_SHARED memfd page (two VMAs)",
			   setup_two_vmas, 0, 0, 0 },
	[MEM_PERF_RB] = { "perf-rb", "perf ring buffer user page (PERF_COUNT_SW_DUMMY, user page + 1 data page mapped R/W)",
			  setup_perf_rb, 0, 0, MT_SHARED | MT_NOPATTERN },
};
