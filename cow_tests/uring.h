/* SPDX-License-Identifier: GPL-2.0 */
/*
 * io_uring fixed buffers for the test programs (liburing).
 *
 * A registered buffer is a R/W long-term pin (FOLL_WRITE|FOLL_PIN|
 * FOLL_LONGTERM). IORING_OP_WRITE_FIXED of the buffer into a file shows
 * what the pinned pages hold, whatever the process mapping now points to.
 *
 * liburing 2.3 returns -errno and leaves errno alone: every helper here
 * works with return values, never errno.
 */
#ifndef COW_URING_H
#define COW_URING_H

#include <liburing.h>

#include "common.h"

/* A ring, or SKIP ("io_uring not available") in r. */
enum status ring_open(struct io_uring *ring, struct result *r);
/* Register [mem, mem+len) as fixed buffer 0; the return value (0 or -errno), with a diagnostics line. */
int ring_register(struct io_uring *ring, void *mem, size_t len);
/*
 * IORING_OP_WRITE_FIXED of buffer 0 ([mem, mem+len)) into fd at offset 0,
 * then read the file back and pattern_check it against gen: ST_PASS with
 * *same set, or ST_FAIL in r if the I/O itself failed.
 */
enum status fixed_buffer_holds(struct io_uring *ring, const void *mem, size_t len, int fd,
			       enum pattern_gen gen, bool *same, struct result *r);

#endif
