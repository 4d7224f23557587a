/*
 * ctl - the control socket between `mxjail run` and the CLI verbs.
 *
 * PROTOCOL: one request per connection. The client sends one line: words
 * separated by TAB, the first being the verb, then "\n" (e.g.
 * "status\tsshd\n"; a leading word "--json" asks for JSON output). The server
 * answers "OK\n" or "ERR\n" followed by the body and closes. Bodies are
 * rendered by the daemon, so the CLI needs no parser and old scripts that read
 * fail2ban-client-like text keep working.
 *
 * SECURITY: the socket is created mode 0600 in a directory the daemon owns;
 * each connection's peer uid (SO_PEERCRED) must be root or the daemon's own
 * uid before a byte is read. Requests are capped at CTL_MAX_REQUEST bytes and
 * must arrive within CTL_TIMEOUT_MS; a stalled or oversized peer is dropped.
 */
#ifndef MXJAIL_CTL_CTL_H
#define MXJAIL_CTL_CTL_H

#include <stddef.h>

#include "core/strbuf.h"

struct loop;
struct ctl_server;

#define CTL_MAX_REQUEST 65536
#define CTL_MAX_ARGS 1024
#define CTL_TIMEOUT_MS 5000

/* Handles one request: argv[0] is the verb. Appends the body to out and returns
 * 0 for OK or -1 for ERR. json is 1 when the client asked for JSON. */
typedef int (*ctl_handler)(void *arg, int argc, char **argv, int json, struct strbuf *out);

/* Listens on path (an existing socket file is replaced). Returns NULL and
 * writes a message to err on failure. */
struct ctl_server *ctl_server_new(struct loop *l, const char *path, ctl_handler h, void *arg,
				  char *err, size_t errlen);
void ctl_server_free(struct ctl_server *s);

/* Client side: sends argv, stores the body in out. Returns 0 (OK), 1 (ERR),
 * or -errno when the daemon cannot be reached (message in out). */
int ctl_call(const char *path, int argc, char **argv, int json, struct strbuf *out);

#endif
