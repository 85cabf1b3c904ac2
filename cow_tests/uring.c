// SPDX-License-Identifier: GPL-2.0
/* io_uring fixed-buffer helpers: see uring.h. */
#define _GNU_SOURCE
#include "uring.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/uio.h>

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

enum status ring_open(struct io_uring *ring, struct result *r)
{
	int ret = io_uring_queue_init(4, ring, 0);

	if (ret < 0)
		return res_skip(r, "io_uring not available: io_uring_queue_init: %s", errno_name(-ret));
	return ST_PASS;
}

int ring_register(struct io_uring *ring, void *mem, size_t len)
{
	struct iovec iov = { .iov_base = mem, .iov_len = len };
	int ret;

	memlock_allow(len);
	ret = io_uring_register_buffers(ring, &iov, 1);
	diag("io_uring_register_buffers(%zu bytes) = %d%s%s", len, ret, ret ? " " : "",
	     ret ? errno_name(-ret) : "");
	return ret;
}

/* IORING_OP_WRITE_FIXED of buffer 0 (all of it) to fd at offset 0; 0 or -errno. */
static int write_fixed_all(struct io_uring *ring, int fd, const char *mem, size_t len)
{
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	size_t done = 0;
	int ret;

	while (done < len) {
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_write_fixed(sqe, fd, mem + done, len - done, done, 0);
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

enum status fixed_buffer_holds(struct io_uring *ring, const void *mem, size_t len, int fd,
			       enum pattern_gen gen, bool *same, struct result *r)
{
	int err = write_fixed_all(ring, fd, mem, len);

	diag("IORING_OP_WRITE_FIXED of %zu bytes = %s", len, err ? errno_name(-err) : "ok");
	if (err)
		return res_fail(r, "IORING_OP_WRITE_FIXED: %s", errno_name(-err));
	*same = file_holds(fd, len, gen, "file written from the fixed buffer");
	return ST_PASS;
}
