/*
 * test_policysrv - the policy service's sockets against a stub engine: replies
 * in order (pipelined, CRLF), batched replies at the end of a turn, no reply
 * to a malformed request but to the good ones before it, and a close on
 * malformed and oversized requests, half-closed peers still answered, a
 * peer that never reads keeps the server bounded and gets every reply once
 * it reads, idle timeout,
 * connection cap, unix sockets, bad listen values. The loop runs in this
 * thread for a bounded time between client steps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "policy/policy.h"
#include "policy/policysrv.h"

#define REQ "request=smtpd_access_policy\nclient_address=10.1.2.3\nrecipient=a@b.test\n\n"

/* Stub engine: echoes the recipient so order can be checked. */
static void stub_eval(void *arg, const struct policy_req *r, struct strbuf *out)
{
	unsigned *calls = arg;
	(*calls)++;
	const char *rc = policy_req_get(r, "recipient");
	strbuf_addf(out, "DUNNO %s", rc ? rc : "-");
}

static void stop_cb(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

static void pump(struct loop *l, unsigned ms)
{
	loop_timer_add(l, ms, stop_cb, NULL);
	loop_run(l);
}

struct fixture {
	struct loop *l;
	struct policysrv *s;
	unsigned calls;
	int port;
};

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t sl = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &sl);
	close(fd);
	return ntohs(a.sin_port);
}

static void start(struct fixture *f, const struct policysrv_opts *o)
{
	memset(f, 0, sizeof *f);
	f->l = loop_new();
	f->port = free_port();
	char spec[64], err[256];
	snprintf(spec, sizeof spec, "inet:127.0.0.1:%d", f->port);
	f->s = policysrv_new(f->l, spec, o, stub_eval, &f->calls, err, sizeof err);
	if (!f->s)
		fail_msg("%s", err);
}

static void stop(struct fixture *f)
{
	policysrv_free(f->s);
	loop_free(f->l);
}

static int client_buf(struct fixture *f, int bufsize)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bufsize) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	pump(f->l, 20);
	return fd;
}

static int client(struct fixture *f)
{
	return client_buf(f, 0);
}

/* Reads what is there; returns bytes, 0 at EOF... as recv; -1 when nothing yet. */
static ssize_t rd(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void test_basic_and_pipelined(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	int fd = client(&f);
	assert_int_equal(send(fd, REQ, strlen(REQ), 0), (ssize_t)strlen(REQ));
	pump(f.l, 30);
	char buf[4096];
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO a@b.test\n\n");
	/* two requests in one segment, the second with CRLF, answered in order */
	const char *two = "recipient=one@x\n\nrecipient=two@x\r\nclient_address=::1\r\n\r\n";
	send(fd, two, strlen(two), 0);
	pump(f.l, 30);
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO one@x\n\naction=DUNNO two@x\n\n");
	/* a request split over many writes */
	for (const char *p = REQ; *p; p++) {
		send(fd, p, 1, 0);
		pump(f.l, 1);
	}
	pump(f.l, 20);
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO a@b.test\n\n");
	assert_int_equal(f.calls, 4);
	close(fd);
	stop(&f);
}

/* Replies wait for the end of the turn's reads, a bounded number of
 * connections and bytes at a time: forty connections whose requests arrive
 * in one turn each get their own reply, and 300 pipelined requests (replies
 * beyond the per-connection batch size) are answered completely, in order. */
static void test_batched_replies(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	int fds[40];
	char req[128], want[64], buf[16384];
	for (int i = 0; i < 40; i++)
		fds[i] = client(&f);
	for (int i = 0; i < 40; i++) {
		int n = snprintf(req, sizeof req, "recipient=c%d@x\n\n", i);
		assert_int_equal(send(fds[i], req, (size_t)n, 0), n);
	}
	pump(f.l, 50);
	for (int i = 0; i < 40; i++) {
		snprintf(want, sizeof want, "action=DUNNO c%d@x\n\n", i);
		assert_true(rd(fds[i], buf, sizeof buf) > 0);
		assert_string_equal(buf, want);
		close(fds[i]);
	}
	struct strbuf all = STRBUF_INIT, exp = STRBUF_INIT;
	for (int i = 0; i < 300; i++) {
		strbuf_addf(&all, "recipient=p%03d@x\n\n", i);
		strbuf_addf(&exp, "action=DUNNO p%03d@x\n\n", i);
	}
	int fd = client(&f);
	assert_int_equal(send(fd, all.s, all.len, 0), (ssize_t)all.len);
	struct strbuf got = STRBUF_INIT;
	for (int k = 0; k < 50 && got.len < exp.len; k++) {
		pump(f.l, 10);
		ssize_t n;
		while ((n = rd(fd, buf, sizeof buf)) > 0)
			strbuf_add(&got, buf, (size_t)n);
	}
	assert_int_equal(got.len, exp.len);
	assert_memory_equal(got.s, exp.s, exp.len);
	assert_int_equal(f.calls, 340);
	close(fd);
	strbuf_free(&all);
	strbuf_free(&exp);
	strbuf_free(&got);
	stop(&f);
}

static void test_malformed_closed(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	const char *bad[] = {"no equals sign\n\n", "=empty name\n\n", "a=b\0c\n\n"};
	size_t badlen[] = {16, 14, 8};
	for (size_t i = 0; i < 3; i++) {
		int fd = client(&f);
		send(fd, bad[i], badlen[i], 0);
		pump(f.l, 30);
		char buf[256];
		assert_int_equal(rd(fd, buf, sizeof buf), 0); /* closed, nothing sent */
		close(fd);
	}
	/* a good request before garbage is answered, then the close */
	int fd = client(&f);
	const char *mix = REQ "garbage\n";
	send(fd, mix, strlen(mix), 0);
	pump(f.l, 30);
	char buf[256];
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO a@b.test\n\n");
	assert_int_equal(rd(fd, buf, sizeof buf), 0);
	close(fd);
	struct policysrv_stats s;
	policysrv_stats(f.s, &s);
	assert_int_equal(s.malformed, 4);
	assert_int_equal(s.conns, 0);
	stop(&f);
}

static void test_oversized(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	int fd = client(&f);
	size_t big = 1024 * 1024;
	char *line = xmalloc(big);
	memcpy(line, "x=", 2);
	memset(line + 2, 'a', big - 2);
	size_t sent = 0;
	int closed = 0;
	for (int i = 0; i < 400 && sent < big; i++) {
		ssize_t n = send(fd, line + sent, big - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		else if (n < 0 && errno != EAGAIN) {
			closed = 1;
			break;
		}
		pump(f.l, 5);
	}
	pump(f.l, 20);
	char buf[256];
	ssize_t r = rd(fd, buf, sizeof buf);
	assert_true(closed || r <= 0);
	assert_true(r != -1 || errno != EAGAIN); /* EOF or reset, never "still open" */
	struct policysrv_stats s;
	policysrv_stats(f.s, &s);
	assert_int_equal(s.malformed, 1);
	assert_int_equal(s.conns, 0);
	assert_int_equal(f.calls, 0);
	free(line);
	close(fd);
	stop(&f);
}

static void test_half_closed(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	int fd = client(&f);
	send(fd, REQ REQ, 2 * strlen(REQ), 0);
	shutdown(fd, SHUT_WR);
	pump(f.l, 40);
	char buf[256];
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO a@b.test\n\naction=DUNNO a@b.test\n\n");
	assert_int_equal(rd(fd, buf, sizeof buf), 0);
	close(fd);
	/* half a request then EOF: no reply */
	fd = client(&f);
	send(fd, "recipient=x\n", 12, 0);
	shutdown(fd, SHUT_WR);
	pump(f.l, 30);
	assert_int_equal(rd(fd, buf, sizeof buf), 0);
	close(fd);
	stop(&f);
}

static void test_stalled_reader(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	int fd = client_buf(&f, 256 * 1024);
	/* many pipelined requests, nothing read: the server must stop reading
	 * rather than queue replies without bound */
	size_t n = 400000, sent = 0, total = n * strlen(REQ);
	struct strbuf all = STRBUF_INIT;
	for (size_t i = 0; i < n; i++)
		strbuf_adds(&all, REQ);
	for (int i = 0; i < 200 && sent < total; i++) {
		ssize_t w = send(fd, all.s + sent, total - sent, MSG_DONTWAIT);
		if (w > 0)
			sent += (size_t)w;
		pump(f.l, 2);
	}
	assert_true(sent < total); /* back-pressure reached the sender */
	assert_true(f.calls < n);
	/* now read everything, sending the rest as we go */
	size_t got = 0;
	char buf[65536], prev = 0;
	for (int i = 0; i < 400000 && got < n; i++) {
		if (sent < total) {
			ssize_t w = send(fd, all.s + sent, total - sent, MSG_DONTWAIT);
			if (w > 0)
				sent += (size_t)w;
		}
		pump(f.l, 0);
		ssize_t r = rd(fd, buf, sizeof buf);
		/* a reply ends in "\n\n", possibly split over two reads */
		for (ssize_t k = 0; k < r; k++) {
			if (buf[k] == '\n' && prev == '\n') {
				got++;
				prev = 0;
				continue;
			}
			prev = buf[k];
		}
	}
	assert_int_equal(got, n);
	assert_int_equal(f.calls, n);
	strbuf_free(&all);
	close(fd);
	stop(&f);
}

static void test_idle_timeout_and_cap(void **st)
{
	(void)st;
	struct fixture f;
	struct policysrv_opts o = {.idle_timeout = 0.5, .max_conns = 2};
	start(&f, &o);
	int a = client(&f), b = client(&f), c = client(&f);
	char buf[256];
	assert_int_equal(rd(c, buf, sizeof buf), 0); /* third refused */
	send(a, REQ, strlen(REQ), 0);
	pump(f.l, 30);
	assert_true(rd(a, buf, sizeof buf) > 0);
	pump(f.l, 2100);
	assert_int_equal(rd(a, buf, sizeof buf), 0);
	assert_int_equal(rd(b, buf, sizeof buf), 0);
	struct policysrv_stats s;
	policysrv_stats(f.s, &s);
	assert_int_equal(s.timeouts, 2);
	assert_int_equal(s.refused, 1);
	assert_int_equal(s.conns, 0);
	struct strbuf out = STRBUF_INIT;
	policysrv_format(f.s, 1, &out);
	assert_non_null(strstr(out.s, "\"refused\":1"));
	strbuf_free(&out);
	close(a);
	close(b);
	close(c);
	stop(&f);
}

static void test_unix_and_errors(void **st)
{
	(void)st;
	struct loop *l = loop_new();
	unsigned calls = 0;
	char path[] = "/tmp/test_policysrv_XXXXXX";
	assert_non_null(mkdtemp(path));
	char *sock = xasprintf("%s/p.sock", path);
	char *spec = xasprintf("unix:%s", sock);
	char err[256];
	struct policysrv *s = policysrv_new(l, spec, NULL, stub_eval, &calls, err, sizeof err);
	assert_non_null(s);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	send(fd, REQ, strlen(REQ), 0);
	pump(l, 30);
	char buf[256];
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO a@b.test\n\n");
	close(fd);
	policysrv_free(s);
	assert_int_not_equal(access(sock, F_OK), 0); /* removed */

	const char *bad[] = {"", "tcp:1.2.3.4:5", "inet:127.0.0.1:0", "inet:127.0.0.1:x",
			     "inet:not-an-address-at-all.invalid:10023"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_null(policysrv_new(l, bad[i], NULL, stub_eval, &calls, err, sizeof err));
		assert_true(err[0] != '\0');
	}
	/* a port in use is an error with the address in it */
	int port = free_port();
	char *ok = xasprintf("inet:127.0.0.1:%d", port);
	s = policysrv_new(l, ok, NULL, stub_eval, &calls, err, sizeof err);
	assert_non_null(s);
	assert_null(policysrv_new(l, ok, NULL, stub_eval, &calls, err, sizeof err));
	assert_non_null(strstr(err, ok));
	policysrv_free(s);
	free(ok);
	rmdir(path);
	free(sock);
	free(spec);
	loop_free(l);
}

/* Out of descriptors: pending connections are shed (closed at once) through
 * the reserve descriptor instead of leaving a readable listener to spin on;
 * service resumes when descriptors are back. */
static void test_emfile(void **st)
{
	(void)st;
	struct fixture f;
	start(&f, NULL);
	int cl[3];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f.port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < 3; i++) {
		cl[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(cl[i], (struct sockaddr *)&a, sizeof a), 0);
	}
	struct rlimit old, lim;
	getrlimit(RLIMIT_NOFILE, &old);
	int lowest = dup(0);
	close(lowest);
	lim = old;
	lim.rlim_cur = (rlim_t)lowest; /* the next descriptor cannot be had */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	pump(f.l, 100);
	setrlimit(RLIMIT_NOFILE, &old);
	struct policysrv_stats s;
	policysrv_stats(f.s, &s);
	assert_int_equal(s.refused, 3);
	assert_int_equal(s.conns, 0);
	char buf[64];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rd(cl[i], buf, sizeof buf), 0); /* shed: EOF */
		close(cl[i]);
	}
	int fd = client(&f);
	send(fd, REQ, strlen(REQ), 0);
	pump(f.l, 30);
	assert_true(rd(fd, buf, sizeof buf) > 0);
	assert_string_equal(buf, "action=DUNNO a@b.test\n\n");
	close(fd);
	stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_and_pipelined),
		cmocka_unit_test(test_batched_replies),
		cmocka_unit_test(test_malformed_closed),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_half_closed),
		cmocka_unit_test(test_stalled_reader),
		cmocka_unit_test(test_idle_timeout_and_cap),
		cmocka_unit_test(test_unix_and_errors),
		cmocka_unit_test(test_emfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
