// SPDX-License-Identifier: GPL-2.0
/* cow_rdma's RDMA layer when cow_tests was built on a host without libibverbs. */
#include "rdma_pin.h"

#include <errno.h>

const char *rdma_missing(char *why, size_t len)
{
	(void)why;
	(void)len;
	return "cow_rdma was built without libibverbs: install libibverbs-dev and ibverbs-providers on the host (ci/setup.sh)";
}

int rdma_open(struct rdma **rd, char *err, size_t len)
{
	(void)rd;
	(void)err;
	(void)len;
	return -ENOSYS;
}

void rdma_close(struct rdma *rd)
{
	(void)rd;
}

int rdma_reg(struct rdma *rd, void *addr, size_t len, bool writable, struct rdma_mr **mr)
{
	(void)rd;
	(void)addr;
	(void)len;
	(void)writable;
	*mr = NULL;
	return -ENOSYS;
}

void rdma_dereg(struct rdma_mr *mr)
{
	(void)mr;
}

int rdma_read(struct rdma *rd, struct rdma_mr *mr, void *addr, void *buf, size_t len)
{
	(void)rd;
	(void)mr;
	(void)addr;
	(void)buf;
	(void)len;
	return -ENOSYS;
}

int rdma_write(struct rdma *rd, struct rdma_mr *mr, void *addr, const void *buf, size_t len)
{
	(void)rd;
	(void)mr;
	(void)addr;
	(void)buf;
	(void)len;
	return -ENOSYS;
}
