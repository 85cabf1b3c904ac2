// SPDX-License-Identifier: GPL-2.0
/*
 * Shared framework for the guest-side COW / pinning test programs:
 * KTAP output, the case driver, data patterns, /proc observations, the
 * settings journal, helper processes, pipes and scratch files. See common.h.
 * The memory types live in memtypes.c.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- results and diagnostics --------------------------------------------- */

static enum status res_set(struct result *r, enum status st, const char *fmt, va_list ap)
{
	char *c;

	r->status = st;
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	/* The reason ends up on one KTAP line. */
	for (c = r->reason; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	return st;
}

#define DEFINE_RES(fn, st)						\
enum status fn(struct result *r, const char *fmt, ...)			\
{									\
	va_list ap;							\
	enum status ret;						\
									\
	va_start(ap, fmt);						\
	ret = res_set(r, st, fmt, ap);					\
	va_end(ap);							\
	return ret;							\
}

DEFINE_RES(res_pass, ST_PASS)
DEFINE_RES(res_fail, ST_FAIL)
DEFINE_RES(res_skip, ST_SKIP)

void diag(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	char *c;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (c = buf; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	printf("# %s\n", buf);
	fflush(stdout);
}

const char *errno_name(int err)
{
	static __thread char other[24];

	switch (err) {
#define E(x) case x: return #x;
	E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG)
	E(ENOEXEC) E(EBADF) E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES)
	E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR)
	E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY)
	E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE)
	E(ERANGE) E(EDEADLK) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY)
	E(ELOOP) E(EOVERFLOW) E(EBADFD) E(EOPNOTSUPP) E(ETIMEDOUT)
	E(ECANCELED) E(EOWNERDEAD) E(EHWPOISON) E(EMSGSIZE)
#undef E
	case 0:
		return "0";
	}
	snprintf(other, sizeof(other), "errno %d", err);
	return other;
}

const char *ret_name(long ret)
{
	return ret >= 0 ? "ok" : errno_name((int)-ret);
}

/* ---- small file helpers ---------------------------------------------------- */

int read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

long read_long(const char *path)
{
	char buf[64];
	int err = read_text(path, buf, sizeof(buf));

	return err ? err : strtol(buf, NULL, 10);
}

static int write_text(const char *path, const char *value)
{
	size_t len = strlen(value);
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		err = errno ? -errno : -EIO;
	close(fd);
	return err;
}

/*
 * Move exactly len bytes: pread/pwrite at off, or read() when off < 0.
 * 0 or -errno; a short transfer (EOF) is -EIO.
 */
static int xfer_full(int fd, void *buf, size_t len, off_t off, bool write_it)
{
	size_t done = 0;

	while (done < len) {
		char *p = (char *)buf + done;
		ssize_t n;

		if (write_it)
			n = pwrite(fd, p, len - done, off + done);
		else
			n = off < 0 ? read(fd, p, len - done) : pread(fd, p, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

int pread_full(int fd, void *buf, size_t len, off_t off)
{
	return xfer_full(fd, buf, len, off, false);
}

int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	return xfer_full(fd, (void *)buf, len, off, true);
}

int read_full(int fd, void *buf, size_t len)
{
	return xfer_full(fd, buf, len, -1, false);
}

/* Read len bytes (at off, or from a pipe when off < 0) and pattern_check them. */
static bool fd_holds(int fd, size_t len, off_t off, enum pattern_gen gen, const char *who)
{
	char *buf = malloc(len ? len : 1);
	bool same = false;
	int err;

	if (!buf)
		return false;
	err = xfer_full(fd, buf, len, off, false);
	if (err)
		diag("%s: reading %zu bytes: %s", who, len, errno_name(-err));
	else
		same = pattern_check(who, buf, len, gen);
	free(buf);
	return same;
}

/* ---- sizes ----------------------------------------------------------------- */

size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

size_t thp_pmd_size(void)
{
	long v = read_long("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");

	if (v <= 0) {
		errno = v < 0 ? (int)-v : EINVAL;
		return 0;
	}
	return (size_t)v;
}

/* ---- data patterns --------------------------------------------------------- */

/*
 * Block b of GEN_OLD is PAT_BLOCK bytes of old_src starting at (b * 101) %
 * PAT_PERIOD; old_src[j] = 1 + (13 j mod 253) is never 0x00 nor 0xff, so its
 * complement (GEN_NEW) has no zero byte either.
 */
#define PAT_BLOCK 4096
#define PAT_PERIOD 253

static uint8_t old_src[PAT_BLOCK + PAT_PERIOD], new_src[PAT_BLOCK + PAT_PERIOD];
static const uint8_t zero_src[PAT_BLOCK];

static const uint8_t *pattern_block(size_t block, enum pattern_gen gen)
{
	size_t j, shift = (block * 101) % PAT_PERIOD;

	if (!old_src[0]) {
		for (j = 0; j < sizeof(old_src); j++) {
			old_src[j] = (uint8_t)(1 + (j * 13) % PAT_PERIOD);
			new_src[j] = (uint8_t)~old_src[j];
		}
	}
	switch (gen) {
	case GEN_OLD:
		return old_src + shift;
	case GEN_NEW:
		return new_src + shift;
	default:
		return zero_src;
	}
}

uint8_t pattern_byte(size_t off, enum pattern_gen gen)
{
	return pattern_block(off / PAT_BLOCK, gen)[off % PAT_BLOCK];
}

void pattern_fill(void *buf, size_t len, enum pattern_gen gen)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < PAT_BLOCK ? len - off : PAT_BLOCK;
		memcpy((char *)buf + off, pattern_block(off / PAT_BLOCK, gen), n);
	}
}

static const char *gen_name(enum pattern_gen gen)
{
	return gen == GEN_OLD ? "old" : gen == GEN_NEW ? "new" : "zero";
}

bool pattern_check(const char *who, const void *buf, size_t len, enum pattern_gen gen)
{
	return pattern_check_at(who, buf, len, 0, gen);
}

bool pattern_check_at(const char *who, const void *buf, size_t len, size_t base, enum pattern_gen gen)
{
	size_t count[4] = { 0 }, first_bad = len, off, n, i;
	const uint8_t *p = buf;

	for (off = 0; off < len; off += n) {
		size_t b = (base + off) / PAT_BLOCK;
		int g;

		n = len - off < PAT_BLOCK ? len - off : PAT_BLOCK;
		if (!memcmp(p + off, pattern_block(b, gen), n)) {
			count[gen]++;
			continue;
		}
		for (g = GEN_OLD; g <= GEN_ZERO; g++)
			if (g != (int)gen && !memcmp(p + off, pattern_block(b, g), n))
				break;
		count[g]++;	/* g == 3: a mix */
		for (i = 0; first_bad == len && i < n; i++)
			if (p[off + i] != pattern_block(b, gen)[i])
				first_bad = off + i;
	}
	if (first_bad == len) {
		diag("%s: %zu bytes: all %s as expected", who, len, gen_name(gen));
		return true;
	}
	diag("%s: %zu bytes in 4 KiB blocks: %zu old, %zu new, %zu zero, %zu mixed: first byte not %s at offset %zu (got 0x%02x, want 0x%02x)",
	     who, len, count[GEN_OLD], count[GEN_NEW], count[GEN_ZERO], count[3], gen_name(gen),
	     base + first_bad, p[first_bad], pattern_byte(base + first_bad, gen));
	return false;
}

bool area_holds_old(const char *who, const struct area *a)
{
	return pattern_check(who, a->mem, a->size, a->old);
}

const char *private_write_leaked(const struct area *a)
{
	if (a->alias && !pattern_check("the other mapping of the same content", a->alias, a->size, a->old))
		return "the write through the private mapping shows in the other mapping";
	if ((a->type->props & MT_FILE) && !file_holds(a->fd, a->size, a->old, "file content (pread)"))
		return "the write through the private mapping reached the file";
	return NULL;
}

/* ---- /proc observations ------------------------------------------------------ */

int pagemap_read(const void *addr, uint64_t *entry)
{
	return pagemap_range(addr, 1, entry);
}

uint64_t diag_pagemap(const char *label, const void *addr)
{
	uint64_t e;
	int err = pagemap_read(addr, &e);

	if (err) {
		diag("%s: pagemap unreadable: %s", label, errno_name(-err));
		return 0;
	}
	diag("%s: pagemap present=%d swap=%d file=%d excl=%d sd=%d pfn=0x%llx",
	     label, !!(e & PM_PRESENT), !!(e & PM_SWAP), !!(e & PM_FILE),
	     !!(e & PM_EXCLUSIVE), !!(e & PM_SOFT_DIRTY),
	     (e & PM_PRESENT) ? (unsigned long long)(e & PM_PFN_MASK) : 0ULL);
	return e;
}

uint64_t pagemap_pfn(const void *addr)
{
	uint64_t e;

	if (pagemap_read(addr, &e) || !(e & PM_PRESENT))
		return 0;
	return e & PM_PFN_MASK;
}

long smaps_field_kb(const void *addr, const char *field)
{
	uintptr_t a = (uintptr_t)addr;
	size_t flen = strlen(field), cap = 0;
	bool in_vma = false;
	char *line = NULL;
	long ret = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned long start, end;
		char perms[8];

		/* Header lines are "start-end perms ..."; field names never parse as that. */
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) == 3) {
			if (in_vma)
				break;
			in_vma = a >= start && a < end;
			continue;
		}
		if (in_vma && !strncmp(line, field, flen) && line[flen] == ':') {
			ret = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	free(line);
	fclose(f);
	return ret;
}

int clear_soft_dirty(void)
{
	int err = write_text("/proc/self/clear_refs", "4");

	if (err)
		diag("clear_refs: writing \"4\" to /proc/self/clear_refs: %s: soft-dirty clearing step skipped",
		     errno_name(-err));
	else
		diag("clear_refs: wrote \"4\" (soft-dirty bits cleared)");
	return err;
}

int pagemap_range(const void *addr, size_t n, uint64_t *entries)
{
	return pagemap_range_of(0, addr, n, entries);
}

int pagemap_range_of(pid_t pid, const void *addr, size_t n, uint64_t *entries)
{
	off_t off = (off_t)((uintptr_t)addr / page_size()) * sizeof(*entries);
	char path[64];
	int fd, err;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = pread_full(fd, entries, n * sizeof(*entries), off);
	close(fd);
	return err;
}

enum status softdirty_clear_checked(const struct area *a, struct result *r)
{
	uint64_t e;
	int err;

	e = diag_pagemap("before clearing soft-dirty", a->mem);
	if (!(e & PM_SOFT_DIRTY))
		return res_skip(r, "soft-dirty is not tracked (sd=0 on a new, written page: no CONFIG_MEM_SOFT_DIRTY?)");
	err = clear_soft_dirty();
	if (err)
		return res_skip(r, "cannot clear soft-dirty (clear_refs \"4\": %s)", errno_name(-err));
	return ST_PASS;
}

long area_first_page_not(const struct area *a, uint64_t mask, bool set)
{
	size_t n = a->size / page_size(), i;
	uint64_t *e = malloc(n * sizeof(*e));
	int err = e ? pagemap_range(a->mem, n, e) : -ENOMEM;

	if (err) {
		free(e);
		return err;
	}
	for (i = 0; i < n && (e[i] & mask) == (set ? mask : 0); i++)
		;
	free(e);
	return (long)i;
}

enum status area_sd_clean(const struct area *a, const char *when, struct result *r)
{
	size_t n = a->size / page_size();
	long i = area_first_page_not(a, PM_SOFT_DIRTY, false);

	if (i < 0)
		return res_skip(r, "cannot check soft-dirty %s: pagemap: %s", when, errno_name((int)-i));
	if ((size_t)i < n)
		return res_skip(r, "page %ld of %zu is soft-dirty %s: its write need not fault", i, n,
				when);
	diag("soft-dirty %s: sd=0 on all %zu pages", when, n);
	return ST_PASS;
}

/* ---- userfaultfd write-protection ---------------------------------------------- */

int uffd_wp_range(int uffd, void *addr, size_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

int uffd_wp_area(struct area *a, struct result *r)
{
	bool anon = a->type->props & MT_ANON;
	struct uffdio_api api = {
		.api = UFFD_API,
		/* anonymous memory has had WP since 5.7; shmem and hugetlb need this (5.19) */
		.features = anon ? 0 : UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	};
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)a->mem, .len = a->size },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	size_t n = a->size / page_size();
	long i;
	int fd, err;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		res_skip(r, "userfaultfd: %s", errno_name(errno));
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		res_skip(r, "UFFDIO_API (features 0x%llx): %s%s", (unsigned long long)(anon ? 0 :
			 UFFD_FEATURE_WP_HUGETLBFS_SHMEM), errno_name(errno),
			 anon ? "" : " (uffd-wp on shmem/hugetlb came in 5.19)");
		close(fd);
		return -1;
	}
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		res_skip(r, "UFFDIO_REGISTER(MODE_WP) of the %s: %s", a->type->name, errno_name(errno));
		close(fd);
		return -1;
	}
	err = uffd_wp_range(fd, a->mem, a->size, true);
	diag("userfaultfd: registered %zu bytes in WP mode, UFFDIO_WRITEPROTECT = %s", a->size,
	     ret_name(err));
	if (err) {
		res_skip(r, "UFFDIO_WRITEPROTECT: %s", errno_name(-err));
		close(fd);
		return -1;
	}
	i = area_first_page_not(a, PM_UFFD_WP, true);
	if (i < 0 || (size_t)i < n) {
		if (i < 0)
			res_skip(r, "cannot check the uffd-wp bits: pagemap: %s", errno_name((int)-i));
		else
			res_skip(r, "page %ld of %zu has no uffd-wp bit in pagemap after UFFDIO_WRITEPROTECT", i, n);
		close(fd);
		return -1;
	}
	diag("userfaultfd: uffd-wp=1 on all %zu pages", n);
	return fd;
}

/* ---- settings journal ------------------------------------------------------- */

struct saved_setting {
	char path[160];
	char value[64];
};

/* Shared between the driver and its case processes (MAP_SHARED). */
static struct settings_journal {
	unsigned int n;
	struct saved_setting s[8];
} *journal;

/* The current value; for "always [madvise] never" the bracketed word. */
static int setting_read(const char *path, char *buf, size_t len)
{
	char raw[256], *open_b, *close_b;
	const char *v = raw;
	size_t n;
	int err = read_text(path, raw, sizeof(raw));

	if (err)
		return err;
	open_b = strchr(raw, '[');
	close_b = open_b ? strchr(open_b, ']') : NULL;
	if (close_b) {
		*close_b = '\0';
		v = open_b + 1;
	}
	/* Truncating is fine: the values we save are short words and numbers. */
	n = strlen(v) < len ? strlen(v) : len - 1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return 0;
}

int setting_write(const char *path, const char *value)
{
	char old[64];
	unsigned int i;
	bool known = false;
	int err;

	err = setting_read(path, old, sizeof(old));
	if (err) {
		diag("setting %s: unreadable: %s", path, errno_name(-err));
		return err;
	}
	if (!journal)
		return -ENOMEM;
	for (i = 0; i < journal->n; i++)
		known |= !strcmp(journal->s[i].path, path);
	if (!known) {
		if (journal->n == ARRAY_SIZE(journal->s))
			return -ENOSPC;
		snprintf(journal->s[journal->n].path, sizeof(journal->s[0].path), "%s", path);
		snprintf(journal->s[journal->n].value, sizeof(journal->s[0].value), "%s", old);
		journal->n++;
	}
	err = write_text(path, value);
	diag("setting %s: %s -> %s%s%s", path, old, value, err ? ": " : "",
	     err ? errno_name(-err) : "");
	return err;
}

/* Driver side, after a case: put every journalled setting back, newest first. */
static void settings_restore(void)
{
	while (journal && journal->n) {
		struct saved_setting *s = &journal->s[--journal->n];
		int err = write_text(s->path, s->value);

		diag("setting %s restored to %s%s%s", s->path, s->value, err ? ": " : "",
		     err ? errno_name(-err) : "");
	}
}

/* ---- areas ----------------------------------------------------------------- */

bool area_track(struct area *a, void *addr, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(a->maps); i++) {
		if (!a->maps[i].addr) {
			a->maps[i].addr = addr;
			a->maps[i].len = len;
			return true;
		}
	}
	return false;
}

void area_free(struct area *a)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(a->maps); i++) {
		if (a->maps[i].addr)
			munmap(a->maps[i].addr, a->maps[i].len);
		a->maps[i].addr = NULL;
	}
	if (a->fd >= 0)
		close(a->fd);
	a->mem = NULL;
	a->alias = NULL;
	a->fd = -1;
}

int area_protect(struct area *a, int prot, const char *who)
{
	const char *name = prot == PROT_READ ? "PROT_READ" :
			   prot == (PROT_READ | PROT_WRITE) ? "PROT_READ|PROT_WRITE" :
			   prot == PROT_NONE ? "PROT_NONE" : "prot";
	int err = 0;

	if (mprotect(a->mem, a->size, prot))
		err = -errno;
	diag("%s: mprotect(%s) = %s", who, name, ret_name(err));
	return err;
}

int mprotect_ro_rw(struct area *a, const char *who)
{
	int err = area_protect(a, PROT_READ, who);

	return err ? err : area_protect(a, PROT_READ | PROT_WRITE, who);
}

int area_unmap(struct area *a, const char *who)
{
	void *p = mmap(a->mem, a->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		       -1, 0);
	int err = p == MAP_FAILED ? -errno : 0;

	diag("%s: unmapped the area (MAP_FIXED PROT_NONE over it) = %s", who, ret_name(err));
	return err;
}

/* ---- processes --------------------------------------------------------------- */

int peer_fork(struct peer *p)
{
	pid_t parent = getpid(), pid;
	int down[2], up[2], err;

	if (pipe2(down, O_CLOEXEC))
		return -errno;
	if (pipe2(up, O_CLOEXEC)) {
		err = -errno;
		close(down[0]);
		close(down[1]);
		return err;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(down[0]);
		close(down[1]);
		close(up[0]);
		close(up[1]);
		return err;
	}
	if (pid == 0) {
		/* Do not outlive the case process (it may be killed on timeout). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(CHILD_ERR);
		close(down[1]);
		close(up[0]);
		*p = (struct peer){ .pid = 0, .to = up[1], .from = down[0] };
		return 0;
	}
	close(down[0]);
	close(up[1]);
	*p = (struct peer){ .pid = pid, .to = down[1], .from = up[0] };
	return 1;
}

int peer_send(struct peer *p, char c)
{
	ssize_t n;

	do {
		n = write(p->to, &c, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -errno;
}

int peer_recv(struct peer *p)
{
	unsigned char c;
	ssize_t n;

	do {
		n = read(p->from, &c, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? c : -1;
}

static void peer_close(struct peer *p)
{
	if (p->to >= 0)
		close(p->to);
	if (p->from >= 0)
		close(p->from);
	p->to = p->from = -1;
}

void peer_exit(struct peer *p, int code)
{
	fflush(stdout);
	peer_close(p);
	_exit(code);
}

int peer_wait(struct peer *p, const char *who)
{
	int st;
	pid_t got;

	/* Closing our ends wakes a child still waiting for a message (EOF). */
	peer_close(p);
	do {
		got = waitpid(p->pid, &st, 0);
	} while (got < 0 && errno == EINTR);
	if (got < 0) {
		diag("%s: waitpid: %s", who, errno_name(errno));
		return -1;
	}
	if (WIFSIGNALED(st)) {
		diag("%s: killed by signal %d (%s)", who, WTERMSIG(st), strsignal(WTERMSIG(st)));
		return -1;
	}
	return WEXITSTATUS(st);
}

/* ---- the twin ------------------------------------------------------------------ */

static int twin_splice_unmap(struct twin *t)
{
	ssize_t n;

	if (!t->ps)
		return CHILD_ERR;
	n = pipeset_splice(t->ps, t->a->mem, t->a->size, "twin");
	if (n <= 0)
		return CHILD_ERR;
	if ((size_t)n < t->a->size)
		return CHILD_SKIP;
	return area_unmap(t->a, "twin") ? CHILD_ERR : CHILD_OK;
}

int (*twin_hook)(struct twin *t, int cmd);

/* One command in the twin; the answer. */
static int twin_exec(struct twin *t, int cmd)
{
	struct area *a = t->a;

	switch (cmd) {
	case TW_HOOK_A:
	case TW_HOOK_B:
	case TW_HOOK_C:
		return twin_hook ? twin_hook(t, cmd) : CHILD_ERR;
	case TW_HOLDS_OLD:
		diag_pagemap("twin", a->mem);
		return area_holds_old("twin, its view of the area", a) ? CHILD_OK : CHILD_BAD;
	case TW_HOLDS_NEW:
		diag_pagemap("twin", a->mem);
		return pattern_check("twin, its view of the area", a->mem, a->size, GEN_NEW) ?
		       CHILD_OK : CHILD_BAD;
	case TW_MPROTECT_WRITE:
		if (mprotect_ro_rw(a, "twin"))
			return CHILD_ERR;
		/* fall through */
	case TW_WRITE:
		pattern_fill(a->mem, a->size, GEN_NEW);
		diag_pagemap("twin after its write", a->mem);
		return pattern_check("twin, after its write", a->mem, a->size, GEN_NEW) ?
		       CHILD_OK : CHILD_ERR;
	case TW_SPLICE_UNMAP:
		return twin_splice_unmap(t);
	case TW_PIPE_HOLDS_OLD:
		if (!t->ps)
			return CHILD_ERR;
		return pipeset_holds(t->ps, a->old, "twin, pipe content") ? CHILD_OK : CHILD_BAD;
	}
	return CHILD_ERR;
}

/* Fork the twin set up in *t; in the child, serve commands until told to exit. */
static int twin_fork(struct twin *t)
{
	int ret = peer_fork(&t->p);

	if (ret < 0) {
		diag("fork: %s", errno_name(-ret));
		return ret;
	}
	if (ret == 1)
		return 0;
	for (;;) {
		int cmd = peer_recv(&t->p);

		if (cmd < 0 || cmd == TW_EXIT)
			peer_exit(&t->p, CHILD_OK);
		if (peer_send(&t->p, (char)twin_exec(t, cmd)))
			peer_exit(&t->p, CHILD_ERR);
	}
}

int twin_start_pipes(struct twin *t, struct area *a, struct pipeset *ps)
{
	*t = (struct twin){ .a = a, .ps = ps };
	return twin_fork(t);
}

int twin_start(struct twin *t, struct area *a, int pipe_rd, int pipe_wr)
{
	int cap;

	*t = (struct twin){ .a = a };
	if (pipe_rd >= 0 && pipe_wr >= 0) {
		cap = fcntl(pipe_wr, F_GETPIPE_SZ);
		t->one = (struct pipeset){ .n = 1, .rd = { pipe_rd }, .wr = { pipe_wr },
					   .cap = { cap > 0 ? (size_t)cap : 0 } };
		t->ps = &t->one;
	}
	return twin_fork(t);
}

int twin_do(struct twin *t, enum twin_cmd cmd)
{
	if (peer_send(&t->p, (char)cmd))
		return -1;
	return peer_recv(&t->p);
}

enum status twin_expect(struct twin *t, enum twin_cmd cmd, const char *bad_msg, struct result *r)
{
	int got = twin_do(t, cmd);

	if (got == CHILD_OK)
		return ST_PASS;
	if (got == CHILD_BAD)
		return res_fail(r, "%s", bad_msg);
	if (got < 0)
		return res_fail(r, "twin died before answering '%c'", cmd);
	return res_fail(r, "twin could not carry out '%c'", cmd);
}

int twin_end(struct twin *t)
{
	if (t->p.pid <= 0)
		return -1;
	peer_send(&t->p, TW_EXIT);
	return peer_wait(&t->p, "twin");
}

static enum status twin_run(struct twin *t, int err, twin_body body, void *ctx, struct result *r)
{
	if (err)
		return res_fail(r, "fork: %s", errno_name(-err));
	body(t, ctx, r);
	twin_end(t);
	return r->status;
}

enum status with_twin(struct area *a, int pipe_rd, int pipe_wr, twin_body body, void *ctx,
		      struct result *r)
{
	struct twin t;

	return twin_run(&t, twin_start(&t, a, pipe_rd, pipe_wr), body, ctx, r);
}

enum status with_twin_pipes(struct area *a, struct pipeset *ps, twin_body body, void *ctx,
			    struct result *r)
{
	struct twin t;

	return twin_run(&t, twin_start_pipes(&t, a, ps), body, ctx, r);
}

/* ---- pipes -------------------------------------------------------------------- */

size_t pipe_grow(int fd, size_t len)
{
	size_t want;
	int cap;

	/* Without CAP_SYS_RESOURCE a pipe is limited to pipe-max-size: halve
	 * until the kernel agrees. */
	for (want = len; want >= page_size(); want /= 2) {
		cap = fcntl(fd, F_SETPIPE_SZ, (int)want);
		if (cap >= 0)
			return cap;
		diag("F_SETPIPE_SZ(%zu): %s", want, errno_name(errno));
	}
	cap = fcntl(fd, F_GETPIPE_SZ);
	return cap < 0 ? 0 : (size_t)cap;
}

ssize_t splice_in(int pipe_wr, const void *mem, size_t len, const char *who)
{
	struct iovec iov = { .iov_base = (void *)mem, .iov_len = len };
	ssize_t n;

	/* Non-blocking: a short pipe gives a short splice, never a hang. */
	n = vmsplice(pipe_wr, &iov, 1, SPLICE_F_NONBLOCK);
	if (n < 0)
		n = -errno;
	diag("%s: vmsplice of %zu bytes = %zd%s%s", who, len, n, n < 0 ? " " : "",
	     n < 0 ? errno_name((int)-n) : "");
	return n;
}

bool pipe_holds(int pipe_rd, size_t n, enum pattern_gen gen, const char *who)
{
	return fd_holds(pipe_rd, n, -1, gen, who);
}

enum status pipeset_open(struct pipeset *ps, size_t len, struct result *r)
{
	size_t held = 0;
	int fds[2];

	*ps = (struct pipeset){ .n = 0 };
	while (held < len && ps->n < PIPESET_MAX) {
		if (pipe2(fds, O_CLOEXEC))
			return res_fail(r, "pipe: %s", errno_name(errno));
		ps->rd[ps->n] = fds[0];
		ps->wr[ps->n] = fds[1];
		ps->cap[ps->n] = pipe_grow(fds[1], len - held);
		if (!ps->cap[ps->n])
			return res_fail(r, "F_GETPIPE_SZ: %s", errno_name(errno));
		held += ps->cap[ps->n++];
	}
	diag("pipes: %u holding %zu of %zu bytes", ps->n, held < len ? held : len, len);
	if (held < len)
		return res_skip(r, "%u pipes hold only %zu of the area's %zu bytes (pipe-max-size, pipe-user-pages-soft): a partial vmsplice would test part of the area",
				ps->n, held, len);
	return ST_PASS;
}

void pipeset_close(struct pipeset *ps)
{
	unsigned int i;

	for (i = 0; i < ps->n; i++) {
		close(ps->rd[i]);
		close(ps->wr[i]);
	}
	ps->n = 0;
}

ssize_t pipeset_splice(struct pipeset *ps, const void *mem, size_t len, const char *who)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < ps->n && done < len; i++) {
		size_t want = len - done < ps->cap[i] ? len - done : ps->cap[i];
		ssize_t n = splice_in(ps->wr[i], (const char *)mem + done, want, who);

		if (n < 0)
			return done ? (ssize_t)done : n;
		ps->got[i] = (size_t)n;
		done += (size_t)n;
		if ((size_t)n < want)
			break;
	}
	if (done < len)
		diag("%s: partial vmsplice: %zu of %zu bytes went into the pipes", who, done, len);
	return (ssize_t)done;
}

bool pipeset_holds(struct pipeset *ps, enum pattern_gen gen, const char *who)
{
	size_t base = 0;
	bool same = true;
	unsigned int i;

	for (i = 0; i < ps->n && ps->got[i]; i++) {
		char *buf = malloc(ps->got[i]);
		int err = buf ? read_full(ps->rd[i], buf, ps->got[i]) : -ENOMEM;

		if (err) {
			diag("%s: reading %zu bytes back from pipe %u: %s", who, ps->got[i], i, errno_name(-err));
			same = false;
		} else if (!pattern_check_at(who, buf, ps->got[i], base, gen)) {
			same = false;
		}
		free(buf);
		base += ps->got[i];
	}
	return same;
}

/* ---- files -------------------------------------------------------------------- */

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v && *v ? v : fallback;
}

static bool dir_is(const char *dir, unsigned long magic, unsigned long *got)
{
	struct statfs sfs;

	if (statfs(dir, &sfs))
		return false;
	*got = (unsigned long)sfs.f_type;
	return *got == magic;
}

const char *fs_dir(unsigned long magic, struct result *r)
{
	const char *dir;
	unsigned long got = 0;

	if (magic == TMPFS_MAGIC_NR) {
		dir = env_or("COW_TMPDIR", "/tmp");
		if (dir_is(dir, magic, &got))
			return dir;
		diag("%s (COW_TMPDIR) is not tmpfs (f_type 0x%lx); trying /dev/shm", dir, got);
		if (dir_is("/dev/shm", magic, &got))
			return "/dev/shm";
		res_skip(r, "no tmpfs directory: neither $COW_TMPDIR (%s) nor /dev/shm is tmpfs", dir);
		return NULL;
	}
	dir = getenv("COW_EXT4_DIR");
	if (!dir || !*dir) {
		res_skip(r, "COW_EXT4_DIR is not set (needs a directory on an ext4 block device)");
		return NULL;
	}
	if (!dir_is(dir, magic, &got)) {
		res_skip(r, "COW_EXT4_DIR=%s is not ext4 (statfs f_type 0x%lx: %s)", dir, got,
			 got ? "another filesystem" : errno_name(errno));
		return NULL;
	}
	return dir;
}

int tmpfile_in(const char *dir, struct result *r)
{
	char path[4096];
	struct statfs sfs;
	const char *how = "O_TMPFILE";
	int fd, tmpfile_err;

	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* Not every filesystem has O_TMPFILE (9p, older overlayfs...). */
		tmpfile_err = errno;
		snprintf(path, sizeof(path), "%s/cow_tests.XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0) {
			res_skip(r, "cannot create a file in %s: O_TMPFILE: %s, mkstemp: %s",
				 dir, errno_name(tmpfile_err), errno_name(errno));
			return -1;
		}
		unlink(path);
		how = "mkstemp+unlink";
	}
	if (fstatfs(fd, &sfs) == 0)
		diag("scratch file in %s (%s, f_type 0x%lx)", dir, how, (unsigned long)sfs.f_type);
	else
		diag("scratch file in %s (%s)", dir, how);
	return fd;
}

int scratch_file(struct result *r)
{
	return tmpfile_in(env_or("COW_TMPDIR", "/tmp"), r);
}

int reopen_fd(int fd, int flags)
{
	char path[64];
	int nfd;

	/* Through /proc: works for unlinked (O_TMPFILE) files too. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, flags | O_CLOEXEC);
	return nfd < 0 ? -errno : nfd;
}

bool file_holds(int fd, size_t len, enum pattern_gen gen, const char *who)
{
	return fd_holds(fd, len, 0, gen, who);
}

/* ---- driver ------------------------------------------------------------------ */

struct case_ref {
	const struct cow_op *op;
	const struct mem_type *mt;
};

static void case_id(char *buf, size_t len, const char *prefix, const struct case_ref *c)
{
	snprintf(buf, len, "%s.%s.%s", prefix, c->op->name, c->mt->name);
}

/* The i-th case of the fixed list, in table order; false past the end. */
static bool case_at(const struct cow_op *ops, size_t nops, size_t i, struct case_ref *out)
{
	size_t o;
	int k;

	for (o = 0; o < nops; o++)
		for (k = 0; k < MEM_NKINDS; k++)
			if (ops[o].mems & MEM(k)) {
				if (i-- == 0) {
					*out = (struct case_ref){ &ops[o], &mem_types[k] };
					return true;
				}
			}
	return false;
}

static bool case_lookup(const struct cow_op *ops, size_t nops, const char *prefix,
			const char *id, struct case_ref *out)
{
	char buf[256];
	size_t i;

	for (i = 0; case_at(ops, nops, i, out); i++) {
		case_id(buf, sizeof(buf), prefix, out);
		if (!strcmp(buf, id))
			return true;
	}
	return false;
}

static unsigned int case_timeout_s(void)
{
	const char *s = getenv("COW_CASE_TIMEOUT");
	unsigned long v;
	char *end;

	if (!s || !*s)
		return 60;
	v = strtoul(s, &end, 10);
	return (*end || v == 0) ? 60 : (unsigned int)v;
}

/*
 * A case on a 1 GiB hugetlb page moves whole GiBs (the fill, the kernel's clearing and COW
 * copying, the checks): 37-68 s each under TCG on 6.12.118 (6.1: 9-23 s), past the 60 s
 * default on a busy host. Five times the limit for those.
 */
static unsigned int case_limit_s(const struct case_ref *c, unsigned int timeout_s)
{
	bool gigantic = c->mt->props & MT_GIGANTIC;

	return gigantic ? timeout_s * 5 : timeout_s;
}

/* In the case process: check the precondition, set up the memory, run the operation. */
static void case_body(const struct case_ref *c, struct result *r)
{
	struct area a = { .fd = -1 };

	if (c->op->need && c->op->need(r) != ST_PASS)
		return;
	if (c->mt->setup(&a, c->mt, r) != ST_PASS)
		return;
	res_fail(r, "case finished without a result");
	c->op->run(&a, c->op->arg, r);
	area_free(&a);
}

/*
 * Helper processes of a case that died or timed out were killed with its
 * process group; as their subreaper, reap them so no zombie is left.
 */
static bool subreaper;

static void reap_leftovers(void)
{
	if (!subreaper)
		return;
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
}

static enum status run_case(unsigned int n, const char *id, const struct case_ref *c,
			    unsigned int timeout_s)
{
	struct result r = { ST_FAIL, "" };
	bool stuck = false;
	int rp[2], st;
	size_t got = 0;
	pid_t pid;

	diag("%s: %s; memory: %s", id, c->op->desc, c->mt->desc);
	if (pipe2(rp, O_CLOEXEC)) {
		res_fail(&r, "pipe: %s", errno_name(errno));
		goto report;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		res_fail(&r, "fork: %s", errno_name(errno));
		close(rp[0]);
		close(rp[1]);
		goto report;
	}
	if (pid == 0) {
		/* Own process group, so leftovers can be killed as one (below).
		 * Ignoring SIGTTOU keeps a tty with TOSTOP from stopping us. */
		setpgid(0, 0);
		signal(SIGTTOU, SIG_IGN);
		close(rp[0]);
		alarm(timeout_s);
		case_body(c, &r);
		fflush(stdout);
		if (write(rp[1], &r, sizeof(r)) != sizeof(r))
			_exit(3);
		_exit(0);
	}
	setpgid(pid, pid);
	close(rp[1]);
	while (got < sizeof(r)) {
		/* Backstop for the case's own alarm: a helper that escaped it
		 * still holds the pipe open. */
		struct pollfd pfd = { .fd = rp[0], .events = POLLIN };
		ssize_t k;

		k = poll(&pfd, 1, (timeout_s + 5) * 1000);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0)
			stuck = true;
		if (k <= 0)
			break;
		k = read(rp[0], (char *)&r + got, sizeof(r) - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += k;
	}
	close(rp[0]);
	/* Result in hand (or EOF): nothing of this case may run on. Killing
	 * before reaping the case process keeps its pgid from being reused. */
	kill(-pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	reap_leftovers();
	if (got != sizeof(r)) {
		if (stuck)
			res_fail(&r, "case did not finish within %u s; its processes were killed",
				 timeout_s + 5);
		else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
			res_fail(&r, "case timed out after %u s (COW_CASE_TIMEOUT)", timeout_s);
		else if (WIFSIGNALED(st))
			res_fail(&r, "case process killed by signal %d (%s)",
				 WTERMSIG(st), strsignal(WTERMSIG(st)));
		else
			res_fail(&r, "case process exited with %d without a result",
				 WEXITSTATUS(st));
	}
report:
	settings_restore();
	switch (r.status) {
	case ST_PASS:
		if (r.reason[0])
			diag("result: %s", r.reason);
		printf("ok %u %s\n", n, id);
		break;
	case ST_SKIP:
		printf("ok %u %s # SKIP %s\n", n, id, r.reason);
		break;
	default:
		diag("result: %s", r.reason[0] ? r.reason : "failed");
		printf("not ok %u %s\n", n, id);
		break;
	}
	fflush(stdout);
	return r.status;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--list | ID...]\n"
		"  no argument: run every case; --list: print the case ids\n"
		"  env: COW_TMPDIR (scratch files, default /tmp), COW_EXT4_DIR (ext4 directory),\n"
		"       COW_CASE_TIMEOUT (s, default 60; x5 for 1 GiB hugetlb cases)\n",
		argv0);
}

int cow_main(int argc, char **argv, const char *prefix,
	     const struct cow_op *ops, size_t nops)
{
	struct case_ref *sel, c;
	unsigned int timeout_s = case_timeout_s(), counts[3] = { 0 };
	size_t nsel = 0, i, total = 0;
	char id[256];
	void *j;
	int a;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A dead peer must give EPIPE, not kill the case process. */
	signal(SIGPIPE, SIG_IGN);

	while (case_at(ops, nops, total, &c))
		total++;

	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (i = 0; case_at(ops, nops, i, &c); i++) {
			case_id(id, sizeof(id), prefix, &c);
			printf("%s\n", id);
		}
		return 0;
	}
	for (a = 1; a < argc; a++) {
		if (argv[a][0] == '-') {
			usage(argv[0]);
			return 2;
		}
	}

	sel = calloc(argc > 1 ? (size_t)argc - 1 : total, sizeof(*sel));
	if (!sel) {
		perror("calloc");
		return 2;
	}
	if (argc > 1) {
		for (a = 1; a < argc; a++) {
			if (!case_lookup(ops, nops, prefix, argv[a], &sel[nsel])) {
				fprintf(stderr, "%s: unknown test id: %s\n", argv[0], argv[a]);
				free(sel);
				return 2;
			}
			nsel++;
		}
	} else {
		for (i = 0; i < total; i++)
			case_at(ops, nops, i, &sel[nsel++]);
	}

	subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
	j = mmap(NULL, sizeof(*journal), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	journal = j == MAP_FAILED ? NULL : j;

	printf("KTAP version 1\n1..%zu\n", nsel);
	for (i = 0; i < nsel; i++) {
		case_id(id, sizeof(id), prefix, &sel[i]);
		counts[run_case(i + 1, id, &sel[i], case_limit_s(&sel[i], timeout_s))]++;
	}
	printf("# Totals: pass:%u fail:%u skip:%u\n",
	       counts[ST_PASS], counts[ST_FAIL], counts[ST_SKIP]);
	free(sel);
	return counts[ST_FAIL] ? 1 : 0;
}
