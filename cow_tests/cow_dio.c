// SPDX-License-Identifier: GPL-2.0
/*
 * An O_DIRECT read still in flight across fork (docs/semantics.md#dio-fork).
 *
 * The parent starts an asynchronous O_DIRECT read (Linux AIO, io_submit) of
 * one 512-byte sector into the start of its page, forks while the read is
 * still in flight, then writes the second half of the same page. When the
 * read completes, the parent's page must hold both: the sector's data in
 * the first 512 bytes and its own write in the second half.
 *
 * Where direct I/O took plain references to the user pages (FOLL_GET), fork
 * does not see them as pinned: the page is COW-shared, the parent's write
 * faults and copies it, and the read lands in the old page, which now
 * belongs to the child. With direct I/O taking FOLL_PIN references, fork
 * copies the page for the child instead and the parent keeps the one the
 * read goes to.
 *
 * The read is made slow by a device-mapper "delay" target over a loop device
 * on a scratch file (set up here through the loop and DM ioctls: no dmsetup
 * needed; the guest loads loop and dm_delay). The case checks that the read
 * has not completed when fork returns (io_getevents without waiting) and
 * SKIPs if it had: then nothing was in flight across the fork.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/dm-ioctl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define SECTOR 512
#define BACKING_SIZE (64 * 1024)	/* the loop device's file */
#define DELAY_MS 2000			/* dm-delay: every read waits this long */
#define DM_CONTROL "/dev/mapper/control"
#define LOOP_CONTROL "/dev/loop-control"

/* The delayed block device: dm "delay" over a loop device over a scratch file. */
struct slowdev {
	int backing, loop_fd, dm_fd;
	char dm_name[64];
	dev_t dm_dev;
};

static enum status need_dm(struct result *r)
{
	if (access(DM_CONTROL, F_OK))
		return res_skip(r, "no %s: device-mapper not available (dm_mod not loaded?): %s",
				DM_CONTROL, errno_name(errno));
	if (access(LOOP_CONTROL, F_OK))
		return res_skip(r, "no %s: loop devices not available (loop not loaded?): %s",
				LOOP_CONTROL, errno_name(errno));
	return ST_PASS;
}

/* A /dev node devtmpfs makes asynchronously: wait up to 2 s for it. */
static int open_node(const char *path, int flags)
{
	int fd = -1;

	for (int i = 0; i < 200 && (fd = open(path, flags)) < 0 && errno == ENOENT; i++)
		usleep(10 * 1000);
	return fd;
}

static int loop_attach(struct slowdev *d, struct result *r)
{
	char path[64];
	int ctl, n;

	ctl = open(LOOP_CONTROL, O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return res_skip(r, "open %s: %s", LOOP_CONTROL, errno_name(errno)), -1;
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		return res_skip(r, "LOOP_CTL_GET_FREE: %s", errno_name(errno)), -1;
	snprintf(path, sizeof(path), "/dev/loop%d", n);
	d->loop_fd = open_node(path, O_RDWR | O_CLOEXEC);
	if (d->loop_fd < 0)
		return res_skip(r, "open %s: %s", path, errno_name(errno)), -1;
	if (ioctl(d->loop_fd, LOOP_SET_FD, d->backing)) {
		res_skip(r, "LOOP_SET_FD on %s: %s", path, errno_name(errno));
		close(d->loop_fd);
		d->loop_fd = -1;
		return -1;
	}
	diag("slow device: %s on a %d kB scratch file", path, BACKING_SIZE / 1024);
	return 0;
}

/* One DM ioctl; buf starts with a struct dm_ioctl of len bytes in all. 0 or -errno. */
static int dm_call(unsigned long cmd, struct dm_ioctl *io, size_t len, const char *name)
{
	int ctl = open(DM_CONTROL, O_RDWR | O_CLOEXEC), ret;

	if (ctl < 0)
		return -errno;
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = (__u32)len;
	io->data_start = sizeof(*io);
	snprintf(io->name, sizeof(io->name), "%s", name);
	ret = ioctl(ctl, cmd, io) ? -errno : 0;
	close(ctl);
	return ret;
}

static int dm_delay_create(struct slowdev *d, struct result *r)
{
	struct {
		struct dm_ioctl io;
		struct dm_target_spec spec;
		char params[128];
	} __attribute__((aligned(8))) t;
	struct stat st;
	char path[64];
	int err;

	if (fstat(d->loop_fd, &st))
		return res_fail(r, "fstat of the loop device: %s", errno_name(errno)), -1;
	snprintf(path, sizeof(path), "cow_dio_%d", (int)getpid());
	memset(&t, 0, sizeof(t));
	err = dm_call(DM_DEV_CREATE, &t.io, sizeof(t.io), path);
	if (err)
		return res_skip(r, "DM_DEV_CREATE: %s (device-mapper not available?)", errno_name(-err)), -1;
	snprintf(d->dm_name, sizeof(d->dm_name), "%s", path);	/* slowdev_close removes it */
	d->dm_dev = (dev_t)t.io.dev;
	memset(&t, 0, sizeof(t));
	t.io.target_count = 1;
	t.spec.sector_start = 0;
	t.spec.length = BACKING_SIZE / SECTOR;
	snprintf(t.spec.target_type, sizeof(t.spec.target_type), "delay");
	snprintf(t.params, sizeof(t.params), "%u:%u 0 %d", major(st.st_rdev), minor(st.st_rdev),
		 DELAY_MS);
	t.spec.next = sizeof(t.spec) + sizeof(t.params);
	err = dm_call(DM_TABLE_LOAD, &t.io, sizeof(t), d->dm_name);
	if (err)
		return res_skip(r, "DM_TABLE_LOAD \"delay %s\": %s (dm_delay not loaded?)", t.params,
				errno_name(-err)), -1;
	memset(&t, 0, sizeof(t));
	err = dm_call(DM_DEV_SUSPEND, &t.io, sizeof(t.io), d->dm_name);	/* no flag: resume */
	if (err)
		return res_skip(r, "DM_DEV_SUSPEND (resume): %s", errno_name(-err)), -1;
	snprintf(path, sizeof(path), "/dev/dm-%u", minor(d->dm_dev));
	d->dm_fd = open_node(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (d->dm_fd < 0)
		return res_skip(r, "open %s O_DIRECT: %s", path, errno_name(errno)), -1;
	diag("slow device: %s (%u:%u), dm delay target, reads wait %d ms", path, major(d->dm_dev),
	     minor(d->dm_dev), DELAY_MS);
	return 0;
}

static void slowdev_close(struct slowdev *d)
{
	struct dm_ioctl io;

	if (d->dm_fd >= 0)
		close(d->dm_fd);
	if (d->dm_name[0]) {
		memset(&io, 0, sizeof(io));
		if (dm_call(DM_DEV_REMOVE, &io, sizeof(io), d->dm_name))
			diag("DM_DEV_REMOVE %s failed", d->dm_name);
	}
	if (d->loop_fd >= 0) {
		ioctl(d->loop_fd, LOOP_CLR_FD);
		close(d->loop_fd);
	}
	if (d->backing >= 0)
		close(d->backing);
}

/* The slow device, its first sector holding GEN_NEW; ST_PASS or SKIP/FAIL in r. */
static enum status slowdev_open(struct slowdev *d, struct result *r)
{
	char *buf = malloc(BACKING_SIZE);
	int err;

	*d = (struct slowdev){ .backing = -1, .loop_fd = -1, .dm_fd = -1 };
	d->backing = scratch_file(r);
	if (d->backing < 0 || !buf) {
		free(buf);
		return buf ? r->status : res_fail(r, "malloc");
	}
	pattern_fill(buf, BACKING_SIZE, GEN_NEW);
	err = pwrite_full(d->backing, buf, BACKING_SIZE, 0);
	free(buf);
	if (err)
		return res_fail(r, "writing the scratch file: %s", errno_name(-err));
	if (loop_attach(d, r) || dm_delay_create(d, r))
		return r->status;
	return ST_PASS;
}

/* Do bytes [from, to) of the page hold gen (at their own offsets)? One diagnostics line. */
static bool bytes_hold(const char *who, const char *page, size_t from, size_t to, enum pattern_gen gen)
{
	size_t i;

	for (i = from; i < to && (uint8_t)page[i] == pattern_byte(i, gen); i++)
		;
	if (i == to)
		diag("%s: bytes %zu..%zu all %s as expected", who, from, to - 1, gen == GEN_NEW ? "new" : "old");
	else
		diag("%s: byte %zu is 0x%02x, not 0x%02x (%s)", who, i, (uint8_t)page[i], pattern_byte(i, gen),
		     gen == GEN_NEW ? "new" : "old");
	return i == to;
}

/* io_getevents: at least min events (at most one), waiting up to wait_s. */
static long aio_events(aio_context_t ctx, long min, struct io_event *ev, long wait_s)
{
	struct timespec ts = { .tv_sec = wait_s };

	return syscall(SYS_io_getevents, ctx, min, 1, ev, &ts);
}

struct dio {
	aio_context_t ctx;
	struct slowdev *dev;
};

/* The parent, right after fork returned: the read must still be in flight. */
static enum status write_while_in_flight(struct twin *t, void *ctx, struct result *r)
{
	struct dio *d = ctx;
	struct area *a = t->a;
	size_t ps = page_size(), half = ps / 2;
	struct io_event ev;
	long n = aio_events(d->ctx, 0, &ev, 0);
	bool dio_ok, mid_ok, write_ok;

	diag("after fork: the read %s", n == 0 ? "has not completed (in flight)" : "had completed");
	if (n != 0)
		return n < 0 ? res_fail(r, "io_getevents: %s", errno_name(errno)) :
		       res_skip(r, "the O_DIRECT read completed before fork returned: nothing was in flight across the fork");
	diag_pagemap("parent after fork", a->mem);
	for (size_t i = half; i < ps; i++)
		a->mem[i] = (char)pattern_byte(i, GEN_NEW);
	diag_pagemap("parent after writing the second half", a->mem);
	n = aio_events(d->ctx, 1, &ev, 30);
	if (n != 1)
		return res_fail(r, "the O_DIRECT read did not complete within 30 s: %s",
				n < 0 ? errno_name(errno) : "no event");
	diag("O_DIRECT read completed: res %lld", (long long)ev.res);
	if (ev.res != SECTOR)
		return res_fail(r, "the O_DIRECT read returned %lld, not %d", (long long)ev.res, SECTOR);
	diag_pagemap("parent after the read completed", a->mem);
	/* The sector holds GEN_NEW at offsets 0..511, as the page's first bytes would. */
	dio_ok = bytes_hold("parent, the read's bytes", a->mem, 0, SECTOR, GEN_NEW);
	mid_ok = bytes_hold("parent, untouched bytes", a->mem, SECTOR, half, GEN_OLD);
	write_ok = bytes_hold("parent, its write", a->mem, half, ps, GEN_NEW);
	if (!write_ok || !mid_ok)
		return res_fail(r, "the parent's page lost its own content (its write or the untouched bytes)");
	if (!dio_ok)
		return res_fail(r, "the O_DIRECT read in flight across fork did not land in the parent's page (the parent's write COWed it away)");
	return res_pass(r, "the read's data and the parent's write are both in the parent's page");
}

static enum status op_dio_fork(struct area *a, int arg, struct result *r)
{
	struct slowdev dev;
	struct dio d = { .dev = &dev };
	struct iocb cb, *cbs[1] = { &cb };
	long ret;

	(void)arg;
	if (slowdev_open(&dev, r) != ST_PASS)
		goto out;
	if (syscall(SYS_io_setup, 1, &d.ctx)) {
		res_skip(r, "io_setup: %s (no Linux AIO?)", errno_name(errno));
		goto out;
	}
	memset(&cb, 0, sizeof(cb));
	cb.aio_lio_opcode = IOCB_CMD_PREAD;
	cb.aio_fildes = (__u32)dev.dm_fd;
	cb.aio_buf = (__u64)(uintptr_t)a->mem;
	cb.aio_nbytes = SECTOR;
	cb.aio_offset = 0;
	diag_pagemap("area before the read", a->mem);
	ret = syscall(SYS_io_submit, d.ctx, 1, cbs);
	if (ret != 1) {
		res_fail(r, "io_submit of the O_DIRECT read: %s", ret < 0 ? errno_name(errno) : "not queued");
	} else {
		diag("io_submit: O_DIRECT read of %d bytes into the area's first page queued", SECTOR);
		with_twin(a, -1, -1, write_while_in_flight, &d, r);
	}
	/* Waits for a read still in flight: it cannot land in the area after it is gone. */
	syscall(SYS_io_destroy, d.ctx);
out:
	slowdev_close(&dev);
	return r->status;
}

static const struct cow_op ops[] = {
	{ .name = "fork-during-dio-read.parent-gets-data",
	  .desc = "O_DIRECT read (AIO, 512 B, delayed device) in flight across fork, parent writes the page's second half",
	  .run = op_dio_fork, .mems = MEM(MEM_BASE) | MEM(MEM_THP) | MEM(MEM_HUGETLB_2M), .need = need_dm },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
