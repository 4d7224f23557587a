/*
 * policyreq - framing and parsing of Postfix SMTPD policy delegation requests.
 *
 * A request is a sequence of "name=value" lines ended by an empty line
 * (Postfix sends LF; CRLF is tolerated). policy_parser_feed() takes bytes as
 * they arrive, keeps partial lines between calls and hands back a complete
 * request with the number of bytes it used, so pipelined bytes stay with the
 * caller. The usual case, a whole well-formed request in one read, is parsed
 * where it lies and copied once; anything else (a part of a request, a
 * malformed one) takes the general path line by line, which also words the
 * errors. Values are kept unmodified and untruncated (a sender may be long);
 * only the request as a whole is capped (POLICY_REQ_MAX_BYTES,
 * POLICY_REQ_MAX_ATTRS).
 *
 * Hand-written because the format is four rules and the cost per request
 * matters (the service must answer in microseconds); no library frames it.
 *
 * SECURITY: the input is untrusted. NUL bytes, lines without '=', empty
 * names, an empty request and anything over a cap are errors; the caller
 * closes the connection without replying. Memory per parser is bounded by
 * the byte cap.
 */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

struct policy_parser {
	char *buf;          /* "name\0value\0" pairs, then the partial line */
	size_t len, cap;
	size_t done;        /* end of the processed pairs; partial line after it */
	size_t raw;         /* bytes of the current request seen so far */
	size_t *off;        /* offsets of names in buf; value follows its NUL */
	size_t noff, offcap;
	int broken;         /* an error was reported; only reset clears it */
};

struct policy_parser *policy_parser_new(void)
{
	return xcalloc(1, sizeof(struct policy_parser));
}

void policy_parser_free(struct policy_parser *pp)
{
	if (!pp)
		return;
	free(pp->buf);
	free(pp->off);
	free(pp);
}

void policy_parser_reset(struct policy_parser *pp)
{
	pp->len = pp->done = pp->raw = pp->noff = 0;
	pp->broken = 0;
}

void policy_req_init(struct policy_req *r)
{
	memset(r, 0, sizeof(*r));
}

void policy_req_free(struct policy_req *r)
{
	free(r->v);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* A few bytes and the length tell Postfix's attribute names apart well
 * enough (a collision costs one more probe); names from a peer are text of
 * any kind, so the probe compares whole names. */
static unsigned name_hash(const char *name, size_t n)
{
	const unsigned char *s = (const unsigned char *)name;
	uint32_t h = (uint32_t)n * 2654435761u;
	if (n)
		h ^= (uint32_t)s[0] * 40503u ^ (uint32_t)s[n - 1] * 9973u ^ (uint32_t)s[n / 2] * 131u ^
		     (uint32_t)s[n / 3] * 7u;
	return (h ^ (h >> 13) ^ (h >> 23)) & (POLICY_REQ_IDX - 1);
}

static unsigned name_slot(const char *name, size_t *len)
{
	*len = strlen(name);
	return name_hash(name, *len);
}

/* Attribute i (name NUL-terminated, nlen bytes) into req's index; a repeated
 * name takes over its slot: the last one wins. */
static void index_attr(struct policy_req *req, size_t i, size_t nlen)
{
	const char *name = req->v[i].name;
	unsigned k = name_hash(name, nlen);
	while (req->idx[k] && strcmp(req->v[req->idx[k] - 1].name, name) != 0)
		k = (k + 1) & (POLICY_REQ_IDX - 1);
	req->idx[k] = (uint16_t)(i + 1);
}

/* Room for n attributes and len + 1 bytes in req, the index emptied. */
static void req_ready(struct policy_req *req, size_t n, size_t len)
{
	if (req->bufcap < len + 1) {
		free(req->buf);
		req->bufcap = len + 1 > 512 ? len + 1 : 512;
		req->buf = xmalloc(req->bufcap);
	}
	if (req->cap < n) {
		free(req->v);
		req->cap = n < 32 ? 32 : n;
		req->v = xmalloc(req->cap * sizeof(*req->v));
	}
	memset(req->idx, 0, sizeof(req->idx));
}

const char *policy_req_get(const struct policy_req *r, const char *name)
{
	size_t len;
	for (unsigned k = name_slot(name, &len);; k = (k + 1) & (POLICY_REQ_IDX - 1)) {
		unsigned i = r->idx[k];
		if (!i)
			return NULL;
		/* strcmp, not memcmp of len + 1: a shorter stored name may end
		 * right at the end of the request buffer */
		if (strcmp(r->v[i - 1].name, name) == 0)
			return r->v[i - 1].value;
	}
}

static void append(struct policy_parser *pp, const char *s, size_t n)
{
	if (pp->len + n + 1 > pp->cap) {
		size_t c = pp->cap ? pp->cap : 512;
		while (c < pp->len + n + 1)
			c *= 2;
		pp->buf = xrealloc(pp->buf, c);
		pp->cap = c;
	}
	memcpy(pp->buf + pp->len, s, n);
	pp->len += n;
}

static long fail(struct policy_parser *pp, char *err, size_t errlen, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "policy request: %s", what);
	pp->broken = 1;
	return -1;
}

/* Moves the finished pairs into req and readies the parser for the next request. */
static void hand_over(struct policy_parser *pp, struct policy_req *req)
{
	req_ready(req, pp->noff, pp->done);
	memcpy(req->buf, pp->buf, pp->done);
	req->buf[pp->done] = '\0';
	req->buflen = pp->done;
	for (size_t i = 0; i < pp->noff; i++) {
		const char *name = req->buf + pp->off[i];
		size_t len = strlen(name);
		req->v[i].name = name;
		req->v[i].value = name + len + 1;
		index_attr(req, i, len);
	}
	req->n = pp->noff;
	pp->len = pp->done = pp->raw = pp->noff = 0;
}

/* Processes the complete line buf[done..len) (newline already dropped).
 * Returns 1 at the empty line that ends a request, 0 for an attribute, -1 bad. */
static int take_line(struct policy_parser *pp, const char **why)
{
	char *line = pp->buf + pp->done;
	size_t n = pp->len - pp->done;

	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (n == 0) {
		pp->len = pp->done;
		if (pp->noff == 0) {
			*why = "empty request";
			return -1;
		}
		return 1;
	}
	char *eq = memchr(line, '=', n);
	if (!eq) {
		*why = "line without '='";
		return -1;
	}
	if (eq == line) {
		*why = "attribute with an empty name";
		return -1;
	}
	if (pp->noff >= POLICY_REQ_MAX_ATTRS) {
		*why = "too many attributes";
		return -1;
	}
	*eq = '\0';
	line[n] = '\0';
	pp->off = xgrow(pp->off, &pp->offcap, pp->noff, sizeof(*pp->off));
	pp->off[pp->noff++] = pp->done;
	pp->len = pp->done + n + 1;
	pp->done = pp->len;
	return 0;
}

/* The usual case: nothing pending and a whole well-formed request at the
 * start of data. Returns the bytes it used, or 0 to leave data to the
 * general path (a part of a request, or anything it would refuse). */
static long feed_whole(struct policy_parser *pp, const char *data, size_t len,
		       struct policy_req *req)
{
	if (pp->len || pp->raw || pp->noff)
		return 0;
	/* per attribute: where its line starts, its '=', where its value ends */
	uint32_t at[POLICY_REQ_MAX_ATTRS], eq[POLICY_REQ_MAX_ATTRS], end[POLICY_REQ_MAX_ATTRS];
	size_t pos = 0, n = 0, used;
	for (;;) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl || (size_t)(nl - data) + 1 > POLICY_REQ_MAX_BYTES)
			return 0;
		size_t e = (size_t)(nl - data);
		if (e > pos && data[e - 1] == '\r')
			e--;
		if (e == pos) { /* the empty line */
			used = (size_t)(nl - data) + 1;
			break;
		}
		const char *q = memchr(data + pos, '=', e - pos);
		if (!q || q == data + pos || n == POLICY_REQ_MAX_ATTRS)
			return 0;
		at[n] = (uint32_t)pos;
		eq[n] = (uint32_t)(q - data);
		end[n++] = (uint32_t)e;
		pos = (size_t)(nl - data) + 1;
	}
	if (n == 0 || memchr(data, '\0', used))
		return 0;
	req_ready(req, n, used);
	memcpy(req->buf, data, used);
	req->buf[used] = '\0';
	req->buflen = used;
	for (size_t i = 0; i < n; i++) {
		req->buf[eq[i]] = '\0';
		req->buf[end[i]] = '\0';
		req->v[i].name = req->buf + at[i];
		req->v[i].value = req->buf + eq[i] + 1;
		index_attr(req, i, eq[i] - at[i]);
	}
	req->n = n;
	return (long)used;
}

long policy_parser_feed(struct policy_parser *pp, const char *data, size_t len,
			struct policy_req *req, char *err, size_t errlen)
{
	size_t pos = 0;

	if (pp->broken)
		return fail(pp, err, errlen, "parser used after an error");
	long whole = feed_whole(pp, data, len, req);
	if (whole > 0)
		return whole;
	/* the first NUL of the data, looked for once (not per line) */
	const char *nul = len ? memchr(data, '\0', len) : NULL;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t seg = nl ? (size_t)(nl - (data + pos)) : len - pos;

		if (pp->raw + seg + (nl ? 1 : 0) > POLICY_REQ_MAX_BYTES)
			return fail(pp, err, errlen, "request larger than the size cap");
		if (nul && nul < data + pos + seg)
			return fail(pp, err, errlen, "NUL byte");
		append(pp, data + pos, seg);
		pp->raw += seg;
		pos += seg;
		if (!nl)
			break;
		pos++;               /* the newline */
		pp->raw++;
		const char *why = NULL;
		int r = take_line(pp, &why);
		if (r < 0)
			return fail(pp, err, errlen, why);
		if (r == 1) {
			hand_over(pp, req);
			return (long)pos;
		}
	}
	return 0;
}
