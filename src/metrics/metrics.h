/*
 * metrics - Prometheus text exposition (format 0.0.4): a builder for one
 * scrape and a registry of collectors that fill it.
 *
 * INTERFACE: nothing is stored between scrapes. Whoever owns counters keeps
 * them in its own structs and registers a collector (metrics_register); on
 * each scrape metrics_render() calls every collector with a fresh builder,
 * and the collector writes families and samples:
 *
 *     static void policy_collect(struct metrics_buf *b, void *arg) {
 *         struct policy *p = arg;
 *         metrics_family(b, "mxjail_policy_requests_total", METRICS_COUNTER,
 *                        "Policy requests answered, by check and verdict.");
 *         metrics_sample2(b, "check", "greylist", "verdict", "defer", p->n_defer);
 *     }
 *     metrics_register(reg, policy_collect, p);
 *
 * A family may be opened again later in the same scrape (by a loop over jails
 * or by a second collector): its samples are grouped under one HELP/TYPE pair
 * in the output, as the format requires. Names that break the metric or label
 * name grammar are refused (-EINVAL, nothing written) instead of producing a
 * scrape Prometheus would reject whole. Label values are escaped (\\, \", \n)
 * and invalid UTF-8 bytes become U+FFFD; values print as integers when they
 * are, else with 17 significant digits, and NaN/+Inf/-Inf as the format spells them.
 *
 * Ownership: the registry stores (cb, arg) pairs only; the caller keeps arg
 * alive until metrics_unregister(). Single-threaded, like the daemon.
 */
#ifndef MXJAIL_METRICS_METRICS_H
#define MXJAIL_METRICS_METRICS_H

#include <stddef.h>

#include "core/strbuf.h"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_UNTYPED };

struct metrics_buf;
struct metrics;

typedef void (*metrics_collect_cb)(struct metrics_buf *b, void *arg);

/* ---- the builder ---- */

struct metrics_buf *metrics_buf_new(void);
/* Appends the scrape (families in first-opened order) to out and resets b. */
void metrics_buf_finish(struct metrics_buf *b, struct strbuf *out);
struct metrics_buf *metrics_buf_free(struct metrics_buf *b);

/* Opens (or re-opens) a family; following samples belong to it. help may be
 * NULL. Returns 0, or -EINVAL for a bad name or a type that differs from the
 * family's first opening (samples are then dropped until the next family). */
int metrics_family(struct metrics_buf *b, const char *name, enum metrics_type t,
		   const char *help);
/* One sample of the open family. labels: NULL or a NULL-terminated list of
 * name, value pairs. Returns 0, or -EINVAL (no open family, bad label name,
 * odd list) with nothing written. */
int metrics_sample(struct metrics_buf *b, const char *const *labels, double v);
/* Shorthands for no, one and two labels. */
int metrics_sample0(struct metrics_buf *b, double v);
int metrics_sample1(struct metrics_buf *b, const char *k, const char *val, double v);
int metrics_sample2(struct metrics_buf *b, const char *k1, const char *v1, const char *k2,
		    const char *v2, double v);
/* Family + one unlabelled sample in one call. */
int metrics_single(struct metrics_buf *b, const char *name, enum metrics_type t,
		   const char *help, double v);

/* Name grammar checks: [a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*
 * (label names starting with "__" are reserved). 1 = valid. */
int metrics_name_ok(const char *name);
int metrics_label_ok(const char *name);

/* Appends s as a label value (escaped, without quotes). */
void metrics_escape_label(struct strbuf *out, const char *s);

/* The standard process_* families from /proc/self (resident and virtual
 * memory, CPU seconds, open and max fds, start time). Skips what it cannot read. */
void metrics_process(struct metrics_buf *b);

/* ---- the registry ---- */

struct metrics *metrics_new(void);
struct metrics *metrics_free(struct metrics *m);
/* Adds a collector; they run in registration order. The same (cb, arg) pair
 * twice is registered once. */
void metrics_register(struct metrics *m, metrics_collect_cb cb, void *arg);
/* Removes the (cb, arg) pair; a no-op when absent. */
void metrics_unregister(struct metrics *m, metrics_collect_cb cb, void *arg);
/* Runs every collector and appends the whole exposition text to out.
 * Collectors must not register or unregister while it runs. */
void metrics_render(struct metrics *m, struct strbuf *out);

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
