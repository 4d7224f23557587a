/*
 * http - read-only HTTP/1.1 server on core/loop (see http.h for the protocol
 * subset, its limits and why it is written here).
 *
 * A connection is either reading a request head (C_READ) or writing one
 * response (C_WRITE); it never does both, so a pipelining client cannot make
 * us buffer more than one response. Each connection has one timer whose
 * meaning follows the state: the head deadline (set at the head's first byte
 * and never extended), the keep-alive idle limit, or the write deadline.
 *
 * SECURITY: everything a peer sends is bounded by max_request; the request is
 * parsed only after its terminating empty line is in the buffer, and parsing
 * rejects NUL bytes, control characters, folded headers and bodies.
 */
#include "metrics/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/xmalloc.h"

enum { C_READ, C_WRITE };

struct conn {
	struct http_server *s;
	int fd;
	int state;
	int close_after;
	int timer_kind;        /* T_* below */
	unsigned nreq;
	uint64_t timer;
	char *in;              /* max_request + 1 bytes */
	size_t inlen;
	size_t scanned;        /* in[0..scanned) holds no end of head */
	struct strbuf out;
	size_t sent;
	char peer[INET6_ADDRSTRLEN];
	struct conn *prev, *next;
};

enum { T_NONE, T_HEAD, T_IDLE, T_WRITE };

struct http_server {
	struct loop *loop;
	int fd;
	int paused;            /* accept() hit EMFILE: listener unwatched for a while */
	uint64_t pause_timer;
	int loopback;
	int port;
	struct http_opts o;
	http_handler h;
	void *arg;
	struct conn *head, *tail;
	struct http_stats st;
};

/* ---------- parsing ---------- */

static int is_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Offset just past the empty line that ends the head, 0 when not there yet.
 * Leading empty lines (allowed before a request line) are part of the head.
 * The search starts at `from` (bytes before it were searched already), so a
 * client trickling its head costs linear time in total, not quadratic. */
static size_t head_end_from(const char *buf, size_t len, size_t from)
{
	size_t start = 0;
	while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
		start++;
	if (from < start)
		from = start;
	for (size_t i = from; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		size_t j = i + 1;
		if (j < len && buf[j] == '\r')
			j++;
		if (j < len && buf[j] == '\n')
			return j + 1;
	}
	return 0;
}

/* Splits the next line off *p (up to end), strips CR; NULL at the end. */
static char *next_line(char **p, char *end)
{
	if (*p >= end)
		return NULL;
	char *s = *p;
	char *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		nl = end;
	*nl = '\0';
	if (nl > s && nl[-1] == '\r')
		nl[-1] = '\0';
	*p = nl + 1;
	return s;
}

static int has_token(const char *v, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *s = p;
		while (*p && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
			return 1;
	}
	return 0;
}

long http_parse_request(char *buf, size_t len, struct http_request *rq)
{
	memset(rq, 0, sizeof *rq);
	size_t hl = head_end_from(buf, len, 0);
	if (hl == 0)
		return 0;
	if (memchr(buf, '\0', hl))
		return -400;
	char *p = buf, *end = buf + hl;
	char *line;
	do {
		line = next_line(&p, end);
	} while (line && *line == '\0');
	if (!line)
		return -400;
	/* request line: METHOD SP target SP HTTP/1.x */
	char *sp1 = strchr(line, ' ');
	if (!sp1 || sp1 == line || sp1 - line > 16)
		return -400;
	*sp1 = '\0';
	for (char *m = line; *m; m++)
		if (!is_tchar((unsigned char)*m))
			return -400;
	char *target = sp1 + 1;
	char *sp2 = strchr(target, ' ');
	if (!sp2 || sp2 == target)
		return -400;
	*sp2 = '\0';
	const char *ver = sp2 + 1;
	for (char *t = target; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return -400;
	if (target[0] != '/')
		return -400;
	if (strncmp(ver, "HTTP/", 5) != 0)
		return -400;
	if (strcmp(ver, "HTTP/1.1") == 0)
		rq->minor = 1;
	else if (strcmp(ver, "HTTP/1.0") == 0)
		rq->minor = 0;
	else if (ver[5] >= '0' && ver[5] <= '9' && ver[6] == '.' && ver[7] >= '0' && ver[7] <= '9' &&
		 !ver[8])
		return -505;
	else
		return -400;
	rq->method = line;
	/* headers */
	while ((line = next_line(&p, end)) && *line) {
		if (*line == ' ' || *line == '\t')
			return -400; /* obsolete line folding */
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			return -400;
		for (char *n = line; n < colon; n++)
			if (!is_tchar((unsigned char)*n))
				return -400;
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		char *ve = v + strlen(v);
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			*--ve = '\0';
		for (char *c = v; *c; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return -400;
		if (rq->nheaders == HTTP_MAX_HEADERS)
			return -431;
		rq->headers[rq->nheaders].name = line;
		rq->headers[rq->nheaders].value = v;
		rq->nheaders++;
	}
	const char *cl = http_header(rq, "Content-Length");
	if ((cl && strcmp(cl, "0") != 0) || http_header(rq, "Transfer-Encoding"))
		return -400;
	if (rq->minor == 1 && !http_header(rq, "Host"))
		return -400;
	const char *conn = http_header(rq, "Connection");
	rq->keep_alive = rq->minor == 1 ? !(conn && has_token(conn, "close"))
					: (conn && has_token(conn, "keep-alive"));
	char *q = strchr(target, '?');
	rq->path = target;
	rq->query = "";
	if (q) {
		*q = '\0';
		rq->query = q + 1;
	}
	if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0)
		return -405;
	return (long)hl;
}

const char *http_header(const struct http_request *rq, const char *name)
{
	for (size_t i = rq->nheaders; i-- > 0;)
		if (strcasecmp(rq->headers[i].name, name) == 0)
			return rq->headers[i].value;
	return NULL;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long http_query_get(const char *query, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	const char *p = query;
	while (p && *p) {
		const char *e = strchr(p, '&');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n >= kl && strncmp(p, key, kl) == 0 && (n == kl || p[kl] == '=')) {
			const char *v = n == kl ? p + n : p + kl + 1;
			const char *ve = p + n;
			size_t o = 0;
			while (v < ve) {
				int c = (unsigned char)*v++;
				if (c == '+') {
					c = ' ';
				} else if (c == '%' && ve - v >= 2 && hexval(v[0]) >= 0 && hexval(v[1]) >= 0) {
					c = hexval(v[0]) * 16 + hexval(v[1]);
					v += 2;
				}
				if (o + 1 < outlen)
					out[o] = (char)c;
				o++;
			}
			if (outlen)
				out[o < outlen ? o : outlen - 1] = '\0';
			return (long)o;
		}
		p = e ? e + 1 : NULL;
	}
	return -1;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127;
}

int http_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen,
		      char *err, size_t errlen)
{
	memset(ss, 0, sizeof *ss);
	char host[64] = "127.0.0.1";
	const char *port = spec;
	if (!spec || !*spec) {
		snprintf(err, errlen, "empty listen address");
		return -EINVAL;
	}
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof host) {
			snprintf(err, errlen, "'%s': expected [IPV6]:PORT", spec);
			return -EINVAL;
		}
		memcpy(host, spec + 1, (size_t)(rb - spec - 1));
		host[rb - spec - 1] = '\0';
		port = rb + 2;
	} else if (strchr(spec, ':')) {
		const char *c = strrchr(spec, ':');
		if (strchr(spec, ':') != c || (size_t)(c - spec) >= sizeof host) {
			snprintf(err, errlen, "'%s': expected ADDRESS:PORT (IPv6 in brackets)", spec);
			return -EINVAL;
		}
		memcpy(host, spec, (size_t)(c - spec));
		host[c - spec] = '\0';
		port = c + 1;
	}
	char *pe;
	long pn = strtol(port, &pe, 10);
	if (!*port || *pe || pn < 0 || pn > 65535 || *port == '-' || *port == '+') {
		snprintf(err, errlen, "'%s': expected a port number 0-65535", spec);
		return -EINVAL;
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		*sslen = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		*sslen = sizeof *s6;
	} else {
		snprintf(err, errlen, "'%s': '%s' is not an IP address", spec, host);
		return -EINVAL;
	}
	return is_loopback(ss) ? 0 : 1;
}

/* ---------- connections ---------- */

static void conn_close(struct conn *c)
{
	struct http_server *s = c->s;
	loop_fd_del(s->loop, c->fd);
	if (c->timer)
		loop_timer_del(s->loop, c->timer);
	close(c->fd);
	free(c->in);
	strbuf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	s->st.clients--;
	free(c);
}

static void on_timer(struct loop *l, void *arg);

static void set_timer(struct conn *c, int kind)
{
	struct http_server *s = c->s;
	if (c->timer)
		loop_timer_del(s->loop, c->timer);
	c->timer = 0;
	c->timer_kind = kind;
	unsigned ms = kind == T_HEAD ? s->o.header_timeout_ms
		    : kind == T_IDLE ? s->o.idle_timeout_ms
		    : kind == T_WRITE ? s->o.write_timeout_ms
				      : 0;
	if (kind != T_NONE)
		c->timer = loop_timer_add(s->loop, ms, on_timer, c);
}

static const char *status_text(int st)
{
	switch (st) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static void format_response(struct strbuf *out, int status, const char *ctype, const char *extra,
			    const struct strbuf *body, int head_only, int close)
{
	strbuf_reset(out);
	strbuf_addf(out,
		    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		    "Connection: %s\r\n%s\r\n",
		    status, status_text(status), ctype ? ctype : "text/plain; charset=utf-8",
		    body->len, close ? "close" : "keep-alive", extra ? extra : "");
	if (!head_only)
		strbuf_add(out, strbuf_str(body), body->len);
}

static void conn_write(struct conn *c);
static void conn_input(struct conn *c);

static void start_write(struct conn *c)
{
	c->state = C_WRITE;
	c->sent = 0;
	loop_fd_mod(c->s->loop, c->fd, LOOP_WRITE);
	set_timer(c, T_WRITE);
	conn_write(c);
}

/* A response the server makes itself (errors): the connection closes after it. */
static void error_response(struct conn *c, int status)
{
	struct strbuf body = STRBUF_INIT;
	strbuf_addf(&body, "%d %s\n", status, status_text(status));
	format_response(&c->out, status, NULL, status == 405 ? "Allow: GET, HEAD\r\n" : NULL, &body, 0,
			1);
	strbuf_free(&body);
	c->close_after = 1;
	c->s->st.errors++;
	start_write(c);
}

static void conn_write(struct conn *c)
{
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	if (c->close_after) {
		conn_close(c);
		return;
	}
	strbuf_reset(&c->out);
	c->state = C_READ;
	loop_fd_mod(c->s->loop, c->fd, LOOP_READ);
	set_timer(c, c->inlen ? T_HEAD : T_IDLE);
	if (c->inlen)
		conn_input(c);
}

/* Tries to answer a complete request sitting in the input buffer. */
static void conn_input(struct conn *c)
{
	struct http_server *s = c->s;
	if (c->inlen && c->timer_kind != T_HEAD)
		set_timer(c, T_HEAD);
	/* empty lines before a request line are dropped as they come, so the
	 * search below never walks them again */
	size_t lead = 0;
	while (lead < c->inlen && (c->in[lead] == '\r' || c->in[lead] == '\n'))
		lead++;
	if (lead) {
		memmove(c->in, c->in + lead, c->inlen - lead);
		c->inlen -= lead;
		c->scanned = 0;
	}
	c->in[c->inlen] = '\0';
	if (head_end_from(c->in, c->inlen, c->scanned) == 0) {
		/* the last 3 bytes may start a terminator that is not complete yet */
		c->scanned = c->inlen > 3 ? c->inlen - 3 : 0;
		if (c->inlen >= s->o.max_request)
			error_response(c, 431);
		return;
	}
	c->scanned = 0;
	struct http_request rq;
	long r = http_parse_request(c->in, c->inlen, &rq);
	if (r == 0)
		r = -400; /* cannot happen: the head's end was found above */
	if (r < 0) {
		error_response(c, (int)-r);
		return;
	}
	rq.peer = c->peer;
	struct http_response rs = {200, NULL, NULL, STRBUF_INIT};
	s->h(s->arg, &rq, &rs);
	s->st.requests++;
	c->nreq++;
	c->close_after = !rq.keep_alive || c->nreq >= s->o.max_requests;
	if (rs.status < 100 || rs.status > 599)
		rs.status = 500;
	format_response(&c->out, rs.status, rs.content_type, rs.headers, &rs.body,
			strcmp(rq.method, "HEAD") == 0, c->close_after);
	strbuf_free(&rs.body);
	/* drop the head; pipelined bytes after it wait for the response to go out */
	memmove(c->in, c->in + r, c->inlen - (size_t)r);
	c->inlen -= (size_t)r;
	start_write(c);
}

static void conn_read(struct conn *c)
{
	struct http_server *s = c->s;
	size_t room = s->o.max_request - c->inlen;
	if (room == 0) {
		conn_input(c);
		return;
	}
	ssize_t n;
	do
		n = recv(c->fd, c->in + c->inlen, room, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->inlen += (size_t)n;
	conn_input(c);
}

static void on_conn(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)fd;
	struct conn *c = arg;
	if (c->state == C_WRITE) {
		if (ev & LOOP_ERROR) {
			conn_close(c);
			return;
		}
		conn_write(c);
	} else {
		conn_read(c);
	}
}

static void on_timer(struct loop *l, void *arg)
{
	(void)l;
	struct conn *c = arg;
	c->timer = 0;
	if (c->timer_kind == T_HEAD) {
		static const char msg[] = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
					  "Connection: close\r\n\r\n";
		ssize_t n = send(c->fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
	}
	if (c->timer_kind != T_IDLE)
		c->s->st.timeouts++;
	conn_close(c);
}

static void on_accept(struct loop *l, int fd, unsigned ev, void *arg);

static void on_resume(struct loop *l, void *arg)
{
	struct http_server *s = arg;
	s->pause_timer = 0;
	s->paused = 0;
	loop_fd_add(l, s->fd, LOOP_READ, on_accept, s);
}

static void on_accept(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)ev;
	struct http_server *s = arg;
	for (int k = 0; k < 64; k++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* out of descriptors: stop accepting for a second instead of spinning */
				loop_fd_del(l, s->fd);
				s->paused = 1;
				s->pause_timer = loop_timer_add(l, 1000, on_resume, s);
			}
			return;
		}
		if (s->st.clients >= s->o.max_clients) {
			struct conn *old = s->head;
			while (old && old->state != C_READ)
				old = old->next;
			if (!old) {
				close(cfd);
				continue;
			}
			conn_close(old);
			s->st.evicted++;
		}
		struct conn *c = xcalloc(1, sizeof *c);
		c->s = s;
		c->fd = cfd;
		c->in = xmalloc(s->o.max_request + 1);
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof c->peer);
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer,
				  sizeof c->peer);
		c->prev = s->tail;
		if (s->tail)
			s->tail->next = c;
		else
			s->head = c;
		s->tail = c;
		s->st.clients++;
		s->st.connections++;
		if (loop_fd_add(l, cfd, LOOP_READ, on_conn, c) < 0) {
			conn_close(c);
			continue;
		}
		set_timer(c, T_HEAD);
	}
}

/* ---------- the server ---------- */

struct http_server *http_server_new(struct loop *l, const char *listen_spec,
				    const struct http_opts *o, http_handler h, void *arg, char *err,
				    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int lr = http_parse_listen(listen_spec, &ss, &sl, err, errlen);
	if (lr < 0)
		return NULL;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", listen_spec, strerror(errno));
		return NULL;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "%s: %s", listen_spec, strerror(errno));
		close(fd);
		return NULL;
	}
	struct http_server *s = xcalloc(1, sizeof *s);
	struct http_opts dflt = HTTP_OPTS_DEFAULT;
	s->o = o ? *o : dflt;
	if (s->o.max_request < 256)
		s->o.max_request = 256;
	if (!s->o.max_clients)
		s->o.max_clients = 1;
	if (!s->o.max_requests)
		s->o.max_requests = 1;
	s->loop = l;
	s->fd = fd;
	s->h = h;
	s->arg = arg;
	s->loopback = lr == 0;
	struct sockaddr_storage bound;
	socklen_t bl = sizeof bound;
	if (getsockname(fd, (struct sockaddr *)&bound, &bl) == 0)
		s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
							   : ((struct sockaddr_in6 *)&bound)->sin6_port);
	if (loop_fd_add(l, fd, LOOP_READ, on_accept, s) < 0) {
		snprintf(err, errlen, "%s: cannot watch the socket", listen_spec);
		close(fd);
		free(s);
		return NULL;
	}
	return s;
}

struct http_server *http_server_free(struct http_server *s)
{
	if (!s)
		return NULL;
	while (s->head)
		conn_close(s->head);
	if (s->pause_timer)
		loop_timer_del(s->loop, s->pause_timer);
	if (!s->paused)
		loop_fd_del(s->loop, s->fd);
	close(s->fd);
	free(s);
	return NULL;
}

int http_server_loopback(const struct http_server *s)
{
	return s->loopback;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

void http_server_stats(const struct http_server *s, struct http_stats *out)
{
	*out = s->st;
}
