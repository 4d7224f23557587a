/*
 * postconf - reads Postfix's configuration as postconf(1) prints it: `-n`/`-d`
 * (name = value), `-P` (service/type/name = value), `-M` (master.cf entries with
 * their -o options) and Postfix's $name expansion, for the audit checks.
 *
 * Hand-written because no library reads Postfix's formats: main.cf continuation
 * lines, comments only at the start of a line, `-o { name = value }` in
 * master.cf, and the ${name?x} / ${{a} <level {b} ? {x} : {y}} expressions that
 * postconf -d prints for defaults depending on compatibility_level. Without the
 * latter the audit would misread every default that changed with a level.
 *
 * Input is untrusted text: lines and values are capped, expansion depth and
 * output length are bounded, NUL bytes end a line's useful part.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define PF_MAX_VALUE (256 * 1024)  /* longer logical lines are cut */
#define PF_MAX_EXPAND (64 * 1024)  /* expansion output cap */
#define PF_MAX_DEPTH 16            /* $a -> $b -> ... nesting */
#define PF_MAX_WORK (4 * 1024 * 1024) /* characters processed per expansion */
#define PF_MAX_SERVICES 1024

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *trim(char *s)
{
	while (is_blank((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && is_blank((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int is_name_char(int c)
{
	return isalnum(c) || c == '_';
}

/*
 * Splits text into logical lines the way main.cf does: a line starting with
 * white space continues the previous one, `#` at the start of a line is a
 * comment, blank lines end a logical line. cb gets each logical line with its
 * first physical line number.
 */
typedef void (*line_cb)(void *ctx, char *line, unsigned lineno);

static void logical_lines(const char *text, size_t len, line_cb cb, void *ctx)
{
	struct strbuf cur = STRBUF_INIT;
	unsigned curline = 0, lineno = 0;
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		lineno++;
		size_t n = e - i;
		const char *p = text + i;
		size_t nul = strnlen(p, n); /* a NUL ends the useful part */
		n = nul;
		int empty = 1;
		for (size_t k = 0; k < n; k++)
			if (!is_blank((unsigned char)p[k])) {
				empty = 0;
				break;
			}
		if (n > 0 && p[0] == '#') {
			/* comment: neither continues nor ends a logical line */
		} else if (empty) {
			if (cur.len) {
				cb(ctx, cur.s, curline);
				strbuf_reset(&cur);
			}
		} else if (is_blank((unsigned char)p[0]) && cur.len) {
			if (cur.len + n < PF_MAX_VALUE) {
				strbuf_addc(&cur, ' ');
				strbuf_add(&cur, p, n);
			}
		} else {
			if (cur.len)
				cb(ctx, cur.s, curline);
			strbuf_reset(&cur);
			strbuf_add(&cur, p, n < PF_MAX_VALUE ? n : PF_MAX_VALUE);
			curline = lineno;
		}
		i = e + 1;
	}
	if (cur.len)
		cb(ctx, cur.s, curline);
	strbuf_free(&cur);
}

struct main_ctx {
	struct kvlist *out;
	const char *file;
	struct diag *d;
	int bad;
};

static void main_line(void *vctx, char *line, unsigned lineno)
{
	struct main_ctx *c = vctx;
	char *eq = strchr(line, '=');
	char *name = line;
	if (eq)
		*eq = '\0';
	name = trim(name);
	int ok = eq && *name;
	for (const char *q = name; ok && *q; q++)
		if (!is_name_char((unsigned char)*q) && *q != '-' && *q != '/' && *q != '.' &&
		    *q != ':' && *q != '[' && *q != ']')
			ok = 0;
	if (!ok) {
		if (c->bad++ < 20)
			diag_warn(c->d, c->file, lineno, "expected 'name = value'");
		return;
	}
	kvlist_set(c->out, name, trim(eq + 1));
}

int pf_parse_main(struct kvlist *out, const char *file, const char *text, size_t len,
		  struct diag *d)
{
	struct main_ctx c = {out, file, d, 0};
	logical_lines(text, len, main_line, &c);
	return 0;
}

static struct pf_service *service_get(struct pf_conf *pf, const char *name, const char *type)
{
	for (size_t i = 0; i < pf->nsvc; i++)
		if (strcmp(pf->svc[i].name, name) == 0 && strcmp(pf->svc[i].type, type) == 0)
			return &pf->svc[i];
	if (pf->nsvc >= PF_MAX_SERVICES)
		return NULL;
	pf->svc = xgrow(pf->svc, &pf->svccap, pf->nsvc, sizeof *pf->svc);
	struct pf_service *s = &pf->svc[pf->nsvc++];
	memset(s, 0, sizeof *s);
	s->name = xstrdup(name);
	s->type = xstrdup(type);
	s->command = xstrdup("");
	return s;
}

struct over_ctx {
	struct pf_conf *pf;
	const char *file;
	struct diag *d;
	int bad;
};

static void over_line(void *vctx, char *line, unsigned lineno)
{
	struct over_ctx *c = vctx;
	char *eq = strchr(line, '=');
	char *key = line;
	if (eq)
		*eq = '\0';
	key = trim(key);
	/* service/type/name; the service name may contain ':' but never '/' */
	char *s1 = strchr(key, '/');
	char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	if (!eq || !s1 || !s2 || s1 == key || s2 == s1 + 1 || !s2[1] || strchr(s2 + 1, '/')) {
		if (c->bad++ < 20)
			diag_warn(c->d, c->file, lineno, "expected 'service/type/name = value'");
		return;
	}
	*s1 = *s2 = '\0';
	struct pf_service *s = service_get(c->pf, key, s1 + 1);
	if (s)
		kvlist_set(&s->over, s2 + 1, trim(eq + 1));
}

int pf_parse_overrides(struct pf_conf *pf, const char *file, const char *text, size_t len,
		       struct diag *d)
{
	struct over_ctx c = {pf, file, d, 0};
	logical_lines(text, len, over_line, &c);
	return 0;
}

/* Next master.cf token; `{ ... }` is one token (braces kept, nesting honoured). */
static char *next_token(char **pp)
{
	char *p = *pp;
	while (is_blank((unsigned char)*p))
		p++;
	if (!*p) {
		*pp = p;
		return NULL;
	}
	char *start = p;
	if (*p == '{') {
		int depth = 0;
		for (; *p; p++) {
			if (*p == '{')
				depth++;
			else if (*p == '}' && --depth == 0) {
				p++;
				break;
			}
		}
	} else {
		while (*p && !is_blank((unsigned char)*p))
			p++;
	}
	if (*p)
		*p++ = '\0';
	*pp = p;
	return start;
}

static void add_option(struct pf_service *s, char *opt)
{
	if (*opt == '{') {
		size_t n = strlen(opt);
		if (n >= 2 && opt[n - 1] == '}')
			opt[n - 1] = '\0';
		opt++;
	}
	char *eq = strchr(opt, '=');
	if (!eq)
		return;
	*eq = '\0';
	char *name = trim(opt);
	if (*name)
		kvlist_set(&s->over, name, trim(eq + 1));
}

static void master_line(void *vctx, char *line, unsigned lineno)
{
	struct over_ctx *c = vctx;
	char *p = line;
	char *f[8];
	for (int i = 0; i < 8; i++) {
		f[i] = next_token(&p);
		if (!f[i]) {
			if (c->bad++ < 20)
				diag_warn(c->d, c->file, lineno, "expected a master.cf service entry (8 fields)");
			return;
		}
	}
	struct pf_service *s = service_get(c->pf, f[0], f[1]);
	if (!s)
		return;
	free(s->command);
	s->command = xstrdup(f[7]);
	char *t;
	while ((t = next_token(&p)) != NULL) {
		if (strcmp(t, "-o") == 0) {
			char *o = next_token(&p);
			if (o)
				add_option(s, o);
		} else if (strncmp(t, "-o", 2) == 0) {
			add_option(s, t + 2);
		}
	}
}

int pf_parse_master(struct pf_conf *pf, const char *file, const char *text, size_t len,
		    struct diag *d)
{
	struct over_ctx c = {pf, file, d, 0};
	logical_lines(text, len, master_line, &c);
	pf->have_master = 1;
	return 0;
}

/*
 * Postfix 3.7's defaults for the parameters the checks read (as `postconf -d`
 * prints them on Debian 12), used when no -d output is given.
 */
static const char builtin_defaults[] =
	"compatibility_level = 0\n"
	"mail_name = Postfix\n"
	"mail_version = 3.7\n"
	"myhostname = localhost\n"
	"mydomain = localdomain\n"
	"mydestination = $myhostname, localhost.$mydomain, localhost\n"
	"mynetworks_style = ${{$compatibility_level} <level {2} ? {subnet} : {host}}\n"
	"relay_domains = ${{$compatibility_level} <level {2} ? {$mydestination} : {}}\n"
	"relay_recipient_maps =\n"
	"local_recipient_maps = proxy:unix:passwd.byname $alias_maps\n"
	"permit_mx_backup_networks =\n"
	"virtual_alias_domains = $virtual_alias_maps\n"
	"virtual_alias_maps = $virtual_maps\n"
	"virtual_mailbox_domains = $virtual_mailbox_maps\n"
	"virtual_mailbox_maps =\n"
	"inet_interfaces = all\n"
	"smtpd_banner = $myhostname ESMTP $mail_name\n"
	"disable_vrfy_command = no\n"
	"smtpd_reject_unlisted_recipient = yes\n"
	"show_user_unknown_table_name = yes\n"
	"smtpd_helo_required = no\n"
	"smtpd_client_restrictions =\n"
	"smtpd_helo_restrictions =\n"
	"smtpd_sender_restrictions =\n"
	"smtpd_relay_restrictions = ${{$compatibility_level} <level {1} ? {} : "
	"{permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination}}\n"
	"smtpd_recipient_restrictions =\n"
	"smtpd_data_restrictions =\n"
	"smtpd_end_of_data_restrictions =\n"
	"smtpd_etrn_restrictions =\n"
	"smtpd_client_connection_rate_limit = 0\n"
	"smtpd_client_connection_count_limit = 50\n"
	"smtpd_client_auth_rate_limit = 0\n"
	"smtpd_error_sleep_time = 1s\n"
	"smtpd_soft_error_limit = 10\n"
	"smtpd_hard_error_limit = ${stress?{1}:{20}}\n"
	"smtpd_recipient_limit = 1000\n"
	"message_size_limit = 10240000\n"
	"smtpd_forbid_unauth_pipelining = no\n"
	"smtpd_forbid_bare_newline = no\n"
	"smtpd_authorized_xclient_hosts =\n"
	"smtpd_authorized_xforward_hosts =\n"
	"smtpd_sasl_auth_enable = no\n"
	"smtpd_sasl_security_options = noanonymous\n"
	"smtpd_sasl_tls_security_options = $smtpd_sasl_security_options\n"
	"smtpd_tls_auth_only = no\n"
	"smtpd_tls_security_level =\n"
	"smtpd_use_tls = no\n"
	"smtpd_enforce_tls = no\n"
	"smtpd_tls_wrappermode = no\n"
	"smtpd_tls_protocols = >=TLSv1\n"
	"smtpd_tls_mandatory_protocols = >=TLSv1\n"
	"smtpd_tls_ciphers = medium\n"
	"smtpd_tls_mandatory_ciphers = medium\n"
	"smtpd_tls_dh1024_param_file =\n"
	"smtpd_tls_cert_file =\n"
	"smtpd_tls_key_file = $smtpd_tls_cert_file\n"
	"smtpd_tls_chain_files =\n"
	"smtpd_tls_eccert_file =\n"
	"smtpd_tls_eckey_file = $smtpd_tls_eccert_file\n"
	"smtp_sasl_auth_enable = no\n"
	"smtp_sasl_password_maps =\n"
	"smtp_sasl_security_options = noplaintext, noanonymous\n"
	"smtp_sasl_tls_security_options = $smtp_sasl_security_options\n"
	"smtp_tls_security_level =\n"
	"smtp_use_tls = no\n"
	"smtp_enforce_tls = no\n"
	"smtp_tls_cert_file =\n"
	"smtp_tls_key_file = $smtp_tls_cert_file\n"
	"smtp_tls_chain_files =\n"
	"header_checks =\n"
	"mime_header_checks = $header_checks\n"
	"nested_header_checks = $header_checks\n"
	"body_checks =\n"
	"maillog_file =\n"
	"relayhost =\n";

void pf_builtin_defaults(struct pf_conf *pf)
{
	struct diag d = DIAG_INIT;
	pf_parse_main(&pf->defaults, "builtin", builtin_defaults, sizeof builtin_defaults - 1, &d);
	diag_clear(&d);
	pf->builtin_defaults = 1;
}

const char *pf_raw(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	const char *v;
	if (svc && (v = kvlist_get(&svc->over, name)) != NULL)
		return v;
	if ((v = kvlist_get(&pf->main, name)) != NULL)
		return v;
	return kvlist_get(&pf->defaults, name);
}

int pf_is_explicit(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	return (svc && kvlist_get(&svc->over, name)) || kvlist_get(&pf->main, name);
}

/* ---- expansion ---- */

struct exp {
	const struct pf_conf *pf;
	const struct pf_service *svc;
	struct strbuf *out;
	size_t *budget; /* characters left to process, shared by nested expansions */
};

static void expand(struct exp *e, const char *s, size_t n, int depth);

/* Index just past the brace that closes the one at s[0]; 0 when unbalanced. */
static size_t match_brace(const char *s, size_t n)
{
	int depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '{')
			depth++;
		else if (s[i] == '}' && --depth == 0)
			return i + 1;
	}
	return 0;
}

static size_t skip_blanks(const char *s, size_t i, size_t n)
{
	while (i < n && is_blank((unsigned char)s[i]))
		i++;
	return i;
}

/* Expands the value of parameter name (length nl) into e->out. */
static void expand_name(struct exp *e, const char *name, size_t nl, int depth)
{
	char buf[128];
	if (nl >= sizeof buf)
		return;
	memcpy(buf, name, nl);
	buf[nl] = '\0';
	const char *v = pf_raw(e->pf, e->svc, buf);
	if (v)
		expand(e, v, strlen(v), depth + 1);
}

static char *expand_to_str(struct exp *e, const char *s, size_t n, int depth)
{
	struct strbuf b = STRBUF_INIT;
	struct exp sub = {e->pf, e->svc, &b, e->budget};
	expand(&sub, s, n, depth);
	return strbuf_detach(&b);
}

/* Text of `{text}` or plain text, braces stripped. */
static void strip_braces(const char **s, size_t *n)
{
	const char *p = *s;
	size_t len = *n;
	while (len && is_blank((unsigned char)*p))
		p++, len--;
	while (len && is_blank((unsigned char)p[len - 1]))
		len--;
	if (len >= 2 && p[0] == '{' && p[len - 1] == '}' && match_brace(p, len) == len) {
		p++;
		len -= 2;
	}
	*s = p;
	*n = len;
}

/* Compares dotted compatibility levels numerically ("3.6" > "2"). */
static int level_cmp(const char *a, const char *b)
{
	for (;;) {
		long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
		if (x != y)
			return x < y ? -1 : 1;
		int ma = *a == '.', mb = *b == '.';
		if (!ma && !mb)
			return 0;
		if (ma)
			a++;
		if (mb)
			b++;
		if (!ma || !mb) {
			/* "3" vs "3.1": the missing part counts as 0 */
			if (!ma && strtol(b, NULL, 10) > 0)
				return -1;
			if (!mb && strtol(a, NULL, 10) > 0)
				return 1;
			return 0;
		}
	}
}

static int relop(const char *op, size_t ol, const char *a, const char *b)
{
	int lvl = ol > 5 && memcmp(op + ol - 5, "level", 5) == 0;
	size_t base = lvl ? ol - 5 : ol;
	int c;
	if (lvl)
		c = level_cmp(a, b);
	else if (base == 2 && (op[0] == '=' || op[0] == '!'))
		c = strcmp(a, b);
	else
		c = (strtol(a, NULL, 10) > strtol(b, NULL, 10)) - (strtol(a, NULL, 10) < strtol(b, NULL, 10));
	if (base == 2 && memcmp(op, "==", 2) == 0)
		return c == 0;
	if (base == 2 && memcmp(op, "!=", 2) == 0)
		return c != 0;
	if (base == 2 && memcmp(op, "<=", 2) == 0)
		return c <= 0;
	if (base == 2 && memcmp(op, ">=", 2) == 0)
		return c >= 0;
	if (base == 1 && op[0] == '<')
		return c < 0;
	if (base == 1 && op[0] == '>')
		return c > 0;
	return 0;
}

/* ${{a} OP {b} ? {x} : {y}}: body is the text between the outer braces. */
static void expand_relational(struct exp *e, const char *s, size_t n, int depth)
{
	size_t i = 0, end = match_brace(s, n);
	if (end < 2)
		return; /* unbalanced: Postfix rejects it, we expand to nothing */
	char *a = expand_to_str(e, s + 1, end - 2, depth + 1);
	i = skip_blanks(s, end, n);
	size_t ostart = i;
	while (i < n && !is_blank((unsigned char)s[i]) && s[i] != '{')
		i++;
	const char *op = s + ostart;
	size_t ol = i - ostart;
	i = skip_blanks(s, i, n);
	char *b = NULL;
	if (i < n && s[i] == '{') {
		size_t m = match_brace(s + i, n - i);
		if (m < 2) {
			free(a);
			return;
		}
		b = expand_to_str(e, s + i + 1, m - 2, depth + 1);
		i += m;
	}
	i = skip_blanks(s, i, n);
	if (b && i < n && s[i] == '?') {
		int truth = relop(op, ol, a, b);
		i = skip_blanks(s, i + 1, n);
		size_t m = i < n && s[i] == '{' ? match_brace(s + i, n - i) : 0;
		size_t te = m ? i + m : n;
		const char *t = s + i;
		size_t tl = te - i;
		i = skip_blanks(s, te, n);
		const char *f = "";
		size_t fl = 0;
		if (i < n && s[i] == ':') {
			f = s + i + 1;
			fl = n - i - 1;
		}
		strip_braces(&t, &tl);
		strip_braces(&f, &fl);
		if (truth)
			expand(e, t, tl, depth + 1);
		else
			expand(e, f, fl, depth + 1);
	}
	free(a);
	free(b);
}

/* ${name}, ${name?x}, ${name:x}, ${name?{x}:{y}}: body between the braces. */
static void expand_braced(struct exp *e, const char *s, size_t n, int depth)
{
	size_t i = skip_blanks(s, 0, n);
	if (i < n && s[i] == '{') {
		expand_relational(e, s + i, n - i, depth);
		return;
	}
	size_t ns = i;
	while (i < n && is_name_char((unsigned char)s[i]))
		i++;
	const char *name = s + ns;
	size_t nl = i - ns;
	if (i >= n) {
		expand_name(e, name, nl, depth);
		return;
	}
	char *val = NULL;
	{
		struct strbuf b = STRBUF_INIT;
		struct exp sub = {e->pf, e->svc, &b, e->budget};
		expand_name(&sub, name, nl, depth);
		val = strbuf_detach(&b);
	}
	int set = *val != '\0';
	free(val);
	const char *t = s + i + 1, *f = "";
	size_t tl = n - i - 1, fl = 0;
	if (s[i] == '?') {
		if (tl && *t == '{') {
			size_t te = match_brace(t, tl);
			if (!te)
				te = tl;
			size_t j = skip_blanks(t, te, tl);
			if (j < tl && t[j] == ':') {
				f = t + j + 1;
				fl = tl - j - 1;
			}
			tl = te;
		}
		strip_braces(&t, &tl);
		strip_braces(&f, &fl);
		if (set)
			expand(e, t, tl, depth + 1);
		else
			expand(e, f, fl, depth + 1);
	} else if (s[i] == ':') {
		strip_braces(&t, &tl);
		if (!set)
			expand(e, t, tl, depth + 1);
	}
}

static void expand(struct exp *e, const char *s, size_t n, int depth)
{
	if (depth > PF_MAX_DEPTH)
		return;
	for (size_t i = 0; i < n && e->out->len < PF_MAX_EXPAND && *e->budget > 0;) {
		--*e->budget;
		if (s[i] != '$' || i + 1 >= n) {
			strbuf_addc(e->out, s[i++]);
			continue;
		}
		char c = s[i + 1];
		if (c == '$') {
			strbuf_addc(e->out, '$');
			i += 2;
		} else if (c == '{' || c == '(') {
			size_t end;
			if (c == '{') {
				size_t m = match_brace(s + i + 1, n - i - 1);
				if (!m) {
					/* unbalanced: the rest is literal text */
					strbuf_add(e->out, s + i, n - i);
					break;
				}
				end = i + 1 + m;
			} else {
				end = i + 2;
				while (end < n && s[end] != ')')
					end++;
				end = end < n ? end + 1 : n;
			}
			if (end - i >= 3)
				expand_braced(e, s + i + 2, end - i - 3, depth);
			i = end;
		} else if (is_name_char((unsigned char)c)) {
			size_t j = i + 1;
			while (j < n && is_name_char((unsigned char)s[j]))
				j++;
			expand_name(e, s + i + 1, j - i - 1, depth);
			i = j;
		} else {
			strbuf_addc(e->out, s[i++]);
		}
	}
}

char *pf_expand_str(const struct pf_conf *pf, const struct pf_service *svc, const char *s)
{
	struct strbuf b = STRBUF_INIT;
	/* nested ${x?...} tests expand into buffers of their own; the shared
	 * budget keeps a value like a = $b$b, b = $c$c, ... from taking 2^depth */
	size_t budget = PF_MAX_WORK;
	struct exp e = {pf, svc, &b, &budget};
	expand(&e, s, strlen(s), 0);
	return strbuf_detach(&b);
}

char *pf_expand(const struct pf_conf *pf, const struct pf_service *svc, const char *name)
{
	const char *v = pf_raw(pf, svc, name);
	return pf_expand_str(pf, svc, v ? v : "");
}

void pf_conf_free(struct pf_conf *pf)
{
	kvlist_free(&pf->main);
	kvlist_free(&pf->defaults);
	for (size_t i = 0; i < pf->nsvc; i++) {
		free(pf->svc[i].name);
		free(pf->svc[i].type);
		free(pf->svc[i].command);
		kvlist_free(&pf->svc[i].over);
	}
	free(pf->svc);
	memset(pf, 0, sizeof *pf);
}
