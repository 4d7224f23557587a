/*
 * strbuf - a growable, always NUL-terminated byte buffer.
 *
 * The buffer owns its memory; strbuf_detach() hands it to the caller. Binary
 * data (embedded NULs) is allowed: `len` is authoritative, not strlen().
 */
#ifndef MXJAIL_CORE_STRBUF_H
#define MXJAIL_CORE_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *s;      /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
};

#define STRBUF_INIT {NULL, 0, 0}

void strbuf_add(struct strbuf *b, const char *s, size_t n);
void strbuf_adds(struct strbuf *b, const char *s);
void strbuf_addc(struct strbuf *b, char c);
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD. */
void strbuf_add_json(struct strbuf *b, const char *s, size_t n);
void strbuf_reset(struct strbuf *b);
/* Returns the string (never NULL) and leaves b empty; the caller frees. */
char *strbuf_detach(struct strbuf *b);
void strbuf_free(struct strbuf *b);
/* Returns s or "" when nothing was added yet. */
const char *strbuf_str(const struct strbuf *b);

#endif
