/*
 * strmap - string -> size_t map with linear probing; see strmap.h.
 */
#include "core/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/xmalloc.h"

/* Doubles the table (at least 64 slots), keeping it at most half full. */
static void grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	char **keys = xcalloc(cap, sizeof *keys);
	size_t *vals = xcalloc(cap, sizeof *vals);
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t k = hash_str(HASH_SEED, m->keys[i]) & (cap - 1);
		while (keys[k])
			k = (k + 1) & (cap - 1);
		keys[k] = m->keys[i];
		vals[k] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
}

size_t *strmap_slot(struct strmap *m, const char *key, int create, size_t init)
{
	if (create && (m->n + 1) * 2 > m->cap)
		grow(m);
	if (!m->cap)
		return NULL;
	size_t k = hash_str(HASH_SEED, key) & (m->cap - 1);
	while (m->keys[k]) {
		if (strcmp(m->keys[k], key) == 0)
			return &m->vals[k];
		k = (k + 1) & (m->cap - 1);
	}
	if (!create)
		return NULL;
	m->keys[k] = xstrdup(key);
	m->vals[k] = init;
	m->n++;
	return &m->vals[k];
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}
