/*
 * journal - the systemd journal as a log source, one handle for all jails.
 *
 * INTERFACE
 *	journalsrc_new() opens the journal (the system journal, or a directory
 *	for tests and `journalpath`). Each jail registers its `journalmatch`
 *	with journalsrc_add(); journalsrc_start() positions the handle and plugs
 *	it into the event loop. The handle carries the union of all match sets
 *	(so journald filters by index); every entry read is then tested against
 *	each jail's own set and delivered to the jails it fits, as a line in
 *	fail2ban's form `HOSTNAME IDENT[PID]: MESSAGE` (newlines in it shown as
 *	"\n") with the entry's time: _SOURCE_REALTIME_TIMESTAMP when the sender
 *	gave one, else the journal's realtime stamp, as fail2ban 1.0.2 does.
 *	At most `max_per_turn` entries are read per wakeup; the rest follows on
 *	a 0 ms timer.
 *
 * MATCHES
 *	fail2ban syntax: the value is a list of lines, each split like a shell
 *	command line (quotes allowed); words are FIELD=VALUE; `+` separates OR
 *	groups and each line is a group of its own. Within a group the same field
 *	twice means either value, different fields must all match. No prefix or
 *	wildcard matching (journald has none). An empty value matches everything.
 *
 * POSITION
 *	journalsrc_cursor() is the cursor of the last entry read (delivered or
 *	not); saved and handed back in journalsrc_start.cursor it resumes right
 *	after that entry. Journal rotation and vacuuming (files appearing or
 *	going) are followed through sd_journal_process(); on invalidation the
 *	handle is re-seeked to the last cursor so nothing is read twice.
 *
 * OWNERSHIP: the source owns the sd_journal handle and copies of the match
 *	sets; `arg` of each registration belongs to the caller.
 */
#ifndef MXJAIL_SOURCES_JOURNAL_H
#define MXJAIL_SOURCES_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sources/source.h"

struct loop;
struct journalsrc;

struct journalsrc_opts {
	const char *directory;   /* NULL = sd_journal_open(flags) */
	const char *const *files; /* journalfiles: these files (nfiles > 0; before directory) */
	size_t nfiles;
	int flags;               /* for sd_journal_open; 0 = SD_JOURNAL_SYSTEM (fail2ban's default) */
	unsigned max_per_turn;   /* entries per wakeup; 0 = 1000 */
	unsigned poll_ms;        /* safety-net wakeup; 0 = 1000 */
};

struct journalsrc_start {
	const char *cursor;  /* saved cursor, NULL = none */
	double since;        /* without cursor: first entry at or after this realtime
				(seconds); negative = only entries added from now on */
};

/* A parsed journalmatch: OR of groups, each group a list of FIELD=VALUE terms. */
struct journalmatch_term {
	char *field;
	char *value;
	size_t vlen;
};
struct journalmatch_group {
	struct journalmatch_term *t;
	size_t n;
};
struct journalmatch {
	struct journalmatch_group *g;
	size_t n;
};

/* Parses a journalmatch value. Returns 0 or -1 with a message in err. */
int journalmatch_parse(const char *spec, struct journalmatch *m, char *err, size_t errlen);
void journalmatch_clear(struct journalmatch *m);

struct journalsrc *journalsrc_new(struct loop *l, const struct journalsrc_opts *o, char *err,
				  size_t errlen);
/* Registers one match set (a jail). Returns an id >= 0, or -1 with err set.
 * May be called after start (the handle is re-positioned at its cursor). */
int journalsrc_add(struct journalsrc *j, const char *journalmatch, src_line_cb cb, void *arg,
		   char *err, size_t errlen);
int journalsrc_start(struct journalsrc *j, const struct journalsrc_start *st, char *err,
		     size_t errlen);
/* Cursor of the last entry read, malloc'ed (the caller frees), or NULL. */
char *journalsrc_cursor(const struct journalsrc *j);
struct journalsrc *journalsrc_free(struct journalsrc *j);

/* One field of an entry as the journal gives it: "NAME=value" (not terminated). */
struct journalsrc_field {
	const char *data;
	size_t len;
};

/* 1 when the entry's fields fit the match set (an empty set fits everything). */
int journalmatch_fits(const struct journalmatch *m, const struct journalsrc_field *f, size_t n);

/* Builds fail2ban's line for an entry into out (replacing its content) and
 * returns the line's time. realtime/monotonic are the journal's own stamps
 * (microseconds), used when the entry has no _SOURCE_* ones. */
struct strbuf;
double journalsrc_format(const struct journalsrc_field *f, size_t n, uint64_t realtime_usec,
			 uint64_t monotonic_usec, struct strbuf *out);

#endif
