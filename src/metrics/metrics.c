/*
 * metrics - Prometheus text exposition builder and collector registry (see
 * metrics.h).
 *
 * Written here because the format is a few lines of grammar and escaping and
 * the C client libraries (libprom, not in Debian 12 anyway) keep global
 * registries and threads, which mxjail's one-loop daemon has no use for.
 * Samples are buffered per family so a collector may emit them in any order;
 * the scrape is assembled at the end with one HELP/TYPE pair per family.
 */
#include "metrics/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/xmalloc.h"

struct family {
	char *name;
	char *help;
	enum metrics_type type;
	struct strbuf body;
};

struct metrics_buf {
	struct family *f;
	size_t n, cap;
	long cur;          /* index of the open family, -1 = none */
	struct strbuf tmp; /* one sample line being assembled */
};

struct collector {
	metrics_collect_cb cb;
	void *arg;
};

struct metrics {
	struct collector *c;
	size_t n, cap;
};

/* ---------- names and escaping ---------- */

static int is_alpha_(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

int metrics_name_ok(const char *name)
{
	if (!name || !(is_alpha_((unsigned char)*name) || *name == ':'))
		return 0;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_((unsigned char)*p) && !is_digit((unsigned char)*p) && *p != ':')
			return 0;
	return 1;
}

int metrics_label_ok(const char *name)
{
	if (!name || !is_alpha_((unsigned char)*name))
		return 0;
	if (name[0] == '_' && name[1] == '_')
		return 0;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_((unsigned char)*p) && !is_digit((unsigned char)*p))
			return 0;
	return 1;
}

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned min;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, min = 0x80, cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, min = 0x800, cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, min = 0x10000, cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Escapes for label values (quote too) and HELP text (no quote). */
static void escape(struct strbuf *out, const char *s, int quote)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	while (n) {
		size_t l = utf8_len(p, n);
		if (l == 0) {
			strbuf_adds(out, "\xef\xbf\xbd");
			p++, n--;
			continue;
		}
		if (*p == '\\')
			strbuf_adds(out, "\\\\");
		else if (*p == '\n')
			strbuf_adds(out, "\\n");
		else if (*p == '"' && quote)
			strbuf_adds(out, "\\\"");
		else
			strbuf_add(out, (const char *)p, l);
		p += l, n -= l;
	}
}

void metrics_escape_label(struct strbuf *out, const char *s)
{
	escape(out, s ? s : "", 1);
}

static void add_value(struct strbuf *out, double v)
{
	if (isnan(v))
		strbuf_adds(out, "NaN");
	else if (isinf(v))
		strbuf_adds(out, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		strbuf_addf(out, "%.0f", v);
	else
		strbuf_addf(out, "%.17g", v);
}

/* ---------- the builder ---------- */

struct metrics_buf *metrics_buf_new(void)
{
	struct metrics_buf *b = xcalloc(1, sizeof *b);
	b->cur = -1;
	return b;
}

static void buf_clear(struct metrics_buf *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->f[i].name);
		free(b->f[i].help);
		strbuf_free(&b->f[i].body);
	}
	b->n = 0;
	b->cur = -1;
}

struct metrics_buf *metrics_buf_free(struct metrics_buf *b)
{
	if (!b)
		return NULL;
	buf_clear(b);
	free(b->f);
	strbuf_free(&b->tmp);
	free(b);
	return NULL;
}

static const char *type_name(enum metrics_type t)
{
	switch (t) {
	case METRICS_COUNTER:
		return "counter";
	case METRICS_GAUGE:
		return "gauge";
	default:
		return "untyped";
	}
}

void metrics_buf_finish(struct metrics_buf *b, struct strbuf *out)
{
	for (size_t i = 0; i < b->n; i++) {
		struct family *f = &b->f[i];
		if (f->help) {
			strbuf_addf(out, "# HELP %s ", f->name);
			escape(out, f->help, 0);
			strbuf_addc(out, '\n');
		}
		strbuf_addf(out, "# TYPE %s %s\n", f->name, type_name(f->type));
		strbuf_add(out, strbuf_str(&f->body), f->body.len);
	}
	buf_clear(b);
}

int metrics_family(struct metrics_buf *b, const char *name, enum metrics_type t,
		   const char *help)
{
	b->cur = -1;
	if (!metrics_name_ok(name))
		return -EINVAL;
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->f[i].name, name) == 0) {
			if (b->f[i].type != t)
				return -EINVAL;
			b->cur = (long)i;
			return 0;
		}
	b->f = xgrow(b->f, &b->cap, b->n, sizeof *b->f);
	struct family *f = &b->f[b->n];
	memset(f, 0, sizeof *f);
	f->name = xstrdup(name);
	f->help = help ? xstrdup(help) : NULL;
	f->type = t;
	b->cur = (long)b->n++;
	return 0;
}

int metrics_sample(struct metrics_buf *b, const char *const *labels, double v)
{
	if (b->cur < 0)
		return -EINVAL;
	struct family *f = &b->f[b->cur];
	struct strbuf *t = &b->tmp;
	strbuf_reset(t);
	strbuf_adds(t, f->name);
	if (labels && labels[0]) {
		strbuf_addc(t, '{');
		for (size_t i = 0; labels[i]; i += 2) {
			if (!labels[i + 1] || !metrics_label_ok(labels[i]))
				return -EINVAL;
			/* a label repeated in one sample would be rejected by the scraper */
			for (size_t k = 0; k < i; k += 2)
				if (strcmp(labels[k], labels[i]) == 0)
					return -EINVAL;
			if (i)
				strbuf_addc(t, ',');
			strbuf_addf(t, "%s=\"", labels[i]);
			escape(t, labels[i + 1], 1);
			strbuf_addc(t, '"');
		}
		strbuf_addc(t, '}');
	}
	strbuf_addc(t, ' ');
	add_value(t, v);
	strbuf_addc(t, '\n');
	strbuf_add(&f->body, strbuf_str(t), t->len);
	return 0;
}

int metrics_sample0(struct metrics_buf *b, double v)
{
	return metrics_sample(b, NULL, v);
}

int metrics_sample1(struct metrics_buf *b, const char *k, const char *val, double v)
{
	const char *l[] = {k, val, NULL};
	return metrics_sample(b, l, v);
}

int metrics_sample2(struct metrics_buf *b, const char *k1, const char *v1, const char *k2,
		    const char *v2, double v)
{
	const char *l[] = {k1, v1, k2, v2, NULL};
	return metrics_sample(b, l, v);
}

int metrics_single(struct metrics_buf *b, const char *name, enum metrics_type t,
		   const char *help, double v)
{
	int r = metrics_family(b, name, t, help);
	return r < 0 ? r : metrics_sample0(b, v);
}

/* ---------- process metrics ---------- */

static double boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return -1;
	char line[256];
	double bt = -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "btime ", 6) == 0) {
			bt = strtod(line + 6, NULL);
			break;
		}
	fclose(f);
	return bt;
}

void metrics_process(struct metrics_buf *b)
{
	long tck = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/stat", "re");
	if (f) {
		char buf[1024];
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* the command name may hold blanks and parentheses: fields follow the last ')' */
		char *p = strrchr(buf, ')');
		unsigned long long v[24] = {0};
		int got = 0;
		if (p) {
			p++;
			/* fields 3.. : state is a letter, then numbers */
			while (*p == ' ')
				p++;
			if (*p)
				p++;
			for (int i = 4; i <= 24 && *p; i++) {
				char *e;
				v[i - 1] = strtoull(p, &e, 10);
				if (e == p)
					break;
				p = e;
				got = i;
			}
		}
		if (got >= 24 && tck > 0) {
			metrics_single(b, "process_cpu_seconds_total", METRICS_COUNTER,
				       "Total user and system CPU time spent in seconds.",
				       (double)(v[13] + v[14]) / (double)tck);
			double bt = boot_time();
			if (bt >= 0)
				metrics_single(b, "process_start_time_seconds", METRICS_GAUGE,
					       "Start time of the process since unix epoch in seconds.",
					       bt + (double)v[21] / (double)tck);
			metrics_single(b, "process_virtual_memory_bytes", METRICS_GAUGE,
				       "Virtual memory size in bytes.", (double)v[22]);
			if (page > 0)
				metrics_single(b, "process_resident_memory_bytes", METRICS_GAUGE,
					       "Resident memory size in bytes.",
					       (double)v[23] * (double)page);
		}
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		size_t n = 0;
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		metrics_single(b, "process_open_fds", METRICS_GAUGE, "Number of open file descriptors.",
			       (double)(n ? n - 1 : 0)); /* minus the one opendir used */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		metrics_single(b, "process_max_fds", METRICS_GAUGE,
			       "Maximum number of open file descriptors.", (double)rl.rlim_cur);
}

/* ---------- the registry ---------- */

struct metrics *metrics_new(void)
{
	return xcalloc(1, sizeof(struct metrics));
}

struct metrics *metrics_free(struct metrics *m)
{
	if (m) {
		free(m->c);
		free(m);
	}
	return NULL;
}

void metrics_register(struct metrics *m, metrics_collect_cb cb, void *arg)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->c[i].cb == cb && m->c[i].arg == arg)
			return;
	m->c = xgrow(m->c, &m->cap, m->n, sizeof *m->c);
	m->c[m->n].cb = cb;
	m->c[m->n].arg = arg;
	m->n++;
}

void metrics_unregister(struct metrics *m, metrics_collect_cb cb, void *arg)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->c[i].cb == cb && m->c[i].arg == arg) {
			memmove(&m->c[i], &m->c[i + 1], (m->n - i - 1) * sizeof *m->c);
			m->n--;
			return;
		}
}

void metrics_render(struct metrics *m, struct strbuf *out)
{
	struct metrics_buf *b = metrics_buf_new();
	for (size_t i = 0; i < m->n; i++) {
		m->c[i].cb(b, m->c[i].arg);
		b->cur = -1; /* a collector cannot add samples to the previous one's family */
	}
	metrics_buf_finish(b, out);
	metrics_buf_free(b);
}
