/*
 * log - logging to stderr, syslog or a file (see log.h).
 *
 * File lines look like fail2ban's ("2026-11-23 18:57:48,123 mxjail[PID]: NOTICE
 * [sshd] Ban 192.0.2.1") so that the recidive filter and existing habits work.
 */
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	enum log_target target;
	enum log_level level;
	FILE *file;
} L = {LOG_TO_STDERR, LOG_LVL_NOTICE, NULL};

static const char *const names[] = {"ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"};

int log_init(enum log_target target, const char *path, enum log_level level)
{
	if (L.file) {
		fclose(L.file);
		L.file = NULL;
	}
	if (target == LOG_TO_FILE) {
		L.file = fopen(path, "ae");
		if (!L.file)
			return -errno;
		setvbuf(L.file, NULL, _IOLBF, 0);
	} else if (target == LOG_TO_SYSLOG) {
		openlog("mxjail", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
	L.target = target;
	L.level = level;
	return 0;
}

void log_set_level(enum log_level level)
{
	L.level = level;
}

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "CRITICAL") == 0)
		return LOG_LVL_ERROR;
	return -1;
}

static void vlog(enum log_level lvl, const char *fmt, va_list ap, int err)
{
	if (lvl > L.level)
		return;
	char msg[4096];
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (err && n >= 0 && (size_t)n < sizeof msg)
		snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(err));
	if (L.target == LOG_TO_SYSLOG) {
		static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG};
		syslog(prio[lvl], "%s", msg);
		return;
	}
	FILE *f = L.target == LOG_TO_FILE && L.file ? L.file : stderr;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	localtime_r(&tv.tv_sec, &tm);
	char ts[32];
	strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(f, "%s,%03ld mxjail[%ld]: %-7s %s\n", ts, (long)(tv.tv_usec / 1000),
		(long)getpid(), names[lvl], msg);
}

#define LOGFN(name, lvl, witherr)                \
	void name(const char *fmt, ...)            \
	{                                          \
		int e = errno;                     \
		va_list ap;                        \
		va_start(ap, fmt);                 \
		vlog(lvl, fmt, ap, witherr ? e : 0); \
		va_end(ap);                        \
	}

LOGFN(log_warn, LOG_LVL_WARNING, 1)
LOGFN(log_warnx, LOG_LVL_WARNING, 0)
LOGFN(log_notice, LOG_LVL_NOTICE, 0)
LOGFN(log_info, LOG_LVL_INFO, 0)
LOGFN(log_debug, LOG_LVL_DEBUG, 0)

int log_enabled(enum log_level lvl)
{
	return lvl <= L.level;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, fmt, ap, 0);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, e);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap, 0);
	va_end(ap);
	exit(1);
}
