// SPDX-License-Identifier: GPL-2.0
/*
 * Long-term pins taken by RDMA memory registration, on every stock kernel.
 *
 * ibv_reg_mr() reaches ib_umem_get(), which pins the range long-term:
 * pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE if the registration is
 * writable) since 6.2 (b40656aa7d55 "RDMA/umem: remove FOLL_FORCE usage");
 * before, every registration was FOLL_WRITE and a read-only one added
 * FOLL_FORCE, so that the write fault broke COW before the pin. The device is
 * soft-RoCE (rdma_rxe) on the guest's eth0; the harness loads the modules and
 * creates the link ("rdma link add rxe0 type rxe netdev eth0") only when this
 * program runs. One RC queue pair is connected to itself, and RDMA READ /
 * RDMA WRITE move data through the registration: rxe copies from and to the
 * pinned pages, so what the RDMA READ returns is what the pin holds.
 *
 * - rdma-ro.write: register R/O, write through the mapping, RDMA READ: the pin
 *   must see the write (a private mapping was unshared at registration).
 * - rdma-ro.ro-mapping: the same with the mapping PROT_READ while registering.
 *   Before 6.2 FOLL_WRITE|FOLL_FORCE is refused on a R/O shared mapping.
 * - rdma-ro.file-update: register a MAP_PRIVATE file page R/O, pwrite() the
 *   file: the pin must hold what the process sees (a snapshot, not the file).
 * - rdma-ro.fork: register R/O, fork, the parent writes: the pin follows the
 *   parent, the child keeps the old data.
 * - rdma-ro.soft-dirty, rdma-ro.uffd-wp: a R/O registration must not write
 *   fault: soft-dirty stays clear, a uffd-wp marker stays in place and no wp
 *   fault is raised (docs/semantics.md#write-tracking: side effects of
 *   FOLL_WRITE, which differ before 6.2).
 * - rdma-rw.shared: a writable registration of a MAP_SHARED mapping; on a
 *   dirty-tracked file (ext4) refused with EFAULT (6.5, a6e79df92e4a), else an
 *   RDMA WRITE lands in the file.
 * - rdma-rw.private, rdma-rw.fork: RDMA WRITE into a writable registration of
 *   private memory: the process sees it, the file / the forked child do not.
 */
#define _GNU_SOURCE
#include "common.h"
#include "rdma_pin.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>


/* How long the uffd thread waits for a wp fault before it gives up (the registration is over
 * long before; the RDMA layer itself waits at most 20 s for a completion). */
#define UFFD_WAIT_S 25

/* Op arg bits. */
#define MAP_RO		0x01	/* PROT_READ while registering */
#define FORK_AFTER	0x02	/* fork after registering; the child stays alive */

static enum status need_rdma(struct result *r)
{
	char why[200];
	const char *missing = rdma_missing(why, sizeof(why));

	return missing ? res_skip(r, "no RDMA device to register with (%s)", missing) : ST_PASS;
}

/* A failure here is the environment failing after a device was found: FAIL. */
static enum status open_rdma(struct rdma **rd, struct result *r)
{
	char err[200] = "";

	if (rdma_open(rd, err, sizeof(err)))
		return res_fail(r, "RDMA setup: %s", err);
	return ST_PASS;
}

/* RDMA READ the registered area and compare it with gen. Sets *same; ST_FAIL
 * (r set) if the read itself failed. */
static enum status pin_holds(struct rdma *rd, struct rdma_mr *mr, const struct area *a,
			     enum pattern_gen gen, bool *same, struct result *r)
{
	char *buf = malloc(a->size);
	int err = buf ? rdma_read(rd, mr, a->mem, buf, a->size) : -ENOMEM;

	if (err) {
		free(buf);
		return res_fail(r, "RDMA READ through the registration: %s", errno_name(-err));
	}
	*same = pattern_check("what the registration holds (RDMA READ)", buf, a->size, gen);
	free(buf);
	return ST_PASS;
}

/* RDMA WRITE gen into the registered area. */
static enum status write_through_pin(struct rdma *rd, struct rdma_mr *mr, const struct area *a,
				     enum pattern_gen gen, struct result *r)
{
	char *buf = malloc(a->size);
	int err = -ENOMEM;

	if (buf) {
		pattern_fill(buf, a->size, gen);
		err = rdma_write(rd, mr, a->mem, buf, a->size);
		free(buf);
	}
	if (err)
		return res_fail(r, "RDMA WRITE through the registration: %s", errno_name(-err));
	return ST_PASS;
}

/* Every op's end: drop the registration and the device; the case's status. */
static enum status release(struct rdma *rd, struct rdma_mr *mr, struct result *r)
{
	rdma_dereg(mr);
	rdma_close(rd);
	return r->status;
}

/* The data checked out: the other views of a private mapping must be untouched (check_leak),
 * and a forked child (FORK_AFTER) must keep its data. */
static void judge_private(struct area *a, bool check_leak, int arg, struct twin *t,
			  const char *pass_msg, const char *child_msg, struct result *r)
{
	const char *leak = check_leak ? private_write_leaked(a) : NULL;

	if (leak)
		res_fail(r, "%s", leak);
	else
		res_pass(r, "%s", pass_msg);
	if (r->status == ST_PASS && (arg & FORK_AFTER))
		twin_expect(t, TW_HOLDS_OLD, child_msg, r);
}

/* ---- R/O registrations ------------------------------------------------------ */

static enum status op_ro_write(struct area *a, int arg, struct result *r)
{
	struct twin t = { .p = { .pid = 0 } };
	struct rdma_mr *mr = NULL;
	struct rdma *rd = NULL;
	bool same = false;
	int err;

	if (open_rdma(&rd, r) != ST_PASS)
		return r->status;
	if ((arg & MAP_RO) && area_protect(a, PROT_READ, "before registering")) {
		res_fail(r, "mprotect(PROT_READ) failed");
		goto out;
	}
	err = rdma_reg(rd, a->mem, a->size, false, &mr);
	if (err) {
		res_fail(r, "the R/O registration failed: %s%s", errno_name(-err),
			 (arg & MAP_RO) && (a->type->props & MT_SHARED) ?
			 " (FOLL_WRITE|FOLL_FORCE on a R/O shared mapping?)" : "");
		goto out;
	}
	diag_pagemap("after the R/O registration", a->mem);
	if ((arg & MAP_RO) && area_protect(a, PROT_READ | PROT_WRITE, "after registering")) {
		res_fail(r, "mprotect(PROT_READ|PROT_WRITE) failed");
		goto out;
	}
	if ((arg & FORK_AFTER) && twin_start(&t, a, -1, -1)) {
		res_fail(r, "fork failed");
		goto out;
	}
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("after writing through the mapping", a->mem);
	if (pin_holds(rd, mr, a, GEN_NEW, &same, r) != ST_PASS)
		goto out_twin;
	if (!same) {
		res_fail(r, "the R/O registration does not see the write through the mapping: RDMA reads stale data");
		goto out_twin;
	}
	judge_private(a, a->type->props & MT_PRIVATE, arg, &t,
		      "RDMA READ through the R/O registration sees the write through the mapping",
		      "the child's data changed when the parent wrote", r);
out_twin:
	if (arg & FORK_AFTER)
		twin_end(&t);
out:
	return release(rd, mr, r);
}

static enum status op_ro_file_update(struct area *a, int arg, struct result *r)
{
	struct rdma_mr *mr = NULL;
	struct rdma *rd = NULL;
	bool pin_old = false, map_old;
	char *buf;
	int err;

	(void)arg;
	if (open_rdma(&rd, r) != ST_PASS)
		return r->status;
	err = rdma_reg(rd, a->mem, a->size, false, &mr);
	if (err) {
		res_fail(r, "the R/O registration failed: %s", errno_name(-err));
		goto out;
	}
	diag_pagemap("after the R/O registration", a->mem);
	buf = malloc(a->size);
	err = buf ? 0 : -ENOMEM;
	if (buf) {
		pattern_fill(buf, a->size, GEN_NEW);
		err = pwrite_full(a->fd, buf, a->size, 0);
		free(buf);
	}
	diag("pwrite of the new pattern to the file = %s", ret_name(err));
	if (err) {
		res_fail(r, "pwrite to the file: %s", errno_name(-err));
		goto out;
	}
	map_old = pattern_check("what the process sees", a->mem, a->size, a->old);
	if (pin_holds(rd, mr, a, a->old, &pin_old, r) != ST_PASS)
		goto out;
	if (pin_old != map_old)
		res_fail(r, "the registration and the process disagree after the file changed (registration %s, process %s)",
			 pin_old ? "old" : "not old", map_old ? "old" : "not old");
	else if (!pin_old)
		res_fail(r, "the file update shows through the MAP_PRIVATE mapping and the registration (the page stayed pagecache)");
	else
		res_pass(r, "the registration and the process both keep the MAP_PRIVATE snapshot");
out:
	return release(rd, mr, r);
}

/* soft-dirty: clear it, check it is clear, register R/O, check again. */
static enum status op_ro_soft_dirty(struct area *a, int arg, struct result *r)
{
	struct rdma_mr *mr = NULL;
	struct rdma *rd = NULL;
	uint64_t e = 0;
	int err;

	(void)arg;
	if (clear_soft_dirty())
		return res_skip(r, "cannot clear soft-dirty (/proc/self/clear_refs)");
	if (pagemap_read(a->mem, &e) || (e & PM_SOFT_DIRTY) || !(e & PM_PRESENT))
		return res_skip(r, "cannot establish a present, soft-clean page before registering (pagemap 0x%llx)",
				(unsigned long long)e);
	if (open_rdma(&rd, r) != ST_PASS)
		return r->status;
	err = rdma_reg(rd, a->mem, a->size, false, &mr);
	if (err) {
		res_fail(r, "the R/O registration failed: %s", errno_name(-err));
	} else {
		e = diag_pagemap("after the R/O registration", a->mem);
		if (e & PM_SOFT_DIRTY)
			res_fail(r, "the R/O registration made the page soft-dirty (a write fault: FOLL_WRITE)");
		else
			res_pass(r, "soft-dirty stays clear across the R/O registration");
		rdma_dereg(mr);
	}
	rdma_close(rd);
	return r->status;
}

/* uffd-wp: a thread answers wp faults (so a write-faulting registration does
 * not hang) and counts them. */
struct wp_watch {
	int uffd;
	int stop[2];
	size_t page;
	unsigned int faults;
};

static void *wp_thread(void *p)
{
	struct wp_watch *w = p;
	struct pollfd pfd[2] = { { .fd = w->uffd, .events = POLLIN }, { .fd = w->stop[0], .events = POLLIN } };

	for (;;) {
		struct uffd_msg msg;

		if (poll(pfd, 2, UFFD_WAIT_S * 1000) <= 0 || (pfd[1].revents & POLLIN))
			return NULL;
		if (read(w->uffd, &msg, sizeof(msg)) != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		w->faults++;
		{
			struct uffdio_writeprotect wp = {
				.range = { .start = msg.arg.pagefault.address & ~(uint64_t)(w->page - 1),
					   .len = w->page },
				.mode = 0,
			};
			ioctl(w->uffd, UFFDIO_WRITEPROTECT, &wp);
		}
	}
}

static enum status op_ro_uffd_wp(struct area *a, int arg, struct result *r)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register ureg = { .range = { .start = (uintptr_t)a->mem, .len = a->size },
					.mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = ureg.range, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	struct wp_watch w = { .uffd = -1, .stop = { -1, -1 }, .page = page_size() };
	struct rdma_mr *mr = NULL;
	struct rdma *rd = NULL;
	pthread_t th;
	uint64_t e = 0;
	int err;

	(void)arg;
	w.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (w.uffd < 0)
		return res_skip(r, "userfaultfd: %s", errno_name(errno));
	if (ioctl(w.uffd, UFFDIO_API, &api) || ioctl(w.uffd, UFFDIO_REGISTER, &ureg) ||
	    ioctl(w.uffd, UFFDIO_WRITEPROTECT, &wp)) {
		res_skip(r, "cannot write-protect the area with userfaultfd: %s", errno_name(errno));
		close(w.uffd);
		return r->status;
	}
	if (pagemap_read(a->mem, &e) || !(e & PM_UFFD_WP) || !(e & PM_PRESENT)) {
		res_skip(r, "pagemap does not show the uffd-wp marker on the present page (0x%llx)",
			 (unsigned long long)e);
		close(w.uffd);
		return r->status;
	}
	if (pipe(w.stop) || pthread_create(&th, NULL, wp_thread, &w)) {
		close(w.uffd);
		return res_fail(r, "cannot start the uffd thread");
	}
	if (open_rdma(&rd, r) == ST_PASS) {
		err = rdma_reg(rd, a->mem, a->size, false, &mr);
		e = diag_pagemap("after the R/O registration", a->mem);
		diag("uffd-wp marker after the R/O registration: %s", (e & PM_UFFD_WP) ? "set" : "gone");
		if (err)
			res_fail(r, "the R/O registration failed: %s (%u wp faults)", errno_name(-err), w.faults);
	}
	if (write(w.stop[1], "x", 1) != 1)
		diag("cannot stop the uffd thread");
	pthread_join(th, NULL);
	if (mr) {
		if (w.faults || !(e & PM_UFFD_WP))
			res_fail(r, "the R/O registration write-faulted on a uffd-wp protected page (%u wp faults, marker %s)",
				 w.faults, (e & PM_UFFD_WP) ? "kept" : "resolved");
		else
			res_pass(r, "no wp fault and the uffd-wp marker stays across the R/O registration");
	}
	if (mr)
		rdma_dereg(mr);
	rdma_close(rd);
	close(w.stop[0]);
	close(w.stop[1]);
	close(w.uffd);
	return r->status;
}

/* ---- R/W registrations ------------------------------------------------------ */

static enum status op_rw_shared(struct area *a, int arg, struct result *r)
{
	bool refuse = a->type->props & MT_BLOCKFS;
	struct rdma_mr *mr = NULL;
	struct rdma *rd = NULL;
	int err;

	(void)arg;
	if (open_rdma(&rd, r) != ST_PASS)
		return r->status;
	err = rdma_reg(rd, a->mem, a->size, true, &mr);
	if (refuse) {
		if (err == -EFAULT)
			res_pass(r, "refused with EFAULT: no writable long-term pin of a dirty-tracked shared file mapping");
		else
			res_fail(r, "writable registration of an ext4 MAP_SHARED mapping: %s, expected EFAULT",
				 err ? errno_name(-err) : "granted");
	} else if (err) {
		res_fail(r, "the R/W registration failed: %s", errno_name(-err));
	} else if (write_through_pin(rd, mr, a, GEN_NEW, r) == ST_PASS) {
		if (!pattern_check("the mapping after the RDMA WRITE", a->mem, a->size, GEN_NEW))
			res_fail(r, "the RDMA WRITE does not show in the shared mapping");
		else if ((a->type->props & MT_FILE) && !file_holds(a->fd, a->size, GEN_NEW, "file content (pread)"))
			res_fail(r, "the RDMA WRITE does not show in the file");
		else
			res_pass(r, "the RDMA WRITE shows in the shared mapping%s",
				 (a->type->props & MT_FILE) ? " and the file" : "");
	}
	return release(rd, mr, r);
}

static enum status op_rw_private(struct area *a, int arg, struct result *r)
{
	struct twin t = { .p = { .pid = 0 } };
	struct rdma_mr *mr = NULL;
	struct rdma *rd = NULL;
	int err;

	if (open_rdma(&rd, r) != ST_PASS)
		return r->status;
	err = rdma_reg(rd, a->mem, a->size, true, &mr);
	if (err) {
		res_fail(r, "the R/W registration failed: %s", errno_name(-err));
		goto out;
	}
	if ((arg & FORK_AFTER) && twin_start(&t, a, -1, -1)) {
		res_fail(r, "fork failed");
		goto out;
	}
	if (write_through_pin(rd, mr, a, GEN_NEW, r) != ST_PASS)
		goto out_twin;
	diag_pagemap("after the RDMA WRITE", a->mem);
	if (!pattern_check("the mapping after the RDMA WRITE", a->mem, a->size, GEN_NEW)) {
		res_fail(r, "the RDMA WRITE does not show in the process's mapping (the pin is not the mapped page)");
		goto out_twin;
	}
	judge_private(a, true, arg, &t, "the RDMA WRITE shows in the private mapping only",
		      "the RDMA WRITE into the parent's registration reached the child", r);
out_twin:
	if (arg & FORK_AFTER)
		twin_end(&t);
out:
	return release(rd, mr, r);
}

#define MEMS_RDMA_ANON (MEM(MEM_BASE) | MEM(MEM_THP) | MEM(MEM_HUGETLB_2M))
#define MEMS_RDMA_FILE_PRIVATE (MEM(MEM_MEMFD_PRIVATE) | MEM(MEM_TMPFS_PRIVATE) | MEM(MEM_EXT4_PRIVATE))
#define MEMS_RDMA_PRIVATE (MEMS_RDMA_ANON | MEM(MEM_ZEROPAGE) | MEMS_RDMA_FILE_PRIVATE)
#define MEMS_RDMA_SHARED (MEM(MEM_ANON_SHARED) | MEM(MEM_MEMFD_SHARED) | MEM(MEM_TMPFS_SHARED) | \
			  MEM(MEM_EXT4_SHARED))
#define RDMA_OP(id, text, fn, a, m) \
	{ .name = id, .desc = text, .run = fn, .arg = a, .mems = m, .need = need_rdma }

static const struct cow_op ops[] = {
	RDMA_OP("rdma-ro.write", "R/O RDMA registration, then a write through the mapping; RDMA READ",
		op_ro_write, 0, MEMS_RDMA_PRIVATE | MEMS_RDMA_SHARED),
	RDMA_OP("rdma-ro.ro-mapping", "R/O RDMA registration of a PROT_READ mapping, then mprotect(RW), write; RDMA READ",
		op_ro_write, MAP_RO, MEMS_RDMA_PRIVATE | MEMS_RDMA_SHARED),
	RDMA_OP("rdma-ro.fork", "R/O RDMA registration, fork, the parent writes; RDMA READ; the child keeps its data",
		op_ro_write, FORK_AFTER, MEMS_RDMA_ANON),
	RDMA_OP("rdma-ro.file-update", "R/O RDMA registration of a MAP_PRIVATE file page, then pwrite to the file; RDMA READ",
		op_ro_file_update, 0, MEMS_RDMA_FILE_PRIVATE),
	RDMA_OP("rdma-ro.soft-dirty", "R/O RDMA registration after clear_refs: soft-dirty must stay clear",
		op_ro_soft_dirty, 0, MEM(MEM_BASE) | MEM(MEM_THP) | MEM(MEM_ZEROPAGE) | MEM(MEM_MEMFD_PRIVATE) |
		MEM(MEM_EXT4_PRIVATE)),
	RDMA_OP("rdma-ro.uffd-wp", "R/O RDMA registration of a uffd-wp protected page: no wp fault, marker kept",
		op_ro_uffd_wp, 0, MEM(MEM_BASE) | MEM(MEM_THP)),
	RDMA_OP("rdma-rw.shared", "R/W RDMA registration of a MAP_SHARED mapping; RDMA WRITE (ext4: refused)",
		op_rw_shared, 0, MEMS_RDMA_SHARED),
	RDMA_OP("rdma-rw.private", "R/W RDMA registration of private memory; RDMA WRITE: the process sees it, the file does not",
		op_rw_private, 0, MEMS_RDMA_PRIVATE),
	RDMA_OP("rdma-rw.fork", "R/W RDMA registration, fork; RDMA WRITE: the parent sees it, the child does not",
		op_rw_private, FORK_AFTER, MEMS_RDMA_ANON),
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
