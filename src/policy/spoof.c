/*
 * spoof - refuses mail from outside whose envelope sender is in a domain
 * this host serves.
 *
 * "From outside" means: the client address is not in `mynetworks` and the
 * session is not SASL authenticated (empty sasl_username). Such a client has
 * no business sending as a local domain: it is a spoofer (or a user who
 * forgot to authenticate, who gets a clear message).
 *
 * Served domains come from `domains = a.example b.example`, or from Postfix
 * (`domains = postconf`, the default): `postconf -x -h mydestination
 * virtual_mailbox_domains virtual_alias_domains` is run ONCE at start-up
 * (the command from `postconf_command`), never per request. Lookup tables
 * ("hash:/etc/postfix/domains") cannot be expanded here and are skipped.
 * When `domains` is not set and postconf cannot be run, the list is empty and
 * the check passes everything; an explicit `domains = postconf` that fails is
 * an error.
 *
 * SECURITY: the command is run without a shell (split on blanks), with
 * stdin closed and its output capped.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/kvlist.h"
#include "core/xmalloc.h"
#include "policy/policy_int.h"

#define SP_OUTPUT_MAX (1024 * 1024)

struct spoof {
	struct ptable domains;
	struct addr *nets;
	size_t nnets, netcap;
	char *action;          /* "%d" = the sender's domain */
	struct strbuf tmp;
};

void policy_sp_free(struct spoof *s)
{
	if (!s)
		return;
	policy_ptable_free(&s->domains, NULL);
	free(s->nets);
	free(s->action);
	strbuf_free(&s->tmp);
	free(s);
}

/* Runs argv-split `cmd` + extra args; the output (capped) goes to out. */
static int run_postconf(const char *cmd, const char *const *extra, struct strbuf *out,
			char *err, size_t errlen)
{
	char *copy = xstrdup(cmd), *save = NULL;
	char *argv[64];
	int argc = 0;
	for (char *t = strtok_r(copy, " \t", &save); t && argc < 48; t = strtok_r(NULL, " \t", &save))
		argv[argc++] = t;
	for (size_t i = 0; extra[i] && argc < 63; i++)
		argv[argc++] = (char *)extra[i];
	argv[argc] = NULL;
	if (!argv[0]) {
		free(copy);
		snprintf(err, errlen, "empty postconf_command");
		return -1;
	}
	int fd[2];
	if (pipe(fd) < 0) {
		free(copy);
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		free(copy);
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 2);
		}
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	char buf[4096];
	ssize_t n;
	int big = 0;
	while ((n = read(fd[0], buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (out->len + (size_t)n > SP_OUTPUT_MAX) {
			big = 1;
			break;
		}
		strbuf_add(out, buf, (size_t)n);
	}
	close(fd[0]);
	if (big)
		kill(pid, SIGTERM);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int rc = 0;
	if (big) {
		snprintf(err, errlen, "'%s' printed more than %d bytes", argv[0], SP_OUTPUT_MAX);
		rc = -1;
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, errlen, "'%s' failed (%s %d)", argv[0],
			 WIFEXITED(st) ? "exit status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		rc = -1;
	}
	free(copy);
	return rc;
}

static void add_domains(struct spoof *s, const char *text)
{
	char *copy = xstrdup(text), *save = NULL;
	for (char *t = strtok_r(copy, ", \t\r\n", &save); t; t = strtok_r(NULL, ", \t\r\n", &save)) {
		/* lookup tables and unexpanded parameters cannot be used here */
		if (strchr(t, ':') || strchr(t, '/') || t[0] == '$' || strchr(t, '@'))
			continue;
		policy_lower(&s->tmp, t, strlen(t));
		if (!policy_ptable_get(&s->domains, s->tmp.s, s->tmp.len))
			policy_ptable_add(&s->domains, s->tmp.s, s->tmp.len, sizeof(struct pent), NULL,
					  NULL);
	}
	free(copy);
}

static int add_nets(struct spoof *s, const char *text, char *bad, size_t badlen)
{
	char *copy = xstrdup(text), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(copy, ", \t\r\n", &save); t; t = strtok_r(NULL, ", \t\r\n", &save)) {
		struct addr a;
		size_t n = strlen(t);
		/* Postfix writes IPv6 networks as [2001:db8::]/32 */
		char buf[ADDR_STRLEN * 2];
		if (t[0] == '[' && n < sizeof(buf)) {
			size_t j = 0;
			for (size_t i = 0; i < n; i++)
				if (t[i] != '[' && t[i] != ']')
					buf[j++] = t[i];
			buf[j] = '\0';
			t = buf;
			n = j;
		}
		if (addr_parse_cidr(t, n, &a) < 0) {
			snprintf(bad, badlen, "%s", t);
			rc = -1;
			break;
		}
		s->nets = xgrow(s->nets, &s->netcap, s->nnets, sizeof(*s->nets));
		s->nets[s->nnets++] = a;
	}
	free(copy);
	return rc;
}

struct spoof *policy_sp_new(const struct kvlist *conf, char *err, size_t errlen)
{
	struct spoof *s = xcalloc(1, sizeof(*s));
	const char *v;
	const char *cmd = conf ? kvlist_get(conf, "postconf_command") : NULL;
	char msg[256], bad[128];
	struct strbuf out = STRBUF_INIT;

	policy_ptable_init(&s->domains, 0);
	if (!cmd || !*cmd)
		cmd = "postconf";
	v = conf ? kvlist_get(conf, "action") : NULL;
	s->action = xstrdup(v && *v ? v
			    : "REJECT 5.7.1 sender address spoofing: %d is served here, authenticate first");

	v = conf ? kvlist_get(conf, "domains") : NULL;
	if (!v || strcmp(v, "postconf") == 0) {
		static const char *const args[] = { "-x", "-h", "mydestination",
						    "virtual_mailbox_domains",
						    "virtual_alias_domains", NULL };
		if (run_postconf(cmd, args, &out, msg, sizeof(msg)) == 0) {
			add_domains(s, strbuf_str(&out));
		} else if (v) {
			snprintf(err, errlen, "mxjail.conf [spoof] domains = postconf: %s", msg);
			goto fail;
		}
	} else {
		add_domains(s, v);
	}

	v = conf ? kvlist_get(conf, "mynetworks") : NULL;
	if (v && strcmp(v, "postconf") == 0) {
		static const char *const args[] = { "-x", "-h", "mynetworks", NULL };
		strbuf_reset(&out);
		if (run_postconf(cmd, args, &out, msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "mxjail.conf [spoof] mynetworks = postconf: %s", msg);
			goto fail;
		}
		v = strbuf_str(&out);
	}
	if (add_nets(s, v && *v ? v : "127.0.0.0/8 ::1", bad, sizeof(bad)) < 0) {
		snprintf(err, errlen, "mxjail.conf [spoof] mynetworks: expected address or CIDR, got '%s'", bad);
		goto fail;
	}
	strbuf_free(&out);
	return s;
fail:
	strbuf_free(&out);
	policy_sp_free(s);
	return NULL;
}

size_t policy_sp_domains(const struct spoof *s)
{
	return s->domains.n;
}

enum pverdict policy_sp_eval(struct spoof *s, const struct policy_req *r, struct strbuf *out,
			     struct strbuf *key)
{
	const char *state = policy_req_get(r, "protocol_state");
	const char *sender = policy_req_get(r, "sender");
	const char *sasl = policy_req_get(r, "sasl_username");
	const char *ca = policy_req_get(r, "client_address");
	struct addr a;

	if (!s->domains.n || !sender || !*sender || (sasl && *sasl))
		return PV_DUNNO;
	if (state && strcmp(state, "RCPT") != 0 && strcmp(state, "MAIL") != 0)
		return PV_DUNNO;
	const char *at = strrchr(sender, '@');
	if (!at || !at[1])
		return PV_DUNNO;
	if (ca && addr_parse(ca, strlen(ca), &a) == 0)
		for (size_t i = 0; i < s->nnets; i++)
			if (addr_in(&s->nets[i], &a))
				return PV_DUNNO;
	policy_lower(&s->tmp, at + 1, strlen(at + 1));
	if (!policy_ptable_get(&s->domains, s->tmp.s, s->tmp.len))
		return PV_DUNNO;
	strbuf_adds(key, sender);
	for (const char *p = s->action; *p; p++) {
		if (p[0] == '%' && p[1] == 'd') {
			strbuf_add(out, s->tmp.s, s->tmp.len);
			p++;
		} else {
			strbuf_addc(out, *p);
		}
	}
	return PV_REJECT;
}
