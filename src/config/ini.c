/*
 * ini - fail2ban's INI dialect and unit layering (see ini.h).
 *
 * Hand-written because no C INI library reproduces configparser's rules that
 * fail2ban trees rely on: continuation by deeper indentation (not by a
 * trailing backslash), blank lines kept inside values, `;` comments only at a
 * line start or after whitespace, `:` as a second delimiter, the lazy split
 * at the first delimiter, duplicate keys within one file being errors while a
 * later file silently overrides, and the [INCLUDES] before/after graph.
 *
 * DIAGNOSTICS: every problem is "file:line: what was expected". A file with
 * errors still contributes what was read before the error.
 * SECURITY: files are capped at INI_MAX_FILE; include recursion is bounded.
 */
#include "config/ini.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/interp.h"
#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#define INCLUDE_MAX_DEPTH 32
#define INCLUDE_MAX_FILES 4096

/* ---- ordered maps ---- */

static void opt_free(struct ini_opt *o)
{
	free(o->key);
	free(o->value);
	free(o->file);
	free(o->lines);
}

void ini_sect_clear(struct ini_sect *s)
{
	for (size_t i = 0; i < s->n; i++)
		opt_free(&s->opts[i]);
	free(s->opts);
	free(s->name);
	free(s->file);
	memset(s, 0, sizeof *s);
}

void ini_free(struct ini *ini)
{
	if (!ini)
		return;
	ini_sect_clear(&ini->defaults);
	for (size_t i = 0; i < ini->n; i++)
		ini_sect_clear(&ini->sects[i]);
	free(ini->sects);
	memset(ini, 0, sizeof *ini);
}

struct ini_sect *ini_sect_find(const struct ini *ini, const char *name)
{
	for (size_t i = 0; i < ini->n; i++)
		if (strcmp(ini->sects[i].name, name) == 0)
			return &ini->sects[i];
	return NULL;
}

struct ini_sect *ini_sect_add(struct ini *ini, const char *name)
{
	struct ini_sect *s = ini_sect_find(ini, name);
	if (s)
		return s;
	ini->sects = xgrow(ini->sects, &ini->cap, ini->n, sizeof *ini->sects);
	s = &ini->sects[ini->n++];
	memset(s, 0, sizeof *s);
	s->name = xstrdup(name);
	return s;
}

struct ini_opt *ini_opt_find(const struct ini_sect *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->opts[i].key, key) == 0)
			return &s->opts[i];
	return NULL;
}

static struct ini_opt *opt_slot(struct ini_sect *s, const char *key)
{
	struct ini_opt *o = ini_opt_find(s, key);
	if (o) {
		free(o->value);
		free(o->file);
		free(o->lines);
		o->value = NULL;
		o->file = NULL;
		o->lines = NULL;
		o->nlines = 0;
		o->line = 0;
		return o;
	}
	s->opts = xgrow(s->opts, &s->cap, s->n, sizeof *s->opts);
	o = &s->opts[s->n++];
	memset(o, 0, sizeof *o);
	o->key = xstrdup(key);
	return o;
}

struct ini_opt *ini_opt_set(struct ini_sect *s, const char *key, const char *value,
			    const char *file, unsigned line)
{
	struct ini_opt *o = opt_slot(s, key);
	o->value = value ? xstrdup(value) : NULL;
	o->file = file ? xstrdup(file) : NULL;
	o->line = line;
	return o;
}

struct ini_opt *ini_opt_copy(struct ini_sect *s, const char *key, const struct ini_opt *src)
{
	/* src may live in s itself: copy before the slot is recycled. */
	char *v = src->value ? xstrdup(src->value) : NULL;
	char *f = src->file ? xstrdup(src->file) : NULL;
	unsigned *lines = NULL;
	if (src->nlines) {
		lines = xmalloc(src->nlines * sizeof *lines);
		memcpy(lines, src->lines, src->nlines * sizeof *lines);
	}
	size_t nlines = src->nlines;
	unsigned line = src->line;
	struct ini_opt *o = opt_slot(s, key);
	o->value = v;
	o->file = f;
	o->lines = lines;
	o->nlines = nlines;
	o->line = line;
	return o;
}

/* ---- one file ---- */

/* Python's str.isspace() for the ASCII range. */
static int py_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int valid_utf8(const unsigned char *s, size_t n, size_t *bad)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			*bad = i;
			return 0;
		}
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80) {
				*bad = i;
				return 0;
			}
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			*bad = i;
			return 0;
		}
		i += k + 1;
	}
	return 1;
}

/* The value lines of the option being read, joined when the file ends. */
struct pending {
	struct strbuf val;
	unsigned *lines;
	size_t nlines, cap;
	struct ini_sect *sect;
	char *key;
	unsigned line;
};

static void pending_flush(struct pending *p, const char *file)
{
	if (!p->key)
		return;
	/* '\n'.join(lines).rstrip(): trailing blank lines go, and their numbers. */
	size_t len = p->val.len;
	const char *s = strbuf_str(&p->val);
	while (len > 0 && py_space((unsigned char)s[len - 1]))
		len--;
	size_t keep = 1;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\n')
			keep++;
	char *v = xstrndup(s, len);
	struct ini_opt *o = ini_opt_set(p->sect, p->key, v, file, p->line);
	free(v);
	o->lines = p->lines;
	o->nlines = keep < p->nlines ? keep : p->nlines;
	p->lines = NULL;
	p->nlines = p->cap = 0;
	strbuf_reset(&p->val);
	free(p->key);
	p->key = NULL;
}

static void pending_add(struct pending *p, const char *s, size_t n, unsigned line)
{
	if (p->nlines)
		strbuf_addc(&p->val, '\n');
	strbuf_add(&p->val, s, n);
	p->lines = xgrow(p->lines, &p->cap, p->nlines, sizeof *p->lines);
	p->lines[p->nlines++] = line;
}

/* Keys and sections seen in this file: configparser refuses duplicates
 * within one file (but not across files). */
struct seen {
	char **v;
	size_t n, cap;
};

static int seen_check_add(struct seen *s, const char *sect, const char *key)
{
	char *k = key ? xasprintf("%s\n%s", sect, key) : xasprintf("%s", sect);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], k) == 0) {
			free(k);
			return 1;
		}
	s->v = xgrow(s->v, &s->cap, s->n, sizeof *s->v);
	s->v[s->n++] = k;
	return 0;
}

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

int ini_parse(struct ini *out, const char *name, const char *buf, size_t len, struct diag *d)
{
	size_t bad;
	if (!valid_utf8((const unsigned char *)buf, len, &bad)) {
		unsigned ln = 1;
		for (size_t i = 0; i < bad; i++)
			ln += buf[i] == '\n';
		diag_error(d, name, ln, "expected UTF-8 text, found an invalid byte sequence");
		return -1;
	}
	int rc = 0;
	struct pending p = {STRBUF_INIT, NULL, 0, 0, NULL, NULL, 0};
	struct seen seen = {NULL, 0, 0};
	struct ini_sect *cur = NULL;
	char *cursect = NULL; /* name of cur, for the duplicate check */
	size_t indent_level = 0;
	unsigned lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		/* Universal newlines: "\n", "\r\n" and "\r" all end a line. */
		size_t end = pos;
		while (end < len && buf[end] != '\n' && buf[end] != '\r')
			end++;
		size_t next = end;
		if (next < len) {
			if (buf[next] == '\r' && next + 1 < len && buf[next + 1] == '\n')
				next += 2;
			else
				next++;
		}
		const char *line = buf + pos;
		size_t n = end - pos;
		pos = next;
		lineno++;
		if (memchr(line, '\0', n)) {
			diag_error(d, name, lineno, "expected text, found a NUL byte");
			rc = -1;
			continue;
		}
		/* Inline comment: ';' at the start or after whitespace. */
		size_t cstart = n;
		int has_comment = 0;
		for (size_t i = 0; i < n; i++)
			if (line[i] == ';' && (i == 0 || py_space((unsigned char)line[i - 1]))) {
				cstart = i;
				has_comment = 1;
				break;
			}
		size_t a = 0;
		while (a < n && py_space((unsigned char)line[a]))
			a++;
		if (a < n && (line[a] == '#' || line[a] == ';')) {
			cstart = 0;
			has_comment = 1;
		}
		size_t b = cstart;
		while (b > a && py_space((unsigned char)line[b - 1]))
			b--;
		if (b <= a) {
			/* Blank line: part of the value being read; a comment line is not. */
			if (!has_comment && cur && p.key)
				pending_add(&p, "", 0, lineno);
			continue;
		}
		const char *v = line + a;
		size_t vn = b - a;
		size_t indent = a;
		if (cur && p.key && indent > indent_level) {
			pending_add(&p, v, vn, lineno);
			continue;
		}
		indent_level = indent;
		if (v[0] == '[') {
			/* configparser takes everything up to the last ']' as the name. */
			size_t close = 0;
			for (size_t i = vn; i-- > 2;)
				if (v[i] == ']') {
					close = i;
					break;
				}
			if (close) {
				pending_flush(&p, name);
				char *sname = xstrndup(v + 1, close - 1);
				if (strcmp(sname, "DEFAULT") == 0) {
					cur = &out->defaults;
				} else {
					if (seen_check_add(&seen, sname, NULL)) {
						diag_error(d, name, lineno,
							   "expected each section once per file, "
							   "[%s] appears again", sname);
						free(sname);
						rc = -1;
						break;
					}
					cur = ini_sect_find(out, sname);
					if (!cur) {
						cur = ini_sect_add(out, sname);
						cur->file = xstrdup(name);
						cur->line = lineno;
					}
				}
				free(cursect);
				cursect = sname;
				continue;
			}
			if (!memchr(v, '=', vn) && !memchr(v, ':', vn)) {
				diag_error(d, name, lineno,
					   "expected ']' to close the section header");
				rc = -1;
				continue;
			}
		}
		if (!cur) {
			diag_error(d, name, lineno,
				   "expected a section header like [Definition] before the first option");
			rc = -1;
			break;
		}
		size_t delim = 0;
		while (delim < vn && v[delim] != '=' && v[delim] != ':')
			delim++;
		if (delim == vn) {
			pending_flush(&p, name);
			if (indent > 0)
				diag_error(d, name, lineno,
					   "expected 'key = value' (an indented line continues a value "
					   "only after a key)");
			else
				diag_error(d, name, lineno, "expected 'key = value' or '[section]'");
			rc = -1;
			continue;
		}
		size_t kend = delim;
		while (kend > 0 && py_space((unsigned char)v[kend - 1]))
			kend--;
		if (kend == 0) {
			diag_error(d, name, lineno, "expected an option name before '%c'", v[delim]);
			rc = -1;
		}
		char *key = xstrndup(v, kend);
		lower(key);
		if (seen_check_add(&seen, cursect, key)) {
			diag_error(d, name, lineno,
				   "expected each option once per section, '%s' in [%s] appears again",
				   key, cursect);
			free(key);
			rc = -1;
			break;
		}
		pending_flush(&p, name);
		size_t vs = delim + 1;
		while (vs < vn && py_space((unsigned char)v[vs]))
			vs++;
		p.sect = cur;
		p.key = key;
		p.line = lineno;
		pending_add(&p, v + vs, vn - vs, lineno);
	}
	pending_flush(&p, name);
	strbuf_free(&p.val);
	free(p.lines);
	free(p.key);
	free(cursect);
	seen_free(&seen);
	return rc;
}

int ini_parse_file(struct ini *out, const char *path, struct diag *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		diag_error(d, path, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if ((unsigned long long)st.st_size > INI_MAX_FILE) {
		close(fd);
		diag_error(d, path, 0, "expected a configuration file under %u bytes",
			   (unsigned)INI_MAX_FILE);
		return -1;
	}
	struct strbuf b = STRBUF_INIT;
	char tmp[65536];
	for (;;) {
		ssize_t r = read(fd, tmp, sizeof tmp);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			diag_error(d, path, 0, "cannot read: %s", strerror(errno));
			close(fd);
			strbuf_free(&b);
			return -1;
		}
		if (r == 0)
			break;
		if (b.len + (size_t)r > INI_MAX_FILE) {
			close(fd);
			strbuf_free(&b);
			diag_error(d, path, 0, "expected a configuration file under %u bytes",
				   (unsigned)INI_MAX_FILE);
			return -1;
		}
		strbuf_add(&b, tmp, (size_t)r);
	}
	close(fd);
	int rc = ini_parse(out, path, strbuf_str(&b), b.len, d);
	strbuf_free(&b);
	return rc < 0 ? -1 : 1;
}

/* ---- units and includes ---- */

struct parsed {
	char *path;
	struct ini ini;
	int ok; /* 1 read, 0 missing, -1 errors */
};

struct unitctx {
	struct parsed *files;
	size_t n, cap;
	struct strvec {
		char **v;
		size_t n, cap;
	} order;
	struct diag *d;
	int failed;
};

static void sv_add(struct strvec *v, const char *s)
{
	v->v = xgrow(v->v, &v->cap, v->n, sizeof *v->v);
	v->v[v->n++] = xstrdup(s);
}

static int sv_has(const struct strvec *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], s) == 0)
			return 1;
	return 0;
}

static void sv_free(struct strvec *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	memset(v, 0, sizeof *v);
}

static struct parsed *get_parsed(struct unitctx *c, const char *path)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->files[i].path, path) == 0)
			return &c->files[i];
	c->files = xgrow(c->files, &c->cap, c->n, sizeof *c->files);
	struct parsed *p = &c->files[c->n++];
	memset(p, 0, sizeof *p);
	p->path = xstrdup(path);
	p->ok = ini_parse_file(&p->ini, path, c->d);
	if (p->ok < 0)
		c->failed = 1;
	return p;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void get_includes(struct unitctx *c, const struct strvec *names, const struct strvec *seen,
			 struct strvec *out, int depth);

/* One resource: its "before" includes, itself, its "after" includes. */
static void includes_one(struct unitctx *c, const char *resource, const struct strvec *seen,
			 struct strvec *out, int depth)
{
	struct parsed *p = get_parsed(c, resource);
	if (p->ok == 0)
		return;
	struct strvec lists[2] = {{NULL, 0, 0}, {NULL, 0, 0}};
	static const char *const which[2] = {"before", "after"};
	struct ini_sect *inc = ini_sect_find(&p->ini, "INCLUDES");
	char *dir = xstrdup(resource);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	else
		dir[0] = '\0';
	for (int w = 0; inc && w < 2; w++) {
		const struct ini_opt *o = ini_opt_find(inc, which[w]);
		if (!o)
			continue;
		char *val = NULL;
		struct interp_err err;
		if (interp_get(&p->ini, "INCLUDES", which[w], NULL, 0, &val, NULL, &err) != 0) {
			diag_error(c->d, err.file, err.line, "%s", err.msg);
			c->failed = 1;
			continue;
		}
		char *save = NULL;
		unsigned idx = 0;
		for (char *s = val;; s = NULL) {
			/* split('\n') keeps empty items, which name the directory itself */
			char *tok = s ? s : save;
			if (!tok)
				break;
			char *nl = strchr(tok, '\n');
			if (nl) {
				*nl = '\0';
				save = nl + 1;
			} else {
				save = NULL;
			}
			unsigned ln = idx < o->nlines ? o->lines[idx] : o->line;
			idx++;
			char *r = tok[0] == '/' ? xstrdup(tok) : xasprintf("%s%s", dir, tok);
			if (sv_has(seen, r)) {
				free(r);
				if (!save)
					break;
				continue;
			}
			if (*tok && !is_file(r)) {
				size_t tl = strlen(tok);
				/* "after = X.local" hooks for customisation are optional. */
				if (!(tl >= 6 && strcmp(tok + tl - 6, ".local") == 0)) {
					diag_error(c->d, o->file, ln, "included file '%s' not found", r);
					c->failed = 1;
				}
			} else if (depth >= INCLUDE_MAX_DEPTH) {
				diag_error(c->d, o->file, ln, "expected includes nested at most %d deep",
					   INCLUDE_MAX_DEPTH);
				c->failed = 1;
			} else if (*tok) {
				struct strvec s2 = {NULL, 0, 0}, one = {NULL, 0, 0};
				for (size_t i = 0; i < seen->n; i++)
					sv_add(&s2, seen->v[i]);
				sv_add(&s2, resource);
				sv_add(&one, r);
				get_includes(c, &one, &s2, &lists[w], depth + 1);
				sv_free(&s2);
				sv_free(&one);
			}
			free(r);
			if (!save)
				break;
		}
		free(val);
	}
	free(dir);
	for (size_t i = 0; i < lists[0].n; i++)
		if (out->n < INCLUDE_MAX_FILES)
			sv_add(out, lists[0].v[i]);
	if (out->n < INCLUDE_MAX_FILES)
		sv_add(out, resource);
	for (size_t i = 0; i < lists[1].n; i++)
		if (out->n < INCLUDE_MAX_FILES)
			sv_add(out, lists[1].v[i]);
	sv_free(&lists[0]);
	sv_free(&lists[1]);
}

/* Every name is followed by its X.local sibling when that exists and is not
 * already listed. */
static void get_includes(struct unitctx *c, const struct strvec *names, const struct strvec *seen,
			 struct strvec *out, int depth)
{
	struct strvec exp = {NULL, 0, 0};
	for (size_t i = 0; i < names->n; i++) {
		const char *f = names->v[i];
		sv_add(&exp, f);
		/* os.path.splitext: the last dot of the base name, leading dots excluded */
		const char *slash = strrchr(f, '/');
		const char *bn = slash ? slash + 1 : f;
		while (*bn == '.')
			bn++;
		const char *dot = strrchr(bn, '.');
		size_t stem = dot ? (size_t)(dot - f) : strlen(f);
		char *loc = xasprintf("%.*s.local", (int)stem, f);
		if (!sv_has(names, loc) && is_file(loc))
			sv_add(&exp, loc);
		free(loc);
	}
	for (size_t i = 0; i < exp.n; i++)
		includes_one(c, exp.v[i], seen, out, depth);
	sv_free(&exp);
}

/* Folds a conditional section name "Init?family=inet6" into base and suffix. */
static int split_conditional(const char *name, size_t *baselen)
{
	size_t i = 0;
	while (name[i] && (name[i] == '_' || (name[i] >= '0' && name[i] <= '9') ||
			   ((name[i] | 0x20) >= 'a' && (name[i] | 0x20) <= 'z') ||
			   (unsigned char)name[i] >= 0x80))
		i++;
	if (i == 0 || name[i] != '?' || name[i + 1] == '\0')
		return 0;
	*baselen = i;
	return 1;
}

static void merge_file(struct ini *out, const struct ini *f)
{
	for (size_t i = 0; i < f->defaults.n; i++)
		ini_opt_copy(&out->defaults, f->defaults.opts[i].key, &f->defaults.opts[i]);
	for (size_t i = 0; i < f->n; i++) {
		const struct ini_sect *s = &f->sects[i];
		size_t bl;
		char *base;
		const char *cond = "";
		if (split_conditional(s->name, &bl)) {
			base = xstrndup(s->name, bl);
			cond = s->name + bl;
		} else {
			base = xstrdup(s->name);
		}
		struct ini_sect *s2 = ini_sect_find(out, base);
		if (s2) {
			/* remember what is about to be overridden, for known/ */
			char *kn = xasprintf("KNOWN/%s", base);
			struct ini_sect *known = ini_sect_add(out, kn);
			free(kn);
			s2 = ini_sect_find(out, base); /* ini_sect_add may have moved it */
			for (size_t j = 0; j < s->n; j++) {
				char *k = xasprintf("%s%s", s->opts[j].key, cond);
				const struct ini_opt *prev = ini_opt_find(s2, k);
				if (prev)
					ini_opt_copy(known, k, prev);
				free(k);
			}
		} else {
			s2 = ini_sect_add(out, base);
			s2->file = s->file ? xstrdup(s->file) : NULL;
			s2->line = s->line;
		}
		for (size_t j = 0; j < s->n; j++) {
			char *k = xasprintf("%s%s", s->opts[j].key, cond);
			ini_opt_copy(s2, k, &s->opts[j]);
			free(k);
		}
		free(base);
	}
}

static int read_list(struct ini *out, const struct strvec *files, struct diag *d)
{
	struct unitctx c;
	memset(&c, 0, sizeof c);
	c.d = d;
	struct strvec seen = {NULL, 0, 0};
	get_includes(&c, files, &seen, &c.order, 0);
	int nread = 0;
	for (size_t i = 0; i < c.order.n; i++) {
		struct parsed *p = get_parsed(&c, c.order.v[i]);
		if (p->ok == 0)
			continue;
		nread++;
		merge_file(out, &p->ini);
	}
	int failed = c.failed;
	for (size_t i = 0; i < c.n; i++) {
		free(c.files[i].path);
		ini_free(&c.files[i].ini);
	}
	free(c.files);
	sv_free(&c.order);
	return failed ? -1 : nread;
}

int ini_read_files(struct ini *out, char *const *files, size_t nfiles, struct diag *d)
{
	struct strvec v = {NULL, 0, 0};
	for (size_t i = 0; i < nfiles; i++)
		sv_add(&v, files[i]);
	int rc = read_list(out, &v, d);
	sv_free(&v);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* glob("DIR/" "*SUFFIX") sorted; hidden files are skipped as glob does. */
static void glob_dir(const char *dir, const char *suffix, struct strvec *out)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return;
	struct strvec tmp = {NULL, 0, 0};
	struct dirent *e;
	size_t sl = strlen(suffix);
	while ((e = readdir(dh)) != NULL) {
		size_t nl = strlen(e->d_name);
		if (e->d_name[0] == '.' || nl < sl || strcmp(e->d_name + nl - sl, suffix) != 0)
			continue;
		if (tmp.n >= INCLUDE_MAX_FILES)
			break;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		sv_add(&tmp, p);
		free(p);
	}
	closedir(dh);
	if (tmp.n)
		qsort(tmp.v, tmp.n, sizeof *tmp.v, cmp_str);
	for (size_t i = 0; i < tmp.n; i++)
		sv_add(out, tmp.v[i]);
	sv_free(&tmp);
}

int ini_read_unit(struct ini *out, const char *base, struct diag *d)
{
	struct strvec cand = {NULL, 0, 0}, files = {NULL, 0, 0};
	char *p = xasprintf("%s.conf", base);
	sv_add(&cand, p);
	free(p);
	char *dir = xasprintf("%s.d", base);
	glob_dir(dir, ".conf", &cand);
	p = xasprintf("%s.local", base);
	sv_add(&cand, p);
	free(p);
	glob_dir(dir, ".local", &cand);
	free(dir);
	for (size_t i = 0; i < cand.n; i++)
		if (access(cand.v[i], F_OK) == 0)
			sv_add(&files, cand.v[i]);
	sv_free(&cand);
	int rc = 0;
	if (files.n)
		rc = read_list(out, &files, d);
	sv_free(&files);
	return rc;
}
