/*
 * test_fbatch - the line batcher gives the same verdicts, in the same order,
 * with its worker thread as without it: several filters sharing and not
 * sharing line preparation, a multi-line F-MLFID session filter (state that
 * must follow line order), a journal-style tap dated by the caller, invalid
 * UTF-8, lines longer than a batch's byte budget, two sets taking turns (a
 * set change finishes the pending lines), fbatch_finish() at odd places and
 * lines handed over with fbatch_add_now() in between.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/diag.h"
#include "core/strbuf.h"
#include "core/xmalloc.h"
#include "filters/fbatch.h"
#include "filters/filter.h"

#define NOW 1764000000.0
#define NLINES 6000

static struct filter *build(const char *const *fail, unsigned maxlines, const char *datepattern)
{
	struct filter_def d = {0};
	d.name = xstrdup("t");
	size_t n = 0;
	while (fail[n])
		n++;
	d.failregex = xcalloc(n + 1, sizeof *d.failregex);
	for (size_t i = 0; i < n; i++)
		d.failregex[i].text = xstrdup(fail[i]);
	d.nfailregex = n;
	d.ignoreregex = xcalloc(1, sizeof *d.ignoreregex);
	d.maxlines = maxlines;
	if (datepattern) {
		d.datepattern = xcalloc(1, sizeof(char *));
		d.datepattern[0] = xstrdup(datepattern);
		d.ndatepattern = 1;
	}
	struct diag dg = DIAG_INIT;
	struct filter *f = filter_compile(&d, &dg);
	if (!f)
		diag_print(&dg, stderr);
	assert_non_null(f);
	diag_clear(&dg);
	filter_def_free(&d);
	struct filter_opts o = {.raw_host = 1};
	filter_set_opts(f, &o);
	return f;
}

static const char *const FAIL_A[] = {"Failed password for .* from <HOST>", NULL};
static const char *const FAIL_MLFID[] = {
	"^\\s*\\S+ sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-NOFAIL>Connection</F-NOFAIL> from <HOST>",
	"^\\s*\\S+ sshd\\[<F-MLFID>\\d+</F-MLFID>\\]: Invalid user \\S+$",
	NULL,
};
static const char *const FAIL_C[] = {"(?:denied|rejected|reject:) .*\\[<HOST>\\]", NULL};

/* Deterministic lines: failures, sessions, noise, invalid UTF-8, long lines. */
static char *make_line(unsigned i, uint64_t *rng, size_t *len)
{
	*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
	unsigned r = (unsigned)(*rng >> 33);
	struct strbuf b = STRBUF_INIT;
	unsigned sec = i / 3;
	strbuf_addf(&b, "Nov 24 %02u:%02u:%02u mx ", (sec / 3600) % 24, (sec / 60) % 60, sec % 60);
	switch (r % 9) {
	case 0:
	case 1:
		strbuf_addf(&b, "sshd[%u]: Failed password for root from 192.0.2.%u port 22", r % 50,
			    r % 200 + 1);
		break;
	case 2:
		strbuf_addf(&b, "sshd[%u]: Connection from 198.51.100.%u port 4242", r % 7,
			    r % 100 + 1);
		break;
	case 3:
		strbuf_addf(&b, "sshd[%u]: Invalid user u%u", r % 7, r % 13);
		break;
	case 4:
		strbuf_addf(&b, "postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[203.0.113.%u]: 554 "
			       "Relay access denied",
			    r % 250 + 1);
		break;
	case 5:
		/* invalid UTF-8 around a failure */
		strbuf_addf(&b, "sshd[9]: Failed password for \xff\xfe\xc3( from 192.0.2.%u port 1",
			    r % 200 + 1);
		break;
	case 6:
		if (r % 50 == 0) { /* longer than a batch's byte budget */
			for (int k = 0; k < 20000; k++)
				strbuf_adds(&b, "filler ");
			strbuf_adds(&b, "denied x [192.0.2.99]");
		} else {
			strbuf_adds(&b, "kernel: nothing to see");
		}
		break;
	case 7:
		b.len = 0; /* no date at all */
		strbuf_addf(&b, "continued: rejected by [198.51.100.%u]", r % 100 + 1);
		break;
	default:
		strbuf_adds(&b, "dovecot: imap-login: Login: user=<a>");
		break;
	}
	*len = b.len;
	return b.s;
}

struct rec {
	struct strbuf out;
	unsigned long lines;
};

static void on_res(void *arg, const char *line, size_t len, uint64_t tag,
		   const struct fbatch_res *r)
{
	struct rec *rc = arg;
	strbuf_addf(&rc->out, "%llu/%zu len %zu st %d lim %d hits %zu:", (unsigned long long)tag,
		    r->tap, len, (int)r->st, r->limited, r->nhits);
	for (size_t h = 0; h < r->nhits; h++)
		strbuf_addf(&rc->out, " [%s %.0f %d %zu]", r->hits[h].id ? r->hits[h].id : "-",
			    r->hits[h].time, r->hits[h].nofail, r->hits[h].nlines);
	strbuf_addc(&rc->out, '\n');
	(void)line;
	if (r->tap == 0)
		rc->lines++;
}

static void run(int thread, size_t batch_lines, struct strbuf *out1, struct strbuf *out2)
{
	struct filter *fa = build(FAIL_A, 1, NULL);
	struct filter *fm = build(FAIL_MLFID, 5, NULL);
	struct filter *fc = build(FAIL_C, 1, "{^LN-BEG}");
	struct filter *fj = build(FAIL_A, 1, NULL);
	struct filter *f2 = build(FAIL_C, 1, NULL);
	struct date_clock clk = {NOW, 1, 0};
	/* set 1: a and m share a's preparation, c dates on its own, j is dated by the caller */
	struct fbatch_tap t1[] = {
		{fa, 0, &clk, 0}, {fm, 0, &clk, 0}, {fc, 2, &clk, 0}, {fj, 3, &clk, 1}};
	struct fbatch_tap t2[] = {{f2, 0, &clk, 0}};
	struct rec r1 = {STRBUF_INIT, 0}, r2 = {STRBUF_INIT, 0};
	struct fbatch_set s1 = {t1, 4, on_res, &r1}, s2 = {t2, 1, on_res, &r2};
	struct fbatch *b = fbatch_new(thread, batch_lines);
	uint64_t rng = 42;
	for (unsigned i = 0; i < NLINES; i++) {
		size_t len;
		char *line = make_line(i, &rng, &len);
		/* set 2 takes a turn now and then; finish at odd places */
		const struct fbatch_set *s = (i / 700) % 3 == 2 ? &s2 : &s1;
		if (i % 101 == 7) /* the way the daemon hands over a journal entry */
			fbatch_add_now(b, s, line, len, NOW + i - 5, NOW + i, i);
		else
			fbatch_add(b, s, line, len, -1.0, NOW + i, i);
		free(line);
		if (i % 997 == 13)
			fbatch_finish(b);
	}
	fbatch_finish(b);
	assert_true(r1.lines + r2.lines == NLINES);
	fbatch_free(b);
	*out1 = r1.out;
	*out2 = r2.out;
	filter_free(fa);
	filter_free(fm);
	filter_free(fc);
	filter_free(fj);
	filter_free(f2);
}

static void thread_matches_inline(void **state)
{
	(void)state;
	struct strbuf a1, a2, b1, b2;
	run(0, 0, &a1, &a2);
	assert_true(a1.len > 100000 && a2.len > 10000);
	/* failures were found by every kind of tap */
	assert_non_null(strstr(a1.s, "/1 len"));
	assert_non_null(strstr(a1.s, " [203.0.113."));
	/* the same with the thread, whatever the batch size (0 = the most) */
	static const size_t sizes[] = {0, 1, 7, 128, 100000};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		run(1, sizes[k], &b1, &b2);
		assert_string_equal(a1.s, b1.s);
		assert_string_equal(a2.s, b2.s);
		strbuf_free(&b1);
		strbuf_free(&b2);
	}
	strbuf_free(&a1);
	strbuf_free(&a2);
}

/* A share that points nowhere useful (later, out of range, at a tap that
 * itself shares) makes the tap prepare for itself, in both modes. */
static void unusable_share_prepares_itself(void **state)
{
	(void)state;
	static const size_t shares[][3] = {{0, 1, 2}, {9, 5, 1}, {0, 2, 1}};
	struct strbuf out[3][2];
	for (size_t k = 0; k < 3; k++)
		for (int thread = 0; thread < 2; thread++) {
			struct filter *f[3] = {build(FAIL_A, 1, NULL), build(FAIL_C, 1, NULL),
					       build(FAIL_A, 1, "{^LN-BEG}")};
			struct date_clock clk = {NOW, 1, 0};
			struct fbatch_tap t[3];
			for (size_t i = 0; i < 3; i++)
				t[i] = (struct fbatch_tap){f[i], shares[k][i], &clk, 0};
			struct rec r = {STRBUF_INIT, 0};
			struct fbatch_set set = {t, 3, on_res, &r};
			struct fbatch *b = fbatch_new(thread, 0);
			uint64_t rng = 7;
			for (unsigned i = 0; i < 2000; i++) {
				size_t len;
				char *line = make_line(i, &rng, &len);
				fbatch_add(b, &set, line, len, -1.0, NOW + i, i);
				free(line);
			}
			fbatch_free(b);
			assert_true(r.lines == 2000);
			out[k][thread] = r.out;
			for (size_t i = 0; i < 3; i++)
				filter_free(f[i]);
		}
	for (size_t k = 0; k < 3; k++)
		for (int thread = 0; thread < 2; thread++)
			assert_string_equal(out[0][0].s, out[k][thread].s);
	for (size_t k = 0; k < 3; k++)
		for (int thread = 0; thread < 2; thread++)
			strbuf_free(&out[k][thread]);
}

static void empty_finish_and_free(void **state)
{
	(void)state;
	struct fbatch *b = fbatch_new(1, 0);
	fbatch_finish(b);
	fbatch_finish(b);
	assert_true(fbatch_worker_cpu(b) == 0);
	fbatch_free(b);
	fbatch_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(thread_matches_inline),
		cmocka_unit_test(unusable_share_prepares_itself),
		cmocka_unit_test(empty_finish_and_free),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
