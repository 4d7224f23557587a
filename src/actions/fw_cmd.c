/*
 * fw_cmd - command actions and their worker thread (see fw_cmd.h).
 *
 * Tags are resolved in two steps, as fail2ban does: at creation the action's
 * own options are substituted into each command once per family (a
 * `k?family=inet6` option replaces k for inet6); at run time the ban's values
 * (<ip>, <failures>, <matches>, <F-USER>...) go in through ignore_subst(),
 * which moves any value with a shell metacharacter into an $f2bV_ variable
 * instead of the script. The started state of each family is touched by the
 * worker only, so it needs no lock; the queue and reference counts are under
 * the queue mutex.
 */
#include "actions/fw_cmd.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config/ini.h"
#include "config/interp.h"
#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "jails/ignore.h"

#define DEFAULT_MAXJOBS 10000
#define DEFAULT_TIMEOUT 60.0

enum op { OP_START, OP_STOP, OP_FLUSH, OP_CHECK, OP_REPAIR, OP_BAN, OP_PROLONG, OP_UNBAN, OP_N };

static const char *const op_names[OP_N] = {
	"actionstart", "actionstop", "actionflush", "actioncheck",
	"actionrepair", "actionban", "actionprolong", "actionunban",
};

enum job_kind { J_START, J_BAN, J_PROLONG, J_UNBAN, J_FLUSH, J_STOP };

struct job {
	enum job_kind kind;
	struct fw_cmd *c;
	struct kvlist values;
	int restored;
	struct job *next;
};

struct fw_cmdq {
	pthread_mutex_t mu;
	pthread_cond_t more, idle;
	pthread_t th;
	int running;       /* thread exists */
	int quit;
	size_t max, n;     /* queued (not counting the one being run) */
	int busy;          /* worker is running a job */
	struct job *head, *tail;
	unsigned long dropped;
	fw_cmd_report_fn report;
	void *ctx;
	char host_fq[256], host_sh[256];
	int host_done;
};

struct fw_cmd {
	struct fw_cmdq *q;
	int refs;          /* under q->mu */
	char *jail, *action, *actname;
	struct kvlist props;
	int conditional;   /* has ?family= options: families inet4/inet6, on demand */
	int on_demand;
	int norestored, repair_on_unban;
	double timeout;
	char *cmd[2][OP_N]; /* [family][op]; family 0 = inet4 (or the only one) */
	int started[2];    /* bit 1 started, bit 2 holds bans; worker only */
	char *started_cmd[2];
};

/* ---------------------------------------------------------------- reports */

static void reportf(struct fw_cmdq *q, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reportf(struct fw_cmdq *q, int level, const char *fmt, ...)
{
	if (!q->report)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	q->report(q->ctx, level, buf);
}

/* ---------------------------------------------------------------- options */

static int is_blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return 0;
	return 1;
}

static int cond_family(const char *key, const char **fam)
{
	const char *q = strstr(key, "?family=");
	if (!q || q == key)
		return 0;
	*fam = q + 8;
	return 1;
}

/* Resolves every command for one family ("" = no conditional options). */
static int resolve_family(struct fw_cmd *c, int fi, const char *fam, char *err, size_t errlen)
{
	struct ini_sect s = {0};
	for (size_t i = 0; i < c->props.n; i++)
		ini_opt_set(&s, c->props.v[i].key, c->props.v[i].value, NULL, 0);
	if (*fam) {
		for (size_t i = 0; i < c->props.n; i++) {
			const char *f;
			const char *k = c->props.v[i].key;
			if (!cond_family(k, &f) || strcmp(f, fam) != 0)
				continue;
			char *b = xstrndup(k, (size_t)(strstr(k, "?family=") - k));
			ini_opt_set(&s, b, c->props.v[i].value, NULL, 0);
			free(b);
		}
	}
	static const char *const ignore[] = {"matches", "ipmatches", "ipjailmatches", NULL};
	struct interp_err ie;
	memset(&ie, 0, sizeof ie);
	if (interp_tags(&s, ignore, NULL, NULL, &ie) != 0) {
		snprintf(err, errlen, "%s", ie.msg);
		ini_sect_clear(&s);
		return -1;
	}
	for (int o = 0; o < OP_N; o++) {
		const struct ini_opt *v = ini_opt_find(&s, op_names[o]);
		c->cmd[fi][o] = xstrdup(v && v->value && !is_blank(v->value) ? v->value : "");
	}
	ini_sect_clear(&s);
	return 0;
}

struct fw_cmd *fw_cmd_new(struct fw_cmdq *q, const char *jail, const char *action,
			  const struct kvlist *props, char *err, size_t errlen)
{
	struct fw_cmd *c = xcalloc(1, sizeof *c);
	c->q = q;
	c->refs = 1;
	c->jail = xstrdup(jail ? jail : "");
	c->action = xstrdup(action ? action : "");
	kvlist_copy(&c->props, props);
	const char *an = kvlist_get(props, "actname");
	c->actname = xstrdup(an ? an : c->action);
	for (size_t i = 0; i < props->n; i++) {
		const char *f;
		if (cond_family(props->v[i].key, &f))
			c->conditional = 1;
	}
	c->on_demand = kvlist_get_bool(props, "actionstart_on_demand", c->conditional);
	c->norestored = kvlist_get_bool(props, "norestored", 0);
	c->repair_on_unban = kvlist_get_bool(props, "actionrepair_on_unban", 0);
	c->timeout = DEFAULT_TIMEOUT;
	const char *t = kvlist_get(props, "timeout");
	if (t && *t) {
		char *end;
		double v = strtod(t, &end);
		if (end == t || *end || !(v > 0) || v > 86400) {
			snprintf(err, errlen, "timeout = %s: expected seconds between 0 and 86400", t);
			goto fail;
		}
		c->timeout = v;
	}
	if (resolve_family(c, 0, c->conditional ? "inet4" : "", err, errlen) < 0)
		goto fail;
	if (resolve_family(c, 1, c->conditional ? "inet6" : "", err, errlen) < 0)
		goto fail;
	return c;
fail:
	c->refs = 0;
	for (int f = 0; f < 2; f++)
		for (int o = 0; o < OP_N; o++)
			free(c->cmd[f][o]);
	kvlist_free(&c->props);
	free(c->jail);
	free(c->action);
	free(c->actname);
	free(c);
	return NULL;
}

static void cmd_free(struct fw_cmd *c)
{
	for (int f = 0; f < 2; f++) {
		for (int o = 0; o < OP_N; o++)
			free(c->cmd[f][o]);
		free(c->started_cmd[f]);
	}
	kvlist_free(&c->props);
	free(c->jail);
	free(c->action);
	free(c->actname);
	free(c);
}

void fw_cmd_release(struct fw_cmd *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->q->mu);
	int last = --c->refs == 0;
	pthread_mutex_unlock(&c->q->mu);
	if (last)
		cmd_free(c);
}

const char *fw_cmd_name(const struct fw_cmd *c)
{
	return c->actname;
}

int fw_cmd_same(const struct fw_cmd *c, const struct kvlist *props)
{
	if (c->props.n != props->n)
		return 0;
	for (size_t i = 0; i < props->n; i++)
		if (strcmp(c->props.v[i].key, props->v[i].key) != 0 ||
		    strcmp(c->props.v[i].value, props->v[i].value) != 0)
			return 0;
	return 1;
}

const struct kvlist *fw_cmd_props(const struct fw_cmd *c)
{
	return &c->props;
}

int fw_cmd_has_flush(const struct fw_cmd *c)
{
	return *c->cmd[0][OP_FLUSH] || *c->cmd[1][OP_FLUSH];
}

const char *fw_cmd_command(const struct fw_cmd *c, const char *op, const char *family)
{
	int fi = family && strcmp(family, "inet6") == 0 ? 1 : 0;
	for (int o = 0; o < OP_N; o++)
		if (strcmp(op_names[o], op) == 0)
			return c->cmd[fi][o];
	return NULL;
}

/* ---------------------------------------------------------------- running */

static void hostnames(struct fw_cmdq *q)
{
	if (q->host_done)
		return;
	q->host_done = 1;
	char h[256] = "localhost";
	if (gethostname(h, sizeof h - 1) < 0)
		snprintf(h, sizeof h, "localhost");
	h[sizeof h - 1] = '\0';
	snprintf(q->host_fq, sizeof q->host_fq, "%s", h);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(h, NULL, &hints, &res) == 0 && res && res->ai_canonname)
		snprintf(q->host_fq, sizeof q->host_fq, "%s", res->ai_canonname);
	if (res)
		freeaddrinfo(res);
	char *dot = strchr(h, '.');
	if (dot)
		*dot = '\0';
	snprintf(q->host_sh, sizeof q->host_sh, "%s", h);
}

static const char *family_of(const struct kvlist *v)
{
	const char *f = kvlist_get(v, "family");
	if (f)
		return f;
	const char *ip = kvlist_get(v, "ip");
	return ip && strchr(ip, ':') ? "inet6" : "inet4";
}

/* Runs one command; 1 = success. Empty commands succeed. */
static int run(struct fw_cmd *c, int fi, enum op o, struct kvlist *values, const char *what)
{
	const char *tmpl = c->cmd[fi][o];
	if (!*tmpl)
		return 1;
	struct ignore_cmd_result r;
	int ok = ignore_command_run(tmpl, values, c->timeout, &r);
	/* strip trailing newlines of the output for the report */
	size_t ol = strlen(r.output);
	while (ol && (r.output[ol - 1] == '\n' || r.output[ol - 1] == '\r'))
		r.output[--ol] = '\0';
	for (char *p = r.output; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (ok) {
		reportf(c->q, 3, "[%s] action %s: %s%s%s ok (%.3f s)%s%s", c->jail, c->actname,
			op_names[o], what ? " " : "", what ? what : "", r.elapsed, ol ? ": " : "",
			r.output);
		return 1;
	}
	char st[64];
	switch (r.status) {
	case IGNORE_CMD_EXITED:
		snprintf(st, sizeof st, "exit status %d", r.code);
		break;
	case IGNORE_CMD_SIGNALED:
		snprintf(st, sizeof st, "killed by signal %d", r.code);
		break;
	case IGNORE_CMD_TIMEOUT:
		snprintf(st, sizeof st, "timed out after %.0f s", c->timeout);
		break;
	default:
		snprintf(st, sizeof st, "could not run");
		break;
	}
	reportf(c->q, 0, "[%s] action %s: %s%s%s failed: %s%s%s", c->jail, c->actname,
		op_names[o], what ? " " : "", what ? what : "", st, ol ? ": " : "", r.output);
	return 0;
}

static void base_values(struct fw_cmdq *q, struct kvlist *v, const char *family)
{
	hostnames(q);
	if (!kvlist_get(v, "family"))
		kvlist_set(v, "family", family);
	if (!kvlist_get(v, "fq-hostname"))
		kvlist_set(v, "fq-hostname", q->host_fq);
	if (!kvlist_get(v, "sh-hostname"))
		kvlist_set(v, "sh-hostname", q->host_sh);
	if (!kvlist_get(v, "time")) {
		char t[32];
		snprintf(t, sizeof t, "%.0f", (double)time(NULL));
		kvlist_set(v, "time", t);
	}
}

static void do_start(struct fw_cmd *c, int fi, const char *fam)
{
	/* the same command already ran for the other family: do not repeat it */
	int other = !fi;
	if ((c->started[other] & 1) && c->started_cmd[other] &&
	    strcmp(c->started_cmd[other], c->cmd[fi][OP_START]) == 0) {
		c->started[fi] |= 1;
		return;
	}
	struct kvlist v = KVLIST_INIT;
	base_values(c->q, &v, fam);
	if (run(c, fi, OP_START, &v, NULL)) {
		c->started[fi] |= 1;
		free(c->started_cmd[fi]);
		c->started_cmd[fi] = xstrdup(c->cmd[fi][OP_START]);
	}
	kvlist_free(&v);
}

static void do_stop(struct fw_cmd *c, int fi, const char *fam)
{
	struct kvlist v = KVLIST_INIT;
	base_values(c->q, &v, fam);
	run(c, fi, OP_STOP, &v, NULL);
	kvlist_free(&v);
	c->started[fi] = 0;
	free(c->started_cmd[fi]);
	c->started_cmd[fi] = NULL;
}

/* actioncheck failed after a failing command: repair, or stop + start. */
static int check_repair(struct fw_cmd *c, int fi, const char *fam, struct kvlist *v)
{
	if (!*c->cmd[fi][OP_CHECK])
		return 0;
	if (run(c, fi, OP_CHECK, v, NULL))
		return 1; /* environment sane: retry */
	reportf(c->q, 0, "[%s] action %s: invariant check failed; trying to restore", c->jail,
		c->actname);
	if (*c->cmd[fi][OP_REPAIR]) {
		if (!run(c, fi, OP_REPAIR, v, NULL)) {
			c->started[fi] = 0;
			return 0;
		}
		c->started[fi] = 1;
	} else {
		do_stop(c, fi, fam);
		do_start(c, fi, fam);
	}
	return run(c, fi, OP_CHECK, v, NULL);
}

static void run_job(struct job *jb)
{
	struct fw_cmd *c = jb->c;
	const char *ip = kvlist_get(&jb->values, "ip");
	const char *tfam = family_of(&jb->values);
	int fi = c->conditional && strcmp(tfam, "inet6") == 0 ? 1 : 0;
	const char *fam = c->conditional ? (fi ? "inet6" : "inet4") : "";
	switch (jb->kind) {
	case J_START:
		if (c->on_demand)
			break;
		if (!(c->started[0] & 1))
			do_start(c, 0, c->conditional ? "inet4" : "");
		if (c->conditional && !(c->started[1] & 1))
			do_start(c, 1, "inet6");
		break;
	case J_BAN:
	case J_PROLONG:
	case J_UNBAN: {
		enum op o = jb->kind == J_BAN ? OP_BAN : jb->kind == J_UNBAN ? OP_UNBAN : OP_PROLONG;
		if (jb->kind == J_BAN && jb->restored && c->norestored)
			break;
		if (jb->kind == J_UNBAN && !(c->started[fi] & 2))
			break;
		if (jb->kind == J_PROLONG && !*c->cmd[fi][OP_PROLONG])
			break;
		if (jb->kind == J_BAN && c->on_demand && !(c->started[fi] & 1))
			do_start(c, fi, c->conditional ? fam : tfam);
		base_values(c->q, &jb->values, tfam);
		int ok = run(c, fi, o, &jb->values, ip);
		if (!ok && *c->cmd[fi][OP_CHECK] && (o != OP_UNBAN || c->repair_on_unban) &&
		    check_repair(c, fi, fam, &jb->values))
			ok = run(c, fi, o, &jb->values, ip);
		if (jb->kind == J_BAN)
			c->started[fi] |= 3;
		break;
	}
	case J_FLUSH:
		for (int f = 0; f < 2; f++) {
			if ((c->started[f] & 3) != 3)
				continue;
			if (f == 1 && !c->conditional)
				break;
			struct kvlist v = KVLIST_INIT;
			base_values(c->q, &v, c->conditional ? (f ? "inet6" : "inet4") : "");
			if (run(c, f, OP_FLUSH, &v, NULL))
				c->started[f] &= ~2;
			kvlist_free(&v);
		}
		break;
	case J_STOP:
	{
		int ran0 = 0;
		for (int f = 0; f < 2; f++) {
			if (!c->started[f])
				continue;
			if (f == 1 && ran0 && strcmp(c->cmd[0][OP_STOP], c->cmd[1][OP_STOP]) == 0) {
				/* the same command already ran for inet4 */
				c->started[f] = 0;
				free(c->started_cmd[f]);
				c->started_cmd[f] = NULL;
				continue;
			}
			do_stop(c, f, c->conditional ? (f ? "inet6" : "inet4") : "");
			ran0 = f == 0;
		}
		break;
	}
	}
}

static void *worker(void *arg)
{
	struct fw_cmdq *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->head && !q->quit)
			pthread_cond_wait(&q->more, &q->mu);
		if (!q->head)
			break;
		struct job *jb = q->head;
		q->head = jb->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
		q->busy = 1;
		pthread_mutex_unlock(&q->mu);
		run_job(jb);
		kvlist_free(&jb->values);
		struct fw_cmd *c = jb->c;
		free(jb);
		pthread_mutex_lock(&q->mu);
		q->busy = 0;
		if (--c->refs == 0) {
			pthread_mutex_unlock(&q->mu);
			cmd_free(c);
			pthread_mutex_lock(&q->mu);
		}
		if (!q->head)
			pthread_cond_broadcast(&q->idle);
	}
	pthread_cond_broadcast(&q->idle);
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* ---------------------------------------------------------------- queue */

struct fw_cmdq *fw_cmdq_new(size_t maxjobs, fw_cmd_report_fn report, void *ctx)
{
	struct fw_cmdq *q = xcalloc(1, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->more, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->idle, &ca);
	pthread_condattr_destroy(&ca);
	q->max = maxjobs ? maxjobs : DEFAULT_MAXJOBS;
	q->report = report;
	q->ctx = ctx;
	return q;
}

int fw_cmdq_start(struct fw_cmdq *q)
{
	pthread_mutex_lock(&q->mu);
	if (q->running) {
		pthread_mutex_unlock(&q->mu);
		return 0;
	}
	/* the loop reads signals through signalfd: the worker must never take one */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&q->th, NULL, worker, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		q->running = 1;
	pthread_mutex_unlock(&q->mu);
	return -r;
}

size_t fw_cmdq_pending(struct fw_cmdq *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->n + (size_t)q->busy;
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t fw_cmdq_wait(struct fw_cmdq *q, double wait)
{
	if (fw_cmdq_start(q) < 0)
		return fw_cmdq_pending(q);
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	double s = wait < 0 ? 0 : wait;
	dl.tv_sec += (time_t)s;
	dl.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q->mu);
	while ((q->head || q->busy) && q->running)
		if (pthread_cond_timedwait(&q->idle, &q->mu, &dl) == ETIMEDOUT)
			break;
	size_t n = q->n + (size_t)q->busy;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void fw_cmdq_free(struct fw_cmdq *q, double wait)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	int was_running = q->running;
	pthread_mutex_unlock(&q->mu);
	/* a worker never started (start failed before the loop ran): run nothing */
	size_t left = was_running ? fw_cmdq_wait(q, wait) : 0;
	pthread_mutex_lock(&q->mu);
	q->quit = 1;
	/* drop what did not run in time */
	struct job *jb = q->head;
	q->head = q->tail = NULL;
	q->n = 0;
	pthread_cond_broadcast(&q->more);
	int running = q->running, busy = q->busy;
	pthread_mutex_unlock(&q->mu);
	while (jb) {
		struct job *next = jb->next;
		kvlist_free(&jb->values);
		fw_cmd_release(jb->c);
		free(jb);
		jb = next;
	}
	if (left)
		reportf(q, 1, "command actions: %zu job%s did not finish before shutdown", left,
			left == 1 ? "" : "s");
	if (running && !busy) {
		pthread_join(q->th, NULL);
	} else if (running) {
		/* a command is still running: it ends by its own timeout, the process
		 * is about to exit; leave the queue memory to the thread */
		pthread_detach(q->th);
		return;
	}
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->more);
	pthread_cond_destroy(&q->idle);
	free(q);
}

static int enqueue(struct fw_cmd *c, enum job_kind kind, const struct kvlist *values, int restored)
{
	struct fw_cmdq *q = c->q;
	struct job *jb = xcalloc(1, sizeof *jb);
	jb->kind = kind;
	jb->c = c;
	jb->restored = restored;
	if (values)
		kvlist_copy(&jb->values, values);
	pthread_mutex_lock(&q->mu);
	if (q->n >= q->max || q->quit) {
		unsigned long d = ++q->dropped;
		pthread_mutex_unlock(&q->mu);
		if (d == 1 || d % 1000 == 0)
			reportf(q, 0, "[%s] action %s: command queue full (%zu jobs); %lu job%s dropped",
				c->jail, c->actname, q->max, d, d == 1 ? "" : "s");
		kvlist_free(&jb->values);
		free(jb);
		return -ENOSPC;
	}
	c->refs++;
	if (q->tail)
		q->tail->next = jb;
	else
		q->head = jb;
	q->tail = jb;
	q->n++;
	pthread_cond_signal(&q->more);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

int fw_cmd_start(struct fw_cmd *c)
{
	return enqueue(c, J_START, NULL, 0);
}

int fw_cmd_ban(struct fw_cmd *c, const struct kvlist *ticket, int restored)
{
	return enqueue(c, J_BAN, ticket, restored);
}

int fw_cmd_prolong(struct fw_cmd *c, const struct kvlist *ticket)
{
	return enqueue(c, J_PROLONG, ticket, 0);
}

int fw_cmd_unban(struct fw_cmd *c, const struct kvlist *ticket)
{
	return enqueue(c, J_UNBAN, ticket, 0);
}

int fw_cmd_flush(struct fw_cmd *c)
{
	return enqueue(c, J_FLUSH, NULL, 0);
}

int fw_cmd_stop(struct fw_cmd *c)
{
	return enqueue(c, J_STOP, NULL, 0);
}
