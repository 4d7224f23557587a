/*
 * ini - the fail2ban INI dialect: one file into sections, and a "unit"
 * (NAME.conf, NAME.d/NN.conf, NAME.local, NAME.d/NN.local with [INCLUDES]) into
 * one merged store.
 *
 * The dialect is Python configparser's as fail2ban configures it: `key = v`
 * or `key: v`, keys folded to lower case, section names case-sensitive,
 * indented continuation lines, blank lines kept inside values, `#`/`;` line
 * comments and ` ;` inline comments, [DEFAULT] shared by every section.
 * Merging files keeps, per overridden key, the value it had before
 * ("KNOWN/<section>" pseudo-sections) for %(known/x)s, and folds conditional
 * sections such as [Init?family=inet6] into [Init] as "key?family=inet6".
 *
 * Interface: an ini_sect is an insertion-ordered map of exact-match keys (it
 * doubles as the ordered dictionary of the interpolation code). Everything is
 * owned by the struct ini; ini_free() releases it. Errors go to a diag as
 * "file:line: what was expected".
 */
#ifndef MXJAIL_CONFIG_INI_H
#define MXJAIL_CONFIG_INI_H

#include <stddef.h>

struct diag;

struct ini_opt {
	char *key;
	char *value;      /* NULL only in interpolation maps ("no value") */
	char *file;       /* where the value was defined; NULL when synthesised */
	unsigned line;    /* line of the key */
	unsigned *lines;  /* file line of each '\n'-separated line of value */
	size_t nlines;
};

struct ini_sect {
	char *name;
	struct ini_opt *opts;
	size_t n, cap;
	char *file;       /* first definition */
	unsigned line;
};

struct ini {
	struct ini_sect defaults;  /* [DEFAULT] */
	struct ini_sect *sects;    /* in order of first appearance */
	size_t n, cap;
};

#define INI_MAX_FILE (16u << 20) /* larger files are refused */

/* Parses one file held in memory. name is used in messages. Returns 0, or -1
 * when an error was added (what was parsed before it stays in out). */
int ini_parse(struct ini *out, const char *name, const char *buf, size_t len, struct diag *d);
/* Reads and parses one file. Returns 1 when read, 0 when it does not exist,
 * -1 on error (added to d). */
int ini_parse_file(struct ini *out, const char *path, struct diag *d);

/* Reads the unit base.conf, base.d/ *.conf (sorted), base.local, base.d/ *.local
 * (sorted) with their includes, merging them in fail2ban's order into out.
 * Returns the number of files read (0: none exists), or -1 on error. */
int ini_read_unit(struct ini *out, const char *base, struct diag *d);
/* Same for an explicit list of files (each must exist). */
int ini_read_files(struct ini *out, char *const *files, size_t nfiles, struct diag *d);

void ini_free(struct ini *ini);

struct ini_sect *ini_sect_find(const struct ini *ini, const char *name);
/* Finds or appends a section. */
struct ini_sect *ini_sect_add(struct ini *ini, const char *name);
struct ini_opt *ini_opt_find(const struct ini_sect *s, const char *key);
/* Sets key (exact match) to value, replacing in place or appending. file may
 * be NULL. Returns the option. */
struct ini_opt *ini_opt_set(struct ini_sect *s, const char *key, const char *value,
			    const char *file, unsigned line);
/* Copies src (value and origin) into s under key. */
struct ini_opt *ini_opt_copy(struct ini_sect *s, const char *key, const struct ini_opt *src);
void ini_sect_clear(struct ini_sect *s);

#endif
