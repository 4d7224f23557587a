/*
 * doveconf - reads `doveconf -n` output (or a plain dovecot.conf) into a tree
 * of settings and nested sections such as `passdb { ... }`,
 * `service imap-login { inet_listener imap { ... } }` and `protocol pop3 { }`.
 *
 * Hand-written because Dovecot's format is its own: `key = value` with the
 * value running to the end of the line, `type [name] {` opening a section,
 * `}` closing it, `#` comments, `key = <file` meaning "contents of file".
 * `!include` lines are noted and skipped: audit reads doveconf's flattened
 * output, where they never appear.
 *
 * Bounds: nesting depth and children per section are capped, lines are cut at
 * 64 KiB, NUL bytes end a line; an unbalanced `}` is a warning, not an error.
 */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/diag.h"
#include "core/xmalloc.h"

#define DC_MAX_DEPTH 16
#define DC_MAX_KIDS 4096
#define DC_MAX_LINE (64 * 1024)

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *trim(char *s)
{
	while (is_blank((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && is_blank((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static struct dc_node *add_kid(struct dc_node *parent, const char *key, unsigned line)
{
	if (parent->nkids >= DC_MAX_KIDS)
		return NULL;
	parent->kids = xgrow(parent->kids, &parent->cap, parent->nkids, sizeof *parent->kids);
	struct dc_node *k = &parent->kids[parent->nkids++];
	memset(k, 0, sizeof *k);
	k->key = xstrdup(key);
	k->line = line;
	return k;
}

int dc_parse(struct dc_conf *dc, const char *file, const char *text, size_t len, struct diag *d)
{
	if (!dc->root.key)
		dc->root.key = xstrdup("");
	/* Sections are addressed by index path, not pointer: add_kid may move arrays. */
	size_t path[DC_MAX_DEPTH];
	int depth = 0, warned = 0;
	unsigned lineno = 0;
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		lineno++;
		size_t n = strnlen(text + i, e - i);
		if (n > DC_MAX_LINE)
			n = DC_MAX_LINE;
		char *line = xstrndup(text + i, n);
		i = e + 1;
		char *s = trim(line);
		struct dc_node *cur = &dc->root;
		for (int k = 0; k < depth; k++)
			cur = &cur->kids[path[k]];
		if (!*s || *s == '#' || *s == '!') {
			free(line);
			continue;
		}
		char *eq = strchr(s, '=');
		size_t sl = strlen(s);
		if (strcmp(s, "}") == 0) {
			if (depth > 0)
				depth--;
			else if (warned++ < 20)
				diag_warn(d, file, lineno, "'}' without an open section");
		} else if (sl > 0 && s[sl - 1] == '{' && !eq) {
			/* "type [name] {"; settings always carry a '=' */
			s[sl - 1] = '\0';
			s = trim(s);
			char *sp = s;
			while (*sp && !is_blank((unsigned char)*sp))
				sp++;
			char *name = "";
			if (*sp) {
				*sp = '\0';
				name = trim(sp + 1);
			}
			if (depth >= DC_MAX_DEPTH) {
				if (warned++ < 20)
					diag_warn(d, file, lineno, "sections nested too deep");
			} else {
				struct dc_node *k = add_kid(cur, s, lineno);
				if (k) {
					k->name = xstrdup(name);
					path[depth++] = cur->nkids - 1;
				}
			}
		} else if (eq) {
			*eq = '\0';
			char *key = trim(s);
			if (*key) {
				struct dc_node *k = add_kid(cur, key, lineno);
				if (k)
					k->value = xstrdup(trim(eq + 1));
			}
		} else if (warned++ < 20) {
			diag_warn(d, file, lineno, "expected 'key = value', 'section {' or '}'");
		}
		free(line);
	}
	if (depth > 0)
		diag_warn(d, file, lineno, "%d section%s not closed", depth, depth == 1 ? "" : "s");
	return 0;
}

const char *dc_get(const struct dc_node *n, const char *key)
{
	const char *v = NULL;
	/* last one wins, as in Dovecot */
	for (size_t i = 0; i < n->nkids; i++)
		if (n->kids[i].value && strcmp(n->kids[i].key, key) == 0)
			v = n->kids[i].value;
	return v;
}

void dc_set(struct dc_node *n, const char *key, const char *value)
{
	for (size_t i = 0; i < n->nkids; i++)
		if (n->kids[i].value && strcmp(n->kids[i].key, key) == 0) {
			free(n->kids[i].value);
			n->kids[i].value = xstrdup(value);
			return;
		}
	struct dc_node *k = add_kid(n, key, 0);
	if (k)
		k->value = xstrdup(value);
}

static void node_free(struct dc_node *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		node_free(&n->kids[i]);
	free(n->kids);
	free(n->key);
	free(n->value);
	free(n->name);
}

void dc_conf_free(struct dc_conf *dc)
{
	node_free(&dc->root);
	memset(dc, 0, sizeof *dc);
}
