/*
 * interp - %(x)s and <tag> interpolation with fail2ban's exact rules (see
 * interp.h).
 *
 * The lookup map of one interp_get() is Python's ChainMap: an overlay (the
 * section name under __name__ and the "sec/x" values mapped for the text
 * being expanded), then vars, the section, [DEFAULT]. Each nesting level maps
 * the "sec/x" references of its own text, so %(default/x)s works inside a
 * value reached through another reference. Lookups use the lower-cased name
 * while mapped "sec/x" keys keep their case: that is fail2ban's behaviour.
 *
 * SECURITY: nesting depth, replacement counts and the size of every value
 * built are bounded, so hostile configuration cannot loop or exhaust memory.
 */
#include "config/interp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

static void set_err(struct interp_err *err, const struct ini_opt *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(struct interp_err *err, const struct ini_opt *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->file = at ? at->file : NULL;
	err->line = at ? at->line : 0;
}

static int is_word(unsigned char c)
{
	return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       c >= 0x80;
}

static char *lowered(const char *s)
{
	char *r = xstrdup(s);
	for (char *p = r; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return r;
}

static int has_upper(const char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			return 1;
	return 0;
}

struct ictx {
	const struct ini *ini;
	const char *section;
	const struct ini_sect *sect; /* may be NULL for DEFAULT */
	const struct kvlist *vars;
	struct ini_sect overlay;
	const struct ini_opt *top;   /* option being read, for messages */
	const char *option;
	size_t total;
	struct interp_err *err;
};

/* ChainMap lookup of an already lower-cased name. */
static const char *map_get(const struct ictx *c, const char *var)
{
	const struct ini_opt *o = ini_opt_find(&c->overlay, var);
	if (o)
		return o->value;
	if (c->vars) {
		const char *v = kvlist_get(c->vars, var);
		if (v)
			return v;
	}
	if (c->sect && (o = ini_opt_find(c->sect, var)) != NULL)
		return o->value;
	if ((o = ini_opt_find(&c->ini->defaults, var)) != NULL)
		return o->value;
	return NULL;
}

/* `key in map` with the key as written (vars hold lower-cased keys). */
static int map_has(const struct ictx *c, const char *key)
{
	if (ini_opt_find(&c->overlay, key))
		return 1;
	if (c->vars && !has_upper(key) && kvlist_get(c->vars, key))
		return 1;
	if (c->sect && ini_opt_find(c->sect, key))
		return 1;
	return ini_opt_find(&c->ini->defaults, key) != NULL;
}

/* Matches %\(([\w\-]+)/([^)]+)\)s at s; returns its length or 0. */
static size_t match_secref(const char *s, size_t *seclen, size_t *optlen)
{
	if (s[0] != '%' || s[1] != '(')
		return 0;
	size_t k = 2;
	while (is_word((unsigned char)s[k]) || s[k] == '-')
		k++;
	if (k == 2 || s[k] != '/')
		return 0;
	size_t m = k + 1;
	while (s[m] && s[m] != ')')
		m++;
	if (m == k + 1 || s[m] != ')' || s[m + 1] != 's')
		return 0;
	*seclen = k - 2;
	*optlen = m - k - 1;
	return m + 2;
}

static void map_section_options(struct ictx *c, const char *rest)
{
	if (!strchr(rest, '/') || !strstr(rest, "%("))
		return;
	for (size_t i = 0; rest[i];) {
		size_t sl, ol;
		size_t n = match_secref(rest + i, &sl, &ol);
		if (!n) {
			i++;
			continue;
		}
		char *sopt = xstrndup(rest + i + 2, sl + 1 + ol);
		char *sec = xstrndup(rest + i + 2, sl);
		char *opt = xstrndup(rest + i + 3 + sl, ol);
		i += n;
		if (!map_has(c, sopt)) {
			char *lsec = lowered(sec);
			const struct ini_opt *v = NULL;
			int usedef = 0, skip = 0;
			if (strcmp(lsec, "default") == 0) {
				usedef = 1;
			} else if (strcmp(lsec, "known") == 0) {
				char *kn = xasprintf("KNOWN/%s", c->section);
				const struct ini_sect *ks = ini_sect_find(c->ini, kn);
				free(kn);
				v = ks ? ini_opt_find(ks, opt) : NULL;
				usedef = v == NULL;
			} else {
				const struct ini_sect *s = ini_sect_find(c->ini, sec);
				if (!s)
					skip = 1;
				else if (!(v = ini_opt_find(s, opt)))
					usedef = 1;
			}
			if (!skip && usedef)
				v = ini_opt_find(&c->ini->defaults, opt);
			if (!skip && v)
				ini_opt_copy(&c->overlay, sopt, v);
			free(lsec);
		}
		free(sopt);
		free(sec);
		free(opt);
	}
}

static int interpolate(struct ictx *c, struct strbuf *acc, const char *rest, int depth)
{
	if (depth > INTERP_MAX_DEPTH) {
		set_err(c->err, c->top,
			"expected %%(..)s references nested at most %d deep in option '%s' of [%s]",
			INTERP_MAX_DEPTH, c->option, c->section);
		return INTERP_ERROR;
	}
	ini_opt_set(&c->overlay, "__name__", c->section, NULL, 0);
	map_section_options(c, rest);
	while (*rest) {
		const char *p = strchr(rest, '%');
		if (!p) {
			strbuf_adds(acc, rest);
			break;
		}
		strbuf_add(acc, rest, (size_t)(p - rest));
		if (p[1] == '%') {
			strbuf_addc(acc, '%');
			rest = p + 2;
		} else if (p[1] == '(') {
			const char *q = p + 2;
			while (*q && *q != ')')
				q++;
			if (q == p + 2 || q[0] != ')' || q[1] != 's') {
				set_err(c->err, c->top,
					"expected '%%(name)s' in option '%s' of [%s], found '%.40s'",
					c->option, c->section, p);
				return INTERP_ERROR;
			}
			char *name = xstrndup(p + 2, (size_t)(q - p - 2));
			char *var = lowered(name);
			const char *v = map_get(c, var);
			if (!v) {
				set_err(c->err, c->top,
					"unknown reference %%(%s)s in option '%s' of [%s]", name,
					c->option, c->section);
				free(name);
				free(var);
				return INTERP_ERROR;
			}
			free(name);
			free(var);
			rest = q + 2;
			if (strchr(v, '%')) {
				/* v may live in the overlay, which the nested level changes */
				char *copy = xstrdup(v);
				int rc = interpolate(c, acc, copy, depth + 1);
				free(copy);
				if (rc != INTERP_OK)
					return rc;
			} else {
				strbuf_adds(acc, v);
			}
		} else {
			set_err(c->err, c->top,
				"expected '%%%%' or '%%(name)s' in option '%s' of [%s], found '%.40s'",
				c->option, c->section, p);
			return INTERP_ERROR;
		}
		if (acc->len > INTERP_MAX_VALUE) {
			set_err(c->err, c->top, "expected option '%s' of [%s] to expand to less than %u bytes",
				c->option, c->section, (unsigned)INTERP_MAX_VALUE);
			return INTERP_ERROR;
		}
	}
	return INTERP_OK;
}

int interp_get(const struct ini *ini, const char *section, const char *option,
	       const struct kvlist *vars, int raw, char **out, const struct ini_opt **where,
	       struct interp_err *err)
{
	*out = NULL;
	if (where)
		*where = NULL;
	const struct ini_sect *sect = ini_sect_find(ini, section);
	if (!sect && strcmp(section, "DEFAULT") != 0)
		return INTERP_NOSECTION;
	char *opt = lowered(option);
	const char *value = NULL;
	const struct ini_opt *o = NULL;
	if (vars)
		value = kvlist_get(vars, opt);
	if (!value && sect && (o = ini_opt_find(sect, opt)) != NULL)
		value = o->value;
	if (!value && !o && (o = ini_opt_find(&ini->defaults, opt)) != NULL)
		value = o->value;
	if (!value) {
		free(opt);
		return INTERP_NOOPTION;
	}
	if (where)
		*where = o;
	if (raw) {
		*out = xstrdup(value);
		free(opt);
		return INTERP_OK;
	}
	struct ictx c;
	memset(&c, 0, sizeof c);
	c.ini = ini;
	c.section = section;
	c.sect = sect;
	c.vars = vars;
	c.top = o;
	c.option = opt;
	c.err = err;
	struct strbuf acc = STRBUF_INIT;
	int rc = interpolate(&c, &acc, value, 1);
	ini_sect_clear(&c.overlay);
	free(opt);
	if (rc != INTERP_OK) {
		strbuf_free(&acc);
		return rc;
	}
	*out = strbuf_detach(&acc);
	return INTERP_OK;
}

int interp_get_ex(const struct ini *ini, const char *section, const char *option,
		  const struct kvlist *vars, char **out, const struct ini_opt **where,
		  struct interp_err *err)
{
	const char *slash = strchr(option, '/');
	if (slash) {
		/* ^([\w\-]+)/([^\s>]+)$ */
		size_t k = 0;
		while (is_word((unsigned char)option[k]) || option[k] == '-')
			k++;
		int ok = k > 0 && option[k] == '/' && option[k + 1];
		for (size_t i = k + 1; ok && option[i]; i++)
			if (option[i] == '>' || option[i] == ' ' ||
			    (option[i] >= '\t' && option[i] <= '\r') ||
			    (option[i] >= 0x1c && option[i] <= 0x1f))
				ok = 0;
		if (ok) {
			char *sec = xstrndup(option, k);
			const char *opt = option + k + 1;
			char *lsec = lowered(sec);
			char *cands[2] = {NULL, NULL};
			if (strcmp(lsec, "known") == 0) {
				cands[0] = xasprintf("KNOWN/%s", section);
				cands[1] = xstrdup(section);
			} else if (strcmp(lsec, "default") == 0) {
				cands[0] = xstrdup("DEFAULT");
			} else {
				cands[0] = xstrdup(sec);
			}
			int rc = INTERP_NOOPTION;
			for (int i = 0; i < 2 && cands[i]; i++) {
				rc = interp_get(ini, cands[i], opt, NULL, 0, out, where, err);
				if (rc == INTERP_OK || rc == INTERP_ERROR)
					break;
			}
			free(cands[0]);
			free(cands[1]);
			free(sec);
			free(lsec);
			if (rc == INTERP_OK || rc == INTERP_ERROR)
				return rc;
		}
	}
	return interp_get(ini, section, option, vars, 0, out, where, err);
}

/* ---- <tag> substitution ---- */

/* Finds <([^ <>]+)> at or after from; returns 1 with the tag bounds. */
static int tag_search(const char *v, size_t from, size_t *start, size_t *end)
{
	const char *p = v + from;
	while ((p = strchr(p, '<')) != NULL) {
		const char *q = p + 1;
		while (*q && *q != ' ' && *q != '<' && *q != '>')
			q++;
		if (*q == '>' && q > p + 1) {
			*start = (size_t)(p - v);
			*end = (size_t)(q - v) + 1;
			return 1;
		}
		p = *q == '<' ? q : p + 1;
		if (!*q)
			return 0;
	}
	return 0;
}

struct counts {
	char **tag;
	unsigned *n;
	size_t len, cap;
	int present;
};

static unsigned *count_slot(struct counts *c, const char *tag, int create)
{
	for (size_t i = 0; i < c->len; i++)
		if (strcmp(c->tag[i], tag) == 0)
			return &c->n[i];
	if (!create)
		return NULL;
	size_t cap = c->cap;
	c->tag = xgrow(c->tag, &cap, c->len, sizeof *c->tag);
	c->n = xgrow(c->n, &c->cap, c->len, sizeof *c->n);
	c->tag[c->len] = xstrdup(tag);
	c->n[c->len] = 0;
	return &c->n[c->len++];
}

static void counts_free(struct counts *c)
{
	for (size_t i = 0; i < c->len; i++)
		free(c->tag[i]);
	free(c->tag);
	free(c->n);
	memset(c, 0, sizeof *c);
}

static int in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

/* str.replace(old, new) over every non-overlapping occurrence. A plain loop:
 * values can be megabytes, and repeated strstr() calls rescan the tail. */
static char *replace_all(const char *v, const char *old, const char *rep, size_t *outlen)
{
	struct strbuf b = STRBUF_INIT;
	size_t ol = strlen(old), rl = strlen(rep), vl = strlen(v);
	size_t i = 0, from = 0;
	while (ol && i + ol <= vl) {
		if (v[i] == old[0] && memcmp(v + i, old, ol) == 0) {
			strbuf_add(&b, v + from, i - from);
			strbuf_add(&b, rep, rl);
			i += ol;
			from = i;
			if (b.len > INTERP_MAX_VALUE)
				break;
		} else {
			i++;
		}
	}
	strbuf_add(&b, v + from, vl - from);
	*outlen = b.len;
	return strbuf_detach(&b);
}

int interp_tags(struct ini_sect *tags, const char *const *ignore, interp_tag_fn fn, void *ctx,
		struct interp_err *err)
{
	size_t n = tags->n;
	char *done = xcalloc(n ? n : 1, 1);
	struct counts *rep = xcalloc(n ? n : 1, sizeof *rep);
	int rc = 0;
	size_t work = 0; /* bytes built so far: bounds the cost of expansion bombs */
	for (;;) {
		int again = 0;
		for (size_t i = 0; i < n && rc == 0; i++) {
			const char *tag = tags->opts[i].key;
			if (done[i] || in_list(ignore, tag))
				continue;
			const char *orgval = tags->opts[i].value ? tags->opts[i].value : "None";
			char *value = xstrdup(orgval);
			struct counts fresh;
			memset(&fresh, 0, sizeof fresh);
			struct counts *rplc = rep[i].present ? &rep[i] : &fresh;
			size_t s, e;
			int found = tag_search(value, 0, &s, &e);
			while (found) {
				char *rtag = xstrndup(value + s + 1, e - s - 2);
				if (in_list(ignore, rtag)) {
					free(rtag);
					found = tag_search(value, e, &s, &e);
					continue;
				}
				unsigned *cnt = count_slot(rplc, rtag, 0);
				if (strcmp(rtag, tag) == 0 || (cnt ? *cnt : 1) > INTERP_MAX_TAG_REPLACE) {
					set_err(err, &tags->opts[i],
						"expected <tag> definitions without self reference: "
						"<%s> cannot be resolved in '%s'", rtag, tag);
					free(rtag);
					rc = INTERP_ERROR;
					break;
				}
				const struct ini_opt *o = ini_opt_find(tags, rtag);
				char *repl = o && o->value ? xstrdup(o->value) : NULL;
				if (!repl && fn) {
					int failed = 0;
					repl = fn(ctx, rtag, &failed, err);
					if (failed) {
						free(rtag);
						rc = INTERP_ERROR;
						break;
					}
				}
				if (!repl) {
					free(rtag);
					found = tag_search(value, e, &s, &e);
					continue;
				}
				char *pat = xasprintf("<%s>", rtag);
				size_t nl;
				char *nv = replace_all(value, pat, repl, &nl);
				free(pat);
				free(repl);
				free(value);
				value = nv;
				work += nl;
				if (nl > INTERP_MAX_VALUE || work > INTERP_MAX_WORK) {
					set_err(err, &tags->opts[i],
						"expected <%s> to expand to less than %u bytes", tag,
						(unsigned)INTERP_MAX_VALUE);
					free(rtag);
					rc = INTERP_ERROR;
					break;
				}
				(*count_slot(rplc, rtag, 1))++;
				free(rtag);
				found = tag_search(value, s, &s, &e);
			}
			if (rc == 0 && strcmp(orgval, value) != 0) {
				size_t s2, e2;
				if (tag_search(value, 0, &s2, &e2)) {
					if (rplc == &fresh) {
						rep[i] = fresh;
						rep[i].present = 1;
						memset(&fresh, 0, sizeof fresh);
					}
					again = 1;
				}
				free(tags->opts[i].value);
				tags->opts[i].value = value;
				value = NULL;
			}
			if (rc == 0 && tags->opts[i].value && !strchr(tags->opts[i].value, '<'))
				done[i] = 1;
			counts_free(&fresh);
			free(value);
		}
		if (rc || !again)
			break;
	}
	for (size_t i = 0; i < n; i++)
		counts_free(&rep[i]);
	free(rep);
	free(done);
	return rc;
}

char *interp_definition_tag(void *ctx, const char *tag, int *failed, struct interp_err *err)
{
	struct interp_defsrc *src = ctx;
	const struct ini_opt *c = ini_opt_find(src->cache, tag);
	if (c)
		return c->value ? xstrdup(c->value) : NULL;
	char *v = NULL;
	int rc = interp_get_ex(src->ini, "Definition", tag, src->popts, &v, NULL, err);
	if (rc == INTERP_ERROR) {
		*failed = 1;
		return NULL;
	}
	ini_opt_set(src->cache, tag, rc == INTERP_OK ? v : NULL, NULL, 0);
	return v;
}

char *interp_conditional_base(const char *k)
{
	size_t i = 0;
	while (k[i] && (k[i] == '_' || (k[i] >= '0' && k[i] <= '9') ||
			((k[i] | 0x20) >= 'a' && (k[i] | 0x20) <= 'z') || (unsigned char)k[i] >= 0x80))
		i++;
	if (i == 0 || k[i] != '?' || !k[i + 1])
		return NULL;
	return xstrndup(k, i);
}
