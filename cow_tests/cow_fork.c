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
 */
#include "common.h"

#define MPROTECT 1

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
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
