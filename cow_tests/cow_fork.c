// SPDX-License-Identifier: GPL-2.0
/*
 * fork() COW: after fork the parent writes to the private anonymous area;
 * the child must still see the bytes it had at fork time (no leak from the
 * parent into the child). The "fork-mprotect" variant has the parent do
 * mprotect(PROT_READ) + mprotect(PROT_READ|PROT_WRITE) before writing, which
 * lets the kernel map exclusive pages writable without a fault (6.0+).
 */
#include "common.h"

#define FORK_MPROTECT 1

static enum status op_fork_child_keeps_data(struct area *a, int arg, struct result *r)
{
	bool parent_ok;
	struct peer p;
	int ret, code;

	ret = peer_fork(&p);
	if (ret < 0)
		return res_fail(r, "fork: %s", errno_name(-ret));
	if (ret == 0) {
		/* Child: wait until the parent has written, then look. */
		if (peer_send(&p, 'r') || peer_recv(&p) != 'w')
			peer_exit(&p, CHILD_ERR);
		diag_pagemap("child before reading", a->mem);
		peer_exit(&p, pattern_check("child, after the parent's write", a->mem,
					    a->size, GEN_OLD) ? CHILD_OK : CHILD_BAD);
	}

	if (peer_recv(&p) != 'r') {
		peer_wait(&p, "child");
		return res_fail(r, "child did not start");
	}
	diag_pagemap("parent after fork", a->mem);
	if ((arg & FORK_MPROTECT) && mprotect_ro_rw(a, "parent")) {
		peer_wait(&p, "child");
		return res_fail(r, "mprotect failed");
	}
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	parent_ok = pattern_check("parent, after its write", a->mem, a->size, GEN_NEW);
	if (peer_send(&p, 'w')) {
		peer_wait(&p, "child");
		return res_fail(r, "child went away before checking");
	}
	code = peer_wait(&p, "child");
	if (child_status(code, "child",
			 "child's data changed after the parent wrote (leak from parent into child)",
			 r) != ST_PASS)
		return r->status;
	if (!parent_ok)
		return res_fail(r, "parent does not read back its own write");
	return res_pass(r, "no leak from parent into child");
}

static const struct cow_op ops[] = {
	{ "fork.child-keeps-data", "fork, parent writes, child checks its data",
	  op_fork_child_keeps_data, 0, MEM(MEM_BASE) | MEM(MEM_THP) },
	{ "fork-mprotect.child-keeps-data",
	  "fork, parent mprotects RO then RW and writes, child checks its data",
	  op_fork_child_keeps_data, FORK_MPROTECT, MEM(MEM_BASE) | MEM(MEM_THP) },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
