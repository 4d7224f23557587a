/*
 * filterload - config_load_filter(): filter.d/NAME into a struct filter_def,
 * with fail2ban 1.0.2's precedence and interpolation.
 *
 * Order of work (fail2ban's FilterReader/DefinitionInitConfigReader):
 *  1. read filter.d/NAME.conf, NAME.d/ *.conf, NAME.local, NAME.d/ *.local and
 *     their [INCLUDES];
 *  2. the exported options (usedns, prefregex, ignoreregex, failregex,
 *     maxlines, datepattern, journalmatch) come from [Definition] with %(x)s
 *     expanded, unless a bracket option (or, in a jail, a jail option) of the
 *     same name exists;
 *  3. [Init] options join the bracket options (brackets win) and each also
 *     becomes "known/<name>";
 *  4. <tag>s are substituted over that combined map; tags it does not hold
 *     are looked up in [Definition] (bracket and jail options first), then
 *     left as they are, which is how <HOST> reaches the filter compiler;
 *  5. in a jail, the jail's own failregex etc. replace the filter's.
 * Every regex keeps the file:line it was written on when the line count of
 * the value survived interpolation (else the line of its key).
 *
 * DIAGNOSTICS: "file:line: ..." for file and interpolation errors; a missing
 * filter names the directory searched.
 */
#include "config/filterload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "config/interp.h"
#include "core/diag.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

const char *const filterload_filter_options[] = {
	"usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern",
	"journalmatch", NULL,
};

const char *const filterload_jail_options[] = {
	"enabled", "backend", "maxretry", "maxmatches", "findtime", "bantime",
	"bantime.increment", "bantime.factor", "bantime.formula", "bantime.multipliers",
	"bantime.maxtime", "bantime.rndtime", "bantime.overalljails", "ignorecommand",
	"ignoreself", "ignoreip", "ignorecache", "filter", "logtimezone", "logencoding",
	"logpath", "action", "usedns", "prefregex", "ignoreregex", "failregex", "maxlines",
	"datepattern", "journalmatch", NULL,
};

struct fl {
	struct ini ini;
	struct ini_sect init;   /* fail2ban's _initOpts (ordered, exact keys) */
	struct kvlist popts;    /* fail2ban's _pOpts: vars of every lookup */
	struct ini_sect cache;  /* getCombOption cache; NULL value = None */
	struct diag *d;
	const char *file;       /* main file, for messages without a line */
	int failed;
};

static void report(struct fl *f, const struct interp_err *e)
{
	diag_error(f->d, e->file, e->line, "%s", e->msg);
	f->failed = 1;
}

static int is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Filter names from old tutorials that fail2ban has since renamed or merged:
 * mxjail ships aliases for them in etc/filter.d, and a tree without those
 * (a stock fail2ban one) gets the replacement named in the error instead of a
 * jail that silently watches nothing. */
static const char *renamed_filter(const char *name)
{
	static const struct {
		const char *old, *now;
	} renamed[] = {
		{"pureftpd", "pure-ftpd"},
		{"dovecot-pop3imap", "dovecot"},
		{"sasl", "postfix[mode=auth]"},
		{"ssh", "sshd"},
		{"ssh-ddos", "sshd[mode=ddos]"},
		{"postfix-sasl", "postfix[mode=auth]"},
		{"postfix-rbl", "postfix[mode=rbl]"},
	};
	for (size_t i = 0; i < sizeof renamed / sizeof renamed[0]; i++)
		if (strcmp(name, renamed[i].old) == 0)
			return renamed[i].now;
	return NULL;
}

static int read_filter(struct fl *f, const char *confdir, const char *name, char **file)
{
	size_t nl = strlen(name);
	int explicit = strchr(name, '/') && is_file(name);
	if (!explicit && nl > 5 && strcmp(name + nl - 5, ".conf") == 0 && is_file(name))
		explicit = 1;
	int rc;
	if (explicit) {
		char *one = xstrdup(name);
		rc = ini_read_files(&f->ini, &one, 1, f->d);
		*file = one;
	} else {
		char *base = xasprintf("%s/filter.d/%s", confdir, name);
		rc = ini_read_unit(&f->ini, base, f->d);
		char *conf = xasprintf("%s.conf", base);
		char *local = xasprintf("%s.local", base);
		*file = xstrdup(is_file(conf) ? conf : local);
		if (rc == 0) {
			const char *now = renamed_filter(name);
			diag_error(f->d, NULL, 0,
				   "filter '%s' not found: searched %s/filter.d for %s.conf, %s.local "
				   "and %s.d/%s%s%s",
				   name, confdir, name, name, name,
				   now ? "; that is an old filter name, use 'filter = " : "",
				   now ? now : "", now ? "' instead" : "");
		}
		free(conf);
		free(local);
		free(base);
	}
	if (rc <= 0) {
		f->failed = 1;
		return -1;
	}
	return 0;
}

/* DefinitionInitConfigReader.getOptions, the [Init] half. */
static int add_init(struct fl *f)
{
	const struct ini_sect *init = ini_sect_find(&f->ini, "Init");
	if (!init)
		return 0;
	/* copy the key names: the section is not modified, but be safe */
	for (size_t i = 0; i < init->n; i++) {
		const char *opt = init->opts[i].key;
		if (strcmp(opt, "__name__") == 0)
			continue;
		char *v = NULL;
		const struct ini_opt *where = NULL;
		struct interp_err err;
		int known = strncmp(opt, "known/", 6) == 0;
		if (!known || !ini_opt_find(&f->init, opt)) {
			if (interp_get(&f->ini, "Init", opt, NULL, 0, &v, &where, &err) != INTERP_OK) {
				report(f, &err);
				return -1;
			}
		}
		if (!known) {
			char *k = xasprintf("known/%s", opt);
			struct ini_opt *o = ini_opt_copy(&f->init, k, &init->opts[i]);
			free(o->value);
			o->value = xstrdup(v);
			free(k);
		}
		if (!ini_opt_find(&f->init, opt)) {
			struct ini_opt *o = ini_opt_copy(&f->init, opt, &init->opts[i]);
			free(o->value);
			o->value = xstrdup(v);
		}
		free(v);
	}
	return 0;
}

static int read_definition(struct fl *f, struct ini_sect *opts, int all)
{
	const struct ini_sect *def = ini_sect_find(&f->ini, "Definition");
	if (!def) {
		diag_error(f->d, f->file, 0, "expected a [Definition] section in the filter");
		f->failed = 1;
		return -1;
	}
	for (const char *const *k = filterload_filter_options; *k; k++) {
		if (kvlist_get(&f->popts, *k))
			continue;
		char *v = NULL;
		const struct ini_opt *where = NULL;
		struct interp_err err;
		int rc = interp_get(&f->ini, "Definition", *k, &f->popts, 0, &v, &where, &err);
		if (rc == INTERP_ERROR) {
			report(f, &err);
			return -1;
		}
		if (rc != INTERP_OK)
			continue;
		struct ini_opt *o = where ? ini_opt_copy(opts, *k, where)
					  : ini_opt_set(opts, *k, NULL, NULL, 0);
		free(o->value);
		o->value = v;
	}
	if (!all)
		return 0;
	/* every other option of [Definition] and the file's [DEFAULT] */
	for (int pass = 0; pass < 2; pass++) {
		const struct ini_sect *s = pass ? &f->ini.defaults : def;
		for (size_t i = 0; i < s->n; i++) {
			const char *k = s->opts[i].key;
			if (strcmp(k, "__name__") == 0 || ini_opt_find(opts, k))
				continue;
			char *v = NULL;
			const struct ini_opt *where = NULL;
			struct interp_err err;
			int rc = interp_get(&f->ini, "Definition", k, NULL, 0, &v, &where, &err);
			if (rc == INTERP_ERROR) {
				report(f, &err);
				return -1;
			}
			if (rc != INTERP_OK)
				continue;
			struct ini_opt *o = where ? ini_opt_copy(opts, k, where)
						  : ini_opt_set(opts, k, NULL, NULL, 0);
			free(o->value);
			o->value = v;
		}
	}
	return 0;
}

int filterload_combined(const struct filterload_req *rq, struct ini_sect *combined, char **file,
			struct ini *keep, struct diag *d)
{
	struct fl f;
	memset(&f, 0, sizeof f);
	f.d = d;
	*file = NULL;
	int rc = -1;
	char **ignore = NULL;
	size_t nign = 0, capign = 0;
	if (read_filter(&f, rq->confdir, rq->name, file) < 0)
		goto out;
	f.file = *file;
	if (rq->bracket)
		for (size_t i = 0; i < rq->bracket->n; i++)
			ini_opt_set(&f.init, rq->bracket->v[i].key, rq->bracket->v[i].value, NULL, 0);
	if (rq->jailcfg) {
		/* applyAutoOptions: logtype follows the backend unless set */
		const struct ini_opt *lt = ini_opt_find(&f.init, "logtype");
		const struct ini_sect *def = ini_sect_find(&f.ini, "Definition");
		if ((!lt || !lt->value || !*lt->value) && !(def && ini_opt_find(def, "logtype"))) {
			const char *be = rq->backend ? rq->backend : "";
			ini_opt_set(&f.init, "logtype",
				    strncmp(be, "systemd", 7) == 0 ? "journal" : "file", NULL, 0);
		}
		if (!rq->all && add_init(&f) < 0)
			goto out;
		for (const char *const *k = filterload_jail_options; *k; k++) {
			const char *v = kvlist_get(rq->jailcfg, *k);
			if (v)
				kvlist_set(&f.popts, *k, v);
		}
	}
	for (size_t i = 0; i < f.init.n; i++)
		kvlist_set(&f.popts, f.init.opts[i].key,
			   f.init.opts[i].value ? f.init.opts[i].value : "");
	if (read_definition(&f, combined, rq->all) < 0)
		goto out;
	if ((!rq->jailcfg || rq->all) && add_init(&f) < 0)
		goto out;
	for (size_t i = 0; i < f.init.n; i++)
		ini_opt_copy(combined, f.init.opts[i].key, &f.init.opts[i]);
	for (size_t i = 0; i < combined->n; i++) {
		char *b = interp_conditional_base(combined->opts[i].key);
		if (!b)
			continue;
		ignore = xgrow(ignore, &capign, nign + 1, sizeof *ignore);
		ignore[nign++] = b;
	}
	ignore = xgrow(ignore, &capign, nign + 1, sizeof *ignore);
	ignore[nign] = NULL;
	struct interp_err err;
	struct interp_defsrc src = {&f.ini, &f.popts, &f.cache};
	if (interp_tags(combined, (const char *const *)ignore, interp_definition_tag, &src, &err) !=
	    0) {
		if (!err.file)
			err.file = *file;
		report(&f, &err);
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nign; i++)
		free(ignore[i]);
	free(ignore);
	if (keep && rc == 0)
		*keep = f.ini;
	else
		ini_free(&f.ini);
	ini_sect_clear(&f.init);
	ini_sect_clear(&f.cache);
	kvlist_free(&f.popts);
	return rc;
}

/* ---- filling the filter_def ---- */

static void add_src(struct filter_src **v, size_t *n, size_t *cap, const char *text, size_t len,
		    const char *file, unsigned line)
{
	*v = xgrow(*v, cap, *n, sizeof **v);
	(*v)[*n].text = xstrndup(text, len);
	(*v)[*n].file = file ? xstrdup(file) : NULL;
	(*v)[*n].line = line;
	(*n)++;
}

/* ---- where did an expanded line come from? ----
 * When interpolation changed the number of lines of a value, each final
 * line is traced to the raw line (of any option of the files read) whose
 * literal text it contains in order, references acting as wildcards; the
 * raw line with the most literal text matched wins. */

#define WILD '\x01'

/* Raw line with every %(x)s and (innermost first) <tag> replaced by WILD. */
static char *skeleton(const char *raw, size_t len)
{
	char *s = xstrndup(raw, len);
	for (int round = 0; round < 8; round++) {
		int changed = 0;
		char *w = s;
		for (char *p = s; *p;) {
			char *q;
			if (p[0] == '%' && p[1] == '(' && (q = strstr(p, ")s")) != NULL) {
				*w++ = WILD;
				p = q + 2;
				changed = 1;
				continue;
			}
			if (p[0] == '<') {
				q = p + 1;
				while (*q && *q != ' ' && *q != '<' && *q != '>')
					q++;
				if (*q == '>' && q > p + 1) {
					*w++ = WILD;
					p = q + 1;
					changed = 1;
					continue;
				}
			}
			*w++ = *p++;
		}
		*w = '\0';
		if (!changed)
			break;
	}
	return s;
}

/* Anchored wildcard match of text against pattern; returns the number of
 * literal bytes matched, or -1. */
static long wild_match(const char *pat, const char *txt, size_t tlen)
{
	long lit = 0;
	size_t p = 0, t = 0, star_p = (size_t)-1, star_t = 0;
	size_t plen = strlen(pat);
	for (size_t i = 0; i < plen; i++)
		lit += pat[i] != WILD;
	while (t < tlen) {
		if (p < plen && pat[p] == WILD) {
			star_p = p++;
			star_t = t;
		} else if (p < plen && pat[p] == txt[t]) {
			p++;
			t++;
		} else if (star_p != (size_t)-1) {
			p = star_p + 1;
			t = ++star_t;
		} else {
			return -1;
		}
	}
	while (p < plen && pat[p] == WILD)
		p++;
	return p == plen ? lit : -1;
}

static void trace_line(const struct ini *ini, const char *txt, size_t tlen, const char **file,
		       unsigned *line)
{
	long best = 0;
	/* real sections first: KNOWN/ copies only when nothing else fits */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t si = 0; si <= ini->n; si++) {
			const struct ini_sect *s = si < ini->n ? &ini->sects[si] : &ini->defaults;
			int known = s->name && strncmp(s->name, "KNOWN/", 6) == 0;
			if (known != pass)
				continue;
			for (size_t oi = 0; oi < s->n; oi++) {
				const struct ini_opt *o = &s->opts[oi];
				if (!o->value || !o->file)
					continue;
				const char *p = o->value;
				for (size_t idx = 0; idx < o->nlines; idx++) {
					const char *nl = strchr(p, '\n');
					size_t len = nl ? (size_t)(nl - p) : strlen(p);
					if (len && len < 65536 && tlen < 65536) {
						char *sk = skeleton(p, len);
						long m = wild_match(sk, txt, tlen);
						free(sk);
						if (m > best) {
							best = m;
							*file = o->file;
							*line = o->lines[idx];
						}
					}
					if (!nl)
						break;
					p = nl + 1;
				}
			}
		}
		if (best > 0)
			return;
	}
}

/* value.split('\n') without empty items; each keeps its source line. */
static void add_lines(struct filter_src **v, size_t *n, const char *value, const struct ini_opt *o,
		      const struct ini *ini)
{
	size_t cap = *n;
	size_t total = 1;
	for (const char *p = value; *p; p++)
		total += *p == '\n';
	const char *p = value;
	for (size_t idx = 0;; idx++) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len) {
			const char *file = o ? o->file : NULL;
			unsigned line = o ? o->line : 0;
			if (o && o->nlines == total && idx < o->nlines)
				line = o->lines[idx];
			else if (o && ini)
				trace_line(ini, p, len, &file, &line);
			add_src(v, n, &cap, p, len, file, line);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

static void add_strs(char ***v, size_t *n, const char *value, int strip)
{
	size_t cap = *n;
	const char *p = value;
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *a = p;
		if (strip) {
			while (len && (*a == ' ' || (*a >= '\t' && *a <= '\r'))) {
				a++;
				len--;
			}
			while (len && (a[len - 1] == ' ' || (a[len - 1] >= '\t' && a[len - 1] <= '\r')))
				len--;
		}
		if (len) {
			*v = xgrow(*v, &cap, *n, sizeof **v);
			(*v)[(*n)++] = xstrndup(a, len);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* Python int(): optional sign, digits with single underscores, spaces around. */
static int py_int(const char *s, long *out)
{
	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	int neg = 0;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!(*s >= '0' && *s <= '9'))
		return -1;
	long v = 0;
	while ((*s >= '0' && *s <= '9') || (*s == '_' && s[1] >= '0' && s[1] <= '9')) {
		if (*s != '_') {
			if (v > 100000000L)
				return -1;
			v = v * 10 + (*s - '0');
		}
		s++;
	}
	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	if (*s)
		return -1;
	*out = neg ? -v : v;
	return 0;
}

static const char *cval(const struct ini_sect *c, const char *k)
{
	const struct ini_opt *o = ini_opt_find(c, k);
	return o ? o->value : NULL;
}

int config_load_filter(const char *confdir, const char *spec, const struct kvlist *jailopts,
		       struct filter_def *out, struct diag *d)
{
	memset(out, 0, sizeof *out);
	out->name = xstrdup(spec);
	out->maxlines = 1;
	char *name = NULL;
	struct kvlist bracket = KVLIST_INIT;
	char ebuf[256];
	if (config_spec_parse(spec, &name, &bracket, ebuf, sizeof ebuf) < 0) {
		diag_error(d, NULL, 0, "filter '%s': %s", spec, ebuf);
		kvlist_free(&bracket);
		return -1;
	}
	struct filterload_req rq = {
		.confdir = confdir,
		.name = name,
		.bracket = &bracket,
		.jailcfg = jailopts,
		.backend = jailopts ? kvlist_get(jailopts, "backend") : NULL,
		.all = 0,
	};
	struct ini_sect c;
	memset(&c, 0, sizeof c);
	char *file = NULL;
	struct ini ini;
	memset(&ini, 0, sizeof ini);
	int rc = filterload_combined(&rq, &c, &file, &ini, d);
	out->file = file;
	if (rc < 0)
		goto done;
	const char *v;
	const char *jv;
	/* failregex/ignoreregex/journalmatch: the filter's (unless the jail's
	 * replaced them in step 2) followed by the jail's own */
	if ((v = cval(&c, "failregex")) != NULL)
		add_lines(&out->failregex, &out->nfailregex, v, ini_opt_find(&c, "failregex"),
			  &ini);
	if (jailopts && (jv = kvlist_get(jailopts, "failregex")) != NULL)
		add_lines(&out->failregex, &out->nfailregex, jv, NULL, NULL);
	if ((v = cval(&c, "ignoreregex")) != NULL)
		add_lines(&out->ignoreregex, &out->nignoreregex, v,
			  ini_opt_find(&c, "ignoreregex"), &ini);
	if (jailopts && (jv = kvlist_get(jailopts, "ignoreregex")) != NULL)
		add_lines(&out->ignoreregex, &out->nignoreregex, jv, NULL, NULL);
	if ((v = cval(&c, "journalmatch")) != NULL)
		add_strs(&out->journalmatch, &out->njournalmatch, v, 0);
	if (jailopts && (jv = kvlist_get(jailopts, "journalmatch")) != NULL)
		add_strs(&out->journalmatch, &out->njournalmatch, jv, 0);
	/* datepattern: the jail's is set last and wins */
	v = cval(&c, "datepattern");
	if (jailopts && (jv = kvlist_get(jailopts, "datepattern")) != NULL)
		v = jv;
	if (v)
		add_strs(&out->datepattern, &out->ndatepattern, v, 1);
	/* usedns, maxlines, prefregex: the jail's go first, the filter's override */
	v = cval(&c, "prefregex");
	if (!v && jailopts)
		v = kvlist_get(jailopts, "prefregex");
	if (v)
		out->prefregex = xstrdup(v);
	v = cval(&c, "maxlines");
	if (!v && jailopts)
		v = kvlist_get(jailopts, "maxlines");
	if (v) {
		long n;
		if (py_int(v, &n) < 0) {
			const struct ini_opt *o = ini_opt_find(&c, "maxlines");
			diag_warn(d, o ? o->file : NULL, o ? o->line : 0,
				  "expected an integer for maxlines, got '%.40s'; using 1", v);
		} else {
			out->maxlines = n < 1 ? 1 : n > 100000 ? 100000 : (unsigned)n;
		}
	}
	v = cval(&c, "usedns");
	if (!v && jailopts)
		v = kvlist_get(jailopts, "usedns");
	out->usedns = xstrdup(v ? v : "warn");
	v = cval(&c, "logtype");
	out->logtype = xstrdup(v && *v ? v : "file");
	v = jailopts ? kvlist_get(jailopts, "logtimezone") : NULL;
	if (!v)
		v = cval(&c, "logtimezone");
	if (v && *v)
		out->logtimezone = xstrdup(v);
	v = jailopts ? kvlist_get(jailopts, "logencoding") : NULL;
	if (!v)
		v = cval(&c, "logencoding");
	if (v && *v)
		out->logencoding = xstrdup(v);
done:
	ini_free(&ini);
	ini_sect_clear(&c);
	free(name);
	kvlist_free(&bracket);
	return rc;
}
