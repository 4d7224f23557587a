/*
 * pyre - translates Python `re` regular expressions into PCRE2 syntax.
 *
 * fail2ban filters are written for Python's re module. PCRE2 understands most
 * of it (including (?P<name>...) and (?P=name)); this module rewrites what
 * differs - global inline flags placed mid-pattern, \Z, {,n}, \uXXXX/\UXXXXXXXX,
 * Python-only escapes - and refuses what cannot be translated with a clear
 * error instead of silently changing the meaning.
 */
#ifndef MXJAIL_FILTERS_PYRE_H
#define MXJAIL_FILTERS_PYRE_H

#include <stddef.h>
#include <stdint.h>

/* Returns a malloc'd PCRE2 pattern and sets *flags to PCRE2 compile options
 * implied by global inline flags (PCRE2_CASELESS, PCRE2_MULTILINE, PCRE2_DOTALL,
 * PCRE2_EXTENDED...). On failure returns NULL and writes a message to err. */
char *pyre_translate(const char *py, uint32_t *flags, char *err, size_t errlen);

#endif
