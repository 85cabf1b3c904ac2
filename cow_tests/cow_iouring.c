// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring fixed buffers are R/W long-term pins (FOLL_WRITE|FOLL_PIN|
 * FOLL_LONGTERM). Whatever the process does to its mapping afterwards
 * (mprotect, soft-dirty clearing, fork), a write through the mapping must
 * land in the pinned page: IORING_OP_WRITE_FIXED of the buffer to a file then
 * stores the new data. A stale pin would store the old data.
 *
 * liburing 2.3 returns -errno and leaves errno alone: check return values.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * Without CAP_IPC_LOCK, registered buffers count against RLIMIT_MEMLOCK
 * (8 MiB by default). Raise the soft limit as far as we are allowed.
 */
static void memlock_allow(size_t len)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= 2 * len || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0)
		diag("RLIMIT_MEMLOCK soft limit raised to the hard limit");
}

/* Ring with the area registered as fixed buffer 0. */
static enum status ring_register(struct io_uring *ring, struct area *a, struct result *r)
{
	struct iovec iov = { .iov_base = a->mem, .iov_len = a->size };
	struct rlimit rl = { 0, 0 };
	int ret;

	memlock_allow(a->size);
	ret = io_uring_queue_init(4, ring, 0);
	if (ret < 0)
		return res_skip(r, "io_uring not available: io_uring_queue_init: %s",
				errno_name(-ret));
	ret = io_uring_register_buffers(ring, &iov, 1);
	diag("io_uring_register_buffers(%zu bytes) = %d%s%s", a->size, ret,
	     ret < 0 ? " " : "", ret < 0 ? errno_name(-ret) : "");
	if (ret == 0)
		return ST_PASS;
	io_uring_queue_exit(ring);
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (ret == -ENOMEM)
		return res_skip(r, "io_uring_register_buffers: ENOMEM (RLIMIT_MEMLOCK %llu bytes)",
				(unsigned long long)rl.rlim_cur);
	return res_fail(r, "io_uring_register_buffers of anonymous memory: %s",
			errno_name(-ret));
}

/* IORING_OP_WRITE_FIXED of buffer 0 (all of it) to fd at offset 0; 0 or -errno. */
static int write_fixed_all(struct io_uring *ring, int fd, const struct area *a)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	size_t done = 0;
	int ret;

	while (done < a->size) {
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_write_fixed(sqe, fd, a->mem + done, a->size - done, done, 0);
		ret = io_uring_submit(ring);
		if (ret < 0)
			return ret;
		ret = io_uring_wait_cqe(ring, &cqe);
		if (ret < 0)
			return ret;
		ret = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (ret <= 0)
			return ret < 0 ? ret : -EIO;
		done += ret;
	}
	return 0;
}

/*
 * Store the pinned buffer into the scratch file fd through the ring and check
 * the file holds gen. Returns ST_PASS with *same set, or ST_FAIL in r.
 */
static enum status pin_content_is(struct io_uring *ring, const struct area *a, int fd,
				  enum pattern_gen gen, bool *same, struct result *r)
{
	enum status st = ST_PASS;
	char *buf;
	int err;

	err = write_fixed_all(ring, fd, a);
	diag("IORING_OP_WRITE_FIXED of %zu bytes = %s", a->size, err ? errno_name(-err) : "ok");
	if (err)
		return res_fail(r, "IORING_OP_WRITE_FIXED: %s", errno_name(-err));
	buf = malloc(a->size);
	if (!buf)
		return res_fail(r, "malloc: ENOMEM");
	err = pread_full(fd, buf, a->size, 0);
	if (err)
		st = res_fail(r, "pread of the scratch file: %s", errno_name(-err));
	else
		*same = pattern_check("file written from the fixed buffer", buf, a->size, gen);
	free(buf);
	return st;
}

/* The scratch file and the registered ring, or SKIP/FAIL in r. */
static enum status prepare(struct io_uring *ring, struct area *a, int *fd, struct result *r)
{
	*fd = scratch_file(r);
	if (*fd < 0)
		return r->status;
	if (ring_register(ring, a, r) != ST_PASS) {
		close(*fd);
		return r->status;
	}
	return ST_PASS;
}

static void finish(struct io_uring *ring, int fd)
{
	io_uring_queue_exit(ring);
	close(fd);
}

static enum status op_mprotect_ro_rw(struct area *a, int arg, struct result *r)
{
	struct io_uring ring;
	bool same = false;
	int fd;

	(void)arg;
	if (prepare(&ring, a, &fd, r) != ST_PASS)
		return r->status;
	diag_pagemap("after register", a->mem);
	if (area_protect(a, PROT_READ, "pinned area")) {
		res_fail(r, "mprotect(PROT_READ) failed");
		goto out;
	}
	/* Optional step: without it the test still runs, only less strict. */
	clear_soft_dirty();
	diag_pagemap("after mprotect(PROT_READ) and clear_refs", a->mem);
	if (area_protect(a, PROT_READ | PROT_WRITE, "pinned area")) {
		res_fail(r, "mprotect(PROT_READ|PROT_WRITE) failed");
		goto out;
	}
	diag_pagemap("after mprotect(PROT_READ|PROT_WRITE)", a->mem);
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("after writing through the mapping", a->mem);
	if (pin_content_is(&ring, a, fd, GEN_NEW, &same, r) != ST_PASS)
		goto out;
	if (same)
		res_pass(r, "longterm R/W pin stayed coherent: the file holds the new data");
	else
		res_fail(r, "the pinned buffer does not hold what was written through the mapping (stale pin)");
out:
	finish(&ring, fd);
	return r->status;
}

static enum status op_fork_while_registered(struct area *a, int arg, struct result *r)
{
	struct io_uring ring;
	bool same = false;
	struct peer p;
	int ret, code, fd;

	(void)arg;
	if (prepare(&ring, a, &fd, r) != ST_PASS)
		return r->status;
	ret = peer_fork(&p);
	if (ret < 0) {
		finish(&ring, fd);
		return res_fail(r, "fork: %s", errno_name(-ret));
	}
	if (ret == 0) {
		/* Child: stay alive (keeping anything COW-shared) until told. */
		if (peer_send(&p, 'r') || peer_recv(&p) != 'c')
			peer_exit(&p, CHILD_ERR);
		diag_pagemap("child", a->mem);
		peer_exit(&p, pattern_check("child, after the parent's write", a->mem,
					    a->size, GEN_OLD) ? CHILD_OK : CHILD_BAD);
	}

	if (peer_recv(&p) != 'r') {
		peer_wait(&p, "child");
		res_fail(r, "child did not start");
		goto out;
	}
	diag_pagemap("parent after fork", a->mem);
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	if (pin_content_is(&ring, a, fd, GEN_NEW, &same, r) != ST_PASS) {
		peer_wait(&p, "child");
		goto out;
	}
	if (peer_send(&p, 'c')) {
		peer_wait(&p, "child");
		res_fail(r, "child went away before checking");
		goto out;
	}
	code = peer_wait(&p, "child");
	if (!same)
		res_fail(r, "the pinned buffer does not hold the parent's write (pin lost at fork)");
	else if (child_status(code, "child",
			      "child's data changed after the parent wrote (leak from parent into child)",
			      r) == ST_PASS)
		res_pass(r, "the pin sees the parent's write and the child keeps its data");
out:
	finish(&ring, fd);
	return r->status;
}

static const struct cow_op ops[] = {
	{ "iouring.mprotect-ro-rw",
	  "io_uring fixed buffer, mprotect RO, clear soft-dirty, mprotect RW, write, WRITE_FIXED",
	  op_mprotect_ro_rw, 0, MEM(MEM_BASE) | MEM(MEM_THP) },
	{ "iouring.fork-while-registered",
	  "io_uring fixed buffer, fork (child alive), parent writes, WRITE_FIXED",
	  op_fork_while_registered, 0, MEM(MEM_BASE) },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
