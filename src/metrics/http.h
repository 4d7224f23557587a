/*
 * http - a small read-only HTTP/1.1 server on the daemon's event loop, for
 * /metrics and the status page.
 *
 * Why hand-written: the HTTP servers in Debian (libmicrohttpd, libsoup,
 * libevent's evhttp) each want their own threads or their own event loop;
 * none plugs into core/loop.h's epoll loop without a second loop or locking.
 * What mxjail serves is tiny (GET of a few generated pages), so the protocol
 * subset below is a few hundred lines with hard limits everywhere.
 *
 * PROTOCOL: GET and HEAD only (others: 405), origin-form targets ("/path?q"),
 * HTTP/1.0 and 1.1. Keep-alive per HTTP/1.1 rules (Connection: close ends it;
 * 1.0 closes unless keep-alive is asked for). Requests with a body
 * (Content-Length > 0, Transfer-Encoding) get 400 and the connection closes.
 * Pipelined requests are answered in order, one at a time.
 *
 * LIMITS (struct http_opts): the request head must fit in max_request bytes
 * (431 otherwise) and arrive within header_timeout_ms of its first byte
 * (a slowloris client is cut off however slowly it trickles); an idle
 * keep-alive connection is closed after idle_timeout_ms, a response that the
 * peer does not read within write_timeout_ms is dropped. At most max_clients
 * connections: the next one evicts the oldest connection still waiting for a
 * request head. Sockets are non-blocking; accept() failing with EMFILE pauses
 * accepting for a second instead of spinning. Nothing here ever blocks the loop.
 *
 * INTERFACE: the handler runs synchronously in the loop, fills a response
 * (status, content type, body) and returns. Request strings are valid during
 * the call only.
 */
#ifndef MXJAIL_METRICS_HTTP_H
#define MXJAIL_METRICS_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/strbuf.h"

struct loop;
struct http_server;

struct http_opts {
	size_t max_request;          /* request line + headers, bytes */
	unsigned max_clients;
	unsigned header_timeout_ms;  /* whole request head, from its first byte */
	unsigned idle_timeout_ms;    /* between keep-alive requests */
	unsigned write_timeout_ms;   /* a response must be taken within this */
	unsigned max_requests;       /* per connection, then it closes */
};
/* 8 KiB head, 64 clients, 10 s head, 5 s idle, 10 s write, 100 requests. */
#define HTTP_OPTS_DEFAULT {8192, 64, 10000, 5000, 10000, 100}

#define HTTP_MAX_HEADERS 64

struct http_request {
	const char *method;          /* "GET" or "HEAD" when the handler runs */
	const char *path;            /* target up to '?' (not decoded) */
	const char *query;           /* after '?', "" when none (not decoded) */
	int minor;                   /* HTTP/1.<minor> */
	int keep_alive;              /* the connection may stay open */
	size_t nheaders;
	struct { const char *name, *value; } headers[HTTP_MAX_HEADERS];
	const char *peer;            /* "127.0.0.1" */
};

struct http_response {
	int status;                  /* 200 when the handler leaves it */
	const char *content_type;    /* static string; default text/plain */
	const char *headers;         /* extra "Name: value\r\n" lines, static; may be NULL */
	struct strbuf body;
};

typedef void (*http_handler)(void *arg, const struct http_request *rq, struct http_response *rs);

struct http_stats {
	unsigned long connections;   /* accepted */
	unsigned long requests;      /* answered by the handler */
	unsigned long errors;        /* answered 4xx/5xx by the server itself (bad requests, limits) */
	unsigned long timeouts;      /* connections cut by a timeout */
	unsigned long evicted;       /* connections closed to make room */
	size_t clients;              /* open now */
};

/* Listens on `listen` ("127.0.0.1:9191", "[::1]:9191", "localhost:9191", or
 * "9191" for 127.0.0.1). No name lookups. o may be NULL (defaults). Returns
 * NULL with err filled on failure. */
struct http_server *http_server_new(struct loop *l, const char *listen, const struct http_opts *o,
				    http_handler h, void *arg, char *err, size_t errlen);
/* Closes the listener and every connection. Returns NULL. */
struct http_server *http_server_free(struct http_server *s);
/* 1 when the listening address is a loopback address. */
int http_server_loopback(const struct http_server *s);
/* The port bound (useful with port 0). */
int http_server_port(const struct http_server *s);
void http_server_stats(const struct http_server *s, struct http_stats *out);

/* ---- helpers (also used by the tests) ---- */

/* Parses "HOST:PORT" as above into ss. Returns 0 for a loopback address, 1
 * for any other, or -EINVAL with err. */
int http_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen,
		      char *err, size_t errlen);
/* Parses a request head in place (buf is modified: NULs are written).
 * Returns the number of bytes the head took (> 0) with rq filled, 0 when the
 * head is not complete within len bytes, or a negative HTTP status (-400,
 * -405 with rq->method set, -431, -501, -505) when it cannot be served. */
long http_parse_request(char *buf, size_t len, struct http_request *rq);
/* Case-insensitive header lookup; NULL when absent. */
const char *http_header(const struct http_request *rq, const char *name);
/* Value of key in a query string, percent- and '+'-decoded into out (NUL
 * terminated, cut to outlen - 1). Returns the decoded length or -1 when absent. */
long http_query_get(const char *query, const char *key, char *out, size_t outlen);

#endif
