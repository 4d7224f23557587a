/*
 * pwriter - the policy engine's state file and the thread that writes it,
 * so no SQLite commit or WAL checkpoint ever runs between a policy request
 * and its reply.
 *
 * INTERFACE: pwriter_open() opens (or creates) its own SQLite file, WAL with
 * synchronous=NORMAL and automatic checkpoints off, with one table of rows
 * (namespace, key, value, expiry) - the rows pstate.c writes. Before
 * pwriter_start() the loop thread may read it (pwriter_get/_foreach) and
 * write it synchronously (pwriter_apply: start-up, migration); then that
 * connection is closed. The writer thread is started by the first submit and
 * opens its own connection, so a process that forks in between (a daemon
 * detaching) carries neither a thread nor a connection across. The loop
 * thread builds a
 * struct pbatch of row changes (memory only, microseconds) and hands it over
 * with pwriter_submit(), which never blocks: it refuses (-EAGAIN) when the
 * bounded queue is full, and the engine then leaves its changes queued in
 * memory, where repeated changes of a key coalesce into one. The writer
 * commits each batch in one transaction, in order, retries a failed one
 * (batches are never reordered or skipped, the journal depends on it) and
 * checkpoints the WAL itself when it has nothing else to do.
 * pwriter_close() drains the queue, checkpoints and joins the thread.
 *
 * DURABILITY: a batch is on disk (kill -9 safe) once the writer committed
 * it, normally a few milliseconds after the submit; what is lost on kill -9
 * is what was not yet submitted (the engine submits at least once a second)
 * plus the queue, at most PWRITER_QUEUE batches.
 *
 * DIAGNOSTICS: 0 or a negative errno; pwriter_error() says what failed last
 * (the writer's last failed commit, or the failed call). Nothing is printed.
 * A file that is not SQLite or fails the quick check is renamed to
 * "<path>.corrupt-<UTC time>" and a fresh one created (pwriter_open returns
 * 1 then, msg says so).
 */
#ifndef MXJAIL_POLICY_PWRITER_H
#define MXJAIL_POLICY_PWRITER_H

#include <stddef.h>

#include "store/store.h"   /* store_kv_cb */

#define PWRITER_QUEUE 3     /* batches handed over and not yet committed */

/* Row changes of one flush, in order. Owned by whoever holds it: the caller
 * until pwriter_submit() accepts it, then the writer. */
struct pbatch;
struct pbatch *pbatch_new(void);
struct pbatch *pbatch_free(struct pbatch *b);
void pbatch_set(struct pbatch *b, const char *ns, const char *key, const void *val,
		size_t len, double expires);
void pbatch_del(struct pbatch *b, const char *ns, const char *key);
size_t pbatch_count(const struct pbatch *b);
size_t pbatch_bytes(const struct pbatch *b);
/* Applies the batch to a store instead (the engine's synchronous mode, for
 * tools and tests); the caller brackets it with store_begin/store_flush. */
int pbatch_apply_store(const struct pbatch *b, struct store *st);

struct pwriter;
/* Returns 0, 1 (a damaged file was moved aside: msg says where) or a negative
 * errno with msg filled. now: expired rows are deleted at open. */
int pwriter_open(const char *path, double now, struct pwriter **out, char *msg, size_t msglen);
/* Before pwriter_start() only. */
int pwriter_get(struct pwriter *pw, const char *ns, const char *key, double now, void **val,
		size_t *len);
int pwriter_foreach(struct pwriter *pw, const char *ns, double now, store_kv_cb cb, void *arg);
/* 1 when the file has no live row in ns. */
int pwriter_empty(struct pwriter *pw, const char *ns, double now);
int pwriter_apply(struct pwriter *pw, const struct pbatch *b);
/* Ends the loading phase (closes the loading connection); submits work from
 * then on. */
int pwriter_start(struct pwriter *pw);

/* Takes b (0) or refuses it (-EAGAIN: queue full or no thread could be
 * started; the caller keeps b). The first call starts the writer thread. */
int pwriter_submit(struct pwriter *pw, struct pbatch *b);
/* An empty batch, reusing the buffers of one already committed when there
 * is one (any thread that submits; pbatch_new() works too). */
struct pbatch *pwriter_batch(struct pwriter *pw);
/* 1 when a submit would be accepted now. */
int pwriter_room(struct pwriter *pw);
/* Waits until the queue has room, at most timeout seconds: 0 or -ETIMEDOUT. */
int pwriter_wait_room(struct pwriter *pw, double timeout);
/* 0 when the last commit worked, else its negative errno; text in pwriter_error(). */
int pwriter_status(struct pwriter *pw);
/* Copies the last error text into buf ("" when none). */
void pwriter_error(struct pwriter *pw, char *buf, size_t len);

struct pwriter_stats {
	unsigned long commits, rows, checkpoints, failures;
	size_t queued;                 /* batches waiting or being written */
	double commit_ms_max, commit_ms_total;
};
void pwriter_stats(struct pwriter *pw, struct pwriter_stats *out);

/* Drains the queue (waiting at most drain_timeout seconds for a failing
 * disk), checkpoints, stops the thread and closes. Returns NULL. */
struct pwriter *pwriter_close(struct pwriter *pw, double drain_timeout);

#endif
