/*
 * test_ctl - control socket round trips: OK/ERR bodies, JSON flag, argument
 * splitting, oversized and stalled peers dropped without harming the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/loop.h"
#include "ctl/ctl.h"

static int handler(void *arg, int argc, char **argv, int json, struct strbuf *out)
{
	(*(int *)arg)++;
	if (strcmp(argv[0], "echo") == 0) {
		strbuf_addf(out, "%s%d", json ? "json:" : "", argc);
		for (int i = 1; i < argc; i++)
			strbuf_addf(out, " [%s]", argv[i]);
		strbuf_addc(out, '\n');
		return 0;
	}
	strbuf_addf(out, "unknown verb %s\n", argv[0]);
	return -1;
}

static void stop(struct loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

/* Child: runs the client checks and exits 0 when all held. */
static int client(const char *path)
{
	struct strbuf out = STRBUF_INIT;
	char *a1[] = {"echo", "a b", "192.0.2.1"};
	if (ctl_call(path, 3, a1, 0, &out) != 0 || strcmp(out.s, "3 [a b] [192.0.2.1]\n") != 0)
		return 1;
	strbuf_reset(&out);
	if (ctl_call(path, 1, a1, 1, &out) != 0 || strcmp(out.s, "json:1\n") != 0)
		return 2;
	strbuf_reset(&out);
	char *a2[] = {"nope"};
	if (ctl_call(path, 1, a2, 0, &out) != 1 || !strstr(out.s, "unknown verb"))
		return 3;
	/* an oversized request is dropped: the connection closes without an answer */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return 4;
	char big[8192];
	memset(big, 'x', sizeof big);
	for (int i = 0; i < 20; i++)
		if (send(fd, big, sizeof big, MSG_NOSIGNAL) < 0)
			break;
	char c;
	if (recv(fd, &c, 1, 0) > 0)
		return 5;
	close(fd);
	/* the server still answers afterwards */
	strbuf_reset(&out);
	if (ctl_call(path, 3, a1, 0, &out) != 0)
		return 6;
	strbuf_free(&out);
	return 0;
}

static void roundtrip(void **state)
{
	(void)state;
	char path[] = "/tmp/mxjail-ctl-XXXXXX";
	assert_non_null(mkdtemp(path));
	char sock[128];
	snprintf(sock, sizeof sock, "%s/s", path);
	struct loop *l = loop_new();
	int calls = 0;
	char err[256];
	struct ctl_server *s = ctl_server_new(l, sock, handler, &calls, err, sizeof err);
	assert_non_null(s);
	struct stat st;
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	pid_t pid = fork();
	if (pid == 0)
		_exit(client(sock));
	/* run the server until the child is done (bounded) */
	int status = -1;
	for (int i = 0; i < 200; i++) {
		loop_timer_add(l, 20, stop, NULL);
		loop_run(l);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(calls, 4);
	ctl_server_free(s);
	loop_free(l);
	rmdir(path);
}

static void unreachable(void **state)
{
	(void)state;
	struct strbuf out = STRBUF_INIT;
	char *a[] = {"ping"};
	assert_true(ctl_call("/nonexistent/mxjail.sock", 1, a, 0, &out) < 0);
	assert_non_null(strstr(out.s, "cannot reach mxjail"));
	strbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip),
		cmocka_unit_test(unreachable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
