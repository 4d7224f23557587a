/*
 * evspool - append-only store for the evidence lines of tracked failures.
 *
 * INTERFACE: evspool_append() writes one entry (the log lines of one failure)
 * that points back to the record's previous entry and returns its offset;
 * evspool_read() follows such a chain from its newest entry and returns the
 * newest lines, oldest first. Entries are never changed or freed one by one:
 * the owner (jail.c) copies the live chains into a fresh spool when the old
 * one has grown enough, then frees the old one.
 *
 * With a directory the data goes to an unlinked temporary file in it (opened
 * at the first flush, so an idle jail holds no descriptor), written through a
 * small buffer; reads of flushed entries use pread(). Without a directory, or
 * when the file cannot be created or written, the data stays in memory: the
 * evidence is kept either way, only where it lives differs.
 */
#ifndef MXJAIL_JAILS_EVSPOOL_H
#define MXJAIL_JAILS_EVSPOOL_H

#include <stddef.h>
#include <stdint.h>

#define EVSPOOL_NONE UINT64_MAX /* "no entry": the end of every chain */

struct evspool;

/* dir NULL: memory only. The spool keeps its own copy of dir. */
struct evspool *evspool_new(const char *dir);
void evspool_free(struct evspool *s);

/* Appends the lines (NULL counts as "") as one entry after `prev` (an offset
 * from this spool or EVSPOOL_NONE); returns the new entry's offset. n >= 1. */
uint64_t evspool_append(struct evspool *s, uint64_t prev, const char *const *lines, size_t n);

/* Reads the newest `want` lines of the chain ending at `off`, oldest first,
 * into out[] (want slots, each line a new string the caller frees). Returns the
 * number of lines stored: fewer than `want` when the chain is shorter or the
 * file cannot be read. */
size_t evspool_read(struct evspool *s, uint64_t off, size_t want, char **out);

/* Bytes appended so far (the live and the dead ones). */
uint64_t evspool_size(const struct evspool *s);
/* 1 when the spool lives in a file, 0 when in memory (by choice or after an
 * error creating or writing the file). */
int evspool_on_disk(const struct evspool *s);

#endif
