/*
 * policysrv - listeners and connections of the Postfix policy service.
 *
 * See policysrv.h for the interface. Design notes:
 *
 * Memory per idle connection is a few hundred bytes: the read buffer and the
 * parsed request are shared by the whole server (requests are evaluated
 * synchronously, so only the partial request inside each connection's parser
 * and, rarely, pipelined leftovers are per connection). That is what lets ten
 * thousand mostly idle Postfix connections cost little.
 *
 * Timeouts use one sweep timer over a list kept in order of last activity
 * (every read or write progress moves the connection to the tail), so there
 * is no timer per connection and the sweep stops at the first fresh entry.
 * A connection whose reply cannot be written is dropped after
 * STALL_TIMEOUT seconds (Postfix itself gives up after 10 s), an idle one
 * after idle_timeout.
 *
 * Level-triggered epoll: one read per readiness event per connection, so a
 * fast peer cannot starve the others.
 *
 * Replies go out in a batch after the turn's reads (loop_on_events_done), at
 * most PEND_MAX connections' worth at a time: a client process that is
 * woken by the first reply finds the next ones ready instead of going back
 * to sleep between them, which halves the wake-ups under load. At low load
 * a turn holds one request and nothing changes. The batch is sent before
 * the turn's timers and hooks (state flushes, firewall commits), so nothing
 * slow sits between a request and its reply.
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "policy/policy.h"
#include "policy/policysrv.h"

#define READ_CHUNK 16384
#define PEND_MAX 16            /* connections whose replies wait for the end of the turn */
#define PEND_BYTES 4096        /* one connection's replies sent at once from this size */
#define ACCEPT_BATCH 64
#define STALL_TIMEOUT 30.0
#define SWEEP_MS 1000
#define PAUSE_MS 200           /* listener pause when no descriptor is left at all */
#define LOG_BURST 20           /* malformed/refusal messages per LOG_WINDOW */
#define LOG_WINDOW 10.0

struct policysrv;

struct listener {
	struct policysrv *s;
	int fd;
	char *name;               /* as configured: "inet:127.0.0.1:10023" */
	char *unix_path;          /* to unlink at the end; NULL for inet */
	int paused;
};

struct conn {
	struct policysrv *s;
	int fd;
	unsigned interest;        /* LOOP_READ or LOOP_WRITE as registered */
	struct policy_parser *pp;
	struct strbuf out;
	size_t outoff;
	char *left;               /* pipelined bytes not parsed yet (reply pending) */
	size_t leftlen;
	double last;              /* last progress, monotonic seconds */
	size_t pend;              /* 1 + its place in the server's pending replies; 0: none */
	struct conn *prev, *next; /* activity order: head = oldest */
	char peer[80];
};

struct policysrv {
	struct loop *loop;
	struct policysrv_opts o;
	policysrv_eval_fn eval;
	void *arg;
	struct listener *ls;
	size_t nls;
	struct conn *head, *tail;
	struct policysrv_stats st;
	struct policy_req req;    /* shared: evaluated before the next feed */
	struct strbuf action;
	char *rbuf;
	int reserve_fd;           /* spare descriptor given up to shed a connection on EMFILE */
	uint64_t sweep_timer;
	uint64_t pause_timer;
	struct conn *pend[PEND_MAX];  /* replies to send at the end of the turn (NULL: closed) */
	size_t npend;
	double log_window_start;
	unsigned log_count, log_suppressed;
};

static double mono(void)
{
	return (double)loop_now_ms() / 1000.0;
}

/* Rate-limited warning: garbage floods must not flood the log as well. */
static int log_allowed(struct policysrv *s)
{
	double now = mono();
	if (now - s->log_window_start >= LOG_WINDOW) {
		if (s->log_suppressed)
			log_warnx("policy: %u similar messages suppressed", s->log_suppressed);
		s->log_window_start = now;
		s->log_count = 0;
		s->log_suppressed = 0;
	}
	if (s->log_count >= LOG_BURST) {
		s->log_suppressed++;
		return 0;
	}
	s->log_count++;
	return 1;
}

/* ---------- connection list ---------- */

static void list_unlink(struct policysrv *s, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	c->prev = c->next = NULL;
}

static void list_append(struct policysrv *s, struct conn *c)
{
	c->prev = s->tail;
	c->next = NULL;
	if (s->tail)
		s->tail->next = c;
	else
		s->head = c;
	s->tail = c;
}

static void touch(struct conn *c)
{
	c->last = mono();
	if (c->s->tail != c) {
		list_unlink(c->s, c);
		list_append(c->s, c);
	}
}

static void conn_close(struct conn *c)
{
	struct policysrv *s = c->s;
	if (c->pend)
		s->pend[c->pend - 1] = NULL;
	loop_fd_del(s->loop, c->fd);
	close(c->fd);
	list_unlink(s, c);
	policy_parser_free(c->pp);
	strbuf_free(&c->out);
	free(c->left);
	free(c);
	s->st.conns--;
}

static void set_interest(struct conn *c, unsigned ev)
{
	if (c->interest == ev)
		return;
	if (loop_fd_mod(c->s->loop, c->fd, ev) == 0)
		c->interest = ev;
}

/* Writes what is pending. Returns 1 when everything went out, 0 when the
 * socket is full, -1 when the connection is dead. */
static int flush_out(struct conn *c)
{
	/* a reply sent whole right after its request needs no touch (the
	 * request's read was one); a reply the peer takes slowly does */
	int resumed = c->outoff > 0;
	while (c->outoff < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->outoff, c->out.len - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		c->outoff += (size_t)n;
		if (resumed || c->outoff < c->out.len)
			touch(c);
	}
	strbuf_reset(&c->out);
	c->outoff = 0;
	return 1;
}

/* Appends "action=TEXT\n\n"; TEXT comes from the engine and must not break the
 * framing, so line breaks become blanks and the length is capped. */
static void add_reply(struct conn *c, const char *text, size_t len)
{
	while (len && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (!len) {
		text = "DUNNO";
		len = 5;
	}
	if (len > POLICYSRV_MAX_REPLY)
		len = POLICYSRV_MAX_REPLY;
	strbuf_adds(&c->out, "action=");
	size_t from = c->out.len;
	strbuf_add(&c->out, text, len);
	for (char *p = c->out.s + from; p < c->out.s + c->out.len; p++)
		if (*p == '\n' || *p == '\r' || *p == '\0')
			*p = ' ';
	strbuf_adds(&c->out, "\n\n");
}

/* Parses data, answering each complete request. Returns 0 when all of data
 * was used (and any replies written or pending), -1 when the connection was
 * closed. Stops at the first reply that cannot be written completely and
 * keeps the rest of data for later. */
static int process(struct conn *c, const char *data, size_t len)
{
	struct policysrv *s = c->s;
	char err[256];
	while (len) {
		long r = policy_parser_feed(c->pp, data, len, &s->req, err, sizeof err);
		if (r < 0) {
			s->st.malformed++;
			if (log_allowed(s))
				log_warnx("policy: %s: malformed request (%s); connection closed "
					  "without a reply",
					  c->peer, err);
			/* the answers to the requests before it still go out */
			if (c->outoff < c->out.len)
				flush_out(c);
			conn_close(c);
			return -1;
		}
		if (r == 0)
			break;
		s->st.requests++;
		strbuf_reset(&s->action);
		s->eval(s->arg, &s->req, &s->action);
		add_reply(c, strbuf_str(&s->action), s->action.len);
		data += r;
		len -= (size_t)r;
		if (c->out.len - c->outoff < PEND_BYTES && (c->pend || s->npend < PEND_MAX)) {
			if (!c->pend) {
				s->pend[s->npend++] = c;
				c->pend = s->npend;
			}
			continue;   /* sent by send_pending() */
		}
		int w = flush_out(c);
		if (w < 0) {
			conn_close(c);
			return -1;
		}
		if (w == 0) {
			if (len) {
				c->left = xmalloc(len);
				memcpy(c->left, data, len);
				c->leftlen = len;
			}
			set_interest(c, LOOP_WRITE);
			return 0;
		}
	}
	if (!c->pend)
		set_interest(c, LOOP_READ);
	return 0;
}

/* End of the turn's reads: the replies they produced. */
static void send_pending(struct loop *l, void *arg)
{
	(void)l;
	struct policysrv *s = arg;
	for (size_t i = 0; i < s->npend; i++) {
		struct conn *c = s->pend[i];
		if (!c)
			continue;
		c->pend = 0;
		int w = flush_out(c);
		if (w < 0)
			conn_close(c);
		else
			set_interest(c, w ? LOOP_READ : LOOP_WRITE);
	}
	s->npend = 0;
}

static void on_conn(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)fd;
	struct conn *c = arg;
	struct policysrv *s = c->s;
	if (c->outoff < c->out.len) {
		int w = flush_out(c);
		if (w < 0) {
			conn_close(c);
			return;
		}
		if (w == 0)
			return;   /* still waiting for the peer to read */
	}
	if (c->left) {
		char *left = c->left;
		size_t n = c->leftlen;
		c->left = NULL;
		c->leftlen = 0;
		int r = process(c, left, n);
		free(left);
		if (r < 0 || c->outoff < c->out.len)
			return;
	}
	if (!(ev & (LOOP_READ | LOOP_ERROR))) {
		set_interest(c, LOOP_READ);
		return;
	}
	ssize_t n = recv(c->fd, s->rbuf, READ_CHUNK, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c);
		return;
	}
	if (n == 0) {
		/* end of input: every complete request has been answered (nothing is
		 * read while a reply is pending); a partial one gets no reply */
		conn_close(c);
		return;
	}
	touch(c);
	process(c, s->rbuf, (size_t)n);
}

/* ---------- listeners ---------- */

static void peer_text(const struct sockaddr_storage *ss, socklen_t len, const struct listener *li,
		      char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
		snprintf(out, outlen, "%s:%u", host, ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
		snprintf(out, outlen, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		(void)len;
		snprintf(out, outlen, "%s", li->name);
	}
}

static void on_listen(struct loop *l, int fd, unsigned ev, void *arg);

static void resume_listeners(struct loop *l, void *arg)
{
	struct policysrv *s = arg;
	s->pause_timer = 0;
	for (size_t i = 0; i < s->nls; i++)
		if (s->ls[i].paused && loop_fd_add(l, s->ls[i].fd, LOOP_READ, on_listen, &s->ls[i]) == 0)
			s->ls[i].paused = 0;
}

/* No descriptor left and no reserve to shed the connection with: stop
 * listening for a moment rather than spin on a listener that stays readable. */
static void pause_listeners(struct policysrv *s)
{
	for (size_t i = 0; i < s->nls; i++)
		if (!s->ls[i].paused) {
			loop_fd_del(s->loop, s->ls[i].fd);
			s->ls[i].paused = 1;
		}
	if (!s->pause_timer)
		s->pause_timer = loop_timer_add(s->loop, PAUSE_MS, resume_listeners, s);
}

static void shed_one(struct policysrv *s, struct listener *li)
{
	s->st.refused++;
	if (s->reserve_fd >= 0) {
		close(s->reserve_fd);
		s->reserve_fd = -1;
		int fd = accept(li->fd, NULL, NULL);
		if (fd >= 0)
			close(fd);
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (s->reserve_fd >= 0)
			return;
	}
	pause_listeners(s);
}

static void on_listen(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)ev;
	struct listener *li = arg;
	struct policysrv *s = li->s;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				int e = errno;
				if (log_allowed(s))
					log_warnx("policy: %s: accept: %s; connection dropped (%zu open)",
						  li->name, strerror(e), s->st.conns);
				shed_one(s, li);
				return;
			}
			if (log_allowed(s))
				log_warnx("policy: %s: accept: %s", li->name, strerror(errno));
			return;
		}
		if (s->st.conns >= s->o.max_conns) {
			s->st.refused++;
			if (log_allowed(s))
				log_warnx("policy: %s: %zu connections open (the limit); new one refused",
					  li->name, s->st.conns);
			close(cfd);
			continue;
		}
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
			int one = 1;
			setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
		struct conn *c = xcalloc(1, sizeof *c);
		c->s = s;
		c->fd = cfd;
		c->interest = LOOP_READ;
		c->pp = policy_parser_new();
		peer_text(&ss, sl, li, c->peer, sizeof c->peer);
		if (loop_fd_add(l, cfd, LOOP_READ, on_conn, c) < 0) {
			policy_parser_free(c->pp);
			free(c);
			close(cfd);
			s->st.refused++;
			continue;
		}
		c->last = mono();
		list_append(s, c);
		s->st.conns++;
		s->st.accepted++;
	}
}

static void on_sweep(struct loop *l, void *arg)
{
	struct policysrv *s = arg;
	double now = mono();
	double idle = s->o.idle_timeout;
	double stall = STALL_TIMEOUT < idle ? STALL_TIMEOUT : idle;
	struct conn *c = s->head;
	while (c && now - c->last >= stall) {
		struct conn *next = c->next;
		int pending = c->outoff < c->out.len;
		if (pending || now - c->last >= idle) {
			s->st.timeouts++;
			if (pending && log_allowed(s))
				log_warnx("policy: %s: peer does not read its reply; connection closed",
					  c->peer);
			conn_close(c);
		}
		c = next;
	}
	s->sweep_timer = loop_timer_add(l, SWEEP_MS, on_sweep, s);
}

/* "inet:HOST:PORT", "inet:[V6]:PORT", "inet:PORT" (all addresses), "unix:PATH". */
static int open_listener(struct policysrv *s, const char *spec, char *err, size_t errlen)
{
	int fd = -1;
	char *unix_path = NULL;
	if (!strncmp(spec, "unix:", 5)) {
		const char *path = spec + 5;
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (!*path || strlen(path) >= sizeof sun.sun_path) {
			snprintf(err, errlen, "listen '%s': unix socket path empty or too long", spec);
			return -1;
		}
		strcpy(sun.sun_path, path);
		struct stat st;
		if (lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				snprintf(err, errlen, "listen '%s': %s exists and is not a socket", spec,
					 path);
				return -1;
			}
			unlink(path);
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
			snprintf(err, errlen, "%s: %s", spec, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		chmod(path, s->o.unix_mode);
		unix_path = xstrdup(path);
	} else if (!strncmp(spec, "inet:", 5)) {
		char *hp = xstrdup(spec + 5), *host = NULL, *port;
		char *colon = strrchr(hp, ':');
		if (!colon) {
			port = hp;
		} else {
			*colon = '\0';
			port = colon + 1;
			host = hp;
			size_t hl = strlen(host);
			if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
				host[hl - 1] = '\0';
				host++;
			}
			if (!*host || !strcmp(host, "*"))
				host = NULL;
		}
		char *end;
		unsigned long pn = strtoul(port, &end, 10);
		if (!*port || *end || pn == 0 || pn > 65535) {
			snprintf(err, errlen, "listen '%s': expected inet:HOST:PORT with a port 1-65535",
				 spec);
			free(hp);
			return -1;
		}
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
		struct addrinfo *ai = NULL;
		int g = getaddrinfo(host, port, &hints, &ai);
		if (g != 0) {
			snprintf(err, errlen, "listen '%s': %s", spec, gai_strerror(g));
			free(hp);
			return -1;
		}
		/* no host: prefer the IPv6 wildcard, which takes IPv4 as well */
		struct addrinfo *pick = ai;
		if (!host)
			for (struct addrinfo *p = ai; p; p = p->ai_next)
				if (p->ai_family == AF_INET6) {
					pick = p;
					break;
				}
		fd = socket(pick->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1, zero = 0;
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			if (pick->ai_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, host ? &one : &zero, sizeof one);
		}
		if (fd < 0 || bind(fd, pick->ai_addr, pick->ai_addrlen) < 0) {
			snprintf(err, errlen, "%s: %s", spec, strerror(errno));
			if (fd >= 0)
				close(fd);
			freeaddrinfo(ai);
			free(hp);
			return -1;
		}
		freeaddrinfo(ai);
		free(hp);
	} else {
		snprintf(err, errlen, "listen '%s': expected inet:HOST:PORT or unix:PATH", spec);
		return -1;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		snprintf(err, errlen, "%s: listen: %s", spec, strerror(errno));
		close(fd);
		if (unix_path)
			unlink(unix_path);
		free(unix_path);
		return -1;
	}
	s->ls = xrealloc(s->ls, (s->nls + 1) * sizeof *s->ls);
	s->ls[s->nls] = (struct listener){s, fd, xstrdup(spec), unix_path, 0};
	s->nls++;
	return 0;
}

struct policysrv *policysrv_new(struct loop *l, const char *listen, const struct policysrv_opts *o,
				policysrv_eval_fn eval, void *arg, char *err, size_t errlen)
{
	struct policysrv *s = xcalloc(1, sizeof *s);
	s->loop = l;
	if (o)
		s->o = *o;
	if (s->o.idle_timeout <= 0)
		s->o.idle_timeout = POLICYSRV_IDLE_DEFAULT;
	if (!s->o.max_conns)
		s->o.max_conns = POLICYSRV_MAX_CONNS_DEFAULT;
	if (!s->o.unix_mode)
		s->o.unix_mode = 0666;
	s->eval = eval;
	s->arg = arg;
	s->reserve_fd = -1;
	policy_req_init(&s->req);
	char *copy = xstrdup(listen ? listen : "");
	char *save = NULL;
	for (char *w = strtok_r(copy, " \t\r\n,", &save); w; w = strtok_r(NULL, " \t\r\n,", &save)) {
		if (open_listener(s, w, err, errlen) < 0) {
			free(copy);
			policysrv_free(s);
			return NULL;
		}
	}
	free(copy);
	if (!s->nls) {
		snprintf(err, errlen, "listen: no address given (e.g. inet:127.0.0.1:10023)");
		policysrv_free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->nls; i++) {
		int r = loop_fd_add(l, s->ls[i].fd, LOOP_READ, on_listen, &s->ls[i]);
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", s->ls[i].name, strerror(-r));
			policysrv_free(s);
			return NULL;
		}
	}
	s->rbuf = xmalloc(READ_CHUNK);
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s->st.listeners = s->nls;
	s->sweep_timer = loop_timer_add(l, SWEEP_MS, on_sweep, s);
	loop_on_events_done(l, send_pending, s);
	return s;
}

void policysrv_free(struct policysrv *s)
{
	if (!s)
		return;
	while (s->head)
		conn_close(s->head);
	for (size_t i = 0; i < s->nls; i++) {
		if (!s->ls[i].paused)
			loop_fd_del(s->loop, s->ls[i].fd);
		close(s->ls[i].fd);
		if (s->ls[i].unix_path)
			unlink(s->ls[i].unix_path);
		free(s->ls[i].unix_path);
		free(s->ls[i].name);
	}
	free(s->ls);
	loop_events_done_del(s->loop, send_pending, s);   /* nothing if never added */
	if (s->sweep_timer)
		loop_timer_del(s->loop, s->sweep_timer);
	if (s->pause_timer)
		loop_timer_del(s->loop, s->pause_timer);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	policy_req_free(&s->req);
	strbuf_free(&s->action);
	free(s->rbuf);
	free(s);
}

void policysrv_stats(const struct policysrv *s, struct policysrv_stats *out)
{
	*out = s->st;
}

void policysrv_format(const struct policysrv *s, int json, struct strbuf *out)
{
	const struct policysrv_stats *st = &s->st;
	if (json) {
		strbuf_adds(out, "{\"listen\":[");
		for (size_t i = 0; i < s->nls; i++) {
			if (i)
				strbuf_addc(out, ',');
			strbuf_add_json(out, s->ls[i].name, strlen(s->ls[i].name));
		}
		strbuf_addf(out,
			    "],\"connections\":%zu,\"accepted\":%lu,\"refused\":%lu,"
			    "\"requests\":%lu,\"malformed\":%lu,\"timeouts\":%lu}",
			    st->conns, st->accepted, st->refused, st->requests, st->malformed,
			    st->timeouts);
		return;
	}
	strbuf_adds(out, "Listening on:");
	for (size_t i = 0; i < s->nls; i++)
		strbuf_addf(out, " %s", s->ls[i].name);
	strbuf_addf(out,
		    "\nConnections: %zu open, %lu accepted, %lu refused, %lu timed out\n"
		    "Requests: %lu answered, %lu malformed (closed without reply)\n",
		    st->conns, st->accepted, st->refused, st->timeouts, st->requests, st->malformed);
}
