/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Long-term pins through the kernel's gup_test debugfs file (CONFIG_GUP_TEST) or the
 * harness's harness_pin module (pin_module/, the same ioctls). COW_PINNER chooses:
 * "gup_test", "module", or unset for gup_test if present, else the module.
 */
#ifndef COW_PINNER_H
#define COW_PINNER_H

#include "common.h"

#include <sys/ioctl.h>

/* The kernel's mm/gup_test.h interface (ioctl numbers and layouts). */
struct pin_longterm_test {
	uint64_t addr;
	uint64_t size;
	uint32_t flags;
};

#define GUP_TEST_MAX_PAGES_TO_DUMP 8

struct gup_test {
	uint64_t get_delta_usec;
	uint64_t put_delta_usec;
	uint64_t addr;
	uint64_t size;
	uint32_t nr_pages_per_call;
	uint32_t gup_flags;
	uint32_t test_flags;
	uint32_t which_pages[GUP_TEST_MAX_PAGES_TO_DUMP];
};

#define PIN_LONGTERM_BENCHMARK _IOWR('g', 3, struct gup_test)
#define PIN_LONGTERM_TEST_START _IOW('g', 7, struct pin_longterm_test)
#define PIN_LONGTERM_TEST_STOP _IO('g', 8)
#define PIN_LONGTERM_TEST_READ _IOW('g', 9, uint64_t)
#define PIN_LONGTERM_TEST_FLAG_USE_WRITE 1
#define PIN_LONGTERM_TEST_FLAG_USE_FAST 2
#define GUP_FOLL_WRITE 0x01

/* pin_start flags (a cow_gup op's arg carries them in these bits). */
#define USE_FAST	0x01	/* GUP-fast */
#define USE_WRITE	0x02	/* a R/W pin */

/* Precondition of every pinning case: the pinner's file exists, else SKIP saying why. */
enum status need_pinner(struct result *r);
/* Open the pinner; the fd, or -1 with r set to SKIP. */
int pinner_open(struct result *r);
/* PIN_LONGTERM_TEST_START on the area (flags: USE_*); 0 or -errno. */
int pin_start(int gfd, const struct area *a, int flags);
void pin_stop(int gfd);
/* A failed START as a result: EINVAL for valid arguments means the interface is missing (SKIP). */
enum status pin_start_failed(int err, struct result *r);
/* PIN_LONGTERM_TEST_READ and pattern_check against gen into *same; ST_FAIL if the read failed. */
enum status pin_holds(int gfd, size_t size, enum pattern_gen gen, bool *same, struct result *r);

#endif
