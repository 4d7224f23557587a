/*
 * test_metrics - the Prometheus text builder (grammar checks, escaping,
 * families regrouped, value spelling, the collector registry) and the small
 * HTTP server (request parsing, query decoding, listen addresses, and a live
 * server on 127.0.0.1 answering a forked client: keep-alive, pipelining, bad
 * requests, an oversized head, a stalled client cut off by the head timeout,
 * eviction of idle clients at the connection cap).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/loop.h"
#include "core/strbuf.h"
#include "metrics/http.h"
#include "metrics/metrics.h"

/* ---------- text builder ---------- */

static void names(void **state)
{
	(void)state;
	assert_true(metrics_name_ok("mxjail_jail_bans_total"));
	assert_true(metrics_name_ok("a:b_c9"));
	assert_true(metrics_name_ok("_x"));
	assert_false(metrics_name_ok("9abc"));
	assert_false(metrics_name_ok(""));
	assert_false(metrics_name_ok("a-b"));
	assert_false(metrics_name_ok("a b"));
	assert_false(metrics_name_ok(NULL));
	assert_true(metrics_label_ok("jail"));
	assert_false(metrics_label_ok("__name"));
	assert_false(metrics_label_ok("a:b"));
	assert_false(metrics_label_ok("1a"));
}

static void escaping(void **state)
{
	(void)state;
	struct strbuf o = STRBUF_INIT;
	metrics_escape_label(&o, "a\\b\"c\nd");
	assert_string_equal(strbuf_str(&o), "a\\\\b\\\"c\\nd");
	strbuf_reset(&o);
	metrics_escape_label(&o, "x\xff" "y\xc3\xa9");
	assert_string_equal(strbuf_str(&o), "x\xef\xbf\xbdy\xc3\xa9");
	strbuf_reset(&o);
	metrics_escape_label(&o, "\xed\xa0\x80"); /* a UTF-16 surrogate is not UTF-8 */
	assert_string_equal(strbuf_str(&o), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	strbuf_free(&o);
}

static void families(void **state)
{
	(void)state;
	struct metrics_buf *b = metrics_buf_new();
	struct strbuf o = STRBUF_INIT;
	assert_int_equal(metrics_family(b, "m_total", METRICS_COUNTER, "Help with \\ and\nline."), 0);
	assert_int_equal(metrics_sample1(b, "jail", "a\"b", 3), 0);
	assert_int_equal(metrics_family(b, "g", METRICS_GAUGE, NULL), 0);
	assert_int_equal(metrics_sample0(b, 0.5), 0);
	/* reopening groups the sample under the first HELP/TYPE */
	assert_int_equal(metrics_family(b, "m_total", METRICS_COUNTER, NULL), 0);
	assert_int_equal(metrics_sample1(b, "jail", "c", 1e20), 0);
	/* a type conflict and bad names are refused, and nothing is written */
	assert_int_equal(metrics_family(b, "m_total", METRICS_GAUGE, NULL), -22);
	assert_int_equal(metrics_sample0(b, 1), -22);
	assert_int_equal(metrics_family(b, "bad-name", METRICS_GAUGE, NULL), -22);
	assert_int_equal(metrics_family(b, "h", METRICS_UNTYPED, NULL), 0);
	assert_int_equal(metrics_sample1(b, "__x", "v", 1), -22);
	assert_int_equal(metrics_sample2(b, "a", "1", "a", "2", 1), -22);
	const char *odd[] = {"a", NULL};
	assert_int_equal(metrics_sample(b, odd, 1), -22);
	assert_int_equal(metrics_sample2(b, "a", "1", "b", "2", 0.0 / 0.0), 0);
	assert_int_equal(metrics_sample1(b, "a", "inf", 1.0 / 0.0), 0);
	assert_int_equal(metrics_sample1(b, "a", "-inf", -1.0 / 0.0), 0);
	assert_int_equal(metrics_sample1(b, "a", "neg", -7), 0);
	metrics_buf_finish(b, &o);
	assert_string_equal(strbuf_str(&o),
			    "# HELP m_total Help with \\\\ and\\nline.\n"
			    "# TYPE m_total counter\n"
			    "m_total{jail=\"a\\\"b\"} 3\n"
			    "m_total{jail=\"c\"} 1e+20\n"
			    "# TYPE g gauge\n"
			    "g 0.5\n"
			    "# TYPE h untyped\n"
			    "h{a=\"1\",b=\"2\"} NaN\n"
			    "h{a=\"inf\"} +Inf\n"
			    "h{a=\"-inf\"} -Inf\n"
			    "h{a=\"neg\"} -7\n");
	/* the builder is empty again after finishing */
	strbuf_reset(&o);
	metrics_buf_finish(b, &o);
	assert_string_equal(strbuf_str(&o), "");
	metrics_buf_free(b);
	strbuf_free(&o);
}

static void collect_a(struct metrics_buf *b, void *arg)
{
	metrics_single(b, "a_total", METRICS_COUNTER, "A.", (double)*(int *)arg);
	metrics_family(b, "shared", METRICS_GAUGE, "Shared.");
	metrics_sample1(b, "from", "a", 1);
}

static void collect_b(struct metrics_buf *b, void *arg)
{
	(void)arg;
	metrics_sample0(b, 99); /* no family open: refused, not glued to a's family */
	metrics_family(b, "shared", METRICS_GAUGE, NULL);
	metrics_sample1(b, "from", "b", 2);
}

static void registry(void **state)
{
	(void)state;
	struct metrics *m = metrics_new();
	int n = 5;
	metrics_register(m, collect_a, &n);
	metrics_register(m, collect_b, NULL);
	metrics_register(m, collect_a, &n); /* once only */
	struct strbuf o = STRBUF_INIT;
	metrics_render(m, &o);
	assert_string_equal(strbuf_str(&o), "# HELP a_total A.\n# TYPE a_total counter\na_total 5\n"
					    "# HELP shared Shared.\n# TYPE shared gauge\n"
					    "shared{from=\"a\"} 1\nshared{from=\"b\"} 2\n");
	metrics_unregister(m, collect_a, &n);
	metrics_unregister(m, collect_a, &n);
	strbuf_reset(&o);
	metrics_render(m, &o);
	assert_string_equal(strbuf_str(&o), "# TYPE shared gauge\nshared{from=\"b\"} 2\n");
	strbuf_free(&o);
	metrics_free(m);
}

static void process(void **state)
{
	(void)state;
	struct metrics_buf *b = metrics_buf_new();
	struct strbuf o = STRBUF_INIT;
	metrics_process(b);
	metrics_buf_finish(b, &o);
	assert_non_null(strstr(strbuf_str(&o), "\nprocess_resident_memory_bytes "));
	assert_non_null(strstr(strbuf_str(&o), "\nprocess_cpu_seconds_total "));
	assert_non_null(strstr(strbuf_str(&o), "\nprocess_open_fds "));
	metrics_buf_free(b);
	strbuf_free(&o);
}

/* ---------- HTTP parsing ---------- */

static long parse(const char *text, struct http_request *rq, char *buf, size_t cap)
{
	size_t n = strlen(text);
	assert_true(n < cap);
	memcpy(buf, text, n + 1);
	return http_parse_request(buf, n, rq);
}

static void request_parsing(void **state)
{
	(void)state;
	char buf[4096];
	struct http_request rq;
	const char *ok = "GET /metrics?token=a%20b&x HTTP/1.1\r\nHost: h\r\nUser-Agent:  curl \r\n\r\nNEXT";
	assert_int_equal(parse(ok, &rq, buf, sizeof buf), (long)strlen(ok) - 4);
	assert_string_equal(rq.method, "GET");
	assert_string_equal(rq.path, "/metrics");
	assert_string_equal(rq.query, "token=a%20b&x");
	assert_int_equal(rq.minor, 1);
	assert_true(rq.keep_alive);
	assert_string_equal(http_header(&rq, "user-agent"), "curl");
	assert_null(http_header(&rq, "Cookie"));
	/* bare LF, leading empty lines, HTTP/1.0 closes unless asked */
	assert_true(parse("\r\n\nGET / HTTP/1.0\n\n", &rq, buf, sizeof buf) > 0);
	assert_false(rq.keep_alive);
	assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &rq, buf, sizeof buf) > 0);
	assert_true(rq.keep_alive);
	assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &rq, buf,
			  sizeof buf) > 0);
	assert_false(rq.keep_alive);
	assert_true(parse("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", &rq, buf, sizeof buf) > 0);
	/* incomplete */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n", &rq, buf, sizeof buf), 0);
	assert_int_equal(parse("\r\n\r\n\r\n", &rq, buf, sizeof buf), 0);
	/* refused */
	assert_int_equal(parse("POST / HTTP/1.1\r\nHost: h\r\n\r\n", &rq, buf, sizeof buf), -405);
	assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &rq, buf, sizeof buf), -505);
	assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &rq, buf, sizeof buf), -400); /* no Host */
	assert_int_equal(parse("GET / FOO\r\n\r\n", &rq, buf, sizeof buf), -400);
	assert_int_equal(parse("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", &rq, buf, sizeof buf), -400);
	assert_int_equal(parse("GET http://x/ HTTP/1.1\r\nHost: h\r\n\r\n", &rq, buf, sizeof buf), -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", &rq, buf, sizeof buf), -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n", &rq, buf, sizeof buf), -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", &rq, buf,
			       sizeof buf),
			 -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", &rq,
			       buf, sizeof buf),
			 -400);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", &rq, buf, sizeof buf),
			 -400);
	assert_int_equal(parse("G\x7f / HTTP/1.1\r\nHost: h\r\n\r\n", &rq, buf, sizeof buf), -400);
	char nul[] = "GET / HTTP/1.1\r\nHost: h\0x\r\n\r\n";
	assert_int_equal(http_parse_request(nul, sizeof nul - 1, &rq), -400);
	/* too many headers */
	struct strbuf many = STRBUF_INIT;
	strbuf_adds(&many, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++)
		strbuf_addf(&many, "X-%d: v\r\n", i);
	strbuf_adds(&many, "\r\n");
	assert_int_equal(http_parse_request(many.s, many.len, &rq), -431);
	strbuf_free(&many);
}

static void query(void **state)
{
	(void)state;
	char out[16];
	assert_int_equal(http_query_get("a=1&token=x%2By+z&b", "token", out, sizeof out), 5);
	assert_string_equal(out, "x+y z");
	assert_int_equal(http_query_get("a=1&b", "b", out, sizeof out), 0);
	assert_string_equal(out, "");
	assert_int_equal(http_query_get("tokenx=1", "token", out, sizeof out), -1);
	assert_int_equal(http_query_get("", "token", out, sizeof out), -1);
	assert_int_equal(http_query_get("t=%zz%4", "t", out, sizeof out), 5);
	assert_string_equal(out, "%zz%4");
	assert_int_equal(http_query_get("t=0123456789abcdefghij", "t", out, sizeof out), 20);
	assert_string_equal(out, "0123456789abcde");
}

static void listen_specs(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	socklen_t sl;
	char err[256];
	assert_int_equal(http_parse_listen("127.0.0.1:9191", &ss, &sl, err, sizeof err), 0);
	assert_int_equal(http_parse_listen("0.0.0.0:9191", &ss, &sl, err, sizeof err), 1);
	assert_int_equal(http_parse_listen("192.0.2.1:9191", &ss, &sl, err, sizeof err), 1);
	assert_int_equal(http_parse_listen("[::]:9191", &ss, &sl, err, sizeof err), 1);
	assert_int_equal(http_parse_listen("127.1.2.3:9191", &ss, &sl, err, sizeof err), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9191);
	assert_int_equal(http_parse_listen("9191", &ss, &sl, err, sizeof err), 0);
	assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(0x7f000001));
	assert_int_equal(http_parse_listen("localhost:1", &ss, &sl, err, sizeof err), 0);
	assert_int_equal(http_parse_listen("[::1]:9191", &ss, &sl, err, sizeof err), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(http_parse_listen("::1:9191", &ss, &sl, err, sizeof err), -22);
	assert_int_equal(http_parse_listen("127.0.0.1:70000", &ss, &sl, err, sizeof err), -22);
	assert_int_equal(http_parse_listen("127.0.0.1:", &ss, &sl, err, sizeof err), -22);
	assert_int_equal(http_parse_listen("example.org:80", &ss, &sl, err, sizeof err), -22);
	assert_non_null(strstr(err, "not an IP address"));
	assert_int_equal(http_parse_listen("", &ss, &sl, err, sizeof err), -22);
	assert_int_equal(http_parse_listen("[::1:80", &ss, &sl, err, sizeof err), -22);
}

/* ---------- a live server ---------- */

static void handler(void *arg, const struct http_request *rq, struct http_response *rs)
{
	(*(int *)arg)++;
	if (strcmp(rq->path, "/hello") == 0) {
		strbuf_addf(&rs->body, "hello %s", rq->query);
		return;
	}
	rs->status = 404;
	strbuf_adds(&rs->body, "no");
}

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(0x7f000001);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends req and reads until the peer closes (or 5 s pass); returns the bytes. */
static char *exchange(int port, const char *req, size_t len)
{
	int fd = dial(port);
	if (fd < 0)
		return strdup("");
	send(fd, req, len, MSG_NOSIGNAL);
	struct strbuf o = STRBUF_INIT;
	char b[4096];
	ssize_t n;
	while ((n = recv(fd, b, sizeof b, 0)) > 0)
		strbuf_add(&o, b, (size_t)n);
	close(fd);
	return strbuf_detach(&o);
}

static int count(const char *s, const char *w)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, w)); p += strlen(w))
		n++;
	return n;
}

static int client(int port)
{
	const char *pipelined = "GET /hello?1 HTTP/1.1\r\nHost: h\r\n\r\n"
				"HEAD /hello?2 HTTP/1.1\r\nHost: h\r\n\r\n"
				"GET /hello?3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
	char *r = exchange(port, pipelined, strlen(pipelined));
	if (count(r, "HTTP/1.1 200 OK") != 3 || !strstr(r, "hello 1") || strstr(r, "hello 2") ||
	    !strstr(r, "hello 3") || !strstr(r, "Content-Length: 7\r\n"))
		return 1;
	free(r);
	/* empty lines before a request are skipped */
	r = exchange(port, "\r\n\n\r\nGET /hello?4 HTTP/1.0\r\n\r\n", 30);
	if (!strstr(r, "hello 4"))
		return 10;
	free(r);
	/* a head arriving one byte at a time, its end split across reads */
	int one = dial(port);
	int nd = 1;
	setsockopt(one, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd);
	const char *req = "GET /hello?5 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
	for (const char *p = req; *p; p++) {
		send(one, p, 1, MSG_NOSIGNAL);
		usleep(2000);
	}
	char got[1024];
	size_t gl = 0;
	ssize_t k;
	while (gl < sizeof got - 1 && (k = recv(one, got + gl, sizeof got - 1 - gl, 0)) > 0)
		gl += (size_t)k;
	got[gl] = '\0';
	close(one);
	if (!strstr(got, "hello 5"))
		return 11;
	r = exchange(port, "GET /x HTTP/1.0\r\n\r\n", 19);
	if (strncmp(r, "HTTP/1.1 404 ", 13) != 0 || !strstr(r, "Connection: close"))
		return 2;
	free(r);
	r = exchange(port, "DELETE / HTTP/1.1\r\nHost: h\r\n\r\n", 31);
	if (strncmp(r, "HTTP/1.1 405 ", 13) != 0 || !strstr(r, "Allow: GET, HEAD"))
		return 3;
	free(r);
	r = exchange(port, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15);
	if (strncmp(r, "HTTP/1.1 400 ", 13) != 0)
		return 4;
	free(r);
	/* an endless header line: 431 once the head limit (1 KiB here) is full */
	char big[3000];
	memset(big, 'a', sizeof big);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	r = exchange(port, big, sizeof big);
	if (strncmp(r, "HTTP/1.1 431 ", 13) != 0)
		return 5;
	free(r);
	/* a stalled head is cut off by the head timeout (300 ms here) */
	int slow = dial(port);
	send(slow, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL);
	for (int i = 0; i < 5; i++) {
		usleep(100000);
		send(slow, "X", 1, MSG_NOSIGNAL); /* trickling does not extend it */
	}
	char b[512];
	ssize_t n = recv(slow, b, sizeof b - 1, 0);
	if (n <= 0)
		return 6;
	b[n] = '\0';
	if (strncmp(b, "HTTP/1.1 408 ", 13) != 0)
		return 7;
	close(slow);
	/* at the connection cap (4 here) the oldest idle connection makes room */
	int idle[4];
	for (int i = 0; i < 4; i++)
		idle[i] = dial(port);
	usleep(50000);
	r = exchange(port, "GET /hello?ok HTTP/1.0\r\n\r\n", 26);
	if (!strstr(r, "hello ok"))
		return 8;
	free(r);
	if (recv(idle[0], b, sizeof b, 0) != 0)
		return 9; /* evicted: closed without an answer */
	for (int i = 0; i < 4; i++)
		close(idle[i]);
	return 0;
}

static void stop(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

static void live_server(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	int calls = 0;
	char err[256];
	struct http_opts o = {1024, 4, 300, 2000, 2000, 10};
	struct http_server *s = http_server_new(l, "127.0.0.1:0", &o, handler, &calls, err, sizeof err);
	assert_non_null(s);
	assert_true(http_server_loopback(s));
	int port = http_server_port(s);
	assert_true(port > 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(client(port));
	int status = -1;
	for (int i = 0; i < 1000; i++) {
		loop_timer_add(l, 20, stop, NULL);
		loop_run(l);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(calls, 7);
	struct http_stats st;
	http_server_stats(s, &st);
	assert_int_equal(st.requests, 7);
	assert_int_equal(st.errors, 3); /* 405, 400, 431 */
	assert_int_equal(st.timeouts, 1);
	assert_true(st.evicted >= 1);
	http_server_free(s);
	loop_free(l);
}

static void busy_port(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	char err[256];
	struct http_server *a = http_server_new(l, "127.0.0.1:0", NULL, handler, NULL, err, sizeof err);
	assert_non_null(a);
	char spec[64];
	snprintf(spec, sizeof spec, "127.0.0.1:%d", http_server_port(a));
	assert_null(http_server_new(l, spec, NULL, handler, NULL, err, sizeof err));
	assert_non_null(strstr(err, "in use"));
	http_server_free(a);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names),          cmocka_unit_test(escaping),
		cmocka_unit_test(families),       cmocka_unit_test(registry),
		cmocka_unit_test(process),        cmocka_unit_test(request_parsing),
		cmocka_unit_test(query),          cmocka_unit_test(listen_specs),
		cmocka_unit_test(live_server),    cmocka_unit_test(busy_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
