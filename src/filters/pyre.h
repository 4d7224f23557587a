/*
 * pyre - translates Python `re` regular expressions into PCRE2 syntax.
 *
 * fail2ban filters are written for Python's re module. PCRE2 understands most
 * of it (including (?P<name>...) and (?P=name)); this module rewrites what
 * differs - global inline flags placed mid-pattern, \Z, {,n}, \uXXXX/\UXXXXXXXX,
 * Python-only escapes - and refuses what cannot be translated with a clear
 * error instead of silently changing the meaning.
 *
 * The result is meant for pcre2_compile() with PCRE2_UTF | PCRE2_UCP |
 * PCRE2_MATCH_INVALID_UTF, the default newline convention LF (Python's `.`
 * and `$` only know "\n"), plus the returned flags. See pyre.c for the exact
 * list of rules and the known differences.
 */
#ifndef MXJAIL_FILTERS_PYRE_H
#define MXJAIL_FILTERS_PYRE_H

#include <stddef.h>
#include <stdint.h>

/* Not a PCRE2 option: set in *flags when the pattern starts with (?a) (ASCII
 * classes). The caller then compiles without PCRE2_UCP and must clear this
 * bit before pcre2_compile(), which refuses unknown option bits. The value is
 * a bit that PCRE2 10.42 leaves unused in its compile options. */
#define PYRE_ASCII 0x10000000u

/* Options for pyre_translate_ex(). */
#define PYRE_OPT_F2B_GLOB2LOC 0x1u /* apply fail2ban's ((?i)x) -> (?i:x) rewrite */

/* Patterns longer than this are refused (fail2ban's longest are a few KiB). */
#define PYRE_MAX_PATTERN (1024 * 1024)

/* Returns a malloc'd PCRE2 pattern (the caller frees) and sets *flags to PCRE2
 * compile options implied by global inline flags (PCRE2_CASELESS,
 * PCRE2_MULTILINE, PCRE2_DOTALL) and PYRE_ASCII. (?x) is applied here (blanks
 * and comments are dropped), so PCRE2_EXTENDED is never returned.
 * On failure returns NULL and writes "what, at position N" to err (N is a
 * byte offset into py as given). Same as pyre_translate_ex(py,
 * PYRE_OPT_F2B_GLOB2LOC, ...): what fail2ban's Regex class compiles
 * (failregex, ignoreregex, prefregex). */
char *pyre_translate(const char *py, uint32_t *flags, char *err, size_t errlen);

/* opts 0 translates exactly what Python's re.compile() sees (datepattern);
 * positions in errors then refer to py itself, otherwise to the rewritten
 * text, which differs only after a ((?i)...) group. */
char *pyre_translate_ex(const char *py, unsigned opts, uint32_t *flags,
			char *err, size_t errlen);

#endif
