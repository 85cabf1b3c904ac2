// SPDX-License-Identifier: GPL-2.0
/*
 * fork() and COW, on every private memory type (anonymous, zeropage, file
 * pages in MAP_PRIVATE mappings) and, for contrast, on MAP_SHARED memory.
 *
 * - child-keeps-data: after fork the parent writes; the child (the twin)
 *   must still see what it had at fork time. The "fork-mprotect" variant
 *   has the writer do mprotect(PROT_READ) + mprotect(PROT_READ|PROT_WRITE)
 *   first, which lets the kernel map exclusive pages writable without a
 *   fault (6.0+): it must not do that for pages still shared.
 * - parent-keeps-data: the same with the roles swapped.
 * - private-write.other-mapping-unchanged: a write through a MAP_PRIVATE
 *   mapping must not reach the file or another mapping of the same page.
 * - fork.shared-write-visible: MAP_SHARED memory stays shared after fork.
 * - collapse.*: a PTE-mapped THP turned back into a PMD-mapped one by
 *   MADV_COLLAPSE (6.1) before fork, or after fork while all of it / only
 *   its lower half / only its upper half is COW-shared with the child (the
 *   other half MADV_DONTFORK at fork, MADV_DOFORK again before the collapse
 *   so that one VMA covers the PMD). Then the parent writes everything: the
 *   child must keep what it had, the parent must read its own write. The
 *   collapse must show as AnonHugePages covering the area, else SKIP.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <sys/mman.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define MPROTECT 1

/* collapse.* variants (op arg): when the collapse happens, what the child shares. */
enum { COLLAPSE_BEFORE_FORK, COLLAPSE_SHARED, COLLAPSE_LOWER_SHARED, COLLAPSE_UPPER_SHARED };

/* The parent [mprotects and] writes; the child must keep its data. */
static enum status parent_writes(struct twin *t, void *ctx, struct result *r)
{
	struct area *a = t->a;
	bool parent_ok;

	diag_pagemap("parent after fork", a->mem);
	if ((*(int *)ctx & MPROTECT) && mprotect_ro_rw(a, "parent"))
		return res_fail(r, "mprotect failed");
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	parent_ok = pattern_check("parent, after its write", a->mem, a->size, GEN_NEW);
	if (twin_expect(t, TW_HOLDS_OLD,
			"child's data changed after the parent wrote (leak from parent into child)",
			r) != ST_PASS)
		return r->status;
	return parent_ok ? res_pass(r, "no leak from parent into child") :
			   res_fail(r, "parent does not read back its own write");
}

/* The child [mprotects and] writes; the parent must keep its data. */
static enum status child_writes(struct twin *t, void *ctx, struct result *r)
{
	struct area *a = t->a;

	if (twin_expect(t, (*(int *)ctx & MPROTECT) ? TW_MPROTECT_WRITE : TW_WRITE, "", r) != ST_PASS)
		return r->status;
	diag_pagemap("parent after the child's write", a->mem);
	return area_holds_old("parent, after the child's write", a) ?
	       res_pass(r, "no leak from child into parent") :
	       res_fail(r, "parent's data changed after the child wrote (leak from child into parent)");
}

/* MAP_SHARED: the parent writes, the child must see it. */
static enum status shared_write(struct twin *t, void *ctx, struct result *r)
{
	(void)ctx;
	pattern_fill(t->a->mem, t->a->size, GEN_NEW);
	diag_pagemap("parent after its write", t->a->mem);
	if (twin_expect(t, TW_HOLDS_NEW,
			"the child does not see the parent's write to the MAP_SHARED memory", r) != ST_PASS)
		return r->status;
	return res_pass(r, "the parent's write is visible in the child (MAP_SHARED)");
}

static enum status op_parent_writes(struct area *a, int arg, struct result *r)
{
	return with_twin(a, -1, -1, parent_writes, &arg, r);
}

static enum status op_child_writes(struct area *a, int arg, struct result *r)
{
	return with_twin(a, -1, -1, child_writes, &arg, r);
}

static enum status op_shared_write(struct area *a, int arg, struct result *r)
{
	return with_twin(a, -1, -1, shared_write, &arg, r);
}

static enum status op_private_write(struct area *a, int arg, struct result *r)
{
	const char *leak;

	(void)arg;
	diag_pagemap("private mapping before the write", a->mem);
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("private mapping after the write", a->mem);
	if (!pattern_check("private mapping, after the write", a->mem, a->size, GEN_NEW))
		return res_fail(r, "the private mapping does not read back its own write");
	leak = private_write_leaked(a);
	if (leak)
		return res_fail(r, "%s", leak);
	return res_pass(r, "the write stayed private (other mapping and file unchanged)");
}

/* The part of the area the child shares (set before the twin forks; the twin checks it). */
static size_t shared_off, shared_len;

static int twin_checks_shared_part(struct twin *t, int cmd)
{
	(void)cmd;
	return pattern_check_at("twin, its shared part", t->a->mem + shared_off, shared_len,
				shared_off, t->a->old) ? CHILD_OK : CHILD_BAD;
}

/* MADV_COLLAPSE the area; ST_PASS if it is PMD-mapped afterwards, else SKIP saying why. */
static enum status collapse(struct area *a, const char *when, struct result *r)
{
	long ahp_kb;
	int ret = madvise(a->mem, a->size, MADV_COLLAPSE) ? errno : 0;

	ahp_kb = smaps_field_kb(a->mem, "AnonHugePages");
	diag("madvise(MADV_COLLAPSE) %s = %s; AnonHugePages %ld kB", when, errno_name(ret), ahp_kb);
	if (ret)
		return res_skip(r, "MADV_COLLAPSE %s failed: %s", when, errno_name(ret));
	if (ahp_kb < 0 || (size_t)ahp_kb * 1024 < a->size)
		return res_skip(r, "MADV_COLLAPSE %s returned 0 but the area is not PMD-mapped (AnonHugePages %ld kB)",
				when, ahp_kb);
	return ST_PASS;
}

static enum status op_collapse(struct area *a, int arg, struct result *r)
{
	size_t half = a->size / 2;
	char *unshared = arg == COLLAPSE_LOWER_SHARED ? a->mem + half : a->mem;
	bool partly = arg == COLLAPSE_LOWER_SHARED || arg == COLLAPSE_UPPER_SHARED;
	struct twin t;
	bool parent_ok;
	int err;

	if (arg == COLLAPSE_BEFORE_FORK && collapse(a, "before fork", r) != ST_PASS)
		return r->status;
	shared_off = arg == COLLAPSE_UPPER_SHARED ? half : 0;
	shared_len = partly ? half : a->size;
	if (partly && madvise(unshared, half, MADV_DONTFORK))
		return res_fail(r, "madvise(MADV_DONTFORK) of the %s half: %s",
				arg == COLLAPSE_LOWER_SHARED ? "upper" : "lower", errno_name(errno));
	twin_hook = twin_checks_shared_part;
	err = twin_start(&t, a, -1, -1);
	if (err)
		return res_fail(r, "fork: %s", errno_name(-err));
	diag("child shares %zu kB at offset %zu kB", shared_len / 1024, shared_off / 1024);
	if (partly && madvise(unshared, half, MADV_DOFORK)) {
		res_fail(r, "madvise(MADV_DOFORK): %s", errno_name(errno));
		goto out;
	}
	diag_pagemap("parent's first page after fork", a->mem);
	diag_pagemap("parent's last page after fork", a->mem + a->size - page_size());
	if (arg != COLLAPSE_BEFORE_FORK && collapse(a, "after fork", r) != ST_PASS)
		goto out;
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	parent_ok = pattern_check("parent, after its write", a->mem, a->size, GEN_NEW);
	if (twin_expect(&t, TW_HOOK_A,
			"child's data changed after the parent wrote (leak from parent into child)",
			r) != ST_PASS)
		goto out;
	if (parent_ok)
		res_pass(r, "no leak from parent into child; the parent reads its own write");
	else
		res_fail(r, "parent does not read back its own write");
out:
	twin_end(&t);
	return r->status;
}

static const struct cow_op ops[] = {
	{ .name = "fork.child-keeps-data", .desc = "fork, parent writes, child checks its data",
	  .run = op_parent_writes, .mems = MEMS_PRIVATE },
	{ .name = "fork-mprotect.child-keeps-data",
	  .desc = "fork, parent mprotects RO then RW and writes, child checks its data",
	  .run = op_parent_writes, .arg = MPROTECT, .mems = MEMS_PRIVATE },
	{ .name = "fork.parent-keeps-data", .desc = "fork, child writes, parent checks its data",
	  .run = op_child_writes, .mems = MEMS_PRIVATE },
	{ .name = "fork-mprotect.parent-keeps-data",
	  .desc = "fork, child mprotects RO then RW and writes, parent checks its data",
	  .run = op_child_writes, .arg = MPROTECT, .mems = MEMS_PRIVATE },
	{ .name = "private-write.other-mapping-unchanged",
	  .desc = "write through the MAP_PRIVATE mapping, the file and other mappings keep their data",
	  .run = op_private_write, .mems = MEMS_NONANON_PRIVATE },
	{ .name = "fork.shared-write-visible",
	  .desc = "fork, parent writes to MAP_SHARED memory, child sees the write",
	  .run = op_shared_write, .mems = MEMS_SHARED },
	{ .name = "collapse.before-fork", .desc = "MADV_COLLAPSE the PTE-mapped THP, fork, parent writes, child checks its data",
	  .run = op_collapse, .arg = COLLAPSE_BEFORE_FORK, .mems = MEM(MEM_THP_PTE) },
	{ .name = "collapse.after-fork-shared",
	  .desc = "fork, MADV_COLLAPSE the fully COW-shared PTE-mapped THP, parent writes, child checks its data",
	  .run = op_collapse, .arg = COLLAPSE_SHARED, .mems = MEM(MEM_THP_PTE) },
	{ .name = "collapse.after-fork-lower-shared",
	  .desc = "fork sharing the lower half, MADV_COLLAPSE, parent writes, child checks its half",
	  .run = op_collapse, .arg = COLLAPSE_LOWER_SHARED, .mems = MEM(MEM_THP_PTE) },
	{ .name = "collapse.after-fork-upper-shared",
	  .desc = "fork sharing the upper half, MADV_COLLAPSE, parent writes, child checks its half",
	  .run = op_collapse, .arg = COLLAPSE_UPPER_SHARED, .mems = MEM(MEM_THP_PTE) },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
