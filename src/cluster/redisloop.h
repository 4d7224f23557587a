/*
 * redisloop - attaches a hiredis asynchronous context to mxjail's event loop
 * (core/loop.h).
 *
 * Why by hand: hiredis 0.14 (Debian 12) ships adapters for libevent, libev,
 * libuv, glib, ae and others, but mxjail runs its own small epoll loop and
 * pulling in a second event library for two sockets is not worth it. hiredis
 * asks its adapter for four things only (start/stop reading, start/stop
 * writing) plus a cleanup call when the context is freed; this file maps
 * them onto loop_fd_add/mod/del. hiredis 0.14 has no command timeouts in
 * its async API: the caller (cluster.c) watches replies itself.
 *
 * INTERFACE: redisloop_attach() once, right after redisAsyncConnect*(); the
 * adapter state is freed by hiredis' cleanup hook when the context goes.
 * Returns 0 or -1 (the context already has an adapter).
 */
#ifndef MXJAIL_CLUSTER_REDISLOOP_H
#define MXJAIL_CLUSTER_REDISLOOP_H

struct redisAsyncContext;
struct loop;

int redisloop_attach(struct redisAsyncContext *ac, struct loop *l);

#endif
