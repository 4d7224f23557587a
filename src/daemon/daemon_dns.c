/*
 * daemon_dns - `usedns = yes|warn`: host names found in <HOST> turned into
 * addresses without blocking the event loop.
 *
 * fail2ban resolves a name that is not an address with getaddrinfo (IPv4 and
 * IPv6) and counts one failure for every address found; with `warn` it logs
 * "Determined IP using DNS Lookup"; no address found = no failure. The same
 * here, except that the lookup runs on one worker thread: the loop hands a
 * name over, the worker resolves it and signals a pipe, the loop's callback
 * replays the waiting failures with the addresses. A failure keeps its log
 * time, so findtime and the ban times are those of the log line.
 *
 * Bounded: at most DNS_MAX_WAIT failures wait for answers (more are dropped
 * with a warning: a log full of random names must not grow memory), and a
 * small cache (DNS_CACHE entries, answers kept DNS_TTL s, failures
 * DNS_NEG_TTL s) keeps a flood of one name from reaching the resolver.
 *
 * The worker and the loop share one block guarded by a mutex. At stop the
 * worker may still sit in getaddrinfo (resolver timeouts); the daemon then
 * detaches it and the worker frees the block when it returns, so a stop
 * never waits for DNS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/xmalloc.h"
#include "daemon/daemon_int.h"

#define DNS_MAX_WAIT 1024
#define DNS_CACHE 256
#define DNS_TTL 300.0
#define DNS_NEG_TTL 60.0
#define DNS_MAX_ADDRS 16

struct dns_job {
	char *name;
	struct addr a[DNS_MAX_ADDRS];
	size_t n;
	int err;                   /* getaddrinfo's code when n == 0 */
	struct dns_job *next;
};

/* Shared with the worker (mu guards todo, done, stop, detached). */
struct dns_shared {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dns_job *todo, *todo_tail, *done;
	int stop, detached, busy;
	int pfd[2];                /* worker -> loop: results waiting */
};

struct dns_wait {
	char *jail, *name;
	double t;
	char **lines;
	size_t nlines;
	struct kvlist groups;
	int warn;
};

struct dns_cache_ent {
	char *name;
	struct addr a[DNS_MAX_ADDRS];
	size_t n;
	double expires;
};

struct daemon_dns {
	struct daemon *dm;
	struct dns_shared *sh;
	pthread_t th;
	struct dns_wait *w;
	size_t nw, capw;
	unsigned long dropped;
	struct dns_cache_ent cache[DNS_CACHE];
	size_t next_slot;          /* round-robin replacement */
};

static void shared_free(struct dns_shared *sh)
{
	for (struct dns_job *j = sh->todo, *n; j; j = n) {
		n = j->next;
		free(j->name);
		free(j);
	}
	for (struct dns_job *j = sh->done, *n; j; j = n) {
		n = j->next;
		free(j->name);
		free(j);
	}
	close(sh->pfd[0]);
	close(sh->pfd[1]);
	pthread_mutex_destroy(&sh->mu);
	pthread_cond_destroy(&sh->cv);
	free(sh);
}

static void resolve(struct dns_job *job)
{
	static const int fams[2] = {AF_INET, AF_INET6};
	for (int f = 0; f < 2; f++) {
		struct addrinfo hints = {0}, *res = NULL;
		hints.ai_family = fams[f];
		hints.ai_protocol = IPPROTO_TCP;
		int rc = getaddrinfo(job->name, NULL, &hints, &res);
		if (rc != 0) {
			if (!job->err)
				job->err = rc;
			continue;
		}
		for (struct addrinfo *ai = res; ai && job->n < DNS_MAX_ADDRS; ai = ai->ai_next) {
			char host[NI_MAXHOST];
			if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0,
					NI_NUMERICHOST) != 0)
				continue;
			struct addr a;
			if (addr_parse(host, strlen(host), &a) < 0)
				continue;
			int dup = 0;
			for (size_t k = 0; k < job->n && !dup; k++)
				dup = job->a[k].family == a.family &&
				      memcmp(job->a[k].a, a.a, sizeof a.a) == 0;
			if (!dup)
				job->a[job->n++] = a;
		}
		freeaddrinfo(res);
	}
}

static void *worker(void *arg)
{
	struct dns_shared *sh = arg;
	pthread_mutex_lock(&sh->mu);
	for (;;) {
		while (!sh->todo && !sh->stop)
			pthread_cond_wait(&sh->cv, &sh->mu);
		if (sh->stop)
			break;
		struct dns_job *job = sh->todo;
		sh->todo = job->next;
		if (!sh->todo)
			sh->todo_tail = NULL;
		sh->busy = 1;
		pthread_mutex_unlock(&sh->mu);
		resolve(job);
		pthread_mutex_lock(&sh->mu);
		sh->busy = 0;
		job->next = sh->done;
		sh->done = job;
		if (!sh->stop) {
			char c = 1;
			if (write(sh->pfd[1], &c, 1) < 0) {
				/* the pipe is full: the loop has a wake-up pending anyway */
			}
		}
	}
	int detached = sh->detached;
	pthread_mutex_unlock(&sh->mu);
	if (detached)
		shared_free(sh);
	return NULL;
}

static struct dns_cache_ent *cache_find(struct daemon_dns *dn, const char *name, double now)
{
	for (size_t i = 0; i < DNS_CACHE; i++)
		if (dn->cache[i].name && strcmp(dn->cache[i].name, name) == 0)
			return dn->cache[i].expires > now ? &dn->cache[i] : NULL;
	return NULL;
}

static void cache_put(struct daemon_dns *dn, const struct dns_job *job, double now)
{
	struct dns_cache_ent *e = NULL;
	for (size_t i = 0; i < DNS_CACHE && !e; i++)
		if (dn->cache[i].name && strcmp(dn->cache[i].name, job->name) == 0)
			e = &dn->cache[i];
	if (!e) {
		e = &dn->cache[dn->next_slot];
		dn->next_slot = (dn->next_slot + 1) % DNS_CACHE;
		free(e->name);
		e->name = xstrdup(job->name);
	}
	memcpy(e->a, job->a, sizeof e->a);
	e->n = job->n;
	e->expires = now + (job->n ? DNS_TTL : DNS_NEG_TTL);
}

static void wait_free(struct dns_wait *w)
{
	free(w->jail);
	free(w->name);
	for (size_t k = 0; k < w->nlines; k++)
		free(w->lines[k]);
	free(w->lines);
	kvlist_free(&w->groups);
}

/* A failure of name with its addresses: one failure per address. */
static void replay(struct daemon *dm, const char *jail, const char *name, const struct addr *a,
		   size_t n, double t, char **lines, size_t nlines, const struct kvlist *groups,
		   int warn)
{
	struct daemon_jail *j = daemon_jail_find(dm->set, jail);
	if (!j)
		return; /* the jail went away with a reload */
	if (warn && n) {
		char list[DNS_MAX_ADDRS * (ADDR_STRLEN + 2)] = "";
		size_t len = 0;
		for (size_t i = 0; i < n; i++) {
			char one[ADDR_STRLEN];
			addr_format(&a[i], one, sizeof one);
			len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", one);
		}
		log_warnx("[%s] Determined IP using DNS Lookup: %s = {%s}", j->name, name, list);
	}
	for (size_t i = 0; i < n; i++) {
		char id[ADDR_STRLEN];
		addr_format(&a[i], id, sizeof id);
		daemon_on_failure(j, id, t, lines, nlines, groups);
	}
}

static void on_results(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)events;
	struct daemon_dns *dn = arg;
	char buf[256];
	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&dn->sh->mu);
	struct dns_job *done = dn->sh->done;
	dn->sh->done = NULL;
	pthread_mutex_unlock(&dn->sh->mu);
	double now = daemon_now();
	for (struct dns_job *job = done, *next; job; job = next) {
		next = job->next;
		cache_put(dn, job, now);
		if (!job->n)
			log_warnx("Unable to find a corresponding IP address for %s: %s", job->name,
				  gai_strerror(job->err ? job->err : EAI_NONAME));
		/* the waiting failures of this name, in arrival order */
		size_t keep = 0;
		for (size_t i = 0; i < dn->nw; i++) {
			struct dns_wait *w = &dn->w[i];
			if (strcmp(w->name, job->name) != 0) {
				dn->w[keep++] = *w;
				continue;
			}
			replay(dn->dm, w->jail, w->name, job->a, job->n, w->t, w->lines, w->nlines,
			       w->groups.n ? &w->groups : NULL, w->warn);
			wait_free(w);
		}
		dn->nw = keep;
		free(job->name);
		free(job);
	}
}

static struct daemon_dns *dns_new(struct daemon *dm)
{
	struct dns_shared *sh = xcalloc(1, sizeof *sh);
	if (pipe2(sh->pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_warn("usedns: pipe");
		free(sh);
		return NULL;
	}
	pthread_mutex_init(&sh->mu, NULL);
	pthread_cond_init(&sh->cv, NULL);
	struct daemon_dns *dn = xcalloc(1, sizeof *dn);
	dn->dm = dm;
	dn->sh = sh;
	if (pthread_create(&dn->th, NULL, worker, sh) != 0) {
		log_warnx("usedns: cannot start the resolver thread; host names are ignored");
		shared_free(sh);
		free(dn);
		return NULL;
	}
	loop_fd_add(dm->loop, sh->pfd[0], LOOP_READ, on_results, dn);
	return dn;
}

void daemon_dns_failure(struct daemon_jail *j, const char *name, double t, char **lines,
			size_t nlines, const struct kvlist *groups, int warn)
{
	struct daemon *dm = j->d;
	if (!*name || strlen(name) > 253)
		return;
	if (!dm->dns && !(dm->dns = dns_new(dm)))
		return;
	struct daemon_dns *dn = dm->dns;
	double now = daemon_now();
	const struct dns_cache_ent *e = cache_find(dn, name, now);
	if (e) {
		/* copies: the replay may evict the cache entry */
		struct addr a[DNS_MAX_ADDRS];
		size_t n = e->n;
		memcpy(a, e->a, sizeof a);
		replay(dm, j->name, name, a, n, t, lines, nlines, groups, warn);
		return;
	}
	if (dn->nw >= DNS_MAX_WAIT) {
		if (dn->dropped++ % 1000 == 0)
			log_warnx("[%s] usedns: %zu failures already wait for DNS answers; %s dropped",
				  j->name, dn->nw, name);
		return;
	}
	int inflight = 0;
	for (size_t i = 0; i < dn->nw && !inflight; i++)
		inflight = strcmp(dn->w[i].name, name) == 0;
	if (dn->nw == dn->capw) {
		dn->capw = dn->capw ? dn->capw * 2 : 16;
		dn->w = xrealloc(dn->w, dn->capw * sizeof *dn->w);
	}
	struct dns_wait *w = &dn->w[dn->nw++];
	memset(w, 0, sizeof *w);
	w->jail = xstrdup(j->name);
	w->name = xstrdup(name);
	w->t = t;
	w->warn = warn;
	w->nlines = nlines;
	if (nlines) {
		w->lines = xcalloc(nlines, sizeof *w->lines);
		for (size_t k = 0; k < nlines; k++)
			w->lines[k] = xstrdup(lines[k] ? lines[k] : "");
	}
	if (groups)
		kvlist_copy(&w->groups, groups);
	if (inflight)
		return;
	struct dns_job *job = xcalloc(1, sizeof *job);
	job->name = xstrdup(name);
	pthread_mutex_lock(&dn->sh->mu);
	if (dn->sh->todo_tail)
		dn->sh->todo_tail->next = job;
	else
		dn->sh->todo = job;
	dn->sh->todo_tail = job;
	pthread_cond_signal(&dn->sh->cv);
	pthread_mutex_unlock(&dn->sh->mu);
}

void daemon_dns_free(struct daemon *dm)
{
	struct daemon_dns *dn = dm->dns;
	if (!dn)
		return;
	dm->dns = NULL;
	loop_fd_del(dm->loop, dn->sh->pfd[0]);
	struct dns_shared *sh = dn->sh;
	pthread_mutex_lock(&sh->mu);
	sh->stop = 1;
	int busy = sh->busy;
	sh->detached = busy; /* a worker inside getaddrinfo frees the block itself */
	pthread_cond_signal(&sh->cv);
	pthread_mutex_unlock(&sh->mu);
	if (busy) {
		pthread_detach(dn->th);
	} else {
		pthread_join(dn->th, NULL);
		shared_free(sh);
	}
	for (size_t i = 0; i < dn->nw; i++)
		wait_free(&dn->w[i]);
	free(dn->w);
	for (size_t i = 0; i < DNS_CACHE; i++)
		free(dn->cache[i].name);
	free(dn);
}
