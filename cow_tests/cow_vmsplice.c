// SPDX-License-Identifier: GPL-2.0
/*
 * vmsplice() takes a plain page reference (no pin) on the pages it puts into
 * a pipe. Whoever still maps a page after the other side unmapped it must
 * not write into the spliced page in place (CVE-2020-29374 class): the pipe
 * must yield the data from splice time.
 *
 * - unmap-in-child: fork, the child vmsplices and unmaps, the parent writes
 *   (vmsplice-mprotect: after mprotect RO then RW), the child reads the pipe.
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

#define MPROTECT 1
#define BEFORE_FORK 2

static enum status op_splice_in_child(struct area *a, int arg, struct result *r)
{
	struct twin t;
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC))
		return res_fail(r, "pipe: %s", errno_name(errno));
	if (twin_start(&t, a, pfd[0], pfd[1])) {
		res_fail(r, "fork failed");
		goto out;
	}
	if (twin_expect(&t, TW_SPLICE_UNMAP, "", r) != ST_PASS) {
		res_fail(r, "child could not vmsplice and unmap");
		goto end;
	}
	diag_pagemap("parent before its write", a->mem);
	if ((arg & MPROTECT) && mprotect_ro_rw(a, "parent")) {
		res_fail(r, "mprotect failed");
		goto end;
	}
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	if (twin_expect(&t, TW_PIPE_HOLDS_OLD,
			"pipe yields the parent's write, not the data spliced before it (leak)",
			r) == ST_PASS)
		res_pass(r, "pipe still yields the data from before the parent's write");
end:
	twin_end(&t);
out:
	close(pfd[0]);
	close(pfd[1]);
	return r->status;
}

static enum status op_splice_in_parent(struct area *a, int arg, struct result *r)
{
	ssize_t n = -1;
	struct twin t;
	size_t cap;
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC))
		return res_fail(r, "pipe: %s", errno_name(errno));
	cap = pipe_grow(pfd[1], a->size);
	if (cap > a->size)
		cap = a->size;
	if (arg & BEFORE_FORK)
		n = splice_in(pfd[1], a->mem, cap, "parent, before fork");
	if (twin_start(&t, a, -1, -1)) {
		res_fail(r, "fork failed");
		goto out;
	}
	if (!(arg & BEFORE_FORK))
		n = splice_in(pfd[1], a->mem, cap, "parent, after fork");
	if (n <= 0 || area_unmap(a, "parent")) {
		res_fail(r, "parent could not vmsplice and unmap");
		goto end;
	}
	if (twin_expect(&t, TW_WRITE, "", r) != ST_PASS)
		goto end;
	if (pipe_holds(pfd[0], (size_t)n, a->old, "parent, pipe content after the child's write"))
		res_pass(r, "pipe still yields the data from before the child's write");
	else
		res_fail(r, "pipe yields the child's write, not the data spliced before it (leak from child into parent)");
end:
	twin_end(&t);
out:
	close(pfd[0]);
	close(pfd[1]);
	return r->status;
}

static const struct cow_op ops[] = {
	{ .name = "vmsplice.unmap-in-child",
	  .desc = "fork, child vmsplices into a pipe and unmaps, parent writes, child reads the pipe",
	  .run = op_splice_in_child, .mems = MEMS_ANON },
	{ .name = "vmsplice-mprotect.unmap-in-child",
	  .desc = "as vmsplice.unmap-in-child, the parent mprotects RO then RW before writing",
	  .run = op_splice_in_child, .arg = MPROTECT, .mems = MEMS_ANON },
	{ .name = "vmsplice-before-fork.unmap-in-parent",
	  .desc = "parent vmsplices, forks, unmaps; child writes; parent reads the pipe",
	  .run = op_splice_in_parent, .arg = BEFORE_FORK, .mems = MEMS_ANON },
	{ .name = "vmsplice-after-fork.unmap-in-parent",
	  .desc = "fork; parent vmsplices and unmaps; child writes; parent reads the pipe",
	  .run = op_splice_in_parent, .mems = MEMS_ANON },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
