/*
 * log - the daemon's and CLI's logging: stderr, syslog or a file.
 *
 * log_warn() appends strerror(errno); log_warnx() does not. fatal()/fatalx()
 * log and exit(1). The NOTICE level carries the "NOTICE [jail] Ban ADDR" lines
 * that the recidive filter reads, so its format is part of the interface.
 * The logger's settings are process-wide by nature (one stderr, one syslog).
 */
#ifndef MXJAIL_CORE_LOG_H
#define MXJAIL_CORE_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_FILE };

/* path is used for LOG_TO_FILE only. Returns 0 or -errno. */
int log_init(enum log_target target, const char *path, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG" (any case); -1 if unknown. */
int log_level_parse(const char *s);

/* Whether messages of level lvl are written (to skip preparing them). */
int log_enabled(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
