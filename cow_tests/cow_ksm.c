// SPDX-License-Identifier: GPL-2.0
/*
 * KSM must not merge a pinned page: replacing the page under an io_uring
 * fixed buffer (a R/W long-term pin) by a write-protected KSM page would cut
 * the pin off from the process's later writes.
 *
 * ksm.pinned-page-not-merged: three identical anonymous pages, the first
 * registered with io_uring, all MADV_MERGEABLE; ksmd runs (the case turns
 * it on, fast, and the driver restores the settings). The two unpinned
 * pages must merge (else KSM is not working here: SKIP), the pinned one
 * must not; a write through it must still reach the pin.
 * Merging is seen in the pagemap PFNs (root) or /proc/self/ksm_merging_pages.
 *
 * A KSM page is never exclusive, so a R/O pin (FOLL_PIN without FOLL_WRITE)
 * must unshare it first, like a COW-shared page (5.19, a7f226604170): the pin
 * then holds the process's own copy. The ksm.pin-ro / ksm.unshare cases merge
 * our page with an identical page of another process (the twin: forked, then
 * it rewrote its copy with the same bytes, so the two are distinct pages), see
 * the merge (same PFN in both pagemaps as root, else ksm_merging_pages), then:
 * - ksm.pin-ro.other-write-unseen: R/O long-term pin (gup_test / harness_pin)
 *   of our page; the twin writes its page: the pin and our mapping must keep
 *   our data.
 * - ksm.pin-ro.own-write-seen: the same pin; we write our page: the pin must
 *   see the write (a pin left on the KSM page would go stale), the twin keeps
 *   its data.
 * - ksm.unshare.process-vm-readv: process_vm_readv (a short-term R/O pin) of
 *   our page must replace it by an exclusive copy (pagemap excl=1, another PFN
 *   than the twin's KSM page), and the twin's later write is not seen.
 */
#define _GNU_SOURCE
#include "pinner.h"
#include "uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define KSM_SYSFS "/sys/kernel/mm/ksm"
#define KSM_WAIT_S 30
#define KSM_SCANS 4

static enum status need_ksm(struct result *r)
{
	if (access(KSM_SYSFS "/run", F_OK))
		return res_skip(r, "KSM not available (%s/run: %s; needs CONFIG_KSM)", KSM_SYSFS,
				errno_name(errno));
	return ST_PASS;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Start ksmd fast and let it do KSM_SCANS full scans (or give up after KSM_WAIT_S). */
static int ksm_run(void)
{
	long start, scans;
	double t0 = now_s();
	int err;

	err = setting_write(KSM_SYSFS "/sleep_millisecs", "10");
	err = err ? err : setting_write(KSM_SYSFS "/pages_to_scan", "1000");
	err = err ? err : setting_write(KSM_SYSFS "/run", "1");
	if (err)
		return err;
	start = read_long(KSM_SYSFS "/full_scans");
	do {
		usleep(50 * 1000);
		scans = read_long(KSM_SYSFS "/full_scans");
	} while (scans >= 0 && scans < start + KSM_SCANS && now_s() - t0 < KSM_WAIT_S);
	diag("ksmd: %ld full scans in %.1f s", scans - start, now_s() - t0);
	return 0;
}

/* Merged with each other: same PFN if we can see PFNs, else the process count. */
static bool pages_merged(const char *x, const char *y, long merging, long want)
{
	uint64_t px = pagemap_pfn(x), py = pagemap_pfn(y);

	return px && py ? px == py : merging >= want;
}

static enum status op_ksm_pinned(struct area *a, int arg, struct result *r)
{
	size_t ps = page_size();
	struct io_uring ring;
	uint64_t pinned_pfn;
	bool same = false;
	char *peers;
	long merging;
	int fd, err;

	(void)arg;
	fd = scratch_file(r);
	if (fd < 0)
		return r->status;
	if (ring_open(&ring, r) != ST_PASS) {
		close(fd);
		return r->status;
	}
	peers = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (peers == MAP_FAILED) {
		res_fail(r, "mmap: %s", errno_name(errno));
		goto out;
	}
	area_track(a, peers, 2 * ps);
	madvise(peers, 2 * ps, MADV_NOHUGEPAGE);
	memcpy(peers, a->mem, ps);
	memcpy(peers + ps, a->mem, ps);
	err = ring_register(&ring, a->mem, ps);
	if (err) {
		res_fail(r, "io_uring_register_buffers: %s", errno_name(-err));
		goto out;
	}
	if (madvise(a->mem, ps, MADV_MERGEABLE) || madvise(peers, 2 * ps, MADV_MERGEABLE)) {
		res_skip(r, "madvise(MADV_MERGEABLE): %s", errno_name(errno));
		goto out;
	}
	pinned_pfn = diag_pagemap("pinned page before ksmd", a->mem) & PM_PFN_MASK;
	err = ksm_run();
	if (err) {
		res_skip(r, "cannot start ksmd: %s", errno_name(-err));
		goto out;
	}
	merging = read_long("/proc/self/ksm_merging_pages");
	diag("/proc/self/ksm_merging_pages = %ld", merging);
	diag_pagemap("unpinned page 1 after ksmd", peers);
	diag_pagemap("unpinned page 2 after ksmd", peers + ps);
	diag_pagemap("pinned page after ksmd", a->mem);
	if (!pages_merged(peers, peers + ps, merging, 2)) {
		res_skip(r, "KSM did not merge even the two unpinned identical pages within %d s",
			 KSM_WAIT_S);
		goto out;
	}
	if (pages_merged(a->mem, peers, merging, 3) ||
	    (pinned_pfn && pagemap_pfn(a->mem) != pinned_pfn)) {
		res_fail(r, "KSM merged (replaced) the pinned page");
		goto out;
	}
	pattern_fill(a->mem, ps, GEN_NEW);
	if (fixed_buffer_holds(&ring, a->mem, ps, fd, GEN_NEW, &same, r) != ST_PASS)
		goto out;
	if (same)
		res_pass(r, "KSM merged the unpinned copies, left the pinned page alone; the pin sees later writes");
	else
		res_fail(r, "the pinned buffer does not hold the write through the mapping (stale pin)");
out:
	io_uring_queue_exit(&ring);
	close(fd);
	return r->status;
}

/* ksm.pin-ro / ksm.unshare variants (op arg). */
enum { KSM_OTHER_WRITES, KSM_OWN_WRITE, KSM_PVR };

/* In the twin: rewrite its (COW-shared) copy with the same bytes, so it gets a page of its own. */
static int twin_own_copy(struct twin *t, int cmd)
{
	(void)cmd;
	pattern_fill(t->a->mem, t->a->size, t->a->old);
	diag_pagemap("twin after rewriting its copy", t->a->mem);
	return area_holds_old("twin, its own copy", t->a) ? CHILD_OK : CHILD_ERR;
}

/* Our page and the twin's: one KSM page? The KSM PFN through *ksm_pfn (0 if PFNs are hidden). */
static bool merged_with_twin(struct area *a, struct twin *t, uint64_t *ksm_pfn)
{
	uint64_t ours = diag_pagemap("our page after ksmd", a->mem), theirs = 0;
	long merging = read_long("/proc/self/ksm_merging_pages");
	int err = pagemap_range_of(t->p.pid, a->mem, 1, &theirs);

	diag("twin's page after ksmd: pagemap %s present=%d pfn=0x%llx; our ksm_merging_pages = %ld",
	     ret_name(err), !!(theirs & PM_PRESENT), (unsigned long long)(theirs & PM_PFN_MASK), merging);
	*ksm_pfn = 0;
	if (!err && (ours & PM_PFN_MASK) && (theirs & PM_PFN_MASK)) {
		if ((ours & PM_PFN_MASK) != (theirs & PM_PFN_MASK))
			return false;
		*ksm_pfn = ours & PM_PFN_MASK;
		return true;
	}
	return merging >= 1;
}

/* Merge our page with the twin's; ST_PASS, else SKIP (or FAIL) in r. */
static enum status merge_with_twin(struct area *a, struct twin *t, uint64_t *ksm_pfn, struct result *r)
{
	int err;

	if (madvise(a->mem, a->size, MADV_MERGEABLE))
		return res_skip(r, "madvise(MADV_MERGEABLE): %s", errno_name(errno));
	twin_hook = twin_own_copy;
	err = twin_start(t, a, -1, -1);
	if (err)
		return res_fail(r, "fork: %s", errno_name(-err));
	if (twin_expect(t, TW_HOOK_A, "", r) != ST_PASS)
		return r->status;
	diag_pagemap("our page before ksmd", a->mem);
	err = ksm_run();
	if (err)
		return res_skip(r, "cannot start ksmd: %s", errno_name(-err));
	if (!merged_with_twin(a, t, ksm_pfn))
		return res_skip(r, "KSM did not merge our page with the twin's identical page within %d s",
				KSM_WAIT_S);
	return ST_PASS;
}

/* process_vm_readv of our own area into buf; bytes read or -errno. */
static ssize_t pvr_self(const struct area *a, void *buf)
{
	struct iovec local = { buf, a->size }, remote = { a->mem, a->size };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	return n < 0 ? -errno : n;
}

/* After the R/O pin: our page must be an exclusive copy, no longer the KSM page. */
static bool unshared(const struct area *a, uint64_t ksm_pfn, const char *when, struct result *r)
{
	char label[64];
	uint64_t e;

	snprintf(label, sizeof(label), "our page after %s", when);
	e = diag_pagemap(label, a->mem);
	if (!(e & PM_EXCLUSIVE)) {
		res_fail(r, "our page is not exclusive after %s (excl=0): the KSM page was not unshared", when);
		return false;
	}
	if (ksm_pfn && (e & PM_PFN_MASK) == ksm_pfn) {
		res_fail(r, "our page is still the KSM page (pfn 0x%llx) after %s", (unsigned long long)ksm_pfn, when);
		return false;
	}
	return true;
}

static enum status pin_ro_then_write(struct area *a, struct twin *t, int arg, uint64_t ksm_pfn, struct result *r)
{
	bool same = false;
	int gfd = pinner_open(r), err;

	if (gfd < 0)
		return r->status;
	err = pin_start(gfd, a, 0);
	if (err) {
		pin_start_failed(err, r);
		close(gfd);
		return r->status;
	}
	if (!unshared(a, ksm_pfn, "the R/O pin", r))
		goto out;
	if (arg == KSM_OTHER_WRITES) {
		if (twin_expect(t, TW_WRITE, "", r) != ST_PASS)
			goto out;
		if (pin_holds(gfd, a->size, a->old, &same, r) != ST_PASS)
			goto out;
		if (!same)
			res_fail(r, "the R/O pin sees the other process's write to its (formerly merged) page");
		else if (!area_holds_old("our mapping, after the twin's write", a))
			res_fail(r, "our mapping sees the other process's write");
		else
			res_pass(r, "the other process's write reaches neither the pin nor our mapping");
		goto out;
	}
	pattern_fill(a->mem, a->size, GEN_NEW);
	diag_pagemap("our page after our write", a->mem);
	if (pin_holds(gfd, a->size, GEN_NEW, &same, r) != ST_PASS)
		goto out;
	if (!same)
		res_fail(r, "the R/O pin does not see our write through the mapping (stale pin)");
	else if (twin_expect(t, TW_HOLDS_OLD, "the other process sees our write (leak into its page)", r) == ST_PASS)
		res_pass(r, "the R/O pin sees our write; the other process keeps its data");
out:
	pin_stop(gfd);
	close(gfd);
	return r->status;
}

static enum status pvr_then_other_write(struct area *a, struct twin *t, uint64_t ksm_pfn, struct result *r)
{
	char *buf = malloc(a->size);
	ssize_t n;

	if (!buf)
		return res_fail(r, "malloc: ENOMEM");
	n = pvr_self(a, buf);
	diag("process_vm_readv(self, %zu bytes) = %zd (%s)", a->size, n, ret_name(n));
	if (n != (ssize_t)a->size)
		res_fail(r, "process_vm_readv of our page: %s", n < 0 ? errno_name((int)-n) : "short read");
	else if (!pattern_check("process_vm_readv copy", buf, a->size, a->old))
		res_fail(r, "process_vm_readv did not read our data");
	else if (unshared(a, ksm_pfn, "process_vm_readv", r) &&
		 twin_expect(t, TW_WRITE, "", r) == ST_PASS) {
		n = pvr_self(a, buf);
		if (n == (ssize_t)a->size && pattern_check("process_vm_readv after the twin's write", buf, a->size, a->old))
			res_pass(r, "process_vm_readv unshared the KSM page; the other process's write is not seen");
		else
			res_fail(r, "after the other process's write, process_vm_readv of our page does not read our data");
	}
	free(buf);
	return r->status;
}

static enum status op_ksm_merged(struct area *a, int arg, struct result *r)
{
	struct twin t = { .p = { .pid = 0 } };
	uint64_t ksm_pfn = 0;

	if (merge_with_twin(a, &t, &ksm_pfn, r) == ST_PASS) {
		if (arg == KSM_PVR)
			pvr_then_other_write(a, &t, ksm_pfn, r);
		else
			pin_ro_then_write(a, &t, arg, ksm_pfn, r);
	}
	if (t.p.pid)
		twin_end(&t);
	return r->status;
}

static enum status need_ksm_pinner(struct result *r)
{
	return need_ksm(r) == ST_PASS ? need_pinner(r) : r->status;
}

static const struct cow_op ops[] = {
	{ .name = "ksm.pinned-page-not-merged",
	  .desc = "three identical pages, the first an io_uring fixed buffer; ksmd merges the others only",
	  .run = op_ksm_pinned, .mems = MEM(MEM_BASE), .need = need_ksm },
	{ .name = "ksm.pin-ro.other-write-unseen",
	  .desc = "our page KSM-merged with another process's; R/O long-term pin of ours; the other writes: the pin keeps our data",
	  .run = op_ksm_merged, .arg = KSM_OTHER_WRITES, .mems = MEM(MEM_BASE), .need = need_ksm_pinner },
	{ .name = "ksm.pin-ro.own-write-seen",
	  .desc = "our page KSM-merged with another process's; R/O long-term pin of ours; we write: the pin sees it",
	  .run = op_ksm_merged, .arg = KSM_OWN_WRITE, .mems = MEM(MEM_BASE), .need = need_ksm_pinner },
	{ .name = "ksm.unshare.process-vm-readv",
	  .desc = "our page KSM-merged with another process's; process_vm_readv of it unshares it; the other's write is not seen",
	  .run = op_ksm_merged, .arg = KSM_PVR, .mems = MEM(MEM_BASE), .need = need_ksm },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
