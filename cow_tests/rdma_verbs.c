// SPDX-License-Identifier: GPL-2.0
/*
 * cow_rdma's RDMA layer on libibverbs (rdma_pin.h): the first device (the
 * guest's rxe0), one RC queue pair connected to itself, registrations, and
 * RDMA READ / WRITE through them with a registered bounce buffer at the other
 * end. Linked statically with the soft-RoCE provider (RDMA_STATIC_PROVIDERS).
 */
#define _GNU_SOURCE
#include "common.h"
#include "rdma_pin.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>

/* Why the guest has no RDMA device, written by the guest's init. */
#define RDMA_WHY_FILE "/run/harness-rdma.why"
#define RDMA_CQ_TIMEOUT_S 20

/*
 * Linked statically, libnl (under libibverbs) pulls in glibc's NSS lookups,
 * which a static binary cannot use (and the linker warns about). Nothing here
 * resolves names or protocols: these stand in for them and always fail.
 */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	(void)node; (void)service; (void)hints;
	*res = NULL;
	return EAI_FAIL;
}

void freeaddrinfo(struct addrinfo *res)
{
	(void)res;
}

struct protoent *getprotobynumber(int proto)
{
	(void)proto;
	return NULL;
}

struct protoent *getprotobyname(const char *name)
{
	(void)name;
	return NULL;
}

struct rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	uint8_t port;
	int gid_index;
};

static bool gid_is_ipv4(const union ibv_gid *g)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return !memcmp(g->raw, v4mapped, sizeof(v4mapped));
}

/* The GID to address ourselves with: the IPv4-mapped one (eth0's address) if
 * there is one, else the first non-zero one (the link-local default GID). */
static int pick_gid(struct rdma *rd, int tbl_len)
{
	int first = -1;

	for (int i = 0; i < tbl_len; i++) {
		union ibv_gid g;
		static const union ibv_gid zero;

		if (ibv_query_gid(rd->ctx, rd->port, i, &g) || !memcmp(&g, &zero, sizeof(g)))
			continue;
		if (gid_is_ipv4(&g))
			return i;
		if (first < 0)
			first = i;
	}
	return first;
}

/* Bring the queue pair to RTS, connected to itself. 0 or -errno. */
static int connect_self(struct rdma *rd, enum ibv_mtu mtu)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = rd->port,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE,
	};
	union ibv_gid gid;
	int err;

	err = ibv_modify_qp(rd->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (err)
		return -err;
	if (ibv_query_gid(rd->ctx, rd->port, rd->gid_index, &gid))
		return -errno;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = rd->qp->qp_num;
	a.rq_psn = 0;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = gid;
	a.ah_attr.grh.sgid_index = (uint8_t)rd->gid_index;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = rd->port;
	err = ibv_modify_qp(rd->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			    IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (err)
		return -err;
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 0;
	a.max_rd_atomic = 1;
	err = ibv_modify_qp(rd->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			    IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	return -err;
}


const char *rdma_missing(char *why, size_t len)
{
	struct ibv_device **list;
	int n = 0;

	list = ibv_get_device_list(&n);
	if (list)
		ibv_free_device_list(list);
	if (n > 0)
		return NULL;
	why[0] = 0;
	read_text(RDMA_WHY_FILE, why, len);
	if (!why[0] && !access("/sys/class/infiniband/rxe0", F_OK))
		snprintf(why, len, "rxe0 exists, but libibverbs finds no device: is ib_uverbs loaded (/dev/infiniband)?");
	if (!why[0])
		snprintf(why, len, "needs rdma_rxe and an rxe link on eth0, which the harness sets up");
	return why;
}

void rdma_close(struct rdma *rd)
{
	if (!rd)
		return;
	if (rd->qp)
		ibv_destroy_qp(rd->qp);
	if (rd->cq)
		ibv_destroy_cq(rd->cq);
	if (rd->pd)
		ibv_dealloc_pd(rd->pd);
	if (rd->ctx)
		ibv_close_device(rd->ctx);
	free(rd);
}

int rdma_open(struct rdma **out, char *errbuf, size_t len)
{
	struct ibv_qp_init_attr qa = { .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 } };
	struct ibv_port_attr pa;
	struct ibv_device **list;
	struct rdma *rd;
	const char *what;
	int n = 0, err;

	*out = NULL;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->port = 1;
	list = ibv_get_device_list(&n);
	what = "no device";
	errno = ENODEV;
	if (!list || n < 1) {
		if (list)
			ibv_free_device_list(list);
		goto fail;
	}
	rd->ctx = ibv_open_device(list[0]);
	diag("RDMA device %s", ibv_get_device_name(list[0]));
	ibv_free_device_list(list);
	what = "ibv_open_device";
	if (!rd->ctx)
		goto fail;
	what = "ibv_query_port";
	if (ibv_query_port(rd->ctx, rd->port, &pa))
		goto fail;
	what = "a usable GID (is eth0 up with an address?)";
	errno = ENOENT;
	rd->gid_index = pick_gid(rd, pa.gid_tbl_len);
	if (rd->gid_index < 0)
		goto fail;
	what = "ibv_alloc_pd";
	rd->pd = ibv_alloc_pd(rd->ctx);
	if (!rd->pd)
		goto fail;
	what = "ibv_create_cq";
	rd->cq = ibv_create_cq(rd->ctx, 8, NULL, NULL, 0);
	if (!rd->cq)
		goto fail;
	qa.send_cq = qa.recv_cq = rd->cq;
	what = "ibv_create_qp";
	rd->qp = ibv_create_qp(rd->pd, &qa);
	if (!rd->qp)
		goto fail;
	err = connect_self(rd, pa.active_mtu);
	if (err) {
		errno = -err;
		what = "connecting the queue pair to itself";
		goto fail;
	}
	*out = rd;
	return 0;
fail:
	err = errno ? errno : EIO;
	snprintf(errbuf, len, "%s: %s", what, errno_name(err));
	rdma_close(rd);
	return -err;
}

static const char *access_name(int access)
{
	return (access & IBV_ACCESS_LOCAL_WRITE) ? "R/W" : "R/O";
}


#define ACCESS_RO IBV_ACCESS_REMOTE_READ
#define ACCESS_RW (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE)

/* One RDMA READ or WRITE between a local and a remote (the same QP) range;
 * 0 or -errno (-EIO with a diagnostics line for a failed completion). */
static int rdma_xfer(struct rdma *rd, enum ibv_wr_opcode op, struct ibv_mr *local, void *laddr,
		     size_t len, struct ibv_mr *remote, void *raddr)
{
	struct ibv_sge sge = { .addr = (uintptr_t)laddr, .length = (uint32_t)len, .lkey = local->lkey };
	struct ibv_send_wr wr = { .wr_id = 1, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)raddr, .rkey = remote->rkey } };
	struct ibv_send_wr *bad = NULL;
	struct timespec t0, t;
	struct ibv_wc wc;
	int n, err;

	err = ibv_post_send(rd->qp, &wr, &bad);
	if (err)
		return -err;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((n = ibv_poll_cq(rd->cq, 1, &wc)) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > RDMA_CQ_TIMEOUT_S) {
			diag("no completion after %d s", RDMA_CQ_TIMEOUT_S);
			return -ETIMEDOUT;
		}
		usleep(200);
	}
	if (n < 0)
		return -EIO;
	if (wc.status != IBV_WC_SUCCESS) {
		diag("%s completion: %s", op == IBV_WR_RDMA_READ ? "RDMA READ" : "RDMA WRITE",
		     ibv_wc_status_str(wc.status));
		return -EIO;
	}
	return 0;
}

struct rdma_mr {
	struct ibv_mr *mr;
};

int rdma_reg(struct rdma *rd, void *addr, size_t len, bool writable, struct rdma_mr **out)
{
	int access = writable ? ACCESS_RW : ACCESS_RO;
	struct rdma_mr *m = calloc(1, sizeof(*m));
	int err;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	errno = 0;
	m->mr = ibv_reg_mr(rd->pd, addr, len, access);
	err = m->mr ? 0 : -(errno ? errno : EIO);
	diag("ibv_reg_mr(%s, %zu bytes) = %s", access_name(access), len, ret_name(err));
	if (err)
		free(m);
	else
		*out = m;
	return err;
}

void rdma_dereg(struct rdma_mr *m)
{
	if (!m)
		return;
	ibv_dereg_mr(m->mr);
	free(m);
}

/* The other end of a transfer: an anonymous buffer registered R/W. */
static int bounce(struct rdma *rd, size_t len, char **buf, struct ibv_mr **mr)
{
	*mr = NULL;
	*buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*buf == MAP_FAILED) {
		*buf = NULL;
		return -ENOMEM;
	}
	memset(*buf, 0, len);
	*mr = ibv_reg_mr(rd->pd, *buf, len, ACCESS_RW);
	if (*mr)
		return 0;
	munmap(*buf, len);
	*buf = NULL;
	return -(errno ? errno : EIO);
}

static void bounce_free(char *buf, struct ibv_mr *mr, size_t len)
{
	if (mr)
		ibv_dereg_mr(mr);
	if (buf)
		munmap(buf, len);
}

int rdma_read(struct rdma *rd, struct rdma_mr *m, void *addr, void *out, size_t len)
{
	struct ibv_mr *bmr;
	char *buf;
	int err = bounce(rd, len, &buf, &bmr);

	if (err)
		return err;
	err = rdma_xfer(rd, IBV_WR_RDMA_READ, bmr, buf, len, m->mr, addr);
	if (!err)
		memcpy(out, buf, len);
	bounce_free(buf, bmr, len);
	return err;
}

int rdma_write(struct rdma *rd, struct rdma_mr *m, void *addr, const void *in, size_t len)
{
	struct ibv_mr *bmr;
	char *buf;
	int err = bounce(rd, len, &buf, &bmr);

	if (err)
		return err;
	memcpy(buf, in, len);
	err = rdma_xfer(rd, IBV_WR_RDMA_WRITE, bmr, buf, len, m->mr, addr);
	bounce_free(buf, bmr, len);
	return err;
}
