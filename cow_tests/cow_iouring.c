// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring fixed buffers are R/W long-term pins. Whatever the process does
 * to its mapping afterwards (mprotect, soft-dirty clearing, fork), a write
 * through the mapping must land in the pinned page: IORING_OP_WRITE_FIXED of
 * the buffer to a file then stores the new data. A stale pin would store the
 * old data.
 *
 * - mprotect-ro-rw: register, mprotect RO, clear soft-dirty, mprotect RW,
 *   write through the mapping. With the soft-dirty bits clear mprotect(RW)
 *   leaves the pages write-protected, so the write takes the write fault
 *   (do_wp_page) that must reuse the pinned page; the case SKIPs when it
 *   cannot establish that (soft-dirty not tracked, clear_refs refused, or a
 *   page still soft-dirty after mprotect RW).
 * - fork-while-registered: register, fork (child alive), parent writes; the
 *   child must keep its data too.
 * - write-private-mapping: register a MAP_PRIVATE mapping of the zeropage or
 *   of a file (the write pin breaks COW at registration), write through the
 *   mapping: the pin sees it, the file and other mappings do not.
 *
 * Where io_uring refuses to register a file-backed buffer with EOPNOTSUPP
 * (its own check before 6.5) the case SKIPs; the registration result itself
 * is judged by cow_register.
 */
#define _GNU_SOURCE
#include "uring.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* The scratch file and the ring with the area registered, or SKIP/FAIL in r. */
static enum status prepare(struct io_uring *ring, struct area *a, int *fd, struct result *r)
{
	int ret;

	*fd = scratch_file(r);
	if (*fd < 0)
		return r->status;
	if (ring_open(ring, r) != ST_PASS) {
		close(*fd);
		return r->status;
	}
	ret = ring_register(ring, a->mem, a->size);
	if (ret == 0)
		return ST_PASS;
	io_uring_queue_exit(ring);
	close(*fd);
	if (ret == -ENOMEM)
		return res_skip(r, "io_uring_register_buffers: ENOMEM (RLIMIT_MEMLOCK too small?)");
	if (ret == -EOPNOTSUPP && (a->type->props & MT_FILE))
		return res_skip(r, "io_uring refuses this file-backed buffer with EOPNOTSUPP (its own check, before 6.5); judged by cow.iouring-register-ok.%s",
				a->type->name);
	return res_fail(r, "io_uring_register_buffers: %s", errno_name(-ret));
}

/* A registered fixed buffer and the file WRITE_FIXED stores it into. */
struct pinned {
	struct io_uring ring;
	int fd;
};

typedef enum status (*pinned_body)(struct pinned *p, struct area *a, struct result *r);

/* Register the area, run body, unregister. */
static enum status with_pin(struct area *a, pinned_body body, struct result *r)
{
	struct pinned p;

	if (prepare(&p.ring, a, &p.fd, r) != ST_PASS)
		return r->status;
	diag_pagemap("after register", a->mem);
	body(&p, a, r);
	io_uring_queue_exit(&p.ring);
	close(p.fd);
	return r->status;
}

/* Write GEN_NEW through the mapping and check the pinned buffer holds it. */
static enum status write_reaches_pin(struct pinned *p, struct area *a, const char *stale_msg,
				     struct result *r)
{
	bool same = false;

	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("after writing through the mapping", a->mem);
	if (fixed_buffer_holds(&p->ring, a->mem, a->size, p->fd, GEN_NEW, &same, r) != ST_PASS)
		return r->status;
	if (!same)
		return res_fail(r, "%s", stale_msg);
	return res_pass(r, "the long-term R/W pin sees the write through the mapping");
}

static enum status mprotect_then_write(struct pinned *p, struct area *a, struct result *r)
{
	if (area_protect(a, PROT_READ, "pinned area"))
		return res_fail(r, "mprotect(PROT_READ) failed");
	/* Without clean soft-dirty bits mprotect(RW) may map the pages writable and the
	 * write below would never fault: that is not the case this tests. */
	if (softdirty_clear_checked(a, r) != ST_PASS)
		return r->status;
	diag_pagemap("after mprotect(PROT_READ) and clear_refs", a->mem);
	if (area_protect(a, PROT_READ | PROT_WRITE, "pinned area"))
		return res_fail(r, "mprotect(PROT_READ|PROT_WRITE) failed");
	diag_pagemap("after mprotect(PROT_READ|PROT_WRITE)", a->mem);
	if (area_sd_clean(a, "after mprotect(PROT_READ|PROT_WRITE)", r) != ST_PASS)
		return r->status;
	return write_reaches_pin(p, a,
				 "the pinned buffer does not hold what was written through the mapping (stale pin)",
				 r);
}

/* In the parent, the twin alive: write, the pin sees it, the twin keeps its data. */
static enum status parent_writes_pinned(struct twin *t, void *ctx, struct result *r)
{
	diag_pagemap("parent after fork", t->a->mem);
	if (write_reaches_pin(ctx, t->a, "the pinned buffer does not hold the parent's write (pin lost at fork)",
			      r) != ST_PASS)
		return r->status;
	if (twin_expect(t, TW_HOLDS_OLD,
			"child's data changed after the parent wrote (leak from parent into child)",
			r) != ST_PASS)
		return r->status;
	return res_pass(r, "the pin sees the parent's write and the child keeps its data");
}

static enum status fork_then_write(struct pinned *p, struct area *a, struct result *r)
{
	return with_twin(a, -1, -1, parent_writes_pinned, p, r);
}

static enum status private_write(struct pinned *p, struct area *a, struct result *r)
{
	const char *leak;

	if (write_reaches_pin(p, a,
			      "the pinned buffer does not hold the write through the private mapping (stale pin)",
			      r) != ST_PASS)
		return r->status;
	leak = private_write_leaked(a);
	if (leak)
		return res_fail(r, "%s", leak);
	return res_pass(r, "the pin sees the private write; the file and other mappings do not");
}

static enum status op_mprotect_ro_rw(struct area *a, int arg, struct result *r)
{
	(void)arg;
	return with_pin(a, mprotect_then_write, r);
}

static enum status op_fork_while_registered(struct area *a, int arg, struct result *r)
{
	(void)arg;
	return with_pin(a, fork_then_write, r);
}

static enum status op_write_private_mapping(struct area *a, int arg, struct result *r)
{
	(void)arg;
	return with_pin(a, private_write, r);
}

#define MEMS_SHARED_PINNABLE (MEMS_SHARED & ~MEM(MEM_EXT4_SHARED))

static const struct cow_op ops[] = {
	{ .name = "iouring.mprotect-ro-rw",
	  .desc = "io_uring fixed buffer, mprotect RO, clear soft-dirty, mprotect RW, write, WRITE_FIXED",
	  .run = op_mprotect_ro_rw, .mems = MEMS_ANON | MEMS_SHARED_PINNABLE },
	{ .name = "iouring.fork-while-registered",
	  .desc = "io_uring fixed buffer, fork (child alive), parent writes, WRITE_FIXED",
	  .run = op_fork_while_registered, .mems = MEMS_ANON },
	{ .name = "iouring.write-private-mapping",
	  .desc = "io_uring fixed buffer on a MAP_PRIVATE non-anonymous mapping, write, WRITE_FIXED",
	  .run = op_write_private_mapping, .mems = MEMS_NONANON_PRIVATE },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
