/*
 * hosttags - expands fail2ban's regex tags (<HOST>, <ADDR>, <IP4>, <IP6>,
 * <DNS>, <CIDR>, <SUBNET>, <F-ID/>, <F-PORT/>, <SKIPLINES>, <F-NAME>...</F-NAME>)
 * into named-group regex text, still in Python `re` syntax (pyre.c translates
 * the result for PCRE2 afterwards).
 *
 * The group names produced (ip4, ip6, dns, cidr, fid, fport, skiplinesN and the
 * lower-cased custom names) are the contract with filter.c, which reads the
 * failure id and F- values back by these names. A tag that is not one of these
 * is left as written, so literal text like "<user>" in a regex still works.
 */
#include "filters/hosttags.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/strbuf.h"
#include "core/xmalloc.h"

#define RE_IP4 "(?:::f{4,6}:)?(?P<ip4>(?:\\d{1,3}\\.){3}\\d{1,3})"
#define RE_IP6 "(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):))"
#define RE_DNS "(?P<dns>[\\w\\-.^_]*\\w)"
#define RE_ADDR "\\[?(?:" RE_IP4 "|" RE_IP6 ")\\]?"
#define RE_HOST "(?:" RE_ADDR "|" RE_DNS ")"
#define RE_CIDR "(?P<cidr>\\d+)"
#define RE_SUBNET "\\[?(?:" RE_IP4 "|" RE_IP6 ")(?:/" RE_CIDR ")?\\]?"

static const struct {
	const char *tag;
	const char *re;
} fixed_tags[] = {
	{"IP4", RE_IP4},       {"F-IP4/", RE_IP4},       {"IP6", RE_IP6},
	{"F-IP6/", RE_IP6},    {"ADDR", RE_ADDR},        {"F-ADDR/", RE_ADDR},
	{"CIDR", RE_CIDR},     {"F-CIDR/", RE_CIDR},     {"SUBNET", RE_SUBNET},
	{"F-SUBNET/", RE_SUBNET}, {"DNS", RE_DNS},       {"F-DNS/", RE_DNS},
	{"F-ID/", "(?P<fid>\\S+)"}, {"F-PORT/", "(?P<fport>\\w+)"},
};

/* Group name for a custom tag: lower case, with fail2ban's two renames. */
static void custom_name(const char *tn, size_t n, struct strbuf *out)
{
	char low[128];
	if (n >= sizeof low)
		n = sizeof low - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)tn[i]);
	low[n] = '\0';
	if (strcmp(low, "id") == 0)
		strbuf_adds(out, "fid");
	else if (strcmp(low, "port") == 0)
		strbuf_adds(out, "fport");
	else
		strbuf_adds(out, low);
}

static int is_tagchar(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '-';
}

/* A custom tag name after "F-" is upper case letters, digits, '_' and '-'. */
static int is_custom(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isupper((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
		      s[i] == '-'))
			return 0;
	return 1;
}

char *hosttags_expand(const char *re, int usedns_no, unsigned *nskiplines)
{
	struct strbuf out = STRBUF_INIT;
	/* Names of custom tags opened so far: a close tag only closes an opened one. */
	struct strbuf opened = STRBUF_INIT;
	unsigned nl = 0;
	const char *p = re;
	strbuf_add(&out, "", 0);
	while (*p) {
		if (*p != '<') {
			strbuf_addc(&out, *p++);
			continue;
		}
		/* Match </?[\w\-]+/?> at p. */
		const char *q = p + 1;
		int closing = 0;
		if (*q == '/') {
			closing = 1;
			q++;
		}
		const char *ns = q;
		while (*q && is_tagchar((unsigned char)*q))
			q++;
		const char *ne = q;
		if (ne == ns) {
			strbuf_addc(&out, *p++);
			continue;
		}
		int selfclose = 0;
		if (*q == '/') {
			selfclose = 1;
			q++;
		}
		if (*q != '>') {
			strbuf_addc(&out, *p++);
			continue;
		}
		q++;
		/* tn is the tag without the angle brackets (may start with '/'). */
		const char *tn = p + 1;
		size_t tnlen = (size_t)(q - 1 - tn);
		const char *repl = NULL;
		if (!closing && !selfclose && tnlen == 4 && memcmp(tn, "HOST", 4) == 0) {
			repl = usedns_no ? RE_ADDR : RE_HOST;
		} else if (!closing && !selfclose && tnlen == 9 && memcmp(tn, "SKIPLINES", 9) == 0) {
			strbuf_addf(&out, "\\n(?P<skiplines%u>(?:(?:.*\\n)*?))", nl);
			nl++;
			p = q;
			continue;
		} else if (!closing) {
			for (size_t i = 0; i < sizeof fixed_tags / sizeof fixed_tags[0]; i++)
				if (strlen(fixed_tags[i].tag) == tnlen &&
				    memcmp(fixed_tags[i].tag, tn, tnlen) == 0)
					repl = fixed_tags[i].re;
		}
		if (repl) {
			strbuf_adds(&out, repl);
			p = q;
			continue;
		}
		/* Custom F-NAME tags (upper case only, like fail2ban). */
		if (!selfclose && (size_t)(ne - ns) > 2 && ns[0] == 'F' && ns[1] == '-' &&
		    is_custom(ns + 2, (size_t)(ne - ns - 2))) {
			const char *cn = ns + 2;
			size_t cl = (size_t)(ne - cn);
			struct strbuf key = STRBUF_INIT;
			strbuf_addc(&key, '\x01');
			strbuf_add(&key, cn, cl);
			strbuf_addc(&key, '\x01');
			if (closing) {
				if (strstr(strbuf_str(&opened), strbuf_str(&key)))
					strbuf_addc(&out, ')');
				else
					strbuf_add(&out, p, (size_t)(q - p));
			} else {
				strbuf_adds(&opened, strbuf_str(&key));
				strbuf_adds(&out, "(?P<");
				custom_name(cn, cl, &out);
				strbuf_addc(&out, '>');
			}
			strbuf_free(&key);
			p = q;
			continue;
		}
		/* Anything else stays as written. */
		strbuf_add(&out, p, (size_t)(q - p));
		p = q;
	}
	strbuf_free(&opened);
	if (nskiplines)
		*nskiplines = nl;
	return strbuf_detach(&out);
}
