/*
 * policy - `mxjail policy`: the Postfix policy service on its own, and the
 * verbs that look at it: `mxjail policy status`, `mxjail greylist list|del`,
 * `mxjail ratelimit list|reset KEY` (each with --json, -s SOCKET, -c DIR).
 *
 * Standalone: `mxjail policy [-c DIR] [--state DIR] [--listen SPEC]
 * [--socket PATH] [-f] [--loglevel L]` runs the engine and its listeners
 * (daemon/daemon_policy.h) with its own state file
 * (STATEDIR/policy-state.sqlite3, written by the engine's writer thread;
 * STATEDIR/policy.sqlite3 is the store earlier versions kept it in)
 * and its own control socket ([policy] socket, default
 * /run/mxjail/policy.sock), for hosts that want greylisting and rate limits
 * without the log-watching daemon. The banned-client check reads the
 * daemon's live bans from its state database on the same host ([policy]
 * bansdb, default STATEDIR/mxjail.sqlite3; "none" = no check), read-only,
 * on a thread every couple of seconds: a client banned by any jail gets
 * the banned action even where the firewall is not enforcing.
 *
 * Verbs: sent to -s/--socket or $MXJAIL_SOCKET when given; else to the
 * daemon's socket ([mxjail] socket), and when no daemon serves the policy
 * there, to the standalone one ([policy] socket).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "ctl/ctl.h"
#include "daemon/daemon_policy.h"
#include "policy/policy.h"
#include "store/store.h"

#define DEFAULT_DAEMON_SOCKET "/run/mxjail/mxjail.sock"
#define DEFAULT_POLICY_SOCKET "/run/mxjail/policy.sock"
#define DEFAULT_STATEDIR "/var/lib/mxjail"
#define NOT_HERE "the policy service is not running here"

/* ---------- verbs ---------- */

static int usage_verbs(const char *what)
{
	fprintf(stderr, "usage: mxjail %s [--json] [-s SOCKET] [-c DIR]\n", what);
	return 2;
}

static const char *conf_get(const struct config *c, const char *key)
{
	const char *v = kvlist_get(&c->mxjail, key);
	return v && *v ? v : NULL;
}

/* argv[0] is the verb ("policy", "greylist", "ratelimit"); returns the exit status. */
static int verb(int argc, char **argv, const char *usage, int min_words, int max_words)
{
	int json = 0;
	const char *sock = NULL, *confdir = NULL;
	char **words = xcalloc((size_t)argc + 1, sizeof *words);
	int n = 0;
	words[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json")) {
			json = 1;
		} else if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			sock = a + 9;
		} else if (!strcmp(a, "-c") && i + 1 < argc) {
			confdir = argv[++i];
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: mxjail %s [--json] [-s SOCKET] [-c DIR]\n", usage);
			free(words);
			return 0;
		} else if (!*a || strchr(a, '\t') || strchr(a, '\n')) {
			fprintf(stderr, "mxjail %s: arguments cannot be empty or contain tabs or newlines\n",
				argv[0]);
			free(words);
			return 2;
		} else {
			words[n++] = argv[i];
		}
	}
	if (n - 1 < min_words || n - 1 > max_words) {
		free(words);
		return usage_verbs(usage);
	}
	if (!sock) {
		const char *env = getenv("MXJAIL_SOCKET");
		if (env && *env)
			sock = env;
	}
	struct strbuf out = STRBUF_INIT;
	int r;
	if (sock) {
		r = ctl_call(sock, n, words, json, &out);
	} else {
		struct config cfg = {0};
		struct diag d = DIAG_INIT;
		config_load(confdir ? confdir : MXJAIL_SYSCONFDIR, &cfg, &d);
		diag_clear(&d);
		const char *ds = conf_get(&cfg, "mxjail.socket");
		const char *ps = conf_get(&cfg, "policy.socket");
		char *dsock = xstrdup(ds ? ds : DEFAULT_DAEMON_SOCKET);
		char *psock = xstrdup(ps ? ps : DEFAULT_POLICY_SOCKET);
		config_free(&cfg);
		r = ctl_call(dsock, n, words, json, &out);
		if (r < 0 || (r == 1 && strstr(strbuf_str(&out), NOT_HERE))) {
			struct strbuf out2 = STRBUF_INIT;
			int r2 = ctl_call(psock, n, words, json, &out2);
			if (r2 >= 0) {
				strbuf_free(&out);
				out = out2;
				r = r2;
			} else {
				strbuf_free(&out2);
			}
		}
		free(dsock);
		free(psock);
	}
	int rc;
	if (r < 0) {
		fprintf(stderr, "mxjail %s: %s\n", argv[0], strbuf_str(&out));
		rc = 255;
	} else if (r == 1) {
		fputs(strbuf_str(&out), stderr);
		rc = 1;
	} else {
		fputs(strbuf_str(&out), stdout);
		rc = 0;
	}
	strbuf_free(&out);
	free(words);
	return rc;
}

int cmd_greylist(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "del"))
		return verb(argc, argv, "greylist del TRIPLET|CLIENT|SENDER", 2, 2);
	return verb(argc, argv, "greylist list|del", 1, 1);
}

int cmd_ratelimit(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "reset"))
		return verb(argc, argv, "ratelimit reset KEY", 2, 2);
	return verb(argc, argv, "ratelimit list|reset KEY", 1, 1);
}

/* ---------- standalone service ---------- */

struct standalone {
	struct daemon_policy *dp;
	struct loop *loop;
	struct daemon_policy_bans *bans;   /* the daemon's bans (NULL: bansdb = none) */
};

static int ctl_handle(void *arg, int argc, char **argv, int json, struct strbuf *out)
{
	struct standalone *sa = arg;
	if (!strcmp(argv[0], "ping")) {
		strbuf_adds(out, json ? "{\"pong\":true}\n" : "pong\n");
		return 0;
	}
	if (!strcmp(argv[0], "version")) {
		strbuf_adds(out, json ? "{\"version\":\"" MXJAIL_VERSION "\"}\n" : MXJAIL_VERSION "\n");
		return 0;
	}
	if (daemon_policy_is_verb(argv[0]))
		return daemon_policy_ctl(sa->dp, argc, argv, json, out);
	strbuf_addf(out, "unknown command '%s' (this is the standalone policy service)\n", argv[0]);
	return -1;
}

static void on_stop(struct loop *l, void *arg)
{
	(void)arg;
	log_notice("stopping");
	loop_stop(l);
}

static void on_event(void *arg, const char *check, const char *id, const char *key,
		     const char *line, double now)
{
	(void)arg;
	(void)id;
	(void)key;
	(void)now;
	/* greylist defers are routine (most first attempts) and Postfix logs
	 * them too: one log write per request would cost more than the check */
	if (!strcmp(check, "greylist"))
		log_debug("%s", line);
	else
		log_info("%s", line);
}

static int mkdirs(const char *dir, mode_t mode)
{
	char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			free(p);
			return -errno;
		}
		*s = '/';
	}
	int r = mkdir(p, mode) < 0 && errno != EEXIST ? -errno : 0;
	free(p);
	return r;
}

static int usage_run(void)
{
	fprintf(stderr, "usage: mxjail policy [-c DIR] [--state DIR] [--listen SPEC] "
			"[--socket PATH] [-f] [--loglevel L]\n"
			"       mxjail policy status [--json] [-s SOCKET] [-c DIR]\n");
	return 2;
}

static int run_standalone(int argc, char **argv)
{
	const char *confdir = MXJAIL_SYSCONFDIR, *statedir = NULL, *listen = NULL, *sock = NULL;
	const char *loglevel = NULL;
	int fg = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;
		if (!strcmp(a, "-c") && more)
			confdir = argv[++i];
		else if (!strcmp(a, "--state") && more)
			statedir = argv[++i];
		else if (!strcmp(a, "--listen") && more)
			listen = argv[++i];
		else if ((!strcmp(a, "--socket") || !strcmp(a, "-s")) && more)
			sock = argv[++i];
		else if (!strcmp(a, "--loglevel") && more)
			loglevel = argv[++i];
		else if (!strcmp(a, "-f"))
			fg = 1;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage_run();
			return 0;
		} else
			return usage_run();
	}
	struct config cfg = {0};
	struct diag d = DIAG_INIT;
	if (config_load(confdir, &cfg, &d) < 0 || d.nerrors) {
		diag_print(&d, stderr);
		fprintf(stderr, "mxjail policy: configuration in %s has errors; not starting\n",
			confdir);
		diag_clear(&d);
		config_free(&cfg);
		return 1;
	}
	diag_clear(&d);
	int level = loglevel ? log_level_parse(loglevel) : LOG_LVL_INFO;
	if (level < 0) {
		fprintf(stderr, "mxjail policy: unknown loglevel '%s'\n", loglevel);
		config_free(&cfg);
		return 2;
	}
	log_init(fg ? LOG_TO_STDERR : LOG_TO_SYSLOG, NULL, (enum log_level)level);
	const char *v;
	char *sdir = xstrdup(statedir ? statedir
			     : (v = conf_get(&cfg, "mxjail.statedir")) ? v : DEFAULT_STATEDIR);
	char *csock = xstrdup(sock ? sock : (v = conf_get(&cfg, "policy.socket")) ? v
							       : DEFAULT_POLICY_SOCKET);
	int rc = 1;
	struct store *st = NULL;
	struct ctl_server *ctl = NULL;
	struct standalone sa = {0};
	char *dbpath = NULL;
	sa.loop = loop_new();
	int r = mkdirs(sdir, 0700);
	if (r < 0)
		log_warnx("state directory %s: %s", sdir, strerror(-r));
	dbpath = xasprintf("%s/policy.sqlite3", sdir);
	struct store_opts so = STORE_OPTS_DEFAULT;
	char msg[1024] = "";
	r = store_open(dbpath, &so, &st, msg, sizeof msg);
	if (r == 1)
		log_warnx("state: %s", msg);
	if (r < 0) {
		log_warnx("state: %s; greylist and rate-limit state kept in memory only", msg);
		if (store_open(":memory:", &so, &st, msg, sizeof msg) < 0) {
			log_msg(LOG_LVL_ERROR, "state: %s", msg);
			goto out;
		}
	}
	char *slash = strrchr(csock, '/');
	if (slash && slash != csock) {
		*slash = '\0';
		mkdirs(csock, 0755);
		*slash = '/';
	}
	char err[512];
	ctl = ctl_server_new(sa.loop, csock, ctl_handle, &sa, err, sizeof err);
	if (!ctl) {
		fprintf(stderr, "mxjail policy: control socket %s: %s\n", csock, err);
		goto out;
	}
	struct policy_host host = {.on_event = on_event};
	char *statefile = xasprintf("%s/policy-state.sqlite3", sdir);
	if (!fg) {
		/* threads do not survive fork(): the engine's state writer (and
		 * the ban reader) must start in the detached child, or state is
		 * never written and shutdown waits for a writer that is gone. A
		 * first build here lets errors reach the terminal; the service is
		 * built again after detaching (the listeners are bound anew). */
		struct daemon_policy *probe = daemon_policy_new(sa.loop, &cfg, st, statefile, &host,
								listen, err, sizeof err);
		if (!probe) {
			fprintf(stderr, "mxjail policy: %s\n", err);
			log_msg(LOG_LVL_ERROR, "policy service: %s", err);
			free(statefile);
			goto out;
		}
		daemon_policy_free(probe);
		if (daemon(0, 0) < 0) {
			log_warn("detaching");
			free(statefile);
			goto out;
		}
	}
	const char *bdb = conf_get(&cfg, "policy.bansdb");
	if (!bdb || strcasecmp(bdb, "none") != 0) {
		char *path = bdb ? xstrdup(bdb) : xasprintf("%s/mxjail.sqlite3", sdir);
		sa.bans = daemon_policy_bans_new(path, DAEMON_POLICY_BANS_REFRESH);
		log_info("policy: banned clients read from %s", path);
		free(path);
		host.arg = sa.bans;
		host.is_banned = daemon_policy_bans_check;
	}
	sa.dp = daemon_policy_new(sa.loop, &cfg, st, statefile, &host, listen, err, sizeof err);
	free(statefile);
	if (!sa.dp) {
		if (fg)
			fprintf(stderr, "mxjail policy: %s\n", err);
		log_msg(LOG_LVL_ERROR, "policy service: %s", err);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	loop_signal_add(sa.loop, SIGTERM, on_stop, NULL);
	loop_signal_add(sa.loop, SIGINT, on_stop, NULL);
	log_notice("mxjail %s policy service started: state in %s, control socket %s",
		   MXJAIL_VERSION, sdir, csock);
	r = loop_run(sa.loop);
	rc = r < 0 ? 1 : 0;
out:
	daemon_policy_free(sa.dp);
	daemon_policy_bans_free(sa.bans);
	if (ctl)
		ctl_server_free(ctl);
	store_close(st);
	loop_free(sa.loop);
	config_free(&cfg);
	free(dbpath);
	free(sdir);
	free(csock);
	if (rc == 0)
		log_notice("stopped");
	return rc;
}

int cmd_policy(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "status"))
		return verb(argc, argv, "policy status", 1, 1);
	return run_standalone(argc, argv);
}
