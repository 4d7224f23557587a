/*
 * conn - the probe's connections: non-blocking TCP with a connect/read
 * timeout and a whole-connection deadline, an optional TLS layer (OpenSSL
 * over the same descriptor), and readers for SMTP replies and text lines.
 *
 * Interface: probe_int.h (pconn_*). Every wait is bounded: a server that
 * stalls, trickles bytes or never ends a line runs into the read timeout,
 * the deadline or a size cap, and the caller gets c->err in plain words.
 * The rate limit sits in pconn_open, the only place that connects, which
 * also only ever uses the address resolved once in probe_run.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "core/clocks.h"
#include "core/xmalloc.h"
#include "probe/probe_int.h"

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Milliseconds to wait now: the smaller of the read timeout and what is
 * left of the deadline; 0 when the deadline has passed. */
static int wait_ms(const struct pconn *c)
{
	double left = c->deadline - clocks_mono();
	if (left > c->rtimeout)
		left = c->rtimeout;
	if (left <= 0)
		return 0;
	return (int)(left * 1000) + 1;
}

static int wait_fd(struct pconn *c, short ev, const char *what)
{
	for (;;) {
		int ms = wait_ms(c);
		if (ms == 0) {
			c->timed_out = 1;
			snprintf(c->err, sizeof c->err, "%s: the server took longer than the time allowed",
				 what);
			return -1;
		}
		struct pollfd pfd = {c->fd, ev, 0};
		int n = poll(&pfd, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(c->err, sizeof c->err, "%s: %s", what, strerror(errno));
			return -1;
		}
		c->timed_out = 1;
		if (clocks_mono() >= c->deadline)
			snprintf(c->err, sizeof c->err, "%s: connection deadline reached", what);
		else
			snprintf(c->err, sizeof c->err, "%s: no answer within %.0f s (server stalled)",
				 what, c->rtimeout);
		return -1;
	}
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return 0;
}

int pconn_open(struct probe_ctx *ctx, int port, struct pconn *c)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	smtpreply_init(&c->sp);
	double gap = ctx->o->delay_ms / 1000.0 - (clocks_mono() - ctx->last_connect);
	sleep_s(gap);
	ctx->last_connect = clocks_mono();
	c->rtimeout = ctx->o->timeout > 0 ? ctx->o->timeout : 10;
	c->deadline = clocks_mono() + 4 * c->rtimeout;

	struct sockaddr_storage sa = ctx->addr;
	if (sa.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
	c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(c->err, sizeof c->err, "socket: %s", strerror(errno));
		return -1;
	}
	if (ctx->srclen && bind(c->fd, (struct sockaddr *)&ctx->src, ctx->srclen) != 0) {
		snprintf(c->err, sizeof c->err, "cannot use source address: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, ctx->addrlen) != 0) {
		if (errno != EINPROGRESS) {
			snprintf(c->err, sizeof c->err, "connect to port %d: %s", port, strerror(errno));
			return -1;
		}
		if (wait_fd(c, POLLOUT, "connect") != 0)
			return -1;
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			snprintf(c->err, sizeof c->err, "connect to port %d: %s", port, strerror(soerr));
			return -1;
		}
	}
	struct sockaddr_storage local;
	socklen_t ll = sizeof local;
	if (getsockname(c->fd, (struct sockaddr *)&local, &ll) == 0)
		c->same_ip = same_addr(&local, &ctx->addr);
	return 0;
}

void pconn_close(struct pconn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->sslctx) {
		SSL_CTX_free(c->sslctx);
		c->sslctx = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	smtpreply_free(&c->sp);
	smtpreply_clear(&c->reply);
}

static void ssl_err(struct pconn *c, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[200];
	if (e) {
		ERR_error_string_n(e, buf, sizeof buf);
		snprintf(c->err, sizeof c->err, "%s: %s%s", what, buf,
			 ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER
				 ? " (the server did not answer with TLS)"
				 : "");
	} else {
		snprintf(c->err, sizeof c->err, "%s: connection closed by the server", what);
	}
	ERR_clear_error();
}

int pconn_write(struct pconn *c, const char *s, size_t n)
{
	size_t off = 0;
	while (off < n) {
		if (c->ssl) {
			ERR_clear_error();
			int k = SSL_write(c->ssl, s + off, (int)(n - off));
			if (k > 0) {
				off += (size_t)k;
				continue;
			}
			int e = SSL_get_error(c->ssl, k);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "send") != 0)
					return -1;
				continue;
			}
			ssl_err(c, "send");
			return -1;
		}
		ssize_t k = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
		if (k > 0) {
			off += (size_t)k;
		} else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(c, POLLOUT, "send") != 0)
				return -1;
		} else {
			snprintf(c->err, sizeof c->err, "send: %s",
				 k < 0 ? strerror(errno) : "connection closed");
			return -1;
		}
	}
	return 0;
}

int pconn_printf(struct pconn *c, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf) {
		snprintf(c->err, sizeof c->err, "command too long");
		return -1;
	}
	return pconn_write(c, buf, (size_t)n);
}

/* Reads what is available into rbuf (which must be empty). >0, 0 EOF, -1. */
static long fill(struct pconn *c, const char *what)
{
	c->rpos = c->rlen = 0;
	for (;;) {
		if (c->ssl) {
			ERR_clear_error();
			int k = SSL_read(c->ssl, c->rbuf, (int)sizeof c->rbuf);
			if (k > 0) {
				c->rlen = (size_t)k;
				return k;
			}
			int e = SSL_get_error(c->ssl, k);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, what) != 0)
					return -1;
				continue;
			}
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
				return 0; /* closed without close_notify */
			ssl_err(c, what);
			return -1;
		}
		ssize_t k = recv(c->fd, c->rbuf, sizeof c->rbuf, 0);
		if (k > 0) {
			c->rlen = (size_t)k;
			return k;
		}
		if (k == 0)
			return 0;
		if (errno == EAGAIN || errno == EINTR) {
			if (wait_fd(c, POLLIN, what) != 0)
				return -1;
			continue;
		}
		snprintf(c->err, sizeof c->err, "%s: %s", what, strerror(errno));
		return -1;
	}
}

int pconn_smtp(struct pconn *c)
{
	for (;;) {
		if (c->rpos < c->rlen) {
			size_t used = 0;
			char err[200];
			int rc = smtpreply_feed(&c->sp, c->rbuf + c->rpos, c->rlen - c->rpos, &used,
						&c->reply, err, sizeof err);
			c->rpos += used;
			if (rc == SMTPREPLY_DONE)
				return c->reply.code;
			if (rc == SMTPREPLY_ERROR) {
				snprintf(c->err, sizeof c->err, "%s", err);
				smtpreply_reset(&c->sp);
				return -1;
			}
		}
		long k = fill(c, "waiting for a reply");
		if (k < 0)
			return -1;
		if (k == 0) {
			snprintf(c->err, sizeof c->err, "the server closed the connection%s",
				 c->sp.line.len || c->sp.nlines ? " in the middle of a reply" : "");
			return -1;
		}
	}
}

int pconn_smtp_cmd(struct pconn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf - 2) {
		snprintf(c->err, sizeof c->err, "command too long");
		return -1;
	}
	memcpy(buf + n, "\r\n", 2);
	if (pconn_write(c, buf, (size_t)n + 2) != 0)
		return -1;
	return pconn_smtp(c);
}

int pconn_line(struct pconn *c, struct strbuf *line, size_t max)
{
	strbuf_reset(line);
	for (;;) {
		if (c->rpos < c->rlen) {
			const char *p = c->rbuf + c->rpos;
			size_t n = c->rlen - c->rpos;
			const char *nl = memchr(p, '\n', n);
			size_t take = nl ? (size_t)(nl - p) : n;
			if (line->len + take > max) {
				snprintf(c->err, sizeof c->err, "line longer than %zu bytes", max);
				return -1;
			}
			strbuf_add(line, p, take);
			c->rpos += take + (nl ? 1 : 0);
			if (nl) {
				if (line->len && line->s[line->len - 1] == '\r')
					line->s[--line->len] = '\0';
				return 0;
			}
		}
		long k = fill(c, "waiting for a line");
		if (k < 0)
			return -1;
		if (k == 0) {
			snprintf(c->err, sizeof c->err, "the server closed the connection");
			return -1;
		}
	}
}

int pconn_wait(struct pconn *c, double secs)
{
	if (c->rpos < c->rlen || (c->ssl && SSL_pending(c->ssl) > 0))
		return 1;
	double save_t = c->rtimeout, save_d = c->deadline;
	c->rtimeout = secs;
	if (c->deadline > clocks_mono() + secs)
		c->deadline = clocks_mono() + secs;
	c->timed_out = 0;
	long k = fill(c, "waiting");
	c->rtimeout = save_t;
	c->deadline = save_d;
	if (k > 0)
		return 1;
	if (k == 0)
		return -1;
	if (c->timed_out) {
		c->timed_out = 0;
		c->err[0] = '\0';
		return 0;
	}
	return -1;
}

int pconn_tls(struct pconn *c, SSL_CTX *ctx, const char *sni)
{
	if (c->rpos < c->rlen) {
		SSL_CTX_free(ctx);
		snprintf(c->err, sizeof c->err,
			 "the server sent plaintext after agreeing to start TLS (response injection)");
		return -1;
	}
	c->sslctx = ctx;
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (sni && *sni)
		SSL_set_tlsext_host_name(c->ssl, sni);
	for (;;) {
		ERR_clear_error();
		int k = SSL_connect(c->ssl);
		if (k == 1)
			return 0;
		int e = SSL_get_error(c->ssl, k);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, "TLS handshake") != 0)
				return -1;
			continue;
		}
		ssl_err(c, "TLS handshake");
		return -1;
	}
}

long pconn_read_raw(struct pconn *c, unsigned char *buf, size_t n)
{
	if (c->rpos < c->rlen) {
		size_t k = c->rlen - c->rpos < n ? c->rlen - c->rpos : n;
		memcpy(buf, c->rbuf + c->rpos, k);
		c->rpos += k;
		return (long)k;
	}
	long k = fill(c, "waiting for the TLS answer");
	if (k <= 0)
		return k;
	return pconn_read_raw(c, buf, n);
}
