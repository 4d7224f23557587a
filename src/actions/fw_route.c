/*
 * fw_route - fail2ban's `route` banaction as a native backend (see fw.h).
 *
 * fail2ban runs `ip route add <blocktype> <ip>` per ban; here each banned
 * host or prefix is a route of type unreachable (default), blackhole or
 * prohibit in the main table, written through rtnetlink with libmnl. A
 * commit sends every queued change as one stream of netlink messages on one
 * socket and then reads the acknowledgements, so 10,000 bans cost one
 * round of sendto() calls, not 10,000 processes. Routes affect the replies
 * (the attacker's packets arrive, the answers have no way back): the same
 * meaning as fail2ban's action, for any protocol and port.
 *
 * Routes have no timeouts: the daemon's own timer unbans. check() asks the
 * kernel for one route of each jail that should have some (RTM_GETROUTE of
 * the exact prefix); a missing one means someone flushed the table, and
 * rebuild() puts every ban back (routes still there answer EEXIST: fine).
 * Routes of the chosen type that mxjail did not make are never deleted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "actions/fw.h"
#include "actions/fw_impl.h"
#include "core/xmalloc.h"

/* Messages per sendto(): their acknowledgements (an error echoes the whole
 * request) must fit the socket's receive buffer, or the kernel drops some
 * and the wait for them never ends. */
#define SEND_CHUNK 128
#define RECV_TIMEOUT_S 5         /* never wait longer for the kernel's answers */
#define RT_PROTO_MXJAIL 0xf2     /* rtm_protocol: marks our routes for `ip route show proto` */
#define RT_PROBE (-1)            /* op: add with NLM_F_EXCL, to learn whether the route exists */

struct rt_st {
	unsigned char type;      /* RTN_UNREACHABLE, RTN_BLACKHOLE, RTN_PROHIBIT */
	struct mnl_socket *nl;
	unsigned portid;
	unsigned seq;
	char **jails;
	size_t njails;
	struct fw_map live;      /* (jail, addr) -> 1 */
	struct fw_map pend;      /* (jail, addr) -> 1 ban, 2 unban */
};

static int rt_open(struct rt_st *s, char *err, size_t errlen)
{
	if (s->nl)
		return 0;
	s->nl = mnl_socket_open(NETLINK_ROUTE);
	if (!s->nl)
		return fw_errno(err, errlen, errno, "route: netlink socket: %s", strerror(errno));
	if (mnl_socket_bind(s->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		mnl_socket_close(s->nl);
		s->nl = NULL;
		return fw_errno(err, errlen, e, "route: netlink bind: %s", strerror(e));
	}
	s->portid = mnl_socket_get_portid(s->nl);
	struct timeval tv = {RECV_TIMEOUT_S, 0};
	setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return 0;
}

/* Appends one RTM_NEWROUTE / RTM_DELROUTE / RT_PROBE message for a to buf.
 * Deletes name our protocol and type, so the kernel never removes a route
 * of the same prefix that someone else made. */
static size_t route_msg(struct rt_st *s, char *buf, int op, const struct addr *a)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = op == RTM_DELROUTE ? RTM_DELROUTE : RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	/* never NLM_F_REPLACE: a route of the same prefix that someone else made
	 * stays (EEXIST, tolerated), as fail2ban's `ip route add` leaves it */
	if (op == RTM_NEWROUTE || op == RT_PROBE)
		nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
	nlh->nlmsg_seq = ++s->seq;
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof *rtm);
	rtm->rtm_family = a->family == 6 ? AF_INET6 : AF_INET;
	rtm->rtm_dst_len = (unsigned char)a->prefix;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_scope = op == RTM_DELROUTE ? RT_SCOPE_NOWHERE : RT_SCOPE_UNIVERSE;
	rtm->rtm_protocol = RT_PROTO_MXJAIL;
	rtm->rtm_type = s->type;
	mnl_attr_put(nlh, RTA_DST, a->family == 6 ? 16 : 4, a->a);
	return nlh->nlmsg_len;
}

/* Sends the messages in buf (n of them) and collects the acknowledgements.
 * Returns how many failed; the first error (other than those tolerated:
 * EEXIST on add, ESRCH/ENOENT on delete) is put in err. */
static int rt_exchange(struct rt_st *s, const char *buf, size_t len, unsigned first_seq,
		       unsigned n, char *err, size_t errlen, int *first_errno)
{
	if (len && mnl_socket_sendto(s->nl, buf, len) < 0) {
		*first_errno = errno;
		fw_errno(err, errlen, errno, "route: netlink send: %s", strerror(errno));
		return (int)n;
	}
	unsigned got = 0;
	int bad = 0;
	char rb[MNL_SOCKET_BUFFER_SIZE];
	while (got < n) {
		ssize_t k = mnl_socket_recvfrom(s->nl, rb, sizeof rb);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			/* a timeout or lost answers: the socket may hold stale ones; start afresh */
			mnl_socket_close(s->nl);
			s->nl = NULL;
			if (!*first_errno)
				*first_errno = errno;
			fw_errno(err, errlen, errno, "route: netlink receive: %s", strerror(errno));
			return bad + (int)(n - got);
		}
		int left = (int)k;
		for (const struct nlmsghdr *h = (const struct nlmsghdr *)rb; mnl_nlmsg_ok(h, left);
		     h = mnl_nlmsg_next(h, &left)) {
			if (h->nlmsg_seq < first_seq || h->nlmsg_seq >= first_seq + n)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
				got++;
				if (e->error && e->error != -EEXIST && e->error != -ESRCH &&
				    e->error != -ENOENT) {
					if (!bad)
						fw_errno(err, errlen, -e->error, "route: %s",
							 strerror(-e->error));
					if (!*first_errno)
						*first_errno = -e->error;
					bad++;
				} else if (e->error && !*first_errno) {
					*first_errno = -e->error; /* tolerated, but the caller may care */
				}
			}
		}
	}
	return bad;
}

/* Sends one message per entry of a list of (op, addr), in chunks. */
struct rt_op {
	int op;
	struct addr a;
};

static int rt_run(struct rt_st *s, const struct rt_op *ops, size_t n, char *err, size_t errlen)
{
	int r = rt_open(s, err, errlen);
	if (r < 0)
		return r;
	/* a message is at most header + rtmsg + a 16-byte attribute: 64 bytes */
	char *buf = xmalloc(SEND_CHUNK * 64 + MNL_SOCKET_BUFFER_SIZE);
	size_t len = 0;
	unsigned first = s->seq + 1, cnt = 0;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		len += route_msg(s, buf + len, ops[i].op, &ops[i].a);
		cnt++;
		if (cnt >= SEND_CHUNK || i + 1 == n) {
			int e = 0;
			bad += rt_exchange(s, buf, len, first, cnt, err, errlen, &e);
			len = 0;
			first = s->seq + 1;
			cnt = 0;
		}
	}
	free(buf);
	return bad ? -EIO : 0;
}

static int rt_init(void **stp, const struct fw_options *o, char *err, size_t errlen)
{
	struct rt_st *s = xcalloc(1, sizeof *s);
	const char *bt = o->blocktype && *o->blocktype ? o->blocktype : "unreachable";
	if (strcmp(bt, "unreachable") == 0)
		s->type = RTN_UNREACHABLE;
	else if (strcmp(bt, "blackhole") == 0)
		s->type = RTN_BLACKHOLE;
	else if (strcmp(bt, "prohibit") == 0)
		s->type = RTN_PROHIBIT;
	else {
		free(s);
		return fw_errf(err, errlen,
			       "route: blocktype=%s (expected unreachable, blackhole or prohibit)", bt);
	}
	s->seq = (unsigned)time(NULL);
	*stp = s;
	return 0;
}

static void rt_free(void *st)
{
	struct rt_st *s = st;
	if (s->nl)
		mnl_socket_close(s->nl);
	for (size_t i = 0; i < s->njails; i++)
		free(s->jails[i]);
	free(s->jails);
	fw_map_free(&s->live);
	fw_map_free(&s->pend);
	free(s);
}

static int jail_no(struct rt_st *s, const struct fw_jail *j, char *err, size_t errlen)
{
	if (!j || !j->name || !*j->name)
		return fw_errf(err, errlen, "route: jail name missing");
	for (size_t i = 0; i < s->njails; i++)
		if (strcmp(s->jails[i], j->name) == 0)
			return (int)i;
	s->jails = xrealloc(s->jails, (s->njails + 1) * sizeof *s->jails);
	s->jails[s->njails] = xstrdup(j->name);
	return (int)s->njails++;
}

static int rt_declare(void *st, const struct fw_jail *j, char *err, size_t errlen)
{
	int k = jail_no(st, j, err, errlen);
	return k < 0 ? k : 0;
}

static int rt_ban(void *st, const struct fw_jail *j, const struct addr *a, unsigned long timeout,
		  char *err, size_t errlen)
{
	(void)timeout;
	struct rt_st *s = st;
	return fw_queue(&s->pend, jail_no(s, j, err, errlen), a, 1);
}

static int rt_unban(void *st, const struct fw_jail *j, const struct addr *a, char *err,
		    size_t errlen)
{
	struct rt_st *s = st;
	return fw_queue(&s->pend, jail_no(s, j, err, errlen), a, 2);
}

/* 1 when another jail still bans a (the route is shared: keep it). */
static int other_live(const struct rt_st *s, uint32_t jail, const struct addr *a)
{
	for (size_t k = 0; k < s->njails; k++)
		if (k != jail && fw_map_get(&s->live, (uint32_t)k, a))
			return 1;
	return 0;
}

static int rt_commit(void *st, char *err, size_t errlen)
{
	struct rt_st *s = st;
	if (!s->pend.n)
		return 0;
	struct rt_op *ops = xcalloc(s->pend.n, sizeof *ops);
	size_t n = 0;
	for (size_t i = 0; i < s->pend.cap; i++) {
		struct fw_map_ent *e = &s->pend.e[i];
		if (!e->used)
			continue;
		struct addr a;
		fw_map_key(e, &a);
		int live = fw_map_get(&s->live, e->jail, &a) != NULL;
		int isnew;
		if (e->val == 1) {
			if (!live && !other_live(s, e->jail, &a)) {
				ops[n].op = RTM_NEWROUTE;
				ops[n++].a = a;
			}
			*fw_map_put(&s->live, e->jail, &a, &isnew) = 1;
		} else if (live) {
			fw_map_del(&s->live, e->jail, &a);
			if (!other_live(s, e->jail, &a)) {
				ops[n].op = RTM_DELROUTE;
				ops[n++].a = a;
			}
		}
	}
	fw_map_clear(&s->pend);
	int r = n ? rt_run(s, ops, n, err, errlen) : 0;
	free(ops);
	return r;
}

static int rt_check(void *st, char *err, size_t errlen)
{
	struct rt_st *s = st;
	/* one live route per jail is enough to notice a flushed table */
	for (size_t k = 0; k < s->njails; k++) {
		for (size_t i = 0; i < s->live.cap; i++) {
			struct fw_map_ent *e = &s->live.e[i];
			if (!e->used || e->jail != k)
				continue;
			struct addr a;
			fw_map_key(e, &a);
			int r = rt_open(s, err, errlen);
			if (r < 0)
				return r;
			/* an exclusive add: EEXIST = still there; success = it was gone
			 * (and is back; the rebuild puts back the others) */
			char buf[MNL_SOCKET_BUFFER_SIZE];
			unsigned first = s->seq + 1;
			size_t len = route_msg(s, buf, RT_PROBE, &a);
			int fe = 0;
			char e2[256];
			if (rt_exchange(s, buf, len, first, 1, e2, sizeof e2, &fe) > 0)
				return fw_errno(err, errlen, fe ? fe : EIO, "%s", e2);
			if (fe != EEXIST)
				return fw_errno(err, errlen, ENOENT, "route: the routes of jail %s are gone",
						s->jails[k]);
			break;
		}
	}
	return 0;
}

static int rt_rebuild(void *st, const struct fw_ban *bans, size_t n, char *err, size_t errlen)
{
	struct rt_st *s = st;
	fw_map_clear(&s->pend);
	fw_map_clear(&s->live);
	struct rt_op *ops = xcalloc(n + 1, sizeof *ops);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		int k = jail_no(s, bans[i].jail, err, errlen);
		if (k < 0) {
			free(ops);
			return k;
		}
		int isnew;
		if (!other_live(s, (uint32_t)k, &bans[i].addr)) {
			ops[m].op = RTM_NEWROUTE;
			ops[m++].a = bans[i].addr;
		}
		*fw_map_put(&s->live, (uint32_t)k, &bans[i].addr, &isnew) = 1;
	}
	int r = m ? rt_run(s, ops, m, err, errlen) : 0;
	free(ops);
	return r;
}

static int rt_flush(void *st, char *err, size_t errlen)
{
	struct rt_st *s = st;
	fw_map_clear(&s->pend);
	struct rt_op *ops = xcalloc(s->live.n + 1, sizeof *ops);
	size_t m = 0;
	struct fw_map seen = {0}; /* a route shared by jails goes once */
	for (size_t i = 0; i < s->live.cap; i++) {
		struct fw_map_ent *e = &s->live.e[i];
		if (!e->used)
			continue;
		struct addr a;
		fw_map_key(e, &a);
		int isnew;
		fw_map_put(&seen, 0, &a, &isnew);
		if (isnew) {
			ops[m].op = RTM_DELROUTE;
			ops[m++].a = a;
		}
	}
	fw_map_free(&seen);
	fw_map_clear(&s->live);
	int r = m ? rt_run(s, ops, m, err, errlen) : 0;
	free(ops);
	return r;
}

const struct fw_backend fw_route_backend = {
	.name = "route",
	.init = rt_init,
	.declare = rt_declare,
	.ban = rt_ban,
	.unban = rt_unban,
	.commit = rt_commit,
	.check = rt_check,
	.rebuild = rt_rebuild,
	.flush = rt_flush,
	.stop = rt_flush,
	.free = rt_free,
};
