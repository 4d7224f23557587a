/*
 * policysrv - the socket side of the Postfix policy service: listeners on
 * inet:HOST:PORT and unix:PATH, many persistent connections on one event loop,
 * request framing through the policy parser, replies "action=...\n\n".
 *
 * INTERFACE: policysrv_new() opens every listener of a `listen` value (words
 * separated by blanks or commas: "inet:127.0.0.1:10023", "inet:[::1]:10023",
 * "unix:/var/spool/postfix/private/mxjail") and registers them with the loop.
 * Each complete request is handed to the eval callback, which appends the
 * action text (without "action=") to out; the server never blocks on it.
 * The engine is a callback rather than a struct policy so the daemon, the
 * standalone `mxjail policy` and the tests can put anything behind it.
 *
 * Behaviour Postfix relies on: one request at a time per connection, in
 * order; a malformed request (parser error, size or attribute cap) is logged
 * with the peer and the connection closed without a reply; a peer that closes
 * its sending side still gets the replies to the requests it completed.
 * Resources stay bounded whatever the peers do: input is not read while a
 * reply is waiting to be written (so pipelining cannot grow the output), a
 * reply that cannot be written for idle_timeout is dropped with the
 * connection, idle connections are closed after idle_timeout, more than
 * max_conns connections are refused, and accept() failing for lack of file
 * descriptors (EMFILE/ENFILE) sheds the pending connection with a reserve
 * descriptor instead of spinning on a listener that stays readable.
 */
#ifndef MXJAIL_POLICY_POLICYSRV_H
#define MXJAIL_POLICY_POLICYSRV_H

#include <stddef.h>

struct loop;
struct strbuf;
struct policy_req;
struct policysrv;

typedef void (*policysrv_eval_fn)(void *arg, const struct policy_req *r, struct strbuf *out);

struct policysrv_opts {
	double idle_timeout;     /* seconds; 0 = POLICYSRV_IDLE_DEFAULT */
	size_t max_conns;        /* 0 = POLICYSRV_MAX_CONNS_DEFAULT */
	unsigned unix_mode;      /* unix socket file mode; 0 = 0666 (directory guards it) */
};

/* Postfix closes its idle policy connections after smtpd_policy_service_max_idle
 * (300 s); the server waits longer so that Postfix, not us, ends them. */
#define POLICYSRV_IDLE_DEFAULT 600.0
#define POLICYSRV_MAX_CONNS_DEFAULT 20000
/* A reply longer than this is cut: Postfix's own attribute limit is far below. */
#define POLICYSRV_MAX_REPLY 4096

struct policysrv_stats {
	size_t conns;            /* open now */
	size_t listeners;
	unsigned long accepted, refused;      /* refused: over max_conns or no descriptor */
	unsigned long requests, malformed, timeouts;
};

/* Returns NULL with err filled ("listen 'inet:x': expected inet:HOST:PORT or
 * unix:PATH", "inet:127.0.0.1:10023: Address already in use"). */
struct policysrv *policysrv_new(struct loop *l, const char *listen, const struct policysrv_opts *o,
				policysrv_eval_fn eval, void *arg, char *err, size_t errlen);
/* Closes every connection and listener (unix socket files are removed). */
void policysrv_free(struct policysrv *s);
void policysrv_stats(const struct policysrv *s, struct policysrv_stats *out);
/* Appends the listeners and counters as text or a JSON object. */
void policysrv_format(const struct policysrv *s, int json, struct strbuf *out);

#endif
