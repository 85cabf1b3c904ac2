// SPDX-License-Identifier: GPL-2.0
/*
 * Long-term pins taken through the kernel's gup_test debugfs interface
 * (CONFIG_GUP_TEST, /sys/kernel/debug/gup_test), or, on kernels without it
 * (every distro kernel), through the harness's own module harness_pin
 * (cow_tests/pin_module, /sys/kernel/debug/harness_pin), which answers the
 * same ioctls. COW_PINNER says which: gup_test, module, or unset for gup_test
 * if present, else the module. With neither every case SKIPs with the reason.
 *
 * PIN_LONGTERM_TEST_START pins a range (R/O, or R/W with USE_WRITE; through
 * GUP, or GUP-fast with USE_FAST), PIN_LONGTERM_TEST_READ copies what the
 * pinned pages hold, PIN_LONGTERM_TEST_STOP unpins (6.2, c77369b437f9;
 * before, START fails with EINVAL and the case SKIPs).
 *
 * - gup[-fast]-pin-ro.cow-shared: anonymous memory COW-shared with a live
 *   child (pagemap excl=0, else SKIP), mapped R/O, R/O-pinned; then mapped
 *   R/W and written: the pin must see the write (the pin unshared the page
 *   first, 5.19), and the child keeps its data.
 * - gup[-fast]-pin-ro.{was-shared,exclusive}: anonymous memory previously
 *   shared (the child exited) / never shared, mapped R/O at the PTE level in
 *   a R/W VMA (mprotect RO, clear soft-dirty, mprotect RW; pagemap sd=0 on
 *   every page before the pin and after it, else SKIP), R/O-pinned, written:
 *   the write faults, and the fault must reuse the pinned page (it is
 *   exclusive: PageAnonExclusive, 5.19), so the pin sees the write.
 * - gup[-fast]-pin-ro.private-mapping: the same on a MAP_PRIVATE mapping of
 *   the zeropage or a file: the R/O pin must replace it by an anonymous copy
 *   (6.2, 84209e87c696) so the later write is seen.
 * - gup-pin-ro.file-update: a R/O pin of a MAP_PRIVATE file page is a
 *   snapshot: a later pwrite() to the file does not show in it, and pagemap
 *   says file=0 after the pin.
 * - gup[-fast]-longterm.{rw,ro}-pin: pinning file mappings; a writable pin of
 *   a MAP_SHARED mapping on a block filesystem (ext4) must be refused with
 *   EFAULT (6.5, 8ac268436e6d / a6e79df92e4a), everything else must work.
 * - gup-benchmark.longterm-rw-pin: PIN_LONGTERM_BENCHMARK with FOLL_WRITE on
 *   shared file mappings: on ext4 it pins nothing (size comes back 0).
 */
#define _GNU_SOURCE
#include "pinner.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Op arg bits beside pinner.h's USE_FAST and USE_WRITE. */
#define SHARE_COW	0x04	/* fork, the child stays alive */
#define SHARE_WAS	0x08	/* fork, the child exits before the pin */
#define MAP_RO		0x10	/* mprotect(PROT_READ) before the pin, RW after */
#define PTE_RO		0x20	/* before the pin: mprotect RO, clear soft-dirty, mprotect RW
				 * (the VMA is R/W, the PTEs stay R/O: the write must fault) */

/*
 * Leave the area mapped R/O at the PTE level in a R/W VMA: mprotect RO, clear
 * soft-dirty, mprotect RW. With soft-dirty tracked and clear, mprotect(RW)
 * does not map even an exclusive anonymous page writable (64fe24a3e05e maps
 * it writable directly otherwise), so the write after the pin takes the write
 * fault, and do_wp_page() has to reuse the pinned page rather than copy it.
 */
static enum status map_pte_ro(struct area *a, struct result *r)
{
	if (area_protect(a, PROT_READ, "before the pin"))
		return res_fail(r, "mprotect(PROT_READ) failed");
	if (softdirty_clear_checked(a, r) != ST_PASS)
		return r->status;
	if (area_protect(a, PROT_READ | PROT_WRITE, "before the pin"))
		return res_fail(r, "mprotect(PROT_READ|PROT_WRITE) failed");
	diag_pagemap("R/W VMA, soft-dirty clear, before the pin", a->mem);
	return area_sd_clean(a, "before the pin", r);
}

/* Pin R/O, map R/W, write, read the pin back: the pin must see the write. */
static enum status pin_then_write(int gfd, struct area *a, int arg, struct result *r)
{
	bool same = false;
	int err;

	if ((arg & PTE_RO) && map_pte_ro(a, r) != ST_PASS)
		return r->status;
	if ((arg & MAP_RO) && area_protect(a, PROT_READ, "before the pin"))
		return res_fail(r, "mprotect(PROT_READ) failed");
	err = pin_start(gfd, a, arg);
	if (err)
		return pin_start_failed(err, r);
	diag_pagemap("after the R/O pin", a->mem);
	if ((arg & MAP_RO) && area_protect(a, PROT_READ | PROT_WRITE, "after the pin")) {
		res_fail(r, "mprotect(PROT_READ|PROT_WRITE) failed");
	} else if ((arg & PTE_RO) && area_sd_clean(a, "after the R/O pin", r) != ST_PASS) {
		/* The pin itself dirtied a page (unsharing done as a write?): the write
		 * below need not fault. */
	} else {
		pattern_fill(a->mem, a->size, GEN_NEW);
		diag_pagemap("after writing through the mapping", a->mem);
		if (pin_holds(gfd, a->size, GEN_NEW, &same, r) == ST_PASS) {
			if (same)
				res_pass(r, "the long-term R/O pin sees the write through the mapping");
			else
				res_fail(r, "the long-term R/O pin does not see the write through the mapping (stale pin)");
		}
	}
	pin_stop(gfd);
	return r->status;
}

static enum status op_pin_ro(struct area *a, int arg, struct result *r)
{
	struct twin t = { .p = { .pid = 0 } };
	int gfd = pinner_open(r);

	if (gfd < 0)
		return r->status;
	if ((arg & (SHARE_COW | SHARE_WAS)) && twin_start(&t, a, -1, -1)) {
		close(gfd);
		return res_fail(r, "fork failed");
	}
	if (arg & SHARE_WAS)
		twin_end(&t);
	if ((arg & SHARE_COW) && (diag_pagemap("parent after fork (child alive)", a->mem) & PM_EXCLUSIVE)) {
		res_skip(r, "the page is not COW-shared after fork (pagemap excl=1 with the child alive): nothing to unshare");
	} else if (pin_then_write(gfd, a, arg, r) == ST_PASS && (arg & SHARE_COW))
		twin_expect(&t, TW_HOLDS_OLD,
			    "child's data changed after the parent wrote (leak from parent into child)", r);
	if (arg & SHARE_COW)
		twin_end(&t);
	close(gfd);
	return r->status;
}

static enum status judge_snapshot(bool pin_kept_old, uint64_t pagemap_after_pin, struct result *r)
{
	if (!pin_kept_old)
		return res_fail(r, "the R/O pin of the MAP_PRIVATE page follows the file (it pinned the pagecache page)");
	if (pagemap_after_pin & PM_FILE)
		return res_fail(r, "the pin kept the snapshot, but pagemap still says file=1 after the pin");
	return res_pass(r, "the R/O pin holds the MAP_PRIVATE snapshot (file=0 after the pin)");
}

static enum status op_pin_file_update(struct area *a, int arg, struct result *r)
{
	bool same = false;
	uint64_t e;
	char *buf;
	int gfd = pinner_open(r), err;

	(void)arg;
	if (gfd < 0)
		return r->status;
	err = pin_start(gfd, a, 0);
	if (err) {
		pin_start_failed(err, r);
		goto out;
	}
	e = diag_pagemap("after the R/O pin", a->mem);
	buf = malloc(a->size);
	pattern_fill(buf, a->size, GEN_NEW);
	err = buf ? pwrite_full(a->fd, buf, a->size, 0) : -ENOMEM;
	free(buf);
	diag("pwrite of the new pattern to the file = %s", ret_name(err));
	if (err)
		res_fail(r, "pwrite to the file: %s", errno_name(-err));
	else if (pin_holds(gfd, a->size, a->old, &same, r) == ST_PASS)
		judge_snapshot(same, e, r);
	pin_stop(gfd);
out:
	close(gfd);
	return r->status;
}

static enum status op_longterm(struct area *a, int arg, struct result *r)
{
	bool refuse = (arg & USE_WRITE) && (a->type->props & MT_SHARED) &&
		      (a->type->props & MT_BLOCKFS);
	bool same = false;
	int gfd = pinner_open(r), err;

	if (gfd < 0)
		return r->status;
	if (!(arg & USE_WRITE) && area_protect(a, PROT_READ, "before the pin")) {
		close(gfd);
		return res_fail(r, "mprotect(PROT_READ) failed");
	}
	err = pin_start(gfd, a, arg);
	if (err == -EINVAL || (err && !refuse))
		pin_start_failed(err, r);
	else if (refuse && err == -EFAULT)
		res_pass(r, "refused with EFAULT: no writable long-term pin of a dirty-tracked shared file mapping");
	else if (refuse)
		res_fail(r, "writable long-term pin of an ext4 MAP_SHARED page: %s, expected EFAULT",
			 err ? errno_name(-err) : "granted");
	else if (pin_holds(gfd, a->size, a->old, &same, r) == ST_PASS)
		same ? res_pass(r, "pinned; the pin holds the mapping's content") :
		       res_fail(r, "pinned, but the pinned pages do not hold the mapping's content");
	if (!err)
		pin_stop(gfd);
	close(gfd);
	return r->status;
}

static enum status op_benchmark(struct area *a, int arg, struct result *r)
{
	struct gup_test g = {
		.addr = (uintptr_t)a->mem,
		.size = a->size,
		.nr_pages_per_call = (uint32_t)(a->size / page_size()),
		.gup_flags = GUP_FOLL_WRITE,
	};
	bool refuse = a->type->props & MT_BLOCKFS;
	int gfd = pinner_open(r), err;

	(void)arg;
	if (gfd < 0)
		return r->status;
	err = ioctl(gfd, PIN_LONGTERM_BENCHMARK, &g) ? -errno : 0;
	close(gfd);
	diag("PIN_LONGTERM_BENCHMARK(FOLL_WRITE, %zu bytes) = %s, size after %llu", a->size,
	     ret_name(err), (unsigned long long)g.size);
	if (err && !(refuse && err == -EFAULT))
		return res_fail(r, "PIN_LONGTERM_BENCHMARK: %s", errno_name(-err));
	if (refuse)
		return err || g.size == 0 ? res_pass(r, "nothing pinned: refused") :
		       res_fail(r, "%llu bytes pinned writable long-term, expected a refusal (size 0)",
				(unsigned long long)g.size);
	return g.size == a->size ? res_pass(r, "all %zu bytes pinned", a->size) :
	       res_fail(r, "only %llu of %zu bytes pinned", (unsigned long long)g.size, a->size);
}

#define MEMS_PIN_FILE (MEMS_FILE_PRIVATE | MEMS_FILE_SHARED)
#define MEMS_PWRITABLE_PRIVATE (MEM(MEM_MEMFD_PRIVATE) | MEM(MEM_TMPFS_PRIVATE) | MEM(MEM_EXT4_PRIVATE))
#define GUP_OP(id, text, fn, a, m) \
	{ .name = id, .desc = text, .run = fn, .arg = a, .mems = m, .need = need_pinner }

static const struct cow_op ops[] = {
	GUP_OP("gup-pin-ro.cow-shared", "R/O long-term pin (GUP) of a R/O-mapped page shared with a live child, then write",
	       op_pin_ro, SHARE_COW | MAP_RO, MEMS_ANON),
	GUP_OP("gup-pin-ro.was-shared", "R/O long-term pin (GUP) of a previously shared page with R/O PTEs (soft-dirty clear), then a faulting write",
	       op_pin_ro, SHARE_WAS | PTE_RO, MEMS_ANON),
	GUP_OP("gup-pin-ro.exclusive", "R/O long-term pin (GUP) of an exclusive page with R/O PTEs (soft-dirty clear), then a faulting write",
	       op_pin_ro, PTE_RO, MEMS_ANON),
	GUP_OP("gup-fast-pin-ro.cow-shared", "R/O long-term pin (GUP-fast) of a R/O-mapped page shared with a live child, then write",
	       op_pin_ro, USE_FAST | SHARE_COW | MAP_RO, MEMS_ANON),
	GUP_OP("gup-fast-pin-ro.was-shared", "R/O long-term pin (GUP-fast) of a previously shared page with R/O PTEs (soft-dirty clear), then a faulting write",
	       op_pin_ro, USE_FAST | SHARE_WAS | PTE_RO, MEMS_ANON),
	GUP_OP("gup-fast-pin-ro.exclusive", "R/O long-term pin (GUP-fast) of an exclusive page with R/O PTEs (soft-dirty clear), then a faulting write",
	       op_pin_ro, USE_FAST | PTE_RO, MEMS_ANON),
	GUP_OP("gup-pin-ro.private-mapping", "R/O long-term pin (GUP) of a MAP_PRIVATE non-anonymous page, then write",
	       op_pin_ro, 0, MEMS_NONANON_PRIVATE),
	GUP_OP("gup-fast-pin-ro.private-mapping", "R/O long-term pin (GUP-fast) of a MAP_PRIVATE non-anonymous page, then write",
	       op_pin_ro, USE_FAST, MEMS_NONANON_PRIVATE),
	GUP_OP("gup-pin-ro.file-update", "R/O long-term pin of a MAP_PRIVATE file page, then pwrite to the file",
	       op_pin_file_update, 0, MEMS_PWRITABLE_PRIVATE),
	GUP_OP("gup-longterm.rw-pin", "R/W long-term pin (GUP) of a file mapping",
	       op_longterm, USE_WRITE, MEMS_PIN_FILE),
	GUP_OP("gup-longterm.ro-pin", "R/O long-term pin (GUP) of a R/O file mapping",
	       op_longterm, 0, MEMS_PIN_FILE),
	GUP_OP("gup-fast-longterm.rw-pin", "R/W long-term pin (GUP-fast) of a file mapping",
	       op_longterm, USE_WRITE | USE_FAST, MEMS_PIN_FILE),
	GUP_OP("gup-fast-longterm.ro-pin", "R/O long-term pin (GUP-fast) of a R/O file mapping",
	       op_longterm, USE_FAST, MEMS_PIN_FILE),
	GUP_OP("gup-benchmark.longterm-rw-pin", "PIN_LONGTERM_BENCHMARK with FOLL_WRITE of a shared file mapping",
	       op_benchmark, 0, MEMS_FILE_SHARED),
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
