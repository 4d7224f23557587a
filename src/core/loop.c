/*
 * loop - epoll event loop with timers, signalfd signals and end-of-turn hooks
 * (see loop.h).
 *
 * Written here because the daemon needs only this much, and the turn hook
 * (batch firewall changes per turn) is not something libevent/libuv offer in
 * this shape. Timers live in a binary min-heap; deleted timers are marked and
 * skipped when they reach the top, so deletion is O(log n) amortised.
 */
#include "core/loop.h"
#include "core/xmalloc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

struct watch {
	int fd;
	int active;
	loop_fd_cb cb;
	void *arg;
};

struct timer {
	uint64_t when, id;
	loop_cb cb;
	void *arg;
};

struct sigh {
	int signo;
	loop_cb cb;
	void *arg;
};

struct hook {
	loop_cb cb;
	void *arg;
};

struct loop {
	int ep;
	int stop;
	struct watch *w;       /* indexed by fd */
	size_t nw;
	struct timer *heap;
	size_t nheap, capheap;
	uint64_t *dead;        /* ids of deleted timers still in the heap */
	size_t ndead, capdead;
	uint64_t next_id;
	int sfd;
	sigset_t sigs;
	struct sigh *sh;
	size_t nsh;
	struct hook *hooks;
	size_t nhooks;
	struct hook *evdone;   /* after the fd callbacks of a turn */
	size_t nevdone;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct loop *loop_new(void)
{
	struct loop *l = xcalloc(1, sizeof *l);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0) {
		free(l);
		return NULL;
	}
	l->sfd = -1;
	sigemptyset(&l->sigs);
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->ep);
	if (l->sfd >= 0)
		close(l->sfd);
	free(l->w);
	free(l->heap);
	free(l->dead);
	free(l->sh);
	free(l->hooks);
	free(l->evdone);
	free(l);
}

static uint32_t ep_events(unsigned ev)
{
	return (ev & LOOP_READ ? EPOLLIN : 0u) | (ev & LOOP_WRITE ? EPOLLOUT : 0u);
}

int loop_fd_add(struct loop *l, int fd, unsigned events, loop_fd_cb cb, void *arg)
{
	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= l->nw) {
		size_t n = (size_t)fd + 64;
		l->w = xrealloc(l->w, n * sizeof *l->w);
		memset(l->w + l->nw, 0, (n - l->nw) * sizeof *l->w);
		l->nw = n;
	}
	if (l->w[fd].active)
		return -EEXIST;
	struct epoll_event e = {.events = ep_events(events), .data.fd = fd};
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &e) < 0)
		return -errno;
	l->w[fd] = (struct watch){fd, 1, cb, arg};
	return 0;
}

int loop_fd_mod(struct loop *l, int fd, unsigned events)
{
	if (fd < 0 || (size_t)fd >= l->nw || !l->w[fd].active)
		return -ENOENT;
	struct epoll_event e = {.events = ep_events(events), .data.fd = fd};
	return epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &e) < 0 ? -errno : 0;
}

void loop_fd_del(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nw || !l->w[fd].active)
		return;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
	l->w[fd].active = 0;
}

static void heap_swap(struct timer *a, struct timer *b)
{
	struct timer t = *a;
	*a = *b;
	*b = t;
}

static void heap_up(struct timer *h, size_t i)
{
	while (i > 0 && h[(i - 1) / 2].when > h[i].when) {
		heap_swap(&h[(i - 1) / 2], &h[i]);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct timer *h, size_t n, size_t i)
{
	for (;;) {
		size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
		if (a < n && h[a].when < h[m].when)
			m = a;
		if (b < n && h[b].when < h[m].when)
			m = b;
		if (m == i)
			return;
		heap_swap(&h[m], &h[i]);
		i = m;
	}
}

uint64_t loop_timer_add(struct loop *l, uint64_t ms, loop_cb cb, void *arg)
{
	l->heap = xgrow(l->heap, &l->capheap, l->nheap, sizeof *l->heap);
	uint64_t id = ++l->next_id;
	l->heap[l->nheap] = (struct timer){loop_now_ms() + ms, id, cb, arg};
	heap_up(l->heap, l->nheap++);
	return id;
}

void loop_timer_del(struct loop *l, uint64_t id)
{
	for (size_t i = 0; i < l->nheap; i++)
		if (l->heap[i].id == id) {
			l->dead = xgrow(l->dead, &l->capdead, l->ndead, sizeof *l->dead);
			l->dead[l->ndead++] = id;
			return;
		}
}

static int take_dead(struct loop *l, uint64_t id)
{
	for (size_t i = 0; i < l->ndead; i++)
		if (l->dead[i] == id) {
			l->dead[i] = l->dead[--l->ndead];
			return 1;
		}
	return 0;
}

static void on_signal(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)ev;
	(void)arg;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
		for (size_t i = 0; i < l->nsh; i++)
			if ((int)si.ssi_signo == l->sh[i].signo)
				l->sh[i].cb(l, l->sh[i].arg);
}

int loop_signal_add(struct loop *l, int signo, loop_cb cb, void *arg)
{
	sigaddset(&l->sigs, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigs, NULL) < 0)
		return -errno;
	int fd = signalfd(l->sfd, &l->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (l->sfd < 0) {
		l->sfd = fd;
		int r = loop_fd_add(l, fd, LOOP_READ, on_signal, NULL);
		if (r < 0)
			return r;
	}
	l->sh = xrealloc(l->sh, (l->nsh + 1) * sizeof *l->sh);
	l->sh[l->nsh++] = (struct sigh){signo, cb, arg};
	return 0;
}

static void hook_add(struct hook **v, size_t *n, loop_cb cb, void *arg)
{
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = (struct hook){cb, arg};
}

void loop_on_turn_end(struct loop *l, loop_cb cb, void *arg)
{
	hook_add(&l->hooks, &l->nhooks, cb, arg);
}

void loop_on_events_done(struct loop *l, loop_cb cb, void *arg)
{
	hook_add(&l->evdone, &l->nevdone, cb, arg);
}

void loop_events_done_del(struct loop *l, loop_cb cb, void *arg)
{
	for (size_t i = 0; i < l->nevdone; i++)
		if (l->evdone[i].cb == cb && l->evdone[i].arg == arg) {
			memmove(&l->evdone[i], &l->evdone[i + 1],
				(l->nevdone - i - 1) * sizeof *l->evdone);
			l->nevdone--;
			return;
		}
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
}

/* Runs due timers; returns how many ran. */
static int run_timers(struct loop *l)
{
	int ran = 0;
	uint64_t now = loop_now_ms();
	while (l->nheap && l->heap[0].when <= now) {
		struct timer t = l->heap[0];
		l->heap[0] = l->heap[--l->nheap];
		heap_down(l->heap, l->nheap, 0);
		if (take_dead(l, t.id))
			continue;
		t.cb(l, t.arg);
		ran++;
	}
	return ran;
}

int loop_run(struct loop *l)
{
	struct epoll_event ev[64];
	l->stop = 0;
	while (!l->stop) {
		/* drop deleted timers sitting on top so they do not shorten the wait */
		while (l->nheap && take_dead(l, l->heap[0].id)) {
			l->heap[0] = l->heap[--l->nheap];
			heap_down(l->heap, l->nheap, 0);
		}
		int timeout = -1;
		if (l->nheap) {
			uint64_t now = loop_now_ms();
			timeout = l->heap[0].when <= now ? 0 : (int)(l->heap[0].when - now);
		}
		int n = epoll_wait(l->ep, ev, 64, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			if ((size_t)fd >= l->nw || !l->w[fd].active)
				continue;
			unsigned e = 0;
			if (ev[i].events & EPOLLIN)
				e |= LOOP_READ;
			if (ev[i].events & EPOLLOUT)
				e |= LOOP_WRITE;
			if (ev[i].events & (EPOLLERR | EPOLLHUP))
				e |= LOOP_ERROR | LOOP_READ;
			l->w[fd].cb(l, fd, e, l->w[fd].arg);
		}
		for (size_t i = 0; n > 0 && i < l->nevdone; i++)
			l->evdone[i].cb(l, l->evdone[i].arg);
		int ran = run_timers(l);
		if (n > 0 || ran > 0)
			for (size_t i = 0; i < l->nhooks; i++)
				l->hooks[i].cb(l, l->hooks[i].arg);
	}
	return 0;
}
