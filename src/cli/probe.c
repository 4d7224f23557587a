/*
 * probe - `mxjail probe HOST[:PORT] [--smtp PORTS] [--imap [PORTS]]
 * [--pop3 [PORTS]] [--intrusive] [--flood N] [--source ADDR] [--timeout S]
 * [--json] ...`:
 * tests a mail server from the outside (src/probe/) and prints what it proved.
 *
 * PORTS is a comma list; a port ending in 465/993/995 or suffixed 's' speaks
 * TLS from the first byte. Without any of --smtp/--imap/--pop3, SMTP is probed
 * on PORT or 25,587,465. --intrusive adds the relay, enumeration, login,
 * smuggling (one test message) and connection-limit (--flood N connections,
 * default 30, 0 skips it) checks. Exit status: 0 nothing high, 1 at least one high
 * finding, 2 usage errors or a port or check that could not be completed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/strbuf.h"
#include "probe/probe.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: mxjail probe HOST[:PORT] [--smtp 25,587,465] [--imap [PORTS]] [--pop3 [PORTS]]\n"
		"         [--intrusive] [--source ADDR] [--timeout S] [--delay MS] [--user NAME]\n"
		"         [--domain D] [--relay-to D] [--helo NAME] [--ca FILE] [--name NAME] [--json]\n"
		"         [--flood N]\n");
	return 2;
}

static int portlist(const char *arg) /* does the next argument look like a port list? */
{
	return arg && isdigit((unsigned char)arg[0]);
}

int cmd_probe(int argc, char **argv)
{
	struct probe_opts o = {0};
	o.timeout = 10;
	o.delay_ms = 100;
	o.relay_to = "example.com";
	o.helo = "probe.mxjail.invalid";
	o.flood = 30;
	int json = 0, smtp_set = 0;
	const char *target = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                 \
	do {                                                                   \
		if (!next) {                                                   \
			fprintf(stderr, "mxjail probe: %s needs a value\n", a); \
			return 2;                                              \
		}                                                              \
		i++;                                                           \
	} while (0)
		if (strcmp(a, "--json") == 0) {
			json = 1;
		} else if (strcmp(a, "--intrusive") == 0) {
			o.intrusive = 1;
		} else if (strcmp(a, "--smtp") == 0 || strcmp(a, "--imap") == 0 ||
			   strcmp(a, "--pop3") == 0) {
			struct probe_port *pp = a[2] == 's' ? o.smtp : a[2] == 'i' ? o.imap : o.pop3;
			size_t *np = a[2] == 's' ? &o.nsmtp : a[2] == 'i' ? &o.nimap : &o.npop3;
			const char *list = a[2] == 's' ? "25,587,465" : a[2] == 'i' ? "143,993" : "110,995";
			if (portlist(next)) {
				list = next;
				i++;
			} else if (a[2] == 's') {
				NEED();
			}
			int n = probe_parse_ports(list, pp, PROBE_MAX_PORTS);
			if (n < 0) {
				fprintf(stderr, "mxjail probe: bad port list '%s'\n", list);
				return 2;
			}
			*np = (size_t)n;
			smtp_set |= a[2] == 's';
		} else if (strcmp(a, "--source") == 0) {
			NEED();
			o.source = next;
		} else if (strcmp(a, "--timeout") == 0) {
			NEED();
			o.timeout = atof(next);
			if (o.timeout <= 0 || o.timeout > 3600) {
				fprintf(stderr, "mxjail probe: --timeout must be 0 < S <= 3600\n");
				return 2;
			}
		} else if (strcmp(a, "--delay") == 0) {
			NEED();
			o.delay_ms = (unsigned)strtoul(next, NULL, 10);
		} else if (strcmp(a, "--flood") == 0) {
			NEED();
			char *end;
			unsigned long v = strtoul(next, &end, 10);
			if (!isdigit((unsigned char)next[0]) || *end || v > 200) {
				fprintf(stderr, "mxjail probe: --flood must be 0..200\n");
				return 2;
			}
			o.flood = (unsigned)v;
		} else if (strcmp(a, "--user") == 0) {
			NEED();
			o.user = next;
		} else if (strcmp(a, "--domain") == 0) {
			NEED();
			o.domain = next;
		} else if (strcmp(a, "--relay-to") == 0) {
			NEED();
			o.relay_to = next;
		} else if (strcmp(a, "--helo") == 0) {
			NEED();
			o.helo = next;
		} else if (strcmp(a, "--ca") == 0) {
			NEED();
			o.ca_file = next;
		} else if (strcmp(a, "--name") == 0) {
			NEED();
			o.tls_name = next;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			return 0;
		} else if (a[0] == '-' || target) {
			fprintf(stderr, "mxjail probe: unexpected argument '%s'\n", a);
			return usage();
		} else {
			target = a;
		}
#undef NEED
	}
	if (!target)
		return usage();
	/* these go into SMTP commands: one word, no line ends or brackets */
	const char *words[] = {o.user, o.domain, o.relay_to, o.helo};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		for (const char *p = words[i]; p && *p; p++) {
			if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f) {
				fprintf(stderr, "mxjail probe: '%s' must be one word without <, > "
						"or control characters\n", words[i]);
				return 2;
			}
		}
	}
	/* HOST, HOST:PORT, [V6], [V6]:PORT, or a bare IPv6 address */
	char host[256];
	const char *port = NULL;
	if (target[0] == '[') {
		const char *rb = strchr(target, ']');
		if (!rb || (size_t)(rb - target - 1) >= sizeof host)
			return usage();
		snprintf(host, sizeof host, "%.*s", (int)(rb - target - 1), target + 1);
		if (rb[1] == ':')
			port = rb + 2;
		else if (rb[1])
			return usage();
	} else {
		const char *c = strchr(target, ':');
		if (c && !strchr(c + 1, ':')) {
			snprintf(host, sizeof host, "%.*s", (int)(c - target), target);
			port = c + 1;
		} else {
			snprintf(host, sizeof host, "%s", target);
		}
	}
	if (!host[0])
		return usage();
	o.host = host;
	if (!smtp_set && (port || (o.nimap == 0 && o.npop3 == 0))) {
		int n = probe_parse_ports(port ? port : "25,587,465", o.smtp, PROBE_MAX_PORTS);
		if (n < 0) {
			fprintf(stderr, "mxjail probe: bad port '%s'\n", port);
			return 2;
		}
		o.nsmtp = (size_t)n;
	}
	struct probe_report r = {0};
	int rc = probe_run(&o, &r);
	struct strbuf out = STRBUF_INIT;
	if (json)
		probe_report_json(&r, &out);
	else
		probe_report_text(&r, &out);
	fputs(strbuf_str(&out), stdout);
	if (!json)
		for (size_t i = 0; i < r.nerr; i++)
			fprintf(stderr, "mxjail probe: %s\n", r.errors[i]);
	int status = probe_count(&r, PROBE_HIGH) ? 1 : (rc != 0 || r.nerr) ? 2 : 0;
	strbuf_free(&out);
	probe_report_free(&r);
	return status;
}
