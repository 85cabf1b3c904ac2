// SPDX-License-Identifier: GPL-2.0
/*
 * io_uring_register_buffers() on each kind of mapping: what the kernel
 * accepts as a fixed buffer (a R/W long-term pin) and what it refuses.
 * liburing 2.3 returns -errno and does not set errno: the return value is
 * what is judged, and it is printed on every case.
 *
 * - iouring-register-ok: must be accepted: anonymous memory, THP, hugetlb,
 *   the zeropages, shmem / hugetlbfs files shared or private, ext4 files
 *   MAP_PRIVATE (the write pin breaks COW: an anonymous copy is pinned,
 *   nothing of the file), and one buffer spanning two VMAs.
 *   On a MAP_PRIVATE mapping the first page must afterwards be an exclusive
 *   anonymous page (pagemap file=0 excl=1).
 * - iouring-register-refused: must be refused, with any errno: ext4
 *   MAP_SHARED (writeback needs dirty tracking, a long-term writable pin
 *   defeats it), an anonymous page mapped PROT_READ, the user page of a perf
 *   ring buffer (its VMA has page_mkwrite: dirty-tracked).
 * - iouring-register-efault: the same three, refused with EFAULT: GUP's
 *   refusal (6.5+: the writable long-term pin of a dirty-tracked shared
 *   mapping; from 6.14 the perf buffer is VM_PFNMAP, refused by GUP too);
 *   before 6.5 io_uring refused non-shmem files itself with EOPNOTSUPP,
 *   after pinning the pages. Only the user page is registered: a write fault
 *   on a perf data page SIGBUSes on every kernel (probe.perf-rb.
 *   data-page-write-sigbus), which would make every kernel say EFAULT.
 */
#define _GNU_SOURCE
#include "uring.h"

#include <errno.h>

enum want { WANT_OK, WANT_REFUSED, WANT_EFAULT };

static enum status judge_ok(const struct area *a, int ret, uint64_t after, struct result *r)
{
	if (ret)
		return res_fail(r, "registration refused: %s", errno_name(-ret));
	if ((a->type->props & MT_PRIVATE) && ((after & PM_FILE) || !(after & PM_EXCLUSIVE)))
		return res_fail(r, "registered, but the first page is not an exclusive anonymous page afterwards (file=%d excl=%d)",
				!!(after & PM_FILE), !!(after & PM_EXCLUSIVE));
	return res_pass(r, "registered");
}

static enum status op_register(struct area *a, int want, struct result *r)
{
	struct io_uring ring;
	uint64_t after;
	int ret;

	if (ring_open(&ring, r) != ST_PASS)
		return r->status;
	diag_pagemap("before register", a->mem);
	ret = ring_register(&ring, a->mem, a->size);
	after = diag_pagemap("after register", a->mem);
	io_uring_queue_exit(&ring);
	if (want == WANT_OK)
		return judge_ok(a, ret, after, r);
	if (ret == 0)
		return res_fail(r, "registered, expected a refusal");
	if (want == WANT_EFAULT && ret != -EFAULT)
		return res_fail(r, "refused with %s, expected EFAULT (GUP's refusal)", errno_name(-ret));
	return res_pass(r, "refused with %s", errno_name(-ret));
}

#define MEMS_REGISTER_OK (MEM(MEM_BASE) | MEM(MEM_THP) | MEM(MEM_HUGETLB_2M) | MEM(MEM_ZEROPAGE) | \
			  MEM(MEM_HUGE_ZEROPAGE) | MEMS_FILE_PRIVATE | MEMS_SHARED | MEM(MEM_TWO_VMAS))
#define MEMS_REGISTER_REFUSED (MEM(MEM_EXT4_SHARED) | MEM(MEM_BASE_RO) | MEM(MEM_PERF_RB))

static const struct cow_op ops[] = {
	{ .name = "iouring-register-ok", .desc = "io_uring_register_buffers must accept the buffer",
	  .run = op_register, .arg = WANT_OK, .mems = MEMS_REGISTER_OK & ~MEM(MEM_EXT4_SHARED) },
	{ .name = "iouring-register-refused",
	  .desc = "io_uring_register_buffers must refuse the buffer (any errno)",
	  .run = op_register, .arg = WANT_REFUSED, .mems = MEMS_REGISTER_REFUSED },
	{ .name = "iouring-register-efault",
	  .desc = "io_uring_register_buffers must refuse the buffer with EFAULT (GUP refuses it)",
	  .run = op_register, .arg = WANT_EFAULT, .mems = MEMS_REGISTER_REFUSED },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
