/*
 * pyre - translates Python 3.11 `re` patterns into PCRE2 10.42 patterns.
 *
 * Interface: pyre_translate()/pyre_translate_ex() in pyre.h return a new
 * pattern plus compile flags, or NULL and "what, at position N".
 *
 * Why by hand: no library converts between the two dialects, and most
 * fail2ban patterns are also valid PCRE2 - but "valid in both" is not "means
 * the same in both". So the pattern is parsed here with Python's own rules
 * (re/_parser.py of 3.11 is the reference) and re-emitted in a form whose
 * PCRE2 meaning is unambiguous:
 *  - (?P<name>..) and (?P=name) are kept; numbered back references become
 *    \g{N}; octal and \xhh, \uXXXX, \UXXXXXXXX become \o{..} / \x{..}.
 *  - \Z is \z (PCRE2's \Z also matches before a final newline).
 *  - {,n} and {,} become {0,n} / {0,} (PCRE2 10.42 reads them as text); a
 *    brace Python treats as text is emitted as \{ so it stays text.
 *  - \v is U+000B in Python but a class in PCRE2; \a, \f likewise become hex.
 *  - \B gets a guard: Python's \B never matches inside an empty string.
 *  - Inside [...] a '[' is escaped (PCRE2 would start a POSIX class), and the
 *    scan follows Python: ']' first is literal, ranges are checked.
 *  - Global flags (?aimsux) are only legal at the very start (3.11 refuses
 *    them elsewhere, so does this); i/m/s become PCRE2 options, a becomes
 *    PYRE_ASCII, x is applied here: blanks and #-comments are dropped using
 *    Python's rules, which differ from PCRE2_EXTENDED's.
 *  - Local (?a:...) is emulated with explicit ASCII classes, since PCRE2
 *    10.42 cannot switch UCP per group - for \d \s \w \b \B only, as
 *    CPython 3.11 itself leaves \D \S \W Unicode inside (?a:...).
 *  - Comments (?#...) are dropped (Python lets "\)" continue a comment).
 *  - Everything Python rejects is rejected with Python's message: bad
 *    escapes (\z, \g, \K, \Q, \p, \N{...}...), PCRE-only groups ((?|, (?R),
 *    (?<name>, (?P>name)...), nothing to repeat, multiple repeat, unknown or
 *    open group references. \N{...} is refused here although Python has it:
 *    there is no Unicode name table in this program.
 * Known differences left to PCRE2: a lookbehind whose alternatives have
 * different fixed widths compiles here, not in Python; \s and \w differ on a
 * few exotic code points (U+001C..U+001F, combining marks).
 *
 * Positions in errors are byte offsets into the pattern. Output size is
 * linear in the input; input over PYRE_MAX_PATTERN bytes is refused.
 */
#include "filters/pyre.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

/* PCRE2 option values (pcre2.h is not needed to produce them). */
#define OPT_CASELESS 0x00000008u
#define OPT_DOTALL 0x00000020u
#define OPT_MULTILINE 0x00000400u

#define MAX_DEPTH 200 /* PCRE2's default parenthesis nesting limit is 250 */
#define MAX_NAME 32   /* PCRE2's limit on group name length */
#define MAX_REPEAT 65535

enum last { L_NONE, L_AT, L_REPEAT, L_ITEM };
enum frkind { FR_GROUP, FR_LOOKBEHIND, FR_COND };

struct frame {
	enum frkind kind;
	size_t start;     /* offset of '(' */
	int gid;          /* capture group, 0 if none */
	int outer_verbose;
	int outer_ascii;
	int alts;         /* '|' seen at this level (conditionals) */
	int outer_lb;     /* lookbehind marker to restore */
};

struct gname {
	size_t off;  /* into the pattern; 0 len marks a free slot */
	size_t len;
	int gid;
};

struct condref {
	int gid;
	size_t pos;
};

struct pctx {
	const char *s;
	size_t n, i;
	struct strbuf out;
	char *err;
	size_t errlen;
	int failed;
	int verbose, ascii, gascii, gunicode;
	uint32_t flags;
	int started; /* something other than global flags was seen */
	enum last last;
	struct frame fr[MAX_DEPTH];
	int depth;
	int ngroups;
	unsigned char *closed; /* closed[gid] */
	size_t maxgroups;
	struct gname *names;
	size_t namecap;
	struct condref *crefs;
	size_t ncref, crefcap;
	int lb_groups; /* group count when the outermost lookbehind opened, or -1 */
};

static const char ASCII_WORD[] = "A-Za-z0-9_";
static const char ASCII_SPACE[] = "\\t\\n\\x{0b}\\f\\r ";

/* Copies text for a message, replacing anything not printable ASCII. */
static void show(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t k = 0;

	if (n > 40)
		n = 40;
	for (size_t j = 0; j < n && k + 1 < dstlen; j++)
		dst[k++] = (s[j] >= 0x20 && s[j] < 0x7f) ? s[j] : '?';
	if (dstlen)
		dst[k] = '\0';
}

static int fail(struct pctx *p, size_t pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct pctx *p, size_t pos, const char *fmt, ...)
{
	va_list ap;
	int k = 0;

	if (p->failed)
		return -1;
	p->failed = 1;
	if (!p->err || p->errlen == 0)
		return -1;
	va_start(ap, fmt);
	k = vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	if (k >= 0 && (size_t)k < p->errlen)
		snprintf(p->err + k, p->errlen - (size_t)k, " at position %zu", pos);
	return -1;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[k] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_octal(int c)
{
	return c >= '0' && c <= '7';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_pyspace(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static int peek(const struct pctx *p, size_t off)
{
	return p->i + off < p->n ? (unsigned char)p->s[p->i + off] : -1;
}

/* Emits one literal code point so that PCRE2 reads exactly that character.
 * raw/rawlen is its UTF-8 text when it came from the pattern unescaped. */
static void emit_lit(struct pctx *p, uint32_t cp, int inclass)
{
	if (cp < 0x20 || cp == 0x7f || cp >= 0x80) {
		strbuf_addf(&p->out, "\\x{%x}", (unsigned)cp);
		return;
	}
	if (inclass ? strchr("\\]^-[", (int)cp) != NULL
		    : strchr("\\^$.|?*+()[]{}", (int)cp) != NULL)
		strbuf_addc(&p->out, '\\');
	strbuf_addc(&p->out, (char)cp);
}

/* Emits a code point taken unescaped from the pattern: non-ASCII stays as
 * its own UTF-8 bytes so the output remains readable. */
static void emit_raw(struct pctx *p, uint32_t cp, size_t at, size_t len, int inclass)
{
	if (cp >= 0x80)
		strbuf_add(&p->out, p->s + at, len);
	else
		emit_lit(p, cp, inclass);
}

/* A class-type item: \d \D \s \S \w \W. */
struct atom {
	int is_class;      /* 1: class escape, 0: literal */
	uint32_t cp;       /* literal value */
	char cls;          /* 'd', 'D', ... */
	size_t at, len;    /* source text */
	int from_escape;
};

/* Reads \x, \u, \U with exactly `digits` hex digits after the letter at p->i
 * (p->i points at the letter). */
static int read_hex(struct pctx *p, size_t esc, int digits, uint32_t *cp)
{
	uint32_t v = 0;
	int k;

	for (k = 0; k < digits; k++) {
		int h = peek(p, 1 + (size_t)k);
		if (h < 0 || hexval(h) < 0)
			break;
		v = (v << 4) | (uint32_t)hexval(h);
	}
	if (k != digits) {
		char t[48];
		show(t, sizeof t, p->s + esc, p->i + 1 + (size_t)k - esc);
		return fail(p, esc, "incomplete escape %s", t);
	}
	p->i += 1 + (size_t)digits;
	if (v > 0x10ffff) {
		char t[48];
		show(t, sizeof t, p->s + esc, p->i - esc);
		return fail(p, esc, "bad escape %s", t);
	}
	if (v >= 0xd800 && v <= 0xdfff)
		return fail(p, esc, "escape of surrogate U+%04X cannot match UTF-8 text",
			    (unsigned)v);
	*cp = v;
	return 0;
}

/* Escapes common to classes and the outside: hex, unicode, control letters.
 * p->i points at the character after the backslash. Returns 1 when handled
 * (a literal in *cp), 0 when not one of these, -1 on error. */
static int common_escape(struct pctx *p, size_t esc, uint32_t *cp)
{
	int c = peek(p, 0);

	switch (c) {
	case 'a': *cp = 7; break;
	case 'f': *cp = 12; break;
	case 'n': *cp = 10; break;
	case 'r': *cp = 13; break;
	case 't': *cp = 9; break;
	case 'v': *cp = 11; break;
	case '\\': *cp = '\\'; break;
	case 'x':
		return read_hex(p, esc, 2, cp) < 0 ? -1 : 1;
	case 'u':
		return read_hex(p, esc, 4, cp) < 0 ? -1 : 1;
	case 'U':
		return read_hex(p, esc, 8, cp) < 0 ? -1 : 1;
	case 'N':
		return fail(p, esc, "named character escape \\N{...} is not supported; "
			    "write the character or \\uXXXX");
	default:
		return 0;
	}
	p->i++;
	return 1;
}

static int bad_escape(struct pctx *p, size_t esc)
{
	char t[16];
	size_t len = 2;
	uint32_t cp;

	if (esc + 1 < p->n)
		len = 1 + utf8_len((const unsigned char *)p->s + esc + 1,
				   p->n - esc - 1, &cp);
	show(t, sizeof t, p->s + esc, len);
	return fail(p, esc, "bad escape %s", t);
}

/* One item inside [...]: p->i at its first byte. */
static int class_atom(struct pctx *p, struct atom *a)
{
	size_t at = p->i;
	uint32_t cp;
	size_t len;

	memset(a, 0, sizeof *a);
	a->at = at;
	if (p->s[at] != '\\') {
		len = utf8_len((const unsigned char *)p->s + at, p->n - at, &cp);
		p->i += len;
		a->cp = cp;
		a->len = len;
		return 0;
	}
	a->from_escape = 1;
	p->i++;
	if (p->i >= p->n)
		return fail(p, at, "bad escape (end of pattern)");
	int r = common_escape(p, at, &cp);
	if (r < 0)
		return -1;
	if (r == 0) {
		int c = peek(p, 0);
		if (c == 'b') {
			cp = 8;
			p->i++;
		} else if (strchr("dDsSwW", c) && c != 0) {
			a->is_class = 1;
			a->cls = (char)c;
			p->i++;
		} else if (is_octal(c)) {
			uint32_t v = 0;
			int k = 0;
			while (k < 3 && is_octal(peek(p, 0))) {
				v = v * 8 + (uint32_t)(peek(p, 0) - '0');
				p->i++;
				k++;
			}
			if (v > 0377) {
				char t[16];
				show(t, sizeof t, p->s + at, p->i - at);
				return fail(p, at, "octal escape value %s outside of range 0-0o377", t);
			}
			cp = v;
		} else if (is_digit(c) || (c < 0x80 && is_alpha(c))) {
			return bad_escape(p, at);
		} else {
			len = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i, &cp);
			p->i += len;
		}
	}
	a->cp = cp;
	a->len = p->i - at;
	return 0;
}

/* inclass: 0 outside [...], 1 in a class, 2 in a negated class. */
static int emit_class_escape(struct pctx *p, const struct atom *a, int inclass)
{
	int local_ascii = p->ascii && !p->gascii && inclass != 2;
	char c = a->cls;

	/* CPython 3.11 applies a local (?a:) to \\d \\s \\w outside negated
	 * classes only: \\D \\S \\W and [^\\w] keep their Unicode meaning there
	 * (re.search(r"(?a:\\W)", "é") is None). Mirror that. */
	if (!local_ascii || c == 'D' || c == 'S' || c == 'W') {
		strbuf_addc(&p->out, '\\');
		strbuf_addc(&p->out, c);
		return 0;
	}
	const char *set = c == 'd' ? "0-9" : c == 'w' ? ASCII_WORD : ASCII_SPACE;
	if (inclass)
		strbuf_adds(&p->out, set);
	else
		strbuf_addf(&p->out, "[%s]", set);
	return 0;
}

static void emit_atom(struct pctx *p, const struct atom *a)
{
	if (a->from_escape)
		emit_lit(p, a->cp, 1);
	else
		emit_raw(p, a->cp, a->at, a->len, 1);
}

static int parse_class(struct pctx *p)
{
	size_t start = p->i;
	int nitems = 0, mode = 1;

	p->i++;
	strbuf_addc(&p->out, '[');
	if (peek(p, 0) == '^') {
		strbuf_addc(&p->out, '^');
		p->i++;
		mode = 2;
	}
	for (;;) {
		struct atom a1, a2;

		if (p->i >= p->n)
			return fail(p, start, "unterminated character set");
		if (p->s[p->i] == ']' && nitems > 0) {
			p->i++;
			strbuf_addc(&p->out, ']');
			return 0;
		}
		if (class_atom(p, &a1) < 0)
			return -1;
		nitems++;
		if (peek(p, 0) != '-') {
			if (a1.is_class) {
				if (emit_class_escape(p, &a1, mode) < 0)
					return -1;
			} else {
				emit_atom(p, &a1);
			}
			continue;
		}
		p->i++;
		if (p->i >= p->n)
			return fail(p, start, "unterminated character set");
		if (p->s[p->i] == ']') {
			if (a1.is_class) {
				if (emit_class_escape(p, &a1, mode) < 0)
					return -1;
			} else {
				emit_atom(p, &a1);
			}
			strbuf_adds(&p->out, "\\-]");
			p->i++;
			return 0;
		}
		if (class_atom(p, &a2) < 0)
			return -1;
		if (a1.is_class || a2.is_class || a2.cp < a1.cp) {
			char t[96];
			show(t, sizeof t, p->s + a1.at, p->i - a1.at);
			return fail(p, a1.at, "bad character range %s", t);
		}
		emit_atom(p, &a1);
		strbuf_addc(&p->out, '-');
		emit_atom(p, &a2);
	}
}

static int group_closed(const struct pctx *p, int gid)
{
	return gid >= 1 && gid <= p->ngroups && p->closed[gid];
}

/* Python's checklookbehindgroup(). */
static int check_lookbehind_ref(struct pctx *p, int gid, size_t pos)
{
	if (p->lb_groups < 0)
		return 0;
	if (!group_closed(p, gid))
		return fail(p, pos, "cannot refer to an open group");
	if (gid >= p->lb_groups)
		return fail(p, pos, "cannot refer to group defined in the same "
			    "lookbehind subpattern");
	return 0;
}

static int emit_backref(struct pctx *p, int gid, size_t pos)
{
	if (gid > p->ngroups)
		return fail(p, pos, "invalid group reference %d", gid);
	if (!p->closed[gid])
		return fail(p, pos - 1, "cannot refer to an open group");
	if (check_lookbehind_ref(p, gid, pos - 1) < 0)
		return -1;
	strbuf_addf(&p->out, "\\g{%d}", gid);
	p->last = L_ITEM;
	return 0;
}

/* Escape outside a class; p->i at the backslash. */
static int parse_escape(struct pctx *p)
{
	size_t at = p->i;
	uint32_t cp;
	int c, r;

	p->i++;
	if (p->i >= p->n)
		return fail(p, at, "bad escape (end of pattern)");
	c = peek(p, 0);
	switch (c) {
	case 'A':
		p->i++;
		strbuf_adds(&p->out, "\\A");
		p->last = L_AT;
		return 0;
	case 'Z':
		p->i++;
		strbuf_adds(&p->out, "\\z");
		p->last = L_AT;
		return 0;
	case 'b':
	case 'B':
		p->i++;
		p->last = L_AT;
		if (p->ascii && !p->gascii) {
			/* ASCII word boundary built from lookarounds. */
			const char *w = "[A-Za-z0-9_]";
			if (c == 'b')
				strbuf_addf(&p->out, "(?:(?<=%s)(?!%s)|(?<!%s)(?=%s))", w, w, w, w);
			else
				strbuf_addf(&p->out, "(?:(?:(?<=%s)(?=%s)|(?<!%s)(?!%s))(?!\\A\\z))",
					    w, w, w, w);
		} else if (c == 'B') {
			/* Python's \\B never matches in an empty string. */
			strbuf_adds(&p->out, "(?:\\B(?!\\A\\z))");
		} else {
			strbuf_adds(&p->out, "\\b");
		}
		return 0;
	case 'd': case 'D': case 's': case 'S': case 'w': case 'W': {
		struct atom a;
		memset(&a, 0, sizeof a);
		a.is_class = 1;
		a.cls = (char)c;
		a.at = at;
		p->i++;
		p->last = L_ITEM;
		return emit_class_escape(p, &a, 0);
	}
	default:
		break;
	}
	r = common_escape(p, at, &cp);
	if (r < 0)
		return -1;
	if (r == 1) {
		emit_lit(p, cp, 0);
		p->last = L_ITEM;
		return 0;
	}
	if (c == '0') {
		uint32_t v = 0;
		p->i++;
		for (int k = 0; k < 2 && is_octal(peek(p, 0)); k++)
			v = v * 8 + (uint32_t)(p->s[p->i++] - '0');
		emit_lit(p, v, 0);
		p->last = L_ITEM;
		return 0;
	}
	if (is_digit(c)) {
		int d1 = c, d2 = peek(p, 1), d3 = peek(p, 2);
		if (is_digit(d2)) {
			if (is_octal(d1) && is_octal(d2) && is_octal(d3)) {
				uint32_t v = (uint32_t)((d1 - '0') * 64 + (d2 - '0') * 8 + (d3 - '0'));
				p->i += 3;
				if (v > 0377) {
					char t[8];
					show(t, sizeof t, p->s + at, 4);
					return fail(p, at, "octal escape value %s outside of range 0-0o377", t);
				}
				emit_lit(p, v, 0);
				p->last = L_ITEM;
				return 0;
			}
			p->i += 2;
			return emit_backref(p, (d1 - '0') * 10 + (d2 - '0'), at + 1);
		}
		p->i++;
		return emit_backref(p, d1 - '0', at + 1);
	}
	if (c < 0x80 && is_alpha(c))
		return bad_escape(p, at);
	{
		size_t len = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i, &cp);
		p->i += len;
		emit_lit(p, cp, 0);
	}
	p->last = L_ITEM;
	return 0;
}

static int quantifier_check(struct pctx *p, size_t at)
{
	if (p->last == L_NONE || p->last == L_AT)
		return fail(p, at, "nothing to repeat");
	if (p->last == L_REPEAT)
		return fail(p, at, "multiple repeat");
	return 0;
}

static void quantifier_suffix(struct pctx *p)
{
	int c = peek(p, 0);

	if (c == '?' || c == '+') {
		strbuf_addc(&p->out, (char)c);
		p->i++;
	}
	p->last = L_REPEAT;
}

/* Reads digits at p->i; returns count read, saturating the value. */
static size_t read_number(struct pctx *p, unsigned long *v)
{
	size_t k = 0;

	*v = 0;
	while (is_digit(peek(p, 0))) {
		if (*v < 1000000000ul)
			*v = *v * 10 + (unsigned long)(p->s[p->i] - '0');
		p->i++;
		k++;
	}
	return k;
}

static int parse_brace(struct pctx *p)
{
	size_t at = p->i;
	unsigned long lo = 0, hi = 0;
	size_t nlo, nhi = 0;
	int comma = 0;

	p->i++;
	if (peek(p, 0) == '}')
		goto literal;
	nlo = read_number(p, &lo);
	if (peek(p, 0) == ',') {
		comma = 1;
		p->i++;
		nhi = read_number(p, &hi);
	}
	if (peek(p, 0) != '}')
		goto literal;
	p->i++;
	if (quantifier_check(p, at) < 0)
		return -1;
	if ((nlo && lo > MAX_REPEAT) || (nhi && hi > MAX_REPEAT))
		return fail(p, at, "repeat count above %d (PCRE2 limit)", MAX_REPEAT);
	if (nhi && hi < lo)
		return fail(p, at + 1, "min repeat greater than max repeat");
	if (!comma)
		strbuf_addf(&p->out, "{%lu}", lo);
	else if (nhi)
		strbuf_addf(&p->out, "{%lu,%lu}", lo, hi);
	else
		strbuf_addf(&p->out, "{%lu,}", lo);
	quantifier_suffix(p);
	return 0;
literal:
	p->i = at + 1;
	strbuf_adds(&p->out, "\\{");
	p->last = L_ITEM;
	return 0;
}

static int push(struct pctx *p, enum frkind kind, size_t start, int gid)
{
	struct frame *f;

	if (p->depth >= MAX_DEPTH)
		return fail(p, start, "too many nested groups (limit %d)", MAX_DEPTH);
	f = &p->fr[p->depth++];
	f->kind = kind;
	f->start = start;
	f->gid = gid;
	f->outer_verbose = p->verbose;
	f->outer_ascii = p->ascii;
	f->alts = 0;
	f->outer_lb = p->lb_groups;
	p->last = L_NONE;
	return 0;
}

static uint64_t name_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t k = 0; k < n; k++)
		h = (h ^ (unsigned char)s[k]) * 1099511628211ull;
	return h;
}

static struct gname *name_slot(struct pctx *p, const char *s, size_t n)
{
	size_t mask = p->namecap - 1;
	size_t k = (size_t)name_hash(s, n) & mask;

	for (;;) {
		struct gname *g = &p->names[k];
		if (g->len == 0 || (g->len == n && memcmp(p->s + g->off, s, n) == 0))
			return g;
		k = (k + 1) & mask;
	}
}

static int name_lookup(struct pctx *p, size_t off, size_t n)
{
	struct gname *g = name_slot(p, p->s + off, n);
	return g->len ? g->gid : 0;
}

/* Reads a name up to `term` (Python's getuntil), validating it as an ASCII
 * identifier PCRE2 accepts. p->i at the first name byte. */
static int read_name(struct pctx *p, char term, const char *what, size_t *off, size_t *len)
{
	size_t at = p->i, j = p->i;
	char t[48];

	while (j < p->n && p->s[j] != term)
		j += (p->s[j] == '\\' && j + 1 < p->n) ? 2 : 1;
	if (j >= p->n) {
		if (j == at)
			return fail(p, at, "missing %s", what);
		return fail(p, at, "missing %c, unterminated name", term);
	}
	if (j == at)
		return fail(p, at, "missing %s", what);
	*off = at;
	*len = j - at;
	p->i = j + 1;
	show(t, sizeof t, p->s + at, *len);
	for (size_t k = at; k < j; k++) {
		unsigned char c = (unsigned char)p->s[k];
		if (c >= 0x80)
			return fail(p, at, "non-ASCII group name '%s' is not supported "
				    "by PCRE2 10.42", t);
		if (!(is_alpha(c) || c == '_' || (k > at && is_digit(c))))
			return fail(p, at, "bad character in group name '%s'", t);
	}
	if (*len > MAX_NAME)
		return fail(p, at, "group name '%s' is longer than %d bytes (PCRE2 limit)",
			    t, MAX_NAME);
	return 0;
}

static int open_capture(struct pctx *p, size_t start, size_t noff, size_t nlen)
{
	int gid = ++p->ngroups;

	if (nlen) {
		struct gname *g = name_slot(p, p->s + noff, nlen);
		if (g->len) {
			char t[48];
			show(t, sizeof t, p->s + noff, nlen);
			return fail(p, noff, "redefinition of group name '%s' as group %d; "
				    "was group %d", t, gid, g->gid);
		}
		g->off = noff;
		g->len = nlen;
		g->gid = gid;
		strbuf_adds(&p->out, "(?P<");
		strbuf_add(&p->out, p->s + noff, nlen);
		strbuf_addc(&p->out, '>');
	} else {
		strbuf_addc(&p->out, '(');
	}
	return push(p, FR_GROUP, start, gid);
}

/* Inline flags after "(?"; p->i at the first flag character. */
static int parse_flags(struct pctx *p, size_t start)
{
	unsigned add = 0, del = 0;
	int c;
	enum { F_I = 1, F_M = 2, F_S = 4, F_X = 8, F_A = 16, F_U = 32 };

	for (;;) {
		c = peek(p, 0);
		if (c < 0)
			return fail(p, p->i, "missing -, : or )");
		if (c == ')' || c == ':' || c == '-')
			break;
		switch (c) {
		case 'i': add |= F_I; break;
		case 'm': add |= F_M; break;
		case 's': add |= F_S; break;
		case 'x': add |= F_X; break;
		case 'a': add |= F_A; break;
		case 'u': add |= F_U; break;
		case 'L':
			return fail(p, p->i, "bad inline flags: cannot use 'L' flag with a str pattern");
		case 't':
			return fail(p, p->i, "the template flag 't' is not supported");
		default:
			return fail(p, p->i, c < 0x80 && is_alpha(c) ? "unknown flag"
								  : "missing -, : or )");
		}
		if ((add & F_A) && (add & F_U))
			return fail(p, p->i + 1, "bad inline flags: flags 'a', 'u' and 'L' are incompatible");
		p->i++;
	}
	if (c == ')') {
		p->i++;
		if (p->depth > 0 || p->started)
			return fail(p, start, "global flags not at the start of the expression");
		if (add & F_I) p->flags |= OPT_CASELESS;
		if (add & F_M) p->flags |= OPT_MULTILINE;
		if (add & F_S) p->flags |= OPT_DOTALL;
		if (add & F_X) p->verbose = 1;
		if (add & F_A) { p->gascii = 1; p->ascii = 1; p->flags |= PYRE_ASCII; }
		if (add & F_U) p->gunicode = 1;
		if (p->gascii && p->gunicode)
			return fail(p, start, "ASCII and UNICODE flags are incompatible");
		return 0;
	}
	if (c == '-') {
		p->i++;
		c = peek(p, 0);
		if (c < 0 || !strchr("imsxauLt", c) || c == 0)
			return fail(p, p->i, c >= 0 && c < 0x80 && is_alpha(c) ? "unknown flag"
									 : "missing flag");
		for (;;) {
			c = peek(p, 0);
			if (c < 0)
				return fail(p, p->i, "missing :");
			if (c == ':')
				break;
			switch (c) {
			case 'i': del |= F_I; break;
			case 'm': del |= F_M; break;
			case 's': del |= F_S; break;
			case 'x': del |= F_X; break;
			case 'a': case 'u': case 'L':
				return fail(p, p->i, "bad inline flags: cannot turn off flags 'a', 'u' and 'L'");
			case 't':
				return fail(p, p->i, "bad inline flags: cannot turn off global flag");
			default:
				return fail(p, p->i, c < 0x80 && is_alpha(c) ? "unknown flag"
									  : "missing :");
			}
			p->i++;
		}
	}
	p->i++; /* ':' */
	if (add & del)
		return fail(p, p->i - 1, "bad inline flags: flag turned on and off");
	if ((add & F_U) && p->gascii)
		return fail(p, start, "local (?u:...) inside an ASCII (?a) pattern is not supported");
	strbuf_adds(&p->out, "(?");
	if (add & F_I) strbuf_addc(&p->out, 'i');
	if (add & F_M) strbuf_addc(&p->out, 'm');
	if (add & F_S) strbuf_addc(&p->out, 's');
	if (del & (F_I | F_M | F_S)) {
		strbuf_addc(&p->out, '-');
		if (del & F_I) strbuf_addc(&p->out, 'i');
		if (del & F_M) strbuf_addc(&p->out, 'm');
		if (del & F_S) strbuf_addc(&p->out, 's');
	}
	strbuf_addc(&p->out, ':');
	if (push(p, FR_GROUP, start, 0) < 0)
		return -1;
	p->verbose = (p->verbose || (add & F_X)) && !(del & F_X);
	if (add & F_A)
		p->ascii = 1;
	return 0;
}

/* "(" at p->i. */
static int parse_group(struct pctx *p)
{
	size_t start = p->i;
	int c;

	p->i++;
	if (peek(p, 0) != '?')
		return open_capture(p, start, 0, 0);
	p->i++;
	c = peek(p, 0);
	if (c < 0)
		return fail(p, p->i, "unexpected end of pattern");
	switch (c) {
	case 'P': {
		size_t off, len;
		p->i++;
		c = peek(p, 0);
		if (c == '<') {
			p->i++;
			if (read_name(p, '>', "group name", &off, &len) < 0)
				return -1;
			return open_capture(p, start, off, len);
		}
		if (c == '=') {
			int gid;
			p->i++;
			if (read_name(p, ')', "group name", &off, &len) < 0)
				return -1;
			gid = name_lookup(p, off, len);
			if (!gid) {
				char t[48];
				show(t, sizeof t, p->s + off, len);
				return fail(p, off, "unknown group name '%s'", t);
			}
			if (!p->closed[gid])
				return fail(p, off, "cannot refer to an open group");
			if (check_lookbehind_ref(p, gid, off) < 0)
				return -1;
			strbuf_adds(&p->out, "(?P=");
			strbuf_add(&p->out, p->s + off, len);
			strbuf_addc(&p->out, ')');
			p->last = L_ITEM;
			return 0;
		}
		if (c < 0)
			return fail(p, p->i, "unexpected end of pattern");
		if (c == '>')
			return fail(p, start, "unknown extension ?P> (PCRE recursion "
				    "(?P>name) is not Python re syntax)");
		return fail(p, start, "unknown extension ?P%c", c >= 0x20 && c < 0x7f ? c : '?');
	}
	case ':':
		p->i++;
		strbuf_adds(&p->out, "(?:");
		return push(p, FR_GROUP, start, 0);
	case '#':
		p->i++;
		for (;;) {
			if (p->i >= p->n)
				return fail(p, start, "missing ), unterminated comment");
			if (p->s[p->i] == '\\') {
				if (p->i + 1 >= p->n)
					return fail(p, p->i, "bad escape (end of pattern)");
				p->i += 2;
				continue;
			}
			if (p->s[p->i++] == ')')
				return 0; /* state untouched: a comment is not an item */
		}
	case '=':
	case '!':
		p->i++;
		strbuf_addf(&p->out, "(?%c", c);
		return push(p, FR_GROUP, start, 0);
	case '<':
		p->i++;
		c = peek(p, 0);
		if (c == '=' || c == '!') {
			p->i++;
			strbuf_addf(&p->out, "(?<%c", c);
			if (push(p, FR_LOOKBEHIND, start, 0) < 0)
				return -1;
			if (p->lb_groups < 0)
				p->lb_groups = p->ngroups + 1;
			return 0;
		}
		if (c < 0)
			return fail(p, p->i, "unexpected end of pattern");
		return fail(p, start, "unknown extension ?<%c (named groups are "
			    "written (?P<name>...) in Python)", c >= 0x20 && c < 0x7f ? c : '?');
	case '(': {
		size_t at = p->i + 1, j = at;
		p->i++;
		while (j < p->n && p->s[j] != ')')
			j += (p->s[j] == '\\' && j + 1 < p->n) ? 2 : 1;
		if (j >= p->n)
			return fail(p, at, j == at ? "missing group name"
						   : "missing ), unterminated name");
		if (j == at)
			return fail(p, at, "missing group name");
		size_t len = j - at;
		int gid = 0, ident = 1, digits = 1;
		for (size_t k = at; k < j; k++) {
			unsigned char ch = (unsigned char)p->s[k];
			if (!(is_alpha(ch) || ch == '_' || (k > at && is_digit(ch))))
				ident = 0;
			if (!is_digit(ch))
				digits = 0;
		}
		char t[48];
		show(t, sizeof t, p->s + at, len);
		p->i = j + 1;
		if (ident) {
			gid = len <= MAX_NAME ? name_lookup(p, at, len) : 0;
			if (!gid)
				return fail(p, at, "unknown group name '%s'", t);
			if (check_lookbehind_ref(p, gid, at) < 0)
				return -1;
			strbuf_adds(&p->out, "(?(<");
			strbuf_add(&p->out, p->s + at, len);
			strbuf_adds(&p->out, ">)");
		} else if (digits) {
			unsigned long v = 0;
			for (size_t k = at; k < j; k++)
				if (v < 1000000ul)
					v = v * 10 + (unsigned long)(p->s[k] - '0');
			if (v == 0)
				return fail(p, at, "bad group number");
			if (v > MAX_REPEAT)
				return fail(p, at, "invalid group reference %lu", v);
			gid = (int)v;
			if (check_lookbehind_ref(p, gid, at) < 0)
				return -1;
			p->crefs = xgrow(p->crefs, &p->crefcap, p->ncref, sizeof *p->crefs);
			p->crefs[p->ncref].gid = gid;
			p->crefs[p->ncref].pos = at;
			p->ncref++;
			strbuf_addf(&p->out, "(?(%d)", gid);
		} else {
			return fail(p, at, "bad character in group name '%s'", t);
		}
		return push(p, FR_COND, start, 0);
	}
	case '>':
		p->i++;
		strbuf_adds(&p->out, "(?>");
		return push(p, FR_GROUP, start, 0);
	default:
		if (strchr("aimsuxLt-", c) && c != 0)
			return parse_flags(p, start);
		return fail(p, start, "unknown extension ?%c (not Python re syntax)",
			    c >= 0x20 && c < 0x7f ? c : '?');
	}
}

static int close_group(struct pctx *p)
{
	struct frame *f;

	if (p->depth == 0)
		return fail(p, p->i, "unbalanced parenthesis");
	f = &p->fr[--p->depth];
	if (f->gid)
		p->closed[f->gid] = 1;
	p->verbose = f->outer_verbose;
	p->ascii = f->outer_ascii;
	p->lb_groups = f->outer_lb;
	p->i++;
	strbuf_addc(&p->out, ')');
	p->last = L_ITEM;
	return 0;
}

static int parse_main(struct pctx *p)
{
	while (p->i < p->n && !p->failed) {
		int c = (unsigned char)p->s[p->i];
		size_t at = p->i;

		if (p->verbose) {
			if (is_pyspace(c)) {
				p->i++;
				continue;
			}
			if (c == '#') {
				while (p->i < p->n && p->s[p->i] != '\n') {
					if (p->s[p->i] == '\\') {
						if (p->i + 1 >= p->n)
							return fail(p, p->i, "bad escape (end of pattern)");
						p->i++;
					}
					p->i++;
				}
				if (p->i < p->n)
					p->i++;
				continue;
			}
		}
		if (c == '(' && peek(p, 1) == '?' && peek(p, 2) == '#') {
			if (parse_group(p) < 0)
				return -1;
			continue;
		}
		if (c == '(' && peek(p, 1) == '?' && peek(p, 2) > 0 &&
		    strchr("aimsuxLt-", peek(p, 2))) {
			/* Global flags leave the pattern "not started"; a local
			 * flag group opens a frame and does start it. */
			int depth = p->depth;
			if (parse_group(p) < 0)
				return -1;
			if (p->depth != depth)
				p->started = 1;
			continue;
		}
		p->started = 1;
		switch (c) {
		case '\\':
			if (parse_escape(p) < 0)
				return -1;
			break;
		case '[':
			if (parse_class(p) < 0)
				return -1;
			p->last = L_ITEM;
			break;
		case '(':
			if (parse_group(p) < 0)
				return -1;
			break;
		case ')':
			if (close_group(p) < 0)
				return -1;
			break;
		case '|':
			p->i++;
			if (p->depth > 0 && p->fr[p->depth - 1].kind == FR_COND &&
			    ++p->fr[p->depth - 1].alts > 1)
				return fail(p, at, "conditional backref with more than two branches");
			strbuf_addc(&p->out, '|');
			p->last = L_NONE;
			break;
		case '*':
		case '+':
		case '?':
			if (quantifier_check(p, at) < 0)
				return -1;
			p->i++;
			strbuf_addc(&p->out, (char)c);
			quantifier_suffix(p);
			break;
		case '{':
			if (parse_brace(p) < 0)
				return -1;
			break;
		case '^':
		case '$':
			p->i++;
			strbuf_addc(&p->out, (char)c);
			p->last = L_AT;
			break;
		case '.':
			p->i++;
			strbuf_addc(&p->out, '.');
			p->last = L_ITEM;
			break;
		default: {
			uint32_t cp;
			size_t len = utf8_len((const unsigned char *)p->s + p->i,
					      p->n - p->i, &cp);
			emit_raw(p, cp, p->i, len, 0);
			p->i += len;
			p->last = L_ITEM;
		}
		}
	}
	if (p->failed)
		return -1;
	if (p->depth > 0)
		return fail(p, p->fr[p->depth - 1].start, "missing ), unterminated subpattern");
	for (size_t k = 0; k < p->ncref; k++)
		if (p->crefs[k].gid > p->ngroups)
			return fail(p, p->crefs[k].pos, "invalid group reference %d",
				    p->crefs[k].gid);
	return 0;
}

/* fail2ban's R_GLOB2LOCFLAGS: "((?i)" and "(?:(?i)" not preceded by a
 * backslash become "(?i:", a plain text substitution done before compiling. */
static char *glob2loc(const char *s, size_t n)
{
	struct strbuf b = STRBUF_INIT;
	size_t i = 0;

	while (i < n) {
		if (s[i] == '(' && (i == 0 || s[i - 1] != '\\')) {
			size_t j = i + 1;
			if (j + 1 < n && s[j] == '?' && s[j + 1] == ':')
				j += 2;
			if (j + 2 < n && s[j] == '(' && s[j + 1] == '?' &&
			    s[j + 2] >= 'a' && s[j + 2] <= 'z') {
				size_t k = j + 2;
				while (k < n && s[k] >= 'a' && s[k] <= 'z')
					k++;
				if (k < n && s[k] == ')') {
					strbuf_add(&b, s + j, k - j);
					strbuf_addc(&b, ':');
					i = k + 1;
					continue;
				}
			}
		}
		strbuf_addc(&b, s[i]);
		i++;
	}
	strbuf_add(&b, "", 0);
	return strbuf_detach(&b);
}

char *pyre_translate_ex(const char *py, unsigned opts, uint32_t *flags,
			char *err, size_t errlen)
{
	struct pctx p;
	char *rewritten = NULL;
	size_t n, nparen = 0, nnamed = 0;
	uint32_t dummy;

	if (!flags)
		flags = &dummy;
	*flags = 0;
	if (err && errlen)
		err[0] = '\0';
	memset(&p, 0, sizeof p);
	p.err = err;
	p.errlen = errlen;
	p.lb_groups = -1;
	if (!py) {
		fail(&p, 0, "no pattern");
		return NULL;
	}
	n = strlen(py);
	if (n > PYRE_MAX_PATTERN) {
		fail(&p, PYRE_MAX_PATTERN, "pattern longer than %d bytes", PYRE_MAX_PATTERN);
		return NULL;
	}
	if (opts & PYRE_OPT_F2B_GLOB2LOC) {
		rewritten = glob2loc(py, n);
		py = rewritten;
		n = strlen(py);
	}
	for (size_t k = 0; k < n;) {
		uint32_t cp;
		size_t len = utf8_len((const unsigned char *)py + k, n - k, &cp);
		if (len == 0) {
			fail(&p, k, "invalid UTF-8 in pattern");
			free(rewritten);
			return NULL;
		}
		if (py[k] == '(') {
			nparen++;
			if (k + 3 < n && py[k + 1] == '?' && py[k + 2] == 'P' && py[k + 3] == '<')
				nnamed++;
		}
		k += len;
	}
	p.s = py;
	p.n = n;
	p.closed = xcalloc(nparen + 2, 1);
	p.namecap = 4;
	while (p.namecap < 2 * nnamed + 2)
		p.namecap *= 2;
	p.names = xcalloc(p.namecap, sizeof *p.names);
	strbuf_add(&p.out, "", 0);

	int rc = parse_main(&p);

	free(p.closed);
	free(p.names);
	free(p.crefs);
	free(rewritten);
	if (rc < 0) {
		strbuf_free(&p.out);
		return NULL;
	}
	*flags = p.flags;
	return strbuf_detach(&p.out);
}

char *pyre_translate(const char *py, uint32_t *flags, char *err, size_t errlen)
{
	return pyre_translate_ex(py, PYRE_OPT_F2B_GLOB2LOC, flags, err, errlen);
}
