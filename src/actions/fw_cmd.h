/*
 * fw_cmd - fail2ban's command actions: an action.d file's actionstart /
 * actionban / actionunban / actionprolong / actionflush / actionstop /
 * actioncheck / actionrepair shell commands, run with fail2ban's tags and
 * $f2bV_ escaping (jails/ignore.h does the substitution and the process-group
 * timeout).
 *
 * INTERFACE: one fw_cmdq per daemon owns a bounded job queue and one worker
 * thread; the event loop only queues (fw_cmd_ban() etc. return at once) and
 * the worker runs the shell commands in order, one at a time, so a slow
 * `whois | sendmail` never delays log reading or nftables bans. The thread
 * starts with fw_cmdq_start() (after the daemon has forked: threads do not
 * survive fork) or at the latest in fw_cmdq_wait(). A fw_cmd is one action
 * instance of one jail, made from the option list config/actionload.h
 * returns; it is reference-counted because queued jobs still use it after the
 * jail dropped it.
 *
 * Semantics follow fail2ban 1.0.2: options with a `?family=inet6` variant make
 * the action family-aware and start it on demand per family (inet4, inet6)
 * before its first ban; other actions run actionstart when fw_cmd_start() is
 * called. actionunban runs only when a ban went through that family;
 * actionflush only when it holds bans; a failing ban/unban runs actioncheck,
 * then actionrepair (or stop + start), and retries once. `norestored = 1`
 * skips bans restored at start. `timeout` (default 60 s) bounds each command.
 *
 * DIAGNOSTICS: results are reported through the callback given to
 * fw_cmdq_new(), from the worker thread (level 0 error, 1 warning, 2 info,
 * 3 debug). Nothing here prints.
 */
#ifndef MXJAIL_ACTIONS_FW_CMD_H
#define MXJAIL_ACTIONS_FW_CMD_H

#include <stddef.h>

struct kvlist;

typedef void (*fw_cmd_report_fn)(void *ctx, int level, const char *msg);

struct fw_cmdq;

/* maxjobs bounds the queue (0 = 10000); further jobs are dropped and reported. */
struct fw_cmdq *fw_cmdq_new(size_t maxjobs, fw_cmd_report_fn report, void *ctx);
/* Starts the worker thread (idempotent). Returns 0 or -errno. */
int fw_cmdq_start(struct fw_cmdq *q);
/* Waits until every queued job has run, at most `wait` seconds (starting the
 * worker if needed). Returns the number of jobs still pending or running. */
size_t fw_cmdq_wait(struct fw_cmdq *q, double wait);
/* Jobs waiting or running now. */
size_t fw_cmdq_pending(struct fw_cmdq *q);
/* Waits up to `wait` seconds for the queue, then stops the worker (a command
 * still running after that is left to its own timeout) and frees q. When the
 * worker was never started, queued jobs are dropped without running. */
void fw_cmdq_free(struct fw_cmdq *q, double wait);

struct fw_cmd;

/* Makes an action of jail from its options (actionload() output). action is
 * the file name, for messages. Returns NULL with a message on bad options
 * (self-referencing tags, bad timeout). */
struct fw_cmd *fw_cmd_new(struct fw_cmdq *q, const char *jail, const char *action,
			  const struct kvlist *props, char *err, size_t errlen);
/* Drops the caller's reference; queued jobs keep theirs. NULL is fine. */
void fw_cmd_release(struct fw_cmd *c);
const char *fw_cmd_name(const struct fw_cmd *c);  /* actname */
/* 1 when props are the options c was made from (reload keeps c then). */
int fw_cmd_same(const struct fw_cmd *c, const struct kvlist *props);
const struct kvlist *fw_cmd_props(const struct fw_cmd *c); /* as given to fw_cmd_new */
int fw_cmd_has_flush(const struct fw_cmd *c);     /* actionflush is not empty */
/* The fully substituted command for op ("actionban"...) and family
 * ("inet4"/"inet6"), tags of the ban left in; NULL when unknown op. */
const char *fw_cmd_command(const struct fw_cmd *c, const char *op, const char *family);

/* Queueing; each returns 0, or -ENOSPC when the queue is full (reported). */
int fw_cmd_start(struct fw_cmd *c);   /* actionstart now unless started on demand */
/* ticket: the ban's tags: ip, fid, failures, time, bantime, bancount,
 * matches, F-<name> groups... ("family" is derived from ip when absent). */
int fw_cmd_ban(struct fw_cmd *c, const struct kvlist *ticket, int restored);
int fw_cmd_prolong(struct fw_cmd *c, const struct kvlist *ticket);
int fw_cmd_unban(struct fw_cmd *c, const struct kvlist *ticket);
int fw_cmd_flush(struct fw_cmd *c);
int fw_cmd_stop(struct fw_cmd *c);

#endif
