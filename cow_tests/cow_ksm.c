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
 */
#define _GNU_SOURCE
#include "uring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
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

static const struct cow_op ops[] = {
	{ .name = "ksm.pinned-page-not-merged",
	  .desc = "three identical pages, the first an io_uring fixed buffer; ksmd merges the others only",
	  .run = op_ksm_pinned, .mems = MEM(MEM_BASE), .need = need_ksm },
};

int main(int argc, char **argv)
{
	return cow_main(argc, argv, "cow", ops, ARRAY_SIZE(ops));
}
