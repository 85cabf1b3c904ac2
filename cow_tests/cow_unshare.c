// SPDX-License-Identifier: GPL-2.0
/*
 * Which accesses to a COW-shared anonymous page unshare it. After fork (the
 * child stays alive) the parent's page is shared: pagemap "exclusive" (bit
 * 56) is 0. A R/O pin (FOLL_PIN) of a possibly shared anonymous page must
 * unshare it first (5.19), so the pin can never go stale: the parent gets
 * its own copy and excl becomes 1. A plain reference (FOLL_GET) does not.
 *
 *   process-vm-readv  pin_user_pages_remote: 0 -> 1
 *   proc-mem          /proc/self/mem read, FOLL_GET|FOLL_FORCE: stays 0
 *   vmsplice          FOLL_GET: stays 0
 *   odirect-write     O_DIRECT write from the page to an ext4 file: FOLL_PIN
 *                     since 6.5 (a7e689dd1c06): 0 -> 1; 6.1: FOLL_GET, stays 0
 *   odirect-read      O_DIRECT read into the page: a write, COW broken: 0 -> 1,
 *                     and the child keeps its data
 *
 * process-vm-readv and the two O_DIRECT ones run on every anonymous type but
 * the THP forms made for fork (single PTE, mremap, partially shared);
 * proc-mem and vmsplice on base and PMD THP. Each case also checks the data
 * the access moved. odirect.tmpfs-file:
 * tmpfs accepts O_DIRECT since 6.6 (e88e0d366f9c); before, open() fails
 * with EINVAL.
 *
 * A R/O access must not look like a write to write tracking
 * (docs/semantics.md#write-tracking): unsharing a COW-shared page for a pin
 * copies it, and the copy must keep the soft-dirty and uffd-wp state of the
 * PTE it replaces.
 *   softdirty-clean.{process-vm-readv,odirect-write}: clear_refs (sd=0 on
 *       every page, else SKIP), the access, still sd=0 on every page
 *   uffd-wp-kept.{process-vm-readv,odirect-write}: the area uffd-wp
 *       protected (the bit on every page, else SKIP), the access, the bit
 *       still on every page
 * on COW-shared anonymous memory (a child alive) and on read-faulted
 * MAP_PRIVATE pagecache / shmem pages; the access covers the whole area.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

enum access { ACC_READV, ACC_PROC_MEM, ACC_VMSPLICE, ACC_DIO_WRITE, ACC_DIO_READ };

#define EXPECT_UNSHARE 0x100
#define ACCESS_OF(arg) ((enum access)((arg) & 0xff))

static const char *const access_name[] = {
	[ACC_READV] = "process_vm_readv",
	[ACC_PROC_MEM] = "pread of /proc/self/mem",
	[ACC_VMSPLICE] = "vmsplice",
	[ACC_DIO_WRITE] = "O_DIRECT pwrite from the page",
	[ACC_DIO_READ] = "O_DIRECT pread into the page",
};

/* What an access needs: a buffer, a pipe, a file (and its O_DIRECT twin). */
struct access_ctx {
	char *buf;
	int pipe_fd[2];
	int fd, dio_fd;
};

static void ctx_free(struct access_ctx *c)
{
	int *fds[] = { &c->pipe_fd[0], &c->pipe_fd[1], &c->fd, &c->dio_fd };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(c->buf);
}

/* A file on fs (magic) opened twice, the second time with O_DIRECT; -1 and r set. */
static int dio_file(unsigned long magic, struct access_ctx *c, struct result *r)
{
	const char *dir = fs_dir(magic, r);

	if (!dir)
		return -1;
	c->fd = tmpfile_in(dir, r);
	if (c->fd < 0)
		return -1;
	c->dio_fd = reopen_fd(c->fd, O_RDWR | O_DIRECT);
	diag("open(O_DIRECT) of the file in %s = %s", dir, ret_name(c->dio_fd));
	if (c->dio_fd < 0) {
		res_fail(r, "open(O_DIRECT) of a file in %s: %s", dir, errno_name(-c->dio_fd));
		return -1;
	}
	return 0;
}

static enum status ctx_prepare(enum access acc, struct access_ctx *c, size_t len, struct result *r)
{
	*c = (struct access_ctx){ .pipe_fd = { -1, -1 }, .fd = -1, .dio_fd = -1 };
	c->buf = aligned_alloc(page_size(), len);
	if (!c->buf)
		return res_fail(r, "aligned_alloc: ENOMEM");
	if (acc == ACC_VMSPLICE && pipe2(c->pipe_fd, O_CLOEXEC))
		return res_fail(r, "pipe: %s", errno_name(errno));
	if (acc != ACC_DIO_WRITE && acc != ACC_DIO_READ)
		return ST_PASS;
	if (dio_file(EXT4_MAGIC_NR, c, r))
		return r->status;
	if (acc == ACC_DIO_READ) {
		/* The file holds the new pattern: the read brings it into the page. */
		pattern_fill(c->buf, len, GEN_NEW);
		if (pwrite_full(c->fd, c->buf, len, 0) || fsync(c->fd))
			return res_fail(r, "preparing the file: %s", errno_name(errno));
	}
	return ST_PASS;
}

/* Do the access on [mem, mem+len); 0 or -errno. */
static long do_access(enum access acc, struct access_ctx *c, char *mem, size_t len)
{
	struct iovec local = { c->buf, len }, remote = { mem, len };
	long ret = -EINVAL;
	int fd;

	switch (acc) {
	case ACC_READV:
		ret = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
		break;
	case ACC_PROC_MEM:
		fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
		ret = fd < 0 ? -1 : pread(fd, c->buf, len, (off_t)(uintptr_t)mem);
		if (fd >= 0)
			close(fd);
		break;
	case ACC_VMSPLICE:
		return splice_in(c->pipe_fd[1], mem, len, "parent") == (ssize_t)len ? 0 : -EIO;
	case ACC_DIO_WRITE:
		ret = pwrite(c->dio_fd, mem, len, 0);
		break;
	case ACC_DIO_READ:
		ret = pread(c->dio_fd, mem, len, 0);
		break;
	}
	ret = ret < 0 ? -errno : ret == (long)len ? 0 : -EIO;
	diag("%s of %zu bytes = %s", access_name[acc], len, ret_name(ret));
	return ret;
}

/* Did the access move the right data? */
static bool access_data_ok(enum access acc, struct access_ctx *c, const struct area *a, size_t len)
{
	switch (acc) {
	case ACC_VMSPLICE:
		return pipe_holds(c->pipe_fd[0], len, a->old, "pipe content");
	case ACC_DIO_WRITE:
		return file_holds(c->fd, len, a->old, "file written with O_DIRECT");
	case ACC_DIO_READ:
		return pattern_check("the page after the O_DIRECT read", a->mem, len, GEN_NEW);
	default:
		return pattern_check("data read", c->buf, len, a->old);
	}
}

static enum status judge_excl(enum access acc, bool got, bool want, const char *how, struct result *r)
{
	if (got != want)
		return res_fail(r, "after %s the page is %s (%s), expected %s (%s)", access_name[acc],
				got ? "unshared" : "still shared", how, want ? "unshared" : "shared",
				want ? "a pin must unshare the COW-shared page" :
				       "a plain reference leaves the page shared");
	return res_pass(r, "%s after %s (%s); data as expected", got ? "unshared" : "still shared",
			access_name[acc], how);
}

/*
 * Is the parent's page now its own? Where the pfns can be read (root): it is
 * another page than the child's. Else pagemap excl (a mapcount of 1), which
 * is not always right for 1 GiB hugetlb pages: 6.12 shows excl=0 now and then
 * on a page a fresh process just faulted in.
 */
static bool unshared_from(struct twin *t, const void *addr, uint64_t e, char *how, size_t len)
{
	uint64_t theirs = 0;
	uint64_t mine = (e & PM_PRESENT) ? e & PM_PFN_MASK : 0;

	if (!pagemap_range_of(t->p.pid, addr, 1, &theirs) && (theirs & PM_PRESENT))
		theirs &= PM_PFN_MASK;
	else
		theirs = 0;
	if (mine && theirs) {
		snprintf(how, len, "pfn 0x%llx, the child's 0x%llx", (unsigned long long)mine,
			 (unsigned long long)theirs);
		return mine != theirs;
	}
	snprintf(how, len, "pagemap excl=%d, pfns hidden", !!(e & PM_EXCLUSIVE));
	return e & PM_EXCLUSIVE;
}

struct unshare_ctx {
	enum access acc;
	bool want;		/* the access must make the page exclusive */
	struct access_ctx c;
};

/* In the parent, the twin alive (the page COW-shared): access it, observe. */
static enum status access_shared_page(struct twin *t, void *ctx, struct result *r)
{
	struct unshare_ctx *u = ctx;
	size_t len = page_size();
	struct area *a = t->a;
	bool unshared;
	char how[96];
	uint64_t e;
	long err;

	e = diag_pagemap("parent after fork (child alive)", a->mem);
	if (unshared_from(t, a->mem, e, how, sizeof(how)))
		return res_fail(r, "the page is not COW-shared right after fork (%s): nothing to observe", how);
	err = do_access(u->acc, &u->c, a->mem, len);
	e = diag_pagemap("parent after the access", a->mem);
	if (err)
		return res_fail(r, "%s failed: %s", access_name[u->acc], errno_name((int)-err));
	if (!access_data_ok(u->acc, &u->c, a, len))
		return res_fail(r, "%s moved the wrong data", access_name[u->acc]);
	/*
	 * The child reads its view (its data must not have changed) and so maps its page:
	 * excl (a mapcount of 1) says "not shared" only once both sides map what they
	 * share. A swapped-out page the access swapped in is mapped by the parent alone
	 * while the child still holds the swap entry.
	 */
	if (twin_expect(t, TW_HOLDS_OLD, "the child's data changed after the parent's access (leak)",
			r) != ST_PASS)
		return r->status;
	e = diag_pagemap("parent after the child read its view", a->mem);
	unshared = unshared_from(t, a->mem, e, how, sizeof(how));
	return judge_excl(u->acc, unshared, u->want, how, r);
}

static enum status op_unshare(struct area *a, int arg, struct result *r)
{
	struct unshare_ctx u = { .acc = ACCESS_OF(arg), .want = arg & EXPECT_UNSHARE };

	if (ctx_prepare(u.acc, &u.c, page_size(), r) == ST_PASS)
		with_twin(a, -1, -1, access_shared_page, &u, r);
	ctx_free(&u.c);
	return r->status;
}

#define CHECK_UFFD_WP 0x200

struct clean_ctx {
	enum access acc;
	bool uffd;		/* check the uffd-wp bits, else the soft-dirty bits */
	struct access_ctx c;
};

/* Arm the tracking, do the R/O access on the whole area, check it left no trace. */
static enum status access_stays_clean(struct twin *t, void *ctx, struct result *r)
{
	struct clean_ctx *u = ctx;
	struct area *a = t->a;
	size_t n = a->size / page_size();
	uint64_t bit = u->uffd ? PM_UFFD_WP : PM_SOFT_DIRTY;
	const char *what = u->uffd ? "uffd-wp" : "soft-dirty";
	int uffd = -1;
	long err, i;

	if ((a->type->props & MT_ANON) &&
	    (diag_pagemap("parent after fork (child alive)", a->mem) & PM_EXCLUSIVE))
		return res_skip(r, "the page is not COW-shared after fork (pagemap excl=1 with the child alive)");
	if (u->uffd) {
		uffd = uffd_wp_area(a, r);
		if (uffd < 0)
			return r->status;
	} else if (softdirty_clear_checked(a, r) != ST_PASS ||
		   area_sd_clean(a, "before the access", r) != ST_PASS) {
		return r->status;
	}
	err = do_access(u->acc, &u->c, a->mem, a->size);
	diag_pagemap("after the access", a->mem);
	if (err)
		res_fail(r, "%s failed: %s", access_name[u->acc], errno_name((int)-err));
	else if (!access_data_ok(u->acc, &u->c, a, a->size))
		res_fail(r, "%s moved the wrong data", access_name[u->acc]);
	else if ((i = area_first_page_not(a, bit, u->uffd)) < 0)
		res_fail(r, "pagemap after the access: %s", errno_name((int)-i));
	else if ((size_t)i < n)
		res_fail(r, "page %ld of %zu %s after %s (a R/O access must not look like a write)", i, n,
			 u->uffd ? "lost its uffd-wp bit" : "became soft-dirty", access_name[u->acc]);
	else
		res_pass(r, "%s state of all %zu pages unchanged by %s", what, n, access_name[u->acc]);
	if (uffd >= 0)
		close(uffd);
	return r->status;
}

static enum status op_stays_clean(struct area *a, int arg, struct result *r)
{
	struct clean_ctx u = { .acc = ACCESS_OF(arg), .uffd = arg & CHECK_UFFD_WP };
	struct twin alone = { .a = a };

	if (ctx_prepare(u.acc, &u.c, a->size, r) == ST_PASS) {
		if (a->type->props & MT_ANON)	/* COW-shared with a live child */
			with_twin(a, -1, -1, access_stays_clean, &u, r);
		else				/* the MAP_PRIVATE pagecache page itself */
			access_stays_clean(&alone, &u, r);
	}
	ctx_free(&u.c);
	return r->status;
}

static enum status op_odirect_tmpfs(struct area *a, int arg, struct result *r)
{
	struct access_ctx c;
	long err;

	(void)arg;
	if (ctx_prepare(ACC_READV, &c, a->size, r) != ST_PASS || dio_file(TMPFS_MAGIC_NR, &c, r))
		goto out;
	err = pwrite(c.dio_fd, a->mem, a->size, 0) == (ssize_t)a->size ? 0 : -errno;
	diag("O_DIRECT pwrite of %zu bytes = %s", a->size, ret_name(err));
	if (err) {
		res_fail(r, "O_DIRECT pwrite to tmpfs: %s", errno_name((int)-err));
		goto out;
	}
	err = pread(c.dio_fd, c.buf, a->size, 0) == (ssize_t)a->size ? 0 : -errno;
	diag("O_DIRECT pread of %zu bytes = %s", a->size, ret_name(err));
	if (err)
		res_fail(r, "O_DIRECT pread from tmpfs: %s", errno_name((int)-err));
	else if (!pattern_check("data read back with O_DIRECT", c.buf, a->size, a->old))
		res_fail(r, "O_DIRECT round trip through tmpfs returned other data");
	else
		res_pass(r, "tmpfs accepts O_DIRECT; round trip ok");
out:
	ctx_free(&c);
	return r->status;
}

#define MEMS_UNSHARE (MEM(MEM_BASE) | MEM(MEM_THP))
/* The pins' unsharing beyond base and PMD THP: swapped-out pages (swap-in, then unshare), the
 * PTE-mapped THP, every mTHP size, and hugetlb, which unshares in hugetlb_wp(). */
#define MEMS_UNSHARE_ALL (MEMS_UNSHARE | MEM(MEM_BASE_SWAP) | MEM(MEM_THP_SWAP) | MEM(MEM_THP_PTE) | \
			  MEM(MEM_THP_PTE_SWAP) | MEM_RANGE(MEM_MTHP_16K, MEM_MTHP_1024K) | \
			  MEM(MEM_HUGETLB_2M) | MEM(MEM_HUGETLB_1G))
#define MEMS_PAGECACHE_PRIVATE (MEM(MEM_MEMFD_PRIVATE) | MEM(MEM_TMPFS_PRIVATE) | MEM(MEM_EXT4_PRIVATE))
/* uffd-wp: anonymous memory and shmem (ext4 mappings cannot be registered) */
#define MEMS_UFFD_WP (MEMS_UNSHARE | MEM(MEM_MEMFD_PRIVATE) | MEM(MEM_TMPFS_PRIVATE))

static const struct cow_op ops[] = {
	{ .name = "unshare.process-vm-readv",
	  .desc = "COW-shared page, process_vm_readv of it: pinned R/O, must be unshared (excl 0->1)",
	  .run = op_unshare, .arg = ACC_READV | EXPECT_UNSHARE, .mems = MEMS_UNSHARE_ALL },
	{ .name = "unshare.proc-mem",
	  .desc = "COW-shared page, pread of /proc/self/mem at it: no pin, stays shared (excl 0)",
	  .run = op_unshare, .arg = ACC_PROC_MEM, .mems = MEMS_UNSHARE },
	{ .name = "unshare.vmsplice",
	  .desc = "COW-shared page, vmsplice of it: no pin, stays shared (excl 0)",
	  .run = op_unshare, .arg = ACC_VMSPLICE, .mems = MEMS_UNSHARE },
	{ .name = "unshare.odirect-write",
	  .desc = "COW-shared page, O_DIRECT write from it to ext4: pinned R/O, unshared (excl 0->1)",
	  .run = op_unshare, .arg = ACC_DIO_WRITE | EXPECT_UNSHARE, .mems = MEMS_UNSHARE_ALL },
	{ .name = "unshare.odirect-read",
	  .desc = "COW-shared page, O_DIRECT read from ext4 into it: COW broken (excl 0->1), child keeps its data",
	  .run = op_unshare, .arg = ACC_DIO_READ | EXPECT_UNSHARE, .mems = MEMS_UNSHARE_ALL },
	{ .name = "softdirty-clean.process-vm-readv",
	  .desc = "clear_refs, process_vm_readv of the whole area (a R/O pin): every page still sd=0",
	  .run = op_stays_clean, .arg = ACC_READV, .mems = MEMS_UNSHARE | MEMS_PAGECACHE_PRIVATE },
	{ .name = "softdirty-clean.odirect-write",
	  .desc = "clear_refs, O_DIRECT write from the whole area to ext4 (a R/O pin): every page still sd=0",
	  .run = op_stays_clean, .arg = ACC_DIO_WRITE, .mems = MEMS_UNSHARE | MEMS_PAGECACHE_PRIVATE },
	{ .name = "uffd-wp-kept.process-vm-readv",
	  .desc = "uffd-wp protect, process_vm_readv of the whole area (a R/O pin): every page keeps its uffd-wp bit",
	  .run = op_stays_clean, .arg = ACC_READV | CHECK_UFFD_WP, .mems = MEMS_UFFD_WP },
	{ .name = "uffd-wp-kept.odirect-write",
	  .desc = "uffd-wp protect, O_DIRECT write from the whole area to ext4 (a R/O pin): every page keeps its uffd-wp bit",
	  .run = op_stays_clean, .arg = ACC_DIO_WRITE | CHECK_UFFD_WP, .mems = MEMS_UFFD_WP },
	{ .name = "odirect.tmpfs-file",
	  .desc = "open a tmpfs file with O_DIRECT, write the page and read it back",
	  .run = op_odirect_tmpfs, .mems = MEM(MEM_BASE) },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
