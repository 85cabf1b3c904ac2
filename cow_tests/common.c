// SPDX-License-Identifier: GPL-2.0
/*
 * Shared framework for the guest-side COW / pinning test programs:
 * KTAP output, the case driver, memory-type setup, /proc observations,
 * helper processes and scratch files. See common.h.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

/* ---- small file helpers ---------------------------------------------------- */

/* Read a small text file, strip the trailing newline; 0 or -errno. */
static int read_text(const char *path, char *buf, size_t len)
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

int pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

/* ---- sizes ----------------------------------------------------------------- */

size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage"

size_t thp_pmd_size(void)
{
	char buf[64];
	int err = read_text(THP_SYSFS "/hpage_pmd_size", buf, sizeof(buf));

	if (err) {
		errno = -err;
		return 0;
	}
	return strtoull(buf, NULL, 10);
}

/* ---- data patterns --------------------------------------------------------- */

uint8_t pattern_byte(size_t off, enum pattern_gen gen)
{
	/* Varies within a page and from page to page, so moved or mixed-up
	 * pages are noticed too, not only stale ones. */
	uint8_t v = (uint8_t)(off * 13 + (off >> 12) * 101 + 0x3c);

	return gen == GEN_OLD ? v : (uint8_t)~v;
}

void pattern_fill(void *buf, size_t len, enum pattern_gen gen)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = pattern_byte(i, gen);
}

bool pattern_check(const char *who, const void *buf, size_t len, enum pattern_gen gen)
{
	const uint8_t *p = buf;
	size_t n_old = 0, n_new = 0, n_other = 0, first_bad = len, i;

	for (i = 0; i < len; i++) {
		uint8_t old = pattern_byte(i, GEN_OLD), neu = pattern_byte(i, GEN_NEW);

		if (p[i] == old)
			n_old++;
		else if (p[i] == neu)
			n_new++;
		else
			n_other++;
		if (first_bad == len && p[i] != pattern_byte(i, gen))
			first_bad = i;
	}
	if (first_bad == len) {
		diag("%s: %zu bytes: %zu old, %zu new, %zu other: all %s as expected",
		     who, len, n_old, n_new, n_other, gen == GEN_OLD ? "old" : "new");
		return true;
	}
	diag("%s: %zu bytes: %zu old, %zu new, %zu other: first byte not %s at offset %zu (got 0x%02x, want 0x%02x)",
	     who, len, n_old, n_new, n_other, gen == GEN_OLD ? "old" : "new",
	     first_bad, p[first_bad], pattern_byte(first_bad, gen));
	return false;
}

/* ---- /proc observations ------------------------------------------------------ */

int pagemap_read(const void *addr, uint64_t *entry)
{
	off_t off = (off_t)((uintptr_t)addr / page_size()) * sizeof(*entry);
	int fd, err;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = pread_full(fd, entry, sizeof(*entry), off);
	close(fd);
	return err;
}

void diag_pagemap(const char *label, const void *addr)
{
	uint64_t e;
	int err = pagemap_read(addr, &e);

	if (err) {
		diag("%s: pagemap unreadable: %s", label, errno_name(-err));
		return;
	}
	diag("%s: pagemap present=%d swap=%d file=%d excl=%d sd=%d",
	     label, !!(e & PM_PRESENT), !!(e & PM_SWAP), !!(e & PM_FILE),
	     !!(e & PM_EXCLUSIVE), !!(e & PM_SOFT_DIRTY));
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
	int fd, err = 0;

	fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		diag("clear_refs: open /proc/self/clear_refs: %s: soft-dirty clearing step skipped",
		     errno_name(-err));
		return err;
	}
	if (write(fd, "4", 1) != 1) {
		err = -errno;
		diag("clear_refs: write \"4\": %s: soft-dirty clearing step skipped",
		     errno_name(-err));
	} else {
		diag("clear_refs: wrote \"4\" (soft-dirty bits cleared)");
	}
	close(fd);
	return err;
}

/* ---- memory types ------------------------------------------------------------ */

void area_free(struct area *a)
{
	if (a->map)
		munmap(a->map, a->map_size);
	if (a->fd >= 0)
		close(a->fd);
	a->map = NULL;
	a->mem = NULL;
	a->fd = -1;
}

static enum status setup_base(struct area *a, const struct mem_type *t, struct result *r)
{
	size_t ps = page_size();
	void *p;

	p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return res_fail(r, "mmap of %zu bytes: %s", ps, errno_name(errno));
	*a = (struct area){ .mem = p, .size = ps, .map = p, .map_size = ps, .fd = -1, .type = t };
	/* Keep a base page a base page even with THP "always" (also mTHP).
	 * EINVAL just means the kernel has no THP at all. */
	if (madvise(p, ps, MADV_NOHUGEPAGE))
		diag("madvise(MADV_NOHUGEPAGE): %s (ignored)", errno_name(errno));
	pattern_fill(p, ps, GEN_OLD);
	diag_pagemap("base page after fill", p);
	return ST_PASS;
}

static enum status setup_thp(struct area *a, const struct mem_type *t, struct result *r)
{
	size_t ps = page_size(), sz = thp_pmd_size();
	char enabled[128] = "?";
	uintptr_t start;
	uint64_t last;
	char *p, *mem;
	long ahp_kb;
	int err;

	if (!sz)
		return res_skip(r, "THP not available: %s/hpage_pmd_size: %s",
				THP_SYSFS, errno_name(errno));
	read_text(THP_SYSFS "/enabled", enabled, sizeof(enabled));
	diag("thp: hpage_pmd_size=%zu enabled: %s", sz, enabled);

	/* Map twice the size and keep only an aligned THP-sized window. */
	p = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return res_fail(r, "mmap of %zu bytes: %s", 2 * sz, errno_name(errno));
	start = ((uintptr_t)p + sz - 1) & ~(uintptr_t)(sz - 1);
	mem = (char *)start;
	if (mem > p)
		munmap(p, mem - p);
	if (mem + sz < p + 2 * sz)
		munmap(mem + sz, p + 2 * sz - (mem + sz));
	*a = (struct area){ .mem = mem, .size = sz, .map = mem, .map_size = sz, .fd = -1, .type = t };

	if (madvise(mem, sz, MADV_HUGEPAGE)) {
		err = errno;
		area_free(a);
		return res_skip(r, "madvise(MADV_HUGEPAGE): %s", errno_name(err));
	}
	/* One write fault; if it got a PMD THP, the last subpage is present too. */
	mem[0] = (char)pattern_byte(0, GEN_OLD);
	err = pagemap_read(mem + sz - ps, &last);
	if (err) {
		area_free(a);
		return res_skip(r, "cannot check THP population: /proc/self/pagemap: %s",
				errno_name(-err));
	}
	if (!(last & PM_PRESENT)) {
		area_free(a);
		return res_skip(r, "did not get a THP populated (last subpage not present after touching byte 0; enabled: %s)",
				enabled);
	}
	ahp_kb = smaps_field_kb(mem, "AnonHugePages");
	if (ahp_kb >= 0) {
		diag("thp: AnonHugePages %ld kB in the VMA", ahp_kb);
		if ((size_t)ahp_kb * 1024 < sz) {
			area_free(a);
			return res_skip(r, "did not get a PMD-mapped THP (AnonHugePages %ld kB)", ahp_kb);
		}
	} else {
		diag("thp: smaps AnonHugePages unreadable: %s", errno_name((int)-ahp_kb));
	}
	pattern_fill(mem, sz, GEN_OLD);
	diag_pagemap("thp first subpage after fill", mem);
	return ST_PASS;
}

const struct mem_type mem_types[MEM_NKINDS] = {
	[MEM_BASE] = { "base", "base page", setup_base, 0 },
	[MEM_THP] = { "thp", "PMD-mapped THP", setup_thp, 0 },
};

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

enum status child_status(int code, const char *who, const char *bad_msg, struct result *r)
{
	if (code == CHILD_OK)
		return ST_PASS;
	if (code == CHILD_BAD)
		return res_fail(r, "%s", bad_msg);
	if (code < 0)
		return res_fail(r, "%s died", who);
	return res_fail(r, "%s failed (exit code %d)", who, code);
}

int area_protect(struct area *a, int prot, const char *who)
{
	const char *name = prot == PROT_READ ? "PROT_READ" :
			   prot == (PROT_READ | PROT_WRITE) ? "PROT_READ|PROT_WRITE" :
			   prot == PROT_NONE ? "PROT_NONE" : "prot";
	int err = 0;

	if (mprotect(a->mem, a->size, prot))
		err = -errno;
	diag("%s: mprotect(%s) = %s", who, name, err ? errno_name(-err) : "0");
	return err;
}

int mprotect_ro_rw(struct area *a, const char *who)
{
	int err = area_protect(a, PROT_READ, who);

	return err ? err : area_protect(a, PROT_READ | PROT_WRITE, who);
}

/* ---- scratch files ------------------------------------------------------------- */

int scratch_file(struct result *r)
{
	const char *dir = getenv("COW_TMPDIR");
	char path[4096];
	struct statfs sfs;
	const char *how = "O_TMPFILE";
	int fd, tmpfile_err;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* Not every filesystem has O_TMPFILE (9p, older overlayfs...). */
		tmpfile_err = errno;
		snprintf(path, sizeof(path), "%s/cow_tests.XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0) {
			res_skip(r, "cannot create a scratch file in %s: O_TMPFILE: %s, mkstemp: %s",
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

/* In the case process: set up the memory, run the operation, tear down. */
static void case_body(const struct case_ref *c, struct result *r)
{
	struct area a = { .fd = -1 };

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

	diag("%s: %s, on a %s", id, c->op->desc, c->mt->desc);
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
		"  env: COW_TMPDIR (scratch files, default /tmp), COW_CASE_TIMEOUT (s, default 60)\n",
		argv0);
}

int cow_main(int argc, char **argv, const char *prefix,
	     const struct cow_op *ops, size_t nops)
{
	struct case_ref *sel, c;
	unsigned int timeout_s = case_timeout_s(), counts[3] = { 0 };
	size_t nsel = 0, i, total = 0;
	char id[256];
	int a;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A dead peer must give EPIPE, not kill the case process. */
	signal(SIGPIPE, SIG_IGN);
	subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;

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

	printf("KTAP version 1\n1..%zu\n", nsel);
	for (i = 0; i < nsel; i++) {
		case_id(id, sizeof(id), prefix, &sel[i]);
		counts[run_case(i + 1, id, &sel[i], timeout_s)]++;
	}
	printf("# Totals: pass:%u fail:%u skip:%u\n",
	       counts[ST_PASS], counts[ST_FAIL], counts[ST_SKIP]);
	free(sel);
	return counts[ST_FAIL] ? 1 : 0;
}
