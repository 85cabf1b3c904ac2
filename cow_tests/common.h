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
 * To grow the matrix: add a row to mem_types[] (common.c) with its setup
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

/* ---- memory types ------------------------------------------------------- */

enum mem_kind {
	MEM_BASE,	/* one base page, MADV_NOHUGEPAGE */
	MEM_THP,	/* one PMD-sized THP, PMD-mapped, MADV_HUGEPAGE */
	MEM_NKINDS
};

#define MEM(kind) (UINT64_C(1) << (kind))

struct mem_type;

/* The memory a case works on. Set up by the mem type, torn down by area_free. */
struct area {
	char *mem;		/* start of the tested range */
	size_t size;		/* its length */
	void *map;		/* what to munmap (may be larger, e.g. for alignment) */
	size_t map_size;
	int fd;			/* backing file, or -1 */
	const struct mem_type *type;
};

struct mem_type {
	const char *name;	/* id suffix: "base", "thp" */
	const char *desc;
	/*
	 * Map, populate and fill the area with the "old" pattern; check that
	 * the memory really is of this type (else SKIP with the reason).
	 * On anything but ST_PASS the area must be left freed.
	 */
	enum status (*setup)(struct area *a, const struct mem_type *t, struct result *r);
	size_t arg;		/* type specific (e.g. a folio size), 0 if unused */
};

extern const struct mem_type mem_types[MEM_NKINDS];

void area_free(struct area *a);

size_t page_size(void);
/* PMD THP size from sysfs, 0 if THP is not available (errno says why). */
size_t thp_pmd_size(void);

/* ---- data patterns ------------------------------------------------------ */

/*
 * Content depends on the offset inside the area, not on the address, so a
 * copy read back from a pipe or file compares the same. GEN_NEW is the
 * bytewise complement of GEN_OLD: every byte differs between the two.
 */
enum pattern_gen { GEN_OLD = 0, GEN_NEW = 1 };

uint8_t pattern_byte(size_t off, enum pattern_gen gen);
void pattern_fill(void *buf, size_t len, enum pattern_gen gen);
/*
 * Compare buf with gen and print one diagnostics line: how many bytes hold
 * the old / new pattern / something else, and the first mismatch.
 * Returns true if every byte matches gen.
 */
bool pattern_check(const char *who, const void *buf, size_t len, enum pattern_gen gen);

/* ---- /proc observations ------------------------------------------------- */

#define PM_PRESENT	(UINT64_C(1) << 63)
#define PM_SWAP		(UINT64_C(1) << 62)
#define PM_FILE		(UINT64_C(1) << 61)
#define PM_UFFD_WP	(UINT64_C(1) << 57)
#define PM_EXCLUSIVE	(UINT64_C(1) << 56)
#define PM_SOFT_DIRTY	(UINT64_C(1) << 55)

/* 0, or -errno. */
int pagemap_read(const void *addr, uint64_t *entry);
/* "# <label>: pagemap present=1 swap=0 file=0 excl=1 sd=1 (0x...)" */
void diag_pagemap(const char *label, const void *addr);
/* A "Field:" value in kB from the smaps entry of the VMA holding addr; -errno. */
long smaps_field_kb(const void *addr, const char *field);
/* Write "4" to /proc/self/clear_refs; 0 or -errno. Prints what happened. */
int clear_soft_dirty(void);

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

/* Exit codes a child uses to report what it observed. */
enum { CHILD_OK = 0, CHILD_BAD = 1, CHILD_ERR = 2 };

/* Child side: close the channel and _exit(code) after flushing stdout. */
void peer_exit(struct peer *p, int code) __attribute__((noreturn));
/*
 * Parent side: close the channel and reap. Returns the child's exit code,
 * or -1 (with a diagnostics line) if it was killed or could not be reaped.
 */
int peer_wait(struct peer *p, const char *who);
/*
 * Turn peer_wait()'s code into a result: CHILD_OK gives ST_PASS and leaves r
 * alone; CHILD_BAD fails with bad_msg; anything else fails as "<who> failed".
 */
enum status child_status(int code, const char *who, const char *bad_msg, struct result *r);

/* ---- common steps ------------------------------------------------------- */

/* mprotect the whole area, with a diagnostics line; 0 or -errno. */
int area_protect(struct area *a, int prot, const char *who);
/* mprotect(PROT_READ) then back to PROT_READ|PROT_WRITE; 0 or -errno. */
int mprotect_ro_rw(struct area *a, const char *who);

/* ---- files -------------------------------------------------------------- */

/*
 * An anonymous scratch file (already unlinked) in $COW_TMPDIR or /tmp.
 * Returns the fd, or -1 with r set to SKIP and the reason.
 */
int scratch_file(struct result *r);
/* Read exactly len bytes at off; 0 or -errno (-EIO if the file is shorter). */
int pread_full(int fd, void *buf, size_t len, off_t off);

/* ---- driver ------------------------------------------------------------- */

typedef enum status (*op_fn)(struct area *a, int arg, struct result *r);

struct cow_op {
	const char *name;	/* id middle part: "fork.child-keeps-data" */
	const char *desc;
	op_fn run;
	int arg;		/* passed to run: variant flags */
	uint64_t mems;		/* MEM(MEM_BASE) | MEM(MEM_THP) ... */
};

/*
 * The whole program: "--list", "ID...", or no argument for every case.
 * Returns the exit code: 0 all ok/skip, 1 any not ok, 2 usage error.
 * Environment: COW_CASE_TIMEOUT (seconds per case, default 60).
 */
int cow_main(int argc, char **argv, const char *prefix,
	     const struct cow_op *ops, size_t nops);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
