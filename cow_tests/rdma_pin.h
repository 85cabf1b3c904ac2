/* SPDX-License-Identifier: GPL-2.0 */
/*
 * RDMA registrations for cow_rdma, behind a small interface: rdma_verbs.c does
 * them with libibverbs on the guest's soft-RoCE device; rdma_none.c is what
 * cow_rdma is built with on a host without libibverbs (every case then SKIPs,
 * saying so).
 */
#ifndef COW_RDMA_PIN_H
#define COW_RDMA_PIN_H

#include <stdbool.h>
#include <stddef.h>

struct rdma;
struct rdma_mr;

/* NULL when there is an RDMA device to use, else why not (in why, or static). */
const char *rdma_missing(char *why, size_t len);
/* Open the first device and an RC queue pair connected to itself.
 * 0, or -errno with what failed in err. */
int rdma_open(struct rdma **rd, char *err, size_t len);
void rdma_close(struct rdma *rd);
/* ibv_reg_mr of [addr, addr + len): R/O (remote read only) or R/W. 0 or -errno.
 * Prints a diagnostics line. */
int rdma_reg(struct rdma *rd, void *addr, size_t len, bool writable, struct rdma_mr **mr);
void rdma_dereg(struct rdma_mr *mr);
/* RDMA READ len bytes at addr of the registration into buf: what the pinned
 * pages hold, not what the mapping shows. 0 or -errno. */
int rdma_read(struct rdma *rd, struct rdma_mr *mr, void *addr, void *buf, size_t len);
/* RDMA WRITE len bytes of buf into the registration at addr. 0 or -errno. */
int rdma_write(struct rdma *rd, struct rdma_mr *mr, void *addr, const void *buf, size_t len);

#endif
