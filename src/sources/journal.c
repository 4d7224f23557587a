/*
 * journal - systemd journal source through libsystemd (see journal.h).
 *
 * One sd_journal handle carries the union of every jail's matches, so
 * journald's field index does the coarse filtering; the per-jail decision is
 * made here on the entry's fields, because after the union nobody can tell
 * which jail's terms an entry satisfied. Field values are copied out of
 * libsystemd (its pointers live only until the next data call) into one
 * reused buffer, so an entry costs no allocation once warm.
 *
 * The line format reproduces fail2ban 1.0.2's FilterSystemd.formatJournalEntry:
 * elements joined by one space: _HOSTNAME (when not empty), then
 * SYSLOG_IDENTIFIER or else _COMM with "[PID]" (SYSLOG_PID or else _PID; the
 * value printed as Python's int() reads it, or as a bytes repr when it is
 * not a number) and ":", for the identifier `kernel` without a PID the
 * monotonic time as "[%12.6f]", then MESSAGE (all its values joined by a
 * space; always present, maybe empty). Newlines become the two characters
 * "\n". Bytes are passed through as they are (fail2ban decodes invalid UTF-8
 * with replacement characters).
 *
 * The `journalmatch` words are split like Python's shlex.split() (POSIX mode),
 * which is what fail2ban's filter reader does.
 */
#include "sources/journal.h"
#include "core/clocks.h"
#include "core/loop.h"
#include "core/sdlib.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_PER_TURN 1000
#define DEF_POLL_MS 1000

struct jreg {
	struct journalmatch m;
	src_line_cb cb;
	void *arg;
};

struct fref {
	size_t off, len;   /* "NAME=value" inside fbuf */
};

struct journalsrc {
	struct loop *loop;
	struct sdlib lib;        /* libsystemd, loaded for this source */
	sd_journal *sd;
	int fd;
	struct journalsrc_opts o;
	struct jreg *reg;
	size_t nreg;
	int started;
	char *cursor;            /* last entry read */
	char *skip;              /* cursor to skip once after a seek */
	uint64_t cont_timer, poll_timer;
	char **want;             /* field names copied out of each entry */
	size_t nwant;
	struct strbuf fbuf;      /* copied fields of the current entry */
	struct fref *fr;
	size_t nfr, capfr;
	struct journalsrc_field *fv;
	size_t capfv;
	struct strbuf line;
};

/* ---- journalmatch parsing ---- */

static int field_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* Splits one line like shlex.split (POSIX): returns the number of words put
 * into *words (malloc'ed), or -1 on an unclosed quote. */
static int shlex_split(const char *s, char ***words, size_t *nw)
{
	struct strbuf w = STRBUF_INIT;
	char **v = NULL;
	size_t n = 0, cap = 0;
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (!*p)
			break;
		int inword = 0;
		strbuf_reset(&w);
		while (*p && !(*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
			inword = 1;
			if (*p == '\\') {
				if (p[1]) {
					strbuf_addc(&w, p[1]);
					p += 2;
				} else {
					p++;   /* a lone trailing backslash: shlex fails too */
					goto bad;
				}
			} else if (*p == '\'') {
				const char *e = strchr(p + 1, '\'');
				if (!e)
					goto bad;
				strbuf_add(&w, p + 1, (size_t)(e - p - 1));
				p = e + 1;
			} else if (*p == '"') {
				p++;
				while (*p && *p != '"') {
					if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
						p++;
					strbuf_addc(&w, *p++);
				}
				if (!*p)
					goto bad;
				p++;
			} else {
				strbuf_addc(&w, *p++);
			}
		}
		if (inword) {
			v = xgrow(v, &cap, n, sizeof *v);
			v[n++] = xstrndup(strbuf_str(&w), w.len);
		}
	}
	strbuf_free(&w);
	*words = v;
	*nw = n;
	return 0;
bad:
	strbuf_free(&w);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -1;
}

void journalmatch_clear(struct journalmatch *m)
{
	for (size_t i = 0; i < m->n; i++) {
		for (size_t k = 0; k < m->g[i].n; k++) {
			free(m->g[i].t[k].field);
			free(m->g[i].t[k].value);
		}
		free(m->g[i].t);
	}
	free(m->g);
	m->g = NULL;
	m->n = 0;
}

static void add_group(struct journalmatch *m, struct journalmatch_group *g)
{
	if (g->n == 0)
		return;   /* journald ignores an empty disjunction too */
	m->g = xrealloc(m->g, (m->n + 1) * sizeof *m->g);
	m->g[m->n++] = *g;
	g->t = NULL;
	g->n = 0;
}

int journalmatch_parse(const char *spec, struct journalmatch *m, char *err, size_t errlen)
{
	m->g = NULL;
	m->n = 0;
	if (!spec)
		return 0;
	const char *line = spec;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t ll = nl ? (size_t)(nl - line) : strlen(line);
		char *l = xstrndup(line, ll);
		line += ll + (nl ? 1 : 0);
		char **w;
		size_t nw;
		if (shlex_split(l, &w, &nw) < 0) {
			snprintf(err, errlen, "journalmatch \"%s\": no closing quotation", l);
			free(l);
			journalmatch_clear(m);
			return -1;
		}
		struct journalmatch_group g = {NULL, 0};
		int bad = 0;
		for (size_t i = 0; i < nw; i++) {
			if (!bad && !strcmp(w[i], "+")) {
				add_group(m, &g);
			} else if (!bad) {
				const char *eq = strchr(w[i], '=');
				if (!eq || !field_name_ok(w[i], (size_t)(eq - w[i]))) {
					snprintf(err, errlen,
						 "journalmatch \"%s\": expected FIELD=VALUE (FIELD of "
						 "A-Z, 0-9, _) or +, got \"%s\"", l, w[i]);
					bad = 1;
				} else {
					g.t = xrealloc(g.t, (g.n + 1) * sizeof *g.t);
					g.t[g.n].field = xstrndup(w[i], (size_t)(eq - w[i]));
					g.t[g.n].value = xstrdup(eq + 1);
					g.t[g.n].vlen = strlen(eq + 1);
					g.n++;
				}
			}
			free(w[i]);
		}
		free(w);
		free(l);
		if (bad) {
			struct journalmatch tmp = {&g, 1};
			if (g.n) {
				tmp.g = xmalloc(sizeof g);
				tmp.g[0] = g;
				journalmatch_clear(&tmp);
			}
			journalmatch_clear(m);
			return -1;
		}
		add_group(m, &g);
	}
	return 0;
}

/* ---- matching and formatting on copied fields ---- */

static const char *field_value(const struct journalsrc_field *f, const char *name, size_t nl,
			       size_t *vlen)
{
	if (f->len > nl && f->data[nl] == '=' && !memcmp(f->data, name, nl)) {
		*vlen = f->len - nl - 1;
		return f->data + nl + 1;
	}
	return NULL;
}

static int entry_has(const struct journalsrc_field *f, size_t n, const char *name,
		     const char *val, size_t vl)
{
	size_t nl = strlen(name), l;
	for (size_t i = 0; i < n; i++) {
		const char *v = field_value(&f[i], name, nl, &l);
		if (v && l == vl && !memcmp(v, val, vl))
			return 1;
	}
	return 0;
}

int journalmatch_fits(const struct journalmatch *m, const struct journalsrc_field *f, size_t n)
{
	if (m->n == 0)
		return 1;
	for (size_t gi = 0; gi < m->n; gi++) {
		const struct journalmatch_group *g = &m->g[gi];
		int ok = 1;
		for (size_t i = 0; i < g->n && ok; i++) {
			const char *fld = g->t[i].field;
			int seen = 0;
			for (size_t k = 0; k < i; k++)
				if (!strcmp(g->t[k].field, fld))
					seen = 1;
			if (seen)
				continue;   /* this field was decided with its first term */
			int any = 0;
			for (size_t k = i; k < g->n && !any; k++)
				if (!strcmp(g->t[k].field, fld) &&
				    entry_has(f, n, fld, g->t[k].value, g->t[k].vlen))
					any = 1;
			ok = any;
		}
		if (ok)
			return 1;
	}
	return 0;
}

static const char *first(const struct journalsrc_field *f, size_t n, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n; i++) {
		const char *v = field_value(&f[i], name, nl, len);
		if (v)
			return v;
	}
	return NULL;
}

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int py_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Python int(s) / int(s, 0) on ASCII input, normalised decimal into out;
 * returns 0 or -1 when Python would raise ValueError. */
static int py_int(const char *s, size_t n, struct strbuf *out)
{
	while (n && py_space(*s))
		s++, n--;
	while (n && py_space(s[n - 1]))
		n--;
	int neg = 0;
	if (n && (*s == '+' || *s == '-')) {
		neg = *s == '-';
		s++, n--;
	}
	if (n == 0)
		return -1;
	/* base 10 with single underscores between digits */
	struct strbuf d = STRBUF_INIT;
	int ok = 1;
	for (size_t i = 0; i < n && ok; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			strbuf_addc(&d, s[i]);
		else if (s[i] == '_' && i > 0 && i + 1 < n && s[i - 1] != '_' && s[i + 1] != '_')
			;
		else
			ok = 0;
	}
	if (ok) {
		const char *p = strbuf_str(&d);
		while (p[0] == '0' && p[1])
			p++;
		if (neg && strcmp(p, "0"))
			strbuf_addc(out, '-');
		strbuf_adds(out, p);
		strbuf_free(&d);
		return 0;
	}
	strbuf_free(&d);
	/* base 0: 0x / 0o / 0b prefixes (a plain decimal failed already) */
	if (n < 3 || s[0] != '0')
		return -1;
	int base = s[1] == 'x' || s[1] == 'X' ? 16 : s[1] == 'o' || s[1] == 'O' ? 8 :
		   s[1] == 'b' || s[1] == 'B' ? 2 : 0;
	if (!base)
		return -1;
	unsigned __int128 v = 0;
	int digits = 0, prev_us = 0;
	for (size_t i = 2; i < n; i++) {
		int c = (unsigned char)s[i], dv;
		if (c == '_') {
			if (prev_us)
				return -1;
			prev_us = 1;
			continue;
		}
		prev_us = 0;
		if (c >= '0' && c <= '9')
			dv = c - '0';
		else if (c >= 'a' && c <= 'f')
			dv = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			dv = c - 'A' + 10;
		else
			return -1;
		if (dv >= base)
			return -1;
		v = v * (unsigned)base + (unsigned)dv;
		if (v >> 120)
			return -1;   /* beyond what we print; never a real PID */
		digits++;
	}
	if (!digits || prev_us)
		return -1;
	char tmp[48];
	int k = (int)sizeof tmp;
	tmp[--k] = '\0';
	do {
		tmp[--k] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v);
	if (neg && strcmp(tmp + k, "0"))
		strbuf_addc(out, '-');
	strbuf_adds(out, tmp + k);
	return 0;
}

/* Python's repr() of a bytes object. */
static void py_bytes_repr(const char *s, size_t n, struct strbuf *out)
{
	int sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
	char q = sq && !dq ? '"' : '\'';
	strbuf_addc(out, 'b');
	strbuf_addc(out, q);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == (unsigned char)q) {
			strbuf_addc(out, '\\');
			strbuf_addc(out, (char)c);
		} else if (c == '\t')
			strbuf_adds(out, "\\t");
		else if (c == '\n')
			strbuf_adds(out, "\\n");
		else if (c == '\r')
			strbuf_adds(out, "\\r");
		else if (c < 0x20 || c >= 0x7f)
			strbuf_addf(out, "\\x%02x", c);
		else
			strbuf_addc(out, (char)c);
	}
	strbuf_addc(out, q);
}

/* python-systemd converts the PID fields with int() on the raw bytes; when that
 * fails the bytes object stays, int(v, 0) is tried, and else "[%s]" prints
 * the bytes repr. */
static void add_pid(struct strbuf *b, const char *v, size_t n)
{
	strbuf_addc(b, '[');
	if (py_int(v, n, b) < 0)
		py_bytes_repr(v, n, b);
	strbuf_addc(b, ']');
}

double journalsrc_format(const struct journalsrc_field *f, size_t n, uint64_t realtime_usec,
			 uint64_t monotonic_usec, struct strbuf *out)
{
	size_t l;
	const char *v;
	strbuf_reset(out);
	int elems = 0;
	v = first(f, n, "_HOSTNAME", &l);
	if (v && l) {
		strbuf_add(out, v, l);
		elems++;
	}
	v = first(f, n, "SYSLOG_IDENTIFIER", &l);
	if (!v || !l)
		v = first(f, n, "_COMM", &l);
	if (v && l) {
		if (elems++)
			strbuf_addc(out, ' ');
		size_t idstart = out->len;
		strbuf_add(out, v, l);
		size_t pl;
		const char *pid = first(f, n, "SYSLOG_PID", &pl);
		struct strbuf num = STRBUF_INIT;
		/* fail2ban falls back to _PID when SYSLOG_PID is missing or
		 * falsy: empty, or a number equal to zero */
		if (!pid || !pl || (py_int(pid, pl, &num) == 0 && !strcmp(strbuf_str(&num), "0")))
			pid = first(f, n, "_PID", &pl);
		strbuf_free(&num);
		int zero = 0;
		if (pid && pl) {
			struct strbuf t = STRBUF_INIT;
			zero = py_int(pid, pl, &t) == 0 && !strcmp(strbuf_str(&t), "0");
			strbuf_free(&t);
		}
		if (pid && pl && !zero)
			add_pid(out, pid, pl);
		strbuf_addc(out, ':');
		if (out->len - idstart == 7 && !memcmp(out->s + idstart, "kernel:", 7)) {
			uint64_t mono = monotonic_usec;
			v = first(f, n, "_SOURCE_MONOTONIC_TIMESTAMP", &l);
			if (v)
				parse_u64(v, l, &mono);
			strbuf_addf(out, " [%12.6f]", (double)mono / 1e6);
		}
	}
	if (elems)
		strbuf_addc(out, ' ');
	int nmsg = 0;
	size_t nl = strlen("MESSAGE");
	for (size_t i = 0; i < n; i++) {
		v = field_value(&f[i], "MESSAGE", nl, &l);
		if (!v)
			continue;
		if (nmsg++)
			strbuf_addc(out, ' ');
		strbuf_add(out, v, l);
	}
	/* newlines shown as "\n", as fail2ban does before matching */
	if (memchr(out->s ? out->s : "", '\n', out->len)) {
		struct strbuf t = STRBUF_INIT;
		for (size_t i = 0; i < out->len; i++) {
			if (out->s[i] == '\n')
				strbuf_add(&t, "\\n", 2);
			else
				strbuf_addc(&t, out->s[i]);
		}
		strbuf_free(out);
		*out = t;
	}
	uint64_t rt = realtime_usec;
	v = first(f, n, "_SOURCE_REALTIME_TIMESTAMP", &l);
	if (v)
		parse_u64(v, l, &rt);
	return (double)(rt / 1000000u) + (double)(rt % 1000000u) / 1e6;
}

/* ---- the source ---- */

static const char *const base_fields[] = {
	"_HOSTNAME", "SYSLOG_IDENTIFIER", "_COMM", "SYSLOG_PID", "_PID", "MESSAGE",
	"_SOURCE_REALTIME_TIMESTAMP", "_SOURCE_MONOTONIC_TIMESTAMP",
};

static void want_add(struct journalsrc *j, const char *name)
{
	for (size_t i = 0; i < j->nwant; i++)
		if (!strcmp(j->want[i], name))
			return;
	j->want = xrealloc(j->want, (j->nwant + 1) * sizeof *j->want);
	j->want[j->nwant++] = xstrdup(name);
}

static int wanted(const struct journalsrc *j, const char *d, size_t len)
{
	const char *eq = memchr(d, '=', len);
	if (!eq)
		return 0;
	size_t nl = (size_t)(eq - d);
	for (size_t i = 0; i < j->nwant; i++)
		if (strlen(j->want[i]) == nl && !memcmp(j->want[i], d, nl))
			return 1;
	return 0;
}

struct journalsrc *journalsrc_new(struct loop *l, const struct journalsrc_opts *o, char *err,
				  size_t errlen)
{
	struct journalsrc *j = xcalloc(1, sizeof *j);
	j->loop = l;
	j->fd = -1;
	if (o)
		j->o = *o;
	if (!j->o.max_per_turn)
		j->o.max_per_turn = DEF_PER_TURN;
	if (!j->o.poll_ms)
		j->o.poll_ms = DEF_POLL_MS;
	if (sdlib_open(&j->lib, err, errlen) < 0) {
		free(j);
		return NULL;
	}
	int r;
	if (j->o.nfiles) {
		/* sd_journal_open_files wants a NULL-terminated list */
		const char **v = xcalloc(j->o.nfiles + 1, sizeof *v);
		for (size_t i = 0; i < j->o.nfiles; i++)
			v[i] = j->o.files[i];
		r = j->lib.journal_open_files(&j->sd, v, 0);
		free(v);
		if (r < 0) {
			snprintf(err, errlen, "cannot open the journal files %s%s: %s", j->o.files[0],
				 j->o.nfiles > 1 ? " ..." : "", strerror(-r));
			sdlib_close(&j->lib);
			free(j);
			return NULL;
		}
	} else if (j->o.directory)
		r = j->lib.journal_open_directory(&j->sd, j->o.directory, 0);
	else
		r = j->lib.journal_open(&j->sd, j->o.flags ? j->o.flags : SD_JOURNAL_SYSTEM);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the journal%s%s: %s",
			 j->o.directory ? " in " : "", j->o.directory ? j->o.directory : "",
			 strerror(-r));
		sdlib_close(&j->lib);
		free(j);
		return NULL;
	}
	j->o.directory = NULL;   /* not needed any more; the caller's strings */
	j->o.files = NULL;
	j->o.nfiles = 0;
	for (size_t i = 0; i < sizeof base_fields / sizeof base_fields[0]; i++)
		want_add(j, base_fields[i]);
	return j;
}

static int apply_matches(struct journalsrc *j, char *err, size_t errlen)
{
	j->lib.journal_flush_matches(j->sd);
	for (size_t i = 0; i < j->nreg; i++)
		if (j->reg[i].m.n == 0)
			return 0;   /* a jail without matches reads everything */
	for (size_t i = 0; i < j->nreg; i++) {
		const struct journalmatch *m = &j->reg[i].m;
		for (size_t g = 0; g < m->n; g++) {
			for (size_t k = 0; k < m->g[g].n; k++) {
				const struct journalmatch_term *t = &m->g[g].t[k];
				char *s = xasprintf("%s=%s", t->field, t->value);
				int r = j->lib.journal_add_match(j->sd, s, strlen(t->field) + 1 + t->vlen);
				free(s);
				if (r < 0) {
					snprintf(err, errlen, "journal match %s=%s: %s", t->field,
						 t->value, strerror(-r));
					j->lib.journal_flush_matches(j->sd);
					return -1;
				}
			}
			j->lib.journal_add_disjunction(j->sd);
		}
	}
	return 0;
}

/* Positions the handle after `cursor`: the cursor's own entry is skipped on
 * the next read when it still exists. */
static void seek_after(struct journalsrc *j, const char *cursor)
{
	if (j->lib.journal_seek_cursor(j->sd, cursor) >= 0) {
		free(j->skip);
		j->skip = xstrdup(cursor);
	}
}

int journalsrc_add(struct journalsrc *j, const char *journalmatch, src_line_cb cb, void *arg,
		   char *err, size_t errlen)
{
	struct journalmatch m;
	if (journalmatch_parse(journalmatch, &m, err, errlen) < 0)
		return -1;
	j->reg = xrealloc(j->reg, (j->nreg + 1) * sizeof *j->reg);
	j->reg[j->nreg] = (struct jreg){m, cb, arg};
	j->nreg++;
	for (size_t g = 0; g < m.n; g++)
		for (size_t k = 0; k < m.g[g].n; k++)
			want_add(j, m.g[g].t[k].field);
	if (j->started) {
		if (apply_matches(j, err, errlen) < 0) {
			journalmatch_clear(&j->reg[--j->nreg].m);
			apply_matches(j, err, errlen);
			return -1;
		}
		if (j->cursor)
			seek_after(j, j->cursor);
	}
	return (int)(j->nreg - 1);
}

static void read_entries(struct journalsrc *j);

static void cont_cb(struct loop *l, void *arg)
{
	(void)l;
	struct journalsrc *j = arg;
	j->cont_timer = 0;
	read_entries(j);
}

static void process(struct journalsrc *j)
{
	int r = j->lib.journal_process(j->sd);
	if (r == SD_JOURNAL_INVALIDATE && j->cursor) {
		/* files were added or removed: stand on the last entry read
		 * again so that the next read continues right after it */
		seek_after(j, j->cursor);
	}
}

static void on_fd(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)fd;
	(void)ev;
	struct journalsrc *j = arg;
	process(j);
	read_entries(j);
}

static void on_poll(struct loop *l, void *arg)
{
	struct journalsrc *j = arg;
	j->poll_timer = loop_timer_add(l, j->o.poll_ms, on_poll, j);
	process(j);
	read_entries(j);
}

static void collect(struct journalsrc *j)
{
	const void *d;
	size_t len;
	strbuf_reset(&j->fbuf);
	j->nfr = 0;
	j->lib.journal_restart_data(j->sd);
	while (j->lib.journal_enumerate_available_data(j->sd, &d, &len) > 0) {
		if (!wanted(j, d, len))
			continue;
		j->fr = xgrow(j->fr, &j->capfr, j->nfr, sizeof *j->fr);
		j->fr[j->nfr++] = (struct fref){j->fbuf.len, len};
		strbuf_add(&j->fbuf, d, len);
	}
	j->fv = xgrow(j->fv, &j->capfv, j->nfr, sizeof *j->fv);
	for (size_t i = 0; i < j->nfr; i++)
		j->fv[i] = (struct journalsrc_field){j->fbuf.s + j->fr[i].off, j->fr[i].len};
}

static void read_entries(struct journalsrc *j)
{
	if (!j->started)
		return;
	unsigned n = 0;
	int got = 0;
	while (n < j->o.max_per_turn) {
		int r = j->lib.journal_next(j->sd);
		if (r <= 0)
			break;
		if (j->skip) {
			int same = j->lib.journal_test_cursor(j->sd, j->skip) > 0;
			free(j->skip);
			j->skip = NULL;
			if (same)
				continue;
		}
		n++;
		got = 1;
		collect(j);
		uint64_t rt = 0, mono = 0;
		sd_id128_t boot;
		j->lib.journal_get_realtime_usec(j->sd, &rt);
		j->lib.journal_get_monotonic_usec(j->sd, &mono, &boot);
		double t = -1;
		int formatted = 0;
		for (size_t i = 0; i < j->nreg; i++) {
			if (!journalmatch_fits(&j->reg[i].m, j->fv, j->nfr))
				continue;
			if (!formatted) {
				t = journalsrc_format(j->fv, j->nfr, rt, mono, &j->line);
				formatted = 1;
			}
			j->reg[i].cb(strbuf_str(&j->line), j->line.len, t, j->reg[i].arg);
		}
	}
	if (got) {
		char *c = NULL;
		if (j->lib.journal_get_cursor(j->sd, &c) >= 0) {
			free(j->cursor);
			j->cursor = c;
		}
	}
	if (n >= j->o.max_per_turn && !j->cont_timer)
		j->cont_timer = loop_timer_add(j->loop, 0, cont_cb, j);
}

int journalsrc_start(struct journalsrc *j, const struct journalsrc_start *st, char *err,
		     size_t errlen)
{
	if (apply_matches(j, err, errlen) < 0)
		return -1;
	int positioned = 0;
	if (st && st->cursor && *st->cursor) {
		if (j->lib.journal_seek_cursor(j->sd, st->cursor) >= 0) {
			j->skip = xstrdup(st->cursor);
			j->cursor = xstrdup(st->cursor);
			positioned = 1;
		}
	}
	if (!positioned && st && st->since >= 0) {
		j->lib.journal_seek_realtime_usec(j->sd, (uint64_t)(st->since * 1e6));
		positioned = 1;
	}
	if (!positioned) {
		/* only what comes from now on: stand on the last entry */
		j->lib.journal_seek_tail(j->sd);
		if (j->lib.journal_previous(j->sd) > 0) {
			char *c = NULL;
			if (j->lib.journal_get_cursor(j->sd, &c) >= 0)
				j->cursor = c;
		} else {
			j->lib.journal_seek_realtime_usec(j->sd, (uint64_t)(clocks_real() * 1e6));
		}
	}
	j->fd = j->lib.journal_get_fd(j->sd);
	if (j->fd >= 0)
		loop_fd_add(j->loop, j->fd, LOOP_READ, on_fd, j);
	j->poll_timer = loop_timer_add(j->loop, j->o.poll_ms, on_poll, j);
	j->started = 1;
	j->cont_timer = loop_timer_add(j->loop, 0, cont_cb, j);
	return 0;
}

char *journalsrc_cursor(const struct journalsrc *j)
{
	return j->cursor ? xstrdup(j->cursor) : NULL;
}

struct journalsrc *journalsrc_free(struct journalsrc *j)
{
	if (!j)
		return NULL;
	if (j->fd >= 0)
		loop_fd_del(j->loop, j->fd);
	if (j->cont_timer)
		loop_timer_del(j->loop, j->cont_timer);
	if (j->poll_timer)
		loop_timer_del(j->loop, j->poll_timer);
	j->lib.journal_close(j->sd);
	sdlib_close(&j->lib);
	for (size_t i = 0; i < j->nreg; i++)
		journalmatch_clear(&j->reg[i].m);
	free(j->reg);
	for (size_t i = 0; i < j->nwant; i++)
		free(j->want[i]);
	free(j->want);
	free(j->cursor);
	free(j->skip);
	strbuf_free(&j->fbuf);
	strbuf_free(&j->line);
	free(j->fr);
	free(j->fv);
	free(j);
	return NULL;
}
