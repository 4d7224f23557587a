/*
 * source - what every log source (file follower, journal) hands to its user.
 *
 * A source delivers complete lines, one callback per line. `line` points into
 * the source's own buffer and is valid only during the call; it is not
 * NUL-terminated and may contain NUL bytes (`len` is authoritative); the
 * trailing newline (and any "\r" before it) is removed. `time` is the line's
 * time in seconds since the epoch when the source knows it (journal entries),
 * or negative when the caller has to find the date in the text (files).
 */
#ifndef MXJAIL_SOURCES_SOURCE_H
#define MXJAIL_SOURCES_SOURCE_H

#include <stddef.h>

typedef void (*src_line_cb)(const char *line, size_t len, double time, void *arg);

#endif
