// SPDX-License-Identifier: GPL-2.0
/*
 * FOLL_FORCE writes: a debugger writes into a mapping the traced process
 * mapped PROT_READ (breakpoints in text) with ptrace's POKEDATA or through
 * /proc/<pid>/mem, but only into the tracee's private copy. The page the
 * mapping shows is a file's pagecache page, a shmem page or the zeropage; the
 * forced write must break COW, so the file and every other mapping of it keep
 * their content. The Dirty COW class: CVE-2016-5195 (a race let the forced
 * write land in the pagecache page), CVE-2022-2590 (the same for shmem,
 * through uffd / UFFDIO_CONTINUE; fixed by 5535be309971 "mm/gup: fix
 * FOLL_FORCE COW security issue and remove FOLL_COW", 6.0).
 *
 * The writer is this process, tracing the twin (PTRACE_SEIZE) and writing
 * /proc/<twin>/mem: a forced write on every kernel whatever proc_mem.
 * force_override says (from 6.12 a kernel may refuse FOLL_FORCE through
 * /proc/<pid>/mem unless the writer is the tracer: CONFIG_PROC_MEM_FORCE_PTRACE,
 * Debian's choice in its 7.2 and 7.3 packages; 6.12 to 6.18 have ALWAYS_FORCE).
 * This process keeps the MAP_SHARED view
 * (or a second zeropage mapping) and the file to check.
 *
 * - force-write.file-unchanged: MAP_PRIVATE of the zeropage, a memfd, a tmpfs
 *   / ext4 file or a hugetlb memfd, read-faulted, mprotect(PROT_READ), then
 *   the twin forked; the tracer writes the new pattern into the twin's
 *   mapping. The twin must see the new data; the file, the other view and
 *   this process's own private mapping must not. hugetlb refuses
 *   FOLL_FORCE|FOLL_WRITE (EIO from /proc/<pid>/mem); then only "unchanged"
 *   is judged.
 * - force-write-uffd-wp.file-unchanged: the same on shmem with the twin's
 *   range write-protected by userfaultfd and a thread in the twin resolving
 *   WP faults (unprotect and wake). The forced write must not get past the
 *   protection unnoticed: either it raises a WP fault and, once that is
 *   resolved, COWs as above, or it is refused and nothing changes.
 *   /proc/<pid>/mem takes its pages without being allowed to drop mmap_lock
 *   (no FAULT_FLAG_ALLOW_RETRY), so handle_userfault() cannot wait for the
 *   thread and fails the fault: EIO, the uffd-wp bit stays (seen on 6.1, 6.12
 *   and 7.3).
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <unistd.h>

#define WITH_UFFD_WP 1

/* The userfaultfd side, in the twin: resolve WP faults until the twin exits. */
struct wp_handler {
	int uffd;
	int wp_faults;		/* WP faults seen and resolved */
	int other;		/* any other event or error */
};

static struct wp_handler handler = { .uffd = -1 };

static void *wp_handler_run(void *arg)
{
	struct wp_handler *h = arg;
	size_t ps = page_size();

	for (;;) {
		struct pollfd pfd = { .fd = h->uffd, .events = POLLIN };
		struct uffd_msg msg;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			h->other++;
			return NULL;
		}
		if (read(h->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;	/* EAGAIN: another wakeup took it */
		if (msg.event == UFFD_EVENT_PAGEFAULT && (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			uintptr_t page = msg.arg.pagefault.address & ~(uintptr_t)(ps - 1);

			__atomic_add_fetch(&h->wp_faults, 1, __ATOMIC_SEQ_CST);
			if (uffd_wp_range(h->uffd, (void *)page, ps, false))
				h->other++;
		} else {
			h->other++;
		}
	}
}

/*
 * In the twin. 'A': read-fault the area (fork left the file pages of a
 * MAP_PRIVATE mapping unmapped in the child), so a present R/O PTE of the
 * pagecache page is what the forced write meets. 'B': write-protect the
 * area with userfaultfd and start the thread that resolves WP faults
 * (CHILD_SKIP when uffd-wp is not available here, the reason in the twin's
 * diagnostics). 'C': did a WP fault come?
 */
static int twin_force(struct twin *t, int cmd)
{
	struct result r = { ST_PASS, "" };
	pthread_t thread;
	size_t off;

	if (cmd == TW_HOOK_A) {
		for (off = 0; off < t->a->size; off += page_size())
			(void)*(volatile char *)(t->a->mem + off);
		diag_pagemap("twin, read-faulted", t->a->mem);
		return CHILD_OK;
	}
	if (cmd == TW_HOOK_C) {
		int n = __atomic_load_n(&handler.wp_faults, __ATOMIC_SEQ_CST);

		diag("twin: userfaultfd: %d WP faults resolved, %d other events or errors", n, handler.other);
		return n ? CHILD_OK : CHILD_BAD;
	}
	handler.uffd = uffd_wp_area(t->a, &r);
	if (handler.uffd < 0) {
		diag("twin: %s", r.reason);
		return r.status == ST_SKIP ? CHILD_SKIP : CHILD_ERR;
	}
	if (pthread_create(&thread, NULL, wp_handler_run, &handler))
		return CHILD_ERR;
	return CHILD_OK;
}

/* Trace the twin and pwrite GEN_NEW over its mapping of the area through /proc/<pid>/mem:
 * 0 or -errno (-EIO if short). */
static int force_write(struct twin *t, struct area *a)
{
	char path[64], *buf = malloc(a->size);
	ssize_t n = -1;
	int fd = -1, err;

	if (!buf)
		return -ENOMEM;
	pattern_fill(buf, a->size, GEN_NEW);
	if (ptrace(PTRACE_SEIZE, t->p.pid, 0, 0)) {
		err = -errno;
		diag("PTRACE_SEIZE of the twin: %s", errno_name(-err));
		free(buf);
		return err;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)t->p.pid);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		n = pwrite(fd, buf, a->size, (off_t)(uintptr_t)a->mem);
	err = fd < 0 || n < 0 ? -errno : (size_t)n == a->size ? 0 : -EIO;
	if (fd >= 0)
		close(fd);
	free(buf);
	diag("tracer: pwrite of %zu bytes to /proc/<twin>/mem at its PROT_READ mapping = %zd%s%s", a->size,
	     n, err ? " " : "", err ? errno_name(-err) : "");
	return err;
}

/* The twin's pagemap entry of addr (0 if unreadable), with a diagnostics line. */
static uint64_t twin_pagemap(struct twin *t, const void *addr)
{
	char path[64];
	uint64_t e = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)t->p.pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread_full(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / page_size()) * 8))
		e = 0;
	if (fd >= 0)
		close(fd);
	diag("twin's pagemap after the forced write: present=%d file=%d uffd_wp=%d", !!(e & PM_PRESENT),
	     !!(e & PM_FILE), !!(e & PM_UFFD_WP));
	return e;
}

/* The file, the other view and this process's own private mapping keep the old content? */
static enum status nothing_else_changed(struct area *a, const char *what, struct result *r)
{
	const char *leak = private_write_leaked(a);

	if (leak)
		return res_fail(r, "%s: %s", what, leak);
	if (!area_holds_old("the writer's own MAP_PRIVATE mapping", a))
		return res_fail(r, "%s changed the writer's own private mapping", what);
	return ST_PASS;
}

static enum status judge(struct twin *t, struct area *a, int arg, int err, struct result *r)
{
	bool hugetlb = a->type->props & MT_HUGETLB;

	if (nothing_else_changed(a, "the FOLL_FORCE write into the twin's PROT_READ mapping", r) != ST_PASS)
		return r->status;
	if (!err && (arg & WITH_UFFD_WP) &&
	    twin_expect(t, TW_HOOK_C, "the forced write went through the uffd-wp protected range without a WP fault",
			r) != ST_PASS)
		return r->status;
	if (!err)
		return twin_expect(t, TW_HOLDS_NEW, "the forced write did not reach the twin's private mapping", r) ==
		       ST_PASS ? res_pass(r, "the forced write went into the twin's private copy; the file and the other views are unchanged") :
		       r->status;
	if (!(hugetlb || (arg & WITH_UFFD_WP)) || (err != -EIO && err != -EFAULT))
		return res_fail(r, "the FOLL_FORCE write through /proc/<pid>/mem failed: %s", errno_name(-err));
	if (twin_expect(t, TW_HOLDS_OLD, "the refused forced write changed the twin's mapping", r) != ST_PASS)
		return r->status;
	if ((arg & WITH_UFFD_WP) && !(twin_pagemap(t, a->mem) & PM_UFFD_WP))
		return res_fail(r, "the refused forced write dropped the uffd-wp bit of the twin's page");
	return res_pass(r, "%s refuses the forced write (%s); nothing changed",
			hugetlb ? "hugetlb (no FOLL_FORCE|FOLL_WRITE)" : "the uffd-wp protected page", errno_name(-err));
}

static enum status op_force_write(struct area *a, int arg, struct result *r)
{
	struct twin t;
	int err;

	if (area_protect(a, PROT_READ, "before the fork"))
		return res_fail(r, "mprotect(PROT_READ) failed");
	diag_pagemap("PROT_READ mapping before the forced write", a->mem);
	twin_hook = twin_force;
	err = twin_start(&t, a, -1, -1);
	if (err)
		return res_fail(r, "fork: %s", errno_name(-err));
	if (twin_expect(&t, TW_HOOK_A, "", r) != ST_PASS) {
		twin_end(&t);
		return res_fail(r, "the twin could not read-fault its mapping");
	}
	if (arg & WITH_UFFD_WP) {
		err = twin_do(&t, TW_HOOK_B);
		if (err != CHILD_OK) {
			if (err == CHILD_SKIP)
				res_skip(r, "no uffd-wp on this memory in the twin (see its diagnostics)");
			else
				res_fail(r, "the twin could not set up uffd-wp");
			twin_end(&t);
			return r->status;
		}
	}
	err = force_write(&t, a);
	judge(&t, a, arg, err, r);
	twin_end(&t);
	return r->status;
}

#define MEMS_SHMEM_PRIVATE (MEM(MEM_MEMFD_PRIVATE) | MEM(MEM_TMPFS_PRIVATE))

static const struct cow_op ops[] = {
	{ .name = "force-write.file-unchanged",
	  .desc = "FOLL_FORCE write (a tracer's /proc/<pid>/mem) into a PROT_READ MAP_PRIVATE page: a private copy, the file and other views unchanged",
	  .run = op_force_write, .mems = MEMS_NONANON_PRIVATE },
	{ .name = "force-write-uffd-wp.file-unchanged",
	  .desc = "the same on uffd-wp protected shmem (a thread in the tracee resolves WP faults): the file and other views unchanged",
	  .run = op_force_write, .arg = WITH_UFFD_WP, .mems = MEMS_SHMEM_PRIVATE },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
