/*
 * strmap - a string -> size_t map (open addressing, FNV-1a), for tables keyed
 * by text that live as long as one command run: replay's ban bookkeeping,
 * report's per-address/network/user/hour tables.
 *
 * INTERFACE: a zeroed struct strmap (STRMAP_INIT) is empty. strmap_slot()
 * returns a pointer to the value of key, or NULL when absent; with create, a
 * missing key is copied in with value `init`. Pointers stay valid until the
 * next create. strmap_free() releases keys and table and leaves it empty.
 */
#ifndef MXJAIL_CORE_STRMAP_H
#define MXJAIL_CORE_STRMAP_H

#include <stddef.h>

struct strmap {
	char **keys;
	size_t *vals;
	size_t cap, n;
};
#define STRMAP_INIT {NULL, NULL, 0, 0}

size_t *strmap_slot(struct strmap *m, const char *key, int create, size_t init);
void strmap_free(struct strmap *m);

#endif
