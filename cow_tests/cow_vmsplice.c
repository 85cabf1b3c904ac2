// SPDX-License-Identifier: GPL-2.0
/*
 * vmsplice() + unmap in the child (CVE-2020-29374 class): after fork the
 * child vmsplices the COW-shared pages into a pipe (a plain page reference,
 * no pin) and unmaps them. The parent is then the only mapper and writes.
 * The pipe must still yield the data from fork time: if the kernel let the
 * parent reuse the page in place, the child would read the parent's write.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * Make the pipe able to hold len bytes if we may; without CAP_SYS_RESOURCE a
 * pipe is limited to /proc/sys/fs/pipe-max-size (1 MiB by default), so halve
 * until the kernel agrees. Returns the capacity we got, in bytes.
 */
static size_t pipe_grow(int fd, size_t len)
{
	size_t want;
	int cap;

	for (want = len; want >= page_size(); want /= 2) {
		cap = fcntl(fd, F_SETPIPE_SZ, (int)want);
		if (cap >= 0)
			return cap;
		diag("F_SETPIPE_SZ(%zu): %s", want, errno_name(errno));
	}
	cap = fcntl(fd, F_GETPIPE_SZ);
	return cap < 0 ? 0 : (size_t)cap;
}

static int read_full(int fd, char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

/* Child side: vmsplice, unmap, let the parent write, read the pipe back. */
static void child_vmsplice_unmap(struct peer *p, struct area *a, int pfd[2], size_t cap)
{
	struct iovec iov = { .iov_base = a->mem, .iov_len = cap < a->size ? cap : a->size };
	ssize_t n;
	char *buf;
	int err;

	/* Non-blocking: a short pipe gives a short splice, never a hang. */
	n = vmsplice(pfd[1], &iov, 1, SPLICE_F_NONBLOCK);
	diag("child: vmsplice of %zu bytes = %zd%s%s", iov.iov_len, n,
	     n < 0 ? " " : "", n < 0 ? errno_name(errno) : "");
	if (n <= 0)
		peer_exit(p, CHILD_ERR);
	err = munmap(a->mem, a->size) ? errno : 0;
	diag("child: munmap = %s", err ? errno_name(err) : "0");
	if (err || peer_send(p, 'u') || peer_recv(p) != 'w')
		peer_exit(p, CHILD_ERR);

	buf = malloc(n);
	if (!buf)
		peer_exit(p, CHILD_ERR);
	err = read_full(pfd[0], buf, n);
	if (err) {
		diag("child: reading %zd bytes from the pipe: %s", n, errno_name(-err));
		peer_exit(p, CHILD_ERR);
	}
	peer_exit(p, pattern_check("child, pipe content after the parent's write", buf, n,
				   GEN_OLD) ? CHILD_OK : CHILD_BAD);
}

static enum status op_vmsplice_unmap_in_child(struct area *a, int arg, struct result *r)
{
	struct peer p;
	int pfd[2], ret, code;
	size_t cap;

	(void)arg;
	if (pipe2(pfd, O_CLOEXEC))
		return res_fail(r, "pipe: %s", errno_name(errno));
	cap = pipe_grow(pfd[1], a->size);
	diag("pipe capacity %zu bytes for a %zu-byte area", cap, a->size);

	ret = peer_fork(&p);
	if (ret < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return res_fail(r, "fork: %s", errno_name(-ret));
	}
	if (ret == 0)
		child_vmsplice_unmap(&p, a, pfd, cap);

	close(pfd[0]);
	close(pfd[1]);
	if (peer_recv(&p) != 'u') {
		peer_wait(&p, "child");
		return res_fail(r, "child could not vmsplice and unmap");
	}
	diag_pagemap("parent before its write", a->mem);
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("parent after its write", a->mem);
	if (peer_send(&p, 'w')) {
		peer_wait(&p, "child");
		return res_fail(r, "child went away before reading the pipe");
	}
	code = peer_wait(&p, "child");
	if (child_status(code, "child",
			 "pipe yields the parent's write, not the data spliced at fork time (leak)",
			 r) != ST_PASS)
		return r->status;
	return res_pass(r, "pipe still yields the data from before the parent's write");
}

static const struct cow_op ops[] = {
	{ "vmsplice.unmap-in-child",
	  "fork, child vmsplices into a pipe and unmaps, parent writes, child reads the pipe",
	  op_vmsplice_unmap_in_child, 0, MEM(MEM_BASE) | MEM(MEM_THP) },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
