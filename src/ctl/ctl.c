/*
 * ctl - control socket server and client (see ctl.h).
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/xmalloc.h"

struct conn {
	struct ctl_server *srv;
	int fd;
	struct strbuf in, out;
	size_t sent;
	uint64_t timer;
	struct conn *next, *prev;
};

struct ctl_server {
	struct loop *loop;
	int fd;
	char *path;
	ctl_handler h;
	void *arg;
	struct conn *conns;
};

static void conn_close(struct conn *c)
{
	struct ctl_server *s = c->srv;
	loop_fd_del(s->loop, c->fd);
	if (c->timer)
		loop_timer_del(s->loop, c->timer);
	close(c->fd);
	strbuf_free(&c->in);
	strbuf_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static void conn_timeout(struct loop *l, void *arg)
{
	(void)l;
	struct conn *c = arg;
	c->timer = 0;
	conn_close(c);
}

static void conn_write(struct conn *c)
{
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* wait for LOOP_WRITE */
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	conn_close(c);
}

static void dispatch(struct conn *c)
{
	char *argv[CTL_MAX_ARGS];
	int argc = 0, json = 0;
	char *line = c->in.s;
	line[c->in.len - 1] = '\0'; /* the newline */
	if (c->in.len >= 2 && line[c->in.len - 2] == '\r')
		line[c->in.len - 2] = '\0';
	for (char *save = NULL, *w = strtok_r(line, "\t", &save); w && argc < CTL_MAX_ARGS;
	     w = strtok_r(NULL, "\t", &save)) {
		if (argc == 0 && strcmp(w, "--json") == 0) {
			json = 1;
			continue;
		}
		argv[argc++] = w;
	}
	struct strbuf body = STRBUF_INIT;
	int rc;
	if (argc == 0) {
		strbuf_adds(&body, "empty request\n");
		rc = -1;
	} else {
		rc = c->srv->h(c->srv->arg, argc, argv, json, &body);
	}
	strbuf_adds(&c->out, rc == 0 ? "OK\n" : "ERR\n");
	strbuf_add(&c->out, strbuf_str(&body), body.len);
	strbuf_free(&body);
	loop_fd_mod(c->srv->loop, c->fd, LOOP_WRITE);
	conn_write(c);
}

static void conn_event(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)fd;
	struct conn *c = arg;
	if (c->out.len) {
		if (ev & (LOOP_WRITE | LOOP_ERROR))
			conn_write(c);
		return;
	}
	char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof buf, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	strbuf_add(&c->in, buf, (size_t)n);
	char *nl = memchr(c->in.s, '\n', c->in.len);
	if (nl) {
		c->in.len = (size_t)(nl - c->in.s) + 1;
		dispatch(c);
	} else if (c->in.len > CTL_MAX_REQUEST) {
		conn_close(c);
	}
}

static void on_accept(struct loop *l, int fd, unsigned ev, void *arg)
{
	(void)ev;
	struct ctl_server *s = arg;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0)
			return; /* EAGAIN, or EMFILE: try again on the next wakeup */
		struct ucred cr;
		socklen_t crl = sizeof cr;
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			close(cfd);
			continue;
		}
		struct conn *c = xcalloc(1, sizeof *c);
		c->srv = s;
		c->fd = cfd;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		if (loop_fd_add(l, cfd, LOOP_READ, conn_event, c) < 0) {
			conn_close(c);
			continue;
		}
		c->timer = loop_timer_add(l, CTL_TIMEOUT_MS, conn_timeout, c);
	}
}

struct ctl_server *ctl_server_new(struct loop *l, const char *path, ctl_handler h, void *arg,
				  char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return NULL;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	unlink(path);
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	struct ctl_server *s = xcalloc(1, sizeof *s);
	s->loop = l;
	s->fd = fd;
	s->path = xstrdup(path);
	s->h = h;
	s->arg = arg;
	if (loop_fd_add(l, fd, LOOP_READ, on_accept, s) < 0) {
		snprintf(err, errlen, "%s: cannot watch the socket", path);
		ctl_server_free(s);
		return NULL;
	}
	return s;
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_close(s->conns);
	loop_fd_del(s->loop, s->fd);
	close(s->fd);
	unlink(s->path);
	free(s->path);
	free(s);
}

int ctl_call(const char *path, int argc, char **argv, int json, struct strbuf *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		strbuf_addf(out, "%s: socket path too long\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		strbuf_addf(out, "cannot reach mxjail at %s: %s (is `mxjail run` started?)\n", path,
			    strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	struct strbuf req = STRBUF_INIT;
	if (json)
		strbuf_adds(&req, "--json\t");
	for (int i = 0; i < argc; i++) {
		if (i)
			strbuf_addc(&req, '\t');
		for (const char *p = argv[i]; *p; p++) /* TAB and newline cannot be sent */
			strbuf_addc(&req, *p == '\t' || *p == '\n' ? ' ' : *p);
	}
	strbuf_addc(&req, '\n');
	size_t off = 0;
	while (off < req.len) {
		ssize_t n = send(fd, req.s + off, req.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			strbuf_free(&req);
			close(fd);
			strbuf_addf(out, "send to %s: %s\n", path, strerror(e));
			return -e;
		}
		off += (size_t)n;
	}
	strbuf_free(&req);
	struct strbuf resp = STRBUF_INIT;
	char buf[8192];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		strbuf_add(&resp, buf, (size_t)n);
	}
	close(fd);
	const char *r = strbuf_str(&resp);
	int rc;
	if (strncmp(r, "OK\n", 3) == 0) {
		strbuf_add(out, r + 3, resp.len - 3);
		rc = 0;
	} else if (strncmp(r, "ERR\n", 4) == 0) {
		strbuf_add(out, r + 4, resp.len - 4);
		rc = 1;
	} else {
		strbuf_addf(out, "no valid answer from %s\n", path);
		rc = -EPROTO;
	}
	strbuf_free(&resp);
	return rc;
}
