/*
 * audit - `mxjail audit [--postfix DIR | --postconf FILE] [--postconf-d FILE]
 * [--postconf-P FILE] [--postconf-M FILE] [--dovecot FILE | --doveconf FILE]
 * [-c MXJAILDIR] [--json]`: hardening findings for Postfix, Dovecot and
 * mxjail's own jails (src/audit/).
 *
 * With --postfix DIR it runs `postconf -c DIR -n`, `-d`, `-P` and `-M`; with
 * --dovecot FILE `doveconf -c FILE -n` (and `-h` for the paths that -n hides).
 * Saved outputs are read with --postconf/--postconf-d/-P/-M and --doveconf;
 * without -d the built-in Postfix 3.7 defaults are used (and the report says
 * so). Without any source option the local system is audited: /etc/postfix,
 * /etc/dovecot/dovecot.conf and the mxjail configuration directory, when
 * they exist. Exit status: 0 no high finding, 1 at least one, 2 usage or
 * input errors. The helper commands run without a shell, their stderr is
 * discarded and their output is capped.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define AUDIT_MAX_INPUT (64 * 1024 * 1024)

/* Runs argv (argv[0] looked up in /usr/sbin, /usr/bin, then PATH) and
 * collects its stdout. Returns the exit status, or -1 if it could not run. */
static int run_capture(char *const argv[], struct strbuf *out)
{
	int fd[2];
	if (pipe(fd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 2);
		}
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		char path[256];
		snprintf(path, sizeof path, "/usr/sbin/%s", argv[0]);
		execv(path, argv);
		snprintf(path, sizeof path, "/usr/bin/%s", argv[0]);
		execv(path, argv);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	char buf[65536];
	ssize_t n;
	while ((n = read(fd[0], buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (out->len < AUDIT_MAX_INPUT)
			strbuf_add(out, buf, (size_t)n);
	}
	close(fd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 127 ? -1 : WEXITSTATUS(st);
}

static int read_file(const char *path, struct strbuf *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0 && out->len < AUDIT_MAX_INPUT)
		strbuf_add(out, buf, n);
	int err = ferror(f);
	fclose(f);
	return err ? -1 : 0;
}

/* Gets postconf output: from a saved file, or by running postconf -c DIR FLAG. */
static int pf_input(const char *dir, const char *file, const char *flag, struct strbuf *out,
		    struct diag *d)
{
	if (file) {
		if (read_file(file, out) != 0) {
			diag_error(d, file, 0, "cannot read the saved postconf %s output", flag);
			return -1;
		}
		return 0;
	}
	char *argv[] = {"postconf", "-c", (char *)dir, (char *)flag, NULL};
	int rc = run_capture(argv, out);
	if (rc != 0) {
		diag_error(d, dir, 0, "postconf -c %s %s failed (%s)", dir, flag,
			   rc < 0 ? "postconf not found" : "is this a Postfix configuration directory?");
		return -1;
	}
	return 0;
}

static int have_syslog_daemon(void)
{
	static const char *const p[] = {"/usr/sbin/rsyslogd", "/usr/sbin/syslog-ng", "/sbin/syslogd",
					"/usr/sbin/syslogd", "/usr/sbin/busybox-syslogd", NULL};
	for (size_t i = 0; p[i]; i++)
		if (access(p[i], X_OK) == 0)
			return 1;
	return 0;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mxjail audit [--postfix DIR | --postconf FILE] [--postconf-d FILE]\n"
		"                    [--postconf-P FILE] [--postconf-M FILE]\n"
		"                    [--dovecot FILE | --doveconf FILE] [-c MXJAILDIR] [--json]\n");
}

int cmd_audit(int argc, char **argv)
{
	enum { O_POSTFIX = 256, O_POSTCONF, O_PD, O_PP, O_PM, O_DOVECOT, O_DOVECONF, O_JSON };
	static const struct option lo[] = {
		{"postfix", required_argument, NULL, O_POSTFIX},
		{"postconf", required_argument, NULL, O_POSTCONF},
		{"postconf-d", required_argument, NULL, O_PD},
		{"postconf-P", required_argument, NULL, O_PP},
		{"postconf-M", required_argument, NULL, O_PM},
		{"dovecot", required_argument, NULL, O_DOVECOT},
		{"doveconf", required_argument, NULL, O_DOVECONF},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *pfdir = NULL, *pfn = NULL, *pfd = NULL, *pfp = NULL, *pfm = NULL;
	const char *dcfile = NULL, *dcsaved = NULL, *mxdir = NULL;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		switch (c) {
		case O_POSTFIX: pfdir = optarg; break;
		case O_POSTCONF: pfn = optarg; break;
		case O_PD: pfd = optarg; break;
		case O_PP: pfp = optarg; break;
		case O_PM: pfm = optarg; break;
		case O_DOVECOT: dcfile = optarg; break;
		case O_DOVECONF: dcsaved = optarg; break;
		case O_JSON: json = 1; break;
		case 'c': mxdir = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind < argc || (pfdir && pfn) || (dcfile && dcsaved)) {
		usage();
		return 2;
	}
	struct audit_report rep = {0};
	if (!pfdir && !pfn && !pfd && !pfp && !pfm && !dcfile && !dcsaved && !mxdir) {
		/* the local system */
		if (exists("/etc/postfix/main.cf"))
			pfdir = "/etc/postfix";
		if (exists("/etc/dovecot/dovecot.conf"))
			dcfile = "/etc/dovecot/dovecot.conf";
		if (exists(MXJAIL_SYSCONFDIR "/jail.conf") || exists(MXJAIL_SYSCONFDIR "/jail.local"))
			mxdir = MXJAIL_SYSCONFDIR;
		if (!pfdir && !dcfile && !mxdir) {
			fprintf(stderr, "mxjail audit: nothing to audit (no /etc/postfix, "
					"/etc/dovecot or " MXJAIL_SYSCONFDIR "); see --help\n");
			return 2;
		}
	}
	struct diag d = DIAG_INIT;
	struct pf_conf pf = {0};
	struct dc_conf dc = {0};
	int have_pf = 0, have_dc = 0;
	if (pfdir || pfn || pfd || pfp || pfm) {
		struct strbuf b = STRBUF_INIT;
		if ((pfdir || pfn) && pf_input(pfdir, pfn, "-n", &b, &d) == 0)
			pf_parse_main(&pf.main, pfn ? pfn : "postconf -n", b.s ? b.s : "", b.len, &d);
		strbuf_reset(&b);
		if (pfd || pfdir) {
			if (pf_input(pfdir, pfd, "-d", &b, &d) == 0)
				pf_parse_main(&pf.defaults, pfd ? pfd : "postconf -d", b.s ? b.s : "", b.len,
					      &d);
		} else {
			pf_builtin_defaults(&pf);
		}
		strbuf_reset(&b);
		if ((pfp || pfdir) && pf_input(pfdir, pfp, "-P", &b, &d) == 0)
			pf_parse_overrides(&pf, pfp ? pfp : "postconf -P", b.s ? b.s : "", b.len, &d);
		strbuf_reset(&b);
		if ((pfm || pfdir) && pf_input(pfdir, pfm, "-M", &b, &d) == 0)
			pf_parse_master(&pf, pfm ? pfm : "postconf -M", b.s ? b.s : "", b.len, &d);
		strbuf_free(&b);
		have_pf = 1;
	}
	if (dcfile || dcsaved) {
		struct strbuf b = STRBUF_INIT;
		int ok;
		if (dcsaved) {
			ok = read_file(dcsaved, &b) == 0;
			if (!ok)
				diag_error(&d, dcsaved, 0, "cannot read the saved doveconf -n output");
		} else {
			char *av[] = {"doveconf", "-c", (char *)dcfile, "-n", NULL};
			ok = run_capture(av, &b) == 0;
			if (!ok)
				diag_error(&d, dcfile, 0, "doveconf -c %s -n failed", dcfile);
		}
		if (ok) {
			dc_parse(&dc, dcsaved ? dcsaved : "doveconf -n", b.s ? b.s : "", b.len, &d);
			have_dc = 1;
			/* -n hides ssl_key and ssl_dh; -h gives their "<path" */
			static const char *const hidden[] = {"ssl_key", "ssl_dh", NULL};
			for (size_t i = 0; dcfile && hidden[i]; i++) {
				const char *v = dc_get(&dc.root, hidden[i]);
				if (!v || !strstr(v, "hidden"))
					continue;
				struct strbuf h = STRBUF_INIT;
				char *av[] = {"doveconf", "-c", (char *)dcfile, "-h", (char *)hidden[i], NULL};
				if (run_capture(av, &h) == 0 && h.len && h.s[0] == '<') {
					h.s[strcspn(h.s, "\n")] = '\0';
					dc_set(&dc.root, hidden[i], h.s);
				}
				strbuf_free(&h);
			}
		}
		strbuf_free(&b);
	}
	if (d.nerrors) {
		diag_print(&d, stderr);
		diag_clear(&d);
		pf_conf_free(&pf);
		dc_conf_free(&dc);
		return 2;
	}
	if (have_pf)
		audit_postfix(&pf, &rep);
	if (have_dc)
		audit_dovecot(&dc, &rep);
	if (mxdir) {
		struct diag md = DIAG_INIT;
		struct config cfg = {0};
		config_load(mxdir, &cfg, &md);
		struct audit_mx_input in = {
			.cfg = &cfg,
			.pf = have_pf ? &pf : NULL,
			.dc = have_dc ? &dc : NULL,
			.syslog_daemon = have_syslog_daemon(),
			.config_errors = (int)md.nerrors,
		};
		audit_mxjail(&in, &rep);
		config_free(&cfg);
		diag_clear(&md);
	}
	for (size_t i = 0; i < d.n; i++)
		audit_note(&rep, "%s", d.items[i].text);
	diag_clear(&d);
	struct strbuf out = STRBUF_INIT;
	if (json)
		audit_format_json(&rep, &out);
	else
		audit_format_text(&rep, &out);
	fwrite(strbuf_str(&out), 1, out.len, stdout);
	strbuf_free(&out);
	int high = audit_count(&rep, AUDIT_HIGH) > 0;
	audit_report_free(&rep);
	pf_conf_free(&pf);
	dc_conf_free(&dc);
	return high ? 1 : 0;
}
