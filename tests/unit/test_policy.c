/*
 * test_policy - the policy engine: greylisting with postgrey's semantics
 * (sender normalisation, subnet/host lookup, delay, retry window, max age,
 * auto-whitelist, Debian's whitelist files, one X-Greylist per message),
 * rate limits (keys, units, several windows, sliding), spoofed local senders
 * (listed domains and a fake postconf), banned clients, check order, state
 * round trip through a real store, incremental expiry, and a short
 * measurement of policy_eval per request (printed, never asserted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "core/kvlist.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "net/addr.h"
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "policy/pwriter.h"
#include "store/store.h"

#define T0 1700000000.0

/* ---- helpers ---- */

struct req {
	struct policy_req r;
	struct policy_parser *pp;
};

/* Builds a request from "name=value" pairs separated by '|'. */
static void mkreq(struct req *q, const char *spec)
{
	struct strbuf b = STRBUF_INIT;
	char err[128];
	for (const char *p = spec; *p; p++)
		strbuf_addc(&b, *p == '|' ? '\n' : *p);
	strbuf_adds(&b, "\n\n");
	if (!q->pp) {
		q->pp = policy_parser_new();
		policy_req_init(&q->r);
	}
	long n = policy_parser_feed(q->pp, b.s, b.len, &q->r, err, sizeof(err));
	assert_int_equal(n, (long)b.len);
	strbuf_free(&b);
}

static void freereq(struct req *q)
{
	policy_req_free(&q->r);
	policy_parser_free(q->pp);
}

static char *eval(struct policy *p, struct req *q, const char *spec, double now)
{
	static struct strbuf out;
	mkreq(q, spec);
	strbuf_reset(&out);
	policy_eval(p, &q->r, now, &out);
	return out.s;
}

struct events {
	int n;
	char check[32];
	char key[256];
	char line[512];
	int banned;      /* is_banned answers this */
	int glupdates, rladds;
};

static int is_banned(void *arg, const struct addr *a, double now)
{
	struct events *ev = arg;
	(void)now;
	return ev->banned && a->family == 4 && a->a[0] == 198;
}

static void on_event(void *arg, const char *check, const char *id, const char *key,
		     const char *line, double now)
{
	struct events *ev = arg;
	(void)id;
	(void)now;
	ev->n++;
	snprintf(ev->check, sizeof(ev->check), "%s", check);
	snprintf(ev->key, sizeof(ev->key), "%s", key);
	snprintf(ev->line, sizeof(ev->line), "%s", line);
}

static void on_gl(void *arg, const char *t, double f, double l, unsigned c)
{
	(void)t; (void)f; (void)l; (void)c;
	((struct events *)arg)->glupdates++;
}

static void on_rl(void *arg, const char *lim, const char *k, double t, double a)
{
	(void)lim; (void)k; (void)t; (void)a;
	((struct events *)arg)->rladds++;
}

static struct policy *mk(const char *checks, const char *gl, const char *rl, const char *sp,
			 struct store *st, struct events *ev, double now)
{
	struct kvlist kp = KVLIST_INIT, kg = KVLIST_INIT, kr = KVLIST_INIT, ks = KVLIST_INIT;
	struct kvlist *ls[4] = { &kp, &kg, &kr, &ks };
	const char *specs[4] = { checks, gl, rl, sp };
	char err[512] = "";
	for (int i = 0; i < 4; i++) {
		if (!specs[i])
			continue;
		char *s = xstrdup(specs[i]), *save = NULL;
		for (char *t = strtok_r(s, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
			char *eq = strchr(t, '=');
			assert_non_null(eq);
			*eq = '\0';
			kvlist_set(ls[i], t, eq + 1);
		}
		free(s);
	}
	struct policy_host h = { ev, is_banned, on_event, on_gl, on_rl, NULL };
	struct policy *p = policy_new(&kp, &kg, &kr, &ks, st, &h, now, err, sizeof(err));
	if (!p && getenv("MXJAIL_TEST_VERBOSE"))
		fprintf(stderr, "policy_new: %s\n", err);
	for (int i = 0; i < 4; i++)
		kvlist_free(ls[i]);
	return p;
}

/* no whitelist files unless a test names them */
#define NOWL "whitelist_clients=/nonexistent/a;whitelist_recipients=/nonexistent/b"

#define RCPT(ca, cn, snd, rcpt) \
	"request=smtpd_access_policy|protocol_state=RCPT|client_address=" ca "|client_name=" cn \
	"|sender=" snd "|recipient=" rcpt

/* ---- greylist ---- */

static void sender_normalisation(void **state)
{
	(void)state;
	struct strbuf b = STRBUF_INIT;
	static const char *const cases[][2] = {
		{ "user@example.com", "user@example.com" },
		{ "user+tag@example.com", "user@example.com" },
		{ "list-bounces-123-456@example.com", "list-bounces-#-#@example.com" },
		{ "bounce.12345.x@example.com", "bounce.#.x@example.com" },
		{ "abc123@example.com", "abc123@example.com" },
		{ "a_123@example.com", "a_123@example.com" },
		{ "prvs=0123456789=user@example.com", "user@example.com" },
		{ "prvs=user=0123456789@example.com", "user@example.com" },
		{ "prvs=a=b@example.com", "b@example.com" },
		{ "prvs=onlyone@example.com", "prvs=onlyone@example.com" },
		{ "", "" },
		{ "nodomain", "nodomain" },
		{ "12@34@x", "#@34@x" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		policy_gl_norm_sender(cases[i][0], &b);
		assert_string_equal(strbuf_str(&b), cases[i][1]);
	}
	/* what postgrey's own code makes of random and real senders */
	const char *src = getenv("MXJAIL_SRCDIR");
	char path[1024];
	snprintf(path, sizeof(path), "%s/tests/fixtures/postgrey/senders.tsv", src ? src : ".");
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char *tab = strchr(line, '\t');
		if (line[0] == '#' || !tab)
			continue;
		*tab = '\0';
		policy_gl_norm_sender(line, &b);
		if (strcmp(strbuf_str(&b), tab + 1) != 0)
			fail_msg("%s: got %s, postgrey %s", line, strbuf_str(&b), tab + 1);
		n++;
	}
	fclose(f);
	assert_true(n >= 90);
	strbuf_free(&b);
}

static void greylist_basic(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=greylist", NOWL, NULL, NULL, NULL, &ev, T0);
	assert_non_null(p);
	const char *r1 = RCPT("192.0.2.10", "mx.example.com", "a+x@example.com", "b@example.net");
	char *out = eval(p, &q, r1, T0);
	assert_non_null(strstr(out, "DEFER_IF_PERMIT 4.2.0 Greylisted"));
	assert_non_null(strstr(out, " 300 seconds"));
	assert_int_equal(ev.n, 1);
	assert_string_equal(ev.check, "greylist");
	assert_string_equal(ev.key, "192.0.2.0/a@example.com/b@example.net");
	/* early retry from the same /24, other host, other extension */
	out = eval(p, &q, RCPT("192.0.2.77", "x", "a+y@Example.COM", "B@example.net"), T0 + 100);
	assert_non_null(strstr(out, " 200 seconds"));
	out = eval(p, &q, RCPT("192.0.2.77", "x", "a@example.com", "b@example.net"), T0 + 299.5);
	assert_non_null(strstr(out, " 1 seconds"));
	/* after the delay: passes with one header for this message */
	out = eval(p, &q, RCPT("192.0.2.10", "x", "a@example.com", "b@example.net") "|instance=m1",
		   T0 + 301);
	assert_int_equal(strncmp(out, "PREPEND X-Greylist: delayed 301 seconds by mxjail; ", 51), 0);
	/* a second recipient of the same message: new triplet still waits */
	out = eval(p, &q, RCPT("192.0.2.10", "x", "a@example.com", "c@example.net") "|instance=m1",
		   T0 + 302);
	assert_non_null(strstr(out, "Greylisted"));
	/* the same triplet again: plain DUNNO (header only on the first pass) */
	out = eval(p, &q, RCPT("192.0.2.10", "x", "a@example.com", "b@example.net") "|instance=m2",
		   T0 + 400);
	assert_string_equal(out, "DUNNO");
	/* another /24 is another triplet */
	out = eval(p, &q, RCPT("192.0.3.10", "x", "a@example.com", "b@example.net"), T0 + 400);
	assert_non_null(strstr(out, "Greylisted"));
	/* other protocol states and missing attributes are not greylisted */
	out = eval(p, &q, "protocol_state=DATA|client_address=192.0.9.1|client_name=x|sender=|recipient=", T0);
	assert_string_equal(out, "DUNNO");
	out = eval(p, &q, "protocol_state=RCPT|client_address=192.0.9.1|sender=a@b", T0);
	assert_string_equal(out, "DUNNO");
	assert_true(ev.glupdates >= 5);
	struct strbuf s = STRBUF_INIT;
	assert_int_equal(policy_status(p, 0, &s), 0);
	if (!strstr(s.s, "greylist: requests 9, passes 4, defers 5"))
		fail_msg("%s", s.s);
	strbuf_reset(&s);
	assert_int_equal(policy_status(p, 1, &s), 0);
	assert_non_null(strstr(s.s, "\"name\":\"greylist\""));
	assert_non_null(strstr(s.s, "\"triplets\":3"));
	strbuf_free(&s);
	policy_free(p);
	freereq(&q);
}

static void greylist_ipv6_host_and_windows(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=greylist", NOWL ";delay=60;retry_window=1h;max_age=1d;"
			      "auto_whitelist_clients=0", NULL, NULL, NULL, &ev, T0);
	assert_non_null(p);
	char *out = eval(p, &q, RCPT("2001:db8:1:2::5", "x", "s@a", "r@b"), T0);
	assert_non_null(strstr(out, "Greylisted"));
	assert_string_equal(ev.key, "2001:db8:1:2::/s@a/r@b");
	/* same /64 */
	out = eval(p, &q, RCPT("2001:db8:1:2:ffff::1", "x", "s@a", "r@b"), T0 + 61);
	assert_int_equal(strncmp(out, "PREPEND ", 8), 0);
	/* retry window: a first retry after 1h restarts the delay */
	out = eval(p, &q, RCPT("192.0.2.1", "x", "s@a", "r@b"), T0);
	assert_non_null(strstr(out, "Greylisted"));
	out = eval(p, &q, RCPT("192.0.2.1", "x", "s@a", "r@b"), T0 + 3601);
	assert_non_null(strstr(out, " 60 seconds"));
	policy_free(p);

	/* lookup by host */
	p = mk("checks=greylist", NOWL ";lookup_by=host;delay=60", NULL, NULL, NULL, &ev, T0);
	out = eval(p, &q, RCPT("192.0.2.1", "x", "s@a", "r@b"), T0);
	assert_string_equal(ev.key, "192.0.2.1/s@a/r@b");
	out = eval(p, &q, RCPT("192.0.2.2", "x", "s@a", "r@b"), T0 + 100);
	assert_non_null(strstr(out, " 60 seconds"));
	policy_free(p);

	/* bad configuration */
	char err[256];
	struct kvlist g = KVLIST_INIT;
	kvlist_set(&g, "lookup_by", "net");
	assert_null(policy_new(NULL, &g, NULL, NULL, NULL, NULL, T0, err, sizeof(err)));
	assert_non_null(strstr(err, "lookup_by"));
	kvlist_set(&g, "lookup_by", "host");
	kvlist_set(&g, "delay", "soon");
	assert_null(policy_new(NULL, &g, NULL, NULL, NULL, NULL, T0, err, sizeof(err)));
	assert_non_null(strstr(err, "[greylist] delay"));
	kvlist_free(&g);
	freereq(&q);
}

static void greylist_awl_and_expiry(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=greylist", NOWL ";delay=60;auto_whitelist_clients=2;"
			      "retry_window=1h;max_age=2d", NULL, NULL, NULL, &ev, T0);
	double t = T0;
	char *out;
	/* two successful greylist passes, at least an hour apart */
	for (int i = 0; i < 2; i++) {
		char spec[256];
		snprintf(spec, sizeof(spec), RCPT("192.0.2.9", "x", "s%d@a", "r@b"), i);
		out = eval(p, &q, spec, t);
		assert_non_null(strstr(out, "Greylisted"));
		out = eval(p, &q, spec, t + 61);
		assert_int_equal(strncmp(out, "PREPEND", 7), 0);
		t += 7200;
	}
	/* the client is now whitelisted for any triplet */
	out = eval(p, &q, RCPT("192.0.2.9", "x", "new@a", "other@b"), t);
	assert_string_equal(out, "DUNNO");
	/* but not its neighbour */
	out = eval(p, &q, RCPT("192.0.2.10", "x", "new@a", "other@b"), t);
	assert_non_null(strstr(out, "Greylisted"));

	struct strbuf s = STRBUF_INIT;
	policy_greylist_list(p, 0, t, &s);
	if (!strstr(s.s, "client 192.0.2.9  3 passes (auto-whitelisted)"))
		fail_msg("%s", s.s);
	strbuf_reset(&s);
	policy_greylist_list(p, 1, t, &s);
	assert_non_null(strstr(s.s, "\"whitelisted\":true"));

	/* expiry: a pending entry goes after retry_window, passed ones after max_age */
	policy_expire_step(p, t + 3700, 1000);
	strbuf_reset(&s);
	policy_greylist_list(p, 0, t + 3700, &s);
	assert_null(strstr(s.s, "new@a/other@b"));   /* pending, expired */
	assert_non_null(strstr(s.s, "s0@a/r@b"));     /* passed, kept */
	/* a budget of 1 examines one entry per call; repeated calls get them all */
	for (int i = 0; i < 20; i++)
		policy_expire_step(p, t + 3 * 86400, 1);
	strbuf_reset(&s);
	policy_greylist_list(p, 0, t + 3 * 86400, &s);
	assert_string_equal(strbuf_str(&s), "");

	/* delete by client, sender and recipient */
	eval(p, &q, RCPT("192.0.2.1", "x", "s+1@a", "r@b"), t);
	eval(p, &q, RCPT("192.0.5.1", "x", "z@a", "r2@b"), t);
	eval(p, &q, RCPT("192.0.6.1", "x", "y@a", "r3@b"), t);
	assert_int_equal(policy_greylist_del(p, "192.0.2.200", t), 1);
	assert_int_equal(policy_greylist_del(p, "Z@a", t), 1);
	assert_int_equal(policy_greylist_del(p, "r3@b", t), 1);
	assert_int_equal(policy_greylist_del(p, "nothing", t), 0);
	strbuf_free(&s);
	policy_free(p);
	freereq(&q);
}

static void greylist_whitelists(void **state)
{
	(void)state;
	const char *src = getenv("MXJAIL_SRCDIR");
	char conf[1024], local[] = "/tmp/mxjail-test-wl-XXXXXX";
	int fd = mkstemp(local);
	assert_true(fd >= 0);
	const char *extra = "# local additions\n"
			    "  mail.partner.example   # trailing comment\n"
			    "10.1.2\n10.9\n300.1.2.3\n2001:db8:77::/48\n203.0.113.5/32\n/^mx\\d+\\.regex\\.example$/\n";
	assert_int_equal(write(fd, extra, strlen(extra)), (ssize_t)strlen(extra));
	close(fd);
	char rl[] = "/tmp/mxjail-test-wr-XXXXXX";
	fd = mkstemp(rl);
	const char *rtext = "postmaster@\nabuse@\nvip@example.net\nlists.example.org\n/^noc-.*@/\n";
	assert_int_equal(write(fd, rtext, strlen(rtext)), (ssize_t)strlen(rtext));
	close(fd);
	snprintf(conf, sizeof(conf),
		 "whitelist_clients=%s/tests/fixtures/postgrey/whitelist_clients %s /nonexistent/x.local;"
		 "whitelist_recipients=%s/tests/fixtures/postgrey/whitelist_recipients %s",
		 src ? src : ".", local, src ? src : ".", rl);
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=greylist", conf, NULL, NULL, NULL, &ev, T0);
	assert_non_null(p);
	static const char *const pass[] = {
		RCPT("192.0.2.1", "lists.debian.org", "a@b", "c@d"),          /* suffix */
		RCPT("192.0.2.1", "debian.org", "a@b", "c@d"),                /* exact */
		RCPT("192.0.2.1", "ms-smtp-03.nyroc.rr.com", "a@b", "c@d"),   /* Debian regex */
		RCPT("192.0.2.1", "MAIL7.telekom.de", "a@b", "c@d"),          /* case */
		RCPT("66.216.126.174", "unknown", "a@b", "c@d"),              /* Debian IP */
		RCPT("195.235.39.200", "unknown", "a@b", "c@d"),              /* partial /24 */
		RCPT("10.9.0.77", "unknown", "a@b", "c@d"),                   /* "10.9": /24 */
		RCPT("2001:db8:77:1::1", "unknown", "a@b", "c@d"),
		RCPT("203.0.113.5", "unknown", "a@b", "c@d"),
		RCPT("192.0.2.1", "smtp.mail.partner.example", "a@b", "c@d"),
		RCPT("192.0.2.1", "mx12.regex.example", "a@b", "c@d"),
		RCPT("192.0.2.1", "x", "a@b", "postmaster@anything.example"),
		RCPT("192.0.2.1", "x", "a@b", "Abuse+tag@anything.example"),
		RCPT("192.0.2.1", "x", "a@b", "vip+x@example.net"),
		RCPT("192.0.2.1", "x", "a@b", "x@lists.example.org"),
		RCPT("192.0.2.1", "x", "a@b", "x@sub.lists.example.org"),
		RCPT("192.0.2.1", "x", "a@b", "noc-team@x.example"),
	};
	for (size_t i = 0; i < sizeof(pass) / sizeof(*pass); i++) {
		char *out = eval(p, &q, pass[i], T0);
		if (strcmp(out, "DUNNO") != 0)
			fail_msg("not whitelisted: %s -> %s", pass[i], out);
	}
	static const char *const grey[] = {
		RCPT("192.0.2.1", "notdebian.org", "a@b", "c@d"),
		RCPT("192.0.2.1", "unknown", "a@b", "c@d"),
		RCPT("192.0.2.1", "ms-smtp-03.nyroc.rr.com.evil", "a@b", "c@d"),
		RCPT("10.1.3.1", "x", "a@b", "c@d"),
		RCPT("10.9.200.1", "x", "a@b", "c@d"),       /* postgrey's "a.b" is a.b.0.0/24 */
		RCPT("192.0.2.1", "x", "a@b", "vip@example.org"),
		RCPT("192.0.2.1", "x", "a@b", "xvip@example.net"),
		RCPT("192.0.2.1", "x", "a@b", "x@notlists.example.org"),
	};
	for (size_t i = 0; i < sizeof(grey) / sizeof(*grey); i++) {
		char *out = eval(p, &q, grey[i], T0);
		if (!strstr(out, "Greylisted"))
			fail_msg("whitelisted by mistake: %s -> %s", grey[i], out);
	}
	policy_free(p);

	/* a bad line names the file and line */
	FILE *f = fopen(local, "a");
	fputs("/unbalanced(/\n", f);
	fclose(f);
	char err[512];
	struct kvlist g = KVLIST_INIT;
	kvlist_set(&g, "whitelist_clients", local);
	kvlist_set(&g, "whitelist_recipients", "/nonexistent");
	assert_null(policy_new(NULL, &g, NULL, NULL, NULL, NULL, T0, err, sizeof(err)));
	assert_non_null(strstr(err, ":9: "));
	/* an unreadable file is an error, a missing one is not */
	kvlist_set(&g, "whitelist_clients", "/");
	assert_null(policy_new(NULL, &g, NULL, NULL, NULL, NULL, T0, err, sizeof(err)));
	kvlist_free(&g);
	unlink(local);
	unlink(rl);
	freereq(&q);
}

/* ---- rate limits ---- */

#define DATA(ca, sasl, snd, n) \
	"request=smtpd_access_policy|protocol_state=DATA|client_address=" ca "|sasl_username=" sasl \
	"|sender=" snd "|recipient_count=" n
#define EOM(ca, size) \
	"request=smtpd_access_policy|protocol_state=END-OF-MESSAGE|client_address=" ca \
	"|sender=x@y|size=" size

static void ratelimit_recipients_sasl(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=ratelimit", NULL,
			      "sasl=sasl_username: 10 recipients / 1h, 15 / 1d", NULL, NULL, &ev, T0);
	assert_non_null(p);
	char *out;
	/* no sasl_username: not counted */
	for (int i = 0; i < 20; i++)
		assert_string_equal(eval(p, &q, DATA("192.0.2.1", "", "a@b", "5"), T0), "DUNNO");
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "6"), T0), "DUNNO");
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "4"), T0 + 1), "DUNNO");
	out = eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "1"), T0 + 2);
	assert_string_equal(out, "DEFER_IF_PERMIT 4.7.1 rate limit exceeded");
	assert_string_equal(ev.check, "ratelimit");
	assert_string_equal(ev.key, "alice");
	assert_non_null(strstr(ev.line, "limit=sasl 10 recipients / 1h"));
	/* once full, a RCPT request (adds nothing) is refused early too */
	out = eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d") "|sasl_username=alice", T0 + 3);
	assert_non_null(strstr(out, "rate limit"));
	/* bob is separate */
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "bob", "a@b", "9"), T0 + 3), "DUNNO");
	/* status names the SASL account */
	struct strbuf s = STRBUF_INIT;
	policy_status(p, 0, &s);
	assert_non_null(strstr(s.s, "over limit: alice (SASL account)"));
	assert_non_null(strstr(s.s, "top: alice"));
	strbuf_reset(&s);
	policy_status(p, 1, &s);
	assert_non_null(strstr(s.s, "\"over\":[\"alice\"]"));
	/* the hour slides: after it, 5 more fit in the hour but the day allows only 15 */
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "5"), T0 + 3700), "DUNNO");
	out = eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "1"), T0 + 3701);
	assert_non_null(strstr(out, "rate limit"));
	assert_non_null(strstr(ev.line, "15 / 1d"));
	strbuf_reset(&s);
	policy_ratelimit_list(p, 0, T0 + 3701, &s);
	if (!strstr(s.s, "sasl sasl_username alice: 5 of 10 recipients / 1h, 15 of 15 / 1d (exceeded)"))
		fail_msg("%s", s.s);
	/* reset */
	assert_int_equal(policy_ratelimit_reset(p, "alice"), 1);
	assert_int_equal(policy_ratelimit_reset(p, "alice"), 0);
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "5"), T0 + 3702), "DUNNO");
	strbuf_free(&s);
	policy_free(p);
	freereq(&q);
}

static void ratelimit_units_and_keys(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=ratelimit", NULL,
			      "req=client_address: 3 requests / 10s;"
			      "msg=sender_domain: 2 messages / 1m;"
			      "big=client_address: 1000 bytes / 1h;"
			      "dom=recipient_domain: 2 requests / 1m;"
			      "snd=sender: 100 requests / 1m;"
			      "action=450 4.7.1 slow down",
			      NULL, NULL, &ev, T0);
	assert_non_null(p);
	/* requests per client, sliding over 10 s */
	const char *r = "protocol_state=RCPT|client_address=192.0.2.50|sender=|recipient=";
	for (int i = 0; i < 3; i++)
		assert_string_equal(eval(p, &q, r, T0 + i), "DUNNO");
	assert_string_equal(eval(p, &q, r, T0 + 3), "450 4.7.1 slow down");
	assert_string_equal(eval(p, &q, r, T0 + 9), "450 4.7.1 slow down");
	assert_string_equal(eval(p, &q, r, T0 + 12), "DUNNO");
	/* messages per sender domain (case folded), counted at DATA only */
	const char *d1 = "protocol_state=DATA|client_address=192.0.2.60|sender=a@Dom.example|recipient_count=1";
	const char *d2 = "protocol_state=DATA|client_address=192.0.2.61|sender=b@dom.EXAMPLE|recipient_count=1";
	assert_string_equal(eval(p, &q, d1, T0), "DUNNO");
	assert_string_equal(eval(p, &q, d2, T0 + 1), "DUNNO");
	assert_string_equal(eval(p, &q, d1, T0 + 2), "450 4.7.1 slow down");
	assert_string_equal(ev.key, "dom.example");
	/* bytes at END-OF-MESSAGE */
	assert_string_equal(eval(p, &q, EOM("192.0.2.70", "600"), T0), "DUNNO");
	assert_string_equal(eval(p, &q, EOM("192.0.2.70", "600"), T0 + 1), "450 4.7.1 slow down");
	assert_string_equal(eval(p, &q, EOM("192.0.2.70", "400"), T0 + 2), "DUNNO");
	/* recipient domain */
	const char *rd = "protocol_state=RCPT|client_address=192.0.2.80|sender=|recipient=x@RD.example";
	assert_string_equal(eval(p, &q, rd, T0), "DUNNO");
	assert_string_equal(eval(p, &q, "protocol_state=RCPT|client_address=192.0.2.81|recipient=y@rd.example", T0), "DUNNO");
	assert_string_equal(eval(p, &q, rd, T0 + 1), "450 4.7.1 slow down");
	assert_string_equal(ev.key, "rd.example");
	struct strbuf s = STRBUF_INIT;
	policy_ratelimit_list(p, 1, T0 + 2, &s);
	assert_non_null(strstr(s.s, "\"keytype\":\"recipient_domain\",\"key\":\"rd.example\""));
	assert_true(ev.rladds > 0);
	/* sender key: case folded, the null sender is not counted (clients vary:
	 * the per-client limit stays out of the way) */
	char sp[256];
	for (int i = 0; i < 100; i++) {
		snprintf(sp, sizeof(sp), "protocol_state=MAIL|client_address=192.0.3.%d|sender=", i);
		assert_string_equal(eval(p, &q, sp, T0 + 20 + i * 0.01), "DUNNO");
	}
	for (int i = 0; i < 100; i++) {
		snprintf(sp, sizeof(sp), "protocol_state=MAIL|client_address=192.0.4.%d|sender=%s", i,
			 i & 1 ? "Bulk@X.example" : "bulk@x.example");
		assert_string_equal(eval(p, &q, sp, T0 + 40 + i * 0.01), "DUNNO");
	}
	assert_string_equal(eval(p, &q, "protocol_state=MAIL|client_address=192.0.2.98|sender=bulk@x.example", T0 + 42),
			    "450 4.7.1 slow down");
	assert_string_equal(ev.key, "bulk@x.example");
	/* idle keys expire after their longest window, a little at a time */
	policy_expire_step(p, T0 + 2 * 3600, 3);
	s.len = 0;
	policy_ratelimit_list(p, 0, T0 + 2 * 3600, &s);
	assert_true(s.len > 0);
	for (int i = 0; i < 200; i++)   /* about 220 keys, 3 per step */
		policy_expire_step(p, T0 + 2 * 3600, 3);
	strbuf_reset(&s);
	policy_ratelimit_list(p, 0, T0 + 2 * 3600, &s);
	assert_string_equal(strbuf_str(&s), "");
	/* cluster import adds to the window */
	policy_ratelimit_import(p, "req/requests", "192.0.2.90", T0 + 7300, 2);
	policy_ratelimit_import(p, "req/requests", "192.0.2.90", T0 + 7300, 2);   /* replayed */
	assert_string_equal(eval(p, &q, "protocol_state=RCPT|client_address=192.0.2.90", T0 + 7300.5),
			    "DUNNO");
	assert_string_equal(eval(p, &q, "protocol_state=RCPT|client_address=192.0.2.90", T0 + 7301),
			    "450 4.7.1 slow down");
	strbuf_free(&s);
	policy_free(p);

	/* configuration errors */
	static const char *const bad[] = {
		"x=client_address 3 requests / 10s", "x=nokey: 3 requests / 10s",
		"x=client_address: 3 apples / 10s", "x=client_address: 3 / 10s",
		"x=client_address: 3 requests 10s", "x=client_address: 3 requests / soon",
		"x=client_address: lots requests / 1h", "x=client_address: 3 requests / 1h,",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		p = mk("checks=ratelimit", NULL, bad[i], NULL, NULL, &ev, T0);
		if (p)
			fail_msg("accepted: %s", bad[i]);
	}
	char err[512];
	struct kvlist k = KVLIST_INIT;
	kvlist_set(&k, "sasl", "sasl_username: 200 recipients per hour");
	struct kvlist pc = KVLIST_INIT;
	kvlist_set(&pc, "checks", "ratelimit");
	assert_null(policy_new(&pc, NULL, &k, NULL, NULL, NULL, T0, err, sizeof(err)));
	assert_non_null(strstr(err, "mxjail.conf [ratelimit] sasl: expected"));
	kvlist_free(&k);
	kvlist_free(&pc);
	freereq(&q);
}

/* ---- spoof, banned, order ---- */

static void spoof_and_banned(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	struct policy *p = mk("checks=banned spoof greylist", NOWL, NULL,
			      "domains=example.org Example.NET;mynetworks=127.0.0.0/8 [2001:db8::]/32 10.0.0.0/8",
			      NULL, &ev, T0);
	assert_non_null(p);
	char *out = eval(p, &q, RCPT("192.0.2.1", "x", "ceo@Example.org", "c@example.org"), T0);
	assert_string_equal(out, "REJECT 5.7.1 sender address spoofing: example.org is served here, authenticate first");
	assert_string_equal(ev.check, "spoof");
	assert_string_equal(ev.key, "ceo@Example.org");
	/* authenticated, or from mynetworks: fine (and then greylisted) */
	out = eval(p, &q, RCPT("192.0.2.1", "x", "ceo@example.org", "c@example.org") "|sasl_username=ceo", T0);
	assert_non_null(strstr(out, "Greylisted"));
	out = eval(p, &q, RCPT("10.1.1.1", "x", "ceo@example.net", "c@example.org"), T0);
	assert_non_null(strstr(out, "Greylisted"));
	out = eval(p, &q, RCPT("2001:db8::9", "x", "ceo@example.net", "c@example.org"), T0);
	assert_non_null(strstr(out, "Greylisted"));
	/* other domains and bounces */
	out = eval(p, &q, RCPT("192.0.2.1", "x", "a@sub.example.org", "c@example.org"), T0);
	assert_non_null(strstr(out, "Greylisted"));
	/* banned comes first */
	ev.banned = 1;
	out = eval(p, &q, RCPT("198.51.100.7", "x", "ceo@example.org", "c@example.org"), T0);
	assert_string_equal(out, "554 5.7.1 Service unavailable; client [198.51.100.7] is banned");
	assert_string_equal(ev.check, "banned");
	policy_free(p);

	/* a fake postconf: the domains of mydestination and friends */
	char dir[] = "/tmp/mxjail-test-pc-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/postconf", dir);
	FILE *f = fopen(path, "w");
	fputs("#!/bin/sh\n[ \"$1 $2 $3\" = \"-x -h mydestination\" ] || exit 3\n"
	      "echo 'mail.example.com, localhost.example.com, localhost'\n"
	      "echo 'hash:/etc/postfix/vmd, virt.example'\necho ''\n", f);
	fclose(f);
	chmod(path, 0755);
	char spec[512];
	snprintf(spec, sizeof(spec), "domains=postconf;postconf_command=%s", path);
	p = mk("checks=spoof", NULL, NULL, spec, NULL, &ev, T0);
	assert_non_null(p);
	out = eval(p, &q, RCPT("192.0.2.1", "x", "x@virt.example", "c@d"), T0);
	assert_non_null(strstr(out, "REJECT 5.7.1"));
	out = eval(p, &q, RCPT("192.0.2.1", "x", "x@mail.example.com", "c@d"), T0);
	assert_non_null(strstr(out, "REJECT 5.7.1"));
	out = eval(p, &q, RCPT("127.0.0.1", "x", "x@mail.example.com", "c@d"), T0);
	assert_string_equal(out, "DUNNO");
	policy_free(p);
	/* an explicit postconf that fails is an error */
	snprintf(spec, sizeof(spec), "domains=postconf;postconf_command=%s/missing", dir);
	assert_null(mk("checks=spoof", NULL, NULL, spec, NULL, &ev, T0));
	unlink(path);
	rmdir(dir);
	freereq(&q);
}

static void order_and_prepend(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	/* greylist's PREPEND loses to a later rate-limit refusal */
	struct policy *p = mk("checks=greylist ratelimit", NOWL ";delay=10",
			      "c=client_address: 1 requests / 1h", NULL, NULL, &ev, T0);
	assert_non_null(p);
	char *out = eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0);
	assert_non_null(strstr(out, "Greylisted"));   /* the rate limit is not asked */
	out = eval(p, &q, DATA("192.0.2.1", "", "a@b", "1"), T0 + 1);
	assert_string_equal(out, "DUNNO");            /* greylist passes DATA, the limit counts */
	out = eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0 + 11);
	assert_string_equal(out, "DEFER_IF_PERMIT 4.7.1 rate limit exceeded");
	policy_free(p);
	/* and is returned when nothing later refuses */
	p = mk("checks=greylist ratelimit", NOWL ";delay=10",
	       "c=client_address: 5 requests / 1h", NULL, NULL, &ev, T0);
	eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0);
	out = eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0 + 11);
	assert_int_equal(strncmp(out, "PREPEND X-Greylist: delayed 11 seconds", 38), 0);
	policy_free(p);
	/* unknown and repeated checks */
	assert_null(mk("checks=banned rbl", NULL, NULL, NULL, NULL, &ev, T0));
	assert_null(mk("checks=banned banned", NULL, NULL, NULL, NULL, &ev, T0));
	/* no checks: DUNNO */
	p = mk("checks= ", NULL, NULL, "domains=", NULL, &ev, T0);
	assert_non_null(p);
	assert_string_equal(eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0), "DUNNO");
	policy_free(p);
	freereq(&q);
}

/* ---- persistence ---- */

static void persistence(void **state)
{
	(void)state;
	char dir[] = "/tmp/mxjail-test-pst-XXXXXX", path[256], msg[256];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.db", dir);
	struct store *st = NULL;
	assert_true(store_open(path, NULL, &st, msg, sizeof(msg)) >= 0);
	struct events ev = {0};
	struct req q = {0};
	const char *gl = NOWL ";delay=60;auto_whitelist_clients=1";
	const char *rl = "s=sasl_username: 5 recipients / 1h";
	struct policy *p = mk("checks=greylist ratelimit", gl, rl, NULL, st, &ev, T0);
	assert_non_null(p);
	eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0);
	eval(p, &q, RCPT("192.0.2.1", "x", "a@b", "c@d"), T0 + 61);     /* passes, AWL 1 */
	eval(p, &q, RCPT("192.0.3.1", "x", "w@b", "c@d"), T0 + 62);     /* waiting */
	eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "4"), T0 + 62);
	assert_true(policy_pending(p) >= 4);
	int frc = policy_flush(p, T0 + 63);
	if (frc != 0)
		fail_msg("flush: %d %s", frc, store_error(st));
	assert_int_equal(policy_pending(p), 0);
	assert_int_equal(policy_flush(p, T0 + 63), 0);                   /* nothing queued */
	policy_free(p);
	st = store_close(st);

	assert_true(store_open(path, NULL, &st, msg, sizeof(msg)) >= 0);
	p = mk("checks=greylist ratelimit", gl, rl, NULL, st, &ev, T0 + 100);
	assert_non_null(p);
	/* the AWL client passes at once, the waiting triplet keeps its first-seen */
	assert_string_equal(eval(p, &q, RCPT("192.0.2.1", "x", "z@b", "y@d"), T0 + 100), "DUNNO");
	char *out = eval(p, &q, RCPT("192.0.3.1", "x", "w@b", "c@d"), T0 + 100);
	assert_non_null(strstr(out, " 22 seconds"));
	out = eval(p, &q, RCPT("192.0.3.1", "x", "w@b", "c@d"), T0 + 130);
	assert_int_equal(strncmp(out, "PREPEND X-Greylist: delayed 68 seconds", 38), 0);
	/* alice has used 4 of 5 recipients */
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "2"), T0 + 101),
			    "DEFER_IF_PERMIT 4.7.1 rate limit exceeded");
	assert_string_equal(eval(p, &q, DATA("192.0.2.1", "alice", "a@b", "1"), T0 + 102), "DUNNO");
	/* deletion reaches the store too */
	assert_int_equal(policy_greylist_del(p, "192.0.3.1", T0 + 103), 2);   /* triplet + AWL */
	assert_int_equal(policy_ratelimit_reset(p, "s/alice"), 1);
	assert_int_equal(policy_flush(p, T0 + 103), 0);
	policy_free(p);
	st = store_close(st);

	assert_true(store_open(path, NULL, &st, msg, sizeof(msg)) >= 0);
	p = mk("checks=greylist ratelimit", gl, rl, NULL, st, &ev, T0 + 200);
	struct strbuf s = STRBUF_INIT;
	policy_greylist_list(p, 0, T0 + 200, &s);
	assert_null(strstr(s.s, "192.0.3.0/"));
	assert_non_null(strstr(s.s, "192.0.2.0/a@b/c@d"));
	strbuf_reset(&s);
	policy_ratelimit_list(p, 0, T0 + 200, &s);
	assert_string_equal(strbuf_str(&s), "");
	/* cluster import is idempotent */
	policy_greylist_import(p, "192.0.9.0/x@y/z@w", T0, T0 + 10, 2);
	policy_greylist_import(p, "192.0.9.0/x@y/z@w", T0, T0 + 10, 2);
	policy_greylist_import(p, "192.0.9.0/x@y/z@w", T0, T0 + 5, 1);   /* older: ignored */
	strbuf_reset(&s);
	policy_greylist_list(p, 1, T0 + 200, &s);
	assert_non_null(strstr(s.s, "\"client\":\"192.0.9.0\",\"sender\":\"x@y\",\"recipient\":\"z@w\","
				  "\"first\":1700000000,\"last\":1700000010,\"count\":2"));
	strbuf_free(&s);
	policy_free(p);
	st = store_close(st);
	snprintf(msg, sizeof(msg), "rm -rf '%s'", dir);
	assert_int_equal(system(msg), 0);
	freereq(&q);
}

/* ---- journal + snapshots, driven directly on a small table ---- */

struct tent {
	struct pent e;
	long v;
};

struct ttab {
	struct ptable t;
	struct pqueue q;
};

static int tt_ser(void *arg, struct pent *e, struct strbuf *key, struct strbuf *val)
{
	(void)arg;
	strbuf_add(key, e->key, e->keylen);
	strbuf_addf(val, "%ld", ((struct tent *)e)->v);
	return 0;
}

static void tt_set(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	struct ttab *tt = arg;
	char buf[32];
	assert_true(vl < sizeof(buf));
	memcpy(buf, v, vl);
	buf[vl] = '\0';
	struct tent *e = (struct tent *)policy_ptable_get(&tt->t, k, kl);
	if (!e)
		e = (struct tent *)policy_ptable_add(&tt->t, k, kl, sizeof(*e), NULL, NULL);
	e->v = atol(buf);
}

static void tt_del(void *arg, const char *k, size_t kl)
{
	struct ttab *tt = arg;
	struct pent *e = policy_ptable_get(&tt->t, k, kl);
	if (e) {
		policy_ptable_unlink(&tt->t, e);
		policy_ptable_drop(e);
	}
}

static struct pent *tt_next(void *arg)
{
	return policy_ptable_walk(&((struct ttab *)arg)->t, PT_SNAPSHOT);
}

static void tt_restart(void *arg)
{
	policy_ptable_walk_reset(&((struct ttab *)arg)->t, PT_SNAPSHOT);
}

static const struct pstate_ops tt_ops = { tt_ser, tt_set, tt_del, tt_next, tt_restart };

static void tt_put(struct ttab *tt, const char *k, long v)
{
	struct tent *e = (struct tent *)policy_ptable_get(&tt->t, k, strlen(k));
	if (!e)
		e = (struct tent *)policy_ptable_add(&tt->t, k, strlen(k), sizeof(*e), NULL, NULL);
	e->v = v;
	policy_queue_entry(&tt->q, &e->e);
}

static void tt_rm(struct ttab *tt, const char *k)
{
	struct pent *e = policy_ptable_get(&tt->t, k, strlen(k));
	if (e)
		policy_ptable_remove(&tt->t, e);
}

static void tt_init(struct ttab *tt, size_t max)
{
	memset(tt, 0, sizeof(*tt));
	policy_ptable_init(&tt->t, max);
	tt->t.q = &tt->q;
}

static void tt_free(struct ttab *tt)
{
	policy_ptable_free(&tt->t, NULL);
	policy_queue_free(&tt->q);
}

static long tt_sum(struct ttab *tt, size_t *n)
{
	long s = 0;
	*n = tt->t.n;
	for (struct pent *e = tt->t.head; e; e = e->next)
		s += ((struct tent *)e)->v * (long)(e->key[1] + 1);
	return s;
}

static int count_rows(const char *key, const void *val, size_t len, double exp, void *arg)
{
	(void)key; (void)val; (void)len; (void)exp;
	(*(int *)arg)++;
	return 0;
}

/* One flush of a pstate straight into the store, as policy_flush does
 * for an engine built with policy_new and a store. */
static int ps_flush(struct pstate *ps, struct store *st, double now, struct pqueue *q)
{
	struct pbatch *b = pbatch_new();
	struct pstate_io io = { st, NULL, b, 0, 0 };
	int rc = policy_pstate_flush(ps, &io, now, q);
	if (rc >= 0 && (rc = store_begin(st)) >= 0)
		rc = pbatch_apply_store(b, st);
	int frc = store_flush(st);
	pbatch_free(b);
	return rc < 0 ? rc : frc < 0 ? frc : 0;
}

static int ps_load(struct pstate *ps, struct store *st, double now)
{
	struct pstate_io io = { st, NULL, NULL, 0, 0 };
	return policy_pstate_load(ps, &io, now);
}

/* A pstate over a table of its own, on a store in a fresh directory. */
struct psfix {
	char dir[64];
	struct store *st;
	struct ttab a;
	struct pstate ps;
};

static void psfix_open(struct psfix *f, size_t max)
{
	char path[128], msg[256];
	snprintf(f->dir, sizeof(f->dir), "/tmp/mxjail-test-ps-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/state.db", f->dir);
	f->st = NULL;
	assert_true(store_open(path, NULL, &f->st, msg, sizeof(msg)) >= 0);
	tt_init(&f->a, max);
	policy_pstate_init(&f->ps, "t", &tt_ops, &f->a, 86400);
}

static void psfix_close(struct psfix *f)
{
	char cmd[128];
	policy_pstate_free(&f->ps);
	tt_free(&f->a);
	f->st = store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
}

/* What a restart would load, into r (free with reload_free). */
static void reload(struct psfix *f, double now, struct ttab *r, struct pstate *pr)
{
	tt_init(r, 0);
	policy_pstate_init(pr, "t", &tt_ops, r, 86400);
	assert_int_equal(ps_load(pr, f->st, now), 0);
}

static void reload_free(struct ttab *r, struct pstate *pr)
{
	policy_pstate_free(pr);
	tt_free(r);
}

/* The same keys with the same values (as far as tt_sum tells). */
static void assert_same(struct ttab *a, struct ttab *b)
{
	size_t na, nb;
	long sa = tt_sum(a, &na), sb = tt_sum(b, &nb);
	assert_int_equal(na, nb);
	assert_int_equal(sa, sb);
}

static void journal_snapshots(void **state)
{
	(void)state;
	struct psfix f;
	psfix_open(&f, 0);
	f.ps.chunk = 7;
	f.ps.jrows_max = 5;
	f.ps.jbytes_min = 1 << 30;
	char k[32];
	double now = T0;
	/* many flushes: several snapshots complete, with changes and deletions
	 * between and during them */
	for (int round = 0; round < 60; round++) {
		for (int i = 0; i < 9; i++) {
			snprintf(k, sizeof(k), "k%d", (round * 7 + i * 13) % 50);
			tt_put(&f.a, k, round * 100 + i);
		}
		snprintf(k, sizeof(k), "k%d", (round * 11) % 50);
		tt_rm(&f.a, k);
		assert_int_equal(ps_flush(&f.ps, f.st, now, &f.a.q), 0);
		now += 1;
		if (round % 17 == 16) {
			/* reload from the store: the same table */
			struct ttab b;
			struct pstate pb;
			reload(&f, now, &b, &pb);
			assert_same(&f.a, &b);
			reload_free(&b, &pb);
		}
	}
	assert_true(f.ps.gen >= 3);   /* snapshots were completed */
	/* old rows are retired: a bounded number stays */
	int rows = 0;
	store_kv_foreach(f.st, "t", now, count_rows, &rows);
	assert_true(rows < 40);
	/* a snapshot left half-written (a crash) is ignored at load */
	f.ps.jrows_max = 0;
	tt_put(&f.a, "late", 5);
	assert_int_equal(ps_flush(&f.ps, f.st, now, &f.a.q), 0);
	assert_true(f.ps.snapping);
	struct ttab b;
	struct pstate pb;
	reload(&f, now, &b, &pb);
	assert_same(&f.a, &b);
	assert_non_null(policy_ptable_get(&b.t, "late", 4));
	reload_free(&b, &pb);
	psfix_close(&f);
}

/* A writer stuck too long: the queue is dropped and a fresh snapshot
 * carries the state; once it is complete a reload has everything, including
 * the changes and deletions that were never journaled. */
static void resync_snapshot(void **state)
{
	(void)state;
	char k[32];
	struct psfix f;
	psfix_open(&f, 0);
	f.ps.chunk = 16;
	double now = T0;
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		tt_put(&f.a, k, i);
	}
	assert_int_equal(ps_flush(&f.ps, f.st, now, &f.a.q), 0);
	/* changes the writer never gets: updates, deletions, new keys */
	for (int i = 0; i < 100; i += 3) {
		snprintf(k, sizeof(k), "k%d", i);
		tt_put(&f.a, k, 1000 + i);
		snprintf(k, sizeof(k), "k%d", i + 1);
		tt_rm(&f.a, k);
		snprintf(k, sizeof(k), "n%d", i);
		tt_put(&f.a, k, 7);
	}
	assert_true(policy_queue_len(&f.a.q) > 0);
	struct pstate_io io = { f.st, NULL, NULL, 0, 1 };
	assert_int_equal(policy_pstate_flush(&f.ps, &io, now, &f.a.q), 0);
	assert_int_equal(policy_queue_len(&f.a.q), 0);
	assert_true(f.ps.snapping);
	/* a change after the resync is journaled again (its flag was cleared) */
	tt_put(&f.a, "k0", 5);
	assert_int_equal(policy_queue_len(&f.a.q), 1);
	for (int i = 0; i < 100 && f.ps.snapping; i++)
		assert_int_equal(ps_flush(&f.ps, f.st, ++now, &f.a.q), 0);
	assert_false(f.ps.snapping);
	struct ttab b;
	struct pstate pb;
	reload(&f, now, &b, &pb);
	assert_same(&f.a, &b);
	assert_null(policy_ptable_get(&b.t, "k1", 2));
	assert_non_null(policy_ptable_get(&b.t, "n3", 2));
	reload_free(&b, &pb);
	psfix_close(&f);
}

/* The write-behind queue holds the entries themselves: an entry changed
 * many times is one record; one deleted and added again under the same key
 * before a flush comes back with its new value; one evicted by the cap while
 * queued is journaled as deleted (it may have been journaled before); a
 * flush with a budget leaves the older entries queued, and one of those
 * deleted before the next flush leaves no trace of its set. After each step
 * a reload has exactly the table. */
static void queue_entries(void **state)
{
	(void)state;
	char k[32];
	struct psfix f;
	psfix_open(&f, 8);
	f.ps.jbytes_min = 1 << 30;
	double now = T0;

	for (int i = 0; i < 5; i++)
		tt_put(&f.a, "same", i);
	assert_int_equal(policy_queue_len(&f.a.q), 1);
	tt_put(&f.a, "back", 1);
	tt_rm(&f.a, "back");
	tt_put(&f.a, "back", 2);
	/* same, back's first slot (empty now), its deletion, back again */
	assert_int_equal(policy_queue_len(&f.a.q), 4);
	assert_int_equal(ps_flush(&f.ps, f.st, now, &f.a.q), 0);
	assert_int_equal(policy_queue_len(&f.a.q), 0);

	/* the cap is 8: the idlest goes, queued or not */
	for (int i = 0; i < 10; i++) {
		snprintf(k, sizeof(k), "c%d", i);
		tt_put(&f.a, k, i);
	}
	assert_int_equal(f.a.t.n, 8);
	assert_null(policy_ptable_get(&f.a.t, "same", 4));
	assert_null(policy_ptable_get(&f.a.t, "c1", 2));
	assert_int_equal(ps_flush(&f.ps, f.st, ++now, &f.a.q), 0);

	/* a budget of 3: the newest three go, the rest stay queued */
	for (int i = 2; i < 10; i++) {
		snprintf(k, sizeof(k), "c%d", i);
		tt_put(&f.a, k, 100 + i);
	}
	struct pbatch *b = pbatch_new();
	struct pstate_io io = { f.st, NULL, b, 3, 0 };
	assert_int_equal(policy_pstate_flush(&f.ps, &io, ++now, &f.a.q), 0);
	assert_int_equal(store_begin(f.st), 0);
	assert_int_equal(pbatch_apply_store(b, f.st), 0);
	assert_int_equal(store_flush(f.st), 0);
	pbatch_free(b);
	assert_int_equal(policy_queue_len(&f.a.q), 5);
	tt_rm(&f.a, "c3");       /* queued, not yet journaled */
	tt_put(&f.a, "c9", 9);   /* journaled, queued again */
	assert_int_equal(ps_flush(&f.ps, f.st, ++now, &f.a.q), 0);
	assert_int_equal(policy_queue_len(&f.a.q), 0);

	struct ttab r;
	struct pstate pr;
	reload(&f, now, &r, &pr);
	/* "same" and "back" were evicted after they had been journaled: they
	 * are in the file until the next snapshot replaces it (an eviction is
	 * not journaled, a full table would double the journal) */
	assert_int_equal(r.t.n, f.a.t.n + 2);
	assert_non_null(policy_ptable_get(&r.t, "back", 4));
	for (struct pent *e = f.a.t.head; e; e = e->next) {
		struct tent *x = (struct tent *)policy_ptable_get(&r.t, e->key, e->keylen);
		assert_non_null(x);
		assert_int_equal(x->v, ((struct tent *)e)->v);
	}
	assert_null(policy_ptable_get(&r.t, "c3", 2));
	assert_null(policy_ptable_get(&r.t, "c0", 2));   /* evicted while queued */
	assert_null(policy_ptable_get(&r.t, "c1", 2));
	assert_int_equal(((struct tent *)policy_ptable_get(&r.t, "c9", 2))->v, 9);
	reload_free(&r, &pr);
	psfix_close(&f);
}

/* ---- caps and a short measurement ---- */

static void caps_and_speed(void **state)
{
	(void)state;
	struct events ev = {0};
	struct req q = {0};
	const char *src = getenv("MXJAIL_SRCDIR");
	char glconf[1024];
	/* Debian's whitelists: their regexes run on every greylisted request */
	snprintf(glconf, sizeof(glconf),
		 "whitelist_clients=%s/tests/fixtures/postgrey/whitelist_clients;"
		 "whitelist_recipients=%s/tests/fixtures/postgrey/whitelist_recipients;"
		 "max_triplets=1000;max_clients=100", src ? src : ".", src ? src : ".");
	struct policy *p = mk("checks=banned spoof ratelimit greylist", glconf,
			      "c=client_address: 100 requests / 1m;s=sasl_username: 100 recipients / 1h;"
			      "max_keys=500",
			      "domains=example.org", NULL, &ev, T0);
	assert_non_null(p);
	char spec[512];
	struct strbuf out = STRBUF_INIT;
	/* many distinct triplets and clients: memory stays at the caps */
	struct policy_req *rs = xcalloc(64, sizeof(*rs));
	struct policy_parser *pp = policy_parser_new();
	char err[128];
	for (int i = 0; i < 64; i++) {
		snprintf(spec, sizeof(spec),
			 "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
			 "client_address=10.%d.%d.%d\nclient_name=host%d.example.net\n"
			 "reverse_client_name=host%d.example.net\nhelo_name=host%d.example.net\n"
			 "sender=user%d@sender.example\nrecipient=rcpt%d@example.com\n"
			 "recipient_count=0\nqueue_id=\ninstance=%x.%x\nsize=0\netrn_domain=\n"
			 "stress=\nsasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\n"
			 "ccert_issuer=\nccert_fingerprint=\nencryption_protocol=TLSv1.3\n"
			 "encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n\n",
			 i % 7, i % 13, i, i, i, i, i % 5, i % 9, i, i);
		policy_req_init(&rs[i]);
		assert_true(policy_parser_feed(pp, spec, strlen(spec), &rs[i], err, sizeof(err)) > 0);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(spec, sizeof(spec), RCPT("10.%d.%d.%d", "x", "s%d@a", "r%d@b"),
			 (i >> 16) & 255, (i >> 8) & 255, i & 255, i, i);
		strbuf_reset(&out);
		mkreq(&q, spec);
		policy_eval(p, &q.r, T0 + i * 0.001, &out);
	}
	assert_int_equal(policy_pending(p), 0);   /* no store: nothing queued, ever */
	struct strbuf s = STRBUF_INIT;
	policy_status(p, 1, &s);
	assert_non_null(strstr(s.s, "\"triplets\":1000"));
	assert_non_null(strstr(s.s, "\"keys\":500"));
	strbuf_free(&s);

	/* ns per request over a realistic request (24 attributes), mixed keys */
	struct timespec a, b;
	int n = 200000;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		strbuf_reset(&out);
		policy_eval(p, &rs[i & 63], T0 + 10 + i * 0.0001, &out);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
	/* the parser too, for the same requests */
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		snprintf(spec, sizeof(spec), "request=smtpd_access_policy\nprotocol_state=RCPT\n"
			 "client_address=10.0.0.%d\nsender=a@b\nrecipient=c@d\n\n", i & 255);
		policy_parser_feed(pp, spec, strlen(spec), &q.r, err, sizeof(err));
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double nsp = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
	printf("policy_eval: %.0f ns/request (banned+spoof+greylist with Debian's whitelists+2 rate "
	       "limits, %d requests); "
	       "parse: %.0f ns/request\n", ns, n, nsp);
	for (int i = 0; i < 64; i++)
		policy_req_free(&rs[i]);
	free(rs);
	policy_parser_free(pp);
	strbuf_free(&out);
	policy_free(p);
	freereq(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sender_normalisation),
		cmocka_unit_test(greylist_basic),
		cmocka_unit_test(greylist_ipv6_host_and_windows),
		cmocka_unit_test(greylist_awl_and_expiry),
		cmocka_unit_test(greylist_whitelists),
		cmocka_unit_test(ratelimit_recipients_sasl),
		cmocka_unit_test(ratelimit_units_and_keys),
		cmocka_unit_test(spoof_and_banned),
		cmocka_unit_test(order_and_prepend),
		cmocka_unit_test(persistence),
		cmocka_unit_test(journal_snapshots),
		cmocka_unit_test(resync_snapshot),
		cmocka_unit_test(queue_entries),
		cmocka_unit_test(caps_and_speed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
