/*
 * sdlib - libsystemd, loaded when a feature needs it.
 *
 * Only journal sources and systemd's service notification use libsystemd,
 * and with it come six more libraries (gcrypt, gpg-error, zstd, lzma, lz4,
 * cap): about 1 MiB of resident memory in a daemon that follows log files
 * and was not started by systemd. So the library is opened (core/dynlib) by
 * the part that needs it, which owns the table of its functions below and
 * closes it with the part (the dynamic loader counts the openings).
 *
 * INTERFACE
 *	sdlib_open() loads libsystemd.so.0 and fills every pointer; -1 with a
 *	message in err when the library or one of its functions is missing.
 *	Call the functions through the table: s->journal_next(j) for
 *	sd_journal_next(j). sdlib_close() unloads (safe on a zeroed table).
 */
#ifndef MXJAIL_CORE_SDLIB_H
#define MXJAIL_CORE_SDLIB_H

#include <stddef.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/* X(name): the function sd_<name>. */
#define SDLIB_FUNCTIONS(X)                                                                   \
	X(notify) X(watchdog_enabled) X(journal_open) X(journal_open_directory)                \
	X(journal_open_files) X(journal_close) X(journal_add_match)                            \
	X(journal_add_disjunction) X(journal_flush_matches) X(journal_seek_cursor)             \
	X(journal_test_cursor) X(journal_get_cursor) X(journal_seek_realtime_usec)             \
	X(journal_seek_tail) X(journal_next) X(journal_previous) X(journal_process)            \
	X(journal_get_fd) X(journal_restart_data) X(journal_enumerate_available_data)          \
	X(journal_get_realtime_usec) X(journal_get_monotonic_usec)

struct sdlib {
	void *dl;
#define SDLIB_MEMBER(name) __typeof__(sd_##name) *name;
	SDLIB_FUNCTIONS(SDLIB_MEMBER)
#undef SDLIB_MEMBER
};

int sdlib_open(struct sdlib *s, char *err, size_t errlen);
void sdlib_close(struct sdlib *s);

#endif
