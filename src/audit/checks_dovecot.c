/*
 * checks_dovecot - the Dovecot audit checks on `doveconf -n` output:
 * cleartext authentication, TLS settings (ssl, ssl_min_protocol, ciphers, DH
 * size, key file mode), the static nopassword passdb incident, listeners,
 * password logging, login_trusted_networks, ANONYMOUS and the failure delay.
 *
 * Interface: audit_dovecot(dc, report). Settings are looked up at the top
 * level and in `protocol NAME { }` / `local` / `remote` blocks, which
 * override the top level for their connections.
 *
 * The passdb rule follows what was verified against Dovecot 2.3: a static
 * passdb with nopassword=y lets anyone in with any password unless it proxies
 * to a DIFFERENT backend that checks passwords; proxy_maybe, or a proxy to this
 * host (localhost, its own listen address), logs in locally or loops.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

static void add(struct audit_report *r, const char *id, enum audit_sev sev, const char *where,
		char *seen, const char *why, char *fix)
{
	audit_add(r, id, sev, where, seen, why, fix);
	free(seen);
	free(fix);
}

static int is_no(const char *v)
{
	return v && (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0);
}

static int is_yes(const char *v)
{
	return v && (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* Calls fn for the top level and for each protocol/local/remote block. */
typedef void (*scope_fn)(const struct dc_node *n, const char *where, void *ctx);

static void each_scope(const struct dc_node *root, scope_fn fn, void *ctx)
{
	fn(root, "dovecot.conf", ctx);
	for (size_t i = 0; i < root->nkids; i++) {
		const struct dc_node *k = &root->kids[i];
		if (k->value || (strcmp(k->key, "protocol") != 0 && strcmp(k->key, "local") != 0 &&
				 strcmp(k->key, "remote") != 0))
			continue;
		char where[160];
		snprintf(where, sizeof where, "%s %s { }", k->key, k->name);
		fn(k, where, ctx);
		/* protocol blocks inside local/remote */
		for (size_t j = 0; j < k->nkids; j++)
			if (!k->kids[j].value && strcmp(k->kids[j].key, "protocol") == 0) {
				snprintf(where, sizeof where, "%s %s { protocol %s { } }", k->key, k->name,
					 k->kids[j].name);
				fn(&k->kids[j], where, ctx);
			}
	}
}

struct scope_ctx {
	struct audit_report *r;
	const char *plaintext_top;
};

static void scope_checks(const struct dc_node *n, const char *where, void *vctx)
{
	struct scope_ctx *c = vctx;
	struct audit_report *r = c->r;
	const char *v = dc_get(n, "disable_plaintext_auth");
	if (is_no(v))
		add(r, "DC-AUTH-PLAINTEXT", AUDIT_HIGH, where,
		    xasprintf("disable_plaintext_auth = %s", v),
		    "passwords may be sent without TLS, readable by anyone on the path",
		    xstrdup("disable_plaintext_auth = yes"));
	v = dc_get(n, "auth_allow_cleartext");
	if (is_yes(v))
		add(r, "DC-AUTH-PLAINTEXT", AUDIT_HIGH, where,
		    xasprintf("auth_allow_cleartext = %s", v),
		    "passwords may be sent without TLS, readable by anyone on the path",
		    xstrdup("auth_allow_cleartext = no"));
	v = dc_get(n, "ssl");
	if (is_no(v))
		add(r, "DC-SSL-OFF", AUDIT_HIGH, where, xasprintf("ssl = %s", v),
		    "no TLS at all: logins and mail travel in cleartext",
		    xstrdup("ssl = required (with ssl_cert and ssl_key)"));
	v = dc_get(n, "ssl_min_protocol");
	if (v && (strcasecmp(v, "SSLv3") == 0 || strcasecmp(v, "TLSv1") == 0 ||
		  strcasecmp(v, "TLSv1.1") == 0 || strcasecmp(v, "ANY") == 0))
		add(r, "DC-SSL-MIN-PROTOCOL", AUDIT_MEDIUM, where, xasprintf("ssl_min_protocol = %s", v),
		    "protocols older than TLSv1.2 are deprecated (RFC 8996) and only old clients "
		    "that your users should not have need them",
		    xstrdup("ssl_min_protocol = TLSv1.2"));
	v = dc_get(n, "ssl_cipher_list");
	if (v) {
		int weak = strcasestr(v, "@SECLEVEL=0") != NULL;
		static const char *const bad[] = {"ALL", "EXPORT", "EXP", "RC4", "NULL", "eNULL",
						  "aNULL", "DES", "MD5", "LOW", NULL};
		/* a weak name counts when it is added, not when it is removed (!x, -x) */
		char *copy = xstrdup(v);
		for (char *tok = strtok(copy, ": ,"); tok && !weak; tok = strtok(NULL, ": ,")) {
			const char *t = tok[0] == '+' ? tok + 1 : tok;
			for (size_t i = 0; bad[i]; i++)
				if (strcasecmp(t, bad[i]) == 0)
					weak = 1;
		}
		free(copy);
		if (weak)
			add(r, "DC-SSL-CIPHERS", AUDIT_MEDIUM, where, xasprintf("ssl_cipher_list = %s", v),
			    "the list admits broken or unauthenticated ciphers or lowers OpenSSL's "
			    "security level",
			    xstrdup("remove ssl_cipher_list (Dovecot's default is "
				    "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH)"));
	}
	v = dc_get(n, "auth_debug_passwords");
	if (is_yes(v))
		add(r, "DC-AUTH-DEBUG-PASSWORDS", AUDIT_HIGH, where,
		    xasprintf("auth_debug_passwords = %s", v),
		    "every password, right or wrong, is written to the log",
		    xstrdup("auth_debug_passwords = no"));
	v = dc_get(n, "auth_verbose_passwords");
	if (v && !is_no(v) && strcasecmp(v, "") != 0)
		add(r, "DC-AUTH-VERBOSE-PASSWORDS",
		    (strcasecmp(v, "plain") == 0 || is_yes(v)) ? AUDIT_HIGH : AUDIT_MEDIUM, where,
		    xasprintf("auth_verbose_passwords = %s", v),
		    "failed passwords (often a real password for another service, or one typo "
		    "away) are written to the log, in clear or as a crackable hash",
		    xstrdup("auth_verbose_passwords = no"));
	const char *av = dc_get(n, "auth_verbose"), *ad = dc_get(n, "auth_debug");
	if (is_yes(av) || is_yes(ad))
		add(r, "DC-AUTH-VERBOSE", AUDIT_LOW, where,
		    xasprintf("auth_verbose = %s; auth_debug = %s", av ? av : "no", ad ? ad : "no"),
		    "verbose authentication logging records user names that are often passwords "
		    "typed into the wrong field; keep it for debugging only",
		    xstrdup(is_yes(ad) ? "auth_debug = no" : "auth_verbose = no"));
	v = dc_get(n, "login_trusted_networks");
	if (v) {
		char *copy = xstrdup(v);
		int worst = -1;
		char net[128] = "";
		for (char *tok = strtok(copy, " ,\t"); tok; tok = strtok(NULL, " ,\t")) {
			int s = audit_net_severity(tok);
			if (s >= 0 && (worst < 0 || s < worst)) {
				worst = s;
				snprintf(net, sizeof net, "%s", tok);
			}
		}
		free(copy);
		if (worst >= 0) {
			char *why = xasprintf("clients in %s may claim any remote address (and so evade "
					      "bans and address checks) and are trusted as if local",
					      net);
			add(r, "DC-TRUSTED-NETWORKS", (enum audit_sev)worst, where,
			    xasprintf("login_trusted_networks = %s", v), why,
			    xstrdup("login_trusted_networks = <only your proxy addresses>"));
			free(why);
		}
	}
	v = dc_get(n, "auth_mechanisms");
	if (v && strcasestr(v, "anonymous"))
		add(r, "DC-AUTH-ANONYMOUS", AUDIT_HIGH, where, xasprintf("auth_mechanisms = %s", v),
		    "the ANONYMOUS mechanism logs in without any credentials",
		    xstrdup("auth_mechanisms = plain login"));
	v = dc_get(n, "auth_failure_delay");
	if (v && strtol(v, NULL, 10) == 0 && isdigit((unsigned char)v[0]))
		add(r, "DC-AUTH-FAILURE-DELAY", AUDIT_MEDIUM, where,
		    xasprintf("auth_failure_delay = %s", v),
		    "failed logins are answered at once, so passwords can be guessed at full speed",
		    xstrdup("auth_failure_delay = 2 secs"));
}

/* Value of k in a space-separated "k=v k2 k3=v3" args string; "" for a bare k. */
static int arg_get(const char *args, const char *k, char *out, size_t outlen)
{
	size_t kl = strlen(k);
	const char *p = args;
	while (p && *p) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, " \t");
		if (len >= kl && strncasecmp(p, k, kl) == 0 && (len == kl || p[kl] == '=')) {
			if (len == kl)
				out[0] = '\0';
			else
				snprintf(out, outlen, "%.*s", (int)(len - kl - 1), p + kl + 1);
			return 1;
		}
		p += len;
	}
	return 0;
}

static int truthy_arg(const char *args, const char *k)
{
	char v[64];
	if (!arg_get(args, k, v, sizeof v))
		return 0;
	return !v[0] || is_yes(v) || strcasecmp(v, "y") == 0;
}

/* 1 when host (from a proxy passdb) is this server. */
static int host_is_self(const char *host, const struct dc_node *root)
{
	if (!*host || strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	    strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0 || strchr(host, '%'))
		return 1;
	const char *listen = dc_get(root, "listen");
	if (listen) {
		char *copy = xstrdup(listen);
		int self = 0;
		for (char *t = strtok(copy, " ,"); t; t = strtok(NULL, " ,"))
			if (strcmp(t, host) == 0)
				self = 1;
		free(copy);
		if (self)
			return 1;
	}
	const char *hn = dc_get(root, "hostname");
	return hn && strcasecmp(hn, host) == 0;
}

static void check_passdb(const struct dc_node *root, const struct dc_node *p, const char *where,
			 struct audit_report *r)
{
	const char *driver = dc_get(p, "driver");
	if (!driver && p->name && *p->name)
		driver = p->name; /* Dovecot 2.4: passdb static { } */
	if (!driver || strcasecmp(driver, "static") != 0)
		return;
	struct strbuf all = STRBUF_INIT;
	static const char *const keys[] = {"args", "default_fields", "override_fields", NULL};
	for (size_t i = 0; keys[i]; i++) {
		const char *v = dc_get(p, keys[i]);
		if (v) {
			strbuf_adds(&all, v);
			strbuf_addc(&all, ' ');
		}
	}
	/* 2.4 style: the fields are settings of their own */
	static const char *const own[] = {"nopassword", "proxy", "proxy_maybe", "host", "password", NULL};
	for (size_t i = 0; own[i]; i++) {
		const char *v = dc_get(p, own[i]);
		if (v)
			strbuf_addf(&all, "%s=%s ", own[i], v);
	}
	const char *args = strbuf_str(&all);
	char host[256] = "";
	arg_get(args, "host", host, sizeof host);
	int proxy = truthy_arg(args, "proxy");
	int maybe = truthy_arg(args, "proxy_maybe");
	int elsewhere = proxy && !maybe && !host_is_self(host, root);
	char pw[8];
	int nopw = truthy_arg(args, "nopassword");
	int haspw = arg_get(args, "password", pw, sizeof pw) && pw[0];
	const char *shown = dc_get(p, "args");
	if (nopw && !elsewhere) {
		char *why = xasprintf("every account logs in with any password%s",
				      maybe ? ": proxy_maybe to this host logs in locally"
				      : proxy ? ": the proxy points back at this host" : "");
		add(r, "DC-PASSDB-NOPASSWORD", AUDIT_HIGH, where,
		    xasprintf("passdb { driver = static, args = %s }", shown ? shown : args), why,
		    xstrdup("remove the static passdb, or make it proxy=y host=<another backend "
			    "that checks passwords>"));
		free(why);
	} else if (haspw && !elsewhere) {
		add(r, "DC-PASSDB-STATIC-PASSWORD", AUDIT_HIGH, where,
		    xstrdup("passdb { driver = static, args = password=<hidden> }"),
		    "every account shares one password, so knowing it opens every mailbox",
		    xstrdup("use a per-user passdb (passwd-file, sql, ldap, pam)"));
	}
	strbuf_free(&all);
}

static int listens_everywhere(const char *v)
{
	if (!v)
		return 1; /* default "*, ::" */
	char *copy = xstrdup(v);
	int all = 0;
	for (char *t = strtok(copy, " ,"); t; t = strtok(NULL, " ,"))
		if (strcmp(t, "*") == 0 || strcmp(t, "::") == 0 || strcmp(t, "[::]") == 0 ||
		    strcmp(t, "0.0.0.0") == 0)
			all = 1;
	free(copy);
	return all;
}

static void check_files(const struct dc_node *root, struct audit_report *r)
{
	const char *dh = dc_get(root, "ssl_dh");
	if (dh && dh[0] == '<') {
		const char *path = dh + 1;
		while (*path == ' ')
			path++;
		int bits = audit_dh_bits(path);
		if (bits > 0 && bits < 2048)
			add(r, "DC-SSL-DH", AUDIT_HIGH, "dovecot.conf",
			    xasprintf("ssl_dh = <%s (%d bits)", path, bits),
			    "DHE with a group smaller than 2048 bits can be broken by a well-funded "
			    "attacker (Logjam)",
			    xstrdup("ssl_dh = </usr/share/dovecot/dh.pem (2048 bits or more; "
				    "e.g. RFC 7919 ffdhe2048)"));
		else if (bits < 0)
			audit_note(r, "ssl_dh %s could not be read; DH size not checked", path);
	} else if (dh && strstr(dh, "hidden")) {
		audit_note(r, "ssl_dh is hidden in doveconf -n output; DH size not checked");
	}
	const char *key = dc_get(root, "ssl_key");
	if (key && key[0] == '<') {
		const char *path = key + 1;
		while (*path == ' ')
			path++;
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
			add(r, "DC-SSL-KEY-PERMS", AUDIT_HIGH, "dovecot.conf",
			    xasprintf("ssl_key = <%s (mode %04o)", path, (unsigned)(st.st_mode & 07777)),
			    "every local user can read the TLS private key and impersonate the server",
			    xasprintf("chmod 600 %s", path));
	} else if (key && strstr(key, "hidden")) {
		audit_note(r, "ssl_key is hidden in doveconf -n output; its file mode was not checked");
	}
}

void audit_dovecot(const struct dc_conf *dc, struct audit_report *r)
{
	const struct dc_node *root = &dc->root;
	struct scope_ctx c = {r, NULL};
	each_scope(root, scope_checks, &c);
	check_files(root, r);
	for (size_t i = 0; i < root->nkids; i++) {
		const struct dc_node *k = &root->kids[i];
		if (!k->value && strcmp(k->key, "passdb") == 0)
			check_passdb(root, k, "passdb { }", r);
		if (!k->value && strcmp(k->key, "protocol") == 0)
			for (size_t j = 0; j < k->nkids; j++)
				if (!k->kids[j].value && strcmp(k->kids[j].key, "passdb") == 0) {
					char where[160];
					snprintf(where, sizeof where, "protocol %s { passdb { } }", k->name);
					check_passdb(root, &k->kids[j], where, r);
				}
	}
	/* listeners: the top-level listen, or an inet_listener's own address */
	const char *listen = dc_get(root, "listen");
	if (listens_everywhere(listen))
		add(r, "DC-LISTEN-ALL", AUDIT_LOW, "dovecot.conf",
		    xasprintf("listen = %s", listen ? listen : "*, :: (default)"),
		    "every service listens on every address; bind to the addresses clients use "
		    "(and loopback for local-only services)",
		    xstrdup("listen = <public address>, 127.0.0.1"));
	for (size_t i = 0; i < root->nkids; i++) {
		const struct dc_node *s = &root->kids[i];
		if (s->value || strcmp(s->key, "service") != 0)
			continue;
		for (size_t j = 0; j < s->nkids; j++) {
			const struct dc_node *l = &s->kids[j];
			const char *addr = l->value ? NULL : dc_get(l, "address");
			if (!l->value && strcmp(l->key, "inet_listener") == 0 && addr &&
			    listens_everywhere(addr)) {
				char where[160];
				snprintf(where, sizeof where, "service %s { inet_listener %s }", s->name,
					 l->name);
				add(r, "DC-LISTEN-ALL", AUDIT_LOW, where, xasprintf("address = %s", addr),
				    "this listener accepts connections on every address",
				    xstrdup("address = <the address clients use>"));
			}
		}
	}
}
