/*
 * hash - FNV-1a over bytes or a C string, the hash behind mxjail's in-memory
 * tables (jail records, ignore lists, maps, memo keys). Not for anything
 * kept across restarts: names derived from hashes (firewall sets) keep their
 * own code so they never change. Tables keyed by text an attacker picks
 * either cap their probe length or mix in a seed (see policy_hash()).
 */
#ifndef MXJAIL_CORE_HASH_H
#define MXJAIL_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SEED 1469598103934665603ULL /* the start value used so far */

static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	return h;
}

static inline uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

#endif
