/*
 * kvlist - ordered key=value list with case-insensitive keys (see kvlist.h).
 */
#include "core/kvlist.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct kv *find(const struct kvlist *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i].key, key) == 0)
			return &l->v[i];
	return NULL;
}

void kvlist_set(struct kvlist *l, const char *key, const char *value)
{
	struct kv *e = find(l, key);
	if (e) {
		char *nv = xstrdup(value);
		free(e->value);
		e->value = nv;
		return;
	}
	l->v = xgrow(l->v, &l->cap, l->n, sizeof *l->v);
	l->v[l->n].key = xstrdup(key);
	l->v[l->n].value = xstrdup(value);
	l->n++;
}

const char *kvlist_get(const struct kvlist *l, const char *key)
{
	const struct kv *e = find(l, key);
	return e ? e->value : NULL;
}

int kvlist_bool(const char *v)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; v && i < sizeof yes / sizeof *yes; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

int kvlist_get_bool(const struct kvlist *l, const char *key, int dflt)
{
	int b = kvlist_bool(kvlist_get(l, key));
	return b < 0 ? dflt : b;
}

int kvlist_del(struct kvlist *l, const char *key)
{
	struct kv *e = find(l, key);
	if (!e)
		return 0;
	free(e->key);
	free(e->value);
	size_t i = (size_t)(e - l->v);
	memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
	l->n--;
	return 1;
}

void kvlist_copy(struct kvlist *dst, const struct kvlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		kvlist_set(dst, src->v[i].key, src->v[i].value);
}

void kvlist_free(struct kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
