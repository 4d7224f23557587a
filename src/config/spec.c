/*
 * spec - "name[k=v, k2="a,b"][k3='x']" filter/action specifications and the
 * splitting of action lists, with fail2ban's exact quoting rules.
 *
 * fail2ban defines this syntax by three regular expressions (option list,
 * one option, list splitting) whose backtracking decides the corner cases:
 * an unquoted value runs to the next ',' or ']', a quoted one to its closing
 * quote, "][" starts a new option group, and a bracket that does not parse
 * makes the whole word a plain name. Reproducing those corner cases by hand
 * would be a second, subtly different grammar, so the same expressions run
 * here under PCRE2 (which the filter engine links anyway), with match limits
 * so that a pathological value fails with an error instead of spinning.
 *
 * Interface: config_spec_parse() and config_spec_split() in config.h.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/kvlist.h"
#include "core/xmalloc.h"

/* helpers.py OPTION_CRE, OPTION_EXTRACT_CRE and OPTION_SPLIT_CRE. */
static const char RE_OPTION[] = "^([^\\[]+)(?:\\[(.*)\\])?\\s*$";
static const char RE_EXTRACT[] =
	"\\s*([\\w\\-_\\.]+)=(?:\"([^\"]*)\"|'([^']*)'|([^,\\]]*))"
	"(?:,|\\]\\s*\\[|$|(?P<wrngA>.+))|,?\\s*$|(?P<wrngB>.+)";
static const char RE_SPLIT[] =
	"(?:[^\\[\\s]+(?:\\s*\\[\\s*(?:[\\w\\-_\\.]+=(?:\"[^\"]*\"|'[^']*'|[^,\\]]*)\\s*"
	"(?:,|\\]\\s*\\[)?\\s*)*\\])?\\s*|\\S+)(?=\\n\\s*|\\s+|$)";

#define SPEC_MATCH_LIMIT 2000000u
#define SPEC_DEPTH_LIMIT 20000u
#define SPEC_MAX_LEN (1u << 20)

struct rx {
	pcre2_code *code;
	pcre2_match_data *md;
	pcre2_match_context *mc;
};

static int rx_open(struct rx *r, const char *pattern)
{
	int ec;
	PCRE2_SIZE eo;
	r->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_DOTALL, &ec, &eo,
				NULL);
	if (!r->code)
		return -1;
	r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
	r->mc = pcre2_match_context_create(NULL);
	if (!r->md || !r->mc)
		abort();
	pcre2_set_match_limit(r->mc, SPEC_MATCH_LIMIT);
	pcre2_set_depth_limit(r->mc, SPEC_DEPTH_LIMIT);
	return 0;
}

static void rx_close(struct rx *r)
{
	pcre2_match_data_free(r->md);
	pcre2_match_context_free(r->mc);
	pcre2_code_free(r->code);
}

static int rx_match(struct rx *r, const char *s, size_t len, size_t start, uint32_t opts)
{
	return pcre2_match(r->code, (PCRE2_SPTR)s, len, start, opts, r->md, r->mc);
}

/* Group g of the last match, or NULL when it did not take part. */
static char *group(struct rx *r, const char *s, int g)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	if (ov[2 * g] == PCRE2_UNSET)
		return NULL;
	return xstrndup(s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

/* str.strip() for the ASCII whitespace Python knows. */
static char *strip(const char *s)
{
	size_t a = 0, b = strlen(s);
	while (a < b && (s[a] == ' ' || (s[a] >= '\t' && s[a] <= '\r') || (s[a] >= 0x1c && s[a] <= 0x1f)))
		a++;
	while (b > a && (s[b - 1] == ' ' || (s[b - 1] >= '\t' && s[b - 1] <= '\r') ||
			 (s[b - 1] >= 0x1c && s[b - 1] <= 0x1f)))
		b--;
	return xstrndup(s + a, b - a);
}

static int too_complex(int rc, char *err, size_t errlen)
{
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_NOMEMORY) {
		snprintf(err, errlen, "expected a simpler option list (too complex to split)");
		return 1;
	}
	return 0;
}

int config_spec_parse(const char *spec, char **name, struct kvlist *opts, char *err, size_t errlen)
{
	*name = NULL;
	size_t len = strlen(spec);
	if (len > SPEC_MAX_LEN) {
		snprintf(err, errlen, "expected a specification shorter than %u bytes", SPEC_MAX_LEN);
		return -1;
	}
	struct rx ro, rex;
	if (rx_open(&ro, RE_OPTION) < 0)
		abort();
	if (rx_open(&rex, RE_EXTRACT) < 0)
		abort();
	int ret = -1;
	int rc = rx_match(&ro, spec, len, 0, PCRE2_ANCHORED);
	if (rc < 0) {
		if (!too_complex(rc, err, errlen))
			snprintf(err, errlen,
				 "expected NAME or NAME[key=value,...] with balanced brackets in '%.60s'",
				 spec);
		goto out;
	}
	char *nm = group(&ro, spec, 1);
	char *optstr = rc > 2 ? group(&ro, spec, 2) : NULL;
	if (optstr && *optstr) {
		size_t ol = strlen(optstr), pos = 0;
		uint32_t flags = 0;
		int wA = (int)pcre2_substring_number_from_name(rex.code, (PCRE2_SPTR) "wrngA");
		int wB = (int)pcre2_substring_number_from_name(rex.code, (PCRE2_SPTR) "wrngB");
		while (pos <= ol) {
			rc = rx_match(&rex, optstr, ol, pos, flags);
			if (rc == PCRE2_ERROR_NOMATCH) {
				if (!flags || pos >= ol)
					break;
				pos++;
				flags = 0;
				continue;
			}
			if (rc < 0) {
				if (!too_complex(rc, err, errlen))
					snprintf(err, errlen, "cannot parse options of '%.60s'", spec);
				free(nm);
				free(optstr);
				goto out;
			}
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(rex.md);
			char *bad = NULL;
			if ((bad = group(&rex, optstr, wA)) != NULL) {
				char *key = group(&rex, optstr, 1);
				snprintf(err, errlen,
					 "expected ',' or ']' after option '%s' in '%.60s', found '%.25s'",
					 key ? key : "", spec, bad);
				free(key);
			} else if ((bad = group(&rex, optstr, wB)) != NULL) {
				snprintf(err, errlen,
					 "expected key=value in the options of '%.60s', found '%.25s'", spec,
					 bad);
			}
			if (bad) {
				free(bad);
				free(nm);
				free(optstr);
				kvlist_free(opts);
				goto out;
			}
			char *key = group(&rex, optstr, 1);
			if (key && *key) {
				char *v = NULL;
				for (int g = 2; g <= 4 && !v; g++)
					v = group(&rex, optstr, g);
				char *k2 = strip(key), *v2 = strip(v ? v : "");
				kvlist_set(opts, k2, v2);
				free(k2);
				free(v2);
				free(v);
			}
			free(key);
			if (ov[1] == ov[0]) {
				pos = ov[1];
				flags = PCRE2_NOTEMPTY_ATSTART;
			} else {
				pos = ov[1];
				flags = 0;
			}
		}
	}
	free(optstr);
	*name = nm;
	ret = 0;
out:
	rx_close(&ro);
	rx_close(&rex);
	return ret;
}

int config_spec_split(const char *list, char ***items, size_t *nitems, char *err, size_t errlen)
{
	*items = NULL;
	*nitems = 0;
	size_t len = strlen(list);
	if (len > SPEC_MAX_LEN) {
		snprintf(err, errlen, "expected a list shorter than %u bytes", SPEC_MAX_LEN);
		return -1;
	}
	struct rx r;
	if (rx_open(&r, RE_SPLIT) < 0)
		abort();
	size_t pos = 0, cap = 0;
	uint32_t flags = 0;
	int ret = 0;
	while (pos <= len) {
		int rc = rx_match(&r, list, len, pos, flags);
		if (rc == PCRE2_ERROR_NOMATCH) {
			if (!flags || pos >= len)
				break;
			pos++;
			flags = 0;
			continue;
		}
		if (rc < 0) {
			if (!too_complex(rc, err, errlen))
				snprintf(err, errlen, "cannot split the list '%.60s'", list);
			ret = -1;
			break;
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r.md);
		char *m = xstrndup(list + ov[0], ov[1] - ov[0]);
		char *s = strip(m);
		free(m);
		if (*s) {
			*items = xgrow(*items, &cap, *nitems, sizeof **items);
			(*items)[(*nitems)++] = s;
		} else {
			free(s);
		}
		pos = ov[1];
		flags = ov[1] == ov[0] ? PCRE2_NOTEMPTY_ATSTART : 0;
	}
	rx_close(&r);
	if (ret < 0) {
		for (size_t i = 0; i < *nitems; i++)
			free((*items)[i]);
		free(*items);
		*items = NULL;
		*nitems = 0;
	}
	return ret;
}
