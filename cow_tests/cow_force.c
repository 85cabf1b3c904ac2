// SPDX-License-Identifier: GPL-2.0
/*
 * FOLL_FORCE writes: a write through /proc/self/mem (what ptrace's POKEDATA
 * and a debugger's breakpoints use) may write into a mapping the process
 * mapped PROT_READ, but only into its own private copy. The page the mapping
 * shows is a file's pagecache page, a shmem page or the zeropage; the forced
 * write must break COW, so the file and every other mapping of it keep their
 * content. The Dirty COW class: CVE-2016-5195 (a race let the forced write
 * land in the pagecache page), CVE-2022-2590 (the same for shmem, through
 * uffd-wp / UFFDIO_CONTINUE; fixed by 5535be309971 "mm/gup: fix FOLL_FORCE
 * COW security issue and remove FOLL_COW", 6.0).
 *
 * - force-write.file-unchanged: MAP_PRIVATE of the zeropage, a memfd, a tmpfs
 *   / ext4 file or a hugetlb memfd, read-faulted, mprotect(PROT_READ); pwrite
 *   of the new pattern to /proc/self/mem at it. The mapping must show the new
 *   data; the file and the MAP_SHARED view (or a second zeropage mapping)
 *   must not. hugetlb refuses FOLL_FORCE|FOLL_WRITE (EIO from /proc/self/mem)
 *   on kernels that have that check; then only "unchanged" is judged.
 * - force-write-uffd-wp.file-unchanged: the same on shmem with the range
 *   write-protected by userfaultfd; a thread resolves WP faults (unprotect
 *   and wake). The forced write must not get past the protection unnoticed:
 *   either it raises a WP fault and, once that is resolved, COWs as above,
 *   or it is refused and nothing changes. /proc/self/mem takes its pages
 *   without being allowed to drop mmap_lock (no FAULT_FLAG_ALLOW_RETRY), so
 *   handle_userfault() cannot wait for the thread and fails the fault: EIO,
 *   the uffd-wp bit stays (seen on 6.1, 6.12 and 6.18).
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define WITH_UFFD_WP 1

/* The userfaultfd side: resolve WP faults until told to stop. */
struct wp_handler {
	int uffd;
	int stop[2];		/* a pipe: writing to stop[1] ends the thread */
	int wp_faults;		/* WP faults seen and resolved */
	int other;		/* any other event or error */
};

static void *wp_handler_run(void *arg)
{
	struct wp_handler *h = arg;
	size_t ps = page_size();

	for (;;) {
		struct pollfd pfd[2] = { { .fd = h->uffd, .events = POLLIN },
					 { .fd = h->stop[0], .events = POLLIN } };
		struct uffd_msg msg;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			h->other++;
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		if (read(h->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;	/* EAGAIN: another wakeup took it */
		if (msg.event == UFFD_EVENT_PAGEFAULT && (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			uintptr_t page = msg.arg.pagefault.address & ~(uintptr_t)(ps - 1);

			h->wp_faults++;
			if (uffd_wp_range(h->uffd, (void *)page, ps, false))
				h->other++;
		} else {
			h->other++;
		}
	}
}

/* pwrite of GEN_NEW over the area through /proc/self/mem: 0 or -errno (-EIO if short). */
static int force_write(struct area *a)
{
	char *buf = malloc(a->size);
	ssize_t n = -1;
	int fd, err;

	if (!buf)
		return -ENOMEM;
	pattern_fill(buf, a->size, GEN_NEW);
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		n = pwrite(fd, buf, a->size, (off_t)(uintptr_t)a->mem);
	err = fd < 0 || n < 0 ? -errno : (size_t)n == a->size ? 0 : -EIO;
	if (fd >= 0)
		close(fd);
	free(buf);
	diag("pwrite of %zu bytes to /proc/self/mem at the PROT_READ mapping = %zd%s%s", a->size, n,
	     err ? " " : "", err ? errno_name(-err) : "");
	return err;
}

/* After the forced write (err): judge the mapping, the file and the other views. */
static enum status judge(struct area *a, int err, struct result *r)
{
	const char *leak = private_write_leaked(a);
	bool refused_ok = (a->type->props & MT_HUGETLB) && (err == -EIO || err == -EFAULT);

	diag_pagemap("after the forced write", a->mem);
	if (leak)
		return res_fail(r, "FOLL_FORCE write through /proc/self/mem: %s", leak);
	if (refused_ok) {
		if (!area_holds_old("the PROT_READ hugetlb mapping after the refused write", a))
			return res_fail(r, "the refused forced write changed the hugetlb mapping");
		return res_pass(r, "hugetlb refuses FOLL_FORCE|FOLL_WRITE (%s); the file and the other view are unchanged",
				errno_name(-err));
	}
	if (err)
		return res_fail(r, "the FOLL_FORCE write through /proc/self/mem failed: %s", errno_name(-err));
	if (!pattern_check("the PROT_READ private mapping after the forced write", a->mem, a->size, GEN_NEW))
		return res_fail(r, "the forced write did not reach the private mapping");
	return res_pass(r, "the forced write went into a private copy; the file and the other view are unchanged");
}

/* The same with the range uffd-wp protected and wp_faults WP faults resolved. */
static enum status judge_uffd_wp(struct area *a, int err, int wp_faults, struct result *r)
{
	const char *leak;
	uint64_t e;

	if (!err && !wp_faults)
		return res_fail(r, "the forced write went through the write-protected range without a uffd-wp fault");
	if (!err)
		return judge(a, err, r);
	leak = private_write_leaked(a);
	e = diag_pagemap("after the refused forced write", a->mem);
	if (leak)
		return res_fail(r, "refused forced write (%s), yet %s", errno_name(-err), leak);
	if (err != -EIO && err != -EFAULT)
		return res_fail(r, "the forced write failed with %s, expected it to work or EIO", errno_name(-err));
	if (!area_holds_old("the PROT_READ private mapping after the refused write", a))
		return res_fail(r, "the refused forced write changed the private mapping");
	if (!(e & PM_UFFD_WP))
		return res_fail(r, "the refused forced write dropped the uffd-wp bit");
	return res_pass(r, "the forced write on the uffd-wp protected page is refused (%s, %d WP faults): nothing changed, uffd-wp kept",
			errno_name(-err), wp_faults);
}

static enum status op_force_write(struct area *a, int arg, struct result *r)
{
	struct wp_handler h = { .uffd = -1, .stop = { -1, -1 } };
	pthread_t thread;
	bool started = false;
	int err;

	if (area_protect(a, PROT_READ, "before the forced write"))
		return res_fail(r, "mprotect(PROT_READ) failed");
	diag_pagemap("PROT_READ mapping before the forced write", a->mem);
	if (arg & WITH_UFFD_WP) {
		h.uffd = uffd_wp_area(a, r);
		if (h.uffd < 0)
			return r->status;
		if (pipe2(h.stop, O_CLOEXEC)) {
			close(h.uffd);
			return res_fail(r, "pipe: %s", errno_name(errno));
		}
		err = pthread_create(&thread, NULL, wp_handler_run, &h);
		if (err) {
			res_fail(r, "pthread_create: %s", errno_name(err));
			goto out;
		}
		started = true;
	}
	err = force_write(a);
	if (started) {
		if (write(h.stop[1], "x", 1) != 1)
			diag("stopping the uffd thread: %s", errno_name(errno));
		pthread_join(thread, NULL);
		started = false;
		diag("userfaultfd: %d WP faults resolved, %d other events or errors", h.wp_faults, h.other);
		judge_uffd_wp(a, err, h.wp_faults, r);
	} else {
		judge(a, err, r);
	}
out:
	if (h.uffd >= 0)
		close(h.uffd);
	if (h.stop[0] >= 0) {
		close(h.stop[0]);
		close(h.stop[1]);
	}
	return r->status;
}

#define MEMS_SHMEM_PRIVATE (MEM(MEM_MEMFD_PRIVATE) | MEM(MEM_TMPFS_PRIVATE))

static const struct cow_op ops[] = {
	{ .name = "force-write.file-unchanged",
	  .desc = "FOLL_FORCE write (/proc/self/mem) into a PROT_READ MAP_PRIVATE page: a private copy, the file and other views unchanged",
	  .run = op_force_write, .mems = MEMS_NONANON_PRIVATE },
	{ .name = "force-write-uffd-wp.file-unchanged",
	  .desc = "the same on uffd-wp protected shmem (a thread resolves the WP fault): the file and other views unchanged",
	  .run = op_force_write, .arg = WITH_UFFD_WP, .mems = MEMS_SHMEM_PRIVATE },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
