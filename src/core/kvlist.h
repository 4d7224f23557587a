/*
 * kvlist - an ordered list of key=value string pairs.
 *
 * Used to pass option sets between modules as plain data (filter options from
 * `name[k=v]`, jail parameters). Keys compare case-insensitively, as in
 * fail2ban's configuration; setting an existing key replaces its value in place.
 * The list owns copies of all strings.
 */
#ifndef MXJAIL_CORE_KVLIST_H
#define MXJAIL_CORE_KVLIST_H

#include <stddef.h>

struct kv {
	char *key;
	char *value;
};

struct kvlist {
	struct kv *v;
	size_t n, cap;
};

#define KVLIST_INIT {NULL, 0, 0}

void kvlist_set(struct kvlist *l, const char *key, const char *value);
/* Returns the value or NULL; valid until the list changes. */
const char *kvlist_get(const struct kvlist *l, const char *key);
int kvlist_del(struct kvlist *l, const char *key);
/* fail2ban's booleans: 1 for true/yes/on/1, 0 for false/no/off/0 (any case),
 * -1 for anything else or NULL. */
int kvlist_bool(const char *v);
/* kvlist_bool() of the key's value; dflt when the key is absent, empty or
 * says something else. */
int kvlist_get_bool(const struct kvlist *l, const char *key, int dflt);
void kvlist_copy(struct kvlist *dst, const struct kvlist *src); /* set every pair of src into dst */
void kvlist_free(struct kvlist *l);

#endif
