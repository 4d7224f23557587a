/*
 * client - the control verbs as subcommands: `mxjail status [JAIL]`,
 * `banned [ADDR...]`, `ban JAIL ADDR... [--force]`, `unban [JAIL] ADDR...|--all`,
 * `why ADDR`, `reload [JAIL]`, `get/set JAIL KEY [VALUE]`, `ping`, `version`;
 * each takes --json, -s/--socket PATH and -c DIR (whose mxjail.conf names the
 * socket). The daemon renders the answers (ctl.h); this file only sends the
 * words and prints the body: stdout and exit 0 on OK, stderr and exit 1 on
 * an error, exit 255 when no daemon answers (as fail2ban-client does).
 *
 * Socket: --socket, else $MXJAIL_SOCKET, else [mxjail] socket from the
 * configuration, else /run/mxjail/mxjail.sock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "ctl/ctl.h"

#define DEFAULT_SOCKET "/run/mxjail/mxjail.sock"

struct client_args {
	int json;
	const char *socket;
	const char *confdir;
	int argc;
	char **argv;
};

static int parse(int argc, char **argv, struct client_args *ca, const char *usage)
{
	memset(ca, 0, sizeof *ca);
	ca->argv = xcalloc((size_t)argc + 1, sizeof *ca->argv);
	ca->argv[ca->argc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json")) {
			ca->json = 1;
		} else if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
			ca->socket = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			ca->socket = a + 9;
		} else if (!strcmp(a, "-c") && i + 1 < argc) {
			ca->confdir = argv[++i];
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: mxjail %s [--json] [-s SOCKET] [-c DIR]\n", usage);
			free(ca->argv);
			return 1;
		} else if (strchr(a, '\t') || strchr(a, '\n') || !*a) {
			fprintf(stderr, "mxjail %s: arguments cannot be empty or contain tabs or newlines\n",
				argv[0]);
			free(ca->argv);
			return 2;
		} else {
			ca->argv[ca->argc++] = argv[i];
		}
	}
	return 0;
}

static char *socket_path(const struct client_args *ca)
{
	if (ca->socket)
		return xstrdup(ca->socket);
	const char *env = getenv("MXJAIL_SOCKET");
	if (env && *env)
		return xstrdup(env);
	struct config cfg = {0};
	struct diag d = DIAG_INIT;
	config_load(ca->confdir ? ca->confdir : MXJAIL_SYSCONFDIR, &cfg, &d);
	const char *v = kvlist_get(&cfg.mxjail, "mxjail.socket");
	char *p = xstrdup(v && *v ? v : DEFAULT_SOCKET);
	config_free(&cfg);
	diag_clear(&d);
	return p;
}

/* Sends argv; returns 0 OK, 1 ERR, -errno unreachable; body in out. */
static int call(const struct client_args *ca, int argc, char **argv, struct strbuf *out)
{
	char *path = socket_path(ca);
	/* on failure ctl_call's message already names the socket */
	int r = ctl_call(path, argc, argv, ca->json, out);
	free(path);
	return r;
}

static int verb(int argc, char **argv, const char *usage, int min_args, int max_args)
{
	struct client_args ca;
	int pr = parse(argc, argv, &ca, usage);
	if (pr)
		return pr == 1 ? 0 : 2;
	if (ca.argc - 1 < min_args || (max_args >= 0 && ca.argc - 1 > max_args)) {
		fprintf(stderr, "usage: mxjail %s [--json] [-s SOCKET] [-c DIR]\n", usage);
		free(ca.argv);
		return 2;
	}
	struct strbuf out = STRBUF_INIT;
	int r = call(&ca, ca.argc, ca.argv, &out);
	int rc;
	if (r < 0) {
		fprintf(stderr, "mxjail %s: %s\n", argv[0], strbuf_str(&out));
		rc = 255;
	} else if (r == 1) {
		fputs(strbuf_str(&out), stderr);
		rc = 1;
	} else {
		if (!strcmp(argv[0], "ping") && !ca.json)
			printf("Server replied: %s", strbuf_str(&out));
		else
			fputs(strbuf_str(&out), stdout);
		rc = 0;
	}
	strbuf_free(&out);
	free(ca.argv);
	return rc;
}

int cmd_status(int argc, char **argv) { return verb(argc, argv, "status [JAIL]", 0, 1); }
int cmd_banned(int argc, char **argv) { return verb(argc, argv, "banned [ADDR...]", 0, -1); }
int cmd_ban(int argc, char **argv) { return verb(argc, argv, "ban JAIL ADDR... [--force]", 2, -1); }
int cmd_unban(int argc, char **argv)
{
	return verb(argc, argv, "unban [JAIL] ADDR...|--all", 1, -1);
}
int cmd_why(int argc, char **argv) { return verb(argc, argv, "why ADDR", 1, 1); }
int cmd_reload(int argc, char **argv) { return verb(argc, argv, "reload [JAIL]", 0, 1); }
int cmd_get(int argc, char **argv)
{
	return verb(argc, argv, "get JAIL bantime|findtime|maxretry|ignoreip", 2, 2);
}
int cmd_set(int argc, char **argv)
{
	return verb(argc, argv, "set JAIL bantime|findtime|maxretry|ignoreip VALUE...", 3, -1);
}
int cmd_ping(int argc, char **argv) { return verb(argc, argv, "ping", 0, 0); }

/* `version`: this binary's version, and the running daemon's when one answers. */
int cmd_version(int argc, char **argv)
{
	struct client_args ca;
	int pr = parse(argc, argv, &ca, "version");
	if (pr)
		return pr == 1 ? 0 : 2;
	struct strbuf out = STRBUF_INIT;
	int r = -1;
	if (ca.socket || getenv("MXJAIL_SOCKET")) {
		int saved_json = ca.json;
		ca.json = 0;
		char *v[] = {"version"};
		r = call(&ca, 1, v, &out);
		ca.json = saved_json;
	}
	size_t n = out.len;
	while (n && out.s[n - 1] == '\n')
		n--;
	if (ca.json) {
		printf("{\"version\":\"%s\"", MXJAIL_VERSION);
		if (r == 0)
			printf(",\"daemon\":\"%.*s\"", (int)n, out.s);
		printf("}\n");
	} else {
		printf("mxjail %s\n", MXJAIL_VERSION);
		if (r == 0)
			printf("daemon: mxjail %.*s\n", (int)n, out.s);
	}
	strbuf_free(&out);
	free(ca.argv);
	return 0;
}
