// SPDX-License-Identifier: GPL-2.0
/* Long-term pins for the test programs: see pinner.h. */
#define _GNU_SOURCE
#include "pinner.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define GUP_TEST_FILE "/sys/kernel/debug/gup_test"
#define HARNESS_PIN_FILE "/sys/kernel/debug/harness_pin"
/* Written by the harness when it could not build or load the module. */
#define HARNESS_PIN_WHY "/harness/modules/harness_pin.ko.why"

static const char *pinner_file(void)
{
	const char *p = getenv("COW_PINNER");

	if (p && !strcmp(p, "module"))
		return HARNESS_PIN_FILE;
	if ((p && !strcmp(p, "gup_test")) || !access(GUP_TEST_FILE, F_OK))
		return GUP_TEST_FILE;
	return HARNESS_PIN_FILE;
}

enum status need_pinner(struct result *r)
{
	const char *f = pinner_file();
	char why[160] = "";

	if (!access(f, F_OK))
		return ST_PASS;
	if (!strcmp(f, GUP_TEST_FILE))
		return res_skip(r, "gup_test not available (%s: %s; needs CONFIG_GUP_TEST and debugfs)",
				GUP_TEST_FILE, errno_name(errno));
	read_text(HARNESS_PIN_WHY, why, sizeof(why));
	return res_skip(r, "no long-term pinner: no gup_test (needs CONFIG_GUP_TEST) and no harness_pin module (%s)",
			why[0] ? why : "not loaded");
}

int pinner_open(struct result *r)
{
	const char *f = pinner_file();
	int fd = open(f, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		res_skip(r, "pinner not available: open %s: %s", f, errno_name(errno));
	else
		diag("pinner: %s", f);
	return fd;
}

int pin_start(int gfd, const struct area *a, int flags)
{
	struct pin_longterm_test args = {
		.addr = (uintptr_t)a->mem,
		.size = a->size,
		.flags = ((flags & USE_WRITE) ? PIN_LONGTERM_TEST_FLAG_USE_WRITE : 0) |
			 ((flags & USE_FAST) ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0),
	};
	int ret = ioctl(gfd, PIN_LONGTERM_TEST_START, &args) ? -errno : 0;

	diag("PIN_LONGTERM_TEST_START(%s, %s, %zu bytes) = %s", (flags & USE_WRITE) ? "R/W" : "R/O",
	     (flags & USE_FAST) ? "GUP-fast" : "GUP", a->size, ret_name(ret));
	return ret;
}

void pin_stop(int gfd)
{
	if (ioctl(gfd, PIN_LONGTERM_TEST_STOP))
		diag("PIN_LONGTERM_TEST_STOP: %s", errno_name(errno));
}

enum status pin_start_failed(int err, struct result *r)
{
	if (err == -EINVAL)
		return res_skip(r, "PIN_LONGTERM_TEST_START failed with EINVAL: gup_test without the PIN_LONGTERM_TEST interface (c77369b437f9, 6.2)");
	return res_fail(r, "the long-term pin failed: %s", errno_name(-err));
}

enum status pin_holds(int gfd, size_t size, enum pattern_gen gen, bool *same, struct result *r)
{
	char *buf = malloc(size);
	uint64_t addr = (uintptr_t)buf;

	if (!buf)
		return res_fail(r, "malloc: ENOMEM");
	if (ioctl(gfd, PIN_LONGTERM_TEST_READ, &addr)) {
		free(buf);
		return res_fail(r, "PIN_LONGTERM_TEST_READ: %s", errno_name(errno));
	}
	*same = pattern_check("pinned pages (PIN_LONGTERM_TEST_READ)", buf, size, gen);
	free(buf);
	return ST_PASS;
}
