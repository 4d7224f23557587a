/*
 * daemon_ignore - which addresses a jail must never ban: loopback, the
 * jail's `ignoreip` addresses and CIDR prefixes, and (ignoreself) the host's
 * own interface addresses.
 *
 * A stand-in for jails/ignore.h (DNS names, `file:` lists, ignorecommand,
 * ignorecache) behind the same one-call shape, daemon_ignored(), so the
 * daemon switches to the full module by replacing this file. Entries this
 * version cannot evaluate (DNS names, file: lists) are refused with a message
 * naming them, so nothing is silently left unprotected.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "daemon/daemon_int.h"

struct daemon_ignore {
	struct addr *nets;
	size_t n;
	int self;
	struct addr *own;
	size_t nown;
};

static int parse_bool(const char *v, int dflt)
{
	if (!v || !*v)
		return dflt;
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
	    !strcmp(v, "1"))
		return 1;
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
	    !strcmp(v, "0"))
		return 0;
	return dflt;
}

/* The host's own addresses, read once per build (reload re-reads them). */
static void load_own(struct daemon_ignore *ig)
{
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) < 0)
		return;
	size_t cap = 0;
	for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
		if (!p->ifa_addr)
			continue;
		struct addr a = {0};
		if (p->ifa_addr->sa_family == AF_INET) {
			a.family = 4;
			a.prefix = 32;
			memcpy(a.a, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr, 4);
		} else if (p->ifa_addr->sa_family == AF_INET6) {
			a.family = 6;
			a.prefix = 128;
			memcpy(a.a, &((struct sockaddr_in6 *)(void *)p->ifa_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		ig->own = xgrow(ig->own, &cap, ig->nown, sizeof *ig->own);
		ig->own[ig->nown++] = a;
	}
	freeifaddrs(ifa);
}

int daemon_ignore_set_list(struct daemon_ignore *ig, const char *list, char *err, size_t errlen)
{
	struct addr *nets = NULL;
	size_t n = 0, cap = 0;
	char *copy = xstrdup(list ? list : "");
	int rc = 0;
	for (char *save = NULL, *w = strtok_r(copy, " \t\r\n,", &save); w;
	     w = strtok_r(NULL, " \t\r\n,", &save)) {
		struct addr a;
		if (addr_parse_cidr(w, strlen(w), &a) < 0) {
			snprintf(err, errlen,
				 "ignoreip: '%s' is not an address or CIDR prefix (DNS names and file: "
				 "lists are not supported yet)",
				 w);
			rc = -1;
			break;
		}
		nets = xgrow(nets, &cap, n, sizeof *nets);
		nets[n++] = a;
	}
	free(copy);
	if (rc < 0) {
		free(nets);
		return -1;
	}
	free(ig->nets);
	ig->nets = nets;
	ig->n = n;
	return 0;
}

struct daemon_ignore *daemon_ignore_new(const struct kvlist *opts, char *err, size_t errlen)
{
	struct daemon_ignore *ig = xcalloc(1, sizeof *ig);
	if (daemon_ignore_set_list(ig, kvlist_get(opts, "ignoreip"), err, errlen) < 0)
		return daemon_ignore_free(ig);
	ig->self = parse_bool(kvlist_get(opts, "ignoreself"), 1);
	if (ig->self)
		load_own(ig);
	return ig;
}

struct daemon_ignore *daemon_ignore_free(struct daemon_ignore *ig)
{
	if (ig) {
		free(ig->nets);
		free(ig->own);
		free(ig);
	}
	return NULL;
}

int daemon_ignored(const struct daemon_ignore *ig, const struct addr *a, const char **why)
{
	if (addr_is_loopback(a)) {
		*why = "loopback";
		return 1;
	}
	if (!ig)
		return 0;
	for (size_t i = 0; i < ig->n; i++)
		if (addr_in(&ig->nets[i], a)) {
			*why = "ip";
			return 1;
		}
	if (ig->self)
		for (size_t i = 0; i < ig->nown; i++)
			if (addr_in(a, &ig->own[i]) || addr_equal(&ig->own[i], a)) {
				*why = "self";
				return 1;
			}
	return 0;
}

void daemon_ignore_format(const struct daemon_ignore *ig, struct strbuf *out)
{
	for (size_t i = 0; ig && i < ig->n; i++) {
		char buf[ADDR_STRLEN];
		addr_format(&ig->nets[i], buf, sizeof buf);
		if (i)
			strbuf_addc(out, ' ');
		strbuf_adds(out, buf);
	}
}
