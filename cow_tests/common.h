/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared framework for the guest-side COW / pinning test programs.
 *
 * A program is a table of operations (struct cow_op). Each operation names
 * the memory types it runs on (a bit mask over enum mem_kind); the case id is
 * "cow.<op>.<memory type>". cow_main() turns the table into the fixed id list,
 * parses the command line, runs each selected case in its own process (so a
 * crash or a hang costs one case, not the run) and prints KTAP.
 *
 * To grow the matrix: add a row to mem_types[] (memtypes.c) with its setup
 * function, or add a row to a program's op table. Nothing else changes.
 */
#ifndef COW_COMMON_H
#define COW_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CHECK_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- results ------------------------------------------------------------ */

enum status { ST_PASS, ST_FAIL, ST_SKIP };

struct result {
	enum status status;
	char reason[240];	/* SKIP reason, or why it failed / passed */
};

/* Set r and return its status, so a case can "return res_fail(r, ...)". */
enum status res_pass(struct result *r, const char *fmt, ...) CHECK_PRINTF(2, 3);
enum status res_fail(struct result *r, const char *fmt, ...) CHECK_PRINTF(2, 3);
enum status res_skip(struct result *r, const char *fmt, ...) CHECK_PRINTF(2, 3);

/* One "# ..." diagnostics line on stdout (line buffered). */
void diag(const char *fmt, ...) CHECK_PRINTF(1, 2);

/* "EFAULT", "EIO", ... or "errno 123" for unknown values. */
const char *errno_name(int err);
/* "ok" for ret >= 0, else the name of -ret (for "... = %s" diagnostics). */
const char *ret_name(long ret);

/* ---- memory types ------------------------------------------------------- */

/* One enum entry per mTHP size, for one form (suffix): MEM_MTHP_16K<form> ... MEM_MTHP_1024K<form>. */
#define MEM_MTHP_KINDS(form) MEM_MTHP_16K##form, MEM_MTHP_32K##form, MEM_MTHP_64K##form, \
	MEM_MTHP_128K##form, MEM_MTHP_256K##form, MEM_MTHP_512K##form, MEM_MTHP_1024K##form

enum mem_kind {
	/* anonymous private memory */
	MEM_BASE,		/* one base page, MADV_NOHUGEPAGE */
	MEM_BASE_SWAP,		/* the same, swapped out with MADV_PAGEOUT */
	MEM_THP,		/* one PMD-sized THP, PMD-mapped */
	MEM_THP_SWAP,		/* the same, swapped out */
	MEM_THP_PTE,		/* a THP mapped by PTEs (PMD split by an mprotect) */
	MEM_THP_PTE_SWAP,	/* the same, swapped out */
	MEM_THP_SINGLE,		/* one PTE left of a THP (the rest MADV_DONTNEED) */
	MEM_THP_MREMAP,		/* the upper half of a THP, mremap()ed elsewhere */
	MEM_THP_MREMAP_KEPT,	/* the lower half of that THP, left in place */
	MEM_THP_PART_SHARED,	/* a THP whose first page was COW-shared with an exited child */
	MEM_THP_SINGLE_SWAP,	/* one PTE left of a THP, then swapped out */
	/* multi-size THPs (6.8+), one folio each, by size; then the same forms as the THP's */
	MEM_MTHP_KINDS(),
	MEM_MTHP_KINDS(_SWAP),		/* swapped out */
	MEM_MTHP_KINDS(_SINGLE),	/* one PTE left (the rest MADV_DONTNEED) */
	MEM_MTHP_KINDS(_SINGLE_SWAP),	/* one PTE left, then swapped out */
	MEM_MTHP_KINDS(_MREMAP_KEPT),	/* upper half mremap()ed away; the lower half */
	MEM_MTHP_KINDS(_PART_SHARED),	/* first page COW-shared with an exited child */
	MEM_HUGETLB_2M,		/* MAP_HUGETLB, MAP_PRIVATE */
	MEM_HUGETLB_1G,
	/* private (COW) mappings of something that is not an anonymous page yet */
	MEM_ZEROPAGE,		/* shared zeropage, read-faulted */
	MEM_HUGE_ZEROPAGE,	/* huge zeropage (THP use_zero_page) */
	MEM_MEMFD_PRIVATE,
	MEM_TMPFS_PRIVATE,
	MEM_EXT4_PRIVATE,
	MEM_HUGETLB_MEMFD_PRIVATE,
	MEM_HUGETLB_MEMFD_1G_PRIVATE,
	/* shared mappings */
	MEM_ANON_SHARED,	/* MAP_SHARED | MAP_ANONYMOUS (shmem) */
	MEM_MEMFD_SHARED,
	MEM_TMPFS_SHARED,
	MEM_EXT4_SHARED,
	MEM_HUGETLB_MEMFD_SHARED,
	MEM_HUGETLB_MEMFD_1G_SHARED,
	/* special mappings, for the registration cases */
	MEM_BASE_RO,		/* an anonymous page mapped PROT_READ */
	MEM_TWO_VMAS,		/* an anonymous page followed by a memfd page: two VMAs */
	MEM_PERF_RB,		/* a perf ring buffer's user page (1 + 1 data page mapped) */
	MEM_NKINDS
};

/* A set of memory kinds: more than 64 of them, so a 128-bit mask. */
typedef unsigned __int128 mem_mask;
#define MEM(kind) ((mem_mask)1 << (kind))
#define MEM_RANGE(first, last) ((MEM(last) << 1) - MEM(first))

/* Every anonymous private type: what the fork / vmsplice / pin cases run on. */
#define MEMS_ANON MEM_RANGE(MEM_BASE, MEM_HUGETLB_1G)
/* Private mappings of the zeropage or of a file (pagecache / shmem / hugetlbfs). */
#define MEMS_NONANON_PRIVATE MEM_RANGE(MEM_ZEROPAGE, MEM_HUGETLB_MEMFD_1G_PRIVATE)
#define MEMS_FILE_PRIVATE MEM_RANGE(MEM_MEMFD_PRIVATE, MEM_HUGETLB_MEMFD_1G_PRIVATE)
#define MEMS_SHARED MEM_RANGE(MEM_ANON_SHARED, MEM_HUGETLB_MEMFD_1G_SHARED)
#define MEMS_FILE_SHARED MEM_RANGE(MEM_MEMFD_SHARED, MEM_HUGETLB_MEMFD_1G_SHARED)
#define MEMS_PRIVATE (MEMS_ANON | MEMS_NONANON_PRIVATE)

/* Properties of a memory type (mem_type.props), for cases whose expected
 * result depends on what the memory is. */
#define MT_ANON		0x01	/* anonymous private memory */
#define MT_PRIVATE	0x02	/* a COW mapping (MAP_PRIVATE) */
#define MT_SHARED	0x04	/* MAP_SHARED */
#define MT_FILE		0x08	/* backed by a file (a->fd) */
#define MT_BLOCKFS	0x10	/* the file is on a block filesystem (writeback, dirty tracking) */
#define MT_HUGETLB	0x20
#define MT_ZERO		0x40	/* the old content is all zero (zeropages) */
#define MT_NOPATTERN	0x80	/* the content is not ours (perf ring buffer) */
#define MT_GIGANTIC	0x100	/* 1 GiB hugetlb pages (the case gets a longer timeout) */

struct mem_type;

/* The memory a case works on. Set up by the mem type, torn down by area_free. */
struct area {
	char *mem;		/* start of the tested range */
	size_t size;		/* its length */
	char *alias;		/* a second view of the same content (MAP_SHARED of the
				 * file, another zeropage mapping), or NULL */
	struct {
		void *addr;
		size_t len;
	} maps[3];		/* what area_free munmaps (may be larger than mem..size) */
	int fd;			/* backing file, or -1 */
	int old;		/* enum pattern_gen the area was filled with */
	const struct mem_type *type;
};

struct mem_type {
	const char *name;	/* id suffix: "base", "thp", ... */
	const char *desc;
	/*
	 * Map, populate and fill the area with the "old" pattern; check that
	 * the memory really is of this type (else SKIP with the reason).
	 * On anything but ST_PASS the area must be left freed.
	 */
	enum status (*setup)(struct area *a, const struct mem_type *t, struct result *r);
	size_t arg;		/* type specific: a size in kB, a filesystem ... */
	unsigned int variant;	/* type specific variant flags */
	unsigned int props;	/* MT_* */
};

extern const struct mem_type mem_types[MEM_NKINDS];

/* Start tracking a mapping of the area (area_free unmaps it); false if full. */
bool area_track(struct area *a, void *addr, size_t len);
void area_free(struct area *a);

size_t page_size(void);
/* PMD THP size from sysfs, 0 if THP is not available (errno says why). */
size_t thp_pmd_size(void);

/* ---- data patterns ------------------------------------------------------ */

/*
 * Content depends on the offset inside the area, not on the address, so a
 * copy read back from a pipe or file compares the same; it differs from page
 * to page, so moved or mixed-up pages are noticed too. GEN_NEW is the bytewise
 * complement of GEN_OLD, and neither has a zero byte: every byte differs
 * between any two of GEN_OLD, GEN_NEW and GEN_ZERO (the zeropage's content).
 * Fill and check work a 4 KiB block at a time with memcpy / memcmp.
 */
enum pattern_gen { GEN_OLD = 0, GEN_NEW = 1, GEN_ZERO = 2 };

uint8_t pattern_byte(size_t off, enum pattern_gen gen);
void pattern_fill(void *buf, size_t len, enum pattern_gen gen);
/*
 * Compare buf with gen and print one diagnostics line: how many 4 KiB blocks
 * hold the old / new / zero pattern / something else, and the first byte
 * that differs. Returns true if every byte matches gen.
 */
bool pattern_check(const char *who, const void *buf, size_t len, enum pattern_gen gen);
/* The same for bytes that came from offset base (a multiple of 4 KiB) of an area. */
bool pattern_check_at(const char *who, const void *buf, size_t len, size_t base, enum pattern_gen gen);
/* pattern_check of the whole area against the content it was set up with. */
bool area_holds_old(const char *who, const struct area *a);
/*
 * After a write through a private mapping: do the other views of the old
 * content (a->alias; the file, for MT_FILE types) still hold it? NULL if
 * so, else which one changed.
 */
const char *private_write_leaked(const struct area *a);

/* ---- /proc and sysfs ---------------------------------------------------- */

#define PM_PRESENT	(UINT64_C(1) << 63)
#define PM_SWAP		(UINT64_C(1) << 62)
#define PM_FILE		(UINT64_C(1) << 61)
#define PM_UFFD_WP	(UINT64_C(1) << 57)
#define PM_EXCLUSIVE	(UINT64_C(1) << 56)
#define PM_SOFT_DIRTY	(UINT64_C(1) << 55)
#define PM_PFN_MASK	((UINT64_C(1) << 55) - 1)

/* 0, or -errno. */
int pagemap_read(const void *addr, uint64_t *entry);
/* "# <label>: pagemap present=1 swap=0 file=0 excl=1 sd=1 pfn=0x..";
 * returns the entry (0 if unreadable). */
uint64_t diag_pagemap(const char *label, const void *addr);
/* The PFN of a present page, 0 if not present or hidden (needs CAP_SYS_ADMIN). */
uint64_t pagemap_pfn(const void *addr);
/* A "Field:" value in kB from the smaps entry of the VMA holding addr; -errno. */
long smaps_field_kb(const void *addr, const char *field);
/* Write "4" to /proc/self/clear_refs; 0 or -errno. Prints what happened. */
int clear_soft_dirty(void);
/* n pagemap entries, one per base page from addr on; 0 or -errno. */
int pagemap_range(const void *addr, size_t n, uint64_t *entries);
/* The same from another process's /proc/<pid>/pagemap. */
int pagemap_range_of(pid_t pid, const void *addr, size_t n, uint64_t *entries);
/*
 * Clear the soft-dirty bits (clear_refs "4") so that the next write to the area
 * has to fault to set them again (a write-protected PTE: mprotect(RW) does not
 * map a page writable while it is not soft-dirty). Checks that soft-dirty is
 * tracked at all: sd=1 on the area's first page before (a new VMA is
 * soft-dirty; without CONFIG_MEM_SOFT_DIRTY every sd is 0 and nothing forces
 * a fault), then clears. ST_PASS, else SKIP with the reason.
 */
enum status softdirty_clear_checked(const struct area *a, struct result *r);
/* Every page of the area has sd=0 (its next write must fault); else SKIP
 * naming the first page that is soft-dirty. `when` names the step for the diag. */
enum status area_sd_clean(const struct area *a, const char *when, struct result *r);
/*
 * The first page of the area whose pagemap entry has bits `mask` not all
 * clear (set=false) / not all set (set=true); the number of pages if every
 * page is as asked; -errno if pagemap is unreadable.
 */
long area_first_page_not(const struct area *a, uint64_t mask, bool set);

/*
 * userfaultfd write-protection of the whole area: register it in WP mode and
 * write-protect it (shmem and hugetlb need UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
 * 5.19), then check that pagemap shows the uffd-wp bit on every page. The
 * uffd (close it to unregister), or -1 with r set: SKIP where userfaultfd or
 * its WP mode is not available for this memory, FAIL if the bit is missing.
 */
int uffd_wp_area(struct area *a, struct result *r);
/* UFFDIO_WRITEPROTECT of [addr, addr+len): protect, or (wp false) unprotect
 * and wake the faulting threads. 0 or -errno. */
int uffd_wp_range(int uffd, void *addr, size_t len, bool wp);

/* Read a small text file, strip the trailing newline; 0 or -errno. */
int read_text(const char *path, char *buf, size_t len);
/* A number from a small text file, or -errno. */
long read_long(const char *path);

/*
 * Change a sysfs / procfs setting for this case. The old value (for a
 * "a [b] c" choice file, the bracketed word) is journalled in memory shared
 * with the driver, which writes it back after the case however the case
 * ended (crash and timeout included). Prints the change. 0 or -errno.
 */
int setting_write(const char *path, const char *value);

/* ---- processes ---------------------------------------------------------- */

/*
 * A forked helper process with a pipe each way, for lock-step protocols.
 * peer_fork returns 0 in the child, 1 in the parent, -errno on failure.
 * In the child p->pid is 0 and the fds talk to the parent.
 */
struct peer {
	pid_t pid;
	int to;		/* write end towards the other side */
	int from;	/* read end from the other side */
};

int peer_fork(struct peer *p);
/* Send / receive one byte. recv returns the byte, or -1 on EOF/error. */
int peer_send(struct peer *p, char c);
int peer_recv(struct peer *p);

/* Exit codes (and twin replies) a child uses to report what it observed.
 * CHILD_SKIP: it could not establish what the case needs (e.g. a partial vmsplice). */
enum { CHILD_OK = 0, CHILD_BAD = 1, CHILD_ERR = 2, CHILD_SKIP = 3 };

/* Child side: close the channel and _exit(code) after flushing stdout. */
void peer_exit(struct peer *p, int code) __attribute__((noreturn));
/*
 * Parent side: close the channel and reap. Returns the child's exit code,
 * or -1 (with a diagnostics line) if it was killed or could not be reaped.
 */
int peer_wait(struct peer *p, const char *who);

/*
 * The twin: a fork()ed copy of the case process, so the area is COW-shared
 * with it, that acts on one-byte commands and answers CHILD_OK / CHILD_BAD /
 * CHILD_ERR. Its diagnostics lines start with "twin".
 */
enum twin_cmd {
	TW_HOLDS_OLD = 'o',	/* does the area hold the content it was set up with? */
	TW_HOLDS_NEW = 'n',	/* does it hold GEN_NEW? */
	TW_WRITE = 'w',		/* write GEN_NEW into the area (and check it reads back) */
	TW_MPROTECT_WRITE = 'm',/* mprotect RO, RW, then TW_WRITE */
	TW_SPLICE_UNMAP = 's',	/* vmsplice the whole area into the pipes, munmap it
				 * (CHILD_SKIP if only part of it went in) */
	TW_PIPE_HOLDS_OLD = 'p',/* read what it spliced back from the pipes: the old content? */
	TW_EXIT = 'x',		/* exit now */
	TW_HOOK_A = 'A',	/* program-specific: twin_hook(t, 'A') in the twin */
	TW_HOOK_B = 'B',	/* program-specific: twin_hook(t, 'B') in the twin */
	TW_HOOK_C = 'C',	/* program-specific: twin_hook(t, 'C') in the twin */
};

/*
 * Pipes that hold a whole area's vmsplice: one pipe holds at most what the
 * kernel lets it grow to (pipe-max-size without CAP_SYS_RESOURCE; the slot
 * array's allocation limit, 256 MiB, with it), so a 1 GiB page takes several.
 * Pipe i holds the bytes from off[i] of the area on.
 */
#define PIPESET_MAX 16
struct pipeset {
	unsigned int n;
	int rd[PIPESET_MAX], wr[PIPESET_MAX];
	size_t cap[PIPESET_MAX];	/* what pipe i can hold */
	size_t got[PIPESET_MAX];	/* what was vmspliced into it */
};

struct twin {
	struct peer p;
	struct area *a;
	struct pipeset *ps;	/* for TW_SPLICE_UNMAP / TW_PIPE_HOLDS_OLD, else NULL */
	struct pipeset one;	/* the one pipe twin_start was given */
};

/* Set before twin_start by a program that uses TW_HOOK_A/B/C: runs in
 * the twin, returns its answer (CHILD_*). */
extern int (*twin_hook)(struct twin *t, int cmd);

/* Fork the twin (pipe fds may be -1: no pipe; a pipe holds what F_GETPIPE_SZ says).
 * Returns 0 in the parent or -errno. */
int twin_start(struct twin *t, struct area *a, int pipe_rd, int pipe_wr);
/* The same with pipes enough for the whole area (pipeset_open). */
int twin_start_pipes(struct twin *t, struct area *a, struct pipeset *ps);
/* Send a command, wait for the answer: CHILD_*, or -1 if the twin is gone. */
int twin_do(struct twin *t, enum twin_cmd cmd);
/*
 * twin_do() as a result: ST_PASS if the twin answered CHILD_OK (r is left
 * alone), else a failure with bad_msg (CHILD_BAD) or "twin failed/died".
 */
enum status twin_expect(struct twin *t, enum twin_cmd cmd, const char *bad_msg, struct result *r);
/* Let the twin exit and reap it; its exit code or -1. */
int twin_end(struct twin *t);

typedef enum status (*twin_body)(struct twin *t, void *ctx, struct result *r);
/*
 * Fork the twin (pipe fds may be -1), run body in the parent, then let the
 * twin exit. Returns r->status (a failed fork fails the case).
 */
enum status with_twin(struct area *a, int pipe_rd, int pipe_wr, twin_body body, void *ctx,
		      struct result *r);
/* The same with pipes enough for the whole area (pipeset_open). */
enum status with_twin_pipes(struct area *a, struct pipeset *ps, twin_body body, void *ctx,
		      struct result *r);

/* ---- common steps ------------------------------------------------------- */

/* mprotect the whole area, with a diagnostics line; 0 or -errno. */
int area_protect(struct area *a, int prot, const char *who);
/* mprotect(PROT_READ) then back to PROT_READ|PROT_WRITE; 0 or -errno. */
int mprotect_ro_rw(struct area *a, const char *who);
/*
 * Unmap the area's pages: the range is replaced by a PROT_NONE reservation
 * (the pages go as with munmap, but nothing else can be mapped there before
 * area_free). 0 or -errno, with a diagnostics line.
 */
int area_unmap(struct area *a, const char *who);

/* ---- pipes -------------------------------------------------------------- */

/* Make the pipe hold up to len bytes if it may; returns the capacity it got. */
size_t pipe_grow(int fd, size_t len);
/* vmsplice len bytes at mem into the pipe (non-blocking); bytes or -errno. */
ssize_t splice_in(int pipe_wr, const void *mem, size_t len, const char *who);
/* Read n bytes back from the pipe and pattern_check them against gen. */
bool pipe_holds(int pipe_rd, size_t n, enum pattern_gen gen, const char *who);

/* Pipes (struct pipeset, above) for len bytes; ST_PASS, else SKIP (they cannot hold it all) or FAIL in r.
 * Close with pipeset_close whatever it returned. */
enum status pipeset_open(struct pipeset *ps, size_t len, struct result *r);
void pipeset_close(struct pipeset *ps);
/* vmsplice [mem, mem+len) into the pipes in order (non-blocking); the bytes
 * spliced (len when all went in), or -errno if nothing did. */
ssize_t pipeset_splice(struct pipeset *ps, const void *mem, size_t len, const char *who);
/* Everything spliced, read back: does it hold gen at the offsets it came from? */
bool pipeset_holds(struct pipeset *ps, enum pattern_gen gen, const char *who);
/* read() exactly len bytes; 0 or -errno (-EIO on EOF). */
int read_full(int fd, void *buf, size_t len);

/* ---- files -------------------------------------------------------------- */

#define TMPFS_MAGIC_NR		0x01021994UL
#define EXT4_MAGIC_NR		0xEF53UL
#define HUGETLBFS_MAGIC_NR	0x958458f6UL

/*
 * A directory for test files on the wanted filesystem, or NULL with r set
 * to SKIP and the reason:
 *   TMPFS_MAGIC_NR: $COW_TMPDIR if it is tmpfs, else /dev/shm if that is;
 *   EXT4_MAGIC_NR:  $COW_EXT4_DIR, which must be ext4.
 */
const char *fs_dir(unsigned long magic, struct result *r);
/*
 * An anonymous (unlinked) file in dir: O_TMPFILE, else mkstemp + unlink.
 * Returns the fd, or -1 with r set to SKIP and the reason.
 */
int tmpfile_in(const char *dir, struct result *r);
/* An anonymous scratch file in $COW_TMPDIR or /tmp (any filesystem). */
int scratch_file(struct result *r);
/* A second open file description of fd with extra flags (e.g. O_DIRECT);
 * the new fd or -errno. */
int reopen_fd(int fd, int flags);
/* Read / write exactly len bytes at off; 0 or -errno (-EIO if short). */
int pread_full(int fd, void *buf, size_t len, off_t off);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* Read len bytes at off of fd and pattern_check them against gen. */
bool file_holds(int fd, size_t len, enum pattern_gen gen, const char *who);

/* ---- driver ------------------------------------------------------------- */

typedef enum status (*op_fn)(struct area *a, int arg, struct result *r);

struct cow_op {
	const char *name;	/* id middle part: "fork.child-keeps-data" */
	const char *desc;
	op_fn run;
	int arg;		/* passed to run: variant flags */
	mem_mask mems;		/* MEM(MEM_BASE) | MEM(MEM_THP) ... */
	/* Optional precondition, checked before the memory is set up:
	 * ST_PASS to go on, else SKIP (or FAIL) with the reason in r. */
	enum status (*need)(struct result *r);
};

/*
 * The whole program: "--list", "ID...", or no argument for every case.
 * Returns the exit code: 0 all ok/skip, 1 any not ok, 2 usage error.
 * Environment: COW_CASE_TIMEOUT (seconds per case, default 60; x5 for 1 GiB hugetlb cases).
 */
int cow_main(int argc, char **argv, const char *prefix,
	     const struct cow_op *ops, size_t nops);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
