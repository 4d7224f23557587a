/*
 * redisloop - hiredis async context <-> core/loop.h adapter (see redisloop.h
 * for why it exists).
 *
 * One watch per context: the wanted events are kept in a bit set and the
 * descriptor is registered while at least one is wanted. A read or write
 * handler may free the context (a disconnect calls the cleanup hook, which
 * frees this state), so while the fd callback runs the cleanup only marks
 * the state dead and the callback frees it, never touching the context again.
 */
#include <stdlib.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cluster/redisloop.h"
#include "core/loop.h"
#include "core/xmalloc.h"

struct redisloop {
	struct loop *l;
	redisAsyncContext *ac;
	int fd;
	unsigned want;      /* LOOP_READ | LOOP_WRITE */
	int added;
	int busy;           /* on_fd is running hiredis code */
	int dead;           /* cleanup ran while busy: free when on_fd returns */
};

static void on_fd(struct loop *l, int fd, unsigned events, void *arg)
{
	(void)l;
	(void)fd;
	struct redisloop *rl = arg;
	redisAsyncContext *ac = rl->ac;
	rl->busy = 1;
	/* an error or hang-up is noticed by whichever handler is interested */
	if ((events & LOOP_WRITE) || ((events & LOOP_ERROR) && (rl->want & LOOP_WRITE)))
		redisAsyncHandleWrite(ac);
	if (!rl->dead &&
	    ((events & LOOP_READ) || ((events & LOOP_ERROR) && (rl->want & LOOP_READ))))
		redisAsyncHandleRead(ac);
	rl->busy = 0;
	if (rl->dead)
		free(rl);
}

static void update(struct redisloop *rl)
{
	if (!rl->want) {
		if (rl->added)
			loop_fd_del(rl->l, rl->fd);
		rl->added = 0;
		return;
	}
	if (!rl->added) {
		if (loop_fd_add(rl->l, rl->fd, rl->want, on_fd, rl) == 0)
			rl->added = 1;
	} else {
		loop_fd_mod(rl->l, rl->fd, rl->want);
	}
}

static void add_read(void *p)
{
	struct redisloop *rl = p;
	rl->want |= LOOP_READ;
	update(rl);
}

static void del_read(void *p)
{
	struct redisloop *rl = p;
	rl->want &= ~LOOP_READ;
	update(rl);
}

static void add_write(void *p)
{
	struct redisloop *rl = p;
	rl->want |= LOOP_WRITE;
	update(rl);
}

static void del_write(void *p)
{
	struct redisloop *rl = p;
	rl->want &= ~LOOP_WRITE;
	update(rl);
}

static void cleanup(void *p)
{
	struct redisloop *rl = p;
	rl->want = 0;
	update(rl);
	if (rl->busy)
		rl->dead = 1;
	else
		free(rl);
}

int redisloop_attach(redisAsyncContext *ac, struct loop *l)
{
	if (ac->ev.data)
		return -1;
	struct redisloop *rl = xcalloc(1, sizeof *rl);
	rl->l = l;
	rl->ac = ac;
	rl->fd = ac->c.fd;
	ac->ev.data = rl;
	ac->ev.addRead = add_read;
	ac->ev.delRead = del_read;
	ac->ev.addWrite = add_write;
	ac->ev.delWrite = del_write;
	ac->ev.cleanup = cleanup;
	return 0;
}
