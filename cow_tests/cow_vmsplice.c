// SPDX-License-Identifier: GPL-2.0
/*
 * vmsplice() takes a plain page reference (no pin) on the pages it puts into
 * a pipe. Whoever still maps a page after the other side unmapped it must
 * not write into the spliced page in place (CVE-2020-29374 class): the pipe
 * must yield the data from splice time.
 *
 * - unmap-in-child: fork, the child vmsplices and unmaps, the parent writes
 *   (vmsplice-mprotect: after mprotect RO then RW), the child reads the pipe.
 *
 * The whole area goes into the pipes (several for a 1 GiB page: one pipe holds
 * at most 256 MiB); when they cannot hold it, or vmsplice takes only part of
 * it, the case SKIPs rather than test part of the area.
 * - vmsplice-before-fork / -after-fork .unmap-in-parent: the parent
 *   vmsplices (before or after fork) and unmaps, the child writes, the
 *   parent reads the pipe.
 *
 * hugetlb still leaks on every kernel (COW reuse by mapcount): expected fail.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define MPROTECT 1	/* the writer mprotects RO then RW first */
#define IN_PARENT 2	/* the parent splices and unmaps, the child writes */
#define BEFORE_FORK 4	/* the parent splices before fork */

struct splice_ctx {
	int arg;
	struct pipeset ps;	/* enough pipes for the whole area */
	ssize_t spliced;	/* bytes the parent put into the pipes */
};

/* The child splices and unmaps; the parent [mprotects and] writes; the child reads the pipes. */
static enum status child_splices(struct twin *t, void *ctx, struct result *r)
{
	struct splice_ctx *c = ctx;
	struct area *a = t->a;
	int got = twin_do(t, TW_SPLICE_UNMAP);

	if (got == CHILD_SKIP)
		return res_skip(r, "the child's vmsplice took only part of the area (see the twin's diagnostics)");
	if (got != CHILD_OK)
		return res_fail(r, "child could not vmsplice and unmap");
	diag_pagemap("parent before its write", a->mem);
	if ((c->arg & MPROTECT) && mprotect_ro_rw(a, "parent"))
		return res_fail(r, "mprotect failed");
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	if (twin_expect(t, TW_PIPE_HOLDS_OLD,
			"pipe yields the parent's write, not the data spliced before it (leak)",
			r) != ST_PASS)
		return r->status;
	return res_pass(r, "pipe still yields the data from before the parent's write");
}

/* The parent splices (before fork: already done) and unmaps; the child writes; the parent reads the pipes. */
static enum status parent_splices(struct twin *t, void *ctx, struct result *r)
{
	struct splice_ctx *c = ctx;
	struct area *a = t->a;

	if (!(c->arg & BEFORE_FORK))
		c->spliced = pipeset_splice(&c->ps, a->mem, a->size, "parent, after fork");
	if (c->spliced > 0 && (size_t)c->spliced < a->size)
		return res_skip(r, "the parent's vmsplice took only %zd of the area's %zu bytes", c->spliced,
				a->size);
	if (c->spliced <= 0 || area_unmap(a, "parent"))
		return res_fail(r, "parent could not vmsplice and unmap");
	if (twin_expect(t, TW_WRITE, "", r) != ST_PASS)
		return r->status;
	if (!pipeset_holds(&c->ps, a->old, "parent, pipe content after the child's write"))
		return res_fail(r, "pipe yields the child's write, not the data spliced before it (leak from child into parent)");
	return res_pass(r, "pipe still yields the data from before the child's write");
}

static enum status op_splice(struct area *a, int arg, struct result *r)
{
	struct splice_ctx c = { .arg = arg, .spliced = -1 };

	if (pipeset_open(&c.ps, a->size, r) != ST_PASS) {
		pipeset_close(&c.ps);
		return r->status;
	}
	if (arg & IN_PARENT) {
		if (arg & BEFORE_FORK)
			c.spliced = pipeset_splice(&c.ps, a->mem, a->size, "parent, before fork");
		with_twin(a, -1, -1, parent_splices, &c, r);
	} else {
		/* The child splices into the same pipes. */
		with_twin_pipes(a, &c.ps, child_splices, &c, r);
	}
	pipeset_close(&c.ps);
	return r->status;
}

static const struct cow_op ops[] = {
	{ .name = "vmsplice.unmap-in-child",
	  .desc = "fork, child vmsplices into a pipe and unmaps, parent writes, child reads the pipe",
	  .run = op_splice, .mems = MEMS_ANON },
	{ .name = "vmsplice-mprotect.unmap-in-child",
	  .desc = "as vmsplice.unmap-in-child, the parent mprotects RO then RW before writing",
	  .run = op_splice, .arg = MPROTECT, .mems = MEMS_ANON },
	{ .name = "vmsplice-before-fork.unmap-in-parent",
	  .desc = "parent vmsplices, forks, unmaps; child writes; parent reads the pipe",
	  .run = op_splice, .arg = IN_PARENT | BEFORE_FORK, .mems = MEMS_ANON },
	{ .name = "vmsplice-after-fork.unmap-in-parent",
	  .desc = "fork; parent vmsplices and unmaps; child writes; parent reads the pipe",
	  .run = op_splice, .arg = IN_PARENT, .mems = MEMS_ANON },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
