/*
 * smtpreply - incremental parser for SMTP server replies (RFC 5321 4.2):
 * "NNN-text" continuation lines ending with "NNN text" or a bare "NNN".
 *
 * Interface: smtpreply_feed() takes whatever bytes the socket produced and
 * hands back one complete reply at a time (see probe.h).
 *
 * Why hand-written: the bytes come from a server we are auditing, possibly a
 * tarpit or something that is not SMTP at all. A general line reader or a
 * regex library would need the whole reply in memory first; here every line,
 * the number of lines and the kept text have hard caps, NUL bytes and code
 * changes inside a multiline reply are refused, and the error message quotes
 * what arrived in printable form. Bare LF line ends are accepted because real
 * servers send them.
 */
#include <stdio.h>
#include <string.h>

#include "probe/probe.h"

void smtpreply_init(struct smtpreply_parser *p)
{
	memset(p, 0, sizeof *p);
}

void smtpreply_reset(struct smtpreply_parser *p)
{
	strbuf_reset(&p->line);
	strbuf_reset(&p->text);
	p->code = 0;
	p->nlines = 0;
}

void smtpreply_free(struct smtpreply_parser *p)
{
	strbuf_free(&p->line);
	strbuf_free(&p->text);
	p->code = 0;
	p->nlines = 0;
}

void smtpreply_clear(struct smtpreply *r)
{
	strbuf_free(&r->text);
	r->code = 0;
	r->enh[0] = '\0';
	r->nlines = 0;
}

void probe_printable(struct strbuf *b, const char *s, size_t n, size_t max)
{
	size_t lim = n < max ? n : max;
	for (size_t i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			strbuf_addc(b, (char)c);
		else
			strbuf_addf(b, "\\x%02x", c);
	}
	if (n > lim)
		strbuf_adds(b, "...");
}

static void set_err(char *err, size_t errsz, const char *what, const char *s, size_t n)
{
	struct strbuf b = STRBUF_INIT;
	probe_printable(&b, s, n, 60);
	snprintf(err, errsz, "%s: \"%s\"", what, strbuf_str(&b));
	strbuf_free(&b);
}

/* "d.ddd.ddd" followed by a space or the end: RFC 3463 status codes. */
static void enhanced_code(const char *t, size_t n, char *out)
{
	size_t i = 0, part = 0;
	out[0] = '\0';
	if (n == 0 || (t[0] != '2' && t[0] != '4' && t[0] != '5'))
		return;
	while (part < 3) {
		size_t start = i;
		while (i < n && t[i] >= '0' && t[i] <= '9' && i - start < 3)
			i++;
		if (i == start)
			return;
		part++;
		if (part < 3) {
			if (i >= n || t[i] != '.')
				return;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return;
	memcpy(out, t, i);
	out[i] = '\0';
}

/* One complete line (without its line end). Returns DONE, MORE or ERROR. */
static int take_line(struct smtpreply_parser *p, struct smtpreply *out, char *err, size_t errsz)
{
	const char *l = p->line.s ? p->line.s : "";
	size_t n = p->line.len;
	if (n > 0 && l[n - 1] == '\r')
		n--;
	if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' ||
	    l[2] > '9' || (n > 3 && l[3] != ' ' && l[3] != '-')) {
		set_err(err, errsz, "not an SMTP reply line", l, n);
		return SMTPREPLY_ERROR;
	}
	int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (p->nlines > 0 && code != p->code) {
		set_err(err, errsz, "reply code changes inside a multiline reply", l, n);
		return SMTPREPLY_ERROR;
	}
	if (++p->nlines > SMTPREPLY_LINES_MAX) {
		snprintf(err, errsz, "multiline reply longer than %d lines", SMTPREPLY_LINES_MAX);
		return SMTPREPLY_ERROR;
	}
	p->code = code;
	const char *t = n > 4 ? l + 4 : "";
	size_t tn = n > 4 ? n - 4 : 0;
	if (p->text.len < SMTPREPLY_TEXT_MAX) {
		if (p->nlines > 1)
			strbuf_addc(&p->text, '\n');
		size_t room = SMTPREPLY_TEXT_MAX - p->text.len;
		strbuf_add(&p->text, t, tn < room ? tn : room);
	}
	int last = n == 3 || l[3] == ' ';
	strbuf_reset(&p->line);
	if (!last)
		return SMTPREPLY_MORE;
	smtpreply_clear(out);
	out->code = p->code;
	out->nlines = p->nlines;
	out->text = p->text;
	memset(&p->text, 0, sizeof p->text);
	enhanced_code(strbuf_str(&out->text), strcspn(strbuf_str(&out->text), "\n"), out->enh);
	p->code = 0;
	p->nlines = 0;
	return SMTPREPLY_DONE;
}

int smtpreply_feed(struct smtpreply_parser *p, const char *buf, size_t n, size_t *used,
		   struct smtpreply *out, char *err, size_t errsz)
{
	size_t i = 0;
	*used = 0;
	while (i < n) {
		const char *nl = memchr(buf + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - buf) : n;
		size_t chunk = end - i;
		if (memchr(buf + i, '\0', chunk)) {
			set_err(err, errsz, "NUL byte in a reply line", buf + i, chunk);
			return SMTPREPLY_ERROR;
		}
		if (p->line.len + chunk > SMTPREPLY_LINE_MAX) {
			strbuf_add(&p->line, buf + i, chunk < 60 ? chunk : 60);
			snprintf(err, errsz, "reply line longer than %d bytes", SMTPREPLY_LINE_MAX);
			return SMTPREPLY_ERROR;
		}
		strbuf_add(&p->line, buf + i, chunk);
		i = end;
		if (!nl)
			break;
		i++; /* the LF */
		int rc = take_line(p, out, err, errsz);
		if (rc != SMTPREPLY_MORE) {
			*used = i;
			return rc;
		}
	}
	*used = i;
	return SMTPREPLY_MORE;
}
